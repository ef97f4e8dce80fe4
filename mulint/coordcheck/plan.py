"""What the coordinate check trains: widths around the model's base width, and a model shrunk in
everything that does not grow with width.

µP's hyperparameters are tuned at the base width; far below it the width-scaled learning rates
are several times their tuned values and finite-width effects dominate, so a correct model can
look wrong. The widths therefore bracket the base width (base/2, base, 2×base), moved up where a
width-derived size rounded to a multiple does not grow in proportion there (mulint.construct.proportional).
To keep that cheap, repeated blocks are cut to two (the verdict is per layer type), and the
vocabulary, sequence length and batch are small: none of them grows with width.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re

import torch
import torch.nn as nn

from mulint.construct import build_at
from mulint.construct.knob import WidthKnob
from mulint.construct.proportional import proportional_widths, scaled_widths
from mulint.construct.provenance import quiet
from mulint.construct.repeats import KEEP, MIN_BLOCKS, shortened
from mulint.construct.width_limits import DEPTH_TOKENS
from mulint.coordcheck import FACTORS
from mulint.errors import MulintError

VOCAB = 256  # rows kept of a token table (and classes of a readout) when the knob can limit them
SEQ = 16
BATCH = 8
# Parameters of the shrunk model at the widest width: a few seconds per training step on a CPU.
MAX_ELEMENTS = 80_000_000
# Words of fields that name something per layer, never the depth (mulint.construct.width_limits has
# the depth words).
NOT_DEPTH_TOKENS = {"norm", "eps", "idx", "index", "id", "ids", "scale", "dim", "size", "every", "interval"}
SINGLE_THREAD_ELEMENTS = 8_000_000


def limited(knob: WidthKnob) -> WidthKnob:
    """The knob with vocabulary and sequence length capped, and depth cut to two, when it knows how."""
    with_limits = getattr(knob, "with_limits", None)
    return shallow(with_limits(seq=SEQ, vocab=VOCAB) if with_limits is not None else knob)


def _is_depth_field(name: str, value) -> bool:
    tokens = set(re.split(r"[_\W]+", name.lower()))
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= MIN_BLOCKS
        and bool(tokens & DEPTH_TOKENS)
        and not tokens & NOT_DEPTH_TOKENS
    )


def shallow(knob: WidthKnob) -> WidthKnob:
    """The knob building two blocks where a config field sets the depth (``n_layer``,
    ``num_hidden_layers``): building twelve blocks to train two costs most of the time at large
    widths. A model the cut breaks is built at its own depth, and its blocks shortened after."""
    make, defaults = getattr(knob, "make", None), getattr(knob, "defaults", None) or {}
    caps = {k: KEEP for k, v in defaults.items() if _is_depth_field(k, v) and k not in knob.describe_scaling(knob.base)}
    if make is None or not caps:
        return knob
    limits = {**(getattr(knob, "limits", None) or {}), **caps}
    cut = dataclasses.replace(knob, limits=limits)
    inner_build, inner_describe = knob.build, knob.describe_scaling

    def build(width: int):
        if caps:
            state = torch.get_rng_state()
            try:
                return make({**inner_describe(width), **caps})
            except Exception:
                caps.clear()  # every later width is built the same way
                cut.limits = dict(getattr(knob, "limits", None) or {})
                torch.set_rng_state(state)
        return inner_build(width)

    cut.build = build
    cut.describe_scaling = lambda width: {**inner_describe(width), **caps}
    return cut


@contextlib.contextmanager
def cpu_threads(knob: WidthKnob, widths: list[int], target: str, device: str):
    """One intra-op thread for small models on the CPU: their matmuls are too small to gain from
    more, and on a shared machine the threads' synchronisation costs several times the work."""
    n = size_on_meta(knob, max(widths), target) if device == "cpu" else None
    before = torch.get_num_threads()
    if n is not None and n <= SINGLE_THREAD_ELEMENTS:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def shrunk_model(knob: WidthKnob, width: int, *, target: str, device: str):
    """The model at ``width`` on ``device``, its repeated blocks cut to two inside the block (when
    the knob could not build it with two)."""
    with quiet():
        model = build_at(knob, width, target=target, device=device)
    if device != "meta":
        model.to(device)  # tensors the model made on a device of its own choosing
    with shortened(model) as lists:
        yield model, lists


def elements(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def size_on_meta(knob: WidthKnob, width: int, target: str) -> int | None:
    try:
        with shrunk_model(knob, width, target=target, device="meta") as (model, _):
            return elements(model)
    except MulintError:
        return None


def fits(knob: WidthKnob, width: int, target: str) -> bool:
    n = size_on_meta(knob, width, target)
    return n is not None and n <= MAX_ELEMENTS


def choose_widths(knob: WidthKnob, target: str, requested: list[int] | None) -> tuple[list[int], list[str]]:
    """The widths to train at, and a note when they could not bracket the base width."""
    if requested and len(requested) >= 3:
        return sorted(requested), []
    base = knob.base
    # base/2 may not build (a head count that does not divide it): then base to 4×base.
    for factors in (FACTORS, (1, 2, 4)):
        wanted = scaled_widths(base, factors)
        if len(wanted) == 3 and all(fits(knob, w, target) for w in wanted):
            # a width-derived size rounded to a multiple may not grow at these widths: move them up
            return proportional_widths(
                knob, target, wanted, fits=lambda w: fits(knob, w, target), min_count=3, what="coordinate-check widths"
            )
    # Too large around the base width on this device: halve downwards.
    below = [w for w in scaled_widths(base, [2.0**-k for k in range(1, 10)]) if fits(knob, w, target)][:3]
    if len(below) < 3:
        raise MulintError(
            f"cannot build the model at three widths around its base width {base}",
            target=target,
            step="coord",
            hint="give three widths it accepts with --widths",
        )
    widths = sorted(below)
    return widths, [
        f"widths {', '.join(map(str, widths))} lie below the base width {base} (the model is too "
        f"large to train around it here): finite-width effects may show as collapse"
    ]


def describe_shrinking(knob: WidthKnob, lists, tokens: tuple[int, ...] | None) -> list[str]:
    """What the trained model has less of than the real one: blocks, capped fields, tokens."""
    out = [f"{path or 'blocks'}: {n} blocks -> 2" for path, n in lists.lengths.items()]
    defaults = getattr(knob, "defaults", {}) or {}
    for key, cap in (getattr(knob, "limits", {}) or {}).items():
        if key in defaults:
            out.append(f"{key} {defaults[key]} -> {cap}")
    if tokens:
        out.append(f"batch {' x '.join(map(str, tokens))}")
    return out
