"""Every rule of mulint has VALID and INVALID cases in the fast tier, and whole µP models in each
formulation pass every model rule at once (no rule flags another's formulation)."""

import pytest

from mulint.rules import all_rules, check_model_rules, model_rules

from . import (
    test_rule_mu303_source,
    test_rules_attention,
    test_rules_coord_depth,
    test_rules_depth,
    test_rules_init,
    test_rules_measured,
    test_rules_mup_coord,
    test_rules_optimizer,
)
from .facts_builder import (
    adam,
    coord_layer,
    dense_input,
    embedding,
    hidden,
    model,
    mup_module,
    other,
    output,
    scalar,
    sdpa,
    sgd,
    tied,
    vector,
)

FACTS_MODULES = (
    test_rules_init,
    test_rules_attention,
    test_rules_optimizer,
    test_rules_measured,
    test_rules_mup_coord,
    test_rules_coord_depth,
    test_rules_depth,
)


def test_every_rule_has_valid_and_invalid_cases():
    valid = {code for m in FACTS_MODULES for code, cases in m.VALID.items() if cases}
    invalid = {code for m in FACTS_MODULES for code, cases in m.INVALID.items() if cases}
    static = {"MU303"} if test_rule_mu303_source.VALID and test_rule_mu303_source.INVALID else set()
    codes = {rule.code for rule in all_rules()}
    assert codes - (valid | static) == set(), "rules without VALID cases"
    assert codes - (invalid | static) == set(), "rules without INVALID cases"
    assert (valid | invalid | static) - codes == set(), "cases of codes that are no rule"


def blocks(n, **kw):
    out = []
    for i in range(n):
        out += [
            hidden(f"h.{i}.attn.c_attn.weight", **kw),
            hidden(f"h.{i}.mlp.c_fc.weight", **kw),
            vector(f"h.{i}.ln_1.weight", lr=0.0),
        ]
    return out


MUP_MODELS = [
    pytest.param(
        model(
            embedding("wte.weight", lr=0.0),
            *blocks(12, init=-0.5, lr=-1.0),
            output("lm_head.weight", init=None, lr=-1.0),
            optimizer=adam(eps=1e-8, hidden_grad_rms=1e-3),
            attention=[sdpa(form="sdpa", scale_exp=-1.0, count=12)],
        ),
        id="table 3: scaled init and per-group lr, zero readout",
    ),
    pytest.param(
        model(
            embedding("wte.weight", lr=0.0),
            *blocks(2, init=0.0, mult=-0.5, lr=-0.5),
            output("lm_head.weight", init=0.0, mult=-1.0, lr=0.0),
            optimizer=adam(),
            attention=[sdpa(form="explicit", scale_exp=-1.0)],
        ),
        id="table 8: unit init, multipliers in forward",
    ),
    pytest.param(
        model(
            tied("wte.weight", "lm_head.weight", out_mult=-1.0, lr=0.0, wd=0.1),
            *blocks(2, init=-0.5, lr=-1.0, wd=0.1, wd_exp=1.0),
            optimizer=adam(),
            attention=[sdpa(form="sdpa", scale_exp=-1.0), sdpa(form="sdpa", scale_exp=-1.0, node="sdpa_1")],
        ),
        id="nanoGPT-µP: tied, logits / width_mult, wd × width_mult",
    ),
    pytest.param(
        model(
            dense_input("inp.weight", lr=1.0),
            vector("inp.bias", init=None, op="linear", lr=1.0),
            hidden("hidden.0.weight", lr=0.0),
            output("readout.weight", init=None, lr=-1.0),
            scalar("readout.bias", lr=-1.0),  # no width dimension: no role to judge it by
            optimizer=sgd(),
        ),
        id="SGD µP MLP",
    ),
    pytest.param(
        model(
            embedding("wte.weight", lr=-0.5),
            *blocks(2, init=0.0, mult=-0.5, lr=-0.5),
            output("lm_head.weight", init=0.0, mult=-1.0, lr=0.0),
            optimizer=adam(),
            profile="u-mup",
        ),
        id="u-µP: unit scaling, embedding lr ∝ width^-½",
    ),
    pytest.param(
        model(
            embedding("wte.weight", lr=0.0, update=0.0, update_unorthogonalised=True),
            hidden("h.0.fc.weight", lr=0.0, update=0.0),
            output("lm_head.weight", init=None, lr=0.0, update=0.0, update_unorthogonalised=True),
            optimizer=other("Muon"),
        ),
        id="Muon for matrices, its AdamW backup for the embedding and readout",
    ),
    pytest.param(
        model(
            hidden("h.0.fc.weight"),
            mup_modules=[mup_module("lm_head"), mup_module("wte", "MuSharedReadout")],
            coord=[coord_layer("h.0.fc", 0.05, "ok")],
            coord_widths=[64, 128],
        ),
        id="mup package layers with base shapes, a flat coordinate check",
    ),
]


@pytest.mark.parametrize("facts", MUP_MODELS)
def test_whole_mup_models_pass_every_model_rule(facts):
    found = check_model_rules(facts, model_rules())
    assert [(f.code, f.parameter, f.message) for f in found] == []
