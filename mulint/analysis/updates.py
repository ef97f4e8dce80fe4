"""Measured updates: the user's optimizer, whatever its class, takes real steps on the small CPU
models, and each weight's update is sized in the RMS→RMS operator norm,
‖ΔW‖₂ · sqrt(fan_in / fan_out) (the spectral condition of Yang, Simon & Bernstein, 2023: Θ(1) in
width for every weight; Θ(1) entries for vectors).

The update measured is the one of step ``MEASURED_STEP``, after ``WARM_STEPS`` warm steps on the same
batch: momentum then holds a gradient, and a zero-initialised readout has moved, so the weights
behind it get a gradient too. Each model is put back as it was built afterwards (parameters,
buffers, gradients), so the init numbers read from it later are the untouched ones.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from mulint.build.provenance import quiet
from mulint.exponents import fit_exponent
from mulint.facts import ParamFacts, ParamUse

WARM_STEPS = 1
MEASURED_STEP = WARM_STEPS + 1
# Optimizer settings that change how an update scales with a weight's shape, named in findings.
# A gradient this small next to the largest one is rounding (a key bias, which softmax cancels): an
# optimizer normalising it (Adam) would make an update of noise.
NUMERICAL_ZERO = 1e-6
SHAPE_SETTINGS = ("adjust_lr_fn", "relative_step", "scale_parameter")


@dataclass
class UpdateNumbers:
    step: int = MEASURED_STEP
    widths: list[int] = field(default_factory=list)
    # param -> index of the use in ParamFacts.uses -> width -> RMS→RMS norm of ΔW (RMS of entries for vectors)
    norms: dict[str, dict[int, dict[int, float]]] = field(default_factory=dict)
    no_grad: set[str] = field(default_factory=set)  # no gradient at the measured step, at some width
    not_finite: set[str] = field(default_factory=set)  # an update with inf or nan entries, at some width
    settings: dict[str, str] = field(default_factory=dict)  # param -> e.g. "adjust_lr_fn='original'"
    schedulers: list[str] = field(default_factory=list)  # LR schedulers the factory returned, stepped too
    failure: str = ""  # why nothing could be measured
    # Families judged by exact lr tables (the profile's `exact`): their steps need no measuring, and
    # a setup made only of them is not stepped at all. () measures every optimizer.
    exact_families: tuple[str, ...] = ("adam", "sgd")


def split_made(made) -> tuple[list[torch.optim.Optimizer], list]:
    """Optimizers and LR schedulers from what a factory returned: one, or a list, tuple or dict."""
    items = list(made.values() if isinstance(made, dict) else made) if isinstance(made, (list, tuple, dict)) \
        else [made]
    optimizers = [o for o in items if isinstance(o, torch.optim.Optimizer)]
    schedulers = [s for s in items if isinstance(s, torch.optim.lr_scheduler.LRScheduler)]
    return optimizers, schedulers


def batch_for(target, structure) -> Callable[[nn.Module], tuple]:
    """The same small batch at every width: the user's ``example_inputs``, else synthesised, from a fixed seed."""
    from mulint.build import inputs as example

    def batch(model: nn.Module):
        torch.manual_seed(0)
        user = getattr(target.module, "example_inputs", None)
        if callable(user):
            return example.from_user_function(user, model)
        return example.synthesise(model, "cpu")[structure.inputs_index]

    return batch


def measure_updates(make_optimizer: Callable[[nn.Module], object], model: nn.Module, width: int,
                    params: list[ParamFacts], batch: Callable[[nn.Module], tuple], numbers: UpdateNumbers,
                    loss_of: Callable | None = None, lr_scale_keys: tuple[str, ...] = ()) -> None:
    """One width: warm steps, the measured step, and each use's update norm into ``numbers``.
    ``loss_of(output)`` defaults to the coordinate check's (fixed labels or fixed noise)."""
    if loss_of is None:
        from mulint.coordcheck.record import first_tensor, loss_of as loss_of_tensor

        def loss_of(output):
            return loss_of_tensor(first_tensor(output))
    numbers.widths.append(width)
    tensors = _named_tensors(model)
    saved = _snapshot(model)
    try:
        with quiet():
            made = make_optimizer(model)
            optimizers, schedulers = split_made(made)
            _apply_lr_scales(optimizers, lr_scale_keys)
            judged = _judged(optimizers, numbers.exact_families)
            if not judged:
                numbers.widths.pop()
                return
            numbers.schedulers = [type(s).__name__ for s in schedulers]
            args, kwargs = batch(model)
            for _ in range(WARM_STEPS):
                _step(model, optimizers, schedulers, args, kwargs, loss_of)
            before = {name: t.detach().clone() for name, t in tensors.items() if id(t) in judged}
            _step(model, optimizers, schedulers, args, kwargs, loss_of)
        settings = _settings(optimizers)
        floor = NUMERICAL_ZERO * max((_rms(t.grad) for t in tensors.values() if t.grad is not None), default=0.0)
        for p in params:
            name = next((n for n in (p.name, *p.aliases) if n in before), None)
            if name is None:
                continue
            tensor = tensors[name]
            delta = tensor.detach().float() - before[name].float()
            # heavyball sets .grad to None in its step: then the parameter having moved is the evidence
            cleared = tensor.grad is None and bool(delta.ne(0).any())
            if not cleared and (tensor.grad is None or _rms(tensor.grad) <= floor):
                numbers.no_grad.add(p.name)
                continue
            if id(tensor) in settings:
                numbers.settings[p.name] = settings[id(tensor)]
            if not bool(delta.isfinite().all()):
                numbers.not_finite.add(p.name)
                continue
            for index, use in enumerate(p.uses):
                norm = use_norm(delta, p, use)
                if norm is not None:
                    numbers.norms.setdefault(p.name, {}).setdefault(index, {})[width] = norm
    except Exception as exc:  # a measurement: never fail the analysis for it
        numbers.failure = f"{type(exc).__name__}: {exc}"
    finally:
        _restore(model, saved)


