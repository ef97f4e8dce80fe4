"""A transfer sweep from the parent's side: ask the executor to set the target up and say what it
trains, plan the widths and the grid, run the rounds, judge. Torch-free: the executor's workers train.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict

from mulint.sweep.budget import DEFAULT_MINUTES, pick_widths
from mulint.sweep.grid import centre
from mulint.sweep.knobs import knob_named
from mulint.sweep.result import TransferResult
from mulint.sweep.store import TrialKey, TrialResult, TrialStore
from mulint.sweep.sweep import Plan, run_sweep

STEPS = 200
SEEDS = 3


def sweep_key(code_digest: str, options: dict) -> str:
    """The store's key for a target's sweep: its code and every option that changes a trial."""
    text = json.dumps({"code": code_digest, **options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def run_transfer(
    spec,
    executor,
    *,
    code_digest: str | Callable[[], str],
    widths: list[int] | None = None,
    steps: int = STEPS,
    seeds: int = SEEDS,
    store: TrialStore | None = None,
    parallel: int = 1,
    minutes: float = DEFAULT_MINUTES,
    on_plan: Callable[[dict], None] = lambda info: None,
    on_round: Callable[[int, int], None] = lambda n, todo: None,
    on_trial: Callable[[TrialKey, TrialResult, bool], None] = lambda key, trial, reused: None,
) -> TransferResult:
    """``executor`` (mulint.sweep.executors) sets the target up once per worker and trains trials,
    ``parallel`` at once; without ``widths``, three are picked whose training fits about ``minutes``
    (mulint.sweep.budget). ``on_plan`` gets what the executor said (widths, lr, task, a time per step)
    before any trial runs."""
    start = time.perf_counter()
    info = executor.describe(widths)
    if widths is None:
        seconds = {int(w): t for w, t in info["step_seconds"].items()}
        widths, note = pick_widths(
            {int(w): n for w, n in info["sizes"].items()},
            info["base_width"],
            positions=info["positions"],
            steps=steps,
            seeds=seeds,
            parallel=parallel,
            minutes=minutes,
        )
        info = {
            **info,
            "widths": widths,
            "step_seconds": {w: seconds[w] for w in widths},
            "notes": [*info.get("notes", []), *([note] if note else [])],
        }
    widths = info["widths"]
    options = {
        "spec": asdict(spec),
        "widths": widths,
        "steps": steps,
        "optimizer": info["optimizer"],
        "task": info["task"],
    }
    # The code's digest after the set-up: the executor then knows which files the target's code read.
    digest = code_digest() if callable(code_digest) else code_digest
    knob = knob_named(spec.knob)
    middle = 0.0 if knob.relative else centre(info["reference_lr"])  # a relative knob centres on the model's own
    plan = Plan(sweep_key(digest, options), tuple(widths), seeds, steps, middle)
    on_plan({**info, "plan": plan})
    result = run_sweep(plan, executor, store, on_round=on_round, on_trial=on_trial)
    return TransferResult(
        knob=knob.name,
        target=info["target"],
        optimizer=info["optimizer"],
        widths=list(widths),
        steps=steps,
        seeds=seeds,
        device=spec.device,
        task=info["task"],
        curves=result.curves(),
        verdict=result.verdict(knob.noun),
        trials=len(result.results),
        reused=result.reused,
        diverged=result.diverged(),
        rounds=result.rounds,
        seconds=time.perf_counter() - start,
        shrunk=info.get("shrunk", []),
        notes=info.get("notes", []),
    )
