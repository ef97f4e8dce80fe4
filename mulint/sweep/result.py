"""What a transfer sweep found: plain data (no torch), so it crosses the worker pipe as JSON and the
reporters read it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mulint.sweep.verdict import Curve, Optimum, Verdict


@dataclass
class TransferResult:
    target: str
    optimizer: str
    widths: list[int]
    steps: int
    seeds: int
    device: str
    task: str
    curves: list[Curve]
    verdict: Verdict
    trials: int = 0  # trials the verdict rests on
    reused: int = 0  # of them, found in the trial store
    diverged: int = 0
    rounds: int = 0
    seconds: float = 0.0
    shrunk: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    knob: str = "lr"  # what the sweep varied (mulint.sweep.knobs): the curves' x is log2 of its value

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TransferResult:
        curves = [Curve(c["width"], tuple(c["log2_values"]), tuple(tuple(r) for r in c["losses"])) for c in d["curves"]]
        v = dict(d["verdict"])
        v["optima"] = [Optimum(o["log2_value"], o["on_edge"], o["refined"], tuple(o["interval"])) for o in v["optima"]]
        v["slope_interval"] = tuple(v["slope_interval"])
        return cls(**{**d, "curves": curves, "verdict": Verdict(**v)})
