"""Scalars keep their values on the meta device.

``torch.tensor(math.sqrt(d))``, in forward or as a buffer built in ``__init__`` (Gemma's
``embed_scale``), would be a meta tensor without a value, hiding a width multiplier. Made on the
CPU instead, a 0-dim tensor still mixes with tensors of any device, and the trace reads its value.
"""

from __future__ import annotations

import torch


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ScalarsOnCpu(torch.overrides.TorchFunctionMode):
    MAKERS = {torch.tensor, torch.as_tensor, torch.scalar_tensor}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.MAKERS and args and is_number(args[0]) and kwargs.get("device") is None:
            kwargs = {**kwargs, "device": "cpu"}
        return func(*args, **kwargs)
