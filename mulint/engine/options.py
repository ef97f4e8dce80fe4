"""What a job in a worker is told: one frozen record, built from the run's `Settings` where the job is
made, sent with the job to its worker and read there as attributes; its plain form (`as_key`) keys
the result cache.

One record for check, inspect and coord jobs: each sets what its command has (a check job its rule
selection, a coord job its training run) and leaves the rest at the defaults, which are the analysis's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mulint.reading.functions import Function, FunctionRef


@dataclass(frozen=True)
class JobOptions:
    """How a job analyses its target; the defaults are the analysis's own."""

    widths: tuple[int, ...] | None = None  # None: the model's own width and twice it
    width_arg: str | None = None
    optimizer: Function | None = None  # None: the one found as `check` finds it
    lr_scale_keys: tuple[str, ...] = ()
    lr_scale: str = "auto"
    profile: str = "mup"
    depth_arg: str | None = None  # --depth-arg: the argument or config field that sets the number of blocks
    depth: bool = True  # False (--no-depth): no depth analysis
    # check
    coord: bool = False  # also run the coordinate check (MU9xx)
    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] | None = None
    # coord: the training run
    steps: int = 3
    seeds: int = 2
    lr: float = 1e-3  # of the default Adam, when the target has no optimizer
    batch: FunctionRef | None = None
    device: str | None = None
    depths: tuple[int, ...] | None = None  # coord --depths: the depth check at these depths, the width fixed
    # transfer: the sweep's set-up (widths, lr, device and optimizer above) and the trials of this job
    data: FunctionRef | None = None  # --data: the user's batches
    knob: str = "lr"  # --knob: what the sweep varies (mulint.sweep.knobs)
    trials: tuple = ()  # mulint.sweep.store.TrialKey records to train

    @classmethod
    def for_check(cls, settings) -> JobOptions:
        """A `check` job's options: the analysis the rules judge, and which rules."""
        return cls(**_analysis(settings), coord=settings.coord, select=settings.select, ignore=settings.ignore)

    @classmethod
    def for_inspect(cls, settings) -> JobOptions:
        """`inspect` shows the numbers `check` judges: the same analysis options."""
        return cls(**_analysis(settings))

    @classmethod
    def for_coord(
        cls,
        settings,
        *,
        widths,
        steps: int,
        seeds: int,
        lr: float,
        batch: FunctionRef | None,
        device: str | None,
        depths=None,
    ) -> JobOptions:
        """A `coord` job's options: its training run, at `widths` (None: coord's own choice, as under
        `check --coord`; the settings' widths are those `check` builds at), or at `depths` for the depth
        check."""
        return cls(
            **{**_analysis(settings), "widths": None if widths is None else tuple(widths)},
            steps=steps,
            seeds=seeds,
            lr=lr,
            batch=batch,
            device=device,
            depths=None if depths is None else tuple(depths),
        )

    @classmethod
    def for_transfer(
        cls, settings, *, widths, lr: float, data: FunctionRef | None, device: str | None, knob: str = "lr"
    ) -> JobOptions:
        """A transfer job's options: the sweep's set-up; each trials job adds its trials."""
        return cls(
            **{**_analysis(settings), "widths": None if widths is None else tuple(widths)},
            lr=lr,
            data=data,
            device=device,
            knob=knob,
        )

    def sweep_spec(self, target: str):
        """The transfer sweep's set-up these options describe (mulint.sweep.runner.SweepSpec)."""
        from mulint.sweep.runner import SweepSpec

        return SweepSpec(
            target=target,
            optimizer=self.optimizer,
            lr=self.lr,
            width_arg=self.width_arg,
            device=self.device or "cpu",
            lr_scale_keys=self.lr_scale_keys,
            lr_scale=self.lr_scale,
            data=self.data,
            knob=self.knob,
        )

    def as_key(self) -> dict:
        """The options as plain JSON values, for the result cache's key."""
        return dataclasses.asdict(self)


def _analysis(settings) -> dict:
    return {
        "widths": settings.widths,
        "width_arg": settings.width_arg,
        "optimizer": settings.optimizer,
        "lr_scale_keys": settings.lr_scale_keys,
        "lr_scale": settings.lr_scale,
        "profile": settings.profile,
        "depth_arg": settings.depth_arg,
        "depth": settings.depth,
    }
