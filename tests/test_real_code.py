"""Patterns from public µP and unit-scaled code bases, each in a correct and a broken version:
findings must be right in both directions."""

from __future__ import annotations

import pytest
from conftest import MODELS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def analyse(spec: str, **options):
    from mulint.analysis.model import analyse_model
    from mulint.reading.functions import FunctionRef
    from mulint.reading.targets import parse_target, resolve
    from mulint.rules import model_rules

    if isinstance(options.get("optimizer"), str):
        options["optimizer"] = FunctionRef.parse(options["optimizer"])
    [target] = resolve(parse_target(spec), allow_exec=True)
    if isinstance(options.get("optimizer"), str):  # as --optimizer names it
        options["optimizer"] = FunctionRef.parse(options["optimizer"])
    facts = analyse_model(target, **options).facts
    findings = [f for rule in model_rules() for f in rule().check(facts)]
    return facts, findings


def codes(findings) -> dict[str, set[str]]:
    """code -> the parameter patterns it names."""
    out: dict[str, set[str]] = {}
    for f in findings:
        out.setdefault(f.code, set()).update((f.parameter or "").split(", "))
    return out


UNIT = MODELS / "unit_scaled.py"


@pytest.mark.slow
def test_a_factor_on_a_fused_qkv_output_is_the_projections_multiplier():
    facts, findings = analyse(f"{UNIT}:make_scaled")
    qkv = facts.param("blocks.0.qkv.weight")
    assert [round(u.multiplier_exponent, 2) for u in qkv.uses] == [-0.5]
    # The factor is the projection's, so the logits are scaled by 1/head_dim alone.
    assert [round(s.scale_exponent, 2) for s in facts.attention] == [-1.0, -1.0]
    assert findings == []


@pytest.mark.slow
def test_a_fused_qkv_without_its_factor_is_a_constant_init():
    facts, findings = analyse(f"{UNIT}:make_unscaled")
    assert codes(findings) == {"MU101": {"blocks.*.qkv.weight"}, "MU301": {"blocks.*.qkv.weight"}}


def _facts_with_lrs(lrs: dict[str, dict[int, float]]):
    from mulint.facts import ModelFacts, OptimizerFacts, ParamFacts, ParamUse

    params = []
    for name, lr in lrs.items():
        use = ParamUse(
            op="linear",
            kind="contraction",
            role="hidden",
            fan_in=64,
            fan_out=64,
            fan_in_infinite=True,
            fan_out_infinite=True,
            node="linear",
        )
        params.append(ParamFacts(name=name, shape=(64, 64), shapes={}, infinite_dims=(0, 1), uses=[use], lr=lr))
    facts = ModelFacts(
        target="m.py:M",
        path="m.py",
        width_knob="width",
        base_width=64,
        widths=[64, 128],
        params=params,
        numeric_widths=[64, 128, 256],
    )
    facts.optimizer = OptimizerFacts(label="m.py:make_optimizer", cls="Adam", family="adam", loc=None)
    return facts


def test_a_learning_rate_of_zero_is_reported():
    from mulint.rules.optimizer import ZeroLearningRate

    # lr * (64 // width): the proxy trains, the wide models do not
    facts = _facts_with_lrs(
        {
            "h.0.fc.weight": {64: 1e-3, 128: 0.0, 256: 0.0},
            "h.1.fc.weight": {64: 1e-3, 128: 0.0, 256: 0.0},
            "frozen.weight": {64: 0.0, 128: 0.0, 256: 0.0},
            "fine.weight": {64: 1e-3, 128: 5e-4, 256: 2.5e-4},
        }
    )
    found = list(ZeroLearningRate().check(facts))
    assert [(f.code, f.parameter) for f in found] == [("MU306", "h.*.fc.weight"), ("MU306", "frozen.weight")]
    assert "at width 128, 256, not at the others" in found[0].message
    assert "every width analysed" in found[1].message
    assert list(ZeroLearningRate().check(_facts_with_lrs({"fine.weight": {64: 1e-3, 128: 5e-4}}))) == []


LR_SCALE = MODELS / "lr_scale_keys.py"


@pytest.mark.slow
def test_an_lr_scale_key_the_training_loop_applies_is_judged_with_the_lr():
    """nanoGPT-mup keeps 1/width_mult under `lr_scale`: judged as applied, the setup is µP."""
    facts, findings = analyse(f"{LR_SCALE}:MLPLM")
    assert findings == [] and facts.param("h.0.c_fc.weight").lr_scale_key == "lr_scale"


