"""Time and peak memory of `mulint inspect` on a Llama-3-70B-sized config.

Usage: python benchmarks/inspect_70b.py
Prints wall time per stage and the peak resident memory of the process.
"""

import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    t0 = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    t_import = time.perf_counter() - t0

    from mulint.analysis.structure import analyse_structure
    from mulint.reading.targets import parse_target, resolve
    from mulint.report.inspect_view import as_text

    t1 = time.perf_counter()
    [target] = resolve(parse_target(f"{HERE / 'llama70b.py'}:llama_70b"), allow_exec=True)
    structure = analyse_structure(target)
    text = as_text(structure.facts)
    t_analyse = time.perf_counter() - t1
    n = len(structure.facts.params)
    roles = {}
    for p in structure.facts.params:
        for r in p.roles:
            roles[r] = roles.get(r, 0) + 1
    print(f"parameters: {n} ({roles}); widths {structure.facts.widths}; {len(text.splitlines())} lines of output")
    print(f"import torch+transformers: {t_import:.2f} s")
    print(f"inspect (build x2 on meta, trace x2, facts): {t_analyse:.2f} s")
    print(f"total wall: {time.perf_counter() - t0:.2f} s; peak RSS: {peak_mb():.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
