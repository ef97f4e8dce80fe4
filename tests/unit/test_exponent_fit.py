"""Fitting how a number scales with width (mulint.exponents): the least-squares slope of log(value)
against log(width), zeros left out, quarters for messages, and exponents printed without a `+0.00`."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mulint.exponents import TOLERANCE, fit_exponent, fmt_exp, to_quarter


def test_the_shared_tolerance():
    assert TOLERANCE == 0.25


@settings(max_examples=40, deadline=None)
@given(
    exponent=st.floats(-3, 3, allow_nan=False),
    scale=st.floats(1e-6, 1e3),
    widths=st.lists(st.sampled_from([32, 64, 96, 128, 256, 512, 1024]), min_size=2, max_size=5, unique=True),
)
def test_an_exact_power_law_gives_its_exponent(exponent, scale, widths):
    values = {w: scale * w**exponent for w in widths}
    assert fit_exponent(values) == pytest.approx(exponent, abs=1e-9)


def test_least_squares_over_noisy_values():
    """std 0.02 / sqrt(width_mult) as measured at 128, 256, 512 (mup's init): about -0.5, not exactly."""
    measured = {128: 0.019959855106292865, 256: 0.014147980877575083, 512: 0.00999981433504664}
    assert fit_exponent(measured) == pytest.approx(-0.49856401692964963, abs=1e-12)
    # Three points off a line: the slope of the least-squares line, not of the end points.
    bent = {1: 1.0, 2: 4.0, 8: 8.0}  # log2: (0, 0), (1, 2), (3, 3); the end points' slope is 1
    assert fit_exponent(bent) == pytest.approx(39 / 42)


def test_zeros_are_left_out_and_too_few_points_give_none():
    assert fit_exponent({128: 0.0, 256: 0.0, 512: 0.0}) is None  # a zero init
    assert fit_exponent({128: 1e-3, 256: 0.0, 512: 0.0}) is None  # one point left
    assert fit_exponent({128: 1e-3, 256: 5e-4, 512: 0.0}) == pytest.approx(-1.0)
    assert fit_exponent({128: 2.0}) is None and fit_exponent({}) is None
    assert fit_exponent({128: -1.0, 256: -2.0}) is None  # signs are the caller's: only positive sizes fit


def test_quarters_round_to_the_nearest():
    assert [to_quarter(x) for x in (-0.49, -0.37, -0.38, 0.12, 0.13, 1.0)] == [-0.5, -0.25, -0.5, 0.0, 0.25, 1.0]


def test_exponents_are_printed_signed_with_a_bare_zero():
    assert [fmt_exp(x) for x in (0.5, -1.0, 0.0, -0.0, 0.004, -0.004, 0.26)] == [
        "+0.50",
        "-1.00",
        "0",
        "0",
        "0",
        "0",
        "+0.26",
    ]
