"""The transfer verdict on synthetic curves whose optima are known: pure arithmetic, milliseconds."""

import math
import random

import pytest

from mulint.sweep.verdict import Curve, interpolate, judge, optimum, slope_of

GRID = tuple(float(x) for x in range(-14, -3))  # log2 lr, one octave apart


def bowl(x: float, best: float, floor: float, width: float = 1.0) -> float:
    return floor + 0.05 * width * (x - best) ** 2


def curves(
    best_of,
    floor_of=lambda w: 3.0 - 0.1 * math.log2(w),
    widths=(64, 128, 256),
    seeds=3,
    noise=0.0,
    grid=GRID,
    rng_seed=1,
):
    rng = random.Random(rng_seed)
    out = []
    for w in widths:
        rows = tuple(tuple(bowl(x, best_of(w), floor_of(w)) + rng.gauss(0, noise) for x in grid) for _ in range(seeds))
        out.append(Curve(w, grid, rows))
    return out


def test_the_parabola_finds_an_off_grid_optimum_exactly():
    losses = [bowl(x, -8.4, 2.0) for x in GRID]
    o = optimum(GRID, losses)
    assert o.refined and not o.on_edge
    assert o.log2_value == pytest.approx(-8.4, abs=1e-9)


def test_a_kinked_curve_keeps_its_grid_point():
    # Opens downwards around the argmin's neighbours? No: a V whose vertex would fall outside the bracket.
    losses = [5, 4, 3, 1.0, 1.01, 4, 5]
    o = optimum(list(range(7)), losses)
    assert o.log2_value == pytest.approx(3.4, abs=0.5)
    flat_then_drop = [5, 5, 5, 5, 5, 5, 1]
    edge = optimum(list(range(7)), flat_then_drop)
    assert edge.on_edge and edge.log2_value == 6 and not edge.refined


def test_non_finite_losses_are_skipped_and_all_non_finite_is_an_error():
    assert optimum([0, 1, 2], [math.nan, 1.0, 2.0]).log2_value == 1
    with pytest.raises(ValueError):
        optimum([0, 1], [math.inf, math.nan])


def test_weighted_slope_matches_a_hand_fit():
    assert slope_of([0, 1, 2], [0, -1, -2]) == pytest.approx(-1)
    # Weighting the middle point heavily cannot move a straight line's slope.
    assert slope_of([0, 1, 2], [1, 0, -1], [1, 100, 1]) == pytest.approx(-1)
    # Hand fit of (0,0),(1,0),(2,3) with weights 1,1,2: means x=1.25, y=1.5.
    sxy = 1 * (-1.25) * (-1.5) + 1 * (-0.25) * (-1.5) + 2 * 0.75 * 1.5
    sxx = 1 * 1.25**2 + 1 * 0.25**2 + 2 * 0.75**2
    assert slope_of([0, 1, 2], [0, 0, 3], [1, 1, 2]) == pytest.approx(sxy / sxx)


def test_a_still_optimum_passes():
    v = judge(curves(lambda w: -8.3, noise=0.002))
    assert v.status == "PASS", v.reason
    assert abs(v.drift) < 0.2 and v.slope_interval[0] <= 0 <= v.slope_interval[1]
    assert v.wider_is_better is True
    assert v.regret == pytest.approx(0, abs=0.01)


def test_an_sp_like_optimum_falling_an_octave_per_doubling_fails():
    v = judge(curves(lambda w: -6.0 - math.log2(w / 64), noise=0.002))
    assert v.status == "FAIL" and "falls" in v.reason
    assert v.slope == pytest.approx(-1.0, abs=0.1)
    assert v.drift == pytest.approx(-2.0, abs=0.2)
    # The widest model trained at the base width's best lr loses 0.05 * 2**2 nats.
    assert v.regret == pytest.approx(0.2, abs=0.02)


def test_a_rising_optimum_fails_the_other_way():
    v = judge(curves(lambda w: -10.0 + 0.75 * math.log2(w / 64), noise=0.001))
    assert v.status == "FAIL" and "rises" in v.reason


def test_half_an_octave_per_doubling_is_a_failure_and_a_quarter_is_not():
    fail = judge(curves(lambda w: -7.0 - 0.6 * math.log2(w / 64), widths=(64, 128, 256, 512), noise=0.001))
    assert fail.status == "FAIL"
    small = judge(curves(lambda w: -7.0 - 0.2 * math.log2(w / 64), widths=(64, 128, 256), noise=0.001))
    assert small.status == "PASS", small.reason  # 0.4 octaves in all: within the grid's resolution


def test_noise_that_hides_the_optimum_is_inconclusive_with_advice():
    v = judge(curves(lambda w: -8.0 - 0.4 * math.log2(w / 64), noise=0.3, seeds=2))
    assert v.status == "INCONCLUSIVE"
    assert any("seeds" in a for a in v.advice)


def test_an_optimum_at_the_grid_edge_never_passes():
    v = judge(curves(lambda w: -16.0, noise=0.0))
    assert v.status != "PASS"
    assert any("grid" in a for a in v.advice)


def test_one_width_is_refused():
    with pytest.raises(ValueError):
        judge(curves(lambda w: -8.0, widths=(64,)))


def test_interpolation_is_linear_inside_and_flat_beyond():
    assert interpolate([0, 1, 2], [1.0, 3.0, 2.0], 0.5) == pytest.approx(2.0)
    assert interpolate([0, 1, 2], [1.0, 3.0, 2.0], -3) == 1.0
    assert interpolate([0, 1, 2], [1.0, 3.0, 2.0], 9) == 2.0
