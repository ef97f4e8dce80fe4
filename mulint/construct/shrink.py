"""Small CPU builds without full-size constants: a causal mask sized by a module constant
(`BLOCK = 16384; register_buffer("mask", torch.tril(torch.ones(BLOCK, BLOCK)))`) would take gigabytes
on every small model mulint builds for real, and no config field names it (those `width_limits` caps).

The meta builds show such sizes: a dimension of a large buffer or parameter that is the same at every
width. While a small model is built on the CPU, every tensor factory and reshape asked for that size
gets a short one instead, as a capped `block_size` would give. A size that does not change with width
changes no width exponent."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

# A tensor of at least this many entries at every width is large enough to shrink (64 MB in float32).
LARGE_NUMEL = 1 << 24

_SIZED = {
    "ones",
    "zeros",
    "empty",
    "full",
    "rand",
    "randn",
    "randint",
    "arange",
    "eye",
    "tril_indices",
    "triu_indices",
    "view",
    "reshape",
    "expand",
    "new_ones",
    "new_zeros",
    "new_empty",
    "new_full",
    "repeat",
    "broadcast_to",
    "empty_strided",
}


def constant_large_sizes(models: dict[int, nn.Module], cap: int) -> dict[int, int]:
    """size -> `cap`, for the dimensions above `cap` of the large tensors (buffers, parameters) whose
    shape is the same at every width the meta models were built at."""
    if len(models) < 2:
        return {}
    shapes: dict[str, set[tuple[int, ...]]] = {}
    for model in models.values():
        tensors = {**dict(model.named_buffers()), **dict(model.named_parameters())}
        for name, tensor in tensors.items():
            shapes.setdefault(name, set()).add(tuple(tensor.shape))
    sizes: set[int] = set()
    for found in shapes.values():
        if len(found) != 1:
            continue  # grows with width, or missing at a width
        (shape,) = found
        numel = 1
        for d in shape:
            numel *= d
        if numel >= LARGE_NUMEL:
            sizes.update(d for d in shape if d > cap)
    return {size: cap for size in sorted(sizes)}


class ShrinkSizes(TorchFunctionMode):
    """While active, a size in `sizes` asked of a tensor factory or reshape becomes its short one."""

    def __init__(self, sizes: dict[int, int]) -> None:
        super().__init__()
        self.sizes = sizes

    def _small(self, value):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in self.sizes:
            return self.sizes[value]
        if isinstance(value, (tuple, list, torch.Size)):
            items = [self._small(v) for v in value]
            return torch.Size(items) if isinstance(value, torch.Size) else type(value)(items)
        return value

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _SIZED:
            args = tuple(self._small(a) for a in args)
            kwargs = {k: self._small(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)
