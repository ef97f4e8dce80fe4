"""The dynamic coordinate check (MUP_REFERENCE §6): train a few steps at growing widths with the
same data and hyperparameters, and fit how much each layer's output moves against width.

In µP every slope stays near 0. A slope above the profile's ``blow_up`` means a layer's change grows
with width; below ``collapse``, that it stops learning as width grows. A failure that may not hold
(a layer that has not moved yet, a slope near its threshold) is judged again on a longer run with a
wider width before it is believed (``Extension``).

The results (LayerCurve, CoordResult) are plain data, importable without torch, so the `mulint coord`
parent reads its worker's result without importing torch; running the check is `mulint.coordcheck.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FACTORS = (0.5, 1, 2)  # the default widths, as multiples of the base width: they bracket it


def default_limits() -> tuple[float, float]:
    """The default profile's collapse and blow-up thresholds (mulint/profile_data/mup.toml's [coord])."""
    from mulint.profiles import load_profile

    coord = load_profile().coord
    return (coord["collapse"], coord["blow_up"])


@dataclass
class LayerCurve:
    name: str  # module path, or "output" for the model's output
    module_type: str
    judged: bool
    reason: str = ""  # why a layer is not judged
    change: dict[int, dict[int, float]] = field(default_factory=dict)  # step -> width -> mean |h_t - h_0|
    size: dict[int, dict[int, float]] = field(default_factory=dict)  # step -> width -> mean |h_t|
    slopes: dict[int, float | None] = field(default_factory=dict)  # step -> slope of change vs width
    status: str = "ok"  # "ok", "blow-up" or "collapse"
    shapes: dict[int, tuple[int, ...]] = field(default_factory=dict)  # width -> output shape

    @property
    def finite(self) -> bool:
        """No dimension of the output grows with width (logits, attention probabilities)."""
        return len(set(self.shapes.values())) == 1

    @property
    def slope(self) -> float | None:
        return self.slopes[max(self.slopes)] if self.slopes else None


@dataclass
class Extension:
    """How a run whose failures were doubtful was extended before judging, and why."""

    steps: tuple[int, int]  # before, after
    widths: tuple[list[int], list[int]]
    reasons: dict[str, str]  # layer -> why its failure was doubtful

    def describe(self) -> str:
        (before, after), added = self.steps, [w for w in self.widths[1] if w not in self.widths[0]]
        names = list(self.reasons.items())
        why = "; ".join(f"`{n}`: {r}" for n, r in names[:3]) + (
            f"; and {len(names) - 3} more" if len(names) > 3 else ""
        )
        wider = f" and width {', '.join(map(str, added))} added" if added else " (no wider width fits in memory)"
        return (
            f"run extended before judging: {after} steps instead of {before}{wider}, because the failures "
            f"at {before} steps were doubtful ({why})"
        )

    def as_dict(self) -> dict:
        return {"steps": list(self.steps), "widths": [list(w) for w in self.widths], "reasons": self.reasons}


@dataclass
class CoordResult:
    target: str
    widths: list[int]
    steps: int
    seeds: int
    optimizer: str
    layers: list[LayerCurve]
    device: str = "cpu"
    shrunk: list[str] = field(default_factory=list)  # what the trained models have less of than the real one
    notes: list[str] = field(default_factory=list)
    # the collapse and blow-up thresholds the verdict used
    limits: tuple[float, float] = field(default_factory=default_limits)
    extended: Extension | None = None

    @property
    def verdict(self) -> str:
        return "fail" if any(l.status != "ok" for l in self.layers if l.judged) else "pass"


# The depth coordinate check (MUP_REFERENCE §8): what it measures against the depth L, the width fixed,
# and the log-log slope each has in a model whose branches are scaled with depth (Adam, α in [½, 1]).
DEPTH_MEASURES = {
    # of the final stream after the steps, over its size at init where that falls
    "stream_change": ("residual stream's change", 0.0),
    "block_change": (
        "a block's change in one step",
        -1.0,
    ),  # its contribution, its input held at the stream before the step
    "stream_init": ("residual stream at init", 0.0),  # the final stream's size
    "block_update": ("a block's relative update in one step", 0.0),  # rms of its weights' change over their size
}
DEPTH_FACTORS = (1, 2, 4)  # the default depths, as multiples of the first: half the base depth when it is 4 or more


@dataclass
class DepthMeasure:
    """One quantity of the depth coordinate check, at each depth, and how it scales with L."""

    key: str  # of DEPTH_MEASURES
    values: dict[int, float] = field(default_factory=dict)  # depth -> mean over seeds
    slope: float | None = None  # log-log slope against depth
    status: str = "ok"  # "ok", "blow-up", "collapse", "growing" (the stream at init) or "lazy"

    @property
    def description(self) -> str:
        return DEPTH_MEASURES[self.key][0]

    @property
    def expected(self) -> float:
        return DEPTH_MEASURES[self.key][1]


@dataclass
class DepthCoordResult:
    """`mulint coord --depths`: the same training at several depths, one width."""

    target: str
    depths: list[int]
    width: int
    steps: int
    seeds: int
    optimizer: str
    depth_knob: str  # e.g. "config.n_layer"
    blocks: str  # module path of the list of residual blocks, e.g. "transformer.h"
    measures: list[DepthMeasure]
    device: str = "cpu"
    shrunk: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # the depth thresholds the statuses used (the profile's [coord] depth_* keys)
    limits: dict[str, float] = field(default_factory=dict)
    lazy_fails: bool = False  # the profile makes lazy blocks a warning (completep), so they fail the check

    @property
    def verdict(self) -> str:
        failing = {"blow-up", "collapse", "growing", *(("lazy",) if self.lazy_fails else ())}
        return "fail" if any(m.status in failing for m in self.measures) else "pass"

    def measure(self, key: str) -> DepthMeasure:
        return next(m for m in self.measures if m.key == key)
