"""One trial of a transfer sweep: the user's model at one width, trained at one learning rate from one
seed, for a fixed number of steps on the sweep's task. The unit of work every executor runs.

The model is shrunk as `coord` shrinks it (two blocks, small vocabulary, short sequences: none of them
grows with width). It trains as `check` and `coord` train it (mulint.analysis.training): the user's
optimizer (factory, param groups, `lr_scale`-style keys applied as their training applies them), every
group's lr scaled by the same factor so the user's ratios between groups stay; a scheduler's base lrs
are used and not stepped (a schedule written for the full run would hold a few hundred steps in
warm-up).
"""

from __future__ import annotations

import functools
import inspect
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mulint.analysis.lr_reads import LrPolicy
from mulint.analysis.optimizer import find_factory
from mulint.analysis.structure import Structure
from mulint.analysis.training import Training, default_label, default_optimizer, first_tensor
from mulint.construct import inputs as example
from mulint.construct.knob import WidthKnob
from mulint.construct.proportional import scaled_widths
from mulint.construct.provenance import quiet
from mulint.coordcheck.plan import cpu_threads, describe_shrinking, fits, shallow, shrunk_model, size_on_meta
from mulint.errors import MulintError
from mulint.steps import enter as enter_step
from mulint.sweep.data import SyntheticTask, UserData, synthetic_task
from mulint.sweep.knobs import DEFAULT, knob_named
from mulint.sweep.store import TrialResult

SEQ = 16  # the synthetic language is first-order: longer sequences add cost, not structure
VOCAB = 256
BATCH = 16
TARGETS_ARGS = ("targets",)  # nanoGPT's forward(idx, targets): the model computes its own loss
DIVERGE_WINDOW = 5  # steps whose mean loss above the initial loss means the run diverged
DIVERGE_MARGIN = 0.05  # ... by this share of it: a run too slow to learn sits at its initial loss


@dataclass
class SweepModel:
    """What every trial of one target's sweep shares, set up once per worker."""

    label: str
    knob: WidthKnob  # the width knob, shrunk
    make_optimizer: Callable[[torch.nn.Module], object]  # the user's factory, or the default Adam
    policy: LrPolicy | None  # how the factory's lr-scale keys are applied (mulint.analysis.lr_reads)
    reference_lr: float  # the largest group lr at the base width: the lr the grid is centred on
    optimizer_label: str
    task: SyntheticTask | UserData
    device: str
    notes: list[str]
    shrunk: list[str]
    swept: str = DEFAULT  # the knob the sweep varies (mulint.sweep.knobs)
    readout: str | None = None  # the module whose output the output multiplier scales; None: the model's output
    positions: int = BATCH  # rows of a batch's work: samples, or samples × tokens (mulint.sweep.budget)


def prepare(
    target,
    structure: Structure,
    *,
    optimizer,
    lr: float,
    device: str,
    lr_scale_keys: tuple[str, ...] = (),
    lr_scale: str = "auto",
    data: tuple[Callable, str] | None = None,
    swept: str = DEFAULT,
) -> SweepModel:
    """``optimizer``: the user's factory (mulint.reading.functions), else the one `check` finds, else
    Adam at ``lr``; ``data``: the user's batch function and its label (``--data``), else a synthetic task;
    ``swept``: the knob the sweep varies (mulint.sweep.knobs)."""
    knob_named(swept)
    knob = shallow(structure.knob.with_limits(seq=SEQ, vocab=VOCAB))
    model_cls = type(next(iter(structure.models.values())))
    factory = find_factory(target.module, model_cls, optimizer)  # --optimizer, else found as `check` finds it
    policy = LrPolicy.for_training(target.module, factory, model_cls, lr_scale_keys, lr_scale)
    make_optimizer = factory.make if factory else default_optimizer(lr)
    label = factory.label if factory else default_label(lr)
    notes: list[str] = []

    torch.manual_seed(0)
    with shrunk_model(knob, knob.base, target=target.label, device="cpu") as (model, lists):
        inputs = example.synthesise(model, "cpu", batch=BATCH, seq=SEQ)[structure.inputs_index]
        first = next((v for v in [*inputs[0], *inputs[1].values()] if isinstance(v, torch.Tensor)), None)
        tokens = tuple(first.shape) if first is not None else None
        shrunk = describe_shrinking(knob, lists, tokens)
        model.eval()
        with torch.no_grad(), quiet():
            output = model(*inputs[0], **inputs[1])
        out = first_tensor(output)
        if out is None:
            raise MulintError(
                "the model's output holds no tensor to train on",
                target=target.label,
                step="transfer",
                hint="return the logits (or predictions) from forward",
            )
        try:
            takes = inspect.signature(model.forward).parameters
            targets_arg = next((name for name in TARGETS_ARGS if name in takes), None)
            task = (
                UserData(data[0], f"your batches from {data[1]}") if data else synthetic_task(inputs, out, targets_arg)
            )
        except ValueError as exc:
            raise MulintError(
                f"no synthetic task fits this model: {exc}",
                target=target.label,
                step="transfer",
                hint="pass your own batches with --data FILE:FN",
            ) from None
        training = Training.of(model, make_optimizer, policy, label=label, target=target.label)
        reference = max(lr for _, lr in training.group_lrs())
        if training.schedulers:
            notes.append("the scheduler's base learning rates are trained, not stepped through its schedule")
    readout = readout_module(structure, target.label, targets_arg) if swept == "output-multiplier" else None
    positions = positions_of(first)
    return SweepModel(
        target.label,
        knob,
        make_optimizer,
        policy,
        reference,
        label,
        task,
        device,
        notes,
        shrunk,
        swept,
        readout,
        positions,
    )


