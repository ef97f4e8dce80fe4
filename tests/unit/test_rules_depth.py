"""Depth rules MU501-MU507 on facts: every equivalent correct form passes (α = ½ with its lr rule,
CompleteP's α = 1, the factor in forward, in the last weight's init with its lr, a learnable gate; Adam
and SGD), a model without depth scaling is silent under the default profile and judged under the depth
profiles, and each violation is found at the line that causes it with its severity."""

import pytest

from mulint.depth_scaling import NO_SCALING_NOTE, depth_notes, judged, model_alpha, shows_intent

from .cases import Invalid, Valid, judge_invalid, judge_valid, params, run
from .depth_builder import ADD_LINE, EXTRA_LINE, MULT_LINE, PROJ_INIT_LINE, gpt

OPT_LINE = 60
ATTN = "h.*.ln_1.weight, h.*.attn.c_attn.weight, h.*.attn.c_proj.weight"
MLP = "h.*.ln_2.weight, h.*.mlp.c_fc.weight, h.*.mlp.c_proj.weight"
BLOCKS = f"{ATTN}, {MLP}"
PROJ = "h.*.attn.c_proj.weight, h.*.mlp.c_proj.weight"
NON_BLOCK = "wte.weight, ln_f.weight, head.weight"


def correct_forms():
    """Every correct depth parametrization the rules must accept under the default profile."""
    return [
        Valid(gpt(1.0), "CompleteP: branches × 1/L in forward, one lr, ε ∝ 1/L"),
        Valid(gpt(0.5), "Depth-µP: branches × L^-½, block Adam lr ∝ L^-½, ε ∝ L^-½"),
        Valid(gpt(0.75), "α = ¾ with its lr rule: mup accepts any α in [½, 1]"),
        Valid(gpt(0.5, sgd=True), "Depth-µP with SGD: block lr ∝ L^(2α-1) = L^0"),
        Valid(gpt(1.0, sgd=True), "CompleteP with SGD: block lr ∝ L^+1"),
        Valid(
            gpt(None, proj_init=-1.0, proj_lr=-1.0, block_lr=0.0, eps=-1.0),
            "α = 1 in c_proj's init with the same factor on its lr",
        ),
        Valid(gpt(0.5, gate=True), "a learnable gate initialised ∝ L^-½, its lr × L^-½ more"),
        Valid(
            gpt(1.0, proj_init=-1.0, proj_lr=-1.0),
            "α = 1 in c_proj's init and lr, read into the branch's factor as well (folded): counted once",
        ),
        Valid(gpt(1.0, extra=1.0), "an x0 injection scaled like the main branches"),
        Valid(gpt(None), "no depth scaling anywhere under mup: a note, not a finding"),
        Valid(gpt(None, proj_init=-0.5), "GPT-2's std/sqrt(2L) alone under mup: a note"),
        Valid(gpt(None, post=True, profile="completep"), "post-LN blocks are not covered: a note"),
    ]


def codes_on(facts) -> set[str]:
    from mulint.rules import check_model_rules
    from mulint.rules.base import RULES

    return {f.code for f in check_model_rules(facts, [RULES[c] for c in sorted(RULES) if c.startswith("MU50")])}


VALID = {
    "MU501": [
        *correct_forms(),
        Valid(gpt(1.0, profile="completep"), "CompleteP under completep"),
        Valid(gpt(0.5, profile="depth-mup"), "Depth-µP under depth-mup"),
    ],
    "MU502": [*correct_forms(), Valid(gpt(0.5, skip=0.1), "a skip exponent within the tolerance")],
    "MU503": [
        *correct_forms(),
        Valid(gpt(1.0, proj_init=-0.2), "an init exponent of L within the tolerance"),
    ],
    "MU504": [
        *correct_forms(),
        Valid(gpt(None, profile="depth-mup"), "an unscaled branch is MU501's: its lr is not judged"),
        Valid(gpt(1.0, proj_init=-0.5), "depth counted twice is MU503's: lr judged as if the init had none"),
        Valid(gpt(0.5, block_lr=-0.3), "within the tolerance of L^-½"),
    ],
    "MU505": [
        *correct_forms(),
        Valid(gpt(0.5, nonblock_lr=0.2), "within the tolerance"),
        Valid(gpt(None, nonblock_lr=-0.5), "no depth scaling of the blocks under mup: a note, not judged"),
    ],
    "MU506": [
        *correct_forms(),
        Valid(gpt(1.0, eps=0.0), "ε constant where the gradients are unknown: not judged under mup"),
        Valid(gpt(1.0, eps=0.0, grad_rms=1.0), "ε 1e-8 far below the gradients even 16× deeper"),
    ],
    "MU507": [*correct_forms(), Valid(gpt(0.5, extra=0.5), "x0 gate ∝ L^-½ beside α = ½ branches")],
}

