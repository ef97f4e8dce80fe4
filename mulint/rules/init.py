"""Init rules: the effective init exponent a+b of each use, judged against its role (MU101-MU104)."""

from __future__ import annotations

from collections.abc import Iterator

from mulint.edits import InitStd, ReadoutMultiplier
from mulint.exponents import TOLERANCE, fmt_exp, to_quarter
from mulint.facts import ModelFacts, ParamFacts, ParamUse, SourceLoc
from mulint.findings import Finding, Fix
from mulint.paths import layer_pattern
from mulint.profiles import Profile, Range, accepts, load_profile
from mulint.rules.base import Rule, edit_site


def init_range(facts: ModelFacts, role: str) -> Range | None:
    """The effective init exponents (of a·W's entries) the facts' profile accepts for ``role``."""
    return load_profile(facts.profile).init.get(role)


def too_large(facts: ModelFacts, role: str, eff: float) -> bool:
    accepted = init_range(facts, role)
    return accepted is not None and eff > accepted[1] + TOLERANCE


def too_small(facts: ModelFacts, role: str, eff: float) -> bool:
    accepted = init_range(facts, role)
    return accepted is not None and eff < accepted[0] - TOLERANCE


def needs(facts: ModelFacts, role: str, *, low: bool = False) -> str:
    """What the profile asks of ``role``'s init, in words: "µP needs std ∝ fan_in^-½ (width^-0.50)"."""
    profile = load_profile(facts.profile)
    accepted = profile.init[role]
    value = accepted[0] if low else accepted[1]
    words = {0.0: "a constant std", -0.5: "std ∝ fan_in^-½", -1.0: "std ∝ 1/fan_in"}.get(value)
    span = (
        f"width^{fmt_exp(value)}"
        if accepted[0] == accepted[1]
        else (f"width^{fmt_exp(accepted[0])} to width^{fmt_exp(accepted[1])}")
    )
    return f"{_who(profile)} needs {words} ({span})" if words else f"{_who(profile)} needs {span}"


def _keeps(facts: ModelFacts, role: str, *, low: bool = False) -> str:
    profile = load_profile(facts.profile)
    value = profile.init[role][0 if low else 1]
    if value == 0.0:
        return f"{_who(profile)} keeps it constant (width^0)"
    return f"{_who(profile)} needs width^{_short(value)}"


def _short(value: float) -> str:
    return f"{value:g}" if value != 0 else "0"


def _who(profile: Profile) -> str:
    return {"mup": "µP", "u-mup": "u-µP"}.get(profile.name, f"the {profile.name} profile")


# The directions in which each role's effective init is flagged (MU101-MU104): +1 too large, -1 too
# small. A readout or a vector smaller than the profile's exponent is no µP violation (zero init is allowed).
FLAGGED = {"hidden": (1, -1), "output": (1,), "input": (1, -1), "vector": (1,)}


def effective_init_exponent(p: ParamFacts, use: ParamUse) -> float | None:
    """a+b of this use: the init exponent of W plus the multiplier's on its path; None for a zero init."""
    return None if p.init_exponent is None else p.init_exponent + use.multiplier_exponent


def effective_uses(facts: ModelFacts, role: str, *, late: bool = False):
    """(param, use, effective exponent) for every traced use in ``role`` with a non-zero init.

    Parameters re-initialised after mup's set_base_shapes are MU402's (``late=True``), not these rules'.
    """
    for p in facts.params:
        if p.role_source != "use" or p.init_exponent is None or bool(p.late_init_at) != late:
            continue  # zero init is allowed for every role
        for use in p.uses:
            if use.role == role:
                yield p, use, effective_init_exponent(p, use)


def _describe(p: ParamFacts, use: ParamUse, eff: float) -> str:
    width = min(p.init_rms) if p.init_rms else None
    where = f"rms {p.init_rms[width]:.3g} at width {width}" if width else ""
    mult = f", multiplier ∝ width^{fmt_exp(use.multiplier_exponent)}" if abs(use.multiplier_exponent) > 0.01 else ""
    return f"init ∝ width^{fmt_exp(eff)} ({where}{mult})"


