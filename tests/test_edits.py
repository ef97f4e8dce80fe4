"""Fix edits are typed, one frozen dataclass per kind, and cross JSON (the worker pipe, the cache, the
json report) with their kind, exactly as the dicts before them did. Fast: no torch."""

import json

import pytest

from mulint import edits
from mulint.edits import (
    AttentionScale,
    BranchMultiplier,
    EditError,
    InitStd,
    OptimizerLr,
    ParamLr,
    ReadoutMultiplier,
    ScheduleLr,
    SharedReadoutBias,
    UseTarget,
    edit_from_dict,
)
from mulint.findings import Finding, Fix

WHERE = dict(path="m.py", line=3, base_width=64, width_knob="config.n_embd", target="m.py:GPT")
EVERY_KIND = [
    AttentionScale(**WHERE, form="sdpa-default", base_head_dim=16),
    ReadoutMultiplier(**WHERE, module="lm_head", lines=(3, 9), params=("lm_head.weight", "wte.weight")),
    InitStd(**WHERE, power=0.5, exclude=("lm_head.weight",)),
    OptimizerLr(
        **WHERE,
        family="adam",
        cls="AdamW",
        role="hidden",
        params=(ParamLr(("h.*.w",), 0.0, (UseTarget(1, 0.0, "hidden", -1.0), UseTarget(1, -1.0, "output", -1.0))),),
    ),
    ScheduleLr(path="train.py", line=40),
    SharedReadoutBias(**WHERE),
    BranchMultiplier(**WHERE, depth_knob="config.n_layer", base_depth=12, alpha=1.0),
]


def test_every_kind_has_one_type_and_its_fixer():
    from mulint.fix.apply import FIXERS

    assert {type(e) for e in EVERY_KIND} == set(edits.KINDS.values()) == set(FIXERS)
    assert sorted(edits.KINDS) == sorted(
        [
            "attention-scale",
            "readout-multiplier",
            "init-std",
            "optimizer-lr",
            "schedule-lr",
            "shared-readout-bias",
            "branch-multiplier",
        ]
    )


@pytest.mark.parametrize("edit", EVERY_KIND, ids=lambda e: e.kind)
def test_an_edit_round_trips_through_json(edit):
    data = json.loads(json.dumps(edit.to_dict()))
    assert next(iter(data)) == "kind" and data["kind"] == edit.kind
    assert edit_from_dict(data) == edit and hash(edit_from_dict(data)) == hash(edit)


def test_the_json_report_shows_an_edit_as_it_always_has():
    finding = Finding("MU301", "adam-lr-scaling", "error", "m", "m.py", 3, 1, fix=Fix("unsafe", "f", [EVERY_KIND[3]]))
    assert finding.to_dict()["fix"]["edits"] == [
        {
            "kind": "optimizer-lr",
            "path": "m.py",
            "line": 3,
            "base_width": 64,
            "width_knob": "config.n_embd",
            "target": "m.py:GPT",
            "family": "adam",
            "cls": "AdamW",
            "role": "hidden",
            "params": [
                {
                    "names": ["h.*.w"],
                    "lr_exponent": 0.0,
                    "uses": [
                        {"k": 1, "multiplier": 0.0, "role": "hidden", "target": -1.0},
                        {"k": 1, "multiplier": -1.0, "role": "output", "target": -1.0},
                    ],
                }
            ],
        }
    ]


@pytest.mark.parametrize(
    "data",
    [
        "attention-scale",
        {"kind": "no-such-kind", "path": "m.py", "line": 3},
        {"path": "m.py", "line": 3},
        {"kind": "schedule-lr", "path": "m.py"},
        {"kind": "schedule-lr", "path": "m.py", "line": 3, "extra": 1},
        {"kind": "schedule-lr", "path": "m.py", "line": "3"},
        {"kind": "schedule-lr", "path": "m.py", "line": True},
        {**EVERY_KIND[1].to_dict(), "lines": 3},
        {**EVERY_KIND[2].to_dict(), "power": "0.5"},
        {**EVERY_KIND[3].to_dict(), "params": [{"names": ["h.*.w"], "lr_exponent": 0.0, "uses": [{"k": 1}]}]},
    ],
)
def test_anything_else_is_not_an_edit(data):
    with pytest.raises(EditError):
        edit_from_dict(data)


def test_edits_cross_the_worker_pipe_typed():
    from mulint.engine import wire

    finding = Finding("MU201", "sqrt-attention-scale", "error", "m", "m.py", 3, 1, fix=Fix("safe", "f", EVERY_KIND))
    message = {"findings": [finding], "target": {"target": "m.py:GPT", "mode": "model"}}
    decoded = wire.check_result("check", wire.decode(wire.encode(message)))
    assert decoded["findings"] == [finding]
    assert [type(e) for e in decoded["findings"][0].fix.edits] == [type(e) for e in EVERY_KIND]
    forged = wire.encode(message).replace(b'"base_head_dim":16', b'"base_head_dim":"16"')
    with pytest.raises(wire.WireError, match="base_head_dim"):
        wire.decode(forged)


def test_an_edit_built_from_numpy_numbers_crosses_as_plain_numbers():
    import numpy as np

    from mulint.engine import wire

    edit = InitStd(**{**WHERE, "base_width": np.int64(64)}, power=np.float64(0.5), exclude=())
    [decoded] = wire.decode(wire.encode([edit]))
    assert decoded == InitStd(**WHERE, power=0.5, exclude=()) and type(decoded.base_width) is int
