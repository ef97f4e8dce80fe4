"""Init rules MU101-MU105 on facts: µP's formulations pass (Table 3's scaled init, Table 8's multipliers,
mup's width_mult, u-µP's unit init), SP's inits fail with their numbers, line and fix, and every
tolerance edge (0.25 around the profile's exponent) is tried just inside and just outside."""

import pytest

from .cases import Invalid, Valid, judge_invalid, judge_valid, params, run
from .facts_builder import dense_input, embedding, hidden, model, output, tied, vector

INSIDE, OUTSIDE = 0.24, 0.26  # the shared exponent tolerance is 0.25

VALID = {
    "MU101": [
        Valid(model(hidden("h.0.fc.weight", init=-0.5)), "table 3: std ∝ fan_in^-½"),
        Valid(model(hidden("h.0.fc.weight", init=0.0, mult=-0.5)), "table 8: unit init, 1/sqrt(width) multiplier"),
        Valid(model(hidden("h.0.fc.weight", init=-0.4975)), "mup: std 0.02 / sqrt(width_mult), as fitted"),
        Valid(model(hidden("h.0.fc.weight", init=-0.5 + INSIDE)), "just inside the tolerance"),
        Valid(model(hidden("h.0.fc.weight", init=None)), "zero init"),
        Valid(model(hidden("h.0.fc.weight", init=0.0, role_source="shape")), "not used in the trace"),
        Valid(model(hidden("h.0.fc.weight", init=0.0, late_init_line=70)), "re-initialised late: MU402's"),
    ],
    "MU102": [
        Valid(model(output("head.weight", init=None)), "zero-initialised readout"),
        Valid(model(output("head.weight", init=-1.0)), "table 3: std ∝ 1/fan_in"),
        Valid(model(output("head.weight", init=0.0, mult=-1.0)), "table 8 / MuReadout: 1/width multiplier"),
        Valid(model(output("head.weight", init=-0.5, mult=-0.5)), "split between init and multiplier"),
        Valid(model(tied("wte.weight", "lm_head.weight", out_mult=-1.0)), "nanoGPT-µP: tied, logits / width_mult"),
        Valid(model(output("head.weight", init=-1.0 + INSIDE)), "just inside the tolerance"),
        Valid(model(output("head.weight", init=-2.0)), "smaller than µP: allowed"),
    ],
    "MU103": [
        Valid(model(embedding("wte.weight", init=0.0)), "embedding std constant"),
        Valid(model(dense_input("inp.weight", init=0.0)), "dense input std in_features^-½"),
        Valid(model(vector("ln.weight", init=0.0), vector("fc.bias", init=None, op="linear")), "unit gain, zero bias"),
        Valid(model(vector("ln.weight", init=-0.5)), "a vector shrinking with width is no violation"),
        Valid(model(embedding("wte.weight", init=INSIDE)), "input just inside (above)"),
        Valid(model(embedding("wte.weight", init=-INSIDE)), "input just inside (below)"),
        Valid(model(vector("ln.weight", init=INSIDE)), "vector just inside"),
        Valid(model(embedding("wte.weight", init=0.5, mult=-0.5)), "growing init cancelled by its multiplier"),
    ],
    "MU104": [
        Valid(model(hidden("h.0.fc.weight", init=-0.5)), "std ∝ fan_in^-½"),
        Valid(model(hidden("h.0.fc.weight", init=-0.5 - INSIDE)), "just inside the tolerance"),
        Valid(model(hidden("h.0.fc.weight", init=-1.0, mult=0.5)), "small init, growing multiplier"),
    ],
    "MU105": [
        Valid(
            model(hidden("h.0.fc.weight", init=0.0, mult=-0.5), profile="u-mup"), "u-µP: unit init, scale in forward"
        ),
        Valid(model(hidden("h.0.fc.weight", init=-0.5)), "µP accepts the scale in the init"),
        Valid(
            model(hidden("h.0.fc.weight", init=-0.5 + INSIDE, mult=-0.5 - INSIDE), profile="u-mup"),
            "multiplier just inside u-µP's range",
        ),
        Valid(
            model(hidden("h.0.fc.weight", init=0.0), profile="u-mup"), "wrong effective init: MU101 says it, not MU105"
        ),
        Valid(model(output("head.weight", init=0.0, mult=-1.0), profile="u-mup"), "u-µP readout: 1/fan_in in forward"),
        Valid(
            model(hidden("h.0.fc.weight", init=-1.0), profile="u-mup"), "an init too small: MU104 says it, not MU105"
        ),
    ],
}

