"""Widths where the model really scales: every width-derived dimension grows in proportion to width.

A model may round a size derived from the width (a LLaMA-style FFN rounded up to a multiple of 256):
at small widths that size stays put or jumps, so a parameter's fan-in does not follow the width and
its init and learning-rate exponents, fitted against width, look wrong on correct µP code. The
analysis's small CPU widths and the coordinate check's widths are both chosen here: the model is
built on the meta device (free) at the candidate widths, every parameter dimension that changes is
compared with the width, and the widths are moved up by doublings until each changing dimension
grows in proportion (within rounding), as far as the caller's memory budget allows.
"""

from __future__ import annotations

from collections.abc import Callable

from mulint.construct import build_at
from mulint.construct.knob import WidthKnob
from mulint.construct.provenance import quiet
from mulint.errors import MulintError

# How far a dimension's growth may be from the width's between two widths and still count as
# proportional: sizes rounded to a multiple (768 -> 1536 -> 2816 for widths 256 -> 512 -> 1024) are
# within it, a size that stays or grows by half while the width doubles is not.
TOLERANCE = 0.15
# A dimension that does not change across the chosen widths but does at this many times the widest
# is width-derived yet held still by rounding at those widths.
FAR = 4
MAX_DOUBLINGS = 6

Shapes = dict[str, tuple[int, ...]]
# No width below this is tried: a head count or a rounding multiple rarely divides less.
MIN_CANDIDATE = 8


def scaled_widths(base: int, factors) -> list[int]:
    """The candidate widths ``base × factor`` that are whole numbers of at least MIN_CANDIDATE, in the
    factors' order: the analysis's small widths and the coordinate check's are both drawn from them."""
    return [int(base * f) for f in factors if base * f >= MIN_CANDIDATE and float(base * f).is_integer()]


class ShapeProbe:
    """Parameter shapes of the model built on the meta device, per width (cached; None: does not build)."""

    def __init__(self, knob: WidthKnob, target: str) -> None:
        self.knob, self.target = knob, target
        self._cache: dict[int, Shapes | None] = {}

    def shapes(self, width: int) -> Shapes | None:
        if width not in self._cache:
            try:
                with quiet():
                    model = build_at(self.knob, width, target=self.target, device="meta")
                self._cache[width] = {n: tuple(p.shape) for n, p in model.named_parameters()}
            except MulintError:
                self._cache[width] = None
        return self._cache[width]

    def off_proportion(self, widths: list[int]) -> str | None:
        """The first dimension that changes with width but does not grow in proportion to it across
        ``widths``, described; None when every changing dimension does (or the model does not build)."""
        widths = sorted(widths)
        built = {w: self.shapes(w) for w in widths}
        shapes = {w: s for w, s in built.items() if s is not None}
        if len(shapes) < len(built):
            return None
        far = self.shapes(FAR * widths[-1]) or {}  # a dimension held still by rounding here changes there
        for name, shape in shapes[widths[0]].items():
            found = [s.get(name) for s in (*shapes.values(), far)]
            seen = [s for s in found if s is not None and len(s) == len(shape)]
            for dim in range(len(shape)):
                if len({s[dim] for s in seen}) == 1:
                    continue  # does not change with width
                sizes = [shapes[w][name][dim] if len(shapes[w].get(name, ())) == len(shape) else None for w in widths]
                if any(
                    not _in_proportion(da, db, b / a)
                    for (a, da), (b, db) in zip(zip(widths, sizes), zip(widths[1:], sizes[1:]))
                ):
                    return _describe(name, dim, shapes, widths)
        return None


def _in_proportion(da: int | None, db: int | None, ratio: float) -> bool:
    return da is not None and db is not None and da > 0 and abs(db / da / ratio - 1) <= TOLERANCE


def _describe(name: str, dim: int, shapes: dict[int, Shapes], widths: list[int]) -> str:
    sizes = " -> ".join(str(shapes[w][name][dim]) if len(shapes[w].get(name, ())) > dim else "?" for w in widths)
    return (
        f"`{name}` dimension {dim} is {sizes} at widths {', '.join(map(str, widths))}, "
        "not in proportion to the width (a size rounded to a multiple?)"
    )


def proportional_widths(
    knob: WidthKnob,
    target: str,
    widths: list[int],
    *,
    fits: Callable[[int], bool],
    min_count: int,
    what: str,
    probe: ShapeProbe | None = None,
) -> tuple[list[int], list[str]]:
    """``widths``, or widths moved up by doublings (as many as fit ``fits``, at least ``min_count``)
    where every changing dimension grows in proportion to width; with a note saying which and why.
    ``widths`` unchanged, with a note, when no such widths fit. ``probe``: the caller's shapes of
    ``knob``, when it built the model at some of these widths already."""
    probe = probe or ShapeProbe(knob, target)
    problem = probe.off_proportion(widths)
    if problem is None:
        return widths, []
    for k in range(1, MAX_DOUBLINGS + 1):
        fitting = [w * 2**k for w in widths if fits(w * 2**k)]
        if len(fitting) < min_count:
            break
        if probe.off_proportion(fitting) is None:
            return fitting, [
                f"{what} moved up from {', '.join(map(str, widths))} to {', '.join(map(str, fitting))}: {problem}"
            ]
    return widths, [
        f"{what} {', '.join(map(str, widths))} kept though {problem}: no wider widths where every "
        "dimension grows in proportion fit in memory; exponents of parameters with that dimension "
        "may be off"
    ]
