"""Optimizer rules: the effective update exponent of each use, judged against its role (MU301,
MU302), and AdamW's lr·wd (MU304) and Adam's eps (MU305)."""

from __future__ import annotations

from mulint.edits import OptimizerLr, ParamLr, UseTarget
from mulint.exponents import TOLERANCE, fit_exponent, fmt_exp, to_quarter
from mulint.facts import ModelFacts
from mulint.findings import Fix
from mulint.paths import layer_pattern
from mulint.profiles import Profile, accepts, load_profile
from mulint.rules.base import Rule, edit_site


def update_exponent(family: str, multiplier_exponent: float, lr_exponent: float) -> float:
    return (2 if family == "sgd" else 1) * multiplier_exponent + lr_exponent


def family_of(p, opt) -> str:
    """The family of the optimizer that steps ``p`` (several optimizers may share a model)."""
    return p.optimizer_family or opt.family


def _mismatches(facts, family):
    """(role, effective, expected, lr exponent, param) for every use whose update scales wrongly; the
    accepted exponents come from the facts' profile (u-µP accepts an embedding lr ∝ width^-½)."""
    profile = load_profile(facts.profile)
    for p in facts.params:
        if p.lr_exponent is None or p.role_source != "use" or family_of(p, facts.optimizer) != family:
            continue
        for use in p.uses:
            accepted = profile.target("update", use.role, family)
            if accepted is None:
                continue
            eff = update_exponent(family, use.multiplier_exponent, p.lr_exponent)
            if accepts(accepted, eff, TOLERANCE):
                nearest = min(max(eff, accepted[0]), accepted[1])
                yield use.role, to_quarter(eff), nearest, p.lr_exponent, p


def _lr_words(p, lr_exp: float) -> str:
    """The lr and how it was read ("scheduler base lr (LambdaLR)", "lr_scale applied by train.py:57")."""
    if p.lr_source:
        return f"lr ∝ width^{fmt_exp(lr_exp)}: {p.lr_source}"
    scaled = (
        f", param_group['lr'] × param_group['{p.lr_scale_key}'] as the training loop applies it"
        if p.lr_scale_key
        else ""
    )
    return f"lr ∝ width^{fmt_exp(lr_exp)}{scaled}"


def decay_product(p) -> dict[int, float]:
    """width -> lr·weight_decay, the per-step shrink factor of decoupled (AdamW) decay; empty when some
    width has no decay."""
    if not p.lr or not p.weight_decay or not all(p.weight_decay.values()):
        return {}
    return {w: p.lr[w] * p.weight_decay[w] for w in p.lr if w in p.weight_decay}


def decay_exponent(p) -> float | None:
    """How lr·weight_decay scales with width (MU304 wants 0); None without decay."""
    product = decay_product(p)
    return fit_exponent(product) if product else None


class _UpdateRule(Rule):
    family: str
    trains_only = True  # a learning rate only matters where gradients flow
    fix_safety = "unsafe"

    def check(self, facts):
        opt = facts.optimizer
        if opt is None or not load_profile(facts.profile).judged_exactly(self.family):
            return  # the profile judges this family by its measured update (MU311-MU313) instead
        groups: dict[tuple, list] = {}
        for role, eff, expected, lr_exp, p in _mismatches(facts, self.family):
            key = (role, eff, expected, p.optimizer or opt.cls, p.optimizer_at or opt.loc, p.lr_scale_key)
            groups.setdefault(key, []).append((p, lr_exp))
        for (role, eff, expected, cls, loc, scale_key), items in groups.items():
            p, lr_exp = items[0]
            why = "too large: it blows up" if eff > expected else "too small: it stops learning"
            finding = self.finding(
                facts,
                loc,
                (
                    f"{cls}: {role} parameters get updates ∝ width^{fmt_exp(eff)} ({_lr_words(p, lr_exp)}), "
                    f"µP needs width^{fmt_exp(expected)} ({why} as width grows)"
                ),
                [q.name for q, _ in items],
            )
            # The fixer rewrites one optimizer's 'lr' entries: not a setup of several, nor a scale key.
            if opt.family == self.family and scale_key is None:
                finding.fix = self.build_fix(facts, load_profile(facts.profile), role)
            yield finding

    def build_fix(self, facts: ModelFacts, profile: Profile, role: str) -> Fix | None:
        """Per-role learning rates: every parameter's uses, multipliers and current lr exponent. One fix
        rewrites the optimizer for all roles; `role` says which of them this finding is about. Each use
        aims at the point of the profile's accepted range nearest to where it is (inside: unchanged)."""
        opt = facts.optimizer
        if opt is None or opt.loc is None:
            return None
        k = 2 if self.family == "sgd" else 1
        params: list[ParamLr] = []
        for p in facts.params:
            if p.lr_exponent is None or p.role_source != "use":
                continue
            uses = set()
            for u in p.uses:
                accepted = profile.target("update", u.role, self.family)
                if accepted is not None:
                    current = k * u.multiplier_exponent + p.lr_exponent
                    target = round(min(max(current, accepted[0]), accepted[1]), 3)
                    uses.add(UseTarget(k=k, multiplier=round(u.multiplier_exponent, 3), role=u.role, target=target))
            entry = ParamLr(
                names=tuple(layer_pattern(n) for n in (p.name, *p.aliases)),
                lr_exponent=round(p.lr_exponent, 3),
                uses=tuple(sorted(uses, key=lambda u: (u.role, u.multiplier))),
            )
            if uses and entry not in params:
                params.append(entry)
        edit = OptimizerLr(
            **edit_site(facts, opt.loc), family=self.family, cls=opt.cls, role=role, params=tuple(params)
        )
        scaled = "hidden weights" if self.family == "adam" else "each role"
        return self.make_fix(
            f"give {scaled} their µP learning rate (× width ratio) in {opt.cls}'s param groups", [edit]
        )


