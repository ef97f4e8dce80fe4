"""The user's optimizer: find its factory, build it for small real models, and read per-parameter
learning rate, weight decay and eps from its param_groups. Judged by what it produces (mup's
MuAdam is an Adam with per-group learning rates), not by its name."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from mulint import steps
from mulint.analysis.lr_reads import LrPolicy, group_lrs, schedule_notes, split_made
from mulint.construct.init_record import user_frame_from
from mulint.errors import MulintError
from mulint.exponents import fit_exponent
from mulint.facts import OptimizerFacts, ParamFacts, SourceLoc
from mulint.optimizers import OPTIMIZERS
from mulint.paths import display_path, layer_pattern
from mulint.reading.functions import Function, resolve_function


def family_of(optimizer: torch.optim.Optimizer) -> str:
    """'adam' (per-coordinate normalised update), 'sgd', or 'unknown' (mulint/profile_data/optimizers.toml)."""
    return OPTIMIZERS.family_of_classes([cls.__name__ for cls in type(optimizer).__mro__])


@dataclass
class OptimizerFactory:
    label: str  # how the report names it, e.g. "examples/mlp_sp.py:make_optimizer"
    make: Callable[[nn.Module], torch.optim.Optimizer]
    module: object = None  # the module defining it, when not the target's (--optimizer other.py:NAME)


@dataclass
class OptimizerNumbers:
    label: str
    cls: str = ""  # "AdamW", or "AdamW + Muon" for several optimizers
    family: str = "unknown"  # of the whole setup: one family, or "mixed"
    loc: SourceLoc | None = None  # the first optimizer's construction
    lr: dict[str, dict[int, float]] = field(default_factory=dict)  # param -> width -> effective lr
    weight_decay: dict[str, dict[int, float]] = field(default_factory=dict)
    eps: dict[str, float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # parameters in no param group
    owner: dict[str, OwningOptimizer] = field(default_factory=dict)  # param -> the optimizer that steps it
    lr_scale_key: dict[str, str] = field(default_factory=dict)  # param -> the group key its lr was scaled by
    lr_source: dict[str, str] = field(default_factory=dict)  # param -> how its lr was read
    notes: list[str] = field(default_factory=list)  # what the schedule does to the groups' lr ratios
    ignored_lr_keys: set[str] = field(default_factory=set)  # lr-like group keys torch ignores, not applied


@dataclass(frozen=True)
class OwningOptimizer:
    cls: str
    family: str
    loc: SourceLoc | None


def _call_with_defaults(func: Callable, model: nn.Module, label: str, bound: bool):
    sig = inspect.signature(func)
    args, kwargs = ([] if bound else [model]), {}
    params = list(sig.parameters.values())[(0 if bound else 1) :]
    for p in params:
        if p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name not in OPTIMIZERS.argument_defaults:
            raise MulintError(
                f"cannot call {label}: argument '{p.name}' has no default",
                step="optimizer",
                hint="give it a default, or name a factory taking only the model with "
                "--optimizer path/to/file.py:make_optimizer",
            )
        kwargs[p.name] = OPTIMIZERS.argument_defaults[p.name]
    return func(*args, **kwargs)


def find_factory(module, model_cls: type | None, given: Function | None) -> OptimizerFactory | None:
    """``--optimizer``/config (or `optimizer_fn=`) first, then module-level factories, then the model's own method."""
    if given is not None:
        chosen, label = resolve_function(given)
        return OptimizerFactory(
            label, lambda model: _call_with_defaults(chosen, model, label, bound=False), inspect.getmodule(chosen)
        )
    for name in OPTIMIZERS.factory_names:
        func = getattr(module, name, None)
        if callable(func) and not inspect.isclass(func):
            where = getattr(module, "__file__", None)
            label = f"{display_path(where) if where else module.__name__}:{name}"
            return OptimizerFactory(label, functools.partial(_call_module_factory, func, label))
    method = OPTIMIZERS.factory_method
    if model_cls is not None and callable(getattr(model_cls, method, None)):
        label = f"{model_cls.__name__}.{method}"
        return OptimizerFactory(label, functools.partial(_call_own_factory, method, label))
    return None


def _call_module_factory(func: Callable, label: str, model: nn.Module):
    return _call_with_defaults(func, model, label, bound=False)


def _call_own_factory(method: str, label: str, model: Any):
    """The model's own method (Lightning's and nanoGPT's configure_optimizers), which no module type declares."""
    return _call_with_defaults(getattr(model, method), model, label, bound=True)


class _ConstructionSite:
    """Notes the user line that constructs each torch optimizer (through mup's MuAdam too)."""

    def __init__(self) -> None:
        self.locs: dict[int, SourceLoc | None] = {}  # id(optimizer) -> line

    def __enter__(self):
        self._original = torch.optim.Optimizer.__init__
        site, original = self, self._original

        def init(opt, *args, **kwargs):
            site.locs.setdefault(id(opt), user_frame_from(2, outside_packages=True)[0])
            original(opt, *args, **kwargs)

        torch.optim.Optimizer.__init__ = init  # type: ignore[method-assign,assignment]  # noting each construction
        return self

    def __exit__(self, *exc):
        torch.optim.Optimizer.__init__ = self._original  # type: ignore[method-assign]
        return False


