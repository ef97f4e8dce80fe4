"""MU95x: what the depth coordinate check (`mulint check --coord` on a model with a depth knob) measured."""

from __future__ import annotations

from mulint.profiles import load_profile
from mulint.rules.base import Rule


class _DepthCoordRule(Rule):
    status: str
    what: str
    judged_on = "coord"

    def check(self, facts):
        bad = [m for m in facts.coord_depth if m.status == self.status]
        if not bad or not self.fires(facts):
            return
        depths = ", ".join(map(str, facts.coord_depths))
        measured = "; ".join(
            f"{m.description}: slope {m.slope:+.2f} against depth, {m.expected:+g} with depth-scaled branches"
            for m in bad
        )
        yield self.finding(facts, bad[0].loc, f"depth coordinate check: {self.what}. {measured} (depths {depths})")

    def fires(self, facts) -> bool:
        return True


class DepthBlowUp(_DepthCoordRule):
    code = "MU951"
    name = "coord-depth-blow-up"
    summary = "depth coordinate check: the residual stream's change per step grows with depth"
    status = "blow-up"
    what = (
        "the blocks' updates add up faster than the depth grows: the residual stream moves further per "
        "step in deeper models (branches not scaled with depth, or a multiplier without its learning-rate rule)"
    )


class DepthCollapse(_DepthCoordRule):
    code = "MU952"
    name = "coord-depth-collapse"
    summary = "depth coordinate check: the residual stream's change per step shrinks with depth"
    status = "collapse"
    what = (
        "the residual stream moves less per step in deeper models: the blocks are scaled down twice "
        "(a depth multiplier and a learning rate shrunk for another one)"
    )


class LazyBlocks(_DepthCoordRule):
    code = "MU953"
    name = "coord-lazy-blocks"
    severity = "warning"
    summary = "depth coordinate check: blocks grow lazy (nearly linear in their update) with depth, α = ½"
    profile = "completep"
    status = "lazy"
    what = (
        "a step moves each block's weights less, relative to their size, in deeper models, the signature "
        "of α = ½: deep blocks stay near their linearisation and learn nearly linear features, where "
        "CompleteP (α = 1) keeps them learning as much at every depth"
    )

    def fires(self, facts) -> bool:
        # Under the other profiles α = ½ is correct, and the run says so in a note.
        return bool(load_profile(facts.profile).coord["depth_lazy_warning"])


class StreamGrowsAtInit(_DepthCoordRule):
    code = "MU954"
    name = "coord-depth-init-growth"
    summary = "depth coordinate check: the residual stream at init grows with depth"
    status = "growing"
    what = (
        "the final residual stream at init grows with depth: unscaled branches add up (SP pre-LN ≈ L^½), "
        "so deeper models start from larger activations"
    )
