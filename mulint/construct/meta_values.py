"""On the meta device, writing values is a no-op: skip the kernels that would compute nothing.

A meta tensor holds no values, yet every in-place initialiser a model's constructor calls
(`nn.init.normal_`, a Linear's `kaiming_uniform_`, `zero_`, `fill_`) still runs torch's meta kernel,
written in Python: on a GPT that was most of a meta build. Only ops that write values into their first
argument, keeping its shape, dtype and layout, are skipped, and only when that argument is a meta
tensor (a scalar kept on the CPU to keep its value, `mulint.construct.scalars`, is written for real).
A call with the wrong dtype or shape then fails on the small CPU builds instead.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
VALUE_WRITES = frozenset(
    getattr(packet, overload)
    for packet, overloads in (
        (_aten.normal_, ("default",)),
        (_aten.uniform_, ("default",)),
        (_aten.zero_, ("default",)),
        (_aten.fill_, ("Scalar", "Tensor")),
        (_aten.bernoulli_, ("float", "Tensor")),
        (_aten.exponential_, ("default",)),
        (_aten.random_, ("default", "from", "to")),
        (_aten.erfinv_, ("default",)),
        (_aten.copy_, ("default",)),
    )
    for overload in overloads
    if hasattr(packet, overload)
)


class SkipMetaValueWrites(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in VALUE_WRITES and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))
