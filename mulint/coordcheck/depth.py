"""The depth coordinate check (MUP_REFERENCE §8): the same few training steps, data and seed at several
depths, the width fixed, and how the residual stream and the blocks move against the depth L.

Measured on a fixed batch, per depth (mean over seeds), and fitted as log-log slopes against L:
- the final residual stream's change after the steps, against its size at init where that size falls
  with depth (flat when branches are scaled with depth; SP with Adam ≈ +1: every block's update adds up);
- each block's contribution's change in one step (the first that moves every block parameter: a
  zero-initialised readout holds them still in the first), its input held at the stream it had before
  that step, so it is judged after its multiplier wherever that is applied (∝ 1/L);
- the final stream at init (flat with scaled branches; SP pre-LN ≈ +½);
- the blocks' relative update in that step: how far the step moves each block weight matrix, against
  its size at init (flat under α = 1; falling like L^-½ under α = ½: the block grows lazy, nearly linear
  in its update). Read from the optimizer's actual step, so the learning rate, Adam's ε and any other
  optimizer's update rule count as training applies them.

Why relative measures: at the depths a CPU can train, the stream at init is often dominated by the
branches' sum rather than the embedding (a 0.02-std embedding against a few dozen branches), and that sum
shrinks like L^-½ under α = 1 before it becomes negligible. The stream's absolute change and a block's
distance from its linearisation both follow that composition of the stream, which is the model's init and
not its parametrisation: on a CompleteP GPT with a 0.02-std embedding they fall like L^-0.3 to L^-0.4
(read as a collapse and as lazy blocks) and are flat once the embedding dominates. The stream's change
against its shrinking size, and an update against its weight's size, do not depend on it. A stream at
init growing with depth is a finding of its own (MU954), so the change is not divided by that growth.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import cast

import torch
import torch.nn as nn

from mulint.analysis.lr_reads import LrPolicy
from mulint.analysis.optimizer import find_factory
from mulint.analysis.structure import Structure
from mulint.analysis.training import Training, default_label
from mulint.construct import build_at
from mulint.construct.depth import DepthKnob, find_depth_knob
from mulint.construct.proportional import scaled_widths
from mulint.construct.provenance import quiet
from mulint.coordcheck import DEPTH_FACTORS, DEPTH_MEASURES, DepthCoordResult, DepthMeasure
from mulint.coordcheck.plan import SEQ, SINGLE_THREAD_ELEMENTS, VOCAB, describe_shrinking
from mulint.coordcheck.run import batch_inputs, default_device, token_shape, training_of
from mulint.coordcheck.stream import StreamRecorder, block_lists, contributions
from mulint.errors import MulintError
from mulint.exponents import fit_exponent
from mulint.profiles import load_profile
from mulint.reading.functions import Function

# Parameters of the deepest model trained: the full depth is trained, so the width gives way first.
DEPTH_MAX_ELEMENTS = 12_000_000
MIN_DEPTH = 2


def depth_knob_of(structure: Structure, depth_arg: str | None, label: str) -> DepthKnob | None:
    """The depth knob of the structure's width knob, building with the small vocabulary and sequence."""
    return find_depth_knob(structure.knob.with_limits(seq=SEQ, vocab=VOCAB), depth_arg, target=label)


def choose_depths(base: int, requested: list[int] | None) -> list[int]:
    """The depths to train at: those asked for, else three bracketing the base depth (half of it, it and
    twice it; from the base depth up when it is below 4)."""
    if requested:
        return sorted(set(requested))
    first = base // 2 if base >= 4 else max(base, MIN_DEPTH)
    return [first * f for f in DEPTH_FACTORS]


def _meta_models(knob: DepthKnob, depths: list[int], width: int, label: str) -> dict[int, nn.Module]:
    with quiet():
        return {d: build_at(knob.at(d), width, target=label, device="meta") for d in depths}


