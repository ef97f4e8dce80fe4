"""`--knob`: the output multiplier and the init scale are set from outside the model, exactly, and a
sweep over one of them runs end to end from the Python API."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import mulint
from mulint.errors import MulintError
from mulint.sweep.trial import apply_knob, readout_module

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Linear(8, 3))


def test_init_scale_multiplies_weight_matrices_and_leaves_gains_and_biases():
    before, model = net(), net()
    assert apply_knob(SimpleNamespace(swept="init-scale"), model, 4.0) == 1.0
    assert torch.equal(model[0].weight, 4 * before[0].weight) and torch.equal(model[2].weight, 4 * before[2].weight)
    assert torch.equal(model[0].bias, before[0].bias) and torch.equal(model[1].weight, before[1].weight)


def test_the_output_multiplier_scales_the_readouts_output_or_else_the_logits():
    x = torch.randn(5, 6)
    plain = net()(x)
    model = net()
    assert apply_knob(SimpleNamespace(swept="output-multiplier", readout="2"), model, 8.0) == 1.0
    assert torch.allclose(model(x), 8 * plain)
    # No readout module of its own: the factor is left for the logits before the loss.
    assert apply_knob(SimpleNamespace(swept="output-multiplier", readout=None), net(), 8.0) == 8.0
    assert torch.allclose(net()(x), plain)  # and the model itself is untouched


def _structure(*modules: str):
    use = [SimpleNamespace(role="output", kind="contraction", module=m) for m in modules]
    params = [SimpleNamespace(uses=[u]) for u in use] + [
        SimpleNamespace(uses=[SimpleNamespace(role="hidden", kind="contraction", module="h.0.fc")])
    ]
    return SimpleNamespace(facts=SimpleNamespace(params=params))


def test_the_readout_is_the_module_running_the_output_contraction():
    assert readout_module(_structure("lm_head", "lm_head"), "m", "targets") == "lm_head"
    assert readout_module(_structure(""), "m", None) is None  # F.linear in forward: scale the logits
    with pytest.raises(MulintError, match="computes the loss itself"):
        readout_module(_structure(""), "m", "targets")


class Mlp(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.inp, self.out = nn.Linear(8, width), nn.Linear(width, 4)

    def forward(self, x):
        return self.out(torch.relu(self.inp(x)))


def test_a_sweep_over_the_init_scale_centres_on_the_model_as_written():
    report = mulint.transfer(Mlp, knob="init-scale", widths=[16, 32], steps=10, seeds=1)
    assert report.result.knob == "init-scale"
    xs = {x for c in report.result.curves for x in c.log2_values}
    assert {-4.0, -2.0, 0.0, 2.0, 4.0} <= xs  # factors 1/16 .. 16 of the model's own init
    assert "best init scale" in str(report)
    with pytest.raises(MulintError, match="knob=: must be one of"):
        mulint.transfer(Mlp, knob="momentum", widths=[16, 32], steps=10)


def test_default_widths_are_the_models_own_and_wider_unless_the_budget_moves_them_down():
    fits = mulint.transfer(Mlp, steps=10, seeds=1)
    assert fits.result.widths == [16, 32, 64] and not any("instead of" in n for n in fits.result.notes)
    tight = mulint.transfer(Mlp, steps=10, seeds=1, budget=1e-9)
    assert tight.result.widths[-1] < 64 and tight.result.widths == [tight.result.widths[0] * f for f in (1, 2, 4)]
    (note,) = [n for n in tight.result.notes if "instead of 16, 32, 64" in n]
    assert "nearest to the 1e-09 min budget" in note


class Breaks(Mlp):
    """Builds and runs in eval mode; its training step raises."""

    def forward(self, x):
        if self.training:
            raise RuntimeError("boom in training")
        return super().forward(x)


def test_a_model_that_fails_to_train_is_the_users_error_at_their_line():
    with pytest.raises(MulintError) as caught:
        mulint.transfer(Breaks, widths=[16, 32], steps=10, seeds=1)
    assert caught.value.step == "transfer"
    assert "raised RuntimeError: boom in training" in str(caught.value)
    assert "test_sweep_knobs.py" in str(caught.value)  # the line of the model's code that raised
