"""Optimizer rules MU301, MU302, MU304-MU306 on facts: µP's learning rates in their formulations (per-group
lr ∝ 1/width, multipliers that move the exponent into the forward, mup-style tied readouts, u-µP's
embedding lr), SP's one lr for all, and each edge: the 0.25 tolerance, SGD's 2a+c, AdamW's lr·wd, and
Adam's eps against a tenth of the hidden gradient's rms."""

import pytest

from .cases import Invalid, Valid, judge_invalid, judge_valid, params, run
from .facts_builder import (
    NUMERIC,
    adam,
    at,
    embedding,
    hidden,
    mixed,
    model,
    other,
    output,
    scalar,
    sgd,
    tied,
    vector,
)

INSIDE, OUTSIDE = 0.24, 0.26


def mup_adam(**over):
    """µP for Adam (TP5 Table 3): lr ∝ 1/width for hidden and output weights, constant for the rest."""
    lrs = {"wte": 0.0, "h": -1.0, "ln": 0.0, "head": -1.0, **over}
    return [
        embedding("wte.weight", lr=lrs["wte"]),
        hidden("h.0.fc.weight", lr=lrs["h"]),
        vector("h.0.ln.weight", lr=lrs["ln"]),
        output("head.weight", init=None, lr=lrs["head"]),
    ]


def mup_sgd(**over):
    """µP for SGD: lr ∝ width for input weights and vectors, constant for hidden, 1/width for the readout."""
    lrs = {"wte": 1.0, "h": 0.0, "ln": 1.0, "head": -1.0, **over}
    return [
        embedding("wte.weight", lr=lrs["wte"]),
        hidden("h.0.fc.weight", lr=lrs["h"]),
        vector("h.0.ln.weight", lr=lrs["ln"]),
        output("head.weight", init=None, lr=lrs["head"]),
    ]


def with_lrs(facts, lrs: dict[int, float]):
    """The facts with one parameter's learning rates replaced (e.g. an integer division that gives 0)."""
    from mulint.exponents import fit_exponent

    p = facts.params[0]
    p.lr = dict(lrs)
    p.lr_exponent = fit_exponent(p.lr)
    return facts


def with_decay(facts, decay: dict[int, float]):
    facts.params[0].weight_decay = dict(decay)
    return facts


VALID = {
    "MU301": [
        Valid(model(*mup_adam(), optimizer=adam()), "table 3: per-group lr ∝ 1/width"),
        Valid(
            model(
                embedding("wte.weight", lr=0.0),
                hidden("h.0.fc.weight", init=0.0, mult=-0.5, lr=-0.5),
                output("head.weight", init=0.0, mult=-1.0, lr=0.0),
                optimizer=adam(),
            ),
            "multipliers in forward carry part of the exponent (a+c)",
        ),
        Valid(
            model(
                tied("wte.weight", "lm_head.weight", out_mult=-1.0, lr=0.0),
                hidden("h.0.fc.weight", lr=-1.0),
                optimizer=adam(),
            ),
            "nanoGPT-µP: tied table at the embedding's lr, logits / width_mult",
        ),
        Valid(model(*mup_adam(wte=-0.5), optimizer=adam(), profile="u-mup"), "u-µP: embedding lr ∝ width^-½ accepted"),
        Valid(model(*mup_adam(h=-1.0 + INSIDE), optimizer=adam()), "hidden lr just inside (above)"),
        Valid(model(*mup_adam(head=-1.0 - INSIDE), optimizer=adam()), "readout lr just inside (below)"),
        Valid(model(*mup_adam(h=0.0, head=0.0), optimizer=adam(), profile="spectral"), "spectral: judged by MU311"),
        Valid(model(*mup_adam(h=0.0), optimizer=sgd()), "an SGD setup is MU302's"),
        Valid(model(hidden("h.0.fc.weight", init=-0.5)), "no optimizer"),
        Valid(model(hidden("h.0.fc.weight", lr=0.0, role_source="shape"), optimizer=adam()), "unused in the trace"),
    ],
    "MU302": [
        Valid(model(*mup_sgd(), optimizer=sgd()), "SGD µP: lr ∝ width for input and vectors"),
        Valid(
            model(output("head.weight", init=0.0, mult=-0.5, lr=0.0), optimizer=sgd()),
            "a 1/sqrt(width) readout multiplier counts twice for SGD (2a+c)",
        ),
        Valid(model(*mup_sgd(h=INSIDE), optimizer=sgd()), "hidden lr just inside"),
        Valid(model(*mup_sgd(wte=1.0 - INSIDE), optimizer=sgd()), "input lr just inside"),
    ],
    "MU304": [
        Valid(
            model(hidden("h.0.fc.weight", lr=-1.0, wd=0.1, wd_exp=1.0), optimizer=adam()), "nanoGPT-µP: wd × width_mult"
        ),
        Valid(model(hidden("h.0.fc.weight", init=0.0, lr=0.0, wd=0.1), optimizer=adam()), "SP: lr and wd constant"),
        Valid(model(hidden("h.0.fc.weight", lr=-INSIDE, wd=0.1), optimizer=adam()), "lr·wd just inside"),
        Valid(model(hidden("h.0.fc.weight", lr=-1.0, wd=0.1), optimizer=adam("Adam")), "Adam's L2 decay: not judged"),
        Valid(model(hidden("h.0.fc.weight", lr=-1.0, wd=0.0), optimizer=adam()), "no decay"),
        Valid(
            with_decay(model(hidden("h.0.fc.weight", lr=-1.0), optimizer=adam()), {128: 0.0, 256: 0.1, 512: 0.1}),
            "no decay at some width: not judged",
        ),
    ],
    "MU305": [
        Valid(model(*mup_adam(), optimizer=adam(eps=1e-8, hidden_grad_rms=1e-3)), "default eps"),
        Valid(model(*mup_adam(), optimizer=adam(eps=0.099e-3, hidden_grad_rms=1e-3)), "eps just under a tenth"),
        Valid(model(*mup_sgd(), optimizer=sgd(eps=1e-3, hidden_grad_rms=1e-3)), "SGD has no eps to judge"),
        Valid(model(*mup_adam(), optimizer=adam(eps=1e-3)), "no hidden gradient measured"),
    ],
    "MU306": [
        Valid(model(*mup_adam(), optimizer=adam()), "every lr positive"),
        Valid(with_lrs(model(hidden("h.0.fc.weight", lr=-1.0)), dict.fromkeys(NUMERIC, 0.0)), "no optimizer"),
    ],
}

