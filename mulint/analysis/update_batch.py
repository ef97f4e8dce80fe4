"""The batch the measured updates (mulint.analysis.updates) are taken on, and whether what they
measured holds when that batch grows.

An optimizer that normalises its update as a whole (Muon's orthogonalisation, an update rescaled by
its own norm) makes an update whose size depends on the gradient's rank and spectrum, and a weight's
gradient over T tokens has rank at most T. Measured on a handful of tokens, every width then sees a
gradient of the same small rank, unlike training, where the tokens far outnumber the width: such an
update can seem to grow like width^+½ on 16 tokens and be flat on 1024. So such an optimizer is
measured on a batch of ``TOKENS_PER_WIDTH`` tokens (positions: ids, sequence steps, pixels) per unit
of the largest width measured, within a memory budget, and an exponent that could change a verdict is
measured again on twice the tokens: only an exponent that stays put is judged. Which optimizers mix
entries is probed, not read from a name (mulint.analysis.updates.per_coordinate); per-coordinate ones
keep the small batch (see MeasurementBatch).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from mulint.profiles import accepts

TOKENS_PER_WIDTH = 2  # the gradient of a width × width matrix can then have full rank
MIN_TOKENS = 256
# Positions per batch at most, and elements of the widest per-position output (logits over a
# vocabulary) summed over the batch: the measuring steps' memory stays near the init models'.
MAX_TOKENS = 8192
OUTPUT_BUDGET = 32_000_000  # doubled for the second measurement
# An exponent this close to the edge of its tolerance band, or beyond it, could change a verdict:
# it is measured again on more tokens. Two measurements further apart than STABLE disagree.
NEAR = 0.125
STABLE = 0.15


@dataclass
class MeasurementBatch:
    """``batch(model, large=...) -> (args, kwargs)``: the same batch at every width, from a fixed seed.
    The small batch is the user's ``example_inputs`` as written, else a few synthesised samples: a
    per-coordinate update (Adam, sign, SGD) is sized on it, the fixed-batch regime of µP's tables (its
    operator norm on a batch of many more tokens than the width understates how it acts on the
    inputs it was made from). The large one holds ``tokens`` positions, for the other optimizers."""

    target: Any
    inputs_index: int
    tokens: int  # positions wanted in the large batch
    made: dict[bool, int] = field(default_factory=dict)  # large? -> positions of the batch handed out
    enlarged: bool = True  # False: the user's example_inputs could not be repeated to the size wanted

    def __call__(self, model: nn.Module, large: bool = True) -> tuple:
        from mulint.construct import inputs as example

        user = getattr(self.target.module, "example_inputs", None)
        if callable(user):
            torch.manual_seed(0)
            first = example.from_user_function(user, model)
            draws = max(1, math.ceil(self.tokens / max(1, positions(first)))) if large else 1
            out = _concatenated(
                first, [_seeded(example.from_user_function, user, model, seed) for seed in range(1, draws)]
            )
            if out is None:
                self.enlarged, out = False, first
        else:
            torch.manual_seed(0)
            probe = example.synthesise(model, "cpu")[self.inputs_index]
            per_sample = max(1, positions(probe) // max(1, _leading(probe) or 1))
            size = max(example.BATCH, math.ceil(self.tokens / per_sample)) if large else example.BATCH
            torch.manual_seed(0)
            out = example.synthesise(model, "cpu", batch=size)[self.inputs_index]
        self.made[large] = positions(out)
        return out

    def describe(self, large: bool = True) -> str:
        user = (
            ""
            if getattr(self.target.module, "example_inputs", None) is None
            else " (the file's example_inputs" + (", repeated)" if large and self.enlarged else ")")
        )
        return f"{self.made.get(large, 0)} tokens{user}"


def tokens_for(widths: list[int], widest_output: int) -> int:
    """Positions to measure on: TOKENS_PER_WIDTH × the largest width, within the budgets."""
    wanted = max(MIN_TOKENS, TOKENS_PER_WIDTH * max(widths, default=0))
    return max(1, min(wanted, MAX_TOKENS, OUTPUT_BUDGET // max(1, widest_output)))


def positions(inputs: tuple) -> int:
    """Positions a batch holds, the most of any of its tensors: each id of an integer tensor; each
    row of a float tensor with features last (batch, [seq,] features); each pixel of an image."""
    args, kwargs = inputs
    best = 0
    for x in (*args, *kwargs.values()):
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            continue
        if not x.is_floating_point():
            count = x.numel()
        elif x.dim() <= 3:
            count = x.numel() // x.shape[-1] if x.shape[-1] else 0
        else:
            count = x.numel() // x.shape[1] if x.shape[1] else 0  # (batch, channels, *space)
        best = max(best, count)
    return best


def _leading(inputs: tuple) -> int | None:
    sizes = {x.shape[0] for x in (*inputs[0], *inputs[1].values()) if isinstance(x, torch.Tensor) and x.dim()}
    return sizes.pop() if len(sizes) == 1 else None


def _seeded(make: Callable, user, model, seed: int):
    torch.manual_seed(seed)
    return make(user, model)


def _concatenated(first: tuple, more: list[tuple]) -> tuple | None:
    """The draws joined along the batch dimension, or None when they cannot be (tensors of
    different leading sizes, other values that differ between draws)."""
    if not more:
        return first
    if _leading(first) is None:
        return None
    args, kwargs = first

    def join(values):
        head = values[0]
        if isinstance(head, torch.Tensor) and head.dim():
            shapes = {v.shape[1:] for v in values if isinstance(v, torch.Tensor)}
            return torch.cat(values) if len(shapes) == 1 and all(isinstance(v, torch.Tensor) for v in values) else None
        return head if all(type(v) is type(head) and not isinstance(v, torch.Tensor) for v in values) else None

    try:
        joined_args = [join([a, *(m[0][i] for m in more)]) for i, a in enumerate(args)]
        joined_kwargs = {k: join([v, *(m[1][k] for m in more)]) for k, v in kwargs.items()}
    except (IndexError, KeyError, RuntimeError):
        return None
    if any(j is None for j in joined_args) or any(j is None for j in joined_kwargs.values()):
        return None
    return tuple(joined_args), joined_kwargs


def needs_confirming(
    exponents: dict[tuple[str, int], tuple[str, float]], accepted: dict[str, tuple[float, float]], tolerance: float
) -> list[tuple[str, int]]:
    """The (param, use index) whose exponent (role, value) is within NEAR of its tolerance band's edge
    or outside it: those a batch-dependent measurement could misjudge."""
    out = []
    for key, (role, value) in exponents.items():
        band = accepted.get(role)
        if band is not None and accepts(band, value, tolerance - NEAR):
            out.append(key)
    return out


def stable(first: float, second: float) -> bool:
    return abs(first - second) <= STABLE
