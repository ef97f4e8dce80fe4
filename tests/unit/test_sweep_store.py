"""The trial store: a resumed sweep finds what finished, whatever an interrupted write left behind."""

import math

from mulint.sweep.store import TrialKey, TrialResult, TrialStore


def key(width=64, lr=-9.0, seed=0, steps=100, sweep="abc"):
    return TrialKey(sweep, width, lr, seed, steps)


def test_a_trial_put_is_found_by_a_new_store_on_the_same_file(tmp_path):
    path = tmp_path / "trials.jsonl"
    result = TrialResult((3.0, 2.0, 1.0, 0.5), 3.0, False, 1.5)
    TrialStore(path).put(key(), result)
    again = TrialStore(path)
    assert again.get(key()) == result
    assert again.get(key(seed=1)) is None and again.get(key(steps=200)) is None
    assert again.get(key(sweep="other")) is None and again.get(key(lr=-8.0)) is None


def test_a_line_cut_short_is_ignored_and_the_rest_kept(tmp_path):
    path = tmp_path / "trials.jsonl"
    store = TrialStore(path)
    store.put(key(seed=0), TrialResult((1.0,), 2.0, False, 0.1))
    store.put(key(seed=1), TrialResult((1.0,), 2.0, False, 0.1))
    text = path.read_text()
    path.write_text(text[: len(text) - 20])  # killed while writing the second line
    again = TrialStore(path)
    assert again.get(key(seed=0)) is not None and again.get(key(seed=1)) is None and len(again) == 1


def test_the_metric_is_the_last_quarter_mean_and_a_diverged_run_counts_at_its_start():
    assert TrialResult((8, 6, 4, 2, 1, 1, 1, 3), 9.0, False, 0).metric == 2.0
    assert TrialResult((8, float("nan")), 9.0, True, 0).metric == 9.0
    assert math.isfinite(TrialResult((), 4.0, False, 0).metric)
