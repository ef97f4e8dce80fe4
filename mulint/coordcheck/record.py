"""Training a model a few steps and recording every module's output after each step.

Each output is copied in its forward hook, at the moment it is produced: forward code that
updates a module's output in place afterwards (a readout multiplier written ``x *= alpha`` after
the final norm) must not change what was recorded for that module.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from mulint.build.provenance import quiet

Outputs = dict[str, torch.Tensor]


def first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for v in value:
            found = first_tensor(v)
            if found is not None:
                return found
    return None


class OutputRecorder:
    """Forward hooks on every module that keep a float32 copy of its output, only while recording."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.outputs: Outputs = {}
        self._on = False
        self._handles = [module.register_forward_hook(self._hook(name or "output"))
                         for name, module in model.named_modules()]

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


def loss_of(output: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against fixed random labels for logits; mean square against fixed noise otherwise.

    The labels are drawn on the CPU from a fixed generator, so every width and device sees the same.
    """
    generator = torch.Generator().manual_seed(0)
    if output.dim() >= 2 and output.shape[-1] >= 2:
        logits = output.reshape(-1, output.shape[-1]).float()
        labels = torch.randint(0, output.shape[-1], (logits.shape[0],), generator=generator)
        return F.cross_entropy(logits, labels.to(output.device))
    target = torch.randn(tuple(output.shape), generator=generator)
    return (output.float() - target.to(output.device)).pow(2).mean()


def train_step(model: nn.Module, optimizer, args: tuple, kwargs: dict) -> None:
    """One step of ``optimizer``, or of every optimizer of a list (AdamW beside Muon)."""
    optimizers = optimizer if isinstance(optimizer, (list, tuple)) else [optimizer]
    model.train()
    with quiet():
        output = first_tensor(model(*args, **kwargs))
        loss = loss_of(output)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()


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
