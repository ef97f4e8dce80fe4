"""The width knob: which argument (or config field) grows the model, and how to build it at any width.

Fields that grow with the width (``intermediate_size``, ``4 * n_embd``, ``head_dim`` when the head
count is fixed) are scaled alongside it; fields that do not (vocab, positions, layers, heads,
``base_*`` widths of µP multipliers) are kept.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from fractions import Fraction
from typing import Any, TypeGuard

WIDTH_NAMES = (
    "width",
    "d_model",
    "n_embd",
    "hidden_size",
    "dim",
    "embed_dim",
    "hidden_dim",
    "n_embed",
    "emb_dim",
    "model_dim",
    "d_embed",
    "ninp",
)
CONFIG_PARAM_NAMES = ("config", "cfg", "conf", "args", "hparams", "model_config", "params")

_FINITE_TOKENS = {
    "vocab",
    "position",
    "positions",
    "pos",
    "ctx",
    "block",
    "seq",
    "len",
    "length",
    "layer",
    "layers",
    "label",
    "labels",
    "class",
    "classes",
    "token",
    "tokens",
    "eps",
    "range",
    "patch",
    "image",
    "img",
    "channels",
    "expert",
    "experts",
    "window",
    "bucket",
    "buckets",
    "rope",
    "type",
    "max",
    "min",
    "heads",
    "head",
    "group",
    "groups",
    "in",
    "input",
    "inputs",
    "out",
    "output",
    "outputs",
    "depth",
    "stride",
    "kernel",
    "batch",
    "step",
    "steps",
    "seed",
    "iter",
    "iters",
    "frames",
    "samples",
    "rank",
    "theta",
    "id",
    "ids",
    "base",
    "ref",
    "reference",
    "proxy",
    "init",
    "std",
    "kv",
    "pad",
    "padding",
    "bos",
    "eos",
    "sep",
    "mask",
    "time",
    "freq",
    "dropout",
    "prob",
    "ratio",
    "scale",
    "alpha",
    "beta",
    "temperature",
    "projection",  # CLIP/SigLIP's projection_dim: the joint embedding a contrastive readout produces
    "mult",
    "multiplier",
    "factor",
    "expansion",
    "expand",  # lucidrains' ff_mult=4: a ratio to the width
}
_WIDTH_TOKENS = {
    "hidden",
    "intermediate",
    "inner",
    "ffn",
    "ff",
    "mlp",
    "embd",
    "embed",
    "model",
    "dim",
    "width",
    "feedforward",
    "filter",
    "proj",
    "features",
    "hiddens",
    "emb",
    "embedding",
    "channel",
    "units",
    "d",
}
_HEAD_DIM_NAMES = {
    "head_dim",
    "d_head",
    "head_size",
    "d_kv",
    "kv_channels",
    "attention_head_size",
    "dim_head",
    "head_dim_size",
    "headdim",
}
_HEADS_NAMES = {"n_head", "n_heads", "num_heads", "num_attention_heads", "nhead", "heads", "num_head", "n_heads_q"}


def _tokens(name: str) -> set[str]:
    return {t.lower() for t in re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", name) if t}


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def scaled_fields(fields: dict[str, Any], width_key: str, base: int, new: int) -> dict[str, int]:
    """The int fields that change when the width goes from ``base`` to ``new``, with their new values."""
    ratio = Fraction(new, base)
    heads = [v for k, v in fields.items() if k.lower() in _HEADS_NAMES and _is_int(v)]
    changed: dict[str, Any] = {width_key: new}
    if _is_int_list(fields.get(width_key)):  # per-stage widths (ConvNeXt's hidden_sizes): scale every stage
        changed[width_key] = [_scale(v, ratio) for v in fields[width_key]]
    for key, value in fields.items():
        if key == width_key or not _is_int(value) or value <= 0:
            continue
        tokens = _tokens(key)
        if key.lower() in _HEAD_DIM_NAMES:
            grows = any(h * value == base for h in heads)  # head count fixed: head_dim grows
        elif tokens & _FINITE_TOKENS:
            grows = False
        elif tokens & _WIDTH_TOKENS:
            # `mlp=4` beside a width of 256 is a ratio to the width, not a dimension.
            grows = not (value <= 8 and 4 * value <= base)
        else:
            grows = value % base == 0 and 2 <= value // base <= 16
        if grows:
            changed[key] = _scale(value, ratio)
    return changed


def _scale(value: int, ratio: Fraction) -> int:
    scaled = value * ratio
    return int(scaled) if scaled.denominator == 1 else max(1, round(float(scaled)))


def _is_int_list(value: Any) -> TypeGuard[list[int] | tuple[int, ...]]:
    return isinstance(value, (list, tuple)) and bool(value) and all(_is_int(v) and v > 0 for v in value)


def _stage_widths_field(fields: dict[str, Any]) -> str | None:
    """A list of per-stage widths (``hidden_sizes``, ``embed_dims``) when the config has no single width."""
    for key, value in fields.items():
        tokens = _tokens(key)
        if _is_int_list(value) and tokens & _WIDTH_TOKENS and not tokens & _FINITE_TOKENS:
            return key
    return None


def _base_of(value: Any) -> int:
    return value[0] if _is_int_list(value) else value


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
        from mulint.construct.width_limits import capped_fields, limited

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


def find_knob(obj: Callable, target: str, width_arg: str | None = None, base_override: int | None = None) -> WidthKnob:
    """The knob by which `obj` (a model class or factory) is built at any width; a MulintError that
    names the cause (and, as ``exc.kind``, whether the target needs arguments or has no knob) if none."""
    knob = _search_knob(obj, target, width_arg, base_override)
    knob.named_by_user = bool(width_arg)
    return knob


def _search_knob(obj: Callable, target: str, width_arg: str | None, base_override: int | None) -> WidthKnob:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = None
    params = dict(sig.parameters) if sig else {}
    search = KnobSearch(obj=obj, target=target, width_arg=width_arg, params=params)
    wanted = (width_arg,) if width_arg and "." not in width_arg else WIDTH_NAMES
    for name in wanted:
        if name in params:
            return _argument_knob(obj, params, name, base_override, search)
    field = width_arg.split(".", 1)[1] if width_arg and "." in width_arg else width_arg
    config_knob = _config_knob(obj, params, field, base_override, search)
    if config_knob is not None:
        return config_knob
    if sig is not None and not _required(params):
        knob = _rebuild_knob(obj, field, base_override, search)
        if knob is not None:
            return knob
    from mulint.construct.width_hints import no_knob_error

    raise no_knob_error(search)


def _required(params: dict[str, inspect.Parameter], but: str | None = None) -> list[str]:
    """The arguments a call must pass (no default), other than `but`."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [
        p.name for p in params.values() if p.default is inspect.Parameter.empty and p.kind in kinds and p.name != but
    ]


