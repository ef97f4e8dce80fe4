"""The learning rate each param group trains at, as the user's training sets it: one decision that
`check` (the learning-rate rules and the measured updates) and `coord` (the optimizer it trains with)
share, so the two commands never judge different learning rates.

Two things stand between a group's ``lr`` after the factory returns and the lr it trains at:
- an LR scheduler built with the optimizer (a warm-up ``LambdaLR`` sets every ``lr`` to 0 at
  construction): the base lr it keeps in ``initial_lr`` is the one µP's ratios live in;
- a key torch ignores (``lr_scale``), which changes the lr only if the training applies it. Whether it
  does is read from the code (mulint.reading.lr_scale_reads) and from the numbers: a factory that already
  multiplied each group's lr by it leaves lr / lr_scale the same for every group."""

from __future__ import annotations

import sys
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mulint.errors import MulintError
from mulint.facts import LR_SCALE_MODES
from mulint.optimizers import OPTIMIZERS
from mulint.paths import display_path

SCHEDULE_STEPS = 200  # steps of the schedule followed to see whether it keeps the groups' lr ratios
_SAME = 1e-6  # relative tolerance of "the same lr ratio"


@dataclass
class LrPolicy:
    """How a group's lr-scale key is treated, for one target."""

    # keys torch ignores that training loops multiply the lr by (mulint/profile_data/optimizers.toml)
    keys: tuple[str, ...] = OPTIMIZERS.lr_scale_keys
    named: tuple[str, ...] = ()  # keys the config names: the user says the training applies them
    mode: str = "auto"
    reads: list = field(default_factory=list)  # ScaleRead: where the code applies a key
    searched: list[str] = field(default_factory=list)  # the files read for them, as printed
    # "train.py:57": a training script beside the model writes one absolute lr into every group
    overwrites: list[str] = field(default_factory=list)

    @classmethod
    def for_module(
        cls, module, named: tuple[str, ...] = (), mode: str = "auto", factory_module=None, model_class=None
    ) -> LrPolicy:
        """The keys' reads in the module's file, the local files it imported and training scripts beside it
        (and the optimizer factory's file, when another file defines it; and the training scripts beside
        the model class's file, when the module is a factory building a class of another local file)."""
        if mode not in LR_SCALE_MODES:
            raise MulintError(
                f"lr-scale = {mode!r} is not one of {', '.join(LR_SCALE_MODES)}",
                step="config",
                hint='use lr-scale = "auto" (read the code), "applied" or "ignored"',
            )
        keys = tuple(dict.fromkeys((*named, *OPTIMIZERS.lr_scale_keys)))
        where = getattr(module, "__file__", None)
        if mode != "auto" or not where:
            return cls(keys, tuple(named), mode)
        from mulint.reading.lr_scale_reads import absolute_writes, scale_reads, training_files

        imported = _local_modules(module, factory_module)
        files = training_files(Path(where), imported, _class_file(model_class, imported))
        # only a training script's own loop: the factory's writes are in the optimizer mulint reads
        scripts = [f for f in files if f not in imported and f != Path(where).resolve()]
        return cls(
            keys,
            tuple(named),
            mode,
            scale_reads(files, keys, display_path),
            [Path(f).name for f in files],
            absolute_writes(scripts),
        )

    @classmethod
    def for_training(cls, target_module, factory, model_class, named: tuple[str, ...], mode: str) -> LrPolicy | None:
        """The policy of the learning rates ``factory`` (a found optimizer factory, or None) makes for a
        model of ``model_class`` that ``target_module`` builds: what check, coord and transfer all train at."""
        if factory is None:
            return None
        return cls.for_module(target_module, tuple(named), mode, factory.module, model_class)

    def overwrite_note(self, label: str) -> list[str]:
        """What a training loop writing one lr into every group does to the per-group lrs judged here."""
        if not self.overwrites:
            return []
        return [
            f"{label}: {', '.join(self.overwrites)} writes one absolute lr into every param group (MU303), "
            "so the per-group learning rates judged here are not the ones training uses; scale each "
            "group's own base lr instead"
        ]


def _class_file(model_class, imported: list[Path]) -> Path | None:
    """The file defining the model's class, when it is one of the user's files the module imports."""
    defined_in = sys.modules.get(getattr(model_class, "__module__", None) or "")
    name = getattr(defined_in, "__file__", None)
    if not name:
        return None
    path = Path(name).resolve()
    return path if path in imported else None


