"""Which learning rates a transfer sweep trains: powers of two around the user's own lr, coarse first,
then refined around each width's optimum and extended when the optimum sits on the grid's edge.

Pure planning over the losses seen so far (no torch): each round asks ``next_points`` what to train
next; the sweep stops when no width asks for more. Learning rates are in log2 octaves relative to
nothing (``log2(lr)``), so the grid is the same for every width and runs are shared across widths'
rounds.
"""

from __future__ import annotations

import math

COARSE_SPAN = 4  # octaves either side of the user's lr in the first pass
COARSE_STEP = 2  # octaves between points of the first pass
FINE_STEP = 1  # octaves between points around an optimum
MAX_SPAN = 10  # octaves either side of the user's lr the grid may extend to


def centre(lr: float) -> float:
    """The grid's centre: the user's lr in octaves, on the integer grid (so every run's lr is a power of
    two times the same base)."""
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"a learning rate must be positive and finite, not {lr!r}")
    return float(round(math.log2(lr)))


def coarse(middle: float, span: int = COARSE_SPAN, step: int = COARSE_STEP) -> list[float]:
    return [middle + k for k in range(-span, span + 1, step)]


def next_points(
    seen: dict[float, float], middle: float, *, fine: int = FINE_STEP, max_span: int = MAX_SPAN
) -> list[float]:
    """What one width should train next, given its mean loss per log2 lr so far: the neighbours of
    its optimum at ``fine`` spacing, and two coarse steps beyond an optimum on the edge."""
    finite = {x: y for x, y in seen.items() if math.isfinite(y)}
    if not finite:
        return []
    xs = sorted(seen)
    best = min(finite, key=lambda x: (finite[x], x))
    wanted: list[float] = []
    if best == xs[0]:
        wanted += [best - COARSE_STEP, best - fine]
    if best == xs[-1]:
        wanted += [best + fine, best + COARSE_STEP]
    wanted += [best - fine, best + fine]
    return sorted({x for x in wanted if x not in seen and abs(x - middle) <= max_span})
