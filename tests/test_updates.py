"""Measured updates: the RMS→RMS operator norm of one real optimizer step, fitted against width,
reproduces the spectral condition's exponents for Muon, a sign update and Adafactor on a µP GPT."""

from __future__ import annotations

import copy
import statistics

import pytest
import torch

from conftest import MODELS

GPT = MODELS / "spectral_gpt.py"
WIDTHS = (32, 64, 128)


@pytest.fixture(scope="module")
def gpt():
    from mulint.analysis.model import analyse_model
    from mulint.load.targets import parse_target, resolve

    [target] = resolve(parse_target(f"{GPT}:GPT"), allow_exec=True)
    return target, analyse_model(target, widths=[32, 64], measure=False)


def measured(gpt, factory: str, widths=WIDTHS):
    """The facts' parameters with their measured updates, and the notes, for one optimizer factory."""
    from mulint.analysis.updates import UpdateNumbers, batch_for, measure_updates, update_facts

    target, structure = gpt
    params = copy.deepcopy(structure.facts.params)
    numbers = UpdateNumbers()
    make = getattr(target.module, factory)
    for width in widths:
        torch.manual_seed(0)
        measure_updates(make, target.module.GPT(width), width, params, batch_for(target, structure), numbers)
    notes: list[str] = []
    update_facts(numbers, params, notes, factory)
    return params, notes


def exponents(params, role: str) -> list[float]:
    return [u.update_exponent for p in params for u in p.uses if u.role == role and u.update_exponent is not None]


@pytest.mark.parametrize("factory, hidden", [
    ("muon_original", 0.0),
    ("muon_original_adam_rule", -1.0),  # Adam's 1/width copied to Muon: hidden layers stop learning
    ("muon_match_rms", 0.5),
    ("muon_match_rms_sqrt", 0.0),
    ("sign_one_lr", 1.0),
    ("sign_mup", 0.0),
    ("adafactor_one_lr", 0.5),
    ("adafactor_adam_rule", -0.5),
    ("adafactor_mup", 0.0),
])
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


def test_measuring_leaves_the_model_as_built(gpt):
    from mulint.analysis.updates import UpdateNumbers, batch_for, measure_updates

    target, structure = gpt
    torch.manual_seed(0)
    model = target.module.GPT(32)
    before = {n: p.detach().clone() for n, p in model.state_dict().items()}
    numbers = UpdateNumbers()
    measure_updates(target.module.sign_one_lr, model, 32, copy.deepcopy(structure.facts.params),
                    batch_for(target, structure), numbers)
    assert numbers.norms and not numbers.failure
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_zero_initialised_readout_does_not_hide_the_hidden_updates(gpt):
    # At step 1 no gradient reaches the hidden weights behind a zero readout; the measured step is
    # the second, after the readout moved.
    params, notes = measured(gpt, "zero_readout_adamw_mup")
    assert not any("no gradient" in n for n in notes), notes
    assert statistics.median(exponents(params, "hidden")) == pytest.approx(0.0, abs=0.2)


def test_a_parameter_without_gradient_is_named(gpt):
    params, notes = measured(gpt, "frozen_embedding_adamw")
    [note] = [n for n in notes if "no gradient" in n]
    assert "wte.weight" in note and "step 2" in note
    wte = next(p for p in params if p.name == "wte.weight")
    assert wte.update_no_grad and all(u.update_exponent is None for u in wte.uses)


def test_non_square_and_batched_weights_are_read_by_their_use():
    from mulint.analysis.updates import in_out_dims
    from mulint.facts import ParamFacts, ParamUse

    def use(kind, fan_in, fan_out, fin, fout):
        return ParamUse(op="x", kind=kind, role="hidden", fan_in=fan_in, fan_out=fan_out,
                        fan_in_infinite=fin, fan_out_infinite=fout, node="n")

    square_embedding = ParamFacts(name="e", shape=(64, 64), shapes={}, infinite_dims=(1,))
    assert in_out_dims(square_embedding, use("lookup", 64, 64, False, True)) == ([0], [1])
    conv = ParamFacts(name="c", shape=(16, 8, 3, 3), shapes={}, infinite_dims=(0, 1))
    assert in_out_dims(conv, use("contraction", 72, 16, True, True)) == ([1, 2, 3], [0])
    experts = ParamFacts(name="x", shape=(4, 32, 128), shapes={}, infinite_dims=(1, 2))
    assert in_out_dims(experts, use("contraction", 32, 128, True, True)) == ([1], [2])


def test_spectral_norm_matches_the_singular_values():
    from mulint.analysis.updates import spectral_norm

    torch.manual_seed(0)
    a = torch.randn(3, 300, 40) @ torch.randn(3, 40, 200)
    exact = float(torch.linalg.matrix_norm(a, ord=2).max())
    assert spectral_norm(a) == pytest.approx(exact, rel=0.03)
    assert spectral_norm(torch.zeros(1, 50, 50)) == 0.0
