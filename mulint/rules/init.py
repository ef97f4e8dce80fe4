"""Init rules: the effective init exponent a+b of each use, judged against its role (MU101-MU104)."""

from __future__ import annotations

from typing import Iterator

from mulint.facts import ModelFacts, ParamFacts, ParamUse, SourceLoc
from mulint.findings import Finding
from mulint.rules import fixes
from mulint.rules.base import TOLERANCE, Rule, fmt_exp

# Target exponent of the effective init (a·W entries) per role, in powers of width (MUP_REFERENCE §2).
TARGETS = {"input": 0.0, "vector": 0.0, "hidden": -0.5, "output": -1.0}


def effective_uses(facts: ModelFacts, role: str, *, late: bool = False):
    """(param, use, effective exponent) for every traced use in ``role`` with a non-zero init.

    Parameters re-initialised after mup's set_base_shapes are MU402's (``late=True``), not these rules'.
    """
    for p in facts.params:
        if p.role_source != "use" or p.init_exponent is None or bool(p.late_init_at) != late:
            continue  # zero init is allowed for every role
        for use in p.uses:
            if use.role == role:
                yield p, use, p.init_exponent + use.multiplier_exponent


def violates(role: str, eff: float) -> bool:
    """Whether an effective init exponent breaks µP for the role (in the blow-up direction)."""
    if role in ("input", "vector"):
        return eff > TARGETS[role] + TOLERANCE
    return role in TARGETS and eff > TARGETS[role] + TOLERANCE


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

    def check(self, facts):
        hits = [h for h in effective_uses(facts, "hidden") if h[2] > TARGETS["hidden"] + TOLERANCE]
        yield from _grouped(self, facts, hits, lambda p, u, e: (
            f"hidden weight {_describe(p, u, e)}; µP needs std ∝ fan_in^-½ (width^-0.50)"), _init_site,
            lambda items, loc: fixes.init_fix(facts, [(p, u, e) for p, u, e, _ in items], loc))


class ReadoutInitTooLarge(Rule):
    code = "MU102"
    name = "readout-init-too-large"
    summary = "output weight's effective init larger than 1/fan_in: an SP readout"

    def check(self, facts):
        hits = [h for h in effective_uses(facts, "output") if h[2] > TARGETS["output"] + TOLERANCE]

        def message(p, u, e):
            if "input" in p.roles and u.multiplier_exponent < -TOLERANCE:
                # MuSharedReadout's 1/width_mult is there: the shared weight's init grows (MU103).
                return (f"tied embedding/readout {_describe(p, u, e)}; as a readout µP needs width^-1: the "
                        f"logits' multiplier is there, but the shared weight's init grows with width")
            if "input" in p.roles:
                return (f"tied embedding/readout {_describe(p, u, e)}; as a readout µP needs width^-1: "
                        f"multiply the logits by base_width / width")
            return f"readout {_describe(p, u, e)}; µP needs width^-1 (std ∝ 1/fan_in, a 1/width multiplier, or zero init)"

        # A tied readout is fixed where the logits are computed; an untied one where it is initialised.
        yield from _grouped(self, facts, hits, message,
                            lambda p, u: (u.loc or _init_site(p, u)) if "input" in p.roles else _init_site(p, u),
                            lambda items, loc: fixes.readout_fix(facts, items))


class InputInitScaling(Rule):
    code = "MU103"
    name = "input-init-scales-with-width"
    summary = "input weight whose effective init changes with width, or a vector whose init grows"

    def check(self, facts):
        grow = [h for role in ("input", "vector") for h in effective_uses(facts, role) if h[2] > TOLERANCE]
        shrink = [h for h in effective_uses(facts, "input") if h[2] < -TOLERANCE]
        yield from _grouped(self, facts, grow, lambda p, u, e: (
            f"{u.role} parameter {_describe(p, u, e)} grows with width; µP keeps it constant (width^0)"), _init_site)
        for f in _grouped(self, facts, shrink, lambda p, u, e: (
                f"input weight {_describe(p, u, e)} shrinks with width; µP keeps it constant (width^0), "
                f"or the signal fades in wide models"), _init_site):
            f.severity = "warning"
            yield f


class HiddenInitTooSmall(Rule):
    code = "MU104"
    name = "hidden-init-too-small"
    severity = "warning"
    summary = "hidden weight's effective init decays faster than fan_in^-½: wide models start starved"

    def check(self, facts):
        hits = [h for h in effective_uses(facts, "hidden") if h[2] < TARGETS["hidden"] - TOLERANCE]
        yield from _grouped(self, facts, hits, lambda p, u, e: (
            f"hidden weight {_describe(p, u, e)} shrinks faster than µP's fan_in^-½ (width^-0.50)"), _init_site)
