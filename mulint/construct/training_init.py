"""Apply the init the training code applies after building the model, every time mulint builds it.

The calls come from reading the training code (`mulint.reading.training_init`); they run right after
the constructor, inside the same recording, so the init recorder attributes every write to the
init method's own lines and findings point there. When the training code initialises in a way
mulint cannot repeat (a function defined in the training script, arguments that are not literals),
or a model defines an init method nothing calls, the init is judged as constructed and the notes
say which call or method was left out.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
import torch.nn as nn

from mulint.construct.knob import WidthKnob
from mulint.construct.provenance import is_library_file
from mulint.reading.training_init import InitCall, find_training_init, methods_called, uncalled_init_methods


@dataclasses.dataclass
class TrainingInitPlan:
    apply: list[Callable[[nn.Module], None]]
    applied: list[InitCall]
    skipped: list[tuple[InitCall, str]]  # calls not applied, and why
    called: set[str]  # method names the training code calls
    failed: list[tuple[InitCall, str]] = dataclasses.field(default_factory=list)  # applied, but raised


def plan_training_init(target_path: Path | None, target_name: str, module: ModuleType) -> TrainingInitPlan:
    plan = TrainingInitPlan(apply=[], applied=[], skipped=[], called=set())
    if target_path is None or not target_path.is_file() or "." in target_name:
        return plan
    for call in find_training_init(target_path, target_name).calls:
        plan.called.add(call.name)
        step, why = _step(call, target_path, module)
        if step is None:
            plan.skipped.append((call, why))
        else:
            plan.apply.append(step)
            plan.applied.append(call)
    return plan


def _step(call: InitCall, target_path: Path, module: ModuleType):
    if call.kind == "inline":
        return None, (
            "it is written in the training script, which mulint does not run; move it into a method "
            "of the model the script calls, or into a factory (file.py:make_model)"
        )
    if call.after:
        return None, f"it follows `{call.after}`, which mulint does not repeat"
    if not call.readable:
        return None, "its arguments are computed by the training code, not literals mulint can read"
    if call.kind == "method":
        return (lambda m: getattr(m, call.name)(*call.args, **call.kwargs)), ""
    if call.kind == "apply":
        return (lambda m: m.apply(getattr(m, call.name))), ""
    fn = getattr(module, call.name, None)
    own = not call.defined_in or Path(call.defined_in).resolve() == target_path.resolve()
    if fn is None or not callable(fn) or not own:
        return None, f"`{call.name}` is defined in {Path(call.defined_in or call.path).name}, which mulint does not run"
    if call.kind == "apply-function":
        return (lambda m: m.apply(fn)), ""
    return (lambda m: fn(m, *call.args, **call.kwargs)), ""


def with_training_init(knob: WidthKnob, plan: TrainingInitPlan) -> WidthKnob:
    """The knob whose every build (and every capped build through ``make``) runs the planned init."""
    if not plan.apply:
        return knob

    def run(model):
        if plan.failed:
            return model  # it failed before: every width is judged as constructed alike
        saved = {k: v.clone() for k, v in model.state_dict(keep_vars=True).items()}
        for step, call in zip(plan.apply, plan.applied):
            try:
                step(model)
            except Exception as exc:
                # The training code may prepare the model first in ways not repeated here: judge the
                # init as constructed (restored as it was built), and say so.
                plan.failed.append((call, f"applying it raised {type(exc).__name__}: {exc}"))
                with torch.no_grad():
                    for key, value in model.state_dict(keep_vars=True).items():
                        value.copy_(saved[key])
                return model
        return model

    build, make = knob.build, knob.make
    return dataclasses.replace(
        knob, build=lambda width: run(build(width)), make=None if make is None else (lambda changes: run(make(changes)))
    )


def notes(plan: TrainingInitPlan, model_cls: type, built_by: Callable | None = None) -> list[str]:
    """What the report says about the init: applied from the training code, or judged as constructed.
    ``built_by``: the factory that builds the model, whose own calls on it count as calls."""
    out = (
        [
            f"init applied as the training code does after building the model: "
            f"{', '.join(f'`{c.text}` ({c.where})' for c in plan.applied)}"
        ]
        if plan.applied and not plan.failed
        else []
    )
    for call, why in [*plan.skipped, *plan.failed]:
        out.append(
            f"init judged as constructed: the training code calls `{call.text}` ({call.where}) after "
            f"building the model, not applied: {why}"
        )
    uncalled = _uncalled(model_cls, plan.called | _factory_calls(built_by))
    if uncalled:
        names = ", ".join(f"{model_cls.__name__}.{n}()" for n in uncalled)
        builder = "the factory, " if built_by is not None else ""
        out.append(
            f"init judged as constructed: {names} is defined but neither the constructor, {builder}nor "
            f"the training code beside the model calls it; if training calls it, call it in a factory "
            f"(file.py:make_model) so mulint sees the init that trains"
        )
    return out


def _factory_calls(factory: Callable | None) -> set[str]:
    if factory is None:
        return set()
    try:
        return methods_called(inspect.getsource(factory))
    except (TypeError, OSError):
        return set()


def _uncalled(model_cls: type, called: set[str]) -> list[str]:
    source = _user_source(model_cls)
    if source is None:
        return []  # a library's model: its own init is the one it documents
    bases = [(s, base.__name__) for base in model_cls.__mro__[1:] if (s := _user_source(base)) is not None]
    return uncalled_init_methods(source, model_cls.__name__, called, bases)


def _user_source(cls: type) -> str | None:
    """The source of the file defining ``cls``, when it is the user's (not a library's)."""
    try:
        file = inspect.getsourcefile(cls)
        if file is None or "-packages" in file or is_library_file(file):
            return None
        return Path(file).read_text(encoding="utf-8")
    except (TypeError, OSError, UnicodeDecodeError):
        return None


def as_trained(obj, target_path: Path | None, target_name: str, module: ModuleType):
    """`obj` with the arguments the training code constructs it with as its defaults (a partial), and
    the note that says so; None when the training code shows no construction mulint can read."""
    import functools

    from mulint.reading.training_init import find_construction

    if target_path is None or not target_path.is_file() or "." in target_name:
        return None
    found = find_construction(target_path, target_name)
    if found is None:
        return None
    try:
        args = [_evaluate(a, module) for a in found.args]
        kwargs = {k: _evaluate(v, module) for k, v in found.kwargs.items()}
        bound = inspect.signature(obj).bind_partial(*args, **kwargs)
    except Exception:
        return None  # a name the model's module does not hold, or arguments the signature refuses
    params = inspect.signature(obj).parameters
    defaults: dict = {}
    for name, value in bound.arguments.items():
        kind = params[name].kind
        if kind == inspect.Parameter.VAR_POSITIONAL:
            return None
        if kind == inspect.Parameter.VAR_KEYWORD:
            defaults.update(value)
        else:
            defaults[name] = value
    built = functools.partial(obj, **defaults)
    return built, f"built as the training code builds it: `{found.text}` ({found.where})"


class _Unreadable(Exception):
    pass


def _evaluate(spec, module: ModuleType):
    if spec[0] == "value":
        return spec[1]
    _, name, args, kwargs = spec
    fn = dict if name == "dict" else getattr(module, name, None)
    if not isinstance(fn, type):
        raise _Unreadable(name)  # only classes (configs, namespaces) are called: never a function of the script
    return fn(*(_evaluate(a, module) for a in args), **{k: _evaluate(v, module) for k, v in kwargs.items()})