def read_optimizer(
    factory: OptimizerFactory,
    model: nn.Module,
    width: int,
    numbers: OptimizerNumbers,
    target: str,
    policy: LrPolicy | None = None,
) -> None:
    """Each parameter's lr as the training sets it (``policy``: how lr-scale keys are treated)."""
    steps.enter("optimizer")
    policy = policy or LrPolicy()
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    site = _ConstructionSite()
    try:
        with site:
            made = factory.make(model)
    except MulintError:
        raise
    except Exception as exc:
        raise MulintError(
            f"{factory.label} raised {type(exc).__name__}: {exc}",
            target=target,
            step="optimizer",
            hint="the factory must take the model and return a torch.optim.Optimizer",
        ) from exc
    optimizers, schedulers = split_made(made, factory.label, target)
    owners = [OwningOptimizer(type(o).__name__, family_of(o), site.locs.get(id(o))) for o in optimizers]
    numbers.cls = " + ".join(dict.fromkeys(o.cls for o in owners))
    families = {o.family for o in owners}
    numbers.family = families.pop() if len(families) == 1 else "mixed"
    numbers.loc = numbers.loc or owners[0].loc
    seen = set()
    for optimizer, owner in zip(optimizers, owners):
        for group, effective in zip(optimizer.param_groups, group_lrs(optimizer, schedulers, policy)):
            if effective.why and f"learning rates: {effective.why}" not in numbers.notes:
                numbers.notes.append(f"learning rates: {effective.why}")
            numbers.ignored_lr_keys |= {
                k
                for k, v in group.items()
                if "lr" in k
                and k not in optimizer.defaults
                and k not in OPTIMIZERS.scheduler_keys
                and k != effective.key
                and isinstance(v, (int, float))
                and not isinstance(v, bool)
            }
            for p in group["params"]:
                seen.add(id(p))
                for name in names.get(id(p), []):
                    numbers.owner[name] = owner
                    numbers.lr.setdefault(name, {})[width] = effective.lr
                    numbers.lr_source[name] = effective.source
                    if effective.applied and effective.key is not None:
                        numbers.lr_scale_key[name] = effective.key
                    numbers.weight_decay.setdefault(name, {})[width] = float(group.get("weight_decay", 0.0) or 0.0)
                    if "eps" in group and group["eps"] is not None:
                        eps = group["eps"]
                        first = eps[0] if isinstance(eps, (tuple, list)) else eps
                        if first is not None:  # Adafactor's default eps is (None, 1e-3)
                            numbers.eps[name] = float(first)
    for note in schedule_notes(optimizers, schedulers, factory.label):  # steps them: after every read
        if note not in numbers.notes:
            numbers.notes.append(note)
    params = dict(model.named_parameters(remove_duplicate=False))
    numbers.missing = sorted({n for pid, ns in names.items() if pid not in seen for n in ns if params[n].requires_grad})


def optimizer_facts(
    numbers: OptimizerNumbers, params: list[ParamFacts], grad_rms: float | None, notes: list[str]
) -> OptimizerFacts:
    """Each parameter's learning rate, decay and owning optimizer into its facts; the setup's facts."""
    for p in params:
        # the name the optimizer reached it by; else its own, then absent from every table (all are filled together)
        name = next((n for n in (p.name, *p.aliases) if n in numbers.lr), p.name)
        p.lr = numbers.lr.get(name, {})
        p.weight_decay = numbers.weight_decay.get(name, {})
        p.lr_exponent = fit_exponent(p.lr)
        p.lr_scale_key = numbers.lr_scale_key.get(name)
        p.lr_source = numbers.lr_source.get(name, "")
        owner = numbers.owner.get(name)
        if owner is not None:
            p.optimizer, p.optimizer_family, p.optimizer_at = owner.cls, owner.family, owner.loc
    judged_eps = {v for n, v in numbers.eps.items() if numbers.owner.get(n) and numbers.owner[n].family == "adam"}
    for cls in dict.fromkeys(o.cls for o in numbers.owner.values() if o.family == "unknown"):
        owned = [p for p in params if p.optimizer == cls]
        judged = (
            "are measured, not judged: it sets its own step size"
            if any(p.update_self_tuned for p in owned)
            else "are judged by the update it measurably makes (MU311-MU313)"
        )
        notes.append(
            f"optimizer {cls} has no learning-rate table (mulint has them for the Adam family and "
            f"SGD): its {len(owned)} parameters ({_patterns([p.name for p in owned])}) {judged}"
        )
    notes.extend(numbers.notes)
    for key in sorted(numbers.ignored_lr_keys):
        notes.append(
            f"param groups carry `{key}`, a key torch ignores: if the training loop multiplies the lr "
            f"by it, name it with lr-scale-key so the learning rates are judged as they train"
        )
    return OptimizerFacts(
        label=numbers.label,
        cls=numbers.cls,
        family=numbers.family,
        loc=numbers.loc,
        eps=max(judged_eps) if judged_eps else None,
        missing=numbers.missing,
        hidden_grad_rms=grad_rms,
    )


def _patterns(names: list[str]) -> str:
    """`h.0.w, h.1.w` -> `h.*.w`."""
    return ", ".join(dict.fromkeys(layer_pattern(n) for n in names))
