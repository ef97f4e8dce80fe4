"""The default widths of a transfer sweep: the model's own and wider when their training fits the
budget, else the same doublings moved down; chosen from the work, never from a timed (load-dependent) step."""

import pytest

from mulint.sweep.budget import FLOPS, estimate_seconds, pick_widths, trials_per_width, work_minutes


def gpt_sizes(widths, blocks=2, vocab=256):
    return {w: blocks * 12 * w * w + 2 * vocab * w for w in widths}


ALL = [16, 32, 64, 128, 256, 512]


def test_a_small_model_trains_at_its_own_width_and_wider():
    widths, note = pick_widths(gpt_sizes(ALL), 32, positions=16, steps=200, seeds=3, parallel=2, minutes=6)
    assert widths == [32, 64, 128] and note is None


def test_a_language_model_too_large_for_the_budget_moves_down_and_says_so():
    widths, note = pick_widths(gpt_sizes(ALL), 128, positions=256, steps=200, seeds=3, parallel=2, minutes=6)
    assert widths == [64, 128, 256]
    assert "instead of 128, 256, 512" in note and "--budget" in note
    # A bigger budget (or more workers) keeps the model's own width.
    assert pick_widths(gpt_sizes(ALL), 128, positions=256, steps=200, seeds=3, parallel=2, minutes=30)[0] == [
        128,
        256,
        512,
    ]
    assert pick_widths(gpt_sizes(ALL), 128, positions=256, steps=200, seeds=3, parallel=16, minutes=6)[0] == [
        128,
        256,
        512,
    ]


def test_nothing_fits_gives_the_cheapest_triple_and_a_width_that_does_not_build_is_skipped():
    huge = gpt_sizes([96, 192, 384, 768, 1536, 3072], blocks=12)
    widths, note = pick_widths(huge, 768, positions=256, steps=200, seeds=3, parallel=2, minutes=1)
    assert widths == [96, 192, 384] and "nearest to the 1 min budget" in note
    no_half = {w: n for w, n in gpt_sizes(ALL).items() if w != 64}  # 64 does not build (heads do not divide it)
    widths, note = pick_widths(no_half, 128, positions=256, steps=200, seeds=3, parallel=2, minutes=6)
    assert widths == [128, 256, 512] and "over the 6 min budget" in note  # the only triple that builds


def test_the_work_and_the_time_estimates_add_up():
    sizes = {64: 1000, 128: 4000}
    minutes = work_minutes(sizes, [64, 128], positions=10, steps=100, seeds=2, parallel=1)
    assert minutes == pytest.approx(trials_per_width(2) * 100 * 6 * 10 * 5000 / FLOPS / 60)
    assert trials_per_width(2) == 2 * 7  # five coarse points and two around the optimum
    assert estimate_seconds({64: 0.5, 128: 1.5}, [64, 128], steps=10, seeds=1, parallel=2) == pytest.approx(
        7 * 10 * 2 / 2
    )
