"""Running the coordinate check: build the model at the widths, train, record, fit and judge."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from mulint.analysis.lr_reads import LrPolicy
from mulint.analysis.optimizer import find_factory
from mulint.analysis.structure import Structure
from mulint.analysis.training import Training, default_label, default_optimizer
from mulint.construct import inputs as example
from mulint.coordcheck import CoordResult, Extension, LayerCurve
from mulint.coordcheck.plan import (
    BATCH,
    SEQ,
    choose_widths,
    cpu_threads,
    describe_shrinking,
    fits,
    limited,
    shrunk_model,
)
from mulint.coordcheck.record import changes, recording
from mulint.errors import MulintError
from mulint.exponents import fit_exponent
from mulint.profiles import load_profile
from mulint.reading.functions import Function


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def batch_inputs(
    target, structure: Structure, model: nn.Module, batch_fn, device: str, batch: int = BATCH
) -> example.Inputs:
    """The same batch at every width: drawn on the CPU from a fixed seed, then moved to the device."""
    torch.manual_seed(0)
    if batch_fn is not None:
        inputs = example.from_user_function(batch_fn, model)
    elif callable(user := getattr(target.module, "example_inputs", None)):
        inputs = example.from_user_function(user, model)
    else:
        inputs = example.synthesise(model, "cpu", batch=batch, seq=SEQ)[structure.inputs_index]
    return example.to_device(inputs, device)


def _batch_for(factory, policy, knob, widths: list[int], label: str) -> tuple[int, list[str]]:
    """Samples per synthesised batch. An optimizer that mixes a matrix's entries (Muon) makes an update
    whose size depends on the gradient's rank, at most the batch's tokens: trained on fewer tokens than
    the width, its layers seem to grow with width (mulint.analysis.update_batch). Such a setup, probed
    as the measured updates probe it, trains on enough tokens for the widest width; a per-coordinate
    one keeps the small batch."""
    if factory is None:
        return BATCH, []
    from mulint.analysis.update_batch import tokens_for
    from mulint.analysis.updates import per_coordinate

    with shrunk_model(knob, min(widths), target=label, device="cpu") as (model, _):
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        stepped_alone = per_coordinate(factory.make, model, policy, ())
    if not names - stepped_alone:
        return BATCH, []
    tokens = tokens_for(widths, 0)
    batch = max(BATCH, -(-tokens // SEQ))
    return batch, [
        f"the optimizer mixes a matrix's entries: trained on {batch} x {SEQ} tokens (at least "
        f"{tokens}), so no layer's update is capped by the batch's rank"
    ]


def _judged(structure: Structure, limits: dict[str, float]) -> dict[str, str]:
    """Modules not judged on their own output, with the reason: a width-dependent multiplier outside them
    (its exponent beyond the profile's ``multiplier``)."""
    skip = {}
    for p in structure.facts.params:
        for use in p.uses:
            if abs(use.multiplier_exponent) > limits["multiplier"]:
                skip[use.module or "output"] = "a width-dependent multiplier follows it: judged downstream"
    skip.pop("output", None)  # the model output is always judged
    return skip


def token_shape(inputs: example.Inputs) -> tuple[int, ...] | None:
    args, kwargs = inputs
    tensor = next((t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)), None)
    return tuple(tensor.shape) if tensor is not None and not tensor.is_floating_point() else None


