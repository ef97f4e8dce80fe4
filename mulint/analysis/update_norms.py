"""Sizing one measured update ΔW: the RMS→RMS operator norm of a contracting use, ‖ΔW‖₂ ·
sqrt(fan_in / fan_out), over the dimensions the use contracts and produces (batch dimensions such as
experts apart); the RMS of the entries for a lookup or a vector. Split from mulint.analysis.updates,
which takes the steps."""

from __future__ import annotations

import itertools
import math

import torch

from mulint.facts import ParamFacts, ParamUse


def use_norm(delta: torch.Tensor, param: ParamFacts, use: ParamUse) -> float | None:
    """RMS→RMS operator norm of the update for a contracting use; the RMS of its entries otherwise.

    A lookup's inputs are one-hot: its operator norm on them is a row's RMS (times the constant
    sqrt(vocab)), so an embedding is sized by the RMS of its update's entries, which the spectral
    norm of the whole table only approaches at widths far above the vocabulary."""
    if use.role == "scalar" or delta.numel() == 0:
        return None
    dims = None
    if use.kind == "contraction" and use.fan_in and use.fan_out:
        dims = in_out_dims(param, use)
    if dims is None:
        return float(delta.pow(2).mean().sqrt())
    in_dims, out_dims = dims
    batch_dims = [d for d in range(delta.dim()) if d not in in_dims and d not in out_dims]
    fan_in = math.prod(delta.shape[d] for d in in_dims)
    fan_out = math.prod(delta.shape[d] for d in out_dims)
    matrices = delta.permute(*batch_dims, *out_dims, *in_dims).reshape(-1, fan_out, fan_in)
    return spectral_norm(matrices) * math.sqrt(fan_in / fan_out)


def in_out_dims(param: ParamFacts, use: ParamUse) -> tuple[list[int], list[int]] | None:
    """The dimensions whose sizes multiply to the use's fan_in and fan_out at the reference width
    (any left over are batch dimensions, e.g. experts), growing with width where the fan does. Ties
    (a square matrix) follow storage: a lookup's rows are its input, dim 0 of a weight its output."""
    shape, ndim = param.shape, len(param.shape)
    if ndim > 6:
        return None
    infinite = set(param.infinite_dims)
    subsets = [list(c) for k in range(1, ndim + 1) for c in itertools.combinations(range(ndim), k)]
    best = None
    for ins in subsets:
        if math.prod(shape[d] for d in ins) != use.fan_in or bool(infinite & set(ins)) != use.fan_in_infinite:
            continue
        for outs in subsets:
            if (
                set(outs) & set(ins)
                or math.prod(shape[d] for d in outs) != use.fan_out
                or bool(infinite & set(outs)) != use.fan_out_infinite
            ):
                continue
            rank = (ndim - len(ins) - len(outs), (0 in ins) != (use.kind == "lookup"), ins)
            if best is None or rank < best[0]:
                best = (rank, ins, outs)
    return (best[1], best[2]) if best else None


POWER_ITERATIONS = 20
POWER_BLOCK = 4


def spectral_norm(matrices: torch.Tensor) -> float:
    """Largest singular value over a batch of matrices: exact for thin ones, else by block power
    iteration (a few per cent low at worst, which an exponent fitted over a 4x width range ignores)."""
    a = matrices.float()
    if not bool(a.any()):
        return 0.0
    if a.shape[-2] < a.shape[-1]:
        a = a.transpose(-1, -2)
    if a.shape[-1] <= 4 * POWER_BLOCK:
        return float(torch.linalg.matrix_norm(a, ord=2).max())
    # One pass over the (possibly vocabulary-sized) matrix for its small Gram matrix; the power
    # iteration then runs on that.
    gram = a.transpose(-1, -2) @ a
    generator = torch.Generator().manual_seed(0)
    v = torch.randn(a.shape[0], a.shape[-1], POWER_BLOCK, generator=generator)
    for _ in range(POWER_ITERATIONS):
        v = torch.linalg.qr(gram @ v).Q
    ritz = torch.linalg.eigvalsh(v.transpose(-1, -2) @ gram @ v)[..., -1]
    return float(ritz.clamp_min(0).max().sqrt())
