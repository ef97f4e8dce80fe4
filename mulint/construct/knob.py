"""The records of the width knob, apart from the search that finds one (mulint.construct.width) and the
hints that explain why none was found (mulint.construct.width_hints): how to build the target at any
width, what the search tried, and the capped build the small CPU models use.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from mulint.construct.width_limits import capped_fields


@dataclass
class WidthKnob:
    """How to build the target at a given width."""

    name: str  # e.g. "width" or "config.n_embd"
    base: int  # the width the target uses by default
    build: Callable[[int], Any]  # width -> nn.Module (caller chooses the device)
    describe_scaling: Callable[[int], dict[str, int]]
    defaults: dict[str, Any] = dataclass_field(default_factory=dict, repr=False)  # the fields before scaling
    make: Callable[[dict[str, Any]], Any] | None = dataclass_field(default=None, repr=False)  # changes -> model
    limits: dict[str, Any] = dataclass_field(default_factory=dict)  # fields capped for small builds
    unlimited: WidthKnob | None = dataclass_field(default=None, repr=False)
    named_by_user: bool = False  # found through --width-arg: a hint must not suggest it again
    # size -> short size for small CPU builds: large constants no field names (mulint.construct.shrink)
    shrink: dict[int, int] = dataclass_field(default_factory=dict)

    def with_limits(self, *, seq: int | None = None, vocab: int | None = None) -> WidthKnob:
        """The same knob, building with sequence-length-like fields capped at `seq` and vocabulary-like
        fields (vocab_size, n_vocab, num_embeddings, ...) capped at `vocab`; describe_scaling() includes
        the capped fields, so a report can say what was shrunk.

        Special token ids are kept below a capped vocab. A build the caps break (a rope table that must
        match the positions) falls back to the uncapped build, and the knob drops its caps from then on.
        """
        plain = self.unlimited or self
        if plain.make is None:
            return self
        grows = set(plain.describe_scaling(plain.base))
        caps = {**self.limits, **capped_fields(plain.defaults, grows, seq=seq, vocab=vocab)}
        return limited(plain, caps) if caps else self


@dataclass
class ConfigTry:
    """A config class tried for a constructor argument: its default instance's fields, or what it raised."""

    param: str
    cls: type
    fields: dict[str, Any] | None = None
    error: BaseException | None = None


@dataclass
class KnobSearch:
    """What the search for a width knob saw, for explaining why it found none."""

    obj: Callable
    target: str
    width_arg: str | None
    params: dict[str, inspect.Parameter]
    configs: list[ConfigTry] = dataclass_field(default_factory=list)
    call_error: BaseException | None = None  # calling a factory without arguments raised
    built_fields: dict[str, Any] | None = None  # the config the factory's model carries, without a width


def required_args(params: dict[str, inspect.Parameter], but: str | None = None) -> list[str]:
    """The arguments a call must pass (no default), other than `but`."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [
        p.name for p in params.values() if p.default is inspect.Parameter.empty and p.kind in kinds and p.name != but
    ]


def limited(plain: WidthKnob, caps: dict[str, Any]) -> WidthKnob:
    """The knob building with ``caps`` (field -> capped value) over its own scaled fields; a build the
    caps break falls back to the plain build, and drops the caps for every later width."""
    import torch

    make = plain.make
    assert make is not None, "only a knob that builds from its fields is limited"
    knob = dataclasses.replace(plain, limits=dict(caps), unlimited=plain)

    def describe(width: int) -> dict[str, Any]:
        return {**plain.describe_scaling(width), **knob.limits}

    def build(width: int):
        if knob.limits:
            state = torch.get_rng_state()
            try:
                return make({**plain.describe_scaling(width), **knob.limits})
            except Exception:
                knob.limits.clear()  # what the caps broke is built as declared, at every later width too
                torch.set_rng_state(state)
        return plain.build(width)

    knob.build, knob.describe_scaling = build, describe
    return knob