def run_coord(
    target,
    structure: Structure,
    *,
    widths: list[int] | None = None,
    steps: int = 3,
    seeds: int = 2,
    lr: float = 1e-3,
    optimizer: Function | None = None,
    find_optimizer: bool = False,
    batch_fn: Callable | None = None,
    progress: Callable[[int], None] = lambda n: None,
    device: str | None = None,
    profile: str = "mup",
    lr_scale_keys: tuple[str, ...] = (),
    lr_scale: str = "auto",
) -> CoordResult:
    """Train, fit and judge; a failure that is only doubtful (see ``doubtful``) is judged again on a
    longer run with one more, wider width, and the result says what was extended.
    ``lr_scale_keys``/``lr_scale``: as for `check` (the config's `lr-scale-key`, `lr-scale`), so both
    train at the same per-group learning rates. ``optimizer``: the user's factory; without it, the one
    `check` finds when ``find_optimizer``, else Adam at ``lr``."""
    device = device or default_device()
    limits = load_profile(profile).coord
    knob = limited(structure.knob)
    widths, notes = choose_widths(knob, target.label, widths)
    model_cls = type(next(iter(structure.models.values())))
    factory = find_factory(target.module, model_cls, optimizer) if optimizer is not None or find_optimizer else None
    label = factory.label if factory else default_label(lr)
    policy = LrPolicy.for_training(target.module, factory, model_cls, lr_scale_keys, lr_scale)
    skip = _judged(structure, limits)

    def train(widths: list[int], steps: int) -> tuple[dict[str, LayerCurve], list[str]]:
        curves: dict[str, LayerCurve] = {}
        shrunk: list[str] = []
        batch, said = (BATCH, []) if batch_fn is not None else _batch_for(factory, policy, knob, widths, target.label)
        notes.extend(n for n in said if n not in notes)
        with cpu_threads(knob, widths, target.label, device):
            for width in widths:
                for seed in range(seeds):
                    torch.manual_seed(1000 + seed)
                    with shrunk_model(knob, width, target=target.label, device=device) as (model, lists):
                        inputs = batch_inputs(target, structure, model, batch_fn, device, batch)
                        shrunk = shrunk or describe_shrinking(knob, lists, token_shape(inputs))
                        training = training_of(model, factory, policy, target.label, lr)
                        _train_and_record(training, inputs, steps, width, seeds, curves, skip, target.label)
                    del model, training
                    progress(1)
        for curve in curves.values():
            curve.slopes = {t: fit_exponent(by_width) for t, by_width in curve.change.items()}
            curve.status = judge(curve, limits)
        return curves, shrunk

    curves, shrunk = train(widths, steps)
    extended = None
    doubts = doubtful(curves.values(), limits)
    if doubts:
        more = max(steps, int(limits["extend_steps"]))
        wider = [*widths, 2 * max(widths)] if fits(knob, 2 * max(widths), target.label) else widths
        if more > steps or wider != widths:
            curves, shrunk = train(wider, more)
            extended = Extension(steps=(steps, more), widths=(widths, wider), reasons=doubts)
            notes.append(extended.describe())
            widths, steps = wider, more
    notes.extend(_unmoved_note(curves.values(), steps))
    return CoordResult(
        target=target.label,
        widths=widths,
        steps=steps,
        seeds=seeds,
        optimizer=label,
        layers=list(curves.values()),
        device=device,
        shrunk=shrunk,
        notes=notes,
        limits=(limits["collapse"], limits["blow_up"]),
        extended=extended,
    )


def training_of(model, factory, policy: LrPolicy | None, label: str, lr: float = 1e-3) -> Training:
    """The training coord runs: the user's optimizers (the default Adam at ``lr`` without a factory) at
    the per-group lrs `check` judges, lr-scale keys as the training applies them and a scheduler's base
    lr, held (not stepped: a few steps of warm-up would train at nearly 0); dropout on, as the user's
    training runs; weight decay as the user set it."""
    if factory is None:
        return Training.of(model, default_optimizer(lr), label=default_label(lr), target=label)
    return Training.of(model, factory.make, policy, label=factory.label, target=label)


def _unmoved_note(curves, steps: int) -> list[str]:
    """Judged layers whose output never changed at any width: their slope is undefined, and a PASS says
    nothing about them. Say so, rather than count them as keeping their change constant."""
    still = [
        c.name
        for c in curves
        if c.judged and c.change and all(v == 0.0 for by_width in c.change.values() for v in by_width.values())
    ]
    if not still:
        return []
    names = ", ".join(still[:4]) + (f" and {len(still) - 4} more" if len(still) > 4 else "")
    return [
        f"{names} did not change in {steps} steps at any width, so this check says nothing about "
        f"{'it' if len(still) == 1 else 'them'}: no gradient reached {'it' if len(still) == 1 else 'them'} "
        "(the loss on the fixed batch may have reached 0 after a step, or a zero-initialised layer kept "
        "it from them); try a smaller --lr, more --steps or a --batch with more examples"
    ]


def _floor(curve: LayerCurve, limits: dict[str, float]) -> float:
    # An output with no width dimension (the logits, attention probabilities) is a sum over width: with
    # a non-zero init its change carries a term decaying like width^-½, which small widths show as a
    # mildly negative slope in a correct µP model; a real collapse is ≈ -1.
    return limits["collapse_output"] if curve.name == "output" or curve.finite else limits["collapse"]