def _apply_lr_scales(optimizers, keys: tuple[str, ...]) -> None:
    """Step as the training loop does: it multiplies each group's lr by a key torch ignores (lr_scale)."""
    from mulint.analysis.optimizer import lr_scale

    for optimizer in optimizers:
        for group in getattr(optimizer, "param_groups", []):
            scale, key = lr_scale(group, optimizer, keys)
            if key is not None:
                group["lr"] = group["lr"] * scale


def _judged(optimizers, exact_families: tuple[str, ...]) -> set[int]:
    """ids of the parameters stepped by an optimizer the exact rules do not judge."""
    from mulint.analysis.optimizer import family_of

    return {id(p) for opt in optimizers if family_of(opt) not in exact_families
            for group in opt.param_groups for p in group["params"]}


def _rms(tensor: torch.Tensor) -> float:
    return float(tensor.detach().float().pow(2).mean().sqrt()) if tensor.numel() else 0.0


def _step(model, optimizers, schedulers, args, kwargs, loss_of) -> None:
    # eval(): no dropout, so every width sees the same function of the batch
    model.eval()
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss_of(model(*args, **kwargs)).backward()
    for opt in optimizers:
        opt.step()
    for scheduler in schedulers:
        scheduler.step()


def _named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters(remove_duplicate=False))


def _snapshot(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    tensors = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    return [(t, t.detach().clone()) for t in tensors.values()]


def _restore(model: nn.Module, saved) -> None:
    with torch.no_grad():
        for tensor, value in saved:
            tensor.copy_(value)
    for p in model.parameters():
        p.grad = None
    model.train()


def _settings(optimizers) -> dict[int, str]:
    """id(param) -> the shape-dependent settings of its param group, as the user would write them."""
    out = {}
    for opt in optimizers:
        for group in opt.param_groups:
            found = [f"{key}={group[key]!r}" for key in SHAPE_SETTINGS if key in group]
            if type(opt).__name__ == "Muon" and "adjust_lr_fn" in group and group["adjust_lr_fn"] is None:
                found = ["adjust_lr_fn=None ('original')"]
            for p in group["params"]:
                if found:
                    out[id(p)] = ", ".join(found)
    return out


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
            if set(outs) & set(ins) or math.prod(shape[d] for d in outs) != use.fan_out \
                    or bool(infinite & set(outs)) != use.fan_out_infinite:
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


def update_facts(numbers: UpdateNumbers, params: list[ParamFacts], notes: list[str], optimizer: str) -> None:
    """Each use's measured norms and their width exponent (with the use's multiplier) into the facts."""
    if numbers.failure:
        notes.append(f"update sizes not measured: stepping {optimizer} raised {numbers.failure}")
        return
    for p in params:
        if p.name in numbers.norms or p.name in numbers.no_grad:
            p.update_step = numbers.step
        p.update_settings = numbers.settings.get(p.name, "")
        p.update_no_grad = p.name in numbers.no_grad
        for index, by_width in numbers.norms.get(p.name, {}).items():
            use = p.uses[index]
            use.update_norm = dict(by_width)
            complete = len(by_width) == len(numbers.widths) and all(v > 0 for v in by_width.values())
            exponent = fit_exponent(by_width) if complete else None
            use.update_exponent = None if exponent is None else exponent + use.multiplier_exponent
    silent = sorted(numbers.no_grad)
    if silent:
        notes.append(f"update sizes: {len(silent)} parameters got no gradient at step {numbers.step} "
                     f"(not judged by MU31x): {', '.join(silent[:6])}{', ...' if len(silent) > 6 else ''}")
    if numbers.not_finite:
        broken = sorted(numbers.not_finite)
        notes.append(f"update sizes: {optimizer} made non-finite updates (inf or nan) at step {numbers.step} for "
                     f"{', '.join(broken[:6])}{', ...' if len(broken) > 6 else ''}")
    if numbers.norms and len(numbers.widths) < 3:
        notes.append(f"update sizes fitted on {len(numbers.widths)} widths only ({numbers.widths}): rough")
    if numbers.schedulers:
        notes.append(f"update sizes measured on step {numbers.step}, with {', '.join(numbers.schedulers)} "
                     f"stepped after each step: the lr of that step, not of later ones")
