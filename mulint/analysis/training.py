"""One training step of the user's model as mulint takes it: the loss it trains on and the step of
its optimizers. The measured updates and the coordinate check train through here, so that both judge
the same training.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from mulint.construct.provenance import quiet


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
