"""Meta builds skip the kernels of value writes (a meta tensor holds no values), and nothing else."""

from __future__ import annotations

import torch
import torch.nn as nn

from mulint.construct import build_at
from mulint.construct.meta_values import SkipMetaValueWrites
from mulint.construct.width import find_knob


class Writes(nn.Module):
    def __init__(self, d_model: int = 16):
        super().__init__()
        self.proj = nn.Linear(d_model, 2 * d_model)
        nn.init.trunc_normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)
        self.gain = nn.Parameter(torch.empty(d_model).fill_(0.5))
        self.scale = torch.tensor(2.0)  # kept on the CPU: its value is read by the trace
        self.scale.mul_(float(d_model) ** 0.5)
        self.table = torch.empty(d_model)
        self.table.unsqueeze_(0)  # a change of shape is applied, never skipped

    def forward(self, x):
        return self.proj(x) * self.scale


def test_a_meta_build_keeps_shapes_and_the_values_it_must_know():
    model = build_at(find_knob(Writes, "Writes", None), 16, target="Writes")
    assert model.proj.weight.is_meta and model.proj.weight.shape == (32, 16)
    assert model.gain.is_meta and model.gain.shape == (16,)
    assert model.table.shape == (1, 16)
    assert not model.scale.is_meta and float(model.scale) == 2.0 * 4.0


def test_only_value_writes_on_meta_tensors_are_skipped():
    calls = []

    class Seen(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            calls.append(str(func))
            return func(*args, **(kwargs or {}))

    cpu = torch.zeros(3)
    with Seen(), SkipMetaValueWrites():  # the inner mode answers first
        meta = torch.empty(3, device="meta")
        meta.normal_()
        meta.fill_(1.0)
        cpu.fill_(7.0)
        meta.unsqueeze_(1)
    assert "aten.normal_.default" not in calls and "aten.fill_.Scalar" in calls  # the CPU fill ran
    assert "aten.unsqueeze_.default" in calls and meta.shape == (3, 1)
    assert cpu.tolist() == [7.0, 7.0, 7.0]
