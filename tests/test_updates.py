"""Measured updates: the RMS→RMS operator norm of one real optimizer step, fitted against width,
reproduces the spectral condition's exponents for Muon, a sign update and Adafactor on a µP GPT."""

from __future__ import annotations

import copy
import statistics

import pytest
import torch
from conftest import MODELS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GPT = MODELS / "spectral_gpt.py"
WIDTHS = (32, 64, 128)


@pytest.fixture(scope="module")
def gpt():
    from mulint.analysis.model import analyse_model
    from mulint.reading.targets import parse_target, resolve

    [target] = resolve(parse_target(f"{GPT}:GPT"), allow_exec=True)
    return target, analyse_model(target, widths=[32, 64], measure=False)


def measured(gpt, factory: str, widths=WIDTHS):
    """The facts' parameters with their measured updates, and the notes, for one optimizer factory."""
    from mulint.analysis.update_facts import update_facts
    from mulint.analysis.update_numbers import UpdateNumbers
    from mulint.analysis.updates import batch_for, measure_updates

    target, structure = gpt
    params = copy.deepcopy(structure.facts.params)
    numbers = UpdateNumbers(exact_families=())  # AdamW and torch's Adafactor (an "adam") measured too
    make = getattr(target.module, factory)
    for width in widths:
        torch.manual_seed(0)
        measure_updates(make, target.module.GPT(width), width, params, batch_for(target, structure), numbers)
    notes: list[str] = []
    update_facts(numbers, params, notes, factory)
    return params, notes


def exponents(params, role: str) -> list[float]:
    return [u.update_exponent for p in params for u in p.uses if u.role == role and u.update_exponent is not None]


@pytest.mark.slow
@pytest.mark.parametrize(
    "factory, hidden",
    [
        ("muon_original", 0.0),
        ("muon_original_adam_rule", -1.0),  # Adam's 1/width copied to Muon: hidden layers stop learning
        ("muon_match_rms", 0.5),
        ("muon_match_rms_sqrt", 0.0),
        ("sign_one_lr", 1.0),
        ("sign_mup", 0.0),
        ("adafactor_one_lr", 0.5),
        ("adafactor_adam_rule", -0.5),
        ("adafactor_mup", 0.0),
    ],
)
def test_hidden_update_exponent_of_each_optimizer(gpt, factory, hidden):
    params, notes = measured(gpt, factory)
    found = exponents(params, "hidden")
    assert len(found) == 8, notes  # qkv, proj, fc, out in two blocks
    assert statistics.median(found) == pytest.approx(hidden, abs=0.15)
    assert all(abs(e - hidden) < 0.3 for e in found), found
    # Every factory here is µP outside the hidden weights (AdamW or the same rule at constant lr,
    # the readout's 1/width_mult multiplier included).
    for role in ("input", "output", "vector"):
        assert all(abs(e) < 0.25 for e in exponents(params, role)), (role, exponents(params, role))


@pytest.mark.slow
def test_measuring_leaves_the_model_as_built(gpt):
    from mulint.analysis.update_numbers import UpdateNumbers
    from mulint.analysis.updates import batch_for, measure_updates

    target, structure = gpt
    torch.manual_seed(0)
    model = target.module.GPT(32)
    before = {n: p.detach().clone() for n, p in model.state_dict().items()}
    numbers = UpdateNumbers()
    measure_updates(
        target.module.sign_one_lr,
        model,
        32,
        copy.deepcopy(structure.facts.params),
        batch_for(target, structure),
        numbers,
    )
    assert numbers.norms and not numbers.failure
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.slow
def test_zero_initialised_readout_does_not_hide_the_hidden_updates(gpt):
    # At step 1 no gradient reaches the hidden weights behind a zero readout; the measured step is
    # the second, after the readout moved.
    params, notes = measured(gpt, "zero_readout_adamw_mup")
    assert not any("no gradient" in n for n in notes), notes
    assert statistics.median(exponents(params, "hidden")) == pytest.approx(0.0, abs=0.2)


@pytest.mark.slow
def test_a_parameter_without_gradient_is_named(gpt):
    params, notes = measured(gpt, "frozen_embedding_adamw")
    [note] = [n for n in notes if "no gradient" in n]
    assert "wte.weight" in note and "step 2" in note
    wte = next(p for p in params if p.name == "wte.weight")
    assert wte.update_no_grad and all(u.update_exponent is None for u in wte.uses)