INVALID = {
    "MU501": [
        Invalid(
            gpt(None, profile="completep"),
            "no multiplier under completep: the fix inserts 1/L (α = 1: one Adam lr, no lr change)",
            ATTN,
            ADD_LINE["h.*.attn"],
            count=2,
            fix={
                "applicability": "unsafe",
                "kind": "branch-multiplier",
                "line": ADD_LINE["h.*.attn"],
                "depth_knob": "n_layer",
                "base_depth": 4,
                "alpha": 1.0,
            },
        ),
        Invalid(
            gpt(None, profile="completep", sgd=True),
            "no multiplier under completep with SGD: no fix (its lr rule differs)",
            ATTN,
            ADD_LINE["h.*.attn"],
            count=2,
        ),
        Invalid(
            gpt(None, profile="depth-mup"),
            "no multiplier under depth-mup",
            ATTN,
            ADD_LINE["h.*.attn"],
            count=2,
            says=(
                "output is added to the stream unscaled",
                "depth-mup requires α = 0.50",
                "(base_depth / n_layer) ** α",
            ),
        ),
        Invalid(
            gpt(0.0, source="constant"),
            "a stored multiplier (0.22) is intent with α = 0, judged under mup",
            BLOCKS,
            MULT_LINE,
            says=("a constant (0.22)", "mup accepts α in [0.50, 1.00]"),
        ),
        Invalid(
            gpt(0.0, source="knob", knob="residual_scale"),
            "a multiplier set by a knob not derived from n_layer",
            BLOCKS,
            MULT_LINE,
            says=("set by residual_scale, not derived from n_layer",),
        ),
        Invalid(
            gpt(None, block_lr=-0.5),
            "an lr depth rule without a multiplier: intent, judged under mup; the fix takes the lrs' α = ½",
            ATTN,
            ADD_LINE["h.*.attn"],
            count=2,
            fix={"applicability": "unsafe", "kind": "branch-multiplier", "alpha": 0.5},
        ),
        Invalid(gpt(0.0, source="learned"), "a gate that does not scale with depth", BLOCKS, MULT_LINE),
    ],
    "MU502": [
        Invalid(
            gpt(0.5, profile="completep"),
            "α = ½ under completep",
            BLOCKS,
            MULT_LINE,
            says=("α̂ = 0.50", "completep requires α = 1.00"),
        ),
        Invalid(gpt(1.0, profile="depth-mup"), "α = 1 under depth-mup", BLOCKS, MULT_LINE, says=("α̂ = 1.00",)),
        Invalid(gpt(-0.5), "the factor grows with depth (wrong direction)", BLOCKS, MULT_LINE, says=("grows",)),
        Invalid(gpt(2.0), "α = 2: outside [½, 1]", BLOCKS, MULT_LINE, says=("L^-2.00", "[0.50, 1.00]")),
        Invalid(gpt(0.5, skip=-0.5), "the skip path scaled instead", BLOCKS, MULT_LINE, says=("skip path",)),
        Invalid(gpt(1.0, cancelled=True), "the factor before the branch's own norm", BLOCKS, MULT_LINE),
        Invalid(
            gpt(None, proj_init=-0.5, profile="completep"),
            "GPT-2 init alone under completep: α̂ = ½ from the init",
            ATTN,
            ADD_LINE["h.*.attn"],
            count=2,
            says=("α̂ = 0.50", "through h.*.attn.c_proj.weight's init"),
        ),
    ],
    "MU503": [
        Invalid(
            gpt(1.0, proj_init=-0.5),
            "GPT-2's std/sqrt(2L) on top of a 1/L multiplier",
            PROJ,
            PROJ_INIT_LINE,
            says=("L^-0.50 on top of the branch multiplier ∝ L^-1.00", "counted twice"),
        ),
        Invalid(
            gpt(1.0, proj_init=0.5),
            "an init growing with depth",
            PROJ,
            PROJ_INIT_LINE,
            severity="warning",
            says=("grows with depth",),
        ),
    ],
    "MU504": [
        Invalid(
            gpt(0.5, block_lr=0.0),
            "α = ½ without its lr rule",
            BLOCKS,
            OPT_LINE,
            says=("lr ∝ L^0", "need lr ∝ L^-0.50", "too large"),
        ),
        Invalid(
            gpt(1.0, block_lr=-0.5),
            "α = ½'s lr rule on an α = 1 model",
            BLOCKS,
            OPT_LINE,
            says=("need lr ∝ L^0", "too small"),
        ),
        Invalid(gpt(0.5, sgd=True, block_lr=-0.5), "SGD with Adam's lr rule", BLOCKS, OPT_LINE, says=("2α−1",)),
        Invalid(
            gpt(None, proj_init=-1.0, block_lr=0.0, profile="completep"),
            "α = 1 in c_proj's init without the factor on its lr (under mup: an init alone, a note)",
            PROJ,
            OPT_LINE,
            says=("their init carries the branch's factor", "need lr ∝ L^-1.00"),
        ),
        Invalid(
            gpt(None, proj_init=-0.5, profile="depth-mup"),
            "GPT-2 init alone under depth-mup: α̂ = ½ from the init, no lr rule",
            "h.*.ln_1.weight, h.*.attn.c_attn.weight, h.*.ln_2.weight, h.*.mlp.c_fc.weight",
            OPT_LINE,
            count=2,
        ),
        Invalid(
            gpt(1.0, gate=True, gate_lr=0.0),
            "a gate ∝ 1/L stepped at the blocks' lr",
            "h.*.attn_gate, h.*.mlp_gate",
            OPT_LINE,
            says=("need lr ∝ L^-1.00",),
        ),
    ],
    "MU505": [
        Invalid(
            gpt(1.0, nonblock_lr=-1.0),
            "embedding, final norm and readout lr ∝ 1/L",
            NON_BLOCK,
            OPT_LINE,
            severity="warning",
            says=("L^-1.00", "keep lr ∝ L^0"),
        ),
        Invalid(
            gpt(None, nonblock_lr=-0.5, profile="depth-mup"),
            "a depth lr on non-block parameters alone, under depth-mup",
            NON_BLOCK,
            OPT_LINE,
            "warning",
        ),
    ],
    "MU506": [
        Invalid(gpt(1.0, eps=0.0, profile="completep"), "constant ε under completep", BLOCKS, OPT_LINE, "warning"),
        Invalid(
            gpt(0.5, eps=0.0, grad_rms=1e-6),
            "constant ε where it reaches the gradients of a 16× deeper model",
            BLOCKS,
            OPT_LINE,
            "warning",
            says=("1e-08", "scale eps by L^-0.50"),
        ),
    ],
    "MU507": [
        Invalid(
            gpt(1.0, extra=0.0),
            "an x0 injection left unscaled beside 1/L branches",
            "x0_gate",
            EXTRA_LINE,
            "warning",
            says=("L^0", "L^-1.00"),
        ),
    ],
}