def _argument_knob(obj, params, name, base_override, search: KnobSearch) -> WidthKnob:
    param = params[name]
    base = base_override if base_override is not None else param.default
    if not _is_int(base) or _required(params, but=name):
        from mulint.construct.width_hints import no_default_width_error

        raise no_default_width_error(search, name)
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    defaults[name] = base

    def describe(width: int) -> dict[str, int]:
        return scaled_fields(defaults, name, base, width)

    def make(changes: dict[str, Any]):
        return obj(**changes)

    def build(width: int):
        return make(describe(width))

    return WidthKnob(name=name, base=base, build=build, describe_scaling=describe, defaults=defaults, make=make)


def _config_fields(config: Any) -> dict[str, Any] | None:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    if hasattr(config, "to_dict") and hasattr(config, "attribute_map"):  # HF PretrainedConfig
        fields = dict(config.to_dict())
        for alias, real in getattr(config, "attribute_map", {}).items():
            if real in fields:
                fields.pop(alias, None)
        return fields
    if hasattr(config, "__dict__") and not callable(config):
        return {k: v for k, v in vars(config).items() if not k.startswith("_")}
    return None


def _width_field(fields: dict[str, Any], config: Any, field: str | None) -> str | None:
    aliases = getattr(config, "attribute_map", {}) or {}
    for name in (field,) if field else WIDTH_NAMES:
        real = aliases.get(name, name)
        if real in fields and (_is_int(fields[real]) or _is_int_list(fields[real])):
            return real
    return None if field else _stage_widths_field(fields)