def test_non_square_and_batched_weights_are_read_by_their_use():
    from mulint.analysis.update_norms import in_out_dims
    from mulint.facts import ParamFacts, ParamUse

    def use(kind, fan_in, fan_out, fin, fout):
        return ParamUse(
            op="x",
            kind=kind,
            role="hidden",
            fan_in=fan_in,
            fan_out=fan_out,
            fan_in_infinite=fin,
            fan_out_infinite=fout,
            node="n",
        )

    square_embedding = ParamFacts(name="e", shape=(64, 64), shapes={}, infinite_dims=(1,))
    assert in_out_dims(square_embedding, use("lookup", 64, 64, False, True)) == ([0], [1])
    conv = ParamFacts(name="c", shape=(16, 8, 3, 3), shapes={}, infinite_dims=(0, 1))
    assert in_out_dims(conv, use("contraction", 72, 16, True, True)) == ([1, 2, 3], [0])
    experts = ParamFacts(name="x", shape=(4, 32, 128), shapes={}, infinite_dims=(1, 2))
    assert in_out_dims(experts, use("contraction", 32, 128, True, True)) == ([1], [2])


def test_spectral_norm_matches_the_singular_values():
    from mulint.analysis.update_norms import spectral_norm

    torch.manual_seed(0)
    a = torch.randn(3, 300, 40) @ torch.randn(3, 40, 200)
    exact = float(torch.linalg.matrix_norm(a, ord=2).max())
    assert spectral_norm(a) == pytest.approx(exact, rel=0.03)
    assert spectral_norm(torch.zeros(1, 50, 50)) == 0.0


# The rules MU311-MU313 on facts: pure functions of the measured exponents and the profile.


def facts_with(*weights, cls="Muon", family="unknown", lr_exponent=0.0, settings="", profile="mup"):
    """One weight per (name, role, measured exponent[, kind]), all stepped by ``cls``."""
    from mulint.facts import ModelFacts, OptimizerFacts, ParamFacts, ParamUse, SourceLoc

    params = []
    for name, role, exponent, *kind in weights:
        use = ParamUse(
            op="linear",
            kind=kind[0] if kind else "contraction",
            role=role,
            fan_in=64,
            fan_out=64,
            fan_in_infinite=role != "input",
            fan_out_infinite=role != "output",
            node="n",
            update_exponent=exponent,
            update_norm={64: 1.0, 128: 1.0} if exponent is not None else {},
        )
        params.append(
            ParamFacts(
                name=name,
                shape=(64, 64),
                shapes={},
                infinite_dims=(0, 1),
                uses=[use],
                lr_exponent=lr_exponent,
                optimizer=cls,
                optimizer_family=family,
                update_step=2,
                update_settings=settings,
            )
        )
    loc = SourceLoc("model.py", 30)
    return ModelFacts(
        target="model.py:M",
        path="model.py",
        width_knob="width",
        base_width=64,
        widths=[64, 128],
        params=params,
        optimizer=OptimizerFacts(label="model.py:make_optimizer", cls=cls, family=family, loc=loc),
        profile=profile,
    )


def run_rules(facts):
    from mulint.rules.spectral import MeasuredUpdateTooLarge, MeasuredUpdateTooSmall, MuonOnEmbeddingOrReadout

    return [
        f
        for rule in (MeasuredUpdateTooLarge, MeasuredUpdateTooSmall, MuonOnEmbeddingOrReadout)
        for f in rule().check(facts)
    ]


def test_a_growing_update_is_an_error_naming_the_lr_that_fixes_it():
    facts = facts_with(("h.0.w", "hidden", 0.48), ("h.1.w", "hidden", 0.53), settings="adjust_lr_fn='match_rms_adamw'")
    [finding] = run_rules(facts)
    assert (finding.code, finding.severity, finding.parameter, finding.line) == ("MU311", "error", "h.*.w", 30)
    assert "adjust_lr_fn='match_rms_adamw'" in finding.message and "step 2" in finding.message
    assert "hidden parameters need lr ∝ width^-0.50 with Muon" in finding.message


def test_a_shrinking_update_is_a_warning():
    [finding] = run_rules(facts_with(("fc.w", "hidden", -0.5), cls="Adafactor", lr_exponent=-1.0))
    assert (finding.code, finding.severity) == ("MU312", "warning")
    assert "hidden parameters need lr ∝ width^-0.50 with Adafactor" in finding.message


