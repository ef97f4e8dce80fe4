"""The rules: each a small class with a code, a name and a pure check over ModelFacts."""

from __future__ import annotations

from mulint.rules.attention import SqrtAttentionScale
from mulint.rules.base import Rule
from mulint.rules.coord import CoordBlowUp, CoordCollapse
from mulint.rules.init import (
    HiddenInitTooLarge,
    HiddenInitTooSmall,
    InputInitScaling,
    ReadoutInitTooLarge,
    ScaleOutsideForward,
)
from mulint.rules.mup_package import InitAfterBaseShapes, MissingBaseShapes, SharedReadoutBias
from mulint.rules.optimizer import (
    AdamEpsTooLarge,
    AdamUpdateScaling,
    DecoupledDecayScaling,
    SgdUpdateScaling,
    ZeroLearningRate,
)
from mulint.rules.schedule import OneLrForAllGroups
from mulint.rules.spectral import MeasuredUpdateTooLarge, MeasuredUpdateTooSmall, MuonOnEmbeddingOrReadout

MODEL_RULES: list[type[Rule]] = [
    HiddenInitTooLarge,
    ReadoutInitTooLarge,
    InputInitScaling,
    HiddenInitTooSmall,
    ScaleOutsideForward,
    SqrtAttentionScale,
    AdamUpdateScaling,
    SgdUpdateScaling,
    DecoupledDecayScaling,
    AdamEpsTooLarge,
    ZeroLearningRate,
    MeasuredUpdateTooLarge,
    MeasuredUpdateTooSmall,
    MuonOnEmbeddingOrReadout,
    MissingBaseShapes,
    InitAfterBaseShapes,
    SharedReadoutBias,
    CoordBlowUp,
    CoordCollapse,
]

SOURCE_RULES: list[type[Rule]] = [OneLrForAllGroups]


def all_rules() -> list[type[Rule]]:
    return sorted(MODEL_RULES + SOURCE_RULES, key=lambda r: r.code)


def by_code(code: str) -> type[Rule] | None:
    return next((r for r in all_rules() if r.code == code.upper()), None)


# Judged on the branch of forward that trains: a learning rate only matters where gradients flow.
LEARNING_RATE_RULES = {"MU301", "MU302", "MU304", "MU306"}
# Judged on the updates measured with the default forward call, whose numbers only those facts hold.
MEASURED_RULES = {"MU311", "MU312", "MU313"}


def _branch_view(facts, branch):
    """The facts as seen on another branch of forward: its uses and attention sites."""
    from dataclasses import replace

    params = [replace(p, uses=branch.uses.get(p.name, p.uses)) for p in facts.params]
    return replace(facts, params=params, attention=branch.attention, branches=[])


def check_model_rules(facts, rules: list[type[Rule]] | None = None) -> list:
    """Run the model rules on every branch of forward the facts hold. A finding that holds on some
    branches only names them; learning-rate findings come from the branch that trains."""
    rules = MODEL_RULES if rules is None else rules
    if not facts.branches:
        return [f for rule in rules for f in rule().check(facts)]
    measured = [f for rule in rules if rule.code in MEASURED_RULES for f in rule().check(facts)]
    rules = [rule for rule in rules if rule.code not in MEASURED_RULES]
    views = [(facts.branch, facts.branch_trains, facts)] + [
        (b.description, b.trains, _branch_view(facts, b)) for b in facts.branches
    ]
    found: dict[tuple, tuple] = {}  # (code, place, parameters) -> (finding, branches it holds on)
    for description, trains, view in views:
        for rule in rules:
            if rule.code in LEARNING_RATE_RULES and not trains:
                continue
            for finding in rule().check(view):
                key = (finding.code, finding.path, finding.line, finding.parameter)
                first, where = found.setdefault(key, (finding, []))
                where.append(description)
    out = []
    for (code, *_), (finding, where) in found.items():
        judged = [d for d, trains, _ in views if trains or code not in LEARNING_RATE_RULES]
        if len(where) < len(judged) and code not in LEARNING_RATE_RULES:
            finding.message += f" (on {' and '.join(where)})"
        out.append(finding)
    return out + measured
