"""Where a sweep's trials run. Every executor takes the same work unit (mulint.sweep.runner) and
yields each trial as it finishes, so the sweep's planning, store and verdict never know which one ran.

- in-process: the Python API and tests; one trial after another, here.
- ray: every trial a call on a Ray actor with its own resources (``gpus_per_trial``), one actor per
  slot so the model set-up is paid once per slot; joins the cluster at ``address`` (or the one
  ``RAY_ADDRESS`` names) and starts a local Ray instance only when neither is given.
mulint's own isolated workers are the default; they live with the engine (mulint.engine), which
starts them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from mulint.errors import MulintError
from mulint.sweep.runner import SweepSpec, TrialRunner
from mulint.sweep.store import TrialKey, TrialResult


class InProcess:
    def __init__(self, runner: TrialRunner) -> None:
        self.runner = runner

    def describe(self, widths: list[int] | None = None) -> dict:
        return self.runner.describe(widths)

    def __call__(self, keys: list[TrialKey]) -> Iterator[tuple[TrialKey, TrialResult]]:
        for key in keys:
            yield key, TrialResult.from_dict(self.runner.run(asdict(key)))

    def close(self) -> None:
        pass


class RayExecutor:
    """Trials on Ray actors (see the module docstring)."""

    def __init__(
        self,
        spec: SweepSpec,
        *,
        address: str | None = None,
        slots: int | None = None,
        gpus_per_trial: float = 0.0,
        cpus_per_trial: float = 1.0,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise MulintError(
                "--executor ray needs Ray", step="transfer", hint="pip install 'mulint[ray]' (or pip install ray)"
            ) from None
        self.ray = ray
        self.started_here = False
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS")
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    # A local instance for this sweep only: no dashboard, nothing listening beyond it.
                    ray.init(include_dashboard=False, log_to_driver=False, num_cpus=os.cpu_count())
                    self.started_here = True
            except Exception as exc:
                raise MulintError(
                    f"could not join Ray at {address or 'a new local instance'}: {exc}",
                    step="transfer",
                    hint="check --ray-address / RAY_ADDRESS and that the cluster runs",
                ) from None
        total = ray.cluster_resources()
        if gpus_per_trial > total.get("GPU", 0):
            self.close()
            raise MulintError(
                f"--gpus-per-trial {gpus_per_trial:g} but the Ray cluster has {total.get('GPU', 0):g} GPUs",
                step="transfer",
                hint="lower --gpus-per-trial or add GPU nodes",
            )
        by_cpu = int(total.get("CPU", 1) // max(cpus_per_trial, 1e-9))
        by_gpu = int(total.get("GPU", 0) // gpus_per_trial) if gpus_per_trial else by_cpu
        n = max(1, min(slots or by_cpu, by_cpu, by_gpu))
        actor: Any = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial)(_RayRunner)
        self.actors: list[Any] = [actor.remote(spec) for _ in range(n)]

    def describe(self, widths: list[int] | None = None) -> dict:
        return dict(self.ray.get(self.actors[0].describe.remote(widths)))

    def __call__(self, keys: list[TrialKey]) -> Iterator[tuple[TrialKey, TrialResult]]:
        ray = self.ray
        pending: dict = {}
        queue = list(keys)
        idle = list(self.actors)
        while queue or pending:
            while queue and idle:
                key, actor = queue.pop(0), idle.pop()
                pending[actor.run.remote(asdict(key))] = (key, actor)
            done, _ = ray.wait(list(pending), num_returns=1)
            key, actor = pending.pop(done[0])
            idle.append(actor)
            try:
                data = ray.get(done[0])
            except Exception as exc:
                raise MulintError(
                    f"a trial failed on Ray (width {key.width}, lr 2^{key.log2_value:g}, seed {key.seed}): {exc}",
                    step="transfer",
                    hint="run the same sweep with --executor local to see the error",
                ) from None
            yield key, TrialResult.from_dict(data)

    def close(self) -> None:
        for actor in getattr(self, "actors", []):
            self.ray.kill(actor)
        if self.started_here:
            self.ray.shutdown()
            self.started_here = False


class _RayRunner:
    """A Ray actor around a TrialRunner (defined here so Ray ships it by reference to mulint)."""

    def __init__(self, spec: SweepSpec) -> None:
        import torch

        torch.set_num_threads(1)
        self.runner = TrialRunner(spec)

    def describe(self, widths: list[int] | None = None) -> dict:
        return self.runner.describe(widths)

    def run(self, key: dict) -> dict:
        return self.runner.run(key)