def _grouped(rule: Rule, facts: ModelFacts, hits, message, loc_of, fix_of=None) -> Iterator[Finding]:
    """One finding per source line, naming every parameter it concerns; `fix_of(items, loc)` its fix."""
    groups: dict[tuple, list] = {}
    for p, use, eff in hits:
        loc = loc_of(p, use)
        key = (loc.path, loc.line) if loc else ("", 0)
        groups.setdefault(key, []).append((p, use, eff, loc))
    for items in groups.values():
        p, use, eff, loc = max(items, key=lambda t: t[2])
        finding = rule.finding(facts, loc, message(p, use, eff), [i[0].name for i in items])
        finding.fix = fix_of(items, loc) if fix_of else None
        yield finding


def _init_site(p: ParamFacts, use: ParamUse) -> SourceLoc | None:
    return p.init_at or p.created_at


class HiddenInitTooLarge(Rule):
    code = "MU101"
    name = "hidden-init-too-large"
    summary = "hidden weight's effective init decays slower than fan_in^-½ (e.g. a constant std)"
    fix_safety = "unsafe"

    def check(self, facts):
        hits = [h for h in effective_uses(facts, "hidden") if too_large(facts, "hidden", h[2])]
        yield from _grouped(
            self,
            facts,
            hits,
            lambda p, u, e: f"hidden weight {_describe(p, u, e)}; {needs(facts, 'hidden')}",
            _init_site,
            lambda items, loc: self.build_fix(facts, [(p, u, e) for p, u, e, _ in items], loc),
        )

    def build_fix(self, facts: ModelFacts, items, loc: SourceLoc | None) -> Fix | None:
        """The init std times (base_width / width) ** power, guarded when the line also inits other weights."""
        if loc is None:
            return None
        effs = [eff for _, _, eff in items]
        power = round((max(effs) + 0.5) * 4) / 4
        if max(effs) - min(effs) > TOLERANCE or power <= 0:
            return None
        flagged = {p.name for p, _, _ in items}
        exclude = []
        for p in facts.params:
            at = p.init_at or p.created_at
            if (
                at
                and (at.path, at.line) == (loc.path, loc.line)
                and p.name not in flagged
                and p.init_exponent is not None
            ):
                exclude.append(min((p.name, *p.aliases), key=lambda n: (sum(c.isdigit() for c in n), len(n))))
        edit = InitStd(**edit_site(facts, loc), power=power, exclude=tuple(exclude))
        return self.make_fix(f"multiply the init std by ({facts.base_width} / width) ** {power:g}", [edit])


class ReadoutInitTooLarge(Rule):
    code = "MU102"
    name = "readout-init-too-large"
    summary = "output weight's effective init larger than 1/fan_in: an SP readout, or a tied head without a 1/width multiplier"
    fix_safety = "unsafe"

    def check(self, facts):
        hits = [h for h in effective_uses(facts, "output") if too_large(facts, "output", h[2])]
        profile = load_profile(facts.profile)
        wanted = f"{_who(profile)} needs width^{_short(profile.init['output'][1])}"

        def message(p, u, e):
            if "input" in p.roles and u.multiplier_exponent < -TOLERANCE:
                # MuSharedReadout's 1/width_mult is there: the shared weight's init grows (MU103).
                return (
                    f"tied embedding/readout {_describe(p, u, e)}; as a readout {wanted}: the "
                    f"logits' multiplier is there, but the shared weight's init grows with width"
                )
            if "input" in p.roles:
                return (
                    f"tied embedding/readout {_describe(p, u, e)}; as a readout {wanted}: "
                    f"multiply the logits by base_width / width"
                )
            return f"readout {_describe(p, u, e)}; {wanted} (std ∝ 1/fan_in, a 1/width multiplier, or zero init)"

        # A tied readout is fixed where the logits are computed; an untied one where it is initialised.
        yield from _grouped(
            self,
            facts,
            hits,
            message,
            lambda p, u: (u.loc or _init_site(p, u)) if "input" in p.roles else _init_site(p, u),
            lambda items, loc: self.build_fix(facts, items),
        )

    def build_fix(self, facts: ModelFacts, items) -> Fix | None:
        """The logits times base_width / width, at every output use of the flagged readouts."""
        edits: list[ReadoutMultiplier] = []
        for p, use, eff, _ in items:
            if eff - 1 > -1 + TOLERANCE:
                return None  # an init growing with width: one multiplier does not make it µP
            if use.multiplier_exponent < -TOLERANCE:
                return None  # a width multiplier is there already (MuReadout): the init is the cause
            outputs = [u for u in p.uses if u.role == "output"]
            if any(u.loc is None for u in outputs):
                return None
            edit = ReadoutMultiplier(
                **edit_site(facts, outputs[0].loc),
                module=use.module,
                lines=tuple(sorted({u.loc.line for u in outputs})),
                params=tuple(layer_pattern(n) for n in (p.name, *p.aliases)),
            )
            if edit not in edits:
                edits.append(edit)
        return self.make_fix(f"multiply the logits by {facts.base_width} / width", edits) if edits else None


