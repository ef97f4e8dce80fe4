"""Does the best learning rate stay put as width grows? The verdict of a transfer sweep, from its curves.

Pure arithmetic over the measured losses (no torch), so it is tested on synthetic curves with known
optima. The steps, after TRANSFER's reference design (Tensor Programs V, nanoGPT-mup's sweeps):

1. Per width, the optimum in log2(lr): the argmin of the seed-mean curve, refined by the vertex of
   the least-squares parabola through the points within two octaves of it when that parabola opens
   upwards and its vertex lies among them (otherwise the grid point stands).
2. Bootstrap over seeds (common random numbers: seed k is the same init and data at every width and
   lr, so a resample takes whole seeds): an interval for each optimum and for the drift slope, the
   weighted least-squares slope of log2 lr* against log2 width (octaves per doubling of width).
3. PASS when the optimum moves by at most ``PASS_DRIFT`` octaves over the widths and the slope's
   interval contains 0 with |slope| ≤ ``PASS_SLOPE`` (or lies wholly within ±``PASS_SLOPE``); FAIL when the slope's interval excludes 0 and
   either |slope| ≥ ``FAIL_SLOPE`` or the total drift reaches ``FAIL_DRIFT`` octaves; INCONCLUSIVE
   otherwise, with what to add. Why these numbers: the grid has one-octave resolution (the anchors'
   and Megatron's tolerance), so one octave over the widths is "did not move"; SP with Adam moves
   about one octave per doubling, so half of that is a clear failure; two octaves total is never
   noise at 2–3 seeds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from statistics import fmean

PASS_DRIFT = 1.0  # octaves over the whole width range
PASS_SLOPE = 0.25  # octaves per doubling
FAIL_SLOPE = 0.5
FAIL_DRIFT = 2.0
BOOTSTRAP = 400  # resamples of whole seeds
INTERVAL = 0.9  # the central share of the bootstrap distribution an interval holds
WINDOW = 2.0  # octaves either side of the argmin the parabola is fitted over


@dataclass(frozen=True)
class Curve:
    """One width's losses: ``losses[seed][i]`` at ``log2_values[i]`` (a diverged run counts at its initial loss)."""

    width: int
    log2_values: tuple[float, ...]
    losses: tuple[tuple[float, ...], ...]

    def mean(self, seeds: list[int] | None = None) -> list[float]:
        rows = [self.losses[s] for s in (range(len(self.losses)) if seeds is None else seeds)]
        return [fmean(column) for column in zip(*rows)]

    def sem(self) -> list[float]:
        """Standard error of the mean over seeds, per lr (0 with one seed)."""
        n = len(self.losses)
        if n < 2:
            return [0.0] * len(self.log2_values)
        out = []
        for column in zip(*self.losses):
            m = fmean(column)
            out.append(math.sqrt(sum((x - m) ** 2 for x in column) / (n - 1) / n))
        return out


@dataclass(frozen=True)
class Optimum:
    log2_value: float
    on_edge: bool  # the argmin is the grid's first or last point: the true optimum may lie beyond
    refined: bool  # the parabola's vertex, not a grid point
    interval: tuple[float, float] = (math.nan, math.nan)


@dataclass
class Verdict:
    status: str  # "PASS" | "FAIL" | "INCONCLUSIVE"
    reason: str
    widths: list[int]
    optima: list[Optimum]
    slope: float
    slope_interval: tuple[float, float]
    drift: float  # log2 lr* at the widest width minus at the narrowest
    regret: float | None = None  # loss lost at the widest width by using the base width's best lr
    regret_share: float | None = None  # ... as a share of what widening gained at the optimum
    wider_is_better: bool | None = None
    advice: list[str] = field(default_factory=list)