def positions_of(x: torch.Tensor | None) -> int:
    """The rows of work one batch of ``x`` gives every weight matrix: its token ids, its samples (a
    batch of feature vectors), samples × positions of a sequence of vectors, samples × pixels."""
    if x is None or x.ndim == 0:
        return BATCH
    if not x.is_floating_point():
        return x.numel()
    shape = tuple(x.shape)
    return math.prod(shape[:2]) if x.ndim == 3 else shape[0] * math.prod(shape[2:])


def readout_module(structure: Structure, label: str, targets_arg: str | None) -> str | None:
    """The module whose output the output multiplier scales: the one running the output weight's
    contraction. None when that op runs in the model's own forward and the loss is taken from the
    model's output (its logits are then scaled); an error when the model computes its loss itself."""
    modules = {
        u.module for p in structure.facts.params for u in p.uses if u.role == "output" and u.kind == "contraction"
    }
    if len(modules) == 1 and "" not in modules:
        return modules.pop()
    if targets_arg is None:
        return None
    raise MulintError(
        "the output multiplier cannot be applied: the readout runs in the model's own forward, which "
        "computes the loss itself",
        target=label,
        step="transfer",
        hint="give the readout a module of its own (nn.Linear), or sweep --knob lr or init-scale",
    )


CANDIDATES = (0.125, 0.25, 0.5, 1, 2, 4)  # factors of the base width a default sweep may train (mulint.sweep.budget)


def choose_widths(sweep: SweepModel, requested: list[int] | None) -> list[int]:
    """The widths asked for, else every width a default sweep may pick from (the base width's factors
    CANDIDATES, as far as they build and fit): mulint.sweep.budget picks three by their step times."""
    if requested:
        if len(set(requested)) < 2:
            raise MulintError(
                "a transfer sweep needs at least two widths",
                target=sweep.label,
                step="transfer",
                hint="pass two or more, e.g. --widths 128,256,512",
            )
        return sorted(set(requested))
    base = sweep.knob.base
    widths = [w for w in scaled_widths(base, CANDIDATES) if fits(sweep.knob, w, sweep.label)]
    if len([w for w in widths if w >= base]) < 2 and len(widths) < 3:
        raise MulintError(
            f"the model is too large to train at widths {base} and {2 * base} here",
            target=sweep.label,
            step="transfer",
            hint="pass smaller --widths",
        )
    return widths


def sizes(sweep: SweepModel, widths: list[int]) -> dict[int, int]:
    """Parameters of the trained (shrunk) model per width, counted on the meta device."""
    return {w: size_on_meta(sweep.knob, w, sweep.label) or 0 for w in widths}


def step_times(sweep: SweepModel, counts: dict[int, int], requested: bool) -> dict[int, float]:
    """A training step's seconds at each width: measured (see ``seconds_per_step``), except above the
    base width of a default sweep's candidates, where the base width's time is scaled by the model's
    size (a step's work grows with its parameters; what does not, the overhead, makes this an upper
    bound). The candidates above the base are the expensive ones: measuring them would cost the time
    the choice is there to save. ``counts``: parameters per width (``sizes``)."""
    base = sweep.knob.base
    measured = [w for w in counts if requested or w <= base]
    times = {w: seconds_per_step(sweep, w) for w in measured}
    reference = max(measured, default=None)
    if reference is None:
        return times
    size = counts[reference] or 1
    for w in counts:
        if w not in times:
            times[w] = times[reference] * (counts[w] or size) / size
    return times


