"""Fix edits: what a rule's fix changes, where, and what the fixer cannot read from the source.

A rule computes an edit from the facts (the base width, the width knob, the head_dim at base width,
the exponents it judged) and the fixer of its kind (`mulint.fix`) turns it into code. One frozen
dataclass per kind, so a fixer reads named fields, not dict keys. Edits travel inside findings from
a worker to mulint and into the result cache as JSON: `to_dict()` writes the fields with the edit's
`kind` first, and `edit_from_dict` reads that back, checking every field, since both a worker's
message and a cache file are read as untrusted data.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar


class EditError(ValueError):
    """A dict that is not an edit mulint writes."""


@dataclass(frozen=True)
class Record:
    """Plain fields to and from JSON-ready dicts: tuples as lists, nested records as dicts."""

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise EditError(f"{cls.__name__}: {type(data).__name__}, not a record")
        names = {f.name for f in dataclasses.fields(cls)}
        if set(data) != names:
            odd = sorted(set(data) ^ names)[0]
            raise EditError(f"{cls.__name__}: {'no field' if odd in data else 'lacks'} {odd!r}")
        hints = typing.get_type_hints(cls)
        return cls(**{name: _read(hints[name], data[name], f"{cls.__name__}.{name}") for name in names})


@dataclass(frozen=True)
class Edit(Record):
    """Where: the file as analysed and the line the finding points at."""

    kind: ClassVar[str]  # the fixer's key in JSON, e.g. "attention-scale"
    path: str
    line: int

    def to_dict(self) -> dict:
        return {"kind": self.kind, **super().to_dict()}


@dataclass(frozen=True)
class ModelEdit(Edit):
    """An edit of a model's code: the width expression the fixer writes comes from these."""

    base_width: int  # the model's default width: the fixed model equals the old one there
    width_knob: str  # e.g. "config.n_embd"
    target: str  # e.g. "examples/nanogpt_sp.py:GPT"


@dataclass(frozen=True)
class AttentionScale(ModelEdit):
    """MU201: 1/sqrt(head_dim) -> sqrt(base_head_dim) / head_dim."""

    kind: ClassVar[str] = "attention-scale"
    form: str  # the AttentionSite's form: "sdpa-default", "sdpa" or "explicit"
    base_head_dim: int


@dataclass(frozen=True)
class ReadoutMultiplier(ModelEdit):
    """MU102: the logits times base_width / width, at every output use of the readout."""

    kind: ClassVar[str] = "readout-multiplier"
    module: str  # the readout's module ("lm_head"); "" for a functional tied head
    lines: tuple[int, ...]  # the lines of its output uses
    params: tuple[str, ...]  # its names as layer patterns, aliases included


@dataclass(frozen=True)
class InitStd(ModelEdit):
    """MU101: the init std times (base_width / width) ** power."""

    kind: ClassVar[str] = "init-std"
    power: float
    exclude: tuple[str, ...]  # parameters the same line initialises that are not hidden


@dataclass(frozen=True)
class BranchMultiplier(ModelEdit):
    """MU501: the residual branch's output times (BASE_DEPTH / depth) ** alpha, the base depth a module
    constant (the factor is 1 there, so the model at its base depth is unchanged)."""

    kind: ClassVar[str] = "branch-multiplier"
    depth_knob: str  # e.g. "config.n_layer"
    base_depth: int
    alpha: float


@dataclass(frozen=True)
class UseTarget(Record):
    """One use of a parameter in the optimizer fix: the update exponent it should reach. Fields in
    the order JSON has always shown them (alphabetical)."""

    k: int  # 2 for SGD (the gradient carries the multiplier), 1 otherwise
    multiplier: float  # the multiplier's exponent on the use's path
    role: str
    target: float  # the effective update exponent to reach


@dataclass(frozen=True)
class ParamLr(Record):
    """A parameter the optimizer fix regroups: its names (layer patterns), lr exponent and uses."""

    names: tuple[str, ...]
    lr_exponent: float
    uses: tuple[UseTarget, ...]


@dataclass(frozen=True)
class OptimizerLr(ModelEdit):
    """MU301/MU302: per-role learning rates in the optimizer's param groups."""

    kind: ClassVar[str] = "optimizer-lr"
    family: str  # "adam" or "sgd"
    cls: str  # the optimizer class, e.g. "AdamW"
    role: str  # the role the finding is about; one fix rewrites the optimizer for all
    params: tuple[ParamLr, ...]


@dataclass(frozen=True)
class ScheduleLr(Edit):
    """MU303: a schedule's `group['lr'] = lr` scales each group's own initial lr."""

    kind: ClassVar[str] = "schedule-lr"


@dataclass(frozen=True)
class SharedReadoutBias(ModelEdit):
    """MU403: `bias=False` on the MuSharedReadout construction."""

    kind: ClassVar[str] = "shared-readout-bias"


# kind -> edit type, the concrete kinds found rather than listed
KINDS: dict[str, type[Edit]] = {}


def _collect(cls: type[Edit]) -> None:
    for sub in cls.__subclasses__():
        if "kind" in vars(sub):
            KINDS[sub.kind] = sub
        _collect(sub)


_collect(Edit)


def edit_from_dict(data: Any) -> Edit:
    """The edit a `to_dict()` wrote; EditError for anything else."""
    kind = data.get("kind") if isinstance(data, dict) else None
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EditError(f"unknown edit kind {kind!r}")
    return cls.from_dict({k: v for k, v in data.items() if k != "kind"})


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _read(hint: Any, raw: Any, where: str) -> Any:
    """``raw`` as a value of the declared type; the few types edits use."""
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        if not isinstance(raw, (list, tuple)):
            raise EditError(f"{where}: {type(raw).__name__}, not a list")
        return tuple(_read(item, v, where) for v in raw)
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_dict(raw)
    if hint is float:
        ok = isinstance(raw, (int, float)) and not isinstance(raw, bool)
    elif hint is int:
        ok = isinstance(raw, int) and not isinstance(raw, bool)
    elif hint is str:
        ok = type(raw) is str
    else:  # a field type this reader does not know: a mistake in this module
        raise TypeError(f"{where}: edits hold no {hint}")
    if not ok:
        raise EditError(f"{where}: {type(raw).__name__} where {hint.__name__} belongs")
    return raw