def _with_fields(config: Any, changes: dict[str, int]) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        init = {f.name for f in dataclasses.fields(config) if f.init}
        new = dataclasses.replace(config, **{k: v for k, v in changes.items() if k in init})
        for k, v in changes.items():
            if k not in init:
                setattr(new, k, v)
        return new
    new = copy.deepcopy(config)
    for k, v in changes.items():
        setattr(new, k, v)
    return new


def _config_classes(param: inspect.Parameter, obj) -> list[type]:
    """Config classes that could fill this argument: its annotation, HF's config_class, the file's own."""
    annotation = param.annotation
    module = inspect.getmodule(obj)
    if isinstance(annotation, str):
        annotation = getattr(module, annotation, None)
    config_class = getattr(obj, "config_class", None)  # HF PreTrainedModel
    # nanoGPT's `GPT(config)` names no type: try the file's own config classes.
    local = (
        [
            c
            for name, c in vars(module).items()
            if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == getattr(module, "__name__", None)
        ]
        if param.name in CONFIG_PARAM_NAMES
        else []
    )
    return [
        cls
        for cls in (annotation, config_class, *local)
        if isinstance(cls, type) and (dataclasses.is_dataclass(cls) or hasattr(cls, "attribute_map"))
    ]


def _default_config(param: inspect.Parameter, obj, search: KnobSearch) -> Any:
    if (
        param.default is not inspect.Parameter.empty
        and _config_fields(param.default) is not None
        and not isinstance(param.default, (int, float, str, bool, type(None)))
    ):
        search.configs.append(ConfigTry(param.name, type(param.default), fields=_config_fields(param.default)))
        return param.default
    for cls in _config_classes(param, obj):
        try:
            config = cls()
        except Exception as exc:
            search.configs.append(ConfigTry(param.name, cls, error=exc))
            continue
        search.configs.append(ConfigTry(param.name, cls, fields=_config_fields(config)))
        return config
    return None


def _config_knob(obj, params, field, base_override, search: KnobSearch) -> WidthKnob | None:
    candidates = [p for p in params.values() if p.name in CONFIG_PARAM_NAMES] + [
        p for p in params.values() if p.name not in CONFIG_PARAM_NAMES
    ]
    for param in candidates:
        config = _default_config(param, obj, search)
        if config is None:
            continue
        fields = _config_fields(config)
        key = _width_field(fields, config, field) if fields is not None else None
        if fields is None or key is None:
            continue
        return _knob_over_config(
            config, fields, key, base_override, lambda cfg, p=param: obj(**{p.name: cfg}), f"{param.name}.{key}"
        )
    return None


def _knob_over_config(config, fields, key, base_override, make, label) -> WidthKnob:
    base = base_override if base_override is not None else _base_of(fields[key])
    fields = dict(fields)
    if base_override is not None:
        fields = {**fields, **scaled_fields(fields, key, _base_of(fields[key]), base)}

    def describe(width: int) -> dict[str, int]:
        return scaled_fields(fields, key, base, width)

    def make_from(changes: dict[str, Any]):
        return make(_with_fields(config, changes))

    def build(width: int):
        return make_from(describe(width))

    return WidthKnob(name=label, base=base, build=build, describe_scaling=describe, defaults=fields, make=make_from)


def _rebuild_knob(obj, field, base_override, search: KnobSearch) -> WidthKnob | None:
    """A factory without arguments that returns a model carrying its config (HF style)."""
    import torch

    if inspect.isclass(obj):
        return None
    try:
        with torch.device("meta"):
            model = obj()
    except Exception as exc:
        search.call_error = exc
        return None
    config = getattr(model, "config", None)
    fields = _config_fields(config) if config is not None else None
    if not fields:
        return None
    key = _width_field(fields, config, field)
    if key is None:
        search.built_fields = fields
        return None
    cls = type(model)
    return _knob_over_config(config, fields, key, base_override, cls, f"{obj.__name__}().config.{key}")