@pytest.mark.slow
def test_scaling_the_lr_beside_its_lr_scale_is_reported_with_the_key():
    facts, findings = analyse(f"{LR_SCALE}:MLPLM", optimizer=f"{LR_SCALE}:lr_scaled_twice")
    by_code = {f.code: f for f in findings}
    # twice scaled: too small; and lr·wd shrinks with it
    assert codes(findings) == {
        "MU301": {"h.*.c_fc.weight", "h.*.c_proj.weight"},
        "MU304": {"h.*.c_fc.weight", "h.*.c_proj.weight"},
    }
    assert "param_group['lr_scale']" in by_code["MU301"].message and "too small" in by_code["MU301"].message
    assert by_code["MU301"].fix is None  # rewriting 'lr' would not undo the key


@pytest.mark.slow
def test_a_projects_own_lr_scale_key_comes_from_the_config():
    spec, opt = f"{LR_SCALE}:MLPLM", f"{LR_SCALE}:own_key"
    assert analyse(spec, optimizer=opt, lr_scale_keys=("lr_factor",))[1] == []
    facts, findings = analyse(spec, optimizer=opt)
    assert "MU301" in codes(findings)
    assert any("`lr_factor`" in note and "lr-scale-key" in note for note in facts.notes)


OPTIMIZERS = MODELS / "optimizer_list.py"


@pytest.mark.slow
def test_a_list_of_optimizers_is_one_setup():
    """AdamW for the embedding and the head, Muon (not judged) for the hidden matrices."""
    facts, findings = analyse(f"{OPTIMIZERS}:GPT")
    assert findings == []
    assert facts.optimizer.cls == "AdamW + Muon" and facts.optimizer.family == "mixed"
    assert {p.name: p.optimizer for p in facts.params} == {
        "embed.weight": "AdamW",
        "lm_head.weight": "AdamW",
        **{f"blocks.{i}.{n}.weight": "Muon" for i in (0, 1) for n in ("c_fc", "c_proj")},
    }
    # CastedLinear's weight.type_as(x) reads x's dtype only: still a weight, not an activation
    assert facts.param("blocks.0.c_fc.weight").roles == ("hidden",)
    assert [n for n in facts.notes if "optimizer Muon has no learning-rate table" in n and "blocks.*.c_fc.weight" in n]


@pytest.mark.slow
def test_each_parameter_is_judged_by_the_optimizer_that_owns_it():
    facts, findings = analyse(f"{OPTIMIZERS}:GPT", optimizer=f"{OPTIMIZERS}:head_lr_not_scaled")
    assert codes(findings) == {"MU301": {"lm_head.weight"}}
    [finding] = findings
    assert (
        finding.message.startswith("AdamW: output parameters")
        and "adam = torch.optim.AdamW" in OPTIMIZERS.read_text().splitlines()[finding.line - 1]
    )


def test_a_factory_returning_something_else_says_what_it_may_return():
    import torch

    from mulint.analysis.lr_reads import split_made
    from mulint.errors import MulintError

    adam = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))])
    assert split_made((adam,), "f", "t")[0] == [adam] and split_made({"a": adam}, "f", "t")[0] == [adam]
    with pytest.raises(MulintError, match="a list holding str") as info:
        split_made([adam, "sgd"], "f", "t")
    assert "list, tuple or dict of optimizers" in info.value.hint


BRANCHES = MODELS / "targets_branch.py"


def _check_branches(spec):
    from mulint.analysis.model import analyse_model
    from mulint.reading.targets import parse_target, resolve
    from mulint.rules import check_model_rules

    [target] = resolve(parse_target(spec), allow_exec=True)
    facts = analyse_model(target).facts
    return facts, check_model_rules(facts)


@pytest.mark.slow
def test_a_multiplier_on_one_branch_only_is_reported_on_the_other_branch():
    facts, findings = _check_branches(f"{BRANCHES}:LastTokenMultiplierLM")
    assert facts.branch == "the inference branch, `targets=None`"
    assert [b.description for b in facts.branches] == ["the training branch, `targets` given"]
    # MU102 where the multiplier is missing; no MU301: the training branch has it, and trains
    assert codes(findings) == {"MU102": {"lm_head.weight"}}
    [finding] = findings
    assert finding.message.endswith("(on the inference branch, `targets=None`)")
    # an untied readout is reported where it is initialised
    assert (
        BRANCHES.read_text().splitlines()[finding.line - 1].strip() == "nn.init.normal_(self.lm_head.weight, std=0.02)"
    )


