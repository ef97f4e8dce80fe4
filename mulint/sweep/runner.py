"""The unit of work every executor runs: one target's trials, set up once where they run.

A `TrialRunner` imports the target, reads its structure and builds the sweep's model setup on first
use, then trains trials one at a time. mulint's own workers, Ray actors and the Python API each hold
one per process, so a sweep pays the set-up once per worker, not once per trial.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mulint.reading.functions import Function

if TYPE_CHECKING:
    from mulint.sweep.trial import SweepModel


@dataclass(frozen=True)
class SweepSpec:
    """Everything a worker needs to set a target's sweep up: plain data, so it pickles and travels."""

    target: str  # PATH:NAME or module:NAME
    optimizer: Function | None = None  # the user's optimizer factory (--optimizer); None: as `check` finds it
    lr: float = 1e-3
    width_arg: str | None = None
    device: str = "cpu"
    lr_scale_keys: tuple[str, ...] = ()
    lr_scale: str = "auto"
    data: Function | None = None  # the user's batch function (--data)
    knob: str = "lr"  # what the sweep varies (mulint.sweep.knobs)
    extra: dict[str, Any] = field(default_factory=dict)


class TrialRunner:
    def __init__(self, spec: SweepSpec, *, target=None) -> None:
        self.spec = spec
        self._target = target  # an already resolved target (the Python API), else imported from spec
        self._sweep: SweepModel | None = None

    @property
    def sweep(self) -> SweepModel:
        if self._sweep is None:
            from mulint.analysis.structure import analyse_structure
            from mulint.reading.functions import resolve_function
            from mulint.reading.targets import parse_target, resolve
            from mulint.sweep.trial import prepare

            target = self._target or resolve(parse_target(self.spec.target), allow_exec=True)[0]
            structure = analyse_structure(target, width_arg=self.spec.width_arg)
            self._sweep = prepare(
                target,
                structure,
                optimizer=self.spec.optimizer,
                lr=self.spec.lr,
                device=self.spec.device,
                lr_scale_keys=self.spec.lr_scale_keys,
                lr_scale=self.spec.lr_scale,
                data=resolve_function(self.spec.data) if self.spec.data is not None else None,
                swept=self.spec.knob,
            )
        return self._sweep

    def describe(self, widths: list[int] | None = None) -> dict:
        """What the parent plans with: the widths asked for (else every width a default sweep may
        pick from), the lr the grid centres on, labels, notes, and the seconds one training step takes
        at each width (for the default widths and the estimate printed before the sweep)."""
        from mulint.sweep.trial import choose_widths, sizes, step_times

        s = self.sweep
        chosen = choose_widths(s, widths)
        counts = sizes(s, chosen)  # each width built once on the meta device, for both uses below
        return {
            "target": s.label,
            "widths": chosen,
            "reference_lr": s.reference_lr,
            "base_width": s.knob.base,
            "optimizer": s.optimizer_label,
            "task": s.task.description,
            "notes": list(s.notes),
            "shrunk": list(s.shrunk),
            "step_seconds": step_times(s, counts, requested=bool(widths)),
            "sizes": counts,  # parameters per width: what the default widths are picked by
            "positions": s.positions,
        }

    def run(self, key: dict) -> dict:
        from mulint.sweep.trial import train_one

        result = train_one(self.sweep, key["width"], key["log2_value"], key["seed"], key["steps"])
        return asdict(result)