def optimum(log2_values: list[float] | tuple[float, ...], losses: list[float]) -> Optimum:
    """The best log2 lr of one mean curve: the vertex of the least-squares parabola through the points
    within ``WINDOW`` octaves of the argmin (at least three), when it opens upwards and its vertex lies
    inside them; otherwise the argmin. A window wider than the argmin's two neighbours keeps a flat
    bottom from being decided by the noise of one point."""
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    if not finite:
        raise ValueError("no finite loss on the curve")
    i = min(finite, key=lambda k: (losses[k], k))
    on_edge = i in (0, len(losses) - 1)
    if on_edge:
        return Optimum(float(log2_values[i]), True, False)
    near = [k for k in finite if abs(log2_values[k] - log2_values[i]) <= WINDOW]
    if len(near) < 3 or not (near[0] < i < near[-1]):
        return Optimum(float(log2_values[i]), False, False)
    vertex = _vertex([log2_values[k] for k in near], [losses[k] for k in near])
    if vertex is None:
        return Optimum(float(log2_values[i]), False, False)
    return Optimum(vertex, False, True)


def _vertex(xs, ys) -> float | None:
    """The vertex of the least-squares parabola through the points, when it opens upwards and lies
    between the first and last of them."""
    n = len(xs)
    mx = sum(xs) / n
    u = [x - mx for x in xs]  # centred, for a well-conditioned fit
    s = [sum(v**k for v in u) for k in range(5)]
    t = [sum(y * v**k for y, v in zip(ys, u)) for k in range(3)]
    # Normal equations for y = a + b u + c u^2, solved by Cramer's rule.
    m = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]]
    det = _det(m)
    if abs(det) < 1e-12:
        return None
    b = _det([[m[0][0], t[0], m[0][2]], [m[1][0], t[1], m[1][2]], [m[2][0], t[2], m[2][2]]]) / det
    c = _det([[m[0][0], m[0][1], t[0]], [m[1][0], m[1][1], t[1]], [m[2][0], m[2][1], t[2]]]) / det
    if c <= 0:
        return None
    x = mx - b / (2 * c)
    return x if xs[0] < x < xs[-1] else None


def _det(m) -> float:
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )


def slope_of(log2_widths: list[float], optima: list[float], weights: list[float] | None = None) -> float:
    """Weighted least-squares slope of the optima against log2 width."""
    w = weights or [1.0] * len(optima)
    sw = sum(w)
    mx = sum(wi * x for wi, x in zip(w, log2_widths)) / sw
    my = sum(wi * y for wi, y in zip(w, optima)) / sw
    sxx = sum(wi * (x - mx) ** 2 for wi, x in zip(w, log2_widths))
    return sum(wi * (x - mx) * (y - my) for wi, x, y in zip(w, log2_widths, optima)) / sxx


