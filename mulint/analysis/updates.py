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
later are the untouched ones. A matrix that starts at exactly zero (a zero-initialised readout or
branch output) and is still zero after the warm steps (it had no gradient yet: a zero branch output
behind a zero readout) gets more, until it has left zero: measured on the step it leaves zero, its
update and the first gradient the weights behind it get through it would be judged.

The batch, and the second measurement on a larger one for an exponent near a verdict's edge, are
mulint.analysis.update_batch's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn as nn

from mulint.analysis.optimizer import family_of
from mulint.analysis.training import Training, checked_step, model_loss
from mulint.analysis.update_batch import TOKENS_PER_WIDTH, MeasurementBatch, needs_confirming, stable, tokens_for
from mulint.analysis.update_norms import use_norm
from mulint.analysis.update_numbers import MAX_WARM_STEPS, WARM_STEPS, UpdateNumbers, fitted
from mulint.construct.provenance import quiet
from mulint.errors import MulintError
from mulint.exponents import TOLERANCE
from mulint.facts import ParamFacts
from mulint.optimizers import OPTIMIZERS

# A gradient this small next to the largest one is rounding (a key bias, which softmax cancels): an
# optimizer normalising it (Adam) would make an update of noise.
NUMERICAL_ZERO = 1e-6


def measuring(model: nn.Module, make_optimizer, lr_policy=None, loss=model_loss) -> Training:
    """The training an update is measured on: the lrs `check` judges, weight decay set to 0 (the decay
    shrinks a weight in proportion to itself, lr·wd·W, which at the step measured can be as large as
    the update and hide how it scales: torch.optim.Muon decays by 0.1 by default, and with u-µP's unit
    weights that decay hid a hidden update ∝ width^-½; how lr·wd scales is MU304's), no dropout (every
    width the same function of the batch), the user's schedulers stepped, and a failing step the
    optimizer's fault."""
    return Training.of(
        model,
        make_optimizer,
        lr_policy,
        weight_decay=False,
        loss=loss,
        dropout=False,
        step_schedulers=True,
        blame_optimizer=True,
    )


def batch_for(target, structure, widths: list[int] | None = None, factor: int = 1) -> MeasurementBatch:
    """The same batch at every width (the user's ``example_inputs``, else synthesised, from a fixed
    seed), holding enough tokens for the largest of ``widths`` (update_batch), ``factor`` times that."""
    widest = max(
        (
            u.fan_out
            for p in structure.facts.params
            for u in p.uses
            if u.role == "output" and isinstance(u.fan_out, int)
        ),
        default=1,
    )
    return MeasurementBatch(target, structure.inputs_index, factor * tokens_for(widths or [], widest))