INVALID = {
    "MU101": [
        Invalid(
            model(hidden("h.0.fc.weight", init=0.0, init_line=30)),
            "SP: constant std 0.02",
            "h.*.fc.weight",
            30,
            says=("init ∝ width^0 (rms 0.02 at width 128)", "µP needs std ∝ fan_in^-½ (width^-0.50)"),
            fix={"applicability": "unsafe", "kind": "init-std", "line": 30, "power": 0.5, "base_width": 128},
        ),
        Invalid(
            model(hidden("h.0.fc.weight", init=-0.5 + OUTSIDE)),
            "just outside the tolerance",
            "h.*.fc.weight",
            17,
            says=("init ∝ width^-0.24",),
            fix={"applicability": "unsafe", "kind": "init-std", "power": 0.25},
        ),
        Invalid(
            model(hidden("h.0.fc.weight", init=-0.5, mult=0.5)),
            "a multiplier that grows with width",
            "h.*.fc.weight",
            17,
            says=("init ∝ width^0 ", "multiplier ∝ width^+0.50"),
            fix={"applicability": "unsafe", "power": 0.5},
        ),
        Invalid(
            model(hidden("h.0.fc.weight", init=0.5)),
            "an init growing like sqrt(width)",
            "h.*.fc.weight",
            17,
            says=("init ∝ width^+0.50",),
            fix={"applicability": "unsafe", "power": 1.0},
        ),
    ],
    "MU102": [
        Invalid(
            model(output("head.weight", init=-0.5)),
            "SP: nn.Linear's default init",
            "head.weight",
            19,
            says=("readout init ∝ width^-0.50", "µP needs width^-1"),
            fix={
                "applicability": "unsafe",
                "kind": "readout-multiplier",
                "line": 45,
                "lines": [45],
                "module": "head",
                "params": ["head.weight"],
            },
        ),
        Invalid(
            model(output("head.weight", init=-1.0 + OUTSIDE)),
            "just outside the tolerance",
            "head.weight",
            19,
            says=("readout init ∝ width^-0.74",),
            fix={"applicability": "unsafe", "kind": "readout-multiplier"},
        ),
        Invalid(
            model(tied("transformer.wte.weight", "lm_head.weight", init=0.0, init_line=89)),
            "nanoGPT SP: tied embedding/readout, std 0.02",
            "transformer.wte.weight",
            50,
            says=("tied embedding/readout init ∝ width^0", "multiply the logits by base_width / width"),
            fix={
                "applicability": "unsafe",
                "kind": "readout-multiplier",
                "line": 50,
                "module": "lm_head",
                "params": ["transformer.wte.weight", "lm_head.weight"],
            },
        ),
        Invalid(
            model(tied("wte.weight", "lm_head.weight", init=0.5, out_mult=-1.0)),
            "MuSharedReadout: the multiplier is there, the shared init grows",
            "wte.weight",
            50,
            says=("the logits' multiplier is there, but the shared weight's init grows",),
        ),
        Invalid(
            model(output("head.weight", init=INSIDE)),
            "an init growing like width^0.24: one multiplier still fixes it",
            "head.weight",
            19,
            says=("readout init ∝ width^+0.24",),
            fix={"applicability": "unsafe", "kind": "readout-multiplier"},
        ),
        Invalid(
            model(output("head.weight", init=OUTSIDE)),
            "an init growing like width^0.26: too large for one multiplier, no fix",
            "head.weight",
            19,
            says=("readout init ∝ width^+0.26",),
        ),
    ],
    "MU103": [
        Invalid(
            model(vector("ln.weight", init=0.5)),
            "a norm gain growing like sqrt(width)",
            "ln.weight",
            18,
            says=("vector parameter init ∝ width^+0.50", "grows with width", "µP keeps it constant (width^0)"),
        ),
        Invalid(
            model(vector("ln.weight", init=OUTSIDE)),
            "vector just outside the tolerance",
            "ln.weight",
            18,
            says=("width^+0.26",),
        ),
        Invalid(
            model(embedding("wte.weight", init=OUTSIDE)),
            "embedding just outside (above)",
            "wte.weight",
            16,
            says=("input parameter init ∝ width^+0.26",),
        ),
        Invalid(
            model(embedding("wte.weight", init=-0.5)),
            "embedding std 1/sqrt(d_model): the signal fades",
            "wte.weight",
            16,
            severity="warning",
            says=("input weight init ∝ width^-0.50", "shrinks with width", "µP keeps it constant (width^0)"),
        ),
        Invalid(
            model(dense_input("inp.weight", init=-OUTSIDE)),
            "dense input just outside (below)",
            "inp.weight",
            16,
            severity="warning",
            says=("width^-0.26",),
        ),
        Invalid(
            model(embedding("wte.weight", init=0.0, mult=0.5)),
            "a multiplier growing on the embedding's path",
            "wte.weight",
            16,
            says=("multiplier ∝ width^+0.50",),
        ),
    ],
    "MU104": [
        Invalid(
            model(hidden("h.0.fc.weight", init=-1.0)),
            "std ∝ 1/fan_in on a hidden weight",
            "h.*.fc.weight",
            17,
            severity="warning",
            says=("init ∝ width^-1.00", "shrinks too fast", "µP needs std ∝ fan_in^-½ (width^-0.50)"),
        ),
        Invalid(
            model(hidden("h.0.fc.weight", init=-0.5 - OUTSIDE)),
            "just outside the tolerance",
            "h.*.fc.weight",
            17,
            severity="warning",
            says=("width^-0.76",),
        ),
    ],
    "MU105": [
        Invalid(
            model(hidden("h.0.fc.weight", init=-0.5), profile="u-mup"),
            "u-µP: the scale sits in the init",
            "h.*.fc.weight",
            17,
            severity="warning",
            says=(
                "hidden weight: forward multiplier ∝ width^0 and init ∝ width^-0.50",
                "u-µP keeps the init unit (width^0) and scales by width^-0.50 in the forward op",
            ),
        ),
        Invalid(
            model(hidden("h.0.fc.weight", init=-OUTSIDE, mult=-0.5 + OUTSIDE), profile="u-mup"),
            "multiplier just outside u-µP's range",
            "h.*.fc.weight",
            17,
            severity="warning",
            says=("forward multiplier ∝ width^-0.25",),
        ),
    ],
}


