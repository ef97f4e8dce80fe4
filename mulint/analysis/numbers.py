"""Numbers from small real models: each parameter's init scale at several widths, and its init site.

The model is built on the CPU only at small widths (never at the user's size), one width at a time,
with a fixed seed; the size of a parameter is its root-mean-square entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from mulint.construct import build_at
from mulint.construct.init_record import InitRecorder, Write
from mulint.construct.knob import WidthKnob
from mulint.construct.proportional import ShapeProbe, proportional_widths, scaled_widths
from mulint.construct.provenance import quiet
from mulint.errors import MulintError

MAX_ELEMENTS = 64_000_000  # per numeric model: ~256 MB of float32
# Drawing the init is the cost of the numbers: prefer widths whose models stay under this size, and
# go up to MAX_ELEMENTS only when fewer than two widths do (a 128k vocab at 64 heads, say).
PREFERRED_ELEMENTS = 16_000_000
MIN_WIDTH, MAX_WIDTH = 32, 512
# Sequence-length-like fields (block_size, max_position_embeddings) of the small models: a causal mask
# is block_size² entries (4 GiB at 32768). The positions are not a width, so the exponents are kept;
# this is well above the length of the synthesised inputs (mulint.construct.inputs.SEQ).
NUMERIC_SEQ = 256
# Only when the model does not fit at two small widths otherwise: the vocabulary, depth and experts the
# small models keep (none is a width, so no width exponent changes).
NUMERIC_VOCAB, NUMERIC_DEPTH, NUMERIC_EXPERTS = 1024, 2, 4


@dataclass
class InitNumbers:
    widths: list[int]
    rms: dict[str, dict[int, float]] = field(default_factory=dict)  # param -> width -> rms entry
    last_write: dict[str, Write] = field(default_factory=dict)
    late_writes: dict[str, list[Write]] = field(default_factory=dict)  # after mup's set_base_shapes
    has_infshape: dict[str, bool] = field(default_factory=dict)


def numeric_knob(knob: WidthKnob) -> WidthKnob:
    """The knob the small CPU models are built with: sequence-length-like fields capped (and, when
    the model does not fit at two small widths, vocabulary, depth and experts: see `numeric_widths`)."""
    from mulint.construct.knob import limited

    capped = knob.with_limits(seq=NUMERIC_SEQ)
    plain = knob.unlimited or knob
    if capped.unlimited is None and plain.make is not None:
        capped = limited(plain, dict(knob.limits))  # caps can be added later, when it does not fit
    return capped


def _numel_on_meta(knob: WidthKnob, width: int, target: str) -> int | None:
    try:
        with quiet():
            model = build_at(knob, width, target=target, device="meta")
    except MulintError:
        return None
    return sum(p.numel() for p in model.parameters())


def numeric_widths(knob: WidthKnob, target: str, requested: list[int] | None = None, count: int = 3) -> list[int]:
    return choose_numeric_widths(knob, target, requested, count)[0]


def choose_numeric_widths(
    knob: WidthKnob, target: str, requested: list[int] | None = None, count: int = 3
) -> tuple[list[int], list[str]]:
    """The user's widths when they fit in memory, else up to three small doubling widths that do, moved
    up where a width-derived dimension does not grow in proportion at them; and a note when moved."""
    if (
        requested
        and len(requested) >= 2
        and all((n := _numel_on_meta(knob, w, target)) is not None and n <= MAX_ELEMENTS for w in requested)
    ):
        return requested, []
    widths, numel = _small_widths(knob, target, count)

    def fits(width: int) -> bool:
        n = numel(width)
        return n is not None and n <= MAX_ELEMENTS

    return proportional_widths(knob, target, widths, min_count=2, what="numeric widths", fits=fits, probe=numel.probe)


class _MetaNumel:
    """Element count of the model built on the meta device at a width, from the shapes the proportion
    check reads too (`ShapeProbe`): one meta build per width serves both. A knob shrunk since gets a new
    one (the shapes change)."""

    def __init__(self, knob: WidthKnob, target: str) -> None:
        self.probe = ShapeProbe(knob, target)

    def __call__(self, width: int) -> int | None:
        shapes = self.probe.shapes(width)
        return None if shapes is None else sum(math.prod(shape) for shape in shapes.values())


def _small_widths(knob: WidthKnob, target: str, count: int, level: int = 0) -> tuple[list[int], _MetaNumel]:
    """Up to `count` small doubling widths that fit, and the element counts read to choose them;
    ``level`` counts the rounds of shrinking what does not grow with width already tried (see `_shrink`)."""
    numel = _MetaNumel(knob, target)
    candidates = sorted(set(scaled_widths(knob.base, [2.0**k for k in range(-12, 4)])))
    in_range = [w for w in candidates if MIN_WIDTH <= w <= MAX_WIDTH]
    sizes = _sizes(numel, in_range)
    preferred = [w for w, n in sizes.items() if n <= PREFERRED_ELEMENTS]
    if len(preferred) >= 2:
        return preferred[-count:], numel
    if len(sizes) >= 2:
        return list(sizes)[:count], numel
    # e.g. 64 heads need width >= 64 and a huge vocab fills memory: look outside the range
    fitting = sorted(set(sizes) | set(_sizes(numel, [w for w in candidates if w not in in_range])))
    if len(fitting) < 2 and level < 2 and knob.unlimited is not None:
        _shrink(knob, level)
        return _small_widths(knob, target, count, level + 1)
    if len(fitting) < 2:
        raise _too_big(knob, target, candidates)
    return fitting[:count], numel


def _shrink(knob: WidthKnob, level: int) -> None:
    """Cap what does not grow with width, as the coordinate check does: the vocabulary first (level
    0), then depth and experts (level 1). The caps go into the knob's limits, so every later build
    uses them and `shrink_note` can say so."""
    from mulint.construct.width_limits import capped_fields, count_caps

    plain = knob.unlimited
    assert plain is not None, "only a limited knob is shrunk further"
    grows = set(plain.describe_scaling(plain.base))
    if level == 0:
        caps = capped_fields(plain.defaults, grows, seq=NUMERIC_SEQ, vocab=NUMERIC_VOCAB)
    else:
        caps = count_caps(plain.defaults, grows, depth=NUMERIC_DEPTH, experts=NUMERIC_EXPERTS)
    knob.limits.update(caps)


def shrink_note(knob: WidthKnob) -> str | None:
    """What the init was measured without, when more than the sequence length was capped."""
    from mulint.construct.width_limits import is_sequence_field

    defaults = (knob.unlimited or knob).defaults
    shrunk = {k: v for k, v in knob.limits.items() if not is_sequence_field(k) and k in defaults}
    if not shrunk:
        return None
    told = ", ".join(f"{k} {defaults[k]} -> {v}" for k, v in shrunk.items())
    return f"init measured on small models with {told}: at two small widths the model did not fit otherwise"


def _too_big(knob: WidthKnob, target: str, candidates: list[int]) -> MulintError:
    """Say what is big: the parameter count at the smallest width that builds, its largest tensors,
    and what was already shrunk."""
    for width in candidates:
        try:
            with quiet():
                model = build_at(knob, width, target=target, device="meta")
        except MulintError:
            continue
        total = sum(p.numel() for p in model.parameters())
        if total <= MAX_ELEMENTS:
            break  # builds and fits, but no second width does: the widths are the problem
        largest = sorted(model.named_parameters(), key=lambda np: -np[1].numel())[:3]
        shrunk = ", ".join(f"{k}={v}" for k, v in knob.limits.items()) or "nothing it could shrink"
        big = ", ".join(f"{name} {tuple(p.shape)}" for name, p in largest)
        return MulintError(
            f"the model holds {total / 1e6:.0f}M parameters even at width {width} (mulint measures init on "
            f"models of at most {MAX_ELEMENTS / 1e6:.0f}M), after capping {shrunk}; largest: {big}",
            target=target,
            step="build",
            hint="what does not grow with width is too big: name a factory (file.py:make_small) that builds "
            "the model with a smaller vocabulary, fewer layers or experts, or fields mulint can read",
        )
    return MulintError(
        "cannot build the model at two small widths on the CPU to measure its init",
        target=target,
        step="build",
        hint="give small widths it accepts with --widths (e.g. 64,128,256)",
    )


def _sizes(numel_at: _MetaNumel, widths: list[int]) -> dict[int, int]:
    """Element counts, ascending by width, of the widths that build and fit; the size grows with
    width, so the search stops at the first one too big."""
    out = {}
    for width in widths:
        numel = numel_at(width)
        if numel is None:
            continue
        if numel > MAX_ELEMENTS:
            break
        out[width] = numel
    return out


def measure_init(
    knob: WidthKnob,
    widths: list[int],
    target: str,
    seed: int = 0,
    visit: Callable[[int, nn.Module], None] | None = None,
) -> InitNumbers:
    """Init sizes per width; ``visit(width, model)`` sees each small model before it is dropped."""
    from mulint.analysis.same_structure import layout, require_same_structure
    from mulint.analysis.weight_norm import composed_rms, weight_normed
    from mulint.trace.record import seed_all

    numbers = InitNumbers(widths=widths)
    layouts = {}
    for i, width in enumerate(widths):
        seed_all(seed)  # Python's and numpy's generators too: an init drawn from them repeats
        recorder = InitRecorder()
        with recorder:
            model = build_at(knob, width, target=target, device="cpu")
        layouts[width] = layout(model)
        require_same_structure(layouts, target)  # numbers are compared across widths by name
        if visit is not None:
            visit(width, model)
        composed = {item.direction: item for item in weight_normed(model)}
        magnitudes = {item.magnitude for item in composed.values()}
        for names, param in _tensors(model):
            value = param.detach().float()
            rms = math.sqrt(float((value * value).mean())) if value.numel() else 0.0
            if names[0] in composed:  # the weight the layer computes with is g·v/‖v‖, not v
                rms = composed_rms(composed[names[0]]) or 0.0
            for name in names:
                if name not in magnitudes:  # g is judged through the composed weight
                    numbers.rms.setdefault(name, {})[width] = rms
            if i == 0:
                write = recorder.last_write(param)
                late = recorder.writes_after_base_shapes(param)
                for name in names:
                    if write is not None:
                        numbers.last_write[name] = write
                    if late:
                        numbers.late_writes[name] = late
                    numbers.has_infshape[name] = hasattr(param, "infshape")
        del model, recorder
    return numbers


def _tensors(model: nn.Module) -> list[tuple[list[str], torch.Tensor]]:
    groups: dict[int, tuple[list[str], torch.Tensor]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), ([], param))[0].append(name)
    return list(groups.values())