@pytest.mark.slow
def test_the_same_multiplier_on_both_branches_is_one_model():
    facts, findings = _check_branches(f"{BRANCHES}:BothBranchesLM")
    assert findings == [] and facts.branches == [] and facts.branch == ""


MOE = MODELS / "routed_moe.py"


@pytest.mark.slow
def test_a_model_export_cannot_trace_is_recorded_while_it_runs():
    facts, findings = analyse(f"{MOE}:RoutedMoE")
    assert [n for n in facts.notes if n.startswith("traced by running the model") and "torch.export failed" in n]
    roles = {p.name: p.roles for p in facts.params}
    assert roles["embed.weight"] == ("input",) and roles["head.weight"] == ("output",)
    assert roles["moe.router.weight"] == ("output",) and roles["norm.weight"] == ("vector",)
    assert all(roles[f"moe.experts.{e}.{n}.weight"] == ("hidden",) for e in (0, 1) for n in ("up", "down"))
    assert findings == []


@pytest.mark.slow
def test_findings_on_a_recorded_model():
    facts, findings = analyse(f"{MOE}:SPRoutedMoE")
    assert codes(findings) == {
        "MU102": {"moe.router.weight", "head.weight"},
        "MU301": {"moe.router.weight", "head.weight", "moe.experts.*.up.weight", "moe.experts.*.down.weight"},
    }


@pytest.mark.slow
@pytest.mark.parametrize("spec", [f"{UNIT}:make_unscaled", f"{BRANCHES}:LastTokenMultiplierLM", f"{OPTIMIZERS}:GPT"])
def test_recording_a_traceable_model_finds_what_export_finds(spec, monkeypatch):
    import mulint.analysis.structure as structure
    from mulint.rules import check_model_rules

    def summary():
        facts = analyse(spec)[0]
        roles = {p.name: (p.roles, [round(u.multiplier_exponent, 2) for u in p.uses]) for p in facts.params}
        return roles, sorted((f.code, f.line, f.parameter, f.message) for f in check_model_rules(facts))

    exported = summary()
    monkeypatch.setattr(structure, "EXPORT", False)
    assert summary() == exported


INPUTS = MODELS / "input_order.py"


@pytest.mark.slow
def test_inputs_for_the_layer_forward_reads_first_are_tried():
    from mulint.analysis.structure import analyse_structure
    from mulint.reading.targets import parse_target, resolve

    [target] = resolve(parse_target(f"{INPUTS}:FeaturesWithPositions"), allow_exec=True)
    structure = analyse_structure(target)
    roles = {p.name: p.roles for p in structure.facts.params}
    assert (
        roles["pos.weight"] == ("input",) and roles["inp.weight"] == ("input",) and roles["out.weight"] == ("output",)
    )
    assert structure.inputs_index > 0  # token ids for the position table came first, and failed


@pytest.mark.slow
def test_the_error_lists_the_inputs_tried_and_shows_example_inputs():
    from mulint.analysis.structure import analyse_structure
    from mulint.errors import MulintError
    from mulint.reading.targets import parse_target, resolve

    [target] = resolve(parse_target(f"{INPUTS}:TwoStreams"), allow_exec=True)
    with pytest.raises(MulintError) as info:
        analyse_structure(target)
    assert "floats (2, 4) for `a`" in info.value.message and "floats (2, 8, 4) for `a`" in info.value.message
    assert "def example_inputs(model):" in info.value.hint


@pytest.mark.slow
def test_hf_models_offer_their_dummy_inputs_last():
    from models import hf_small

    from mulint.construct.inputs import described_candidates

    described = [d for d, _ in described_candidates(hf_small.gpt2(), "meta")]
    assert described[0].startswith("token ids (2, 8) below 128 for `transformer.wte`")  # unchanged first choice
    assert described[-1].startswith("dummy_inputs (input_ids")


@pytest.mark.slow
def test_a_multiplier_in_train_mode_only_is_reported_in_eval_mode():
    facts, findings = _check_branches(f"{BRANCHES}:TrainModeMultiplierLM")
    assert codes(findings) == {"MU102": {"lm_head.weight"}}
    assert findings[0].message.endswith("(on the eval-mode branch, `model.eval()`)")