class InputInitScaling(Rule):
    code = "MU103"
    name = "input-init-scales-with-width"
    summary = "input weight whose effective init changes with width, or a vector whose init grows"
    severity_note = "warning when the init shrinks"

    def check(self, facts):
        grow = [h for role in ("input", "vector") for h in effective_uses(facts, role) if too_large(facts, role, h[2])]
        shrink = [h for h in effective_uses(facts, "input") if too_small(facts, "input", h[2])]
        yield from _grouped(
            self,
            facts,
            grow,
            lambda p, u, e: f"{u.role} parameter {_describe(p, u, e)} grows with width; {_keeps(facts, u.role)}",
            _init_site,
        )
        for f in _grouped(
            self,
            facts,
            shrink,
            lambda p, u, e: (
                f"input weight {_describe(p, u, e)} shrinks with width; {_keeps(facts, 'input', low=True)}, "
                f"or the signal fades in wide models"
            ),
            _init_site,
        ):
            f.severity = "warning"
            yield f


class HiddenInitTooSmall(Rule):
    code = "MU104"
    name = "hidden-init-too-small"
    severity = "warning"
    summary = "hidden weight's effective init decays faster than fan_in^-½: wide models start starved"

    def check(self, facts):
        hits = [h for h in effective_uses(facts, "hidden") if too_small(facts, "hidden", h[2])]
        yield from _grouped(
            self,
            facts,
            hits,
            lambda p, u, e: f"hidden weight {_describe(p, u, e)} shrinks too fast; {needs(facts, 'hidden', low=True)}",
            _init_site,
        )


class ScaleOutsideForward(Rule):
    code = "MU105"
    name = "scale-not-in-forward"
    severity = "warning"
    summary = "a weight's width scale sits in its init where the profile (u-µP) puts it in the forward op"
    profile = "u-mup"

    def check(self, facts):
        profile = load_profile(facts.profile)
        if not profile.multiplier:
            return  # µP accepts any split of the scale between init and multiplier (abc symmetry)
        hits = []
        for role in profile.multiplier:
            for p, use, eff in effective_uses(facts, role):
                if too_large(facts, role, eff) or too_small(facts, role, eff):
                    continue  # the effective init is wrong: MU101-MU104 say so, once
                accepted = profile.multiplier[role]
                if accepts(accepted, use.multiplier_exponent, TOLERANCE):
                    hits.append((p, use, eff))

        def message(p, u, e):
            wanted = profile.multiplier[u.role][1]
            return (
                f"{u.role} weight: forward multiplier ∝ width^{fmt_exp(to_quarter(u.multiplier_exponent))} and init ∝ "
                f"width^{fmt_exp(to_quarter(p.init_exponent))}; {_who(profile)} keeps the init unit (width^"
                f"{fmt_exp(to_quarter(profile.init[u.role][1] - wanted))}) and scales by width^{fmt_exp(wanted)} in "
                f"the forward op (µP holds either way)"
            )

        yield from _grouped(self, facts, hits, message, _init_site)
