"""What the warm server's warm-up (`mulint.trace.warm_up`) buys a check forked after it: the time of a
model's traces in a fork of a process that has only imported torch and mulint, against a fork of one that
has also traced the stand-ins.

Usage: python benchmarks/warm_up.py [--target FILE] [--forks N]
For each parent (cold, warmed up) it forks N times; each fork loads a fresh copy of the target's file (a
new module, as after an edit), builds it on the meta device at its base width and twice that, with
repeated blocks shortened as a check does, and traces the base width, the double width and the base
width again. It prints the median of each trace over the forks, and the warm-up's own time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, os, sys, tempfile, time, gc
from pathlib import Path
import torch
import mulint.analysis.model  # what a warm server has imported
from mulint.analysis import structure
from mulint.construct import build_at
from mulint.construct.repeats import shortened
from mulint.reading.targets import parse_target, resolve
from mulint.trace import export, warm_up
source, forks, warm = Path(sys.argv[1]).read_text(), int(sys.argv[2]), sys.argv[3] == "warm"
start = time.perf_counter()
if warm:
    for _ in warm_up.steps():
        pass
warm_up_seconds = time.perf_counter() - start
gc.collect()
gc.freeze()
rows = []
for i in range(forks):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        folder = Path(tempfile.mkdtemp())
        (folder / "model.py").write_text(source + f"# {i}\\n")
        target = resolve(parse_target(str(folder / "model.py")), allow_exec=True)[0]
        knob, _ = structure._knob(target, None, None, [])
        models = [build_at(knob, w, target=target.label) for w in (knob.base, 2 * knob.base)]
        inputs = [structure.inputs_for(target, m)[0] for m in models]
        seconds = []
        with shortened(models[0]), shortened(models[1]):
            for m, x in ((models[0], inputs[0]), (models[1], inputs[1]), (models[0], inputs[0])):
                t = time.perf_counter()
                export(m, x, target=target.label)
                seconds.append(time.perf_counter() - t)
        os.write(write, json.dumps(seconds).encode())
        os._exit(0)
    os.close(write)
    rows.append(json.loads(os.read(read, 1 << 16)))
    os.waitpid(pid, 0)
print(json.dumps({"warm-up": warm_up_seconds, "rows": rows}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=ROOT / "examples" / "nanogpt_sp.py")
    parser.add_argument("--forks", type=int, default=5)
    args = parser.parse_args()
    import json

    print(f"{args.target.name}: traces in a forked check, median of {args.forks} forks")
    print(f"{'parent':12} {'base width':>11} {'2x width':>9} {'base again':>11}   warm-up")
    for parent in ("cold", "warm"):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.target), str(args.forks), parent],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        columns = [statistics.median(row[i] for row in answer["rows"]) for i in range(3)]
        warm = f"{answer['warm-up']:.2f} s" if parent == "warm" else "-"
        print(f"{parent:12} {columns[0]:>10.3f}s {columns[1]:>8.3f}s {columns[2]:>10.3f}s   {warm}")


if __name__ == "__main__":
    main()
