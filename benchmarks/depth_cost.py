"""What the depth analysis adds to `mulint check`: the same check with and without `--no-depth`.

Usage: python benchmarks/depth_cost.py [TARGET] [--rounds N]
Default target: GPT-2 small from a GPT2Config (benchmarks/gpt2_depth.py:gpt2_small, 12 layers, width
768), whose n_layer is a depth knob. Each round runs both commands in fresh processes without the
cache, alternating which goes first, so a machine whose load changes during the run weighs on both
alike; the figures are the minimum and the median wall time of each, and their ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "benchmarks/gpt2_depth.py:gpt2_small"


def wall(target: str, *extra: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mulint", "check", target, "--no-cache", *extra],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=False,  # findings exit 1: the time is what is measured
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default=DEFAULT)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"--no-depth": [], "depth": []}
    for i in range(args.rounds):
        order = ["--no-depth", "depth"] if i % 2 == 0 else ["depth", "--no-depth"]
        for name in order:
            times[name].append(wall(args.target, *([name] if name == "--no-depth" else [])))
    for name, values in times.items():
        print(f"{name:10}  min {min(values):6.2f} s  median {statistics.median(values):6.2f} s  {values}")
    print(
        f"ratio (depth / --no-depth): min {min(times['depth']) / min(times['--no-depth']):.2f}, "
        f"median {statistics.median(times['depth']) / statistics.median(times['--no-depth']):.2f}"
    )


if __name__ == "__main__":
    main()
