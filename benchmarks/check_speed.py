"""Speed of `mulint check` without the cache, with the breakdown by phase the worker reports.

Usage: python benchmarks/check_speed.py [--runs N] [TARGET ...]
Default targets: examples/nanogpt_sp.py:GPT, a GPT-2-small config (benchmarks/gpt2_small.py) and a
Llama-3-70B-sized config (benchmarks/llama70b.py).

Each target is checked by `mulint check --no-cache --format json --verbose TARGET` in a fresh process
(N times with --runs), and the `"timings"` of its JSON output are printed as they come: mulint's own
phases (the static rules, the worker's start, which on a cold run is the worker server importing
torch and mulint's analysis, since the check starts it), then the phases timed inside the worker (import of the
target's file, meta builds, traces, the small CPU models, the optimizer and its updates, depth, rules,
...). "job" is the worker's phases alone: what a check costs once the worker server is warm (torch
imported, a worker forked), the cost a warm re-check after an edit pays.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["examples/nanogpt_sp.py:GPT", "benchmarks/gpt2_small.py:gpt2_small", "benchmarks/llama70b.py:llama_70b"]
PARENT_PHASES = {"static rules", "cache lookup", "worker start", "cache store"}  # timed in mulint, not the worker


def check_once(target: str) -> dict:
    """One `mulint check` of the target in a fresh process: wall time, codes, errors and its timings."""
    command = [sys.executable, "-m", "mulint", "check", "--no-cache", "--format", "json", "--verbose", target]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return {"target": target, "wall": wall, "failed": done.stderr.strip() or f"exit {done.returncode}"}
    timings = report.get("timings", {})
    phases = timings.get(target, {}).get("phases", {})
    return {
        "target": target,
        "wall": wall,
        "static": sum(entry["phases"].get("static rules", 0.0) for entry in timings.values()),
        "phases": phases,
        "job": sum(seconds for name, seconds in phases.items() if name not in PARENT_PHASES),
        "codes": sorted({f["code"] for f in report["findings"]}),
        "errors": [e["message"] for e in report["errors"]],
    }


def line(row: dict) -> str:
    if "failed" in row:
        return f"{row['target']}: failed: {row['failed']}"
    phases = ", ".join(f"{name} {seconds:.2f}" for name, seconds in row["phases"].items())
    return (
        f"{row['target']}: wall {row['wall']:.2f} s, job {row['job']:.2f} s; static rules {row['static']:.2f}, "
        f"{phases}; codes {', '.join(row['codes']) or '-'}" + (f"; errors: {row['errors']}" if row["errors"] else "")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=DEFAULT)
    parser.add_argument("--runs", type=int, default=1, help="fresh processes per target")
    args = parser.parse_args(argv)
    for target in args.targets:
        for _ in range(args.runs):
            print(line(check_once(target)), flush=True)


if __name__ == "__main__":
    main()