def _interval(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    tail = (1 - INTERVAL) / 2
    lo = ordered[int(math.floor(tail * (len(ordered) - 1)))]
    hi = ordered[int(math.ceil((1 - tail) * (len(ordered) - 1)))]
    return lo, hi


def interpolate(log2_values, losses: list[float], x: float) -> float:
    """The mean curve's loss at log2 lr ``x``, linear between grid points, the edge value beyond them."""
    if x <= log2_values[0]:
        return losses[0]
    for (x0, y0), (x1, y1) in zip(zip(log2_values, losses), zip(log2_values[1:], losses[1:])):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return losses[-1]


def judge(curves: list[Curve], *, seed: int = 0, noun: str = "lr") -> Verdict:
    """The verdict over the widths' curves (the same seeds at every width); ``noun`` names what was
    swept in its sentences ("lr", "output multiplier")."""
    if len(curves) < 2:
        raise ValueError("a transfer verdict needs at least two widths")
    curves = sorted(curves, key=lambda c: c.width)
    n_seeds = min(len(c.losses) for c in curves)
    widths = [c.width for c in curves]
    x = [math.log2(w) for w in widths]
    best = [optimum(c.log2_values, c.mean()) for c in curves]

    rng = random.Random(seed)
    per_width: list[list[float]] = [[] for _ in curves]
    slopes = []
    for _ in range(BOOTSTRAP if n_seeds > 1 else 1):
        pick = [rng.randrange(n_seeds) for _ in range(n_seeds)] if n_seeds > 1 else [0]
        ys = [optimum(c.log2_values, c.mean(pick)).log2_value for c in curves]
        for k, y in enumerate(ys):
            per_width[k].append(y)
        slopes.append(slope_of(x, ys))
    intervals = [_interval(v) for v in per_width]
    optima = [Optimum(o.log2_value, o.on_edge, o.refined, iv) for o, iv in zip(best, intervals)]
    # Weights: a width whose optimum the seeds pin down counts more (floor: a quarter octave).
    weights = [1 / max((hi - lo) / 2, 0.25) ** 2 for lo, hi in intervals]
    slope = slope_of(x, [o.log2_value for o in optima], weights)
    slope_iv = _interval(slopes)
    drift = optima[-1].log2_value - optima[0].log2_value

    verdict = Verdict("INCONCLUSIVE", "", widths, optima, slope, slope_iv, drift)
    _regret(verdict, curves)
    _decide(verdict, n_seeds, noun)
    return verdict


def _regret(verdict: Verdict, curves: list[Curve]) -> None:
    base, widest = curves[0], curves[-1]
    at_base_best = interpolate(widest.log2_values, widest.mean(), verdict.optima[0].log2_value)
    at_own_best = interpolate(widest.log2_values, widest.mean(), verdict.optima[-1].log2_value)
    verdict.regret = max(at_base_best - at_own_best, 0.0)
    gain = interpolate(base.log2_values, base.mean(), verdict.optima[0].log2_value) - at_own_best
    verdict.regret_share = verdict.regret / gain if gain > 0 else None
    shared = verdict.optima[0].log2_value
    at_shared = [interpolate(c.log2_values, c.mean(), shared) for c in curves]
    verdict.wider_is_better = all(b < a for a, b in zip(at_shared, at_shared[1:]))


def _decide(v: Verdict, n_seeds: int, noun: str = "lr") -> None:
    lo, hi = v.slope_interval
    contains_zero = lo <= 0 <= hi
    edges = [w for w, o in zip(v.widths, v.optima) if o.on_edge]
    if edges:
        v.advice.append(f"widen the grid: the best {noun} of width {', '.join(map(str, edges))} is at its edge")
    # Still: the interval holds 0 and the slope is small, or the interval itself lies within the
    # pass band (a small slope measured precisely: an equivalence test, not "no evidence of a slope").
    still = (contains_zero and abs(v.slope) <= PASS_SLOPE) or (-PASS_SLOPE <= lo and hi <= PASS_SLOPE)
    if not edges and abs(v.drift) <= PASS_DRIFT and still:
        v.status = "PASS"
        v.reason = (
            f"the best {noun} moves {v.drift:+.2f} octaves from width {v.widths[0]} to {v.widths[-1]} "
            f"({v.slope:+.2f} per doubling, interval [{lo:+.2f}, {hi:+.2f}])"
        )
        return
    if not contains_zero and (abs(v.slope) >= FAIL_SLOPE or abs(v.drift) >= FAIL_DRIFT):
        way = "falls" if v.slope < 0 else "rises"
        v.status = "FAIL"
        v.reason = (
            f"the best {noun} {way} with width: {v.slope:+.2f} octaves per doubling "
            f"(interval [{lo:+.2f}, {hi:+.2f}]), {v.drift:+.2f} octaves from width {v.widths[0]} to {v.widths[-1]}"
        )
        return
    v.status = "INCONCLUSIVE"
    v.reason = (
        f"the best {noun} moves {v.drift:+.2f} octaves ({v.slope:+.2f} per doubling, interval [{lo:+.2f}, {hi:+.2f}]): "
        "neither clearly still nor clearly moving"
    )
    if n_seeds < 3 or hi - lo > 1.0:
        v.advice.append("more seeds (--seeds): the optima are not pinned down")
    if any(o.interval[1] - o.interval[0] > 1.0 for o in v.optima):
        v.advice.append("more steps (--steps): the curves are flat around their optima")
    if len(v.widths) < 4:
        v.advice.append("more widths (--widths): a slope over three widths is loose")
    if not v.advice:
        v.advice.append("more seeds and steps (--seeds, --steps)")
