"""Cost of the measured updates (MU311-MU313) next to the rest of `mulint check`, per model.

Usage: python benchmarks/update_cost.py [TARGET@OPTIMIZER ...]
Default: GPT-2 small (benchmarks/gpt2_small.py) with AdamW in nanoGPT's two groups and with Muon
beside AdamW, and the µP nanoGPT example with its own configure_optimizers. AdamW is judged by its
exact rule (MU301), so its steps are not measured; `+all` after the optimizer measures them anyway
(with the `spectral` profile): the worst case.

Each target is analysed in a fresh process (no cache) as a `mulint check` worker analyses it (the
model analysis and the model rules); the time spent in the measured optimizer steps (warm steps
until every optimizer has moved, then the measured one, per small width, and the update norms) is reported beside the rest of the check.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = "benchmarks/update_cost.py"
DEFAULT = [
    f"benchmarks/gpt2_small.py:gpt2_small@{HERE}:adamw",
    f"benchmarks/gpt2_small.py:gpt2_small@{HERE}:muon",
    f"benchmarks/gpt2_small.py:gpt2_small@{HERE}:adamw+all",
    "examples/nanogpt_mup.py:GPT@",
]


def adamw(model, lr=6e-4, weight_decay=0.1):
    """nanoGPT's groups: matrices decayed, vectors not, one learning rate."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=lr,
    )


def muon(model, lr=0.02):
    """Muon for the blocks' matrices, AdamW for the embeddings, the tied head and the vectors."""
    import torch

    hidden = [p for n, p in model.named_parameters() if p.dim() >= 2 and ".h." in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and ".h." in n)]
    return [torch.optim.Muon(hidden, lr=lr), torch.optim.AdamW(rest, lr=6e-4, weight_decay=0.0)]


def measure(spec: str) -> dict:
    target_spec, _, optimizer = spec.partition("@")
    optimizer, everything = optimizer.removesuffix("+all"), optimizer.endswith("+all")
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from mulint.analysis import model
    from mulint.engine.jobs import analyse_target
    from mulint.engine.options import JobOptions
    from mulint.reading.functions import FunctionRef
    from mulint.reading.targets import parse_target, resolve

    [target] = resolve(parse_target(target_spec), allow_exec=True)
    spent = {"updates": 0.0}
    original = model.measure_updates

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent["updates"] += time.perf_counter() - start

    model.measure_updates = timed
    start = time.perf_counter()
    options = JobOptions(
        optimizer=FunctionRef.parse(optimizer) if optimizer else None, profile="spectral" if everything else "mup"
    )
    findings, entry = analyse_target(target, options)
    total = time.perf_counter() - start
    return {
        "target": spec,
        "check": total,
        "updates": spent["updates"],
        "widths": entry["numeric_widths"],
        "codes": sorted({f.code for f in findings}),
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2])))
        sys.exit(0)
    for spec in sys.argv[1:] or DEFAULT:
        out = subprocess.run([sys.executable, __file__, "--one", spec], cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr)
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rest = row["check"] - row["updates"]
        print(
            f"{row['target']}: check {row['check']:.1f} s, of which measured updates {row['updates']:.1f} s "
            f"(+{100 * row['updates'] / rest:.0f}% on the rest, {rest:.1f} s); small widths "
            f"{', '.join(map(str, row['widths']))}; codes {', '.join(row['codes']) or '-'}"
        )
