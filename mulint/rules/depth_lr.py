"""Depth rules on learning rates and ε (MU504-MU506): with branches scaled as L^-α, each block
parameter's update must add Θ(1/L) to the stream, so its Adam lr goes as L^(α-1) (SGD: L^(2α-1)) and
its Adam ε as L^-α; parameters outside the blocks keep theirs (MUP_REFERENCE §8, the profile's depth
table). A weight or gate carrying the branch's factor in its init takes that factor on its lr too.
"""

from __future__ import annotations

from collections.abc import Iterator

from mulint.depth_scaling import (
    BranchScaling,
    carried,
    covered,
    expected_lr,
    family,
    judged,
    judged_table,
    model_alpha,
    scaling,
)
from mulint.exponents import TOLERANCE, fmt_exp, to_quarter
from mulint.facts import ModelFacts, ParamDepth, SourceLoc
from mulint.findings import Finding
from mulint.rules.base import Rule

# Where ε matters (MU506) under a profile that does not require depth scaling: ε above this share of the
# hidden weights' gradient entries once depth has grown DEEPER-fold (they shrink like L^-α).
EPS_SHARE, DEEPER = 0.01, 16


def optimizer_site(facts: ModelFacts, name: str) -> tuple[str, SourceLoc | None]:
    """The optimizer stepping ``name`` and the line constructing it."""
    opt = facts.optimizer
    try:
        p = facts.param(name)
        return (p.optimizer or (opt.cls if opt else "")), (p.optimizer_at or (opt.loc if opt else None))
    except KeyError:
        return (opt.cls if opt else ""), (opt.loc if opt else None)


def branch_scalings(facts: ModelFacts) -> dict[str, BranchScaling]:
    return {b.name: scaling(facts.depth, b) for b in covered(facts.depth)}  # type: ignore[arg-type]


def grouped(rule: Rule, facts: ModelFacts, hits: list[tuple], message) -> Iterator[Finding]:
    """One finding per optimizer line and pair of exponents; ``hits``: (param, lr exponent, expected, α)."""
    groups: dict[tuple, list] = {}
    for p, got, want, alpha in hits:
        cls, loc = optimizer_site(facts, p.name)
        key = (cls, loc.line if loc else 0, to_quarter(got), to_quarter(want))
        groups.setdefault(key, []).append((p, got, want, alpha, loc))
    for (cls, *_), items in groups.items():
        p, got, want, alpha, loc = items[0]
        yield rule.finding(facts, loc, message(cls, p, got, want, alpha), [i[0].name for i in items])


def why(got: float, want: float) -> str:
    return "too large: each block's update grows with depth" if got > want else "too small: deep blocks stop learning"


class BlockLrDepthScaling(Rule):
    code = "MU504"
    name = "block-lr-depth-scaling"
    summary = "a block parameter's LR depth exponent does not match the branch multiplier (Adam: α−1, SGD: 2α−1)"
    trains_only = True

    def check(self, facts):
        if not judged(facts) or facts.optimizer is None:
            return
        tab, scalings = judged_table(facts), branch_scalings(facts)
        hits = []
        for p in facts.depth.params:
            s = scalings.get(p.branch)
            if not p.block or p.lr_exponent is None or s is None or s.alpha <= TOLERANCE:
                continue  # an unscaled branch is MU501's: its lr is judged once it has a factor
            fam = family(facts, p.name)
            want = expected_lr(tab, p, fam, s.alpha, carried(p, s))
            if want is not None and abs(p.lr_exponent - want) > TOLERANCE:
                hits.append((p, p.lr_exponent, want, s.alpha))

        def message(cls, p, got, want, alpha):
            rule = "Adam: α−1" if family(facts, p.name) != "sgd" else "SGD: 2α−1"
            own = (
                "; their init carries the branch's factor, so their lr takes it too"
                if carried(p, scalings[p.branch])
                else ""
            )
            return (
                f"{cls}: block parameters' lr ∝ L^{fmt_exp(to_quarter(got))} while their branch scales as "
                f"L^{fmt_exp(-alpha)} (α̂ = {alpha:.2f}{own}); they need lr ∝ L^{fmt_exp(want)} ({rule}): "
                f"{why(got, want)}"
            )

        yield from grouped(self, facts, hits, message)


class NonBlockLrDepthScaling(Rule):
    code = "MU505"
    name = "non-block-lr-scaled-with-depth"
    severity = "warning"
    summary = "a non-block parameter's LR (embedding, final norm, readout) scaled with depth"
    trains_only = True

    def check(self, facts):
        if not judged(facts) or facts.optimizer is None:
            return
        tab, alpha = judged_table(facts), model_alpha(facts.depth) or 0.0
        hits = []
        for p in facts.depth.params:
            if p.block or p.lr_exponent is None:
                continue
            want = expected_lr(tab, p, family(facts, p.name), alpha)
            if want is not None and abs(p.lr_exponent - want) > TOLERANCE:
                hits.append((p, p.lr_exponent, want, alpha))

        def message(cls, p, got, want, alpha):
            return (
                f"{cls}: lr ∝ L^{fmt_exp(to_quarter(got))} on parameters outside the residual blocks (embeddings, "
                f"final norm, readout); they are used once whatever the depth: keep lr ∝ L^{fmt_exp(want)}"
            )

        yield from grouped(self, facts, hits, message)


class BlockEpsNotScaled(Rule):
    code = "MU506"
    name = "block-eps-not-scaled-with-depth"
    severity = "warning"
    summary = "block parameters' Adam ε not scaled with depth where it matters"
    trains_only = True

    def check(self, facts):
        if not judged(facts) or facts.optimizer is None:
            return
        tab, scalings = judged_table(facts), branch_scalings(facts)
        hits = []
        for p in facts.depth.params:
            s = scalings.get(p.branch)
            if not p.block or p.eps_exponent is None or s is None or s.alpha <= TOLERANCE:
                continue
            want = tab.expected("block", "adam", "eps", s.alpha)
            if want is not None and abs(p.eps_exponent - want) > TOLERANCE and self.matters(facts, p, s.alpha):
                hits.append((p, p.eps_exponent, want, s.alpha))

        def message(cls, p, got, want, alpha):
            eps = p.eps.get(facts.depth.base_depth) or next(iter(p.eps.values()), 0.0)
            return (
                f"{cls}: block parameters' eps ({eps:g} at {facts.depth.knob}={facts.depth.base_depth}) ∝ "
                f"L^{fmt_exp(to_quarter(got))}, their gradients shrink like L^{fmt_exp(-alpha)}: deeper models "
                f"get damped updates; scale eps by L^{fmt_exp(want)}"
            )

        yield from grouped(self, facts, hits, message)

    @staticmethod
    def matters(facts: ModelFacts, p: ParamDepth, alpha: float) -> bool:
        """Under a profile requiring depth scaling, always; otherwise when ε would reach a share of the
        hidden gradients once the model is DEEPER times deeper (unknown gradients: not judged)."""
        if judged_table(facts).required:
            return True
        grad = facts.optimizer.hidden_grad_rms if facts.optimizer else None
        eps = max(p.eps.values(), default=0.0)
        return grad is not None and eps > EPS_SHARE * grad * DEEPER**-alpha
