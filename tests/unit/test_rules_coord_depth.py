"""The depth coordinate check's rules (MU951-MU954) on facts: one finding per rule at the list of blocks,
naming every measure that failed; lazy blocks a finding only under a profile that makes them one."""

import tempfile
from pathlib import Path

import pytest

from mulint.profiles import load_profile

from .cases import Invalid, Valid, judge_invalid, judge_valid, params
from .facts_builder import depth_measure, model


def _lazy_warning_profile() -> str:
    """The default profile with lazy blocks made a warning (as completep makes them), as a profile file."""
    text = Path(load_profile().source).read_text(encoding="utf-8")
    assert "\ndepth_lazy_warning = 0\n" in text
    path = Path(tempfile.mkdtemp(prefix="mulint-profile-")) / "lazy-warning.toml"
    path.write_text(text.replace("\ndepth_lazy_warning = 0\n", "\ndepth_lazy_warning = 1\n"), encoding="utf-8")
    return str(path)


LAZY_WARNING = _lazy_warning_profile()
DEPTHS = {"coord_depths": [4, 8, 16]}
CLEAN = [
    depth_measure("stream_change", 0.02),
    depth_measure("block_change", -1.01),
    depth_measure("stream_init", 0.0),
    depth_measure("block_update", -0.03),
]
SP = [
    depth_measure("stream_change", 0.67, "blow-up"),
    depth_measure("block_change", -0.25, "blow-up"),
    depth_measure("stream_init", 0.5, "growing"),
    depth_measure("block_update", 0.0),
]
LAZY = [*CLEAN[:3], depth_measure("block_update", -0.53, "lazy")]

VALID = {
    "MU951": [
        Valid(model(coord_depth=CLEAN, **DEPTHS), "CompleteP: every slope as scaled branches have it"),
        Valid(model(coord_depth=[]), "no depth coordinate check run (no depth knob, or no --coord)"),
        Valid(model(coord_depth=[depth_measure("stream_change", -0.5, "collapse")], **DEPTHS), "a collapse is MU952's"),
    ],
    "MU952": [
        Valid(model(coord_depth=SP, **DEPTHS), "a blow-up is MU951's"),
        Valid(model(coord_depth=CLEAN, **DEPTHS), "every slope flat"),
    ],
    "MU953": [
        Valid(model(coord_depth=LAZY, **DEPTHS), "α = ½ under the default profile: a note, not a finding"),
        Valid(model(coord_depth=CLEAN, profile=LAZY_WARNING, **DEPTHS), "α = 1 under a profile that warns"),
    ],
    "MU954": [
        Valid(model(coord_depth=LAZY, **DEPTHS), "the stream at init flat"),
    ],
}

INVALID = {
    "MU951": [
        Invalid(
            model(coord_depth=SP, **DEPTHS),
            "SP: the stream's change and each block's change, in one finding",
            None,
            25,
            says=(
                "residual stream's change: slope +0.67 against depth, +0 with depth-scaled branches",
                "a block's change in one step: slope -0.25 against depth, -1 with depth-scaled branches",
                "(depths 4, 8, 16)",
            ),
            says_not=("at init",),
        ),
    ],
    "MU952": [
        Invalid(
            model(coord_depth=[depth_measure("stream_change", -0.5, "collapse", line=40)], **DEPTHS),
            "α = 1 with α = ½'s lr rule",
            None,
            40,
            says=("moves less per step in deeper models", "slope -0.50"),
        ),
    ],
    "MU953": [
        Invalid(
            model(coord_depth=LAZY, profile=LAZY_WARNING, **DEPTHS),
            "α = ½ under a profile that requires α = 1",
            None,
            25,
            severity="warning",
            says=("the signature of α = ½", "slope -0.53"),
        ),
    ],
    "MU954": [
        Invalid(
            model(coord_depth=SP, **DEPTHS),
            "SP pre-LN: the stream at init grows like L^½",
            None,
            25,
            says=("residual stream at init: slope +0.50",),
        ),
    ],
}


@pytest.mark.parametrize(("code", "case"), params(VALID))
def test_valid(code, case):
    judge_valid(code, case)


@pytest.mark.parametrize(("code", "case"), params(INVALID))
def test_invalid(code, case):
    judge_invalid(code, case)
