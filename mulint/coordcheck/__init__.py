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
