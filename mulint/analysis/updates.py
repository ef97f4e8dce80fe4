"""Measured updates: the user's optimizer, whatever its class, takes real steps on the small CPU
models, and each weight's update is sized in the RMS→RMS operator norm,
‖ΔW‖₂ · sqrt(fan_in / fan_out) (the spectral condition of Yang, Simon & Bernstein, 2023: Θ(1) in
width for every weight; Θ(1) entries for vectors).

The update measured is the one of step ``MEASURED_STEP``, after ``WARM_STEPS`` warm steps on the same
batch: momentum then holds a gradient, and a zero-initialised readout has moved, so the weights
behind it get a gradient too. An optimizer that spends its first step setting up its state, moving
none of its parameters that had a gradient (SOAP's preconditioner, in heavyball and
pytorch-optimizer), gets more warm steps, up to ``MAX_WARM_STEPS``, until it has moved them:
otherwise the step measured would be its first real one, whose preconditioner was made from that
very gradient. Every width takes as many warm steps as the first one measured. Each model is put
back as it was built afterwards (parameters, buffers, gradients), so the init numbers read from it
later are the untouched ones.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from mulint.analysis.lr_reads import LrPolicy, apply_effective_lrs, split_made
from mulint.build.provenance import quiet
from mulint.exponents import fit_exponent, fmt_exp, to_quarter
from mulint.errors import MulintError
from mulint.facts import ParamFacts, ParamUse

WARM_STEPS = 1
MAX_WARM_STEPS = 4
MEASURED_STEP = WARM_STEPS + 1
# Optimizer settings that change how an update scales with a weight's shape, named in findings.
# A gradient this small next to the largest one is rounding (a key bias, which softmax cancels): an
# optimizer normalising it (Adam) would make an update of noise.
NUMERICAL_ZERO = 1e-6
SHAPE_SETTINGS = ("adjust_lr_fn", "relative_step", "scale_parameter")
# Param-group keys of weight decay, set to 0 while measuring: the decay shrinks a weight in proportion to
# itself (lr·wd·W, sized like the weight in every width), which at the step measured can be as large as
# the update and hide how the update scales (torch.optim.Muon decays by 0.1 by default: with u-µP's unit
# weights that decay hid a hidden update ∝ width^-½). How lr·wd scales is MU304's.
WEIGHT_DECAY_KEYS = ("weight_decay", "wd")
# Group keys of the D-adaptation family (Prodigy, DAdaptAdam, ...): a step size d the optimizer
# estimates itself as training goes, one number for every parameter it steps.
SELF_TUNED_KEYS = ("d", "d0")
# The flag with which hybrid Muon optimizers choose, per param group (KellerJordan's MuonWithAuxAdam) or
# per parameter's state (Moonlight's Muon), between the orthogonalised update and an AdamW path.
ORTHO_FLAG = "use_muon"
# Optimizer-state keys of a per-coordinate second moment: a parameter holding one after its steps is
# stepped by an Adam-style path, not orthogonalised.
SECOND_MOMENT_KEYS = ("exp_avg_sq", "moment2", "exp_avg_sq_row", "second_moment")


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
    warm_steps: int | None = None  # decided at the first width measured, kept for the others
    skipped: str = ""  # the optimizers that moved nothing at step 1, when more warm steps were taken
    self_tuned: list[str] = field(default_factory=list)  # e.g. "Prodigy (d = 1e-06 after step 2, from d0 = 1e-06)"
    self_tuned_params: set[str] = field(default_factory=set)  # stepped by one: measured, not judged
    # stepped by the Adam-style path of an orthogonalising (Muon-like) optimizer; see ``unorthogonalised``
    unorthogonalised: set[str] = field(default_factory=set)


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
                    loss_of: Callable | None = None, lr_policy=None) -> None:
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
            apply_effective_lrs(optimizers, schedulers, lr_policy or LrPolicy())  # the lrs `check` judges
            _without_weight_decay(optimizers)
            judged = _judged(optimizers, numbers.exact_families)
            if not judged:
                numbers.widths.pop()
                return
            numbers.schedulers = [type(s).__name__ for s in schedulers]
            args, kwargs = batch(model)
            _warm(model, optimizers, schedulers, args, kwargs, loss_of, judged, numbers)
            numbers.step = numbers.warm_steps + 1
            before = {name: t.detach().clone() for name, t in tensors.items() if id(t) in judged}
            grads = _step(model, optimizers, schedulers, args, kwargs, loss_of)
        settings = _settings(optimizers)
        plain = unorthogonalised(optimizers)
        self_tuned = {opt: label for opt in optimizers if (label := _self_tuned(opt, numbers.step))}
        numbers.self_tuned = list(self_tuned.values())
        tuned = {id(q) for opt in self_tuned for group in opt.param_groups for q in group["params"]}
        # the gradients the optimizer was given: heavyball sets .grad to None in its step
        floor = NUMERICAL_ZERO * max(grads.values(), default=0.0)
        for p in params:
            name = next((n for n in (p.name, *p.aliases) if n in before), None)
            if name is None:
                continue
            tensor = tensors[name]
            delta = tensor.detach().float() - before[name].float()
            if grads.get(id(tensor), 0.0) <= floor:
                numbers.no_grad.add(p.name)
                continue
            if id(tensor) in settings:
                numbers.settings[p.name] = settings[id(tensor)]
            if id(tensor) in tuned:
                numbers.self_tuned_params.add(p.name)
            if id(tensor) in plain:
                numbers.unorthogonalised.add(p.name)
            if not bool(delta.isfinite().all()):
                numbers.not_finite.add(p.name)
                continue
            for index, use in enumerate(p.uses):
                norm = use_norm(delta, p, use)
                if norm is not None:
                    numbers.norms.setdefault(p.name, {}).setdefault(index, {})[width] = norm
    except MulintError:
        raise
    except Exception as exc:  # a measurement: never fail the analysis for it
        numbers.failure = f"{type(exc).__name__}: {exc}"
    finally:
        _restore(model, saved)


def _without_weight_decay(optimizers) -> None:
    """Measure the update alone: every numeric weight-decay key of every param group set to 0."""
    for optimizer in optimizers:
        for group in getattr(optimizer, "param_groups", []):
            for key in WEIGHT_DECAY_KEYS:
                if isinstance(group.get(key), (int, float)) and not isinstance(group.get(key), bool) and group[key]:
                    group[key] = type(group[key])(0)


def _judged(optimizers, exact_families: tuple[str, ...]) -> set[int]:
    """ids of the parameters stepped by an optimizer the exact rules do not judge."""
    from mulint.analysis.optimizer import family_of

    return {id(p) for opt in optimizers if family_of(opt) not in exact_families
            for group in opt.param_groups for p in group["params"]}


def _rms(tensor: torch.Tensor) -> float:
    return float(tensor.detach().float().pow(2).mean().sqrt()) if tensor.numel() else 0.0


def _step(model, optimizers, schedulers, args, kwargs, loss_of) -> dict[int, float]:
    """One training step; id(parameter) -> RMS of the gradient the optimizers were given."""
    # eval(): no dropout, so every width sees the same function of the batch
    model.eval()
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss_of(model(*args, **kwargs)).backward()
    grads = {id(p): _rms(p.grad) for p in model.parameters() if p.grad is not None}
    for stepper in (*optimizers, *schedulers):
        try:
            stepper.step()
        except Exception as exc:  # the user's optimizer is broken: its target fails, never a note
            raise MulintError(f"{type(stepper).__name__}.step() raised {type(exc).__name__}: {exc}", step="optimizer",
                              hint="the optimizer must take a step on the model's parameters as a training loop "
                                   "would; run one step in plain Python to see why it fails") from exc
    return grads


def _warm(model, optimizers, schedulers, args, kwargs, loss_of, judged: set[int], numbers: UpdateNumbers) -> None:
    """The warm steps: ``WARM_STEPS``, or more while a judged optimizer has moved none of its
    parameters that had a gradient (it set up its state instead), at most ``MAX_WARM_STEPS``. The
    count the first width needed is kept for the next ones, so every width is measured on the same step."""
    owned = [(opt, [p for g in opt.param_groups for p in g["params"] if id(p) in judged]) for opt in optimizers]
    owned = [(opt, ps) for opt, ps in owned if ps]
    start = {id(p): p.detach().clone() for _, ps in owned for p in ps}
    had_grad: set[int] = set()
    steps = 0
    while True:
        grads = _step(model, optimizers, schedulers, args, kwargs, loss_of)
        steps += 1
        if numbers.warm_steps is not None:
            if steps >= numbers.warm_steps:
                return
            continue
        floor = NUMERICAL_ZERO * max(grads.values(), default=0.0)
        had_grad |= {key for key in start if grads.get(key, 0.0) > floor}
        idle = [opt for opt, ps in owned if any(id(p) in had_grad for p in ps)
                and all(torch.equal(p.detach(), start[id(p)]) for p in ps if id(p) in had_grad)]
        if steps >= WARM_STEPS and (not idle or steps >= MAX_WARM_STEPS):
            numbers.warm_steps = steps
            return
        numbers.skipped = " + ".join(dict.fromkeys(type(o).__name__ for o in idle))


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


def unorthogonalised(optimizers) -> set[int]:
    """ids of the parameters a Muon-like optimizer (its class named Muon) steps by its Adam-style path
    rather than orthogonalising: its group or the parameter's state says ``use_muon`` is false, or,
    without that flag, the parameter's state holds a second moment (an AdamW backup's)."""
    out = set()
    for opt in optimizers:
        if "muon" not in type(opt).__name__.lower():
            continue
        state = getattr(opt, "state", {})
        for group in opt.param_groups:
            for p in group["params"]:
                st = state.get(p, {}) if hasattr(state, "get") else {}
                if ORTHO_FLAG in group:
                    ortho = bool(group[ORTHO_FLAG])
                elif isinstance(st, dict) and ORTHO_FLAG in st:
                    ortho = bool(st[ORTHO_FLAG])
                else:
                    ortho = not (isinstance(st, dict) and any(key in st for key in SECOND_MOMENT_KEYS))
                if not ortho:
                    out.add(id(p))
    return out


def _self_tuned(opt, step: int) -> str:
    """An optimizer that estimates its own step size (group keys ``d``, ``d0``: the D-adaptation
    family), named with d's value now; "" for any other."""
    groups = [g for g in getattr(opt, "param_groups", []) if all(k in g for k in SELF_TUNED_KEYS)]
    if not groups or not all(isinstance(groups[0][k], (int, float)) for k in SELF_TUNED_KEYS):
        return ""
    return f"{type(opt).__name__} (d = {groups[0]['d']:.3g} after step {step}, from d0 = {groups[0]['d0']:.3g})"


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
    tuned: dict[str, list[float]] = {}  # role -> exponents measured for a self-tuned optimizer's parameters
    for p in params:
        if p.name in numbers.norms or p.name in numbers.no_grad:
            p.update_step = numbers.step
        p.update_settings = numbers.settings.get(p.name, "")
        p.update_no_grad = p.name in numbers.no_grad
        p.update_self_tuned = p.name in numbers.self_tuned_params
        p.update_unorthogonalised = p.name in numbers.unorthogonalised
        for index, by_width in numbers.norms.get(p.name, {}).items():
            use = p.uses[index]
            use.update_norm = dict(by_width)
            complete = len(by_width) == len(numbers.widths) and all(v > 0 for v in by_width.values())
            exponent = fit_exponent(by_width) if complete else None
            if exponent is None:
                continue
            if p.name in numbers.self_tuned_params:
                tuned.setdefault(use.role, []).append(exponent + use.multiplier_exponent)
                continue  # its step size d is not the one of later steps: not judged
            use.update_exponent = exponent + use.multiplier_exponent
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
    if numbers.skipped and numbers.norms:
        notes.append(f"update sizes measured on step {numbers.step}, after {numbers.step - 1} warm steps: "
                     f"{numbers.skipped} moved no parameter at step 1 (it sets up its state first)")
    if numbers.self_tuned and tuned:
        roles = ", ".join(f"{role} width^{fmt_exp(to_quarter(statistics.median(values)))}"
                          for role in ("input", "hidden", "output", "vector") if (values := tuned.get(role)))
        notes.append(f"update sizes: {' + '.join(numbers.self_tuned)} sets its own step size d as it trains, one "
                     f"number for the parameters it steps, so MU311/MU312 do not judge them: on step "
                     f"{numbers.step} their updates scale as {roles}; this compares the roles with each other "
                     f"only, as d will grow and may scale with width, which shifts every role alike")
    if numbers.schedulers:
        notes.append(f"update sizes measured on step {numbers.step}, with {', '.join(numbers.schedulers)} "
                     f"stepped after each step: the lr of that step, not of later ones")
