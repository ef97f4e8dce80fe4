"""The mup package's rules (MU401-MU403) and the coordinate check's (MU901, MU902) on facts: MU402 on
every role a late re-init can break (not hidden weights only), coord findings on nested blocks and on
models of ten or more blocks."""

import pytest

from .cases import Invalid, Valid, judge_invalid, judge_valid, params, run
from .facts_builder import at, coord_layer, embedding, hidden, model, mup_module, output, vector

VALID = {
    "MU401": [
        Valid(model(mup_modules=[mup_module("lm_head")]), "set_base_shapes called"),
        Valid(model(hidden("h.0.fc.weight")), "no mup layers"),
    ],
    "MU402": [
        Valid(model(hidden("h.0.fc.weight", init=-0.5, late_init_line=70)), "a late re-init that keeps µP's exponent"),
        Valid(model(vector("ln.weight", init=0.0, late_init_line=70)), "a norm gain set to ones after set_base_shapes"),
        Valid(model(embedding("wte.weight", init=0.0, late_init_line=70)), "an embedding re-init, constant std"),
        Valid(model(output("head.weight", init=None, late_init_line=70)), "a readout zeroed after set_base_shapes"),
        Valid(model(hidden("h.0.fc.weight", init=0.0)), "SP init before set_base_shapes: MU101's"),
        Valid(model(hidden("h.0.fc.weight", init=-0.26, late_init_line=70)), "just inside the tolerance"),
    ],
    "MU403": [
        Valid(model(mup_modules=[mup_module("lm_head", "MuSharedReadout")]), "bias=False"),
    ],
    "MU901": [
        Valid(model(coord=[coord_layer("h.0.mlp", 0.05, "ok"), coord_layer("output", -0.1, "ok")]), "every slope flat"),
        Valid(model(coord=[coord_layer("h.0.mlp", -0.9, "collapse")]), "a collapse is MU902's"),
    ],
    "MU902": [
        Valid(model(coord=[coord_layer("h.0.mlp", 0.9, "blow-up")]), "a blow-up is MU901's"),
        Valid(model(coord=[]), "no coordinate check run"),
    ],
}

INVALID = {
    "MU401": [
        Invalid(
            model(mup_modules=[mup_module("lm_head", base_shapes=False)]),
            "MuReadout without set_base_shapes",
            None,
            33,
            says=("MuReadout `lm_head` is used but set_base_shapes(model, base, delta=...) was never called",),
        ),
    ],
    "MU402": [
        Invalid(
            model(hidden("h.0.fc.weight", init=0.0, late_init_line=70)),
            "hidden weights re-initialised with a constant std",
            "h.*.fc.weight",
            70,
            says=("re-initialises parameters after set_base_shapes without mup.init",),
        ),
        Invalid(
            model(
                hidden("h.0.fc.weight", init=0.0, late_init_line=70),
                output("head.weight", init=0.0, late_init_line=70),
                vector("ln.weight", init=0.0, late_init_line=70),
            ),
            "one re-init loop over the readout and hidden weights: one finding naming both",
            "h.*.fc.weight, head.weight",
            70,
        ),
        Invalid(
            model(output("head.weight", init=-0.5, late_init_line=71)),
            "a readout re-initialised like a hidden weight (beyond hidden weights)",
            "head.weight",
            71,
        ),
        Invalid(
            model(vector("ln.weight", init=0.5, late_init_line=72)),
            "a vector whose late init grows",
            "ln.weight",
            72,
        ),
        Invalid(
            model(embedding("wte.weight", init=0.26, late_init_line=73)),
            "an embedding just outside the tolerance",
            "wte.weight",
            73,
        ),
        Invalid(
            model(hidden("h.0.fc.weight", init=-0.24, late_init_line=70)),
            "a hidden weight just outside the tolerance",
            "h.*.fc.weight",
            70,
        ),
    ],
    "MU403": [
        Invalid(
            model(mup_modules=[mup_module("lm_head", "MuSharedReadout", bias_ok=False)]),
            "MuSharedReadout's default bias=True",
            None,
            33,
            says=("MuSharedReadout `lm_head` has a bias shaped like the embedding width", "pass bias=False"),
            fix={"applicability": "safe", "kind": "shared-readout-bias", "line": 33, "target": "net.py:Net"},
        ),
    ],
    "MU901": [
        Invalid(
            model(
                coord=[coord_layer("h.0", 0.9, "blow-up"), coord_layer("h.0.mlp.fc", 0.62, "blow-up", line=31)],
                coord_widths=[64, 128, 256],
            ),
            "a nested block: the innermost layer is reported",
            None,
            31,
            says=(
                "coordinate check: the change of `h.0.mlp.fc` (Linear) per training step grows with width",
                "(slope +0.62 over widths 64, 128, 256)",
            ),
        ),
        Invalid(
            model(coord=[coord_layer("output", 0.7, "blow-up", line=45)], coord_widths=[64, 128]),
            "only the output blows up: reported",
            None,
            45,
            says=("`output`", "slope +0.70"),
        ),
        Invalid(
            model(
                coord=[coord_layer("output", 0.7, "blow-up", line=45), coord_layer("h.3.attn", 0.5, "blow-up", line=30)]
            ),
            "the output follows a layer that blows up: the layer is reported",
            None,
            30,
            says=("`h.3.attn`",),
        ),
    ],
    "MU902": [
        Invalid(
            model(coord=[coord_layer("h.0.mlp", -0.8, "collapse")], coord_widths=[64, 128, 256]),
            "a layer that stops learning",
            None,
            30,
            severity="error",
            says=(
                "shrinks with width: the layer stops learning in wide models",
                "(slope -0.80 over widths 64, 128, 256)",
            ),
        ),
    ],
}


@pytest.mark.parametrize(("code", "case"), params(VALID))
def test_valid(code, case):
    judge_valid(code, case)


@pytest.mark.parametrize(("code", "case"), params(INVALID))
def test_invalid(code, case):
    judge_invalid(code, case)


def test_a_block_with_ten_or_more_siblings_is_not_hidden_by_another_blocks_sublayer():
    """`h.1` is no parent of `h.10.mlp`: both are reported (a prefix test without the dot would drop h.1)."""
    layers = [coord_layer("h.1", 0.5, "blow-up", line=30), coord_layer("h.10.mlp", 0.6, "blow-up", line=31)]
    found = run("MU901", model(coord=layers, coord_widths=[64, 128]))
    assert sorted(f.line for f in found) == [30, 31]
    assert "`h.10.mlp`" in found[1].message and "`h.1`" in found[0].message


def test_a_parameter_written_twice_after_set_base_shapes_points_at_the_last_write():
    p = hidden("h.0.fc.weight", init=0.0, late_init_line=70)
    p.late_init_at.append(at(75, "p.data.normal_(0, 0.02)"))
    (finding,) = run("MU402", model(p))
    assert finding.line == 75


def test_late_inits_are_not_judged_again_by_the_init_rules():
    facts = model(hidden("h.0.fc.weight", init=0.0, late_init_line=70))
    assert run("MU101", facts) == [] and [f.code for f in run("MU402", facts)] == ["MU402"]
