"""Wall time of `mulint coord` against the mup package's `get_coord_data` on the same model,
widths, steps and seeds.

Usage: python benchmarks/coord_vs_mup.py
Model: examples/mlp_mup.py:MLP at widths 64..512, 3 Adam steps, 2 seeds, batch 16.
"""

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
WIDTHS, STEPS, SEEDS, LR = [64, 128, 256, 512], 3, 2, 1e-3


def time_mulint() -> float:
    from mulint.analysis.structure import analyse_structure
    from mulint.coord import run_coord
    from mulint.load.targets import parse_target, resolve

    start = time.perf_counter()
    [target] = resolve(parse_target(f"{ROOT / 'examples' / 'mlp_mup.py'}:MLP"), allow_exec=True)
    structure = analyse_structure(target)  # the trace tells which layers carry multipliers
    traced = time.perf_counter()
    # Plain Adam for every parameter, as get_coord_data(optimizer="adam", mup=False) uses.
    result = run_coord(target, structure, widths=WIDTHS, steps=STEPS, seeds=SEEDS, lr=LR)
    elapsed = time.perf_counter() - start
    print(f"mulint coord: {elapsed:.2f} s (structure/trace {traced - start:.2f} s, training "
          f"{elapsed - (traced - start):.2f} s), verdict {result.verdict} (one Adam LR for all: SP), "
          f"{len(result.layers)} layers")
    return elapsed


def time_mup() -> float:
    from mup.coord_check import get_coord_data

    sys.path.insert(0, str(ROOT / "examples"))
    from mlp_mup import MLP

    torch.manual_seed(0)
    x, y = torch.randn(16, 32), torch.randint(0, 10, (16,))
    loader = [(x, y)] * STEPS
    models = {w: (lambda w=w: MLP(width=w)) for w in WIDTHS}
    start = time.perf_counter()
    frame = get_coord_data(models, loader, mup=False, lr=LR, optimizer="adam", nsteps=STEPS, nseeds=SEEDS,
                           lossfn="xent", cuda=False, show_progress=False)
    elapsed = time.perf_counter() - start
    print(f"mup get_coord_data: {elapsed:.2f} s, {len(frame)} rows")
    return elapsed


if __name__ == "__main__":
    ours, theirs = time_mulint(), time_mup()
    print(f"ratio mulint / mup: {ours / theirs:.2f}")