@pytest.mark.parametrize(("code", "case"), params(VALID))
def test_valid(code, case):
    judge_valid(code, case)


@pytest.mark.parametrize(("code", "case"), params(INVALID))
def test_invalid(code, case):
    judge_invalid(code, case)


def test_ten_or_more_blocks_are_one_pattern_and_the_fix_spares_other_weights_on_the_line():
    """nanoGPT's _init_weights: one line inits every Linear and Embedding. A 12-block model's hidden
    weights are one finding `h.*.mlp.c_fc.weight`; the fix excludes the weights on that line that are fine."""
    blocks = [hidden(f"h.{i}.mlp.c_fc.weight", init=0.0, init_line=89) for i in range(12)]
    wte = embedding("wte.weight", init=0.0, init_line=89)
    facts = model(wte, *blocks, vector("h.0.ln_1.weight"))
    (finding,) = run("MU101", facts)
    assert finding.parameter == "h.*.mlp.c_fc.weight" and finding.line == 89
    edit = finding.fix.edits[0]
    assert edit.exclude == ("wte.weight",)


def test_the_fix_excludes_a_tied_weight_by_its_plainest_name():
    """A weight tied under several names is excluded by the one a reader finds: fewest digits, then shortest."""
    facts = model(
        hidden("h.0.fc.weight", init=0.0, init_line=89),
        tied("wte.weight", "heads.0.proj.weight", init=0.0, init_line=89),
    )
    (finding,) = run("MU101", facts)
    assert finding.fix.edits[0].exclude == ("wte.weight",)


def test_hidden_weights_on_different_lines_are_separate_findings_and_differences_beyond_tolerance_get_no_fix():
    facts = model(hidden("a.weight", init=0.0, init_line=30), hidden("b.weight", init=0.5, init_line=31))
    by_line = {f.line: f for f in run("MU101", facts)}
    assert sorted(by_line) == [30, 31] and by_line[30].parameter == "a.weight"
    # Two weights on one line whose exponents differ by more than the tolerance: one power cannot fix both.
    mixed = model(hidden("a.weight", init=0.0, init_line=30), hidden("b.weight", init=0.5, init_line=30))
    (finding,) = run("MU101", mixed)
    assert finding.parameter == "a.weight, b.weight" and "width^+0.50" in finding.message and finding.fix is None
    close = model(hidden("a.weight", init=0.0, init_line=30), hidden("b.weight", init=0.24, init_line=30))
    (finding,) = run("MU101", close)
    assert finding.fix is not None and finding.fix.edits[0].power == 0.75


def test_a_parameter_used_in_two_roles_is_judged_in_each():
    """A tied SP embedding/readout is fine as an embedding (MU103 silent) and an SP readout (MU102)."""
    facts = model(tied("wte.weight", "lm_head.weight", init=0.0))
    assert run("MU103", facts) == []
    assert [f.code for f in run("MU102", facts)] == ["MU102"]
