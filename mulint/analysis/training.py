"""The user's model as mulint trains it: the optimizers its factory makes (or the default Adam), every
param group at the learning rate the user's training gives it (lr-scale keys applied as the code
applies them, a scheduler's base lr: mulint.analysis.lr_reads), times one multiplier for a sweep over
learning rates, the loss it trains on, and one step over every optimizer.

The measured updates (mulint.analysis.updates), the coordinate check (mulint.coordcheck.run) and any
later command that trains build a ``Training`` and call ``step``, so that they train the same groups
at the same learning rates. What they choose differently is a field, said where they choose it:
dropout on or off, the schedulers stepped or held at their base lr, weight decay kept or set to 0, and
whether an optimizer's failing step is reported as the optimizer's fault.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from mulint.analysis.lr_reads import LrPolicy, apply_effective_lrs, split_made
from mulint.construct.provenance import quiet
from mulint.errors import MulintError
from mulint.optimizers import OPTIMIZERS

DEFAULT_LR = 1e-3  # the default optimizer's, when the user names none (coord)


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


def model_loss(output: Any) -> torch.Tensor:
    """The loss of whatever the model returned: ``loss_of`` its first tensor (an output holding none fails
    in ``loss_of``, as the step's error)."""
    return loss_of(first_tensor(output))  # type: ignore[arg-type]


def default_optimizer(lr: float = DEFAULT_LR) -> Callable[[nn.Module], torch.optim.Optimizer]:
    """The optimizer trained when the user names none: Adam over every parameter at one lr."""

    def make(model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=lr)

    return make


def default_label(lr: float = DEFAULT_LR) -> str:
    return f"Adam(lr={lr:g})"


@dataclass
class Training:
    """One model's training as mulint runs it, built once per model and width (``Training.of``)."""

    model: nn.Module
    optimizers: list[torch.optim.Optimizer]
    schedulers: list = field(default_factory=list)
    loss: Callable[[Any], torch.Tensor] = model_loss
    # model.train() (dropout on, as the user's training runs) or model.eval() (every width the same
    # function of the batch, for a measurement)
    dropout: bool = True
    # step the user's schedulers after the optimizers, or hold every group at its base lr (a few steps
    # of a warm-up would train at nearly 0)
    step_schedulers: bool = False
    # a step() that raises is the user's optimizer's fault: a MulintError naming it; otherwise the
    # exception reaches the caller as raised
    blame_optimizer: bool = False

    @classmethod
    def of(
        cls,
        model: nn.Module,
        make_optimizer: Callable[[nn.Module], object] | None = None,
        policy: LrPolicy | None = None,
        *,
        label: str = "the optimizer factory",
        target: str | None = None,
        lr_multiplier: float = 1.0,
        weight_decay: bool = True,
        **choices: Any,
    ) -> Training:
        """The optimizers ``make_optimizer(model)`` returns (the default Adam without one), every group
        at the lr it trains at under ``policy`` (the lr-scale keys' decision, LrPolicy's default without
        one) times ``lr_multiplier``, which scales every group's lr and its schedulers' base lrs
        together (a sweep over learning rates keeps µP's ratios). ``weight_decay=False`` sets every
        group's decay to 0 (the measured updates size the update alone). ``choices``: the other fields."""
        made = (make_optimizer or default_optimizer())(model)
        optimizers, schedulers = split_made(made, label, target)
        apply_effective_lrs(optimizers, schedulers, policy or LrPolicy(), lr_multiplier)
        if not weight_decay:
            without_weight_decay(optimizers)
        return cls(model, optimizers, schedulers, **choices)

    def step(self, args: tuple, kwargs: dict, *, grads: bool = False) -> dict[int, float]:
        """One training step on the batch ``(args, kwargs)``: gradients zeroed, the loss's backward, every
        optimizer stepped in the order the factory gave them (AdamW beside Muon), then the schedulers if
        they are stepped. With ``grads``: id(parameter) -> RMS of the gradient the optimizers were given
        (read before the step: some optimizers set ``.grad`` to None in theirs)."""
        self.model.train(self.dropout)
        with quiet():
            for opt in self.optimizers:
                opt.zero_grad(set_to_none=True)
            self.loss(self.model(*args, **kwargs)).backward()
            given = {id(p): _rms(p.grad) for p in self.model.parameters() if p.grad is not None} if grads else {}
            for stepper in (*self.optimizers, *(self.schedulers if self.step_schedulers else ())):
                if self.blame_optimizer:
                    checked_step(stepper)
                else:
                    stepper.step()
        return given

    def group_lrs(self) -> list[tuple[tuple[str, ...], float]]:
        """Each param group as the names of its parameters and the lr it trains at now, optimizer by optimizer."""
        names = {id(t): n for n, t in reversed(list(self.model.named_parameters(remove_duplicate=False)))}
        return [
            (tuple(names.get(id(p), "?") for p in group["params"]), float(group["lr"]))
            for opt in self.optimizers
            for group in opt.param_groups
        ]


def checked_step(stepper) -> None:
    """``stepper.step()``; a failure is the user's optimizer's (or scheduler's), said as such."""
    try:
        stepper.step()
    except Exception as exc:  # the user's optimizer is broken: its target fails, never a note
        raise MulintError(
            f"{type(stepper).__name__}.step() raised {type(exc).__name__}: {exc}",
            step="optimizer",
            hint="the optimizer must take a step on the model's parameters as a training loop "
            "would; run one step in plain Python to see why it fails",
        ) from exc


def without_weight_decay(optimizers) -> None:
    """Every numeric weight-decay key of every param group set to 0: the decay shrinks a weight in
    proportion to itself, which at a measured step can be as large as the update and hide how it scales."""
    for optimizer in optimizers:
        for group in getattr(optimizer, "param_groups", []):
            for key in OPTIMIZERS.weight_decay_keys:
                if isinstance(group.get(key), (int, float)) and not isinstance(group.get(key), bool) and group[key]:
                    group[key] = type(group[key])(0)


def _rms(tensor: torch.Tensor) -> float:
    return float(tensor.detach().float().pow(2).mean().sqrt()) if tensor.numel() else 0.0