def measure_updates(
    make_optimizer: Callable[[nn.Module], object],
    model: nn.Module,
    width: int,
    params: list[ParamFacts],
    batch: Callable[..., tuple],
    numbers: UpdateNumbers,
    loss_of: Callable | None = None,
    lr_policy=None,
    modes: tuple[str, ...] = ("small", "large"),
) -> None:
    """One width: warm steps, the measured step, and each use's update norm into ``numbers``.
    ``loss_of(output)`` defaults to the coordinate check's (fixed labels or fixed noise).

    A per-coordinate optimizer's parameters are measured on the small batch, the others' on the large
    one (``batch(model, large=...)``, a MeasurementBatch; a plain ``batch(model)`` serves both); which
    optimizer is which is probed at the first width (``per_coordinate``). ``modes`` limits the batches."""
    loss_of = loss_of or model_loss
    if numbers.per_coordinate == NOTHING_JUDGED:
        return  # every optimizer is judged by exact tables: nothing to step
    numbers.widths.append(width)
    saved = _snapshot(model)
    try:
        if numbers.per_coordinate is None:
            with quiet():
                numbers.per_coordinate = per_coordinate(make_optimizer, model, lr_policy, numbers.exact_families)
                numbers.mixing = _judged_names(make_optimizer, model, numbers.exact_families) - numbers.per_coordinate
            if numbers.per_coordinate == NOTHING_JUDGED:
                numbers.widths.pop()
                return
            _restore(model, saved)
        names = {p.name for p in params}
        small = {n for n in names if n in numbers.per_coordinate}
        measured = False
        # the large batch only for what the probe saw mixing (every judged parameter not per-coordinate);
        # a setup whose judged parameters all step per coordinate takes no large-batch steps
        for mode, only in (("small", small), ("large", names - small if numbers.mixing else set())):
            if mode not in modes or not only:
                continue
            if not isinstance(batch, MeasurementBatch):
                inputs = batch(model)
            elif mode == "large":
                inputs, numbers.batch = batch(model, large=True), batch.describe(large=True)
                numbers.large_tokens = batch.made.get(True, 0)
            else:
                inputs, numbers.small_batch = batch(model, large=False), batch.describe(large=False)
            if measured:
                _restore(model, saved)
            measured = (
                _measure_once(make_optimizer, model, width, params, inputs, numbers, loss_of, lr_policy, only)
                or measured
            )
        if not measured:
            numbers.widths.pop()
    except MulintError:
        raise
    except Exception as exc:  # a measurement: never fail the analysis for it
        numbers.failure = f"{type(exc).__name__}: {exc}"
    finally:
        _restore(model, saved)


NOTHING_JUDGED = frozenset({""})  # per_coordinate's answer when every optimizer has an exact table


def per_coordinate(
    make_optimizer, model: nn.Module, lr_policy, exact_families: tuple[str, ...]
) -> set[str] | frozenset[str]:
    """Names of the parameters stepped per coordinate: one step on random gradients with half their
    entries zero leaves those entries where they were (Adam, SGD, sign updates, Adafactor), where an
    optimizer that mixes a matrix's entries (Muon's orthogonalisation, Shampoo) moves them. Judged
    per parameter, as one optimizer may orthogonalise some groups and step others by Adam. Only a
    parameter shown to mix is measured on the large batch: one that does not move on this step (SOAP
    sets up its preconditioner first) keeps the small one. The caller puts the model back."""
    optimizers = measuring(model, make_optimizer, lr_policy).optimizers
    judged = _judged(optimizers, exact_families)
    if not judged:
        return NOTHING_JUDGED  # a setup judged by exact tables only is never stepped
    generator = torch.Generator().manual_seed(0)
    masks, before = {}, {}
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                noise = torch.randn(p.shape, generator=generator).to(p.dtype)
                masks[id(p)] = torch.rand(p.shape, generator=generator) < 0.5
                p.grad = torch.where(masks[id(p)], torch.zeros_like(noise), noise).to(p.device)
                before[id(p)] = p.detach().clone()
    for opt in optimizers:
        checked_step(opt)
    mixing = set()
    for key, p in {id(p): p for opt in optimizers for g in opt.param_groups for p in g["params"]}.items():
        moved = p.detach() != before[key]
        if key in judged and bool(moved[masks[key].to(moved.device)].any()):
            mixing.add(key)  # without such a sign: the small batch, as for every optimizer before
    return {n for n, t in _named_tensors(model).items() if id(t) in judged and id(t) not in mixing}


def _judged_names(make_optimizer, model: nn.Module, exact_families: tuple[str, ...]) -> set[str]:
    judged = _judged(Training.of(model, make_optimizer).optimizers, exact_families)
    return {n for n, t in _named_tensors(model).items() if id(t) in judged}


