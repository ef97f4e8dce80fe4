"""Speed and memory of `mulint check` on big configs, with a breakdown by phase.

Usage: python benchmarks/check_speed.py [TARGET ...]
Default targets: a Llama-3-70B-sized config (benchmarks/llama70b.py) and a GPT-2-small config
(benchmarks/gpt2_small.py).
Each target is checked in a fresh process (no cache), so peak RSS is the target's own.
Phases: importing torch and transformers, importing the target's file (and the transformers model
code it imports), then the check itself: building on the meta device,
tracing (torch.export, both widths), building small CPU models for the init numbers, and the rest.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["benchmarks/llama70b.py:llama_70b", "benchmarks/gpt2_small.py:gpt2_small"]


def _timed(module, name: str, bucket: dict[str, float], key: str) -> None:
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            bucket[key] = bucket.get(key, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)


def measure(target: str) -> dict:
    start = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from mulint.reading.targets import parse_target, resolve

    libraries = time.perf_counter()
    resolve(parse_target(target), allow_exec=True)  # the user's code, imported once and reused by the check
    imported = time.perf_counter()
    from mulint.analysis import model, structure
    from mulint.engine.checker import run_check
    from mulint.engine.settings import Settings

    bucket: dict[str, float] = {}
    _timed(structure, "build_at", bucket, "meta build")
    _timed(structure, "export", bucket, "trace")
    _timed(model, "numeric_widths", bucket, "choosing small widths")
    _timed(model, "measure_init", bucket, "small CPU models")
    result = run_check(Settings(paths=(target,), cache=False))
    total = time.perf_counter() - imported
    return {
        "target": target,
        "import": libraries - start,
        "import target": imported - libraries,
        "check": total,
        "phases": bucket,
        "codes": sorted({f.code for f in result.findings}),
        "errors": [e.message for e in result.errors],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2])))
        sys.exit(0)
    for target in sys.argv[1:] or DEFAULT:
        out = subprocess.run([sys.executable, __file__, "--one", target], cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr)
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{row['target']}: import torch+transformers {row['import']:.2f} s, the target's file "
            f"{row['import target']:.2f} s; check {row['check']:.2f} s "
            f"({', '.join(f'{k} {v:.2f} s' for k, v in row['phases'].items())}); peak RSS "
            f"{row['peak_rss_mb']:.0f} MB; codes {', '.join(row['codes']) or '-'}"
            + (f"; errors: {row['errors']}" if row["errors"] else "")
        )