def _local_modules(module, factory_module=None) -> list[Path]:
    """The files of the user's tree the module imports, transitively: the modules and the definitions
    its namespace holds, outside installed packages and mulint (not whatever else this process loaded)."""
    from mulint.reading.local_imports import package_root

    starts = [m for m in (module, factory_module) if getattr(m, "__file__", None)]
    roots = {package_root(Path(m.__file__)) for m in starts}
    own = Path(__file__).resolve().parents[1]
    found: dict[Path, None] = {}
    todo = list(starts)
    while todo:
        current = todo.pop()
        name = getattr(current, "__file__", None)
        if not name or "site-packages" in name or "dist-packages" in name:
            continue
        path = Path(name).resolve()
        if path in found or not any(path.is_relative_to(r) for r in roots) or path.is_relative_to(own):
            continue
        found[path] = None
        for value in list(vars(current).values()):
            if isinstance(value, types.ModuleType):
                todo.append(value)
                continue
            try:
                defined_in = getattr(value, "__module__", None)
            except Exception:  # a user object's __getattr__
                continue
            if isinstance(defined_in, str) and defined_in in sys.modules:
                todo.append(sys.modules[defined_in])
    return list(found)


def lr_scale(group: dict, optimizer, keys: tuple[str, ...]) -> tuple[float, str | None]:
    """The group's value of a key torch itself ignores that may multiply its lr, and the key."""
    for key in keys:
        value = group.get(key)
        if key not in optimizer.defaults and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), key
    return 1.0, None


def split_made(made, label: str = "the optimizer factory", target: str | None = None):
    """Optimizers and LR schedulers from what a factory returned: one optimizer; a list, tuple or dict of
    them; ``(optimizer, scheduler)``; Lightning's ``[optimizers], [schedulers]`` or
    ``{"optimizer": ..., "lr_scheduler": scheduler or {"scheduler": ...}}``."""
    optimizers, schedulers, wrong = [], [], []

    def walk(item, in_config: bool) -> None:
        if isinstance(item, torch.optim.Optimizer):
            optimizers.append(item)
        elif isinstance(item, torch.optim.lr_scheduler.LRScheduler) or _is_plateau(item):
            schedulers.append(item)
        elif isinstance(item, dict):
            config = in_config or bool({"optimizer", "scheduler", "lr_scheduler"} & set(item))
            for value in item.values():
                walk(value, config)
        elif isinstance(item, (list, tuple)):
            for value in item:
                walk(value, in_config)
        elif not (in_config and (item is None or isinstance(item, (str, int, float, bool)))):
            wrong.append(type(item).__name__)  # Lightning's "interval": "step", "monitor": "loss" are settings

    walk(made, False)
    if wrong or not optimizers:
        several = isinstance(made, (list, tuple, dict))
        what = (
            f"a {type(made).__name__} holding {', '.join(wrong) or 'no optimizer'}" if several else type(made).__name__
        )
        raise MulintError(
            f"{label} returned {what}, not a torch.optim.Optimizer",
            target=target or "",
            step="optimizer",
            hint="return the optimizer itself, a list, tuple or dict of optimizers, or "
            "(optimizer, scheduler) / {'optimizer': ..., 'lr_scheduler': ...}",
        )
    return optimizers, schedulers


def _is_plateau(item) -> bool:
    plateau = getattr(torch.optim.lr_scheduler, "ReduceLROnPlateau", None)
    return plateau is not None and isinstance(item, plateau)


@dataclass(frozen=True)
class GroupLr:
    lr: float  # the lr the group trains at (its base, before any warm-up or decay)
    source: str  # how it was read, e.g. "scheduler base lr (LambdaLR)"; "" for the group's plain lr
    key: str | None = None  # the lr-scale key the group carries
    applied: bool = False  # whether its value multiplies the lr
    why: str = ""  # how that was decided, e.g. "lr_scale applied by train.py:57"


def _attached(optimizer, schedulers) -> list:
    return [s for s in schedulers if getattr(s, "optimizer", None) is optimizer]


def _base(group: dict, schedulers: list) -> tuple[float, str]:
    initial = group.get("initial_lr")
    if isinstance(initial, (int, float)) and not isinstance(initial, bool):
        names = " + ".join(dict.fromkeys(type(s).__name__ for s in schedulers)) or "an LR scheduler"
        return float(initial), f"scheduler base lr ({names})"
    lr = group.get("lr", 0.0)
    return float(lr.item() if isinstance(lr, torch.Tensor) else lr), "group lr"


