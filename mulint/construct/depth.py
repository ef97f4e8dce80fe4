"""The depth knob: which argument or config field sets the number of residual blocks, and the width knob
that builds the target at another depth.

It is found among the fields the width knob already builds from (``n_layer``, ``num_hidden_layers``,
``depth``, a constructor's ``n_layers``), so every build at a depth goes through the same machinery as
a build at a width: ``DepthKnob.at(L)`` is a width knob, and meta builds, small numeric builds and the
trace take it unchanged.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from mulint.construct.knob import WidthKnob
from mulint.construct.width_limits import DEPTH_TOKENS
from mulint.errors import MulintError

# The usual names first: a model with both `n_layer` and `n_cross_layers` varies the first.
DEPTH_NAMES = (
    "n_layer",
    "n_layers",
    "num_layers",
    "num_hidden_layers",
    "depth",
    "n_blocks",
    "num_blocks",
    "nlayers",
    "layers",
    "num_decoder_layers",
)
# Words of fields that count something per layer, or name one layer: never the depth.
NOT_DEPTH_TOKENS = {"norm", "eps", "idx", "index", "id", "ids", "scale", "dim", "size", "every", "interval", "base"}
MIN_DEPTH = 2  # a model of one block has no depth to vary


@dataclass
class DepthKnob:
    """How to build the target at any depth (and any width, through ``at``)."""

    name: str  # as shown to the user: "n_layer" or "config.n_layer"
    field: str  # the key among the width knob's fields
    base: int  # the depth the target uses by default
    width: WidthKnob = dataclasses.field(repr=False)  # builds at the base depth
    named_by_user: bool = False  # found through --depth-arg

    def at(self, depth: int) -> WidthKnob:
        """The width knob building ``depth`` blocks; everything else as the width knob builds it."""
        knob, key = self.width, self.field
        make = knob.make
        assert make is not None, "a depth knob is found only on a knob that builds from its fields"
        per_layer = per_layer_fields(knob, key, self.base, depth)

        def describe(width: int) -> dict:
            return {**knob.describe_scaling(width), **per_layer, key: depth}

        def build(width: int):
            return make(describe(width))

        return dataclasses.replace(knob, build=build, describe_scaling=describe, unlimited=None)


def per_layer_fields(knob: WidthKnob, key: str, base: int, depth: int) -> dict:
    """Config lists with one entry per layer (HF's `layer_types`: named for layers or blocks, one entry
    per block), repeated in their own pattern to ``depth`` entries: a config that checks their length
    against the depth builds at any depth."""
    plain = knob.unlimited or knob
    return {
        name: type(value)(value[i % base] for i in range(depth))
        for name, value in plain.defaults.items()
        if name != key
        and isinstance(value, (list, tuple))
        and len(value) == base
        and set(re.split(r"[_\W]+", name.lower())) & (DEPTH_TOKENS | {"layer", "block"})
    }


def find_depth_knob(knob: WidthKnob, depth_arg: str | None = None, *, target: str = "") -> DepthKnob | None:
    """The depth knob among ``knob``'s fields; None when there is none. ``depth_arg`` (``--depth-arg``)
    names it; a name that is no int field of the target is a usage error."""
    plain = knob.unlimited or knob
    fields = plain.defaults if plain.make is not None else {}
    grows = set(plain.describe_scaling(plain.base)) if fields else set()
    prefix = plain.name.rsplit(".", 1)[0] + "." if "." in plain.name else ""
    if depth_arg:
        key = depth_arg.removeprefix(prefix)
        if not _is_count(fields.get(key)):
            known = ", ".join(k for k, v in fields.items() if _is_count(v)) or "none"
            raise MulintError(
                f"--depth-arg {depth_arg}: the target has no integer argument or config field of that name",
                target=target,
                step="build",
                hint=f"integer fields it has: {known}",
            )
        return DepthKnob(prefix + key, key, fields[key], knob, named_by_user=True)
    candidates = [k for k, v in fields.items() if k not in grows and is_depth_field(k, v)]
    if not candidates:
        return None
    key = min(candidates, key=lambda k: DEPTH_NAMES.index(k) if k in DEPTH_NAMES else len(DEPTH_NAMES))
    return DepthKnob(prefix + key, key, fields[key], knob)


def is_depth_field(name: str, value) -> bool:
    """``n_layer = 12``: a field whose words say it counts layers or blocks, and whose value can."""
    tokens = set(re.split(r"[_\W]+", name.lower()))
    return (
        _is_count(value)
        and value >= MIN_DEPTH
        and (name.lower() in DEPTH_NAMES or bool(tokens & DEPTH_TOKENS))
        and not tokens & NOT_DEPTH_TOKENS
    )


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