def _measure_once(make_optimizer, model, width, params, inputs, numbers, loss_of, lr_policy, only: set[str]) -> bool:
    """Warm steps and the measured step on ``inputs``; the norms of the parameters named in ``only``."""
    tensors = _named_tensors(model)
    with quiet():
        training = measuring(model, make_optimizer, lr_policy, loss_of)
        optimizers = training.optimizers
        judged = _judged(optimizers, numbers.exact_families)
        if not judged:
            return False
        numbers.schedulers = [type(s).__name__ for s in training.schedulers]
        args, kwargs = inputs
        warm(training, args, kwargs, judged, numbers)
        numbers.step = numbers.warm_steps + 1
        before = {name: t.detach().clone() for name, t in tensors.items() if id(t) in judged}
        grads = training.step(args, kwargs, grads=True)
    settings = _settings(optimizers)
    plain = unorthogonalised(optimizers)
    self_tuned = {opt: label for opt in optimizers if (label := _self_tuned(opt, numbers.step))}
    numbers.self_tuned = list(self_tuned.values())
    tuned = {id(q) for opt in self_tuned for group in opt.param_groups for q in group["params"]}
    # the gradients the optimizer was given: heavyball sets .grad to None in its step
    floor = NUMERICAL_ZERO * max(grads.values(), default=0.0)
    for p in params:
        name = next((n for n in (p.name, *p.aliases) if n in before), None)
        if name is None or p.name not in only:
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
    return True


def measure_again(
    numbers: UpdateNumbers,
    params: list[ParamFacts],
    accepted: dict[str, tuple[float, float]],
    make_optimizer: Callable[[nn.Module], object],
    build: Callable[[int], nn.Module],
    larger: Callable[[nn.Module], tuple],
    lr_policy=None,
) -> None:
    """The uses whose exponent lies near the edge of its role's ``accepted`` band, or beyond (every
    use, when a memory budget capped the batch's tokens), measured again on the ``larger`` batch at
    every width (models from ``build``): an exponent that stays put is judged on the larger batch,
    one that moves is not judged (see ``update_facts``). Per-coordinate parameters keep their batch."""
    exponents = {}
    for p in params:
        for index, by_width in numbers.norms.get(p.name, {}).items():
            value = fitted(numbers, by_width)
            if value is not None and p.name not in numbers.self_tuned_params:
                exponents[(p.name, index)] = (p.uses[index].role, value + p.uses[index].multiplier_exponent)
    # per-coordinate optimizers' updates are measured on the small batch on purpose (see update_batch)
    # a memory budget kept the batch below TOKENS_PER_WIDTH x the largest width: every exponent is checked
    capped = 0 < numbers.large_tokens < TOKENS_PER_WIDTH * max(numbers.widths, default=0)
    near = list(exponents) if capped else needs_confirming(exponents, accepted, TOLERANCE)
    keys = [k for k in near if k[0] not in (numbers.per_coordinate or ())]
    if not keys or numbers.failure:
        return
    second = UpdateNumbers(
        exact_families=numbers.exact_families,
        warm_steps=numbers.warm_steps,
        per_coordinate=numbers.per_coordinate,
        mixing=numbers.mixing,
    )
    for width in numbers.widths:
        try:
            model = build(width)
        except Exception as exc:  # built once already: a measurement, never fail the analysis for it
            second.failure = f"{type(exc).__name__}: {exc}"
            break
        measure_updates(make_optimizer, model, width, params, larger, second, lr_policy=lr_policy, modes=("large",))
        del model
    numbers.larger_batch = second.batch or "a larger batch"
    for name, index in keys:
        shift = next(p.uses[index].multiplier_exponent for p in params if p.name == name)
        again = second.norms.get(name, {}).get(index, {}) if not second.failure else {}
        value = fitted(second, again) if again else None
        first = exponents[(name, index)][1]
        numbers.confirmed[(name, index)] = (first, math.nan if value is None else value + shift)
        if value is not None and stable(first, value + shift):
            numbers.norms[name][index] = dict(again)


