"""The residual stream of a deep model, read with hooks: what enters each block, and what leaves the last.

A branch's multiplier may sit inside the block (``x + m * self.attn(x)`` in ``Block.forward``) or
outside it (``x = x + m * layer(x)`` in the model's loop over its layers), so a block is judged by
what it adds to the stream, never by its own output: the stream after block i is what enters block
i + 1, and after the last block what enters the next module that takes it (the final norm, the
readout). Holding each block's input at the one it had at init (``frozen``) gives every block's
contribution as a function of its own parameters alone, for all blocks in one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from mulint.analysis.training import first_tensor
from mulint.construct.provenance import quiet
from mulint.errors import MulintError


def block_lists(models: dict[int, nn.Module]) -> list[str]:
    """Paths of module lists whose length follows the depth (``h``, ``model.layers``): built at two or
    more depths, a list of k·L blocks at every depth L. The one holding most parameters first."""
    lengths: dict[str, dict[int, int]] = {}
    sizes: dict[str, int] = {}
    for depth, model in models.items():
        for path, module in model.named_modules():
            if isinstance(module, (nn.ModuleList, nn.Sequential)) and len(module):
                lengths.setdefault(path, {})[depth] = len(module)
                sizes[path] = sum(p.numel() for p in module.parameters())
    depths = set(models)
    found = [
        path
        for path, by_depth in lengths.items()
        if set(by_depth) == depths
        and len(set(by_depth.values())) > 1
        and len({n / d for d, n in by_depth.items()}) == 1
        and all(n % d == 0 for d, n in by_depth.items())
    ]
    # An inner list that only repeats with its block (each block's own list of experts) is not the stack.
    outer = [p for p in found if not any(p.startswith(q + ".") for q in found if q != p)]
    return sorted(outer, key=lambda p: -sizes[p])


def _stream_arg(args: tuple, kwargs: dict) -> tuple[str, object] | None:
    """Where a block is given the stream: its first floating tensor argument (positional, else by name)."""
    for i, value in enumerate(args):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return ("arg", i)
    for key, value in kwargs.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return ("kwarg", key)
    return None


class StreamRecorder:
    """Hooks on a model's blocks that record the residual stream (and can hold each block's input fixed)."""

    def __init__(self, model: nn.Module, blocks: list[nn.Module], *, label: str) -> None:
        self.model, self.blocks, self.label = model, blocks, label
        self.entering: list[torch.Tensor | None] = [None] * len(blocks)
        self.final: torch.Tensor | None = None
        self.outputs: list[torch.Tensor | None] = [None] * len(blocks)
        self.frozen: list[torch.Tensor] | None = None  # inputs to give the blocks instead of theirs
        self._after_last = False
        inside = {id(m) for b in blocks for m in b.modules()}
        holding = {id(m) for m in model.modules() if any(x is blocks[0] for x in m.modules())}
        self._handles = [
            block.register_forward_pre_hook(self._entering(i), with_kwargs=True) for i, block in enumerate(blocks)
        ]
        self._handles += [block.register_forward_hook(self._leaving(i)) for i, block in enumerate(blocks)]
        self._handles += [
            m.register_forward_pre_hook(self._after, with_kwargs=True)
            for m in model.modules()
            if id(m) not in inside and id(m) not in holding  # the model and the list of blocks run around them
        ]

    def _entering(self, index: int) -> Callable:
        def hook(module, args, kwargs):
            where = _stream_arg(args, kwargs)
            if where is None:
                return None
            kind, key = where
            value = args[key] if kind == "arg" else kwargs[key]
            self.entering[index] = value.detach().clone()
            if self.frozen is None:
                return None
            held = self.frozen[index].to(value.dtype)
            if kind == "arg":
                args = (*args[: int(key)], held, *args[int(key) + 1 :])  # type: ignore[call-overload]
            else:
                kwargs = {**kwargs, key: held}
            return args, kwargs

        return hook

    def _leaving(self, index: int) -> Callable:
        def hook(module, inputs, output) -> None:
            tensor = first_tensor(output)
            self.outputs[index] = tensor.detach().clone() if tensor is not None else None
            self._after_last = index == len(self.blocks) - 1

        return hook

    def _after(self, module, args, kwargs) -> None:
        """The first module after the last block that takes a tensor shaped like the stream reads it."""
        if not self._after_last or self.final is not None or self.entering[0] is None:
            return None
        where = _stream_arg(args, kwargs)
        if where is not None:
            kind, key = where
            value = args[key] if kind == "arg" else kwargs[key]
            if value.shape == self.entering[0].shape:
                self.final = value.detach().clone()
        return None

    def run(self, args: tuple, kwargs: dict, frozen: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """The stream on the batch (eval mode, no gradients): what enters each block, then the final
        stream; with ``frozen``, each block is given those inputs instead of what reaches it."""
        self.entering, self.outputs = [None] * len(self.blocks), [None] * len(self.blocks)
        self.final = None
        self._after_last, self.frozen = False, frozen
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), quiet():
                self.model(*args, **kwargs)
        finally:
            self.frozen = None
            self.model.train(was_training)
        final, last = self.final, self.outputs[-1]
        if (
            final is None
            and last is not None
            and self.entering[-1] is not None
            and last.shape == self.entering[-1].shape
        ):
            final = last  # nothing reads the stream after the blocks: the last one returns it
        if all(x is None for x in self.entering) and all(x is None for x in self.outputs):
            raise MulintError(
                "cannot follow the residual stream through the blocks: the model never calls a block, its "
                "loop calls their parts one by one (`for attn, ff in self.layers: x = x + attn(x) ...`), so "
                "a block cannot be run with its input held",
                target=self.label,
                step="coord",
                hint="give each block a forward that the model calls (`x = block(x)`); the static depth "
                "rules (MU501-MU507) judge this model as it is",
            )
        if final is None or any(x is None for x in self.entering):
            raise MulintError(
                "cannot follow the residual stream through the blocks: each block must take the stream as "
                "its first floating-point tensor argument, and a module after the last one must read it",
                target=self.label,
                step="coord",
                hint="the depth coordinate check hooks each block's input and the final norm's (or readout's)",
            )
        return [*self.entering, final]  # type: ignore[list-item]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def adds_inside(self, stream: list[torch.Tensor]) -> bool:
        """Whether each block returns the stream with its branch added (``Block.forward`` adds), rather than
        the branch alone (the model's loop adds): read on a run that held no input."""
        return all(out is not None and torch.equal(out, after) for out, after in zip(self.outputs, stream[1:]))


def contributions(stream: list[torch.Tensor], held: list[torch.Tensor], adds_inside: bool) -> list[torch.Tensor]:
    """What each block added to the stream on a run that held its inputs: the stream after it minus the
    stream its add started from, the held input when the block adds (its skip is what it was given),
    else the stream that reached it (the model's loop adds to its own running stream)."""
    starts = held if adds_inside else stream[:-1]
    return [after - start for after, start in zip(stream[1:], starts)]