def _status(slope: float, curve: LayerCurve, limits: dict[str, float]) -> str:
    return "blow-up" if slope > limits["blow_up"] else "collapse" if slope < _floor(curve, limits) else "ok"


def judge(curve: LayerCurve, limits: dict[str, float] | None = None) -> str:
    """The layer's status at its last step (thresholds of ``limits``, the default profile's by default).
    With more widths than the profile's ``widest``, a failure must hold both over all of them and over
    the widest ``widest``: finite-width effects are largest at the narrowest."""
    limits = limits or load_profile().coord
    slope = curve.slope
    if not curve.judged or slope is None:
        return curve.status
    status = _status(slope, curve, limits)
    last = curve.change[max(curve.change)] if curve.change else {}
    widest = int(limits["widest"])
    if status != "ok" and len(last) > widest:
        upper = fit_exponent({w: last[w] for w in sorted(last)[-widest:]})
        if upper is not None and _status(upper, curve, limits) == "ok":
            return "ok"
    return status


def doubtful(curves, limits: dict[str, float]) -> dict[str, str]:
    """Failing layers whose failure may not hold, with why: a slope near its threshold, or a layer that
    has not moved yet (its change tiny against its size, or exactly zero after the first steps: a
    zero-initialised gate or readout before it kept the gradient away). Empty when
    nothing fails or some failure is clear-cut: then more training would not change the verdict."""
    out = {}
    for curve in curves:
        if not curve.judged or curve.status == "ok" or curve.slope is None:
            continue
        slope, last = curve.slope, max(curve.change)
        threshold = limits["blow_up"] if curve.status == "blow-up" else _floor(curve, limits)
        moved = min(
            (curve.change[last][w] / curve.size[last][w] for w in curve.change[last] if curve.size[last].get(w)),
            default=0.0,
        )
        still = [t for t, by_width in curve.change.items() if any(v == 0.0 for v in by_width.values())]
        if still:
            out[curve.name] = f"it did not move until step {max(still) + 1}"
        elif moved < limits["unmoved"]:
            out[curve.name] = f"it had barely moved (change {moved:.2%} of its size)"
        elif abs(slope - threshold) <= limits["near"]:
            out[curve.name] = f"slope {slope:+.2f} near the threshold {threshold:+.2f}"
        else:
            return {}
    return out


def _train_and_record(training: Training, inputs, steps, width, seeds, curves, skip, label):
    args, kwargs = inputs
    model = training.model
    modules = dict(model.named_modules())
    with recording(model) as recorder:
        first = recorder.record(args, kwargs)
        for step in range(1, steps + 1):
            try:
                training.step(args, kwargs)
            except Exception as exc:
                raise MulintError(
                    f"training step at width {width} raised {type(exc).__name__}: {exc}",
                    target=label,
                    step="coord",
                    hint="give a batch function with --batch path/to/file.py:NAME",
                ) from exc
            for name, (change, size, shape) in changes(first, recorder.record(args, kwargs)).items():
                curve = curves.get(name)
                if curve is None:
                    module = modules.get("" if name == "output" else name)
                    curve = curves[name] = LayerCurve(
                        name=name, module_type=type(module).__name__, judged=name not in skip, reason=skip.get(name, "")
                    )
                curve.shapes[width] = shape
                by_width = curve.change.setdefault(step, {})
                by_width[width] = by_width.get(width, 0.0) + change / seeds
                sizes = curve.size.setdefault(step, {})
                sizes[width] = sizes.get(width, 0.0) + size / seeds


def coord_facts(result: CoordResult, structure: Structure):
    """The judged layers as facts, each with the line that constructs it (for MU9xx findings)."""
    from mulint.facts import CoordLayer

    reference = (
        structure.models[structure.facts.widths[0]]
        if structure.facts.widths[0] in structure.models
        else next(iter(structure.models.values()))
    )
    modules = dict(reference.named_modules())
    sites = structure.provenance.module_sites if structure.provenance else {}
    out = []
    for layer in result.layers:
        if not layer.judged or layer.slope is None:
            continue
        module = modules.get("" if layer.name == "output" else layer.name)
        out.append(
            CoordLayer(
                name=layer.name,
                module_type=layer.module_type,
                slope=layer.slope,
                status=layer.status,
                loc=sites.get(module) if module is not None else None,
            )
        )
    return out
