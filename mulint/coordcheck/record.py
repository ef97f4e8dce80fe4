"""Training a model a few steps and recording every module's output after each step.

Each output is copied in its forward hook, at the moment it is produced: forward code that
updates a module's output in place afterwards (a readout multiplier written ``x *= alpha`` after
the final norm) must not change what was recorded for that module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn as nn

from mulint.analysis.training import first_tensor
from mulint.construct.provenance import quiet

Outputs = dict[str, torch.Tensor]


class OutputRecorder:
    """Forward hooks on every module that keep a float32 copy of its output, only while recording."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.outputs: Outputs = {}
        self._on = False
        self._handles = [
            module.register_forward_hook(self._hook(name or "output")) for name, module in model.named_modules()
        ]

    def _hook(self, name: str) -> Callable:
        def hook(module, inputs, output):
            if not self._on:
                return
            tensor = first_tensor(output)
            if tensor is not None and tensor.is_floating_point():
                self.outputs[name] = tensor.detach().to(torch.float32, copy=True)

        return hook

    def record(self, args: tuple, kwargs: dict) -> Outputs:
        """Every module's output on the batch, in eval mode (no dropout) and without gradients."""
        self.outputs = {}
        was_training = self.model.training
        self.model.eval()
        self._on = True
        try:
            with torch.no_grad(), quiet():
                self.model(*args, **kwargs)
        finally:
            self._on = False
            self.model.train(was_training)
        return self.outputs

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def changes(first: Outputs, now: Outputs) -> dict[str, tuple[float, float, tuple[int, ...]]]:
    """Per module: mean |h_t - h_0|, mean |h_t| and the output shape.

    The means stay on the device and come back in one transfer.
    """
    names = [n for n, h in now.items() if n in first and first[n].shape == h.shape]
    if not names:
        return {}
    stats = torch.stack([torch.stack([(now[n] - first[n]).abs().mean(), now[n].abs().mean()]) for n in names])
    values = stats.cpu().tolist()
    return {n: (change, size, tuple(now[n].shape)) for n, (change, size) in zip(names, values)}


@contextlib.contextmanager
def recording(model: nn.Module):
    recorder = OutputRecorder(model)
    try:
        yield recorder
    finally:
        recorder.close()