def test_updates_within_tolerance_are_clean():
    assert (
        run_rules(
            facts_with(
                ("a", "hidden", 0.12),
                ("b", "input", -0.2),
                ("c", "output", 0.1),
                ("d", "vector", -0.05),
                cls="SignMomentum",
            )
        )
        == []
    )


def test_adam_and_sgd_are_left_to_the_exact_rules_unless_the_profile_says_otherwise():
    weights = (("fc.w", "hidden", 1.0),)
    assert run_rules(facts_with(*weights, cls="AdamW", family="adam")) == []
    [finding] = run_rules(facts_with(*weights, cls="AdamW", family="adam", profile="spectral"))
    assert finding.code == "MU311" and "lr ∝ width^-1.00 with AdamW" in finding.message


def test_muon_on_embedding_or_readout_is_reported_once():
    facts = facts_with(("wte", "input", -0.75, "lookup"), ("head", "output", 0.5), ("first", "input", 0.0))
    findings = run_rules(facts)
    assert sorted((f.code, f.parameter, f.severity) for f in findings) == [
        ("MU313", "head", "error"),
        ("MU313", "wte", "warning"),
    ]
    assert "embedding table" in next(f.message for f in findings if f.parameter == "wte")


def test_u_mup_accepts_an_embedding_update_shrinking_like_width_to_the_minus_half():
    weights = (("wte", "input", -0.5, "lookup"),)
    assert run_rules(facts_with(*weights, cls="SignMomentum", profile="u-mup")) == []
    [finding] = run_rules(facts_with(*weights, cls="SignMomentum"))
    assert finding.code == "MU312"


@pytest.fixture(scope="module")
def analysed():
    from mulint.analysis.model import analyse_model
    from mulint.reading.functions import FunctionRef
    from mulint.reading.targets import parse_target, resolve

    def run(spec, optimizer=None, widths=None, profile="mup"):
        [target] = resolve(parse_target(spec), allow_exec=True)
        chosen = FunctionRef.parse(optimizer) if optimizer else None
        return analyse_model(target, optimizer=chosen, widths=widths, profile=profile).facts

    return run


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec, optimizer, widths",
    [
        ("examples/nanogpt_sp.py:GPT", None, [64, 128, 256]),  # AdamW, one lr: hidden and readout too large
        ("examples/mlp_mup.py:MLP", None, [64, 128, 256]),  # Adam, µP: clean
        # SGD with one lr: input and readout too small. An SGD step is the gradient, which carries every
        # other layer's scaling: judged at the default widths, 128 to 512, where it is clear of small-width effects.
        (f"{GPT}:GPT", f"{GPT}:sgd_one_lr", None),
    ],
)
def test_measured_and_exact_rules_agree_where_both_apply(analysed, spec, optimizer, widths):
    from conftest import ROOT

    from mulint.rules.optimizer import _mismatches
    from mulint.rules.spectral import deviations

    # Adam and SGD are judged exactly, so their steps are normally not measured: the spectral
    # profile measures every optimizer.
    facts = analysed(str(ROOT / spec) if spec.startswith("examples") else spec, optimizer, widths, "spectral")
    exact = {
        (p.name, role, 1 if eff > want else -1)
        for family in ("adam", "sgd")
        for role, eff, want, _, p in _mismatches(facts, family)
    }
    measured = {(d.param.name, d.use.role, d.direction) for d in deviations(facts, include_exact=True)}
    assert exact == measured
    assert any(u.update_exponent is not None for p in facts.params for u in p.uses)


@pytest.mark.slow
def test_a_setup_judged_exactly_is_not_stepped(analysed):
    facts = analysed(f"{GPT}:GPT", f"{GPT}:adamw_one_lr", widths=[32, 64, 128])
    assert all(u.update_exponent is None for p in facts.params for u in p.uses)
    assert not any("update sizes" in n for n in facts.notes)


@pytest.mark.slow
def test_through_the_cli_muon_with_match_rms_needs_a_shrinking_lr(mulint):
    code, out, _ = mulint(
        "check",
        f"{GPT}:GPT",
        "--optimizer",
        f"{GPT}:muon_match_rms",
        "--widths",
        "32,64,128",
        "--select",
        "MU3",
        "--no-cache",
    )
    assert code == 1 and "MU311" in out and "hidden parameters need lr ∝ width^-0.50 with Muon" in out
    assert "adjust_lr_fn='match_rms_adamw'" in out and "MU301" not in out
