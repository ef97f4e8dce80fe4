"""Wall time of `mulint coord` against the mup package's `get_coord_data` on the same model,
widths, steps, seeds and batch size.

Usage: python benchmarks/coord_vs_mup.py [small|gpt|all]   (mup's coord_check needs pandas)

- small: examples/mlp_mup.py:MLP at widths 64..512, 3 Adam steps, 2 seeds, batch 16. Here the
  fixed costs (mulint's trace of the model, building the models) are most of the time.
- gpt: examples/gpt_mup_package.py:make_model (2 blocks, vocab 256) at widths 256..2048, 3 Adam
  steps, 1 seed, batch 8 x 16 tokens. Here training dominates; mulint additionally copies every
  module's output when it is produced, as its check records |h_t - h_0| rather than |h_t|.
"""

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(file="mlp_mup.py", name="MLP", widths=[64, 128, 256, 512], steps=3, seeds=2, lr=1e-3)
GPT = dict(file="gpt_mup_package.py", name="make_model", widths=[256, 512, 1024, 2048], steps=3, seeds=1, lr=1e-3)


def time_mulint(case: dict, use_file_optimizer: bool) -> float:
    from mulint.analysis.structure import analyse_structure
    from mulint.coordcheck.run import run_coord
    from mulint.reading.targets import parse_target, resolve

    start = time.perf_counter()
    [target] = resolve(parse_target(f"{ROOT / 'examples' / case['file']}:{case['name']}"), allow_exec=True)
    structure = analyse_structure(target)  # the trace tells which layers carry multipliers
    traced = time.perf_counter()
    result = run_coord(
        target,
        structure,
        widths=case["widths"],
        steps=case["steps"],
        seeds=case["seeds"],
        lr=case["lr"],
        device="cpu",
        find_optimizer=use_file_optimizer,
    )
    elapsed = time.perf_counter() - start
    print(
        f"  mulint coord: {elapsed:.2f} s (structure/trace {traced - start:.2f} s, training "
        f"{elapsed - (traced - start):.2f} s), verdict {result.verdict} ({result.optimizer}), "
        f"{len(result.layers)} layers"
    )
    return elapsed


def time_mup(models: dict, loader: list, case: dict, mup: bool, flatten_output: bool) -> float:
    from mup.coord_check import get_coord_data

    start = time.perf_counter()
    frame = get_coord_data(
        models,
        loader,
        mup=mup,
        lr=case["lr"],
        optimizer="adam",
        nsteps=case["steps"],
        nseeds=case["seeds"],
        lossfn="xent",
        cuda=False,
        show_progress=False,
        flatten_output=flatten_output,
    )
    elapsed = time.perf_counter() - start
    print(f"  mup get_coord_data: {elapsed:.2f} s, {len(frame)} rows")
    return elapsed


def small() -> tuple[float, float]:
    sys.path.insert(0, str(ROOT / "examples"))
    from mlp_mup import MLP

    print(f"MLP, widths {SMALL['widths']}, {SMALL['steps']} steps, {SMALL['seeds']} seeds, batch 16")
    # Plain Adam for every parameter, as get_coord_data(optimizer="adam", mup=False) uses.
    ours = time_mulint(SMALL, use_file_optimizer=False)
    torch.manual_seed(0)
    x, y = torch.randn(16, 32), torch.randint(0, 10, (16,))
    models = {w: (lambda w=w: MLP(width=w)) for w in SMALL["widths"]}
    theirs = time_mup(models, [(x, y)] * SMALL["steps"], SMALL, mup=False, flatten_output=False)
    return ours, theirs


def gpt() -> tuple[float, float]:
    sys.path.insert(0, str(ROOT / "examples"))
    from gpt_mup_package import make_model

    print(f"mup-package GPT, widths {GPT['widths']}, {GPT['steps']} steps, {GPT['seeds']} seed, batch 8 x 16 tokens")
    ours = time_mulint(GPT, use_file_optimizer=True)  # the file's MuAdamW
    torch.manual_seed(0)
    ids, labels = torch.randint(0, 256, (8, 16)), torch.randint(0, 256, (8 * 16,))
    models = {w: (lambda w=w: make_model(n_embd=w)) for w in GPT["widths"]}
    theirs = time_mup(models, [(ids, labels)] * GPT["steps"], GPT, mup=True, flatten_output=True)  # MuAdam
    return ours, theirs


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    ratios = {}
    for name, run in (("small", small), ("gpt", gpt)):
        if which in (name, "all"):
            ours, theirs = run()
            ratios[name] = ours / theirs
            print(f"  ratio mulint / mup ({name}): {ratios[name]:.2f}")
    print("; ".join(f"{k}: {v:.2f}" for k, v in ratios.items()))