def _judged(optimizers, exact_families: tuple[str, ...]) -> set[int]:
    """ids of the parameters stepped by an optimizer the exact rules do not judge."""
    return {
        id(p)
        for opt in optimizers
        if family_of(opt) not in exact_families
        for group in opt.param_groups
        for p in group["params"]
    }


def warm(training: Training, args: tuple, kwargs: dict, judged: set[int], numbers: UpdateNumbers) -> None:
    """The warm steps: ``WARM_STEPS``, or more while a judged optimizer has moved none of its
    parameters that had a gradient (it set up its state instead), or while a matrix that started at
    exactly zero has not left it (it has no gradient yet, behind another zero matrix), at most
    ``MAX_WARM_STEPS``. The count
    the first width needed is kept for the next ones, so every width is measured on the same step."""
    model, optimizers = training.model, training.optimizers
    owned = [(opt, [p for g in opt.param_groups for p in g["params"] if id(p) in judged]) for opt in optimizers]
    owned = [(opt, ps) for opt, ps in owned if ps]
    start = {id(p): p.detach().clone() for _, ps in owned for p in ps}
    names = {id(t): n for n, t in reversed(list(_named_tensors(model).items()))}
    stepped = {id(p) for opt in optimizers for g in opt.param_groups for p in g["params"]}
    zeros = {
        id(p): p
        for p in model.parameters()
        if id(p) in stepped and p.dim() >= 2 and p.numel() and not bool(p.detach().any())
    }
    had_grad: set[int] = set()
    steps = 0
    while True:
        grads = training.step(args, kwargs, grads=True)
        steps += 1
        if numbers.warm_steps is not None:
            if steps >= numbers.warm_steps:
                return
            continue
        floor = NUMERICAL_ZERO * max(grads.values(), default=0.0)
        had_grad |= {key for key in start if grads.get(key, 0.0) > floor}
        idle = [
            opt
            for opt, ps in owned
            if any(id(p) in had_grad for p in ps)
            and all(torch.equal(p.detach(), start[id(p)]) for p in ps if id(p) in had_grad)
        ]
        # a matrix still exactly zero would leave zero on the step measured, which would judge the first
        # gradient the weights behind it get through it (and its own first step)
        for key in [key for key, p in zeros.items() if bool(p.detach().any())]:
            zeros.pop(key)
            if steps > WARM_STEPS:
                numbers.zero_started.append(f"{names.get(key, '?')} (step {steps})")  # e.g. "c_proj.weight (step 2)"
        if steps >= WARM_STEPS and ((not idle and not zeros) or steps >= MAX_WARM_STEPS):
            numbers.warm_steps = steps
            return
        if idle:
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
            found = [f"{key}={group[key]!r}" for key in OPTIMIZERS.shape_settings if key in group]
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
        if not OPTIMIZERS.is_muon(type(opt).__name__):
            continue
        state = getattr(opt, "state", {})
        for group in opt.param_groups:
            for p in group["params"]:
                st = state.get(p, {}) if hasattr(state, "get") else {}
                flag = OPTIMIZERS.ortho_flag
                if flag in group:
                    ortho = bool(group[flag])
                elif isinstance(st, dict) and flag in st:
                    ortho = bool(st[flag])
                else:
                    ortho = not (isinstance(st, dict) and any(key in st for key in OPTIMIZERS.second_moment_keys))
                if not ortho:
                    out.add(id(p))
    return out


def _self_tuned(opt, step: int) -> str:
    """An optimizer that estimates its own step size (group keys ``d``, ``d0``: the D-adaptation
    family), named with d's value now; "" for any other."""
    keys = OPTIMIZERS.self_tuned_keys
    groups = [g for g in getattr(opt, "param_groups", []) if all(k in g for k in keys)]
    if not groups or not all(isinstance(groups[0][k], (int, float)) for k in keys):
        return ""
    now, start = keys
    return (
        f"{type(opt).__name__} ({now} = {groups[0][now]:.3g} after step {step}, from {start} = {groups[0][start]:.3g})"
    )
