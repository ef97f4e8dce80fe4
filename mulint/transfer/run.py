"""Running a transfer sweep on one target inside a worker: set the model up once, plan the widths,
run the rounds of trials, judge."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable

from mulint.analysis.structure import Structure
from mulint.coordcheck.plan import fits
from mulint.errors import MulintError
from mulint.transfer.grid import centre
from mulint.transfer.result import TransferResult
from mulint.transfer.store import TrialKey, TrialResult, TrialStore
from mulint.transfer.sweep import Plan, in_process, run_sweep
from mulint.transfer.trial import SweepModel, prepare, train_one

FACTORS = (1, 2, 4)
STEPS = 200
SEEDS = 3


def choose_widths(sweep: SweepModel, requested: list[int] | None) -> list[int]:
    if requested:
        if len(requested) < 2:
            raise MulintError(
                "a transfer sweep needs at least two widths",
                target=sweep.label,
                step="transfer",
                hint="pass --widths with two or more, e.g. --widths 128,256,512",
            )
        return sorted(requested)
    base = sweep.knob.base
    widths = [base * f for f in FACTORS if fits(sweep.knob, base * f, sweep.label)]
    if len(widths) < 2:
        raise MulintError(
            f"the model is too large to train at {base} and {2 * base} here",
            target=sweep.label,
            step="transfer",
            hint="pass smaller --widths",
        )
    return widths


def sweep_key(code_digest: str, options: dict) -> str:
    """The store's key for a target's sweep: its code and every option that changes a trial."""
    text = json.dumps({"code": code_digest, **options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def run_transfer(
    target,
    structure: Structure,
    *,
    code_digest: str,
    widths: list[int] | None = None,
    steps: int = STEPS,
    seeds: int = SEEDS,
    lr: float = 1e-3,
    optimizer: str | None = None,
    resolve_optimizer=None,
    device: str = "cpu",
    store: TrialStore | None = None,
    progress: Callable[[str, int, int], None] = lambda kind, done, total: None,
) -> TransferResult:
    start = time.perf_counter()
    sweep = prepare(target, structure, optimizer=optimizer, resolve_optimizer=resolve_optimizer, lr=lr, device=device)
    widths = choose_widths(sweep, widths)
    options = {
        "widths": widths,
        "steps": steps,
        "lr": lr,
        "optimizer": sweep.optimizer_label,
        "device": device,
        "task": sweep.task.description,
    }
    plan = Plan(sweep_key(code_digest, options), tuple(widths), seeds, steps, centre(sweep.reference_lr))

    def run_one(key: TrialKey) -> TrialResult:
        return train_one(sweep, key.width, key.log2_lr, key.seed, key.steps)

    result = run_sweep(
        plan,
        in_process(run_one),
        store,
        on_round=lambda n, todo: progress("round", n, todo),
        on_trial=lambda key, trial, reused: progress("trial", 1, 0),
    )
    verdict = result.verdict()
    if not all(math.isfinite(o.log2_lr) for o in verdict.optima):
        raise MulintError("no finite optimum", target=target.label, step="transfer")
    return TransferResult(
        target=target.label,
        optimizer=sweep.optimizer_label,
        widths=widths,
        steps=steps,
        seeds=seeds,
        device=device,
        task=sweep.task.description,
        curves=result.curves(),
        verdict=verdict,
        trials=len(result.results),
        reused=result.reused,
        diverged=result.diverged(),
        rounds=result.rounds,
        seconds=time.perf_counter() - start,
        notes=sweep.notes,
    )
