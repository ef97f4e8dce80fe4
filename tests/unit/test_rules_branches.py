"""Rules on a forward with several branches (`mulint.rules.check_model_rules`): a finding that holds on some
branches names them, learning-rate rules are judged only where the model trains, and the measured
rules (MU311-MU313) are judged once, on the updates measured with the default call."""

from dataclasses import replace

from mulint.rules import all_rules, check_model_rules, model_rules

from .facts_builder import adam, branch, embedding, hidden, model, other, output, sdpa

INFERENCE = "the inference branch, `targets=None`"
LEARNING_RATE_RULES = {r.code for r in all_rules() if r.trains_only}
MEASURED_RULES = {r.code for r in all_rules() if r.judged_on == "measured"}


def two_branches(head_mult_default: float, head_mult_training: float, *, head_lr: float = 0.0, opt=None):
    """nanoGPT-like: forward(idx, targets=None) computes the logits one way for inference, another for training."""
    head = output("lm_head.weight", init=0.0, mult=head_mult_default, lr=head_lr)
    training_use = replace(head.uses[0], multiplier_exponent=head_mult_training)
    facts = model(hidden("h.0.fc.weight", lr=-1.0), head, optimizer=opt or adam())
    facts.branch, facts.branch_trains = INFERENCE, False
    facts.branches = [branch("training", uses={"lm_head.weight": [training_use]})]
    return facts


def test_a_finding_on_the_default_branch_only_names_it():
    facts = two_branches(0.0, -1.0)
    (finding,) = [f for f in check_model_rules(facts) if f.code == "MU102"]
    assert finding.message.endswith(f"(on {INFERENCE})") and finding.parameter == "lm_head.weight"


def test_a_finding_on_the_training_branch_only_names_it():
    facts = two_branches(-1.0, 0.0)
    (finding,) = [f for f in check_model_rules(facts) if f.code == "MU102"]
    assert finding.message.endswith("(on the training branch, `targets` given)")


def test_a_finding_on_every_branch_is_reported_once_without_a_branch():
    facts = two_branches(0.0, 0.0)
    (finding,) = [f for f in check_model_rules(facts) if f.code == "MU102"]
    assert "(on " not in finding.message


def test_learning_rate_rules_skip_the_branch_that_does_not_train():
    """The readout's lr is constant: µP on the training branch (multiplier 1/width), not on inference's."""
    facts = two_branches(0.0, -1.0, head_lr=0.0)
    assert [f for f in check_model_rules(facts) if f.code in LEARNING_RATE_RULES] == []
    # The same lr where the training branch has no multiplier: judged there, and named without a branch.
    facts = two_branches(-1.0, 0.0, head_lr=0.0)
    (finding,) = [f for f in check_model_rules(facts) if f.code == "MU301"]
    assert finding.parameter == "lm_head.weight" and "(on " not in finding.message


def test_learning_rate_rules_on_a_default_branch_that_trains():
    facts = two_branches(0.0, -1.0, head_lr=0.0)
    facts.branch_trains = True
    (finding,) = [f for f in check_model_rules(facts) if f.code == "MU301"]
    assert "output parameters get updates ∝ width^0" in finding.message


def test_measured_rules_are_judged_once_on_the_default_call():
    facts = two_branches(0.0, -1.0, opt=other("Sophia"))
    facts.params[0] = hidden("h.0.fc.weight", lr=0.0, update=0.5)
    facts.params[0].optimizer, facts.params[0].optimizer_family = "Sophia", "unknown"
    found = [f for f in check_model_rules(facts) if f.code in MEASURED_RULES]
    assert [(f.code, f.parameter) for f in found] == [("MU311", "h.*.fc.weight")]
    assert "(on " not in found[0].message


def test_every_measured_rule_is_judged_once_with_branches():
    """Muon on an embedding (MU313), a hidden update that shrinks (MU312) and one that grows (MU311), each
    once and without a branch, though the branches use the parameters differently."""
    ps = [
        embedding("wte.weight", lr=0.0, update=0.0),
        hidden("h.0.fc.weight", lr=0.0, update=-0.5),
        hidden("h.0.proj.weight", lr=0.0, update=0.5, update_settings="adjust_lr_fn='original'"),
    ]
    facts = model(*ps, optimizer=other("Muon"))
    facts.branch, facts.branch_trains = INFERENCE, False
    facts.branches = [branch("training", uses={"h.0.fc.weight": [replace(ps[1].uses[0], multiplier_exponent=-1.0)]})]
    found = sorted(
        (f.code, f.parameter, "(on " in f.message) for f in check_model_rules(facts) if f.code in MEASURED_RULES
    )
    assert found == [
        ("MU311", "h.*.proj.weight", False),
        ("MU312", "h.*.fc.weight", False),
        ("MU313", "wte.weight", False),
    ]


def test_attention_on_the_training_branch_only():
    facts = model(hidden("h.0.fc.weight"), attention=[sdpa(form="sdpa", scale_exp=-1.0)])
    facts.branch, facts.branch_trains = INFERENCE, False
    facts.branches = [branch("training", attention=[sdpa()])]
    (finding,) = check_model_rules(facts)
    assert finding.code == "MU201" and finding.message.endswith("(on the training branch, `targets` given)")


def test_every_model_rule_runs_on_branches_without_error():
    """A branch view keeps the facts every rule reads (optimizer, coord, mup modules, numbers)."""
    facts = two_branches(0.0, -1.0)
    codes = {f.code for f in check_model_rules(facts, model_rules())}
    assert codes == {"MU102"}