class AdamUpdateScaling(_UpdateRule):
    code = "MU301"
    name = "adam-lr-scaling"
    summary = "Adam family: a parameter's effective update exponent is wrong for its role (one lr for all, a scaled embedding lr, ...)"
    family = "adam"


class SgdUpdateScaling(_UpdateRule):
    code = "MU302"
    name = "sgd-lr-scaling"
    summary = "SGD: a parameter's effective update exponent is wrong for its role"
    family = "sgd"


class DecoupledDecayScaling(Rule):
    code = "MU304"
    name = "adamw-decay-scaling"
    severity = "warning"
    summary = "AdamW decays by lr·wd; that product changes with width"
    trains_only = True

    def check(self, facts):
        opt = facts.optimizer
        if opt is None or "AdamW" not in opt.cls:
            return
        hits = []
        for p in facts.params:
            product = decay_product(p)
            if not product or "AdamW" not in (p.optimizer or opt.cls):
                continue  # no decay, or decayed by another optimizer of the setup
            exp = decay_exponent(p)
            if exp is not None and abs(exp) > TOLERANCE:
                hits.append((p, exp))
        if hits:
            exp = max((e for _, e in hits), key=abs)
            at = next((p.optimizer_at for p, _ in hits if p.optimizer_at), opt.loc)
            yield self.finding(
                facts,
                at,
                (
                    f"{hits[0][0].optimizer or opt.cls} decays by lr·weight_decay ∝ width^{fmt_exp(exp)}; keep it constant across widths "
                    f"(scale weight_decay by width/base_width where lr is scaled by base_width/width)"
                ),
                [p.name for p, _ in hits],
            )


class AdamEpsTooLarge(Rule):
    code = "MU305"
    name = "adam-eps-too-large"
    severity = "warning"
    summary = "Adam's eps is not negligible next to hidden weights' gradients at width"

    def check(self, facts):
        opt = facts.optimizer
        if opt is None or opt.family not in ("adam", "mixed") or not opt.eps or not opt.hidden_grad_rms:
            return
        if opt.eps > 0.1 * opt.hidden_grad_rms:
            yield self.finding(
                facts,
                opt.loc,
                (
                    f"{opt.cls} eps={opt.eps:g} is not negligible next to hidden weights' gradient entries "
                    f"(rms {opt.hidden_grad_rms:.2g} at width {max(facts.numeric_widths)}, shrinking like 1/width): "
                    f"wide models get damped updates; use eps ≤ {opt.hidden_grad_rms * 0.01:.0e}"
                ),
            )


class ZeroLearningRate(Rule):
    code = "MU306"
    name = "zero-learning-rate"
    summary = "a trainable parameter's param group has a learning rate of exactly 0: it never trains"
    trains_only = True

    def check(self, facts):
        opt = facts.optimizer
        if opt is None:
            return
        groups: dict[tuple, list[str]] = {}
        for p in facts.params:
            zero = tuple(sorted(w for w, lr in p.lr.items() if lr == 0))
            if zero:
                key = (zero, len(zero) == len(p.lr), p.optimizer or opt.cls, p.optimizer_at or opt.loc)
                groups.setdefault(key, []).append(p.name)
        for (zero, everywhere, cls, loc), names in groups.items():
            widths = ", ".join(map(str, zero))
            where = f"at width {widths}" + (" (every width analysed)" if everywhere else ", not at the others")
            yield self.finding(
                facts,
                loc,
                (
                    f"{cls}: learning rate 0 {where}: these parameters never train (an integer division "
                    f"like base_width // width is 0 once width > base_width); freeze them with "
                    f"requires_grad_(False) if that is meant"
                ),
                names,
            )
