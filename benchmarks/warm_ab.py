"""The warm cache miss of two checkouts of mulint, interleaved, so that a machine whose speed drifts
from one minute to the next weighs on both alike.

Usage: python benchmarks/warm_ab.py OTHER_CHECKOUT [--rounds N] [--target FILE]
e.g. `git worktree add /tmp/before HEAD~3 && python benchmarks/warm_ab.py /tmp/before`.

Each checkout gets a scratch project, its own cache and runtime folder and its own warm server. Each
round edits the target in both projects and times `mulint check --daemon` in each (the order alternating
from round to round); it prints each checkout's median and the median of the paired differences.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from warm_check import warmed_up  # (this folder is on the path of a script run from it)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="another checkout of mulint (a git worktree)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--target", type=Path, default=ROOT / "examples" / "nanogpt_sp.py")
    args = parser.parse_args()
    checkouts = [args.other.resolve(), ROOT]
    source, name = args.target.read_text(), args.target.name
    mulint = [sys.executable, "-m", "mulint"]
    projects = []
    for checkout in checkouts:
        scratch = Path(tempfile.mkdtemp(prefix="mab", dir="/tmp"))  # AF_UNIX paths are short
        folder = scratch / "project"
        folder.mkdir()
        (folder / "pyproject.toml").write_text("[tool.mulint]\n")
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        env.update(
            PYTHONPATH=str(checkout), MULINT_CACHE_DIR=str(scratch / "cache"), MULINT_RUNTIME_DIR=str(scratch / "run")
        )
        projects.append((checkout, scratch, folder, env))
    seconds: dict[Path, list[float]] = {checkout: [] for checkout in checkouts}
    try:
        for _, _, folder, env in projects:  # each server started and its first fork made
            subprocess.run([*mulint, "server", "start"], cwd=folder, env=env, capture_output=True, check=True)
            (folder / name).write_text(source + "# warm-up\n")
            subprocess.run([*mulint, "check", name, "--daemon"], cwd=folder, env=env, capture_output=True)
            warmed_up(mulint, folder, env)
        for round_ in range(args.rounds):
            for checkout, _, folder, env in projects if round_ % 2 == 0 else projects[::-1]:
                (folder / name).write_text(source + f"# edit {round_}\n")
                start = time.perf_counter()
                done = subprocess.run([*mulint, "check", name, "--daemon"], cwd=folder, env=env, capture_output=True)
                seconds[checkout].append(time.perf_counter() - start)
                if done.returncode not in (0, 1):
                    raise SystemExit(f"{checkout}: exit {done.returncode}\n{done.stderr.decode()}")
    finally:
        for _, scratch, folder, env in projects:
            subprocess.run([*mulint, "server", "stop"], cwd=folder, env=env, capture_output=True)
            shutil.rmtree(scratch, ignore_errors=True)
    for checkout in checkouts:
        times = seconds[checkout]
        print(f"{checkout}: median {statistics.median(times):.3f} s, min {min(times):.3f} s")
    paired = [a - b for a, b in zip(*seconds.values())]
    print(f"paired difference ({checkouts[0].name} - this checkout): median {statistics.median(paired):+.3f} s")


if __name__ == "__main__":
    main()
