"""`mulint transfer`'s default executor: the sweep's trials in mulint's isolated workers, as many at once
as ``--jobs`` (threads shared between them), each worker setting the target up once and sending every
trial back as it finishes, so the parent stores it at once and an interrupted sweep loses only the
trials that were running. Each trial has the whole ``--timeout``.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator
from typing import Any

from mulint.engine.isolation import Job, Limits, run_jobs
from mulint.engine.options import JobOptions
from mulint.errors import MulintError
from mulint.report.summary import quoted_output
from mulint.sweep.store import TrialKey, TrialResult


class LocalWorkers:
    def __init__(self, target: str, options: JobOptions, limits: Limits) -> None:
        self.target, self.options, self.limits = target, options, limits

    def describe(self, widths: list[int] | None = None) -> dict:
        options = dataclasses.replace(self.options, widths=None if widths is None else tuple(widths))
        [outcome] = run_jobs([Job("transfer_describe", self.target, options)], dataclasses.replace(self.limits, jobs=1))
        _raise(outcome)
        return {**outcome.value["describe"], "deps": outcome.value.get("deps", [])}

    def __call__(self, keys: list[TrialKey]) -> Iterator[tuple[TrialKey, TrialResult]]:
        if not keys:
            return
        n = max(1, min(self.limits.jobs, len(keys)))
        # Widest first, dealt round the workers: each gets a like share of the work (a step costs ~width²).
        chunks: list[list[TrialKey]] = [[] for _ in range(n)]
        for i, key in enumerate(sorted(keys, key=lambda k: -k.width)):
            chunks[i % n].append(key)
        jobs = [Job("transfer_trials", self.target, dataclasses.replace(self.options, trials=tuple(c))) for c in chunks]
        finished: queue.Queue = queue.Queue()
        outcomes: list = []

        def run() -> None:
            try:
                outcomes.extend(run_jobs(jobs, self.limits, on_trial=lambda job, trial: finished.put(trial)))
            except BaseException as exc:  # Ctrl-C, a signal: raised again in the caller's thread
                outcomes.append(exc)
            finally:
                finished.put(None)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        seen: set[TrialKey] = set()
        while (item := finished.get()) is not None:
            seen.add(item[0])
            yield item
        thread.join()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            _raise(outcome)
        missing = [k for k in keys if k not in seen]
        if missing:
            raise MulintError(f"{len(missing)} trials came back without a result", target=self.target, step="transfer")

    def close(self) -> None:
        pass


def _raise(outcome) -> None:
    if outcome.error is not None:
        error = outcome.error
        raise MulintError(error.message + quoted_output(error), target=error.target, step=error.step, hint=error.hint)


class _DepsRecorded:
    """An executor whose set-up's dependencies (the files the target's code read) are kept for the
    store's key; a Ray executor names none, so only the target's own file keys its trials."""

    def __init__(self, executor) -> None:
        self.executor = executor
        self.deps: list[str] = []

    def describe(self, widths: list[int] | None = None) -> dict:
        info = dict(self.executor.describe(widths))
        self.deps.extend(info.pop("deps", []))
        return info

    def __call__(self, keys):
        return self.executor(keys)

    def close(self) -> None:
        self.executor.close()


def store_for(target: str):
    """The trial store of a target's sweeps, in the result cache's folder (one file per target)."""
    import hashlib

    from mulint.engine.cache import cache_root
    from mulint.sweep.store import TrialStore

    name = hashlib.sha256(target.encode()).hexdigest()[:16]
    return TrialStore(cache_root() / "transfer" / f"{name}.jsonl")


def code_digest(paths: list[str]) -> str:
    """The content of every file a sweep's trials depend on (the target's own and what it imported),
    mulint's code and the libraries' versions: a changed file never reuses a stored trial."""
    import hashlib
    from pathlib import Path

    from mulint.engine.cache import environment

    h = hashlib.sha256(environment().encode())
    for path in sorted(set(paths)):
        h.update(path.encode())
        try:
            h.update(hashlib.sha256(Path(path).read_bytes()).digest())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


def sweep_target(
    target: str,
    options: JobOptions,
    limits: Limits,
    *,
    steps: int,
    seeds: int,
    executor: str = "local",
    ray_address: str | None = None,
    gpus_per_trial: float = 0.0,
    use_store: bool = True,
    minutes: float | None = None,
    on_plan=lambda info: None,
    on_round=lambda n, todo: None,
    on_trial=lambda key, trial, reused: None,
):
    """One target's transfer sweep (mulint.sweep.run) on the chosen executor, its trials stored;
    ``minutes``: the default widths' time budget (mulint.sweep.budget)."""
    from mulint.sweep.budget import DEFAULT_MINUTES
    from mulint.sweep.run import run_transfer

    spec = options.sweep_spec(target)
    run_on: Any
    if executor == "ray":
        from mulint.sweep.executors import RayExecutor

        run_on = RayExecutor(spec, address=ray_address, gpus_per_trial=gpus_per_trial)
        parallel = len(run_on.actors)
    else:
        run_on = LocalWorkers(target, options, limits)
        parallel = limits.jobs
    recorded = _DepsRecorded(run_on)
    try:
        store = store_for(target) if use_store else None
        return run_transfer(
            spec,
            recorded,
            code_digest=lambda: code_digest([target.rsplit(":", 1)[0], *recorded.deps]),
            widths=None if options.widths is None else list(options.widths),
            steps=steps,
            seeds=seeds,
            store=store,
            parallel=parallel,
            minutes=DEFAULT_MINUTES if minutes is None else minutes,
            on_plan=on_plan,
            on_round=on_round,
            on_trial=on_trial,
        )
    finally:
        run_on.close()
