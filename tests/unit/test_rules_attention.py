"""MU201 on attention sites: 1/head_dim (µP), heads that grow instead of head_dim, and the edges of
"head_dim grows" and "the scale decays fast enough", each 0.25 wide."""

import pytest

from .cases import Invalid, Valid, judge_invalid, judge_valid, params, run
from .facts_builder import hidden, model, sdpa

VALID = {
    "MU201": [
        Valid(model(attention=[sdpa(form="sdpa", scale_exp=-1.0)]), "µP: scale=1/head_dim"),
        Valid(model(attention=[sdpa(form="explicit", scale_exp=-1.0)]), "µP: softmax(q @ kᵀ / head_dim)"),
        Valid(model(attention=[sdpa(head_dim_exp=0.0, scale_exp=0.0)]), "head_dim fixed, heads grow"),
        Valid(model(attention=[sdpa(head_dim_exp=0.24, scale_exp=0.0)]), "head_dim just inside 'fixed'"),
        Valid(
            model(attention=[sdpa(form="explicit", head_dim_exp=0.0, scale_exp=0.5)]),
            "head_dim fixed: a scale that grows is not MU201's (it judges 1/sqrt(head_dim) of a growing head_dim)",
        ),
        Valid(model(attention=[sdpa(form="sdpa", scale_exp=-0.76)]), "scale just inside µP's"),
        Valid(model(attention=[sdpa(form="sdpa", scale_exp=-1.24)]), "scale just inside µP's, from below"),
        Valid(model(attention=[sdpa(form="tensor", scale_exp=0.0)]), "a scale the trace cannot read: not judged"),
        Valid(
            model(attention=[sdpa(form="sdpa", head_dim_exp=0.5, scale_exp=-0.5)]),
            "head_dim ∝ sqrt(width), scale 1/head_dim",
        ),
    ],
}

INVALID = {
    "MU201": [
        Invalid(
            model(attention=[sdpa(), sdpa(node="scaled_dot_product_attention_1")]),
            "nanoGPT SP: the default 1/sqrt(head_dim), two layers on one line",
            None,
            42,
            says=(
                "scaled_dot_product_attention's default scale 1/sqrt(head_dim) (∝ width^-0.50)",
                "head_dim grows (32 at width 128) (2 attention layers)",
                "µP needs 1/head_dim",
            ),
            fix={"applicability": "safe", "kind": "attention-scale", "form": "sdpa-default", "base_head_dim": 32},
        ),
        Invalid(
            model(attention=[sdpa(form="explicit", scale_exp=-0.74, scale=0.2)]),
            "scale just outside µP's, not the sqrt form: no fix",
            None,
            42,
            says=("a scale of 0.2 (∝ width^-0.74)",),
            says_not=("attention layers",),
        ),
        Invalid(
            model(attention=[sdpa(form="explicit", scale_exp=0.0, scale=1.0, count=12)]),
            "T5: logits not scaled, a repeated block standing for 12 layers",
            None,
            42,
            says=("not scaled by head_dim at all", "(12 attention layers)"),
        ),
        Invalid(
            model(attention=[sdpa(form="sdpa", head_dim_exp=0.26, scale_exp=0.0, scale=0.125)]),
            "head_dim just outside 'fixed'",
            None,
            42,
            says=("scale=0.125",),
        ),
        Invalid(
            model(attention=[sdpa(form="explicit", scale_exp=-0.5, scale=32**-0.5)]),
            "explicit q @ kᵀ / sqrt(head_dim): the sqrt form is fixed",
            None,
            42,
            fix={"applicability": "safe", "kind": "attention-scale", "form": "explicit", "base_head_dim": 32},
        ),
        Invalid(
            model(
                attention=[sdpa(form="explicit", head_dim=64, head_dim_exp=0.0, scale_exp=-1.0, scale=0.1523, count=2)]
            ),
            "heads grow, head_dim fixed, logits divided by the model width (a ViT's `/ (feats / 19.5)`): no fix",
            None,
            42,
            says=("∝ width^-1.00 while head_dim is fixed (64) (2 attention layers)", "they vanish"),
        ),
        Invalid(
            model(attention=[sdpa(form="sdpa", scale_exp=-1.26, scale=0.02)]),
            "scale just outside µP's, from below",
            None,
            42,
            says=("∝ width^-1.26 while head_dim ∝ width^+1.00 (32 at width 128)",),
        ),
    ],
}


@pytest.mark.parametrize(("code", "case"), params(VALID))
def test_valid(code, case):
    judge_valid(code, case)


@pytest.mark.parametrize(("code", "case"), params(INVALID))
def test_invalid(code, case):
    judge_invalid(code, case)


def test_sites_on_different_lines_are_separate_findings():
    facts = model(attention=[sdpa(line=42), sdpa(line=90, form="sdpa", scale_exp=-1.0), sdpa(line=120)])
    assert [f.line for f in run("MU201", facts)] == [42, 120]


def test_the_fix_takes_head_dim_at_the_base_width_when_the_widths_start_above_it():
    """Built at 256 and 512 (the model's default is 128): head_dim 64 at 256 is 32 at the base width."""
    facts = model(hidden("h.0.fc.weight"), attention=[sdpa(head_dim=64)])
    facts.widths = [256, 512]
    (finding,) = run("MU201", facts)
    assert "64 at width 256" in finding.message
    assert finding.fix.edits[0].base_head_dim == 32


def test_no_fix_when_the_base_width_gives_no_whole_head_dim():
    """head_dim 64 at width 256: at a default width of 130 it would be 32.5, no head_dim a model has."""
    facts = model(hidden("h.0.fc.weight"), attention=[sdpa(head_dim=64)])
    facts.widths, facts.base_width = [256, 512], 130
    (finding,) = run("MU201", facts)
    assert finding.fix is None
    facts.base_width = 128
    (finding,) = run("MU201", facts)
    assert finding.fix.edits[0].base_head_dim == 32
