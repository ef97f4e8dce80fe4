"""The unit of work every executor runs: one target's trials, set up once where they run.

A `TrialRunner` imports the target, reads its structure and builds the sweep's model setup on first
use, then trains trials one at a time. mulint's own workers, Ray actors and the Python API each hold
one per process, so a sweep pays the set-up once per worker, not once per trial.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SweepSpec:
    """Everything a worker needs to set a target's sweep up: plain data, so it pickles and travels."""

    target: str  # PATH:NAME or module:NAME
    optimizer: str | None = None  # PATH:NAME of the user's optimizer factory
    lr: float = 1e-3
    width_arg: str | None = None
    device: str = "cpu"
    lr_scale_keys: tuple[str, ...] = ()
    lr_scale: str = "auto"
    data: str | None = None  # PATH:NAME of the user's batch function (--data)
    extra: dict[str, Any] = field(default_factory=dict)


class TrialRunner:
    def __init__(self, spec: SweepSpec, *, target=None, resolve_optimizer=None, data=None) -> None:
        self.spec = spec
        self._data = data  # (function, label): the Python API's data_fn
        self._target = target  # an already resolved target (the Python API), else imported from spec
        self._resolve_optimizer = resolve_optimizer
        self._sweep = None

    @property
    def sweep(self):
        if self._sweep is None:
            from mulint.analysis.model import _resolve_function
            from mulint.analysis.structure import analyse_structure
            from mulint.reading.targets import parse_target, resolve
            from mulint.transfer.trial import prepare

            target = self._target or resolve(parse_target(self.spec.target), allow_exec=True)[0]
            structure = analyse_structure(target, width_arg=self.spec.width_arg)
            self._sweep = prepare(
                target,
                structure,
                optimizer=self.spec.optimizer,
                resolve_optimizer=self._resolve_optimizer or _resolve_function,
                lr=self.spec.lr,
                device=self.spec.device,
                lr_scale_keys=self.spec.lr_scale_keys,
                lr_scale=self.spec.lr_scale,
                data=_resolve_function(self.spec.data) if self.spec.data else self._data,
            )
        return self._sweep

    def describe(self) -> dict:
        """What the parent plans with: the lr the grid centres on, the base width, labels and notes."""
        s = self.sweep
        return {
            "reference_lr": s.reference_lr,
            "base_width": s.knob.base,
            "optimizer": s.optimizer_label,
            "task": s.task.description,
            "notes": list(s.notes),
        }

    def run(self, key: dict) -> dict:
        from mulint.transfer.trial import train_one

        result = train_one(self.sweep, key["width"], key["log2_lr"], key["seed"], key["steps"])
        return asdict(result)
