"""What the measured updates (mulint.analysis.updates) found, as plain numbers: per parameter and use,
the update norm at each width, and how it was measured (step, batch, settings). No torch here."""

from __future__ import annotations

from dataclasses import dataclass, field

from mulint.exponents import fit_exponent

WARM_STEPS = 1
MAX_WARM_STEPS = 4
MEASURED_STEP = WARM_STEPS + 1


@dataclass
class UpdateNumbers:
    step: int = MEASURED_STEP
    widths: list[int] = field(default_factory=list)
    # param -> index of the use in ParamFacts.uses -> width -> RMS→RMS norm of ΔW (RMS of entries for vectors)
    norms: dict[str, dict[int, dict[int, float]]] = field(default_factory=dict)
    no_grad: set[str] = field(default_factory=set)  # no gradient at the measured step, at some width
    not_finite: set[str] = field(default_factory=set)  # an update with inf or nan entries, at some width
    settings: dict[str, str] = field(default_factory=dict)  # param -> e.g. "adjust_lr_fn='original'"
    schedulers: list[str] = field(default_factory=list)  # LR schedulers the factory returned, stepped too
    failure: str = ""  # why nothing could be measured
    # Families judged by exact lr tables (the profile's `exact`): their steps need no measuring, and
    # a setup made only of them is not stepped at all. () measures every optimizer.
    exact_families: tuple[str, ...] = ("adam", "sgd")
    warm_steps: int | None = None  # decided at the first width measured, kept for the others
    skipped: str = ""  # the optimizers that moved nothing at step 1, when more warm steps were taken
    self_tuned: list[str] = field(default_factory=list)  # e.g. "Prodigy (d = 1e-06 after step 2, from d0 = 1e-06)"
    self_tuned_params: set[str] = field(default_factory=set)  # stepped by one: measured, not judged
    # stepped by the Adam-style path of an orthogonalising (Muon-like) optimizer; see ``unorthogonalised``
    unorthogonalised: set[str] = field(default_factory=set)
    zero_started: list[str] = field(default_factory=list)  # matrices that left exactly zero during the warm steps
    batch: str = ""  # what the mixing optimizers' updates were measured on, e.g. "1024 tokens"
    small_batch: str = ""  # and the per-coordinate optimizers', e.g. "16 tokens"
    large_tokens: int = 0
    per_coordinate: set[str] | frozenset[str] | None = (
        None  # parameters stepped per coordinate, probed at the first width
    )
    mixing: set[str] = field(default_factory=set)  # the judged others: measured on the large batch
    # (param, use index) -> (exponent on this batch, on the larger one): measured twice, near a verdict's edge
    confirmed: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)
    larger_batch: str = ""


def fitted(numbers: UpdateNumbers, by_width: dict[int, float]) -> float | None:
    """The width exponent of a use's norms, measured at every width and never zero; else None."""
    complete = len(by_width) == len(numbers.widths) and all(v > 0 for v in by_width.values())
    return fit_exponent(by_width) if complete else None