def seconds_per_step(sweep: SweepModel, width: int, budget: float = 1.0) -> float:
    """A training step's time at ``width``: the median of up to 10 timed steps (after a warm-up step)
    within about ``budget`` seconds, for the estimate printed before a sweep."""
    times: list[float] = []
    centre = 0.0 if knob_named(sweep.swept).relative else math.log2(sweep.reference_lr)
    for steps in (2, 4, 6, 10):
        result = train_one(sweep, width, centre, 0, steps + 1, timed_from=1)
        times.append(result.seconds / steps)
        if sum(t * s for t, s in zip(times, (2, 4, 6, 10))) > budget:
            break
    return sorted(times)[len(times) // 2]


def train_one(
    sweep: SweepModel, width: int, log2_value: float, seed: int, steps: int, *, timed_from: int = 0
) -> TrialResult:
    """Train one (width, value of the swept knob, seed) run; stop early when it diverges (see
    ``diverged``). Its seconds count from step ``timed_from``."""
    start = time.perf_counter()
    value = 2.0**log2_value
    # The lr knob scales every group's lr (and its schedulers' base lrs) by one factor: the user's
    # ratios stay. The other knobs train at the user's own lrs.
    factor = value / sweep.reference_lr if sweep.swept == "lr" else 1.0
    torch.manual_seed(1000 + seed)  # the same init for every lr of this seed
    losses: list[float] = []
    initial = math.nan
    gone = False
    with (
        cpu_threads(sweep.knob, [width], sweep.label, sweep.device),  # one thread for small models, as coord
        shrunk_model(sweep.knob, width, target=sweep.label, device=sweep.device) as (model, _),
    ):
        enter_step("transfer")  # the width's build was a step of its own: from here on it is the training
        output_scale = apply_knob(sweep, model, value)
        training = Training.of(
            model,
            sweep.make_optimizer,
            sweep.policy,
            label=sweep.optimizer_label,
            target=sweep.label,
            lr_multiplier=factor,
            blame_optimizer=True,
        )
        batches = sweep.task.batches(seed, sweep.device)
        for step in range(steps):
            if step == timed_from:
                start = time.perf_counter()
            batch = next(batches)
            seen: list[float] = []
            loss = functools.partial(_scaled_loss, batch.loss, output_scale) if output_scale != 1.0 else batch.loss
            training.loss = functools.partial(_recorded, loss, seen)
            try:
                training.step(*batch.inputs)
            except MulintError:
                raise
            except Exception as exc:
                raise training_error(exc, sweep, width, log2_value, seed) from exc
            value = seen[0]
            if math.isnan(initial):
                initial = value
            if not math.isfinite(value):
                gone = True
                break
            losses.append(value)
            if diverged(losses, initial, steps):
                gone = True
                break
    return TrialResult(tuple(losses), initial, gone, time.perf_counter() - start)


def training_error(exc: Exception, sweep: SweepModel, width: int, log2_value: float, seed: int) -> Exception:
    """The user's model failing to train, said as such (with the line of their code that raised); a
    failure to allocate memory stays what it is, for the worker to report as a memory limit."""
    if isinstance(exc, MemoryError) or "allocate memory" in str(exc):
        return exc
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/torch/" not in f.filename]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    first_line = (str(exc).strip().splitlines() or [""])[0]
    knob = "lr" if sweep.swept == "lr" else sweep.swept
    return MulintError(
        f"training at width {width}, {knob} 2^{round(log2_value, 2):g}, seed {seed} raised {type(exc).__name__}: {first_line}{where}",
        target=sweep.label,
        step="transfer",
        hint="run one training step of the model in plain Python to see why, or pass your own batches with --data FILE:FN",
    )


def apply_knob(sweep: SweepModel, model: torch.nn.Module, value: float) -> float:
    """Set the swept knob other than the lr on a freshly built model (mulint.sweep.knobs); returns the
    factor left to apply to the model's output before the loss (1 when none is)."""
    if sweep.swept == "init-scale":
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim >= 2:  # weight matrices and embeddings; norm gains and biases keep their init
                    p.mul_(value)
    elif sweep.swept == "output-multiplier":
        if sweep.readout is None:
            return value
        # The handle lives as long as the model, which lives for this trial only.
        model.get_submodule(sweep.readout).register_forward_hook(functools.partial(_times, value))
    return 1.0


def _times(value: float, module, args, output):
    return output * value if isinstance(output, torch.Tensor) else output


def _scaled_loss(loss: Callable, value: float, output) -> torch.Tensor:
    """The loss of the model's output with its first tensor (the logits) times ``value``."""
    if isinstance(output, torch.Tensor):
        return loss(output * value)
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return loss((output[0] * value, *output[1:]))
    raise MulintError(
        "the output multiplier cannot be applied: the model's output is no tensor and no tuple led by one",
        step="transfer",
        hint="return the logits from forward, or sweep --knob lr or init-scale",
    )


def _recorded(loss: Callable, seen: list[float], output) -> torch.Tensor:
    """The batch's loss of the output, its value kept for the trial's curve."""
    value = loss(output)
    seen.append(float(value.detach()))
    return value


def diverged(losses: list[float], initial: float, steps: int) -> bool:
    """Past the first quarter of the run, the last few steps' mean loss is above the initial loss (by
    ``DIVERGE_MARGIN`` of it)."""
    if len(losses) < max(DIVERGE_WINDOW, steps // 4):
        return False
    tail = losses[-DIVERGE_WINDOW:]
    return sum(tail) / len(tail) > initial + DIVERGE_MARGIN * abs(initial)
