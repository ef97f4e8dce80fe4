"""The rules: each a small class with a code, a name and a pure check over ModelFacts."""

from __future__ import annotations

from mulint.rules.attention import SqrtAttentionScale
from mulint.rules.base import Rule
from mulint.rules.init import HiddenInitTooLarge, HiddenInitTooSmall, InputInitScaling, ReadoutInitTooLarge
from mulint.rules.optimizer import AdamEpsTooLarge, AdamUpdateScaling, DecoupledDecayScaling, SgdUpdateScaling
from mulint.rules.coord import CoordBlowUp, CoordCollapse
from mulint.rules.schedule import OneLrForAllGroups
from mulint.rules.mup_package import InitAfterBaseShapes, MissingBaseShapes, SharedReadoutBias

MODEL_RULES: list[type[Rule]] = [
    HiddenInitTooLarge, ReadoutInitTooLarge, InputInitScaling, HiddenInitTooSmall,
    SqrtAttentionScale,
    AdamUpdateScaling, SgdUpdateScaling, DecoupledDecayScaling, AdamEpsTooLarge,
    MissingBaseShapes, InitAfterBaseShapes, SharedReadoutBias,
    CoordBlowUp, CoordCollapse,
]

SOURCE_RULES: list[type[Rule]] = [OneLrForAllGroups]


def all_rules() -> list[type[Rule]]:
    return sorted(MODEL_RULES + SOURCE_RULES, key=lambda r: r.code)


def by_code(code: str) -> type[Rule] | None:
    return next((r for r in all_rules() if r.code == code.upper()), None)
