"""Why no width knob was found, and the factory that gives one.

The message names the real cause: the default config raised, the width defaults to None, the
arguments hide behind ``**kwargs``, the constructor needs arguments (a component rather than a model),
or ``--width-arg`` names nothing. The hint shows a factory filled in with the model's own names, to put
in its file and check as ``file.py:make``; it never suggests the option the user just passed.

``exc.kind`` tells a model that cannot be analysed as it stands (``NO_WIDTH_KNOB``,
``NEEDS_ARGUMENTS``) from a crash (no ``kind``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
from typing import Any

from mulint.construct.knob import KnobSearch, required_args
from mulint.errors import MulintError
from mulint.reading.width_names import CONFIG_PARAM_NAMES, FINITE_TOKENS, WIDTH_NAMES, WIDTH_TOKENS, is_int, name_tokens

NO_WIDTH_KNOB = "no-width-knob"
NEEDS_ARGUMENTS = "needs-arguments"
# --width-arg names nothing in the model: the user's setting is wrong, not the model (an error, never
# a "not analysed" note that a run without --require-models passes).
UNKNOWN_WIDTH_ARG = "unknown-width-arg"
DEFAULT_WIDTH = 256


def _error(search: KnobSearch, message: str, kind: str | None, hint: str) -> MulintError:
    exc = MulintError(message, target=search.target, step="width", hint=hint)
    if kind is not None:
        exc.kind = kind
    return exc


def no_knob_error(search: KnobSearch) -> MulintError:
    """The error for a target without a width knob, naming its first real cause."""
    message, kind, hint = next(found for explain in _CAUSES if (found := explain(search)) is not None)
    unknown = _unknown_width_arg(search)
    if unknown is not None:  # the option names nothing: say so first, then how to get a knob anyway
        message, guess = unknown
        kind = UNKNOWN_WIDTH_ARG
        hint = (f"did you mean --width-arg {guess}? Or " if guess else "") + hint
    return _error(search, message, kind, hint)


def no_default_width_error(search: KnobSearch, name: str) -> MulintError:
    """The width argument was found, but a call without arguments cannot build the model."""
    if required_args(search.params, but=name):
        return _error(search, *_required_arguments(search))
    default = search.params[name].default
    if isinstance(default, float) and default > 0:  # ResNet(wm=1.0): a multiplier of some base width
        base = _width_at(search, name, default)
        ratio = "width" if default == 1 else f"width * {default!r}"
        return _error(
            search,
            f"width argument '{name}' has the default {default!r}: a width multiplier, not a width",
            NEEDS_ARGUMENTS,
            _factory_hint(
                search,
                _call(search, {name: f"{ratio} / {base or 'BASE'}"}),
                base=base or DEFAULT_WIDTH,
                comment=f"the model's width at {name}={default!r}"
                if base
                else f"BASE: the model's width at {name}={default!r}",
            ),
        )
    what = "no default" if default is inspect.Parameter.empty else f"the default {default!r}, not an int"
    return _error(
        search,
        f"width argument '{name}' has {what}",
        NEEDS_ARGUMENTS,
        "give the widths to analyse with --widths 64,128,256, or "
        + _factory_hint(search, _call(search, {name: "width"})),
    )


def _width_at(search: KnobSearch, name: str, default: float) -> int | None:
    """The smallest parameter dimension that doubles with the multiplier: the width the model has at its
    default multiplier (both builds on the meta device). None when it cannot be built or nothing grows."""
    import torch

    try:
        with torch.device("meta"):
            sizes = [[tuple(p.shape) for p in search.obj(**{name: m}).parameters()] for m in (default, 2 * default)]
    except (Exception, SystemExit):  # noqa: BLE001 - a hint only: the placeholder stands in
        return None
    grown = [a for one, two in zip(*sizes) if len(one) == len(two) for a, b in zip(one, two) if b == 2 * a > 0]
    return min(grown) if grown and len(sizes[0]) == len(sizes[1]) else None


# --- the causes, most specific first; each returns (message, kind, hint) or None ---------------------


def _unknown_width_arg(search: KnobSearch) -> tuple[str, str | None] | None:
    """(message, the closest int name in the user's form) when --width-arg names nothing at all."""
    if not search.width_arg:
        return None
    prefix, _, name = search.width_arg.rpartition(".")
    known = {**_argument_defaults(search), **_all_config_fields(search), **(search.built_fields or {})}
    if name in known:
        return None  # it exists: the cause is its value (None, not an int)
    ints = sorted(k for k, v in known.items() if is_int(v))
    close = difflib.get_close_matches(name, ints, n=1, cutoff=0.6)
    message = f"--width-arg {search.width_arg} names no argument or config field of {_owner_names(search)}"
    if ints:
        message += f"; its int ones are: {', '.join(ints)}"
    guess = close[0] if close else _width_like(ints)
    return message, (f"{prefix}.{guess}" if prefix and guess in _all_config_fields(search) else guess)


def _factory_raised(search: KnobSearch):
    if search.call_error is None:
        return None
    exc = search.call_error
    return (
        f"calling {_name(search.obj)}() raised {type(exc).__name__}: {exc}",
        None,
        "fix the error it raised, or " + _factory_hint(search, None),
    )


def _config_raised(search: KnobSearch):
    failed = next((t for t in search.configs if t.error is not None), None)
    if failed is None or any(t.fields is not None and _width_key(t.fields, search) for t in search.configs):
        return None
    exc = failed.error
    required = [f for f in _declared_fields(failed.cls) if f[1] is inspect.Parameter.empty]
    fill = {name: "..." for name, _ in required}
    key = _width_key({n: d for n, d in _declared_fields(failed.cls)}, search) or _guess_width(failed.cls)
    fill[key] = "width"
    config = f"{failed.cls.__name__}({_kwargs(fill)})"
    return (
        f"building the default config {failed.cls.__name__}() raised {type(exc).__name__}: {exc}",
        NEEDS_ARGUMENTS,
        _factory_hint(search, _call(search, {failed.param: config})),
    )


def _width_is_none(search: KnobSearch):
    for tried in search.configs:
        if tried.fields is None:
            continue
        key = _width_key(tried.fields, search, any_value=True)
        if key is None or is_int(tried.fields[key]):
            continue
        unset = [k for k, v in tried.fields.items() if v is None and k != key]
        fill = {key: "width", **{k: "..." for k in unset}}
        config = f"{tried.cls.__name__}({_kwargs(fill)})"
        also = f" (and {', '.join(unset)})" if unset else ""
        return (
            f"the default {tried.cls.__name__}() leaves {key} = {tried.fields[key]!r}{also}: "
            "the model has no width of its own",
            NEEDS_ARGUMENTS,
            _factory_hint(search, _call(search, {tried.param: config})),
        )
    return None


def _hidden_in_kwargs(search: KnobSearch):
    var = [p for p in search.params.values() if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    if not var or required_args(search.params):
        return None
    keys = _keys_read_from(search.obj, [p.name for p in var if p.kind == p.VAR_KEYWORD])
    stars = ", ".join(("**" if p.kind == p.VAR_KEYWORD else "*") + p.name for p in var)
    message = f"{_name(search.obj)}({stars}) hides its arguments: the width cannot be read from the signature"
    if keys:
        message += f" (it reads {', '.join(keys)})"
    key = _width_like(keys) or "n_embd"
    return message, NO_WIDTH_KNOB, _factory_hint(search, _call(search, {key: "width"}))


def _required_arguments(search: KnobSearch):
    required = required_args(search.params)
    if not required:
        return None
    fill = {name: _value_for(search, name) for name in required}
    message = f"{_name(search.obj)} cannot be built without arguments ({', '.join(required)})"
    if inspect.isclass(search.obj) and not any(v.endswith(")") for v in fill.values()):
        message += ": it looks like a component of a model rather than a model"
    return message, NEEDS_ARGUMENTS, _factory_hint(search, _call(search, fill))


def _nothing_named_width(search: KnobSearch):
    known = {**_argument_defaults(search), **_all_config_fields(search), **(search.built_fields or {})}
    ints = sorted(k for k, v in known.items() if is_int(v))
    names = ", ".join(WIDTH_NAMES)
    if not inspect.isclass(search.obj) and not search.params:
        message = (
            f"{_name(search.obj)}() takes no width argument, and its model carries no config with a field named {names}"
        )
    else:
        message = f"no argument or config field named {names}"
    if ints:
        message += f"; its int ones are: {', '.join(ints)}"
    guess = _width_like(ints)
    hint = ""
    if ints and not search.width_arg:
        hint = (
            f"if {guess} is the width, pass --width-arg {guess}; otherwise "
            if guess
            else "if one of those sets the width, name it with --width-arg NAME; otherwise "
        )
    call = _call(search, {guess: "width"}) if guess else None
    return message, NO_WIDTH_KNOB, hint + _factory_hint(search, call)


_CAUSES = (
    _factory_raised,
    _config_raised,
    _width_is_none,
    _hidden_in_kwargs,
    _required_arguments,
    _nothing_named_width,
)


# --- the factory -------------------------------------------------------------------------------------


def _factory_hint(search: KnobSearch, call: str | None, base: int | None = None, comment: str = "") -> str:
    module = inspect.getmodule(search.obj)
    taken = set(vars(module)) if module is not None else set()
    name = next(n for n in ("make", "make_model", "build_model", "make_for_width") if n not in taken)
    where = search.target.rsplit(":", 1)[0] if ":" in search.target else search.target
    body = call or "...  # the model, built with its width set to `width`"
    filler = f"  # {comment}" if comment else ("  # fill in each ..." if call and "..." in call else "")
    return (
        f"put a factory in {where} and check {where}:{name}:\n"
        f"      def {name}(width={base or _base_width(search)}):\n"
        f"          return {body}{filler}"
    )


def _call(search: KnobSearch, fill: dict[str, str]) -> str:
    """`Model(Config(...), name=value)`: a config passed positionally when it is the first parameter."""
    params = list(search.params.values())
    parts: list[str] = []
    for name, value in fill.items():
        first = params and params[0].name == name and params[0].kind != params[0].KEYWORD_ONLY and not parts
        parts.append(value if first and value.endswith(")") else f"{name}={value}")
    return f"{_name(search.obj)}({', '.join(parts)})"


def _kwargs(fill: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in fill.items())


def _value_for(search: KnobSearch, param: str) -> str:
    """What to pass for a required argument: the width, a config with its width set, or ..."""
    if _looks_like_width(param):
        return "width"
    config = _config_class_for(search, param)
    if config is not None:
        key = _width_key({n: d for n, d in _declared_fields(config)}, search) or _guess_width(config)
        required = [n for n, d in _declared_fields(config) if d is inspect.Parameter.empty and n != key]
        return f"{config.__name__}({_kwargs({key: 'width', **{n: '...' for n in required}})})"
    return "..."


def _config_class_for(search: KnobSearch, param: str) -> type | None:
    tried = next((t.cls for t in search.configs if t.param == param), None)
    if tried is not None:
        return tried
    annotation = search.params[param].annotation
    module = inspect.getmodule(search.obj)
    if isinstance(annotation, str) and module is not None:
        annotation = getattr(module, annotation, None)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return annotation
    if module is None or not (param in CONFIG_PARAM_NAMES or len(search.params) == 1):
        return None
    local = [
        c
        for c in vars(module).values()
        if isinstance(c, type)
        and dataclasses.is_dataclass(c)
        and c.__module__ == module.__name__
        and any(_looks_like_width(n) for n, _ in _declared_fields(c))
    ]
    read = set(re.findall(rf"\b{re.escape(param)}\.(\w+)", _constructor_source(search.obj)))

    def fit(cls: type) -> tuple[int, bool]:  # the fields the constructor reads, then a matching name
        names = {n for n, _ in _declared_fields(cls)}
        return len(read & names), param.lower() in cls.__name__.lower()

    return max(local, key=fit, default=None)


def _base_width(search: KnobSearch) -> int:
    """The width the target declares somewhere (an argument, a config field), else DEFAULT_WIDTH."""
    known = {**_argument_defaults(search), **_all_config_fields(search)}
    for param in search.params:
        config = None if _looks_like_width(param) else _config_class_for(search, param)
        if config is not None:
            known.update({k: v for k, v in _declared_fields(config) if k not in known})
    key = _width_key(known, search)
    return known[key] if key is not None else DEFAULT_WIDTH


# --- reading names -----------------------------------------------------------------------------------


def _name(obj) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


def _owner_names(search: KnobSearch) -> str:
    configs = sorted({t.cls.__name__ for t in search.configs})
    return _name(search.obj) + (f" ({', '.join(configs)})" if configs else "")


def _argument_defaults(search: KnobSearch) -> dict[str, Any]:
    return {
        k: p.default
        for k, p in search.params.items()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.default is not inspect.Parameter.empty
    }


def _all_config_fields(search: KnobSearch) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for tried in search.configs:
        declared = tried.fields if tried.fields is not None else dict(_declared_fields(tried.cls))
        fields.update({k: v for k, v in declared.items() if k not in fields})
    return fields


def _declared_fields(cls: type) -> list[tuple[str, Any]]:
    """(name, default) of a config class's fields, `inspect.Parameter.empty` when required."""
    if dataclasses.is_dataclass(cls):
        out = []
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out.append((f.name, f.default))
            elif f.default_factory is not dataclasses.MISSING:
                out.append((f.name, None))
            else:
                out.append((f.name, inspect.Parameter.empty))
        return out
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return []
    return [(p.name, p.default) for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def _width_key(fields: dict[str, Any], search: KnobSearch, any_value: bool = False) -> str | None:
    """The field named by --width-arg or a usual width name; `any_value` accepts one set to None."""
    wanted = [search.width_arg.split(".", 1)[-1]] if search.width_arg else list(WIDTH_NAMES)
    for name in wanted:
        if name in fields and (any_value or is_int(fields[name])):
            return name
    return None


def _looks_like_width(name: str) -> bool:
    tokens = name_tokens(name)
    return name in WIDTH_NAMES or bool(tokens & WIDTH_TOKENS and not tokens & FINITE_TOKENS)


def _width_like(names: list[str]) -> str | None:
    return next((n for n in names if n in WIDTH_NAMES), None) or next((n for n in names if _looks_like_width(n)), None)


def _guess_width(cls: type) -> str:
    return _width_like([n for n, _ in _declared_fields(cls)]) or "n_embd"


def _constructor_source(obj) -> str:
    try:
        return inspect.getsource(obj.__init__ if inspect.isclass(obj) else obj)
    except (OSError, TypeError):
        return ""


def _keys_read_from(obj, kwarg_names: list[str]) -> list[str]:
    """String keys the code reads from its **kwargs: `kwargs["dim"]`, `kwargs.get("dim", 64)`, ..."""
    source = _constructor_source(obj)
    keys: list[str] = []
    for kw in kwarg_names:
        pattern = rf"\b{re.escape(kw)}(?:\.(?:get|pop|setdefault)\(\s*|\[\s*)[\"'](\w+)[\"']"
        keys += [k for k in re.findall(pattern, source) if k not in keys]
    return keys
