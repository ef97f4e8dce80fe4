"""The sweep's rounds on a simulated trainer: coarse grid, refinement, edge extension, resuming."""

import math

from mulint.sweep.store import TrialResult, TrialStore
from mulint.sweep.sweep import Plan, in_process, run_sweep


def simulated(best_of):
    """A trainer whose final loss is a bowl in log2 lr around best_of(width), lower for wider models."""
    calls = []

    def run_one(key):
        calls.append(key)
        loss = 3.0 - 0.1 * math.log2(key.width) + 0.05 * (key.log2_value - best_of(key.width)) ** 2 + 0.001 * key.seed
        return TrialResult((loss,) * 4, 6.0, False, 0.0)

    return run_one, calls


def plan(**kw):
    return Plan(**{"sweep": "t", "widths": (64, 128, 256), "seeds": 2, "steps": 4, "centre": -10.0, **kw})


def test_a_still_optimum_is_found_between_grid_points_and_passes():
    run_one, calls = simulated(lambda w: -9.3)
    result = run_sweep(plan(), in_process(run_one))
    v = result.verdict()
    assert v.status == "PASS"
    assert all(abs(o.log2_value + 9.3) < 0.05 for o in v.optima)
    xs = sorted({k.log2_value for k in calls if k.width == 64})
    assert xs == [-14.0, -12.0, -11.0, -10.0, -9.0, -8.0, -6.0]  # coarse, then the neighbours of -10 and -9
    assert result.rounds >= 2 and len(calls) == len(set(calls))


def test_an_sp_drift_beyond_the_coarse_grid_is_followed_and_fails():
    run_one, calls = simulated(lambda w: -5.0 - 2 * math.log2(w / 64))  # 2 octaves per doubling, off-grid
    result = run_sweep(plan(), in_process(run_one))
    v = result.verdict()
    assert v.status == "FAIL"
    assert not any(o.on_edge for o in v.optima)
    assert max(k.log2_value for k in calls if k.width == 64) >= -5.0  # extended beyond the coarse edge (-6)


def test_a_resumed_sweep_runs_only_what_is_missing(tmp_path):
    store_path = tmp_path / "trials.jsonl"
    run_one, first_calls = simulated(lambda w: -9.3)
    first = run_sweep(plan(), in_process(run_one), TrialStore(store_path))
    run_one, second_calls = simulated(lambda w: -9.3)
    again = run_sweep(plan(), in_process(run_one), TrialStore(store_path))
    assert second_calls == [] and again.reused == len(first.results)
    assert again.verdict().optima == first.verdict().optima
    more_seeds = run_sweep(plan(seeds=3), in_process(run_one), TrialStore(store_path))
    assert {k.seed for k in second_calls} == {2} and more_seeds.reused == len(first.results)