INVALID = {
    "MU301": [
        Invalid(
            model(*mup_adam(h=0.0, head=0.0), optimizer=adam()),
            "SP: one lr for all (hidden, then the readout)",
            "h.*.fc.weight",
            60,
            count=2,
            says=(
                "AdamW: hidden parameters get updates ∝ width^0 (lr ∝ width^0)",
                "µP needs width^-1.00 (too large: it blows up as width grows)",
            ),
            fix={"applicability": "unsafe", "kind": "optimizer-lr", "family": "adam", "cls": "AdamW", "role": "hidden"},
        ),
        Invalid(
            model(*mup_adam(h=-1.0 + OUTSIDE), optimizer=adam()),
            "hidden lr just outside (above)",
            "h.*.fc.weight",
            60,
            says=("updates ∝ width^-0.75 (lr ∝ width^-0.74)",),
            fix={"applicability": "unsafe", "role": "hidden"},
        ),
        Invalid(
            model(*mup_adam(head=-2.0), optimizer=adam()),
            "over-scaled readout lr",
            "head.weight",
            60,
            says=("output parameters get updates ∝ width^-2.00", "too small: it stops learning"),
            fix={"applicability": "unsafe", "role": "output"},
        ),
        Invalid(
            model(*mup_adam(wte=-1.0), optimizer=adam()),
            "scaled embedding lr",
            "wte.weight",
            60,
            says=("input parameters get updates ∝ width^-1.00", "µP needs width^0 (too small"),
            fix={"applicability": "unsafe", "role": "input"},
        ),
        Invalid(
            model(*mup_adam(wte=-0.5), optimizer=adam()),
            "u-µP's embedding lr under the µP profile",
            "wte.weight",
            60,
            says=("width^-0.50",),
            fix={"applicability": "unsafe", "role": "input"},
        ),
        Invalid(
            model(*mup_adam(head=-1.0 - OUTSIDE), optimizer=adam()),
            "readout lr just outside (below)",
            "head.weight",
            60,
            says=("too small",),
            fix={"applicability": "unsafe", "role": "output"},
        ),
        Invalid(
            model(
                hidden("h.0.fc.weight", lr=0.0, lr_scale_key="lr_scale"),
                output("head.weight", init=None, lr=-1.0),
                optimizer=adam(),
            ),
            "an lr_scale key the loop applies: the fixer does not rewrite it",
            "h.*.fc.weight",
            60,
            says=("param_group['lr'] × param_group['lr_scale'] as the training loop applies it",),
        ),
        Invalid(
            model(
                hidden("h.0.fc.weight", lr=0.0, optimizer="AdamW", optimizer_family="adam"),
                hidden("h.0.attn.weight", lr=-1.0, optimizer="Muon", optimizer_family="unknown"),
                optimizer=mixed(),
            ),
            "several optimizers: the AdamW-stepped one is judged, no fix",
            "h.*.fc.weight",
            60,
            says=("AdamW: hidden parameters",),
        ),
    ],
    "MU302": [
        Invalid(
            model(*mup_sgd(wte=0.0, h=0.0, ln=0.0, head=0.0), optimizer=sgd()),
            "SGD with one lr: input and vectors too small, readout too large",
            "wte.weight",
            60,
            count=3,
            says=("SGD: input parameters get updates ∝ width^0 (lr ∝ width^0), µP needs width^+1.00 (too small",),
            fix={"applicability": "unsafe", "kind": "optimizer-lr", "family": "sgd", "role": "input"},
        ),
        Invalid(
            model(output("head.weight", init=0.0, mult=-1.0, lr=-1.0), optimizer=sgd()),
            "SGD readout with a 1/width multiplier and lr ∝ 1/width: 2a+c = -3",
            "head.weight",
            60,
            says=("updates ∝ width^-3.00",),
            fix={"applicability": "unsafe", "role": "output"},
        ),
        Invalid(
            model(*mup_sgd(h=OUTSIDE), optimizer=sgd()),
            "hidden lr just outside",
            "h.*.fc.weight",
            60,
            says=("width^+0.25 (lr ∝ width^+0.26)",),
            fix={"applicability": "unsafe", "role": "hidden"},
        ),
    ],
    "MU304": [
        Invalid(
            model(hidden("h.0.fc.weight", lr=-1.0, wd=0.1), hidden("h.1.fc.weight", lr=-1.0, wd=0.1), optimizer=adam()),
            "µP lr with a constant weight decay",
            "h.*.fc.weight",
            60,
            severity="warning",
            says=("AdamW decays by lr·weight_decay ∝ width^-1.00; keep it constant across widths",),
        ),
        Invalid(
            model(hidden("h.0.fc.weight", lr=-OUTSIDE, wd=0.1), optimizer=adam()),
            "lr·wd just outside",
            "h.*.fc.weight",
            60,
            severity="warning",
            says=("∝ width^-0.26",),
        ),
        Invalid(
            model(hidden("h.0.fc.weight", init=0.0, lr=0.0, wd=0.1, wd_exp=1.0), optimizer=adam()),
            "a decay scaled up without its lr scaled down",
            "h.*.fc.weight",
            60,
            severity="warning",
            says=("width^+1.00",),
        ),
    ],
    "MU305": [
        Invalid(
            model(*mup_adam(), optimizer=adam(eps=1e-4, hidden_grad_rms=5e-4)),
            "eps 1e-4 against gradients of 5e-4",
            None,
            60,
            severity="warning",
            says=("AdamW eps=0.0001", "(rms 0.0005 at width 512", "use eps ≤ 5e-06"),
        ),
        Invalid(
            model(
                hidden("h.0.fc.weight", lr=0.0, optimizer="Muon", optimizer_family="unknown"),
                embedding("wte.weight", lr=0.0, optimizer="AdamW", optimizer_family="adam"),
                optimizer=mixed(eps=1e-4, hidden_grad_rms=5e-4),
            ),
            "Muon beside AdamW: the AdamW part's eps is judged",
            None,
            60,
            severity="warning",
            says=("AdamW + Muon eps=0.0001",),
        ),
        Invalid(
            model(*mup_adam(), optimizer=adam(eps=0.101e-3, hidden_grad_rms=1e-3)),
            "eps just over a tenth",
            None,
            60,
            severity="warning",
            says=("eps=0.000101",),
        ),
    ],
    "MU306": [
        Invalid(
            with_lrs(model(hidden("h.0.fc.weight", lr=-1.0), optimizer=adam()), {128: 1e-3, 256: 0.0, 512: 0.0}),
            "lr * (base_width // width): 0 beyond the base width",
            "h.*.fc.weight",
            60,
            says=("AdamW: learning rate 0 at width 256, 512, not at the others", "never train"),
        ),
        Invalid(
            with_lrs(model(hidden("h.0.fc.weight", lr=-1.0), optimizer=adam()), dict.fromkeys(NUMERIC, 0.0)),
            "lr 0 everywhere",
            "h.*.fc.weight",
            60,
            says=("at width 128, 256, 512 (every width analysed)",),
        ),
    ],
}


