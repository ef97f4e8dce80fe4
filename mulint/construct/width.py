"""The width knob: which argument (or config field) grows the model, and how to build it at any width.

Fields that grow with the width (``intermediate_size``, ``4 * n_embd``, ``head_dim`` when the head
count is fixed) are scaled alongside it; fields that do not (vocab, positions, layers, heads,
``base_*`` widths of µP multipliers) are kept.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from mulint.construct.knob import ConfigTry, KnobSearch, WidthKnob, required_args
from mulint.reading.width_names import (
    CONFIG_PARAM_NAMES,
    FINITE_TOKENS,
    HEAD_DIM_NAMES,
    HEADS_NAMES,
    WIDTH_NAMES,
    WIDTH_TOKENS,
    is_int,
    is_int_list,
    name_tokens,
)


def scaled_fields(fields: dict[str, Any], width_key: str, base: int, new: int) -> dict[str, int]:
    """The int fields that change when the width goes from ``base`` to ``new``, with their new values."""
    ratio = Fraction(new, base)
    heads = [v for k, v in fields.items() if k.lower() in HEADS_NAMES and is_int(v)]
    changed: dict[str, Any] = {width_key: new}
    if is_int_list(fields.get(width_key)):  # per-stage widths (ConvNeXt's hidden_sizes): scale every stage
        changed[width_key] = [_scale(v, ratio) for v in fields[width_key]]
    for key, value in fields.items():
        if key == width_key or not is_int(value) or value <= 0:
            continue
        tokens = name_tokens(key)
        if key.lower() in HEAD_DIM_NAMES:
            grows = any(h * value == base for h in heads)  # head count fixed: head_dim grows
        elif tokens & FINITE_TOKENS:
            grows = False
        elif tokens & WIDTH_TOKENS:
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


def _stage_widths_field(fields: dict[str, Any]) -> str | None:
    """A list of per-stage widths (``hidden_sizes``, ``embed_dims``) when the config has no single width."""
    for key, value in fields.items():
        tokens = name_tokens(key)
        if is_int_list(value) and tokens & WIDTH_TOKENS and not tokens & FINITE_TOKENS:
            return key
    return None


def _base_of(value: Any) -> int:
    return value[0] if is_int_list(value) else value


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
    if sig is not None and not required_args(params):
        knob = _rebuild_knob(obj, field, base_override, search)
        if knob is not None:
            return knob
    from mulint.construct.width_hints import no_knob_error

    raise no_knob_error(search)


def _argument_knob(obj, params, name, base_override, search: KnobSearch) -> WidthKnob:
    param = params[name]
    base = base_override if base_override is not None else param.default
    if not is_int(base) or required_args(params, but=name):
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
        if real in fields and (is_int(fields[real]) or is_int_list(fields[real])):
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