@pytest.mark.parametrize(("code", "case"), params(VALID))
def test_valid(code, case):
    judge_valid(code, case)


@pytest.mark.parametrize(("code", "case"), params(INVALID))
def test_invalid(code, case):
    judge_invalid(code, case)


def test_no_depth_rule_fires_on_a_correct_model_or_a_width_only_one():
    for case in correct_forms():
        assert codes_on(case.facts) == set(), case.why
    width_only = gpt(None)
    width_only.depth = None  # no depth knob: nothing to judge
    assert codes_on(width_only) == set()


def test_intent_and_the_note_under_each_profile():
    plain = gpt(None)
    assert not shows_intent(plain.depth) and not judged(plain) and model_alpha(plain.depth) == 0.0
    assert depth_notes(plain.depth, "mup") == [NO_SCALING_NOTE]
    assert depth_notes(plain.depth, "completep") == []  # judged (MU501) instead
    assert judged(gpt(None, profile="completep")) and shows_intent(gpt(0.0, source="constant").depth)
    assert codes_on(gpt(None, profile="completep")) == {"MU501"}
    assert model_alpha(gpt(None, proj_init=-1.0, proj_lr=-1.0, block_lr=0.0).depth) == pytest.approx(1.0)


def test_the_severities_are_the_designs():
    import mulint.rules.depth  # noqa: F401  (registers the rules)
    import mulint.rules.depth_lr  # noqa: F401
    from mulint.rules.base import RULES

    severities = {
        code: RULES[code].severity for code in ("MU501", "MU502", "MU503", "MU504", "MU505", "MU506", "MU507")
    }
    assert severities == {
        "MU501": "error",
        "MU502": "error",
        "MU503": "error",
        "MU504": "error",
        "MU505": "warning",
        "MU506": "warning",
        "MU507": "warning",
    }
    assert [f.severity for f in run("MU503", gpt(1.0, proj_init=0.5))] == ["warning"]
