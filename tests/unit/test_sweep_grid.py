"""The transfer sweep's lr grid: planned from the losses seen so far, no training."""

import pytest

from mulint.sweep.grid import MAX_SPAN, centre, coarse, next_points


def test_the_coarse_pass_is_every_second_octave_around_the_users_lr():
    assert centre(6e-4) == -11.0  # 2**-10.7: the nearest power of two
    assert coarse(-11.0) == [-15.0, -13.0, -11.0, -9.0, -7.0]


@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan"), float("inf")])
def test_a_bad_lr_is_refused(bad):
    with pytest.raises(ValueError):
        centre(bad)


def test_refines_both_neighbours_of_an_inner_optimum_and_stops_when_they_are_there():
    seen = {-15.0: 3.0, -13.0: 2.5, -11.0: 2.2, -9.0: 2.4, -7.0: 3.1}
    assert next_points(seen, -11.0) == [-12.0, -10.0]
    seen.update({-12.0: 2.3, -10.0: 2.25})
    assert next_points(seen, -11.0) == []


def test_an_optimum_on_the_edge_extends_the_grid_until_it_is_inside_or_at_the_limit():
    seen = {-15.0: 3.0, -13.0: 2.6, -11.0: 2.4, -9.0: 2.2, -7.0: 2.0}
    assert next_points(seen, -11.0) == [-8.0, -6.0, -5.0]
    seen = {float(x): float(x) for x in range(-11 - MAX_SPAN, -10)}  # lowest lr best, at the limit
    assert all(abs(x + 11) <= MAX_SPAN for x in next_points(seen, -11.0))
    assert -11.0 - MAX_SPAN - 1 not in next_points(seen, -11.0)


def test_a_width_whose_runs_all_diverged_asks_for_nothing():
    assert next_points({-9.0: float("nan"), -7.0: float("inf")}, -9.0) == []
