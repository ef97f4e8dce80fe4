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
from mulint.analysis.lr_reads import LR_SCALE_KEYS, LrPolicy, group_lrs, lr_scale, schedule_notes, split_made  # noqa: F401  (their home before lr_reads)
from mulint.construct.init_record import _user_frame_from
from mulint.errors import MulintError
from mulint.exponents import fit_exponent
from mulint.facts import OptimizerFacts, ParamFacts, SourceLoc
from mulint.paths import display_path, layer_pattern
from mulint.reading.functions import Function, resolve_function

FACTORY_NAMES = ("configure_optimizers", "make_optimizer", "build_optimizer", "create_optimizer")
# Values for arguments the factory leaves without a default (nanoGPT's configure_optimizers).
ARG_DEFAULTS = {
    "weight_decay": 0.1,
    "learning_rate": 1e-3,
    "lr": 1e-3,
    "betas": (0.9, 0.95),
    "device_type": "cpu",
    "device": "cpu",
    "eps": 1e-8,
    "momentum": 0.9,
}

# Not Adafactor: its update is relative to the parameter's RMS, so its µP LR is not Adam's (it is
# judged by its measured update instead).
ADAM_FAMILY = ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "SparseAdam", "Lion", "Adan", "AdaBelief", "LAMB", "Lamb")
SGD_FAMILY = ("SGD",)


def family_of(optimizer: torch.optim.Optimizer) -> str:
    """'adam' (per-coordinate normalised update), 'sgd', or 'unknown'."""
    for cls in type(optimizer).__mro__:
        if cls.__name__ in SGD_FAMILY:
            return "sgd"
        if cls.__name__ in ADAM_FAMILY:
            return "adam"
    return "unknown"


# Group keys torch itself reads: the lr (an optimizer with empty defaults still steps by it) and the
# ones its lr schedulers write into every group.
SCHEDULER_KEYS = {"lr", "initial_lr", "max_lr", "min_lr", "base_lr"}


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
        if p.name not in ARG_DEFAULTS:
            raise MulintError(
                f"cannot call {label}: argument '{p.name}' has no default",
                step="optimizer",
                hint="give it a default, or name a factory taking only the model with "
                "--optimizer path/to/file.py:make_optimizer",
            )
        kwargs[p.name] = ARG_DEFAULTS[p.name]
    return func(*args, **kwargs)


def find_factory(module, model_cls: type | None, given: Function | None) -> OptimizerFactory | None:
    """``--optimizer``/config (or `optimizer_fn=`) first, then module-level factories, then the model's own method."""
    if given is not None:
        chosen, label = resolve_function(given)
        return OptimizerFactory(
            label, lambda model: _call_with_defaults(chosen, model, label, bound=False), inspect.getmodule(chosen)
        )
    for name in FACTORY_NAMES:
        func = getattr(module, name, None)
        if callable(func) and not inspect.isclass(func):
            where = getattr(module, "__file__", None)
            label = f"{display_path(where) if where else module.__name__}:{name}"
            return OptimizerFactory(label, functools.partial(_call_module_factory, func, label))
    if model_cls is not None and callable(getattr(model_cls, "configure_optimizers", None)):
        label = f"{model_cls.__name__}.configure_optimizers"
        return OptimizerFactory(label, functools.partial(_call_configure_optimizers, label))
    return None


def _call_module_factory(func: Callable, label: str, model: nn.Module):
    return _call_with_defaults(func, model, label, bound=False)


def _call_configure_optimizers(label: str, model: Any):
    """The model's own method (Lightning, nanoGPT), which no module type declares."""
    return _call_with_defaults(model.configure_optimizers, model, label, bound=True)


class _ConstructionSite:
    """Notes the user line that constructs each torch optimizer (through mup's MuAdam too)."""

    def __init__(self) -> None:
        self.locs: dict[int, SourceLoc | None] = {}  # id(optimizer) -> line

    def __enter__(self):
        self._original = torch.optim.Optimizer.__init__
        site, original = self, self._original

        def init(opt, *args, **kwargs):
            site.locs.setdefault(id(opt), _user_frame_from(2, outside_packages=True)[0])
            original(opt, *args, **kwargs)

        torch.optim.Optimizer.__init__ = init  # type: ignore[method-assign,assignment]  # noting each construction
        return self

    def __exit__(self, *exc):
        torch.optim.Optimizer.__init__ = self._original  # type: ignore[method-assign]
        return False


def optimizers_of(made, label: str, target: str) -> list[torch.optim.Optimizer]:
    """The optimizers a factory returned (beside any LR schedulers, see lr_reads.split_made)."""
    return split_made(made, label, target)[0]


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
                and k not in SCHEDULER_KEYS
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