def _elements(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def choose_width(knob: DepthKnob, depths: list[int], label: str) -> tuple[int, list[str]]:
    """The base width, or the widest below it whose deepest model fits the budget; a note when smaller."""
    base = knob.width.base
    for width in scaled_widths(base, [2.0**-k for k in range(0, 8)]):
        try:
            deepest = _meta_models(knob, [max(depths)], width, label)[max(depths)]
        except MulintError:
            continue
        if _elements(deepest) <= DEPTH_MAX_ELEMENTS:
            if width == base:
                return width, []
            return width, [
                f"trained at width {width}, below the base width {base}: {max(depths)} blocks at the base "
                "width are too large to train here (the depth slopes do not depend on the width in µP)"
            ]
    raise MulintError(
        f"cannot build the model at {max(depths)} blocks at a width small enough to train",
        target=label,
        step="coord",
        hint="give smaller depths with --depths",
    )


def run_depth_coord(
    target,
    structure: Structure,
    *,
    depths: list[int] | None = None,
    depth_arg: str | None = None,
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
) -> DepthCoordResult:
    """Train at each depth, measure, fit and judge (the options as for ``run_coord``)."""
    label = target.label
    device = device or default_device()
    limits = load_profile(profile).coord
    knob = depth_knob_of(structure, depth_arg, label)
    if knob is None:
        raise MulintError(
            "no depth knob: no argument or config field of the target sets its number of blocks",
            target=label,
            step="coord",
            hint="name it with --depth-arg (e.g. --depth-arg n_layer)",
        )
    depths = choose_depths(knob.base, depths)
    if len(depths) < 2 or min(depths) < MIN_DEPTH:
        raise MulintError(
            f"depths {', '.join(map(str, depths))}: the depth check needs two or more depths of at least {MIN_DEPTH}",
            target=label,
            step="coord",
            hint="e.g. --depths 4,8,16",
        )
    width, notes = choose_width(knob, depths, label)
    lists = block_lists(_meta_models(knob, depths[:2], width, label))
    if not lists:
        raise MulintError(
            f"no list of blocks grows with {knob.name}",
            target=label,
            step="coord",
            hint=f"the depth check follows the residual stream through a ModuleList whose length {knob.name} sets",
        )
    blocks_path = lists[0]
    model_cls = type(next(iter(structure.models.values())))
    factory = find_factory(target.module, model_cls, optimizer) if optimizer is not None or find_optimizer else None
    policy = LrPolicy.for_training(target.module, factory, model_cls, lr_scale_keys, lr_scale)
    deepest = _elements(_meta_models(knob, [max(depths)], width, label)[max(depths)])
    sums: dict[str, dict[int, float]] = {key: {} for key in DEPTH_MEASURES}
    shrunk: list[str] = []
    with _threads(1 if device == "cpu" and deepest <= SINGLE_THREAD_ELEMENTS else None):
        for depth in depths:
            for seed in range(seeds):
                torch.manual_seed(1000 + seed)
                with quiet():
                    model = build_at(knob.at(depth), width, target=label, device=device)
                model.to(device)
                inputs = batch_inputs(target, structure, model, batch_fn, device)
                shrunk = shrunk or describe_shrinking(knob.width, _NoLists(), token_shape(inputs))
                training = training_of(model, factory, policy, label, lr)
                blocks = list(cast(nn.ModuleList, model.get_submodule(blocks_path)))
                values = _measure(training, blocks, inputs, steps, depth, label)
                for key, value in values.items():
                    sums[key][depth] = sums[key].get(depth, 0.0) + value / seeds
                del model, training
                progress(1)
    absolute = sums["stream_change"]
    sums["stream_change"] = against_init(absolute, sums["stream_init"])
    measures = [DepthMeasure(key=key, values=by_depth) for key, by_depth in sums.items()]
    for m in measures:
        m.slope = fit_exponent(m.values)
        m.status = judge_depth(m, limits)
    change = next(m for m in measures if m.key == "stream_change")
    notes += transient_growth(change, fit_exponent(absolute), limits)
    update = next(m for m in measures if m.key == "block_update")
    if update.status == "lazy" and any(m.status == "blow-up" for m in measures):
        update.status = "ok"  # measured on a step of a model whose stream already runs away: says nothing
    if any(v <= 0.0 for v in update.values.values()):
        update.slope, update.status = None, "ok"
        notes.append(
            "no block weight matrix both starts non-zero and moved in the step measured, so the blocks' "
            "relative update says nothing: try more --steps"
        )
    notes += _lazy_note(measures, limits)
    return DepthCoordResult(
        target=label,
        depths=depths,
        width=width,
        steps=steps,
        seeds=seeds,
        optimizer=factory.label if factory else default_label(lr),
        depth_knob=knob.name,
        blocks=blocks_path,
        measures=measures,
        device=device,
        shrunk=shrunk,
        notes=notes,
        limits={k: v for k, v in limits.items() if k.startswith("depth_")},
        lazy_fails=bool(limits["depth_lazy_warning"]),
    )


@contextlib.contextmanager
def _threads(n: int | None):
    """``n`` intra-op threads while training (one for small models on the CPU: their matmuls gain
    nothing from more, and on a shared machine the threads' synchronisation costs more than the work)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _NoLists:
    """No repeated blocks were cut: the depth check trains every block."""

    lengths: dict[str, int] = {}


def judge_depth(measure: DepthMeasure, limits: dict[str, float]) -> str:
    """A measure's status from its slope against the profile's depth thresholds."""
    if measure.slope is None:
        return "ok"
    excess = measure.slope - measure.expected
    if measure.key in ("stream_change", "block_change"):
        if excess > limits["depth_blow_up"]:
            return "blow-up"
        return "collapse" if excess < limits["depth_collapse"] else "ok"
    if measure.key == "stream_init":
        return "growing" if excess > limits["depth_init"] else "ok"
    return "lazy" if excess < limits["depth_lazy"] else "ok"


def transient_growth(change: DepthMeasure, absolute: float | None, limits: dict[str, float]) -> list[str]:
    """A stream's change that grows only against a stream at init shrinking with depth is not a blow-up:
    the change itself must grow too (set back to ok, with a note saying so)."""
    if change.status != "blow-up" or absolute is None or absolute - change.expected > limits["depth_blow_up"]:
        return []
    change.status = "ok"
    return [
        f"the residual stream's change grows against the stream's size at init ({change.slope:+.2f}) but not by "
        f"itself ({absolute:+.2f}): the stream at init shrinks with depth (the branches' sum giving way to the "
        "embedding at these depths), which is not a blow-up"
    ]


def _lazy_note(measures: list[DepthMeasure], limits: dict[str, float]) -> list[str]:
    lazy = next((m for m in measures if m.status == "lazy"), None)
    if lazy is None or limits["depth_lazy_warning"]:
        return []
    return [
        f"lazy blocks: a step moves the block weights less, relative to their size, in deeper models (slope "
        f"{lazy.slope:+.2f}), "
        "the signature of α = ½ (Depth-µP); deep blocks then learn nearly linear features. α = 1 (CompleteP) "
        "keeps them non-linear; `--profile completep` makes this a warning (MU953)"
    ]


def _measure(training: Training, blocks: list[nn.Module], inputs, steps: int, depth: int, label: str) -> dict:
    """The four measures on one model."""
    args, kwargs = inputs
    model = training.model
    recorder = StreamRecorder(model, blocks, label=label)
    try:
        first = recorder.run(args, kwargs)
        inside = recorder.adds_inside(first)
        in_blocks = [p for block in blocks for p in block.parameters() if p.requires_grad]
        at_init = [p.detach().clone() for p in in_blocks]
        changes, now = [], first
        block_values: tuple[float, float] | None = None
        for step in range(1, steps + 1):
            before = [p.detach().clone() for p in model.parameters()] if block_values is None else []
            held = [p.detach().clone() for p in in_blocks] if block_values is None else []
            _step(training, args, kwargs, depth, label)
            # The first step that moves every block parameter (a zero-initialised readout, then output
            # projection, hold the others still for a step or two), else the last.
            if block_values is None and (step == steps or all(not torch.equal(p, h) for p, h in zip(in_blocks, held))):
                block_values = (
                    _block_change(model, recorder, before, now[:-1], inputs, inside),
                    relative_update(held, [p.detach() for p in in_blocks], at_init),
                )
            now = recorder.run(args, kwargs)
            changes.append(float((now[-1] - first[-1]).abs().mean()))
    finally:
        recorder.close()
    assert block_values is not None  # measured at the last step at the latest
    stream_init = float(first[-1].abs().mean())
    block_change, update = block_values
    return {
        "stream_change": changes[-1],
        "block_change": block_change,
        "stream_init": stream_init,
        "block_update": update,
    }


def against_init(change: dict[int, float], init: dict[int, float]) -> dict[int, float]:
    """The stream's change at each depth over its size at init where that size is below the first
    depth's, else over the first depth's: a stream at init shrinking with depth (the branches' sum giving
    way to the embedding, a transient of small depths) does not read as a collapse, and one growing
    with depth (unscaled branches: MU954 says so) leaves its change judged as it is."""
    first = init[min(init)]
    return {d: v / min(init[d], first) if min(init[d], first) > 0 else 0.0 for d, v in change.items()}


def relative_update(before: list[torch.Tensor], after: list[torch.Tensor], at_init: list[torch.Tensor]) -> float:
    """The mean over the block weight matrices (two or more dimensions) that start non-zero of rms(step's
    change) / rms(at init); 0.0 when there is none. Norm gains and biases are left out: a gain at 1 moved
    by the learning rate says how large the rate is, not how far the block's features move."""
    ratios = [
        float((a - b).pow(2).mean().sqrt() / size)
        for b, a, init in zip(before, after, at_init)
        if init.dim() >= 2 and (size := init.pow(2).mean().sqrt()) > 0
    ]
    return sum(ratios) / len(ratios) if ratios else 0.0


def _step(training: Training, args, kwargs, depth: int, label: str) -> None:
    try:
        training.step(args, kwargs)
    except Exception as exc:
        raise MulintError(
            f"training step at depth {depth} raised {type(exc).__name__}: {exc}",
            target=label,
            step="coord",
            hint="give a batch function with --batch path/to/file.py:NAME",
        ) from exc


def _block_change(model: nn.Module, recorder: StreamRecorder, before, entering, inputs, inside: bool) -> float:
    """The mean change of a block's contribution in the step, its input held at ``entering`` (the stream
    before the step): the contributions at θ0 (the parameters before the step) and after it. The
    parameters are left as the step made them."""
    params = list(model.parameters())
    after = [p.detach().clone() for p in params]
    args, kwargs = inputs
    try:
        with torch.no_grad():
            for p, b in zip(params, before):
                p.copy_(b)
        zero = contributions(recorder.run(args, kwargs, frozen=entering), entering, inside)
    finally:
        with torch.no_grad():
            for p, a in zip(params, after):
                p.copy_(a)
    moved = contributions(recorder.run(args, kwargs, frozen=entering), entering, inside)
    return sum(float((m - z).abs().mean()) for m, z in zip(moved, zero)) / len(zero)


def depth_coord_facts(result: DepthCoordResult, structure: Structure):
    """The measures as facts, each at the line that constructs the list of blocks (for MU95x findings)."""
    from mulint.facts import CoordDepthMeasure

    reference = next(iter(structure.models.values()))
    modules = dict(reference.named_modules())
    sites = structure.provenance.module_sites if structure.provenance else {}
    loc = next(
        (
            sites[m]
            for m in (modules.get(result.blocks), modules.get(f"{result.blocks}.0"))
            if m is not None and m in sites
        ),
        None,
    )
    return [
        CoordDepthMeasure(
            key=m.key, description=m.description, slope=m.slope, expected=m.expected, status=m.status, loc=loc
        )
        for m in result.measures
        if m.slope is not None
    ]
