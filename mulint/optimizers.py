"""Optimizer knowledge as data (``mulint/profile_data/optimizers.toml``): optimizer families by class
name, the param-group keys that matter (lr-scale, weight-decay, self-tuned, scheduler keys), the hints
that tell a hybrid Muon's paths apart, the factory names mulint looks for and the training scripts it
reads. One file, read once, so that the optimizer reads, the measured updates, the lr reads of training
loops and the profiles never keep tables of their own. Pure: no torch, importable from any layer.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class OptimizerKnowledge:
    factory_names: tuple[str, ...]  # module-level functions taking the model
    factory_method: str  # the model's own method, when the module has none
    argument_defaults: dict[str, Any]  # values for a factory's arguments without a default
    families: dict[str, tuple[str, ...]]  # family -> class names
    lr_scale_keys: tuple[str, ...]
    own_lr_keys: tuple[str, ...]
    scheduler_keys: frozenset[str]
    lr_bounds: tuple[str, ...]
    weight_decay_keys: tuple[str, ...]
    self_tuned_keys: tuple[str, ...]
    shape_settings: tuple[str, ...]
    muon_class_hint: str
    ortho_flag: str
    second_moment_keys: tuple[str, ...]
    training_scripts: tuple[str, ...]

    def family_of_classes(self, class_names: list[str]) -> str:
        """The family of an optimizer whose class and bases are ``class_names`` (most derived first),
        or "unknown": the first class a family names decides."""
        for name in class_names:
            for family, names in self.families.items():
                if name in names:
                    return family
        return "unknown"

    def is_muon(self, class_name: str) -> bool:
        """A class named like a Muon optimizer (Muon, MuonWithAuxAdam, SingleDeviceMuon)."""
        return self.muon_class_hint in class_name.lower()


def _tuple(value) -> Any:
    return tuple(value) if isinstance(value, list) else value


def load_optimizers() -> OptimizerKnowledge:
    data = tomllib.loads((resources.files("mulint") / "profile_data" / "optimizers.toml").read_text(encoding="utf-8"))
    factories, groups, muon = data["factories"], data["param_groups"], data["muon"]
    return OptimizerKnowledge(
        factory_names=tuple(factories["names"]),
        factory_method=factories["method"],
        argument_defaults={k: _tuple(v) for k, v in factories["argument_defaults"].items()},
        families={family: tuple(names) for family, names in data["families"].items()},
        lr_scale_keys=tuple(groups["lr_scale_keys"]),
        own_lr_keys=tuple(groups["own_lr_keys"]),
        scheduler_keys=frozenset(groups["scheduler_keys"]),
        lr_bounds=tuple(groups["lr_bounds"]),
        weight_decay_keys=tuple(groups["weight_decay_keys"]),
        self_tuned_keys=tuple(groups["self_tuned_keys"]),
        shape_settings=tuple(groups["shape_settings"]),
        muon_class_hint=muon["class_hint"],
        ortho_flag=muon["ortho_flag"],
        second_moment_keys=tuple(muon["second_moment_keys"]),
        training_scripts=tuple(data["training_scripts"]["patterns"]),
    )


OPTIMIZERS = load_optimizers()