@pytest.mark.parametrize(("code", "case"), params(VALID))
def test_valid(code, case):
    judge_valid(code, case)


@pytest.mark.parametrize(("code", "case"), params(INVALID))
def test_invalid(code, case):
    judge_invalid(code, case)


def test_sp_findings_one_per_role_and_the_fix_carries_every_parameter():
    facts = model(*mup_adam(h=0.0, head=0.0), optimizer=adam())
    by_role = {f.fix.edits[0].role: f for f in run("MU301", facts)}
    assert sorted(by_role) == ["hidden", "output"] and by_role["output"].parameter == "head.weight"
    entries = {e["names"][0]: e for e in by_role["hidden"].fix.edits[0].to_dict()["params"]}
    assert sorted(entries) == ["h.*.fc.weight", "h.*.ln.weight", "head.weight", "wte.weight"]
    assert entries["h.*.fc.weight"]["uses"] == [{"k": 1, "multiplier": 0.0, "role": "hidden", "target": -1.0}]
    assert entries["wte.weight"]["uses"][0]["target"] == 0.0 and entries["head.weight"]["lr_exponent"] == 0.0


def test_the_lr_read_with_its_source_is_named():
    facts = model(hidden("h.0.fc.weight", lr=0.0, lr_source="scheduler base lr (LambdaLR)"), optimizer=adam())
    (finding,) = run("MU301", facts)
    assert "(lr ∝ width^0: scheduler base lr (LambdaLR))" in finding.message


