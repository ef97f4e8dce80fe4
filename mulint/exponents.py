"""Fitting how a quantity scales with width: the slope of log(value) against log(width)."""

from __future__ import annotations

import math

# Exponents are fitted on small widths: deviations from an expected exponent smaller than this are noise.
TOLERANCE = 0.25


def to_quarter(value: float) -> float:
    """An exponent fitted on small widths, to the nearest quarter: smaller differences are noise."""
    return round(value * 4) / 4


def fmt_exp(value: float) -> str:
    """`+0.50`, `-1.00`, and `0` for zero (never `+0.00` or `-0.00`)."""
    return f"{value:+.2f}".replace("+0.00", "0").replace("-0.00", "0")


def fit_exponent(values: dict[int, float]) -> float | None:
    """Least-squares slope of log(value) against log(width); None when every value is zero."""
    points = [(math.log(w), math.log(v)) for w, v in sorted(values.items()) if v > 0]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None