def _includes(optimizer, schedulers, key: str) -> bool:
    """lr / lr_scale is the same for every group while lr_scale is not: the factory applied the key."""
    pairs = []
    for group in optimizer.param_groups:
        value = group.get(key, 1.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value == 0:
            return False
        pairs.append((_base(group, schedulers)[0], float(value)))
    if len({s for _, s in pairs}) < 2 or any(b <= 0 for b, _ in pairs):
        return False
    ratios = [b / s for b, s in pairs]
    return max(ratios) - min(ratios) <= _SAME * max(ratios)


def decide(optimizer, schedulers, key: str, policy: LrPolicy) -> tuple[bool, str]:
    """Whether the training multiplies the groups' lr by ``key``, and why (for the report)."""
    if policy.mode != "auto":
        return policy.mode == "applied", f'lr-scale = "{policy.mode}" in the config'
    reads = [r for r in policy.reads if r.key == key]
    compounding = [r for r in reads if r.compounds]
    if compounding:
        return True, f"{key} applied by {compounding[0].where}"
    if _includes(optimizer, schedulers, key):
        also = f" (as {reads[0].where} writes it)" if reads else ""
        return False, f"lr already includes {key}{also}"
    if reads:
        return True, f"{key} applied by {reads[0].where}"
    if key in policy.named:
        return True, f"{key} applied: named by lr-scale-key in the config"
    files = ", ".join(policy.searched) or "the model's file"
    return False, f"{key} not read anywhere ({files}): not applied"


def group_lrs(optimizer, schedulers: list, policy: LrPolicy) -> list[GroupLr]:
    """The lr each of the optimizer's param groups trains at, and how it was read."""
    attached = _attached(optimizer, schedulers)
    decisions: dict[str, tuple[bool, str]] = {}
    out = []
    for group in optimizer.param_groups:
        base, source = _base(group, attached)
        scale, key = lr_scale(group, optimizer, policy.keys)
        if key is None:
            out.append(GroupLr(base, "" if source == "group lr" else source))  # the plain case goes unsaid
            continue
        if key not in decisions:
            decisions[key] = decide(optimizer, attached, key, policy)
        applied, why = decisions[key]
        if applied:
            out.append(
                GroupLr(
                    base * scale,
                    f"param_group['{'lr' if source == 'group lr' else 'initial_lr'}'] × param_group['{key}'], {why}",
                    key,
                    True,
                    why,
                )
            )
        else:
            out.append(GroupLr(base, f"{source}, {why}", key, False, why))
    return out


def apply_effective_lrs(optimizers, schedulers, policy: LrPolicy, multiplier: float = 1.0) -> None:
    """Set every group's lr (and its schedulers' base lr) to the lr it trains at, times ``multiplier``
    (one factor for every group: a sweep over learning rates keeps their ratios): the optimizer coord
    trains with and the measured updates step with (mulint.analysis.training), so both train as `check`
    judges."""
    for optimizer in optimizers:
        attached = _attached(optimizer, schedulers)
        for group, effective in zip(optimizer.param_groups, group_lrs(optimizer, schedulers, policy)):
            base = _base(group, attached)[0]
            lr = effective.lr * multiplier
            for key in OPTIMIZERS.lr_bounds:  # OneCycleLR's peak and floor move with the base lr
                if base > 0 and isinstance(group.get(key), (int, float)):
                    group[key] = group[key] * lr / base
            group["lr"] = lr
            if "initial_lr" in group:
                group["initial_lr"] = lr
        for scheduler in _with_children(attached):
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs = [g["lr"] for g in optimizer.param_groups]


def _with_children(schedulers: list) -> list:
    """The schedulers and those SequentialLR / ChainedScheduler step for them."""
    out = []
    for scheduler in schedulers:
        out.append(scheduler)
        out.extend(_with_children(list(getattr(scheduler, "_schedulers", None) or [])))
    return out


def schedule_notes(optimizers, schedulers, label: str) -> list[str]:
    """Follow the schedule (no training: only the schedulers step) and say when it moves the groups' lrs
    by different factors, which changes µP's per-group ratios as training goes on. Steps the given
    objects: call it on an optimizer that is thrown away after."""
    notes = []
    for optimizer in optimizers:
        attached = _attached(optimizer, schedulers)
        if not attached:
            continue
        bases = [_base(g, attached)[0] for g in optimizer.param_groups]
        names = " + ".join(dict.fromkeys(type(s).__name__ for s in attached))
        for step in range(1, SCHEDULE_STEPS + 1):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
                    for scheduler in attached:
                        scheduler.step()
            except Exception:
                break  # OneCycleLR past its total steps, ReduceLROnPlateau without a metric
            factors = [float(g["lr"]) / b for g, b in zip(optimizer.param_groups, bases) if b > 0]
            if factors and max(factors) - min(factors) > _SAME * max(abs(f) for f in factors) + 1e-15:
                notes.append(
                    f"{label}: {names} moves the param groups' lrs by different factors (at step {step}: "
                    f"{', '.join(f'{f:.3g}' for f in factors)} × their base lr), so µP's per-group lr "
                    f"ratios change during training; the base lrs are judged"
                )
                break
    return notes
