"""How a model scales with its depth, read from its depth facts: the effective branch exponent α̂ of each
residual branch, whether the model shows any depth scaling at all, and the exponent of L the profile
expects of each parameter's learning rate and ε.

Shared by the analysis (the note a model without depth scaling gets under the default profile) and
the depth rules (MU501-MU507), so that both judge the same α̂. Plain functions of facts: no torch.

Effective exponents (MUP_REFERENCE §8): a branch's factor L^-α counts the same whether it is a
multiplier in forward, a learnable gate initialised ∝ L^-α, or sits in the init of one of the
branch's weights (the "carrier"), which then needs the same factor on its own learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass

from mulint.exponents import TOLERANCE
from mulint.facts import DepthFacts, ModelFacts, ParamDepth, ResidualBranch
from mulint.profiles import DepthTable, load_profile

NO_SCALING_NOTE = (
    "depth: branches are not scaled with depth (α = 0); hyperparameters tuned at one depth will not "
    "transfer to another; --profile completep or depth-mup requires it"
)
GPT2_INIT_NOTE = (
    "depth: block weights are initialised ∝ 1/sqrt(L) (GPT-2 style) without a branch multiplier or its "
    "learning-rate rule; --profile completep or depth-mup judges it"
)
POST_NORM_NOTE = "depth: post-LN blocks (the residual sum is normalised): the depth rules do not cover them"


@dataclass
class BranchScaling:
    """One residual branch's depth scaling as the rules judge it."""

    branch: ResidualBranch
    alpha: float  # effective: the branch output at init ∝ L^-alpha
    forward: float  # of the factor at the add (a multiplier in forward, a gate)
    carrier: ParamDepth | None  # a branch weight whose init shrinks with depth, if any
    twice: bool  # a factor at the add and one in a weight's init: depth counted twice


def branch_params(depth: DepthFacts, branch: ResidualBranch) -> list[ParamDepth]:
    """The parameters of ``branch`` among those measured at every depth."""
    return [p for p in depth.params if p.branch == branch.name or p.name in branch.params]


def init_factor(p: ParamDepth) -> float:
    """The depth factor a parameter's own init carries, as a positive exponent: init ∝ L^-factor (0 if none)."""
    return -p.init_exponent if p.init_exponent is not None and p.init_exponent < -TOLERANCE else 0.0


def scaling(depth: DepthFacts, branch: ResidualBranch) -> BranchScaling:
    forward = branch.alpha or 0.0
    carriers = [p for p in branch_params(depth, branch) if init_factor(p) > 0]
    carrier = max(carriers, key=init_factor) if carriers else None
    if carrier is None:
        return BranchScaling(branch, forward, forward, None, False)
    gate = branch.source == "learned" and abs(init_factor(carrier) - forward) <= TOLERANCE
    if gate:  # the gate's own init is the branch's factor
        return BranchScaling(branch, forward, forward, carrier, False)
    if abs(forward) > TOLERANCE and not weight_form(carrier, forward):
        return BranchScaling(branch, forward, forward, carrier, True)
    if abs(forward) > TOLERANCE:  # the structure pass folded the carrier's factor into the branch's
        return BranchScaling(branch, forward, forward, carrier, False)
    return BranchScaling(branch, init_factor(carrier), forward, carrier, False)


def weight_form(carrier: ParamDepth, forward: float) -> bool:
    """The branch's factor read at the add equals the factor its carrier's init and lr both take: the
    factor sits in the weight (under Adam the same model), read once, not a multiplier on top of it."""
    lr = carrier.lr_exponent
    return (
        lr is not None
        and abs(init_factor(carrier) - forward) <= TOLERANCE
        and abs((carrier.init_exponent or 0.0) - lr) <= TOLERANCE
    )


def covered(depth: DepthFacts, kind: str = "main") -> list[ResidualBranch]:
    """The branches of ``kind`` the depth rules judge: not those of post-LN blocks."""
    return [b for b in depth.branches if b.kind == kind and not b.post_norm]


def model_alpha(depth: DepthFacts) -> float | None:
    """α̂ of the model: the median effective α of its main branches; None without any."""
    alphas = sorted(scaling(depth, b).alpha for b in covered(depth))
    return alphas[len(alphas) // 2] if alphas else None


def shows_intent(depth: DepthFacts) -> bool:
    """Whether the model scales anything with depth on purpose: a branch factor (stored, derived, a
    gate, or misplaced on the skip path or before a norm), or a depth factor on a block parameter's
    learning rate or ε. An init ∝ 1/sqrt(L) alone (GPT-2's) is not."""
    if any(
        b.source != "none" or abs(b.alpha or 0.0) > TOLERANCE or b.cancelled_by_norm or abs(b.skip_exponent) > TOLERANCE
        for b in depth.branches
    ):
        return True
    return any(
        p.block and e is not None and abs(e) > TOLERANCE for p in depth.params for e in (p.lr_exponent, p.eps_exponent)
    )


def table(facts: ModelFacts) -> DepthTable | None:
    return load_profile(facts.profile).depth


def judged_table(facts: ModelFacts) -> DepthTable:
    """The profile's depth table, for a model ``judged`` says the rules judge (so there is one)."""
    tab = table(facts)
    assert tab is not None, "judged() is False without a depth table"
    return tab


def judged(facts: ModelFacts) -> bool:
    """Whether the depth rules judge this model: a depth knob, two depths, main branches they cover,
    and depth scaling shown (or a profile that requires it)."""
    depth, tab = facts.depth, table(facts)
    if depth is None or tab is None or len(depth.depths) < 2 or not covered(depth):
        return False
    return tab.required or shows_intent(depth)


def depth_notes(depth: DepthFacts, profile: str) -> list[str]:
    """The notes a model's depth facts earn under ``profile``: post-LN blocks are not covered; without
    depth scaling (and a profile that does not require it), one note instead of findings."""
    notes = []
    if any(b.post_norm for b in depth.branches):
        notes.append(POST_NORM_NOTE)
    tab = load_profile(profile).depth
    if tab is None or tab.required or not covered(depth) or shows_intent(depth):
        return notes
    if any(scaling(depth, b).carrier is not None for b in covered(depth)):
        notes.append(GPT2_INIT_NOTE)
    notes.append(NO_SCALING_NOTE)
    return notes


def family(facts: ModelFacts, name: str) -> str:
    """The optimizer family that steps the parameter ``name`` (several optimizers may share a model)."""
    opt = facts.optimizer
    try:
        own = facts.param(name).optimizer_family
    except KeyError:
        own = ""
    return own or (opt.family if opt else "")


def carried(p: ParamDepth, s: BranchScaling | None) -> float:
    """The part of its branch's factor ``p``'s init carries (a carrier weight, a gate); 0 where that
    factor is counted twice (MU503 says so: the lr is judged as if the init had none)."""
    return 0.0 if s is None or s.twice or not p.block else init_factor(p)


def expected_lr(tab: DepthTable, p: ParamDepth, fam: str, alpha: float, carries: float = 0.0) -> float | None:
    """The exponent of L the profile expects of ``p``'s lr on a model (or branch) scaling as L^-α; a
    weight carrying ``carries`` of the branch's factor in its init takes it on its lr too (Adam: once,
    SGD: twice, as a forward multiplier's exponent counts in the abc view)."""
    base = tab.expected("block" if p.block else "non-block", fam, "lr", alpha)
    return None if base is None else base - (2 if fam == "sgd" else 1) * carries
