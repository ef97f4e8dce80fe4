"""What running each model in a worker process costs, and what --jobs gains.

    python benchmarks/isolation.py [--runs 5]

1. One-model check, end to end (`mulint check FILE:NAME --no-cache` in a fresh process), with the
   model analysed in a worker (the shipped path) and in mulint's own process (the same CLI with the
   worker replaced by a direct call: the path before isolation). Prints the median of each and the
   difference: the isolation's overhead.
2. A directory of 6 models, `--jobs 1` against `--jobs 2`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = f"{ROOT / 'examples' / 'nanogpt_sp.py'}:GPT"

IN_PROCESS = """
import sys
import mulint.engine.checker
from mulint.engine import jobs
from mulint.engine.isolation import Outcome

def run_inline(job_list, limits, on_done=lambda o: None, on_progress=lambda j, n: None):
    outcomes = []
    for job in job_list:
        kind, value = jobs.run(job, 0, lambda message: None)
        outcomes.append(Outcome(job=job, value=value if kind == "done" else None,
                                error=value if kind == "error" else None))
    return outcomes

mulint.engine.checker.run_jobs = run_inline
from mulint.cli import main
main(sys.argv[1:])
"""


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def median_of(command: list[str], runs: int) -> float:
    return statistics.median(timed(command) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    check = ["check", TARGET, "--no-cache"]
    worker = median_of([sys.executable, "-m", "mulint.cli", *check], args.runs)
    inline = median_of([sys.executable, "-c", IN_PROCESS, *check], args.runs)
    print(f"one model ({TARGET.split('/')[-1]}), median of {args.runs}:")
    print(f"  in mulint's process   {inline:6.2f} s")
    print(f"  in a worker process   {worker:6.2f} s")
    print(f"  isolation overhead    {worker - inline:+6.2f} s")

    with tempfile.TemporaryDirectory() as folder:
        examples = [
            "nanogpt_sp.py",
            "nanogpt_mup.py",
            "mlp_mup.py",
            "mlp_sp.py",
            "inout_mlp_mup.py",
            "gpt_fixed_head_dim_mup.py",
        ]
        for name in examples:
            shutil.copy(ROOT / "examples" / name, Path(folder) / name)
        runs = max(1, args.runs // 2)
        one = median_of([sys.executable, "-m", "mulint.cli", "check", folder, "--no-cache", "--jobs", "1"], runs)
        two = median_of([sys.executable, "-m", "mulint.cli", "check", folder, "--no-cache", "--jobs", "2"], runs)
    print(f"6 models in a directory, median of {runs}:")
    print(f"  --jobs 1              {one:6.2f} s")
    print(f"  --jobs 2              {two:6.2f} s   (speed-up {one / two:.2f}x)")


if __name__ == "__main__":
    main()
