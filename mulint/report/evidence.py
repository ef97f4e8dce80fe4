"""The numbers every finding is computed from, per parameter and per width: what `mulint inspect`
shows so that a verdict can be checked by hand (the init std, learning rate, weight decay and
multiplier each parameter really gets, its measured update, and the exponents fitted and expected).

Plain data read from the facts. The effective exponents, the expected ranges and the verdicts come
from the rules' own functions and the active profile, so no number is computed a second time.
"""

from __future__ import annotations

from mulint.exponents import TOLERANCE
from mulint.facts import ModelFacts, ParamFacts, ParamUse, SourceLoc
from mulint.paths import display_path
from mulint.profiles import Profile, Range, accepts, load_profile
from mulint.rules.init import FLAGGED, effective_init_exponent
from mulint.rules.optimizer import decay_exponent, decay_product, update_exponent
from mulint.rules.spectral import optimizer_of

# How an Adam-family and an SGD update scale with the multiplier a and the lr exponent c.
FORMULAS = {"adam": "a+c", "sgd": "2a+c"}


def where(loc: SourceLoc | None) -> str | None:
    return f"{display_path(loc.path)}:{loc.line}" if loc else None


def verdict(accepted: Range | None, exponent: float | None) -> str | None:
    """The rules' judgement of an exponent: within the profile's range (with the rules' tolerance) or not."""
    if accepted is None or exponent is None:
        return None
    return {0: "ok", 1: "too large", -1: "too small"}[accepts(accepted, exponent, TOLERANCE)]


def multiplier_width(facts: ModelFacts) -> int | None:
    """The width the multipliers were read at: the analysis's reference width (its default width
    when built at it, else the smallest)."""
    if not facts.widths:
        return None
    return facts.base_width if facts.base_width in facts.widths else facts.widths[0]


def model_evidence(facts: ModelFacts) -> dict:
    opt = facts.optimizer
    return {
        "profile": facts.profile,
        "branch": facts.branch,  # the branch of forward the parameters' `uses` are from, when it has several
        "widths": list(facts.numeric_widths),
        "multiplier_width": multiplier_width(facts),
        "optimizer": None
        if opt is None
        else {"factory": opt.label, "class": opt.cls, "family": opt.family, "at": where(opt.loc)},
    }


def param_evidence(facts: ModelFacts, p: ParamFacts) -> dict:
    profile = load_profile(facts.profile)
    differing = [b for b in facts.branches if p.name in b.uses and _shape_of(b.uses[p.name]) != _shape_of(p.uses)]
    # the default branch's uses are judged for learning rates when it trains, or the training one uses it alike
    trains = facts.branch_trains or not any(b.trains for b in differing)
    cls, family = optimizer_of(p, facts) if facts.optimizer else ("", "")
    return {
        "init_rms": dict(p.init_rms),
        "init_exponent": p.init_exponent,
        "init_at": where(p.init_at),
        "optimizer": cls or None,
        "optimizer_family": family or None,
        "lr": dict(p.lr),
        "lr_exponent": p.lr_exponent,
        "lr_source": p.lr_source,
        "lr_scale_key": p.lr_scale_key,
        "weight_decay": dict(p.weight_decay),
        "decay": _decay(p, cls),
        "update_step": p.update_step,
        "uses": [_use_evidence(profile, p, use, family, trains) for use in p.uses],
        # forward's other branches (the training one, with `targets`) where they use it differently:
        # learning rates are judged on the branch that trains
        "branches": [
            {
                "branch": b.description,
                "trains": b.trains,
                "uses": [_use_evidence(profile, p, use, family, b.trains) for use in b.uses[p.name]],
            }
            for b in differing
        ],
    }


def _shape_of(uses: list[ParamUse]) -> list[tuple]:
    """What a use contributes to the numbers (not its node's name, which differs between traces)."""
    return [(u.role, u.op, u.kind, u.module, u.multiplier, u.multiplier_exponent, u.update_exponent) for u in uses]


def _use_evidence(profile: Profile, p: ParamFacts, use: ParamUse, family: str, trains: bool) -> dict:
    update = _update(profile, p, use, family)
    if update and not trains:
        update["verdict"] = "not judged here: this branch does not train"
    return {
        "role": use.role,
        "module": use.module,
        "op": use.op,
        "at": where(use.loc),
        "multiplier": use.multiplier,
        "multiplier_exponent": use.multiplier_exponent,
        "multiplier_at": where(use.multiplier_at),
        "init": _init(profile, p, use),
        "update": update,
        "measured_update": _measured(profile, p, use, family),
    }


def _decay(p: ParamFacts, cls: str) -> dict | None:
    """MU304's numbers: AdamW shrinks a weight by lr·weight_decay per step, which µP keeps constant."""
    product = decay_product(p)
    if not product:
        return None
    exponent = decay_exponent(p)
    judged = verdict((0.0, 0.0), exponent) if "AdamW" in cls else f"not judged: {cls or 'the optimizer'} is not AdamW"
    return {"lr_times_weight_decay": product, "exponent": exponent, "expected": [0.0, 0.0], "verdict": judged}


def _unjudged(p: ParamFacts) -> str | None:
    if p.role_source != "use":
        return "not judged: role read from its shape, not from a use"
    return None


def _init(profile: Profile, p: ParamFacts, use: ParamUse) -> dict:
    """MU101-MU104's numbers: a+b of this use against the profile's init range."""
    accepted = profile.init.get(use.role)
    effective = effective_init_exponent(p, use)
    why = _unjudged(p) or ("not judged here: written after set_base_shapes (MU402)" if p.late_init_at else None)
    if why is None and effective is None:
        why = "zero init: allowed for every role"
    judged = why or verdict(accepted, effective)
    if (
        judged in ("too large", "too small")
        and accepted is not None
        and effective is not None  # both known: a verdict was reached
        and accepts(accepted, effective, TOLERANCE) not in FLAGGED.get(use.role, ())
    ):
        judged = "ok (smaller: allowed for its role)"
    return {"effective_exponent": effective, "expected": list(accepted) if accepted else None, "verdict": judged}


def _update(profile: Profile, p: ParamFacts, use: ParamUse, family: str) -> dict | None:
    """MU301/MU302's numbers: the effective update exponent from the lr and the multiplier, for the
    families the profile judges by its exact tables."""
    if not profile.judged_exactly(family) or p.lr_exponent is None:
        return None
    accepted = profile.target("update", use.role, family)
    effective = update_exponent(family, use.multiplier_exponent, p.lr_exponent)
    return {
        "formula": FORMULAS.get(family, "a+c"),
        "effective_exponent": effective,
        "expected": list(accepted) if accepted else None,
        "verdict": _unjudged(p) or verdict(accepted, effective),
    }


def _measured(profile: Profile, p: ParamFacts, use: ParamUse, family: str) -> dict | None:
    """MU311/MU312's numbers: the RMS→RMS norm of the update measured at each width, its exponent
    (with the multiplier) and the profile's spectral range."""
    if not use.update_norm:
        return None
    accepted = profile.spectral.get(use.role)
    why: str | None
    if profile.judged_exactly(family):
        why = f"measured, not judged: {family} is judged by its lr table"
    elif p.update_self_tuned:
        why = "measured, not judged: the optimizer sets its own step size"
    else:
        why = _unjudged(p)
    return {
        "norm": dict(use.update_norm),
        "exponent": use.update_exponent,
        "expected": list(accepted) if accepted else None,
        "verdict": why or verdict(accepted, use.update_exponent),
    }
