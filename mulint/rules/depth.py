"""Depth rules on the residual branches (MU501-MU503, MU507): is each branch output scaled by L^-α with
α in the profile's range, on the branch (not the skip path, not before a norm that cancels it), counted
once, and are extra paths into the stream scaled like the main branches (MUP_REFERENCE §8).

Judged only when the model shows depth scaling somewhere or its profile requires it
(``mulint.depth_scaling.judged``): a width-only model gets a note under the default profile instead.
"""

from __future__ import annotations

from collections.abc import Iterator

from mulint.depth_scaling import BranchScaling, covered, family, judged, judged_table, model_alpha, scaling
from mulint.edits import BranchMultiplier
from mulint.exponents import TOLERANCE, fmt_exp, to_quarter
from mulint.facts import ModelFacts, ResidualBranch, SourceLoc
from mulint.findings import Finding, Fix
from mulint.paths import layer_pattern
from mulint.profiles import accepts, load_profile
from mulint.rules.base import Rule, edit_site


def alpha_words(alpha: float) -> str:
    return f"α̂ = {alpha:.2f}".replace("-0.00", "0.00")


def wanted(facts: ModelFacts) -> str:
    """What the profile asks of α, in words: "mup accepts α in [0.50, 1.00]", "completep requires α = 1.00"."""
    low, high = judged_table(facts).alpha
    name = load_profile(facts.profile).name
    return f"{name} requires α = {low:.2f}" if low == high else f"{name} accepts α in [{low:.2f}, {high:.2f}]"


def factor_site(branch: ResidualBranch) -> SourceLoc | None:
    """Where the branch's factor is applied, else the residual add."""
    return branch.multiplier_at or branch.loc


def by_line(
    rule: Rule,
    facts: ModelFacts,
    hits: list[tuple[SourceLoc | None, ResidualBranch, list[str], str]],
    kind: str = "",
    fix_of=None,
) -> Iterator[Finding]:
    """One finding per source line (two branches scaled on one line are one fix), naming every parameter;
    with ``kind`` ("residual branch"), the message starts with the branches it is about."""
    groups: dict[tuple, list] = {}
    for loc, branch, names, message in hits:
        groups.setdefault((loc.path, loc.line) if loc else ("", 0), []).append((loc, branch, names, message))
    for items in groups.values():
        loc, _, _, message = items[0]
        if kind:
            branches = list(dict.fromkeys(b.name for _, b, _, _ in items))
            message = f"{kind}{'es' if len(branches) > 1 else ''} {', '.join(branches)}: {message}"
        finding = rule.finding(facts, loc, message, [n for _, _, names, _ in items for n in names])
        finding.fix = fix_of(loc, [b for _, b, _, _ in items]) if fix_of else None
        yield finding


def on(branch: ResidualBranch) -> list[str]:
    """The branch's parameters, or its name when it holds none (a gate read as a constant)."""
    return list(branch.params or (branch.name,))


def main_scalings(facts: ModelFacts) -> list[BranchScaling]:
    return [scaling(facts.depth, b) for b in covered(facts.depth)] if judged(facts) else []  # type: ignore[arg-type]