def test_mu304_points_at_the_optimizer_that_decays():
    """Parameters decayed by another optimizer of the setup are not AdamW's."""
    muon_stepped = hidden("h.0.attn.weight", lr=-1.0, wd=0.1, optimizer="Muon", optimizer_family="unknown")
    adamw_stepped = embedding("wte.weight", lr=-1.0, wd=0.1, optimizer="AdamW", optimizer_family="adam")
    adamw_stepped.optimizer_at = at(61)
    (finding,) = run("MU304", model(adamw_stepped, muon_stepped, optimizer=mixed()))
    assert finding.parameter == "wte.weight" and finding.line == 61
    assert finding.message.startswith("AdamW decays by lr·weight_decay ∝ width^-1.00")
    assert run("MU304", model(muon_stepped, optimizer=other())) == []


def test_mu306_names_the_optimizer_of_each_parameter():
    adamw = embedding("wte.weight", lr=0.0, optimizer="AdamW", optimizer_family="adam")
    muon = hidden("h.0.fc.weight", lr=-1.0, optimizer="Muon", optimizer_family="unknown")
    adamw.optimizer_at, muon.optimizer_at = at(61), at(62)
    for p in (adamw, muon):
        p.lr = dict.fromkeys(NUMERIC, 0.0)
    found = sorted(run("MU306", model(adamw, muon, optimizer=mixed())), key=lambda f: f.line)
    assert [(f.line, f.parameter, f.message.split(":")[0]) for f in found] == [
        (61, "wte.weight", "AdamW"),
        (62, "h.*.fc.weight", "Muon"),
    ]


def test_mu306_groups_by_where_the_lr_is_zero():
    facts = model(hidden("a.weight", lr=-1.0), hidden("b.weight", lr=-1.0), optimizer=adam())
    facts.params[0].lr = {128: 1e-3, 256: 0.0, 512: 0.0}
    facts.params[1].lr = dict.fromkeys(NUMERIC, 0.0)
    assert sorted(f.parameter for f in run("MU306", facts)) == ["a.weight", "b.weight"]


def test_the_fix_edit_carries_each_judged_parameter_once_with_its_exponents_rounded():
    """Frozen, untraced and scalar parameters are not in the edit; the SGD factor k = 2; fitted exponents to
    three decimals; twelve blocks are one entry."""
    frozen = hidden("frozen.weight", lr=None)
    untraced = hidden("buffer_like.weight", lr=0.0, role_source="shape")
    noisy = output("head.weight", init=None, mult=-0.49856, lr=-0.49913)
    blocks = [hidden(f"h.{i}.fc.weight", lr=0.5) for i in range(12)]
    facts = model(frozen, untraced, *blocks, noisy, scalar("head.bias", lr=0.0), optimizer=sgd())
    (finding,) = [f for f in run("MU302", facts) if f.fix.edits[0].role == "hidden"]
    entries = finding.fix.edits[0].to_dict()["params"]
    assert [e["names"] for e in entries] == [["h.*.fc.weight"], ["head.weight"]]
    assert entries[0] == {
        "names": ["h.*.fc.weight"],
        "lr_exponent": 0.5,
        "uses": [{"k": 2, "multiplier": 0.0, "role": "hidden", "target": 0.0}],
    }
    assert entries[1]["lr_exponent"] == -0.499
    assert entries[1]["uses"] == [{"k": 2, "multiplier": -0.499, "role": "output", "target": -1.0}]


def test_a_parameter_of_another_optimizer_first_does_not_hide_the_rest():
    muon = hidden("h.0.attn.weight", lr=0.0, optimizer="Muon", optimizer_family="unknown")
    adamw = hidden("h.0.fc.weight", lr=0.0, optimizer="AdamW", optimizer_family="adam")
    assert [f.parameter for f in run("MU301", model(muon, adamw, optimizer=mixed()))] == ["h.*.fc.weight"]
    assert [f.parameter for f in run("MU301", model(hidden("frozen.weight", lr=None), adamw, optimizer=adam()))] == [
        "h.*.fc.weight"
    ]
