"""The user's optimizer: find its factory, build it for small real models, and read per-parameter
learning rate, weight decay and eps from its param_groups. Judged by what it produces (mup's
MuAdam is an Adam with per-group learning rates), not by its name."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from mulint import steps
from mulint.build.init_record import _user_frame_from
from mulint.errors import MulintError
from mulint.facts import SourceLoc
from mulint.paths import display_path

FACTORY_NAMES = ("configure_optimizers", "make_optimizer", "build_optimizer", "create_optimizer")
# Values for arguments the factory leaves without a default (nanoGPT's configure_optimizers).
ARG_DEFAULTS = {"weight_decay": 0.1, "learning_rate": 1e-3, "lr": 1e-3, "betas": (0.9, 0.95),
                "device_type": "cpu", "device": "cpu", "eps": 1e-8, "momentum": 0.9}

ADAM_FAMILY = ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "SparseAdam", "Adafactor", "Lion", "Adan",
               "AdaBelief", "LAMB", "Lamb")
SGD_FAMILY = ("SGD",)


def family_of(optimizer: torch.optim.Optimizer) -> str:
    """'adam' (per-coordinate normalised update), 'sgd', or 'unknown'."""
    for cls in type(optimizer).__mro__:
        if cls.__name__ in SGD_FAMILY:
            return "sgd"
        if cls.__name__ in ADAM_FAMILY:
            return "adam"
    return "unknown"


@dataclass
class OptimizerFactory:
    label: str  # how the report names it, e.g. "examples/mlp_sp.py:make_optimizer"
    make: Callable[[nn.Module], torch.optim.Optimizer]


@dataclass
class OptimizerNumbers:
    label: str
    cls: str = ""
    family: str = "unknown"
    loc: SourceLoc | None = None
    lr: dict[str, dict[int, float]] = field(default_factory=dict)  # param -> width -> lr
    weight_decay: dict[str, dict[int, float]] = field(default_factory=dict)
    eps: dict[str, float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # parameters in no param group


def _call_with_defaults(func: Callable, model: nn.Module, label: str, bound: bool):
    sig = inspect.signature(func)
    args, kwargs = ([] if bound else [model]), {}
    params = list(sig.parameters.values())[(0 if bound else 1):]
    for p in params:
        if p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name not in ARG_DEFAULTS:
            raise MulintError(f"cannot call {label}: argument '{p.name}' has no default", step="optimizer",
                              hint="give it a default, or name a factory taking only the model with "
                                   "--optimizer path/to/file.py:make_optimizer")
        kwargs[p.name] = ARG_DEFAULTS[p.name]
    return func(*args, **kwargs)


def find_factory(module, model_cls: type | None, spec: str | None, resolve_spec) -> OptimizerFactory | None:
    """``--optimizer``/config first, then module-level factories, then the model's own method."""
    if spec:
        func, label = resolve_spec(spec)
        return OptimizerFactory(label, lambda model: _call_with_defaults(func, model, label, bound=False))
    for name in FACTORY_NAMES:
        func = getattr(module, name, None)
        if callable(func) and not inspect.isclass(func):
            where = getattr(module, "__file__", None)
            label = f"{display_path(where) if where else module.__name__}:{name}"
            return OptimizerFactory(label, lambda model, f=func, lb=label: _call_with_defaults(f, model, lb, False))
    if model_cls is not None and callable(getattr(model_cls, "configure_optimizers", None)):
        label = f"{model_cls.__name__}.configure_optimizers"
        return OptimizerFactory(label, lambda model: _call_with_defaults(model.configure_optimizers, model, label,
                                                                          bound=True))
    return None


class _ConstructionSite:
    """Notes the user line that constructs a torch optimizer (through mup's MuAdam too)."""

    def __init__(self) -> None:
        self.loc: SourceLoc | None = None

    def __enter__(self):
        self._original = torch.optim.Optimizer.__init__
        site, original = self, self._original

        def init(opt, *args, **kwargs):
            if site.loc is None:
                site.loc = _user_frame_from(2)[0]
            original(opt, *args, **kwargs)

        torch.optim.Optimizer.__init__ = init
        return self

    def __exit__(self, *exc):
        torch.optim.Optimizer.__init__ = self._original
        return False


def read_optimizer(factory: OptimizerFactory, model: nn.Module, width: int, numbers: OptimizerNumbers,
                   target: str) -> None:
    steps.enter("optimizer")
    names = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    site = _ConstructionSite()
    try:
        with site:
            optimizer = factory.make(model)
    except MulintError:
        raise
    except Exception as exc:
        raise MulintError(f"{factory.label} raised {type(exc).__name__}: {exc}", target=target, step="optimizer",
                          hint="the factory must take the model and return a torch.optim.Optimizer") from exc
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise MulintError(f"{factory.label} returned {type(optimizer).__name__}, not a torch.optim.Optimizer",
                          target=target, step="optimizer", hint="return the optimizer itself")
    numbers.cls = type(optimizer).__name__
    numbers.family = family_of(optimizer)
    numbers.loc = numbers.loc or site.loc
    seen = set()
    for group in optimizer.param_groups:
        for p in group["params"]:
            seen.add(id(p))
            for name in names.get(id(p), []):
                numbers.lr.setdefault(name, {})[width] = float(group.get("lr", 0.0))
                numbers.weight_decay.setdefault(name, {})[width] = float(group.get("weight_decay", 0.0) or 0.0)
                if "eps" in group and group["eps"] is not None:
                    numbers.eps[name] = float(group["eps"]) if not isinstance(group["eps"], tuple) else float(group["eps"][0])
    numbers.missing = sorted({n for pid, ns in names.items() if pid not in seen for n in ns if any(
        q.requires_grad for q in [dict(model.named_parameters(remove_duplicate=False))[n]])})