class BranchNotScaled(Rule):
    code = "MU501"
    name = "branch-not-scaled-with-depth"
    summary = "residual branch output not scaled with depth (no multiplier, a constant stored one, or a knob not derived from the depth argument)"
    fix_safety = "unsafe"

    def check(self, facts):
        hits = []
        for s in main_scalings(facts):
            b = s.branch
            if abs(s.alpha) > TOLERANCE or b.skip_exponent or b.cancelled_by_norm:
                continue  # scaled (MU502 judges how), or scaled in the wrong place (MU502)
            knob = facts.depth.knob
            if b.source == "constant":
                how = f"the multiplier is a constant ({_value(b)}) that stays the same when {knob} changes"
            elif b.source == "knob":
                how = f"the multiplier is set by {b.knob or 'another argument'}, not derived from {knob}"
            elif b.source == "learned":
                how = f"the gate starts at the same value whatever {knob} is"
            else:
                how = "the output is added to the stream unscaled"
            hits.append(
                (
                    factor_site(b) if b.source != "none" else b.loc,
                    b,
                    on(b),
                    (
                        f"{how} (α = 0 in effect); the stream then grows with depth and "
                        f"hyperparameters tuned at {knob}={facts.depth.base_depth} do not transfer; multiply the "
                        f"branch output by (base_depth / {knob.rsplit('.', 1)[-1]}) ** α ({wanted(facts)})"
                    ),
                )
            )
        yield from by_line(self, facts, hits, "residual branch", lambda loc, bs: self.build_fix(facts, loc, bs))

    def build_fix(self, facts: ModelFacts, loc: SourceLoc | None, branches: list[ResidualBranch]) -> Fix | None:
        """The branch output × (BASE_DEPTH / depth) ** α, with the α the block learning rates already
        follow (Adam: lr ∝ L^(α-1), so one lr for all gives CompleteP's α = 1), when the profile accepts
        it and no other branch is scaled otherwise; none with SGD (its lr rule differs)."""
        depth = facts.depth
        if loc is None or depth is None or any(b.source != "none" for b in branches):
            return None
        block_lrs = sorted(p.lr_exponent for p in depth.params if p.block and p.lr_exponent is not None)
        if {family(facts, p.name) for p in depth.params if p.lr} - {"adam"}:
            return None
        low, high = judged_table(facts).alpha
        alpha = to_quarter(block_lrs[len(block_lrs) // 2] + 1) if block_lrs else high
        if accepts((low, high), alpha, 0.0) or alpha <= 0:
            return None
        others = [scaling(depth, b).alpha for b in covered(depth) if b not in branches]
        if any(abs(a) > TOLERANCE and abs(a - alpha) > TOLERANCE for a in others):
            return None
        edit = BranchMultiplier(
            **edit_site(facts, loc), depth_knob=depth.knob, base_depth=depth.base_depth, alpha=alpha
        )
        name = depth.knob.rsplit(".", 1)[-1]
        return self.make_fix(
            f"multiply the branch output by ({depth.base_depth} / {name}) ** {alpha:g} (α as the block lrs follow)",
            [edit],
        )


class BranchScaledWrongly(Rule):
    code = "MU502"
    name = "depth-multiplier-wrong"
    summary = "depth multiplier exponent outside [½, 1], the skip path scaled instead of the branch, or the factor cancelled by a norm"

    def check(self, facts):
        hits = []
        for s in main_scalings(facts):
            b = s.branch
            if b.skip_exponent and abs(b.skip_exponent) > TOLERANCE:
                why = (
                    f"the skip path is scaled (∝ L^{fmt_exp(b.skip_exponent)}) instead of the branch output: the "
                    f"stream itself shrinks with depth"
                )
            elif b.cancelled_by_norm:
                why = "the depth factor is applied before the branch's own norm, which cancels it"
            elif abs(s.alpha) > TOLERANCE and accepts(judged_table(facts).alpha, s.alpha, TOLERANCE):
                direction = "grows with depth" if s.alpha < 0 else "scales as L^" + fmt_exp(-s.alpha)
                how = (
                    f" through {layer_pattern(s.carrier.name)}'s init"
                    if s.carrier is not None and abs(s.forward) <= TOLERANCE
                    else ""
                )
                why = f"the output {direction}{how} ({alpha_words(s.alpha)}); {wanted(facts)}"
            else:
                continue
            hits.append((factor_site(b), b, on(b), why))
        yield from by_line(self, facts, hits, "residual branch")


class DepthCountedTwice(Rule):
    code = "MU503"
    name = "depth-counted-twice-in-init"
    summary = "depth counted twice in init (a branch multiplier plus a 1/sqrt(2L)-style init), or an init that grows with depth"
    severity_note = "warning when the init grows with depth"

    def check(self, facts):
        if not judged(facts):
            return
        hits = []
        for s in main_scalings(facts):
            if s.twice and s.carrier is not None:
                c = s.carrier
                hits.append(
                    (
                        _init_site(facts, c.name) or factor_site(s.branch),
                        s.branch,
                        [c.name],
                        (
                            f"{layer_pattern(c.name)} is initialised ∝ L^{fmt_exp(c.init_exponent or 0.0)} on top of the branch "
                            f"multiplier ∝ L^{fmt_exp(-s.forward)} of {s.branch.name}: depth is counted twice (the "
                            f"branch's other weights' share of each update shrinks with depth); keep one of them"
                        ),
                    )
                )
        yield from by_line(self, facts, hits)
        growing: dict[tuple, list] = {}
        for p in facts.depth.params:
            if p.init_exponent is not None and p.init_exponent > TOLERANCE:
                loc = _init_site(facts, p.name)
                growing.setdefault((loc.path, loc.line) if loc else ("", 0), []).append((loc, p))
        for items in growing.values():
            loc, p = items[0]
            yield self.finding(
                facts,
                loc,
                (
                    f"{layer_pattern(p.name)} is initialised ∝ L^{fmt_exp(p.init_exponent or 0.0)}: its init grows with depth; "
                    f"depth belongs in the branch multiplier (L^-α), never in a growing init"
                ),
                [q.name for _, q in items],
                severity="warning",
            )


class ExtraPathScaledDifferently(Rule):
    code = "MU507"
    name = "extra-path-scaled-differently"
    severity = "warning"
    summary = (
        "an extra path into the residual stream (x0 injection, skip, gate) scaled differently from the main branches"
    )

    def check(self, facts):
        if not judged(facts):
            return
        alpha = model_alpha(facts.depth)
        if alpha is None:
            return
        hits = []
        for b in covered(facts.depth, "extra"):
            s = scaling(facts.depth, b)
            if abs(s.alpha - alpha) > TOLERANCE:
                hits.append(
                    (
                        factor_site(b),
                        b,
                        on(b),
                        (
                            f"extra path {b.name} into the residual stream scales as L^{fmt_exp(-s.alpha)} while the "
                            f"main branches scale as L^{fmt_exp(-alpha)} ({alpha_words(alpha)}); give it the same "
                            f"factor, or its share of the stream changes with depth"
                        ),
                    )
                )
        yield from by_line(self, facts, hits)


def _value(b: ResidualBranch) -> str:
    values = sorted(set(b.multiplier.values()))
    return f"{values[0]:g}" if values else "a number"


def _init_site(facts: ModelFacts, name: str) -> SourceLoc | None:
    try:
        p = facts.param(name)
    except KeyError:
        return None
    return p.init_at or p.created_at
