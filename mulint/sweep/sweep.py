"""A transfer sweep: rounds of trials planned from what the previous rounds measured, run by an
executor, kept in the trial store, then judged.

Round 1 trains the coarse grid (every second octave around the user's lr) at every width and seed;
each later round asks every width for the neighbours of its optimum, or more grid beyond an optimum on
the edge (mulint.sweep.grid), and trains what any width asks for at every width, until no width asks
for more or ``MAX_ROUNDS`` is reached. A trial
already in the store is not run again. Torch-free: the executor runs the trials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from statistics import fmean

from mulint.sweep.grid import coarse, next_points
from mulint.sweep.store import TrialKey, TrialResult, TrialStore
from mulint.sweep.verdict import Curve, Verdict, judge

MAX_ROUNDS = 5


@dataclass(frozen=True)
class Plan:
    sweep: str  # the store's key for this target and options
    widths: tuple[int, ...]
    seeds: int
    steps: int
    centre: float  # log2 of the user's lr, rounded

    def keys(self, points: dict[int, list[float]]) -> list[TrialKey]:
        return [
            TrialKey(self.sweep, w, x, s, self.steps)
            for w in self.widths
            for x in points.get(w, [])
            for s in range(self.seeds)
        ]


# An executor runs trials and yields each as it finishes (in any order).
Executor = Callable[[list[TrialKey]], Iterator[tuple[TrialKey, TrialResult]]]


@dataclass
class SweepResult:
    plan: Plan
    results: dict[TrialKey, TrialResult] = field(default_factory=dict)
    rounds: int = 0
    reused: int = 0  # trials found in the store

    def curves(self) -> list[Curve]:
        out = []
        for w in self.plan.widths:
            xs = sorted({k.log2_value for k in self.results if k.width == w})
            rows = tuple(
                tuple(self.results[TrialKey(self.plan.sweep, w, x, s, self.plan.steps)].metric for x in xs)
                for s in range(self.plan.seeds)
            )
            out.append(Curve(w, tuple(xs), rows))
        return out

    def verdict(self, noun: str = "lr") -> Verdict:
        return judge(self.curves(), noun=noun)

    def diverged(self) -> int:
        return sum(r.diverged for r in self.results.values())


def run_sweep(
    plan: Plan,
    execute: Executor,
    store: TrialStore | None = None,
    *,
    on_round: Callable[[int, int], None] = lambda round_no, trials: None,
    on_trial: Callable[[TrialKey, TrialResult, bool], None] = lambda key, result, reused: None,
) -> SweepResult:
    """Run the plan's rounds (see the module docstring). ``on_round(n, trials_to_run)`` before each
    round; ``on_trial(key, result, reused)`` after each trial."""
    result = SweepResult(plan)
    points: dict[int, list[float]] = {w: coarse(plan.centre) for w in plan.widths}
    while points and result.rounds < MAX_ROUNDS:
        result.rounds += 1
        keys = [k for k in plan.keys(points) if k not in result.results]
        todo = []
        for key in keys:
            found = store.get(key) if store is not None else None
            if found is None:
                todo.append(key)
                continue
            result.results[key] = found
            result.reused += 1
            on_trial(key, found, True)
        on_round(result.rounds, len(todo))
        for key, trial in execute(todo):
            result.results[key] = trial
            if store is not None:
                store.put(key, trial)
            on_trial(key, trial, False)
        # What any width asks for, every width trains: the curves share their points near every
        # optimum, so each width's loss at another's best lr is measured, not interpolated.
        wanted = sorted({x for w in plan.widths for x in next_points(_means(result, w), plan.centre)})
        points = {w: wanted for w in plan.widths} if wanted else {}
    return result


def _means(result: SweepResult, width: int) -> dict[float, float]:
    by_lr: dict[float, list[float]] = {}
    for key, trial in result.results.items():
        if key.width == width:
            by_lr.setdefault(key.log2_value, []).append(trial.metric)
    return {x: fmean(v) for x, v in by_lr.items()}


def in_process(run_one: Callable[[TrialKey], TrialResult]) -> Executor:
    """The simplest executor: each trial here, one after the other."""

    def execute(keys: Iterable[TrialKey]) -> Iterator[tuple[TrialKey, TrialResult]]:
        for key in keys:
            yield key, run_one(key)

    return execute
