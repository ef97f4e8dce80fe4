"""The data a rule's fix needs, computed from the facts and carried in the finding (`Fix.edits`).

Each edit is a plain dict, so cached results keep it: `kind` (which fixer), `path` and `line` (where,
in the file as analysed), and what the fixer cannot read from the source: the base width (the
model's default, so the fixed model equals the old one there), the width knob, the head_dim at
base width, the exponents the rules judged. The fixers (`mulint/fix/`) turn them into code.
"""

from __future__ import annotations

import re

from mulint.facts import AttentionSite, ModelFacts, SourceLoc
from mulint.findings import Fix
from mulint.paths import display_path
from mulint.profiles import Profile
from mulint.rules.base import TOLERANCE


def pattern(name: str) -> str:
    """`transformer.h.0.attn.weight` -> `transformer.h.*.attn.weight`: the same for every layer."""
    return re.sub(r"(?<=\.)\d+(?=\.)", "*", name)


def _where(facts: ModelFacts, loc: SourceLoc) -> dict:
    return {
        "path": display_path(loc.path),
        "line": loc.line,
        "base_width": facts.base_width,
        "width_knob": facts.width_knob,
        "target": facts.target,
    }


def attention_fix(facts: ModelFacts, site: AttentionSite) -> Fix | None:
    """sqrt(head_dim at base) / head_dim: the old 1/sqrt(head_dim) at base width, 1/head_dim beyond."""
    if site.loc is None or not facts.widths:
        return None
    ref = facts.base_width if facts.base_width in facts.widths else min(facts.widths)
    base_head_dim = site.head_dim * (facts.base_width / ref) ** site.head_dim_exponent
    sqrt_form = abs(site.scale_exponent + 0.5 * site.head_dim_exponent) < 0.1
    if abs(base_head_dim - round(base_head_dim)) > 1e-6 or not (site.form == "sdpa-default" or sqrt_form):
        return None
    hd = int(round(base_head_dim))
    edit = {"kind": "attention-scale", **_where(facts, site.loc), "form": site.form, "base_head_dim": hd}
    return Fix("safe", f"scale the attention logits by sqrt({hd}) / head_dim", [edit])


def shared_readout_bias_fix(facts: ModelFacts, loc: SourceLoc | None) -> Fix | None:
    """`bias=False` on the MuSharedReadout construction."""
    if loc is None:
        return None
    return Fix("safe", "pass bias=False", [{"kind": "shared-readout-bias", **_where(facts, loc)}])


def readout_fix(facts: ModelFacts, items) -> Fix | None:
    """The logits times base_width / width, at every output use of the flagged readouts."""
    edits = []
    for p, use, eff, _ in items:
        if eff - 1 > -1 + TOLERANCE:
            return None  # an init growing with width: one multiplier does not make it µP
        if use.multiplier_exponent < -TOLERANCE:
            return None  # a width multiplier is there already (MuReadout): the init is the cause
        outputs = [u for u in p.uses if u.role == "output"]
        if any(u.loc is None for u in outputs):
            return None
        edit = {
            "kind": "readout-multiplier",
            **_where(facts, outputs[0].loc),
            "module": use.module,
            "lines": sorted({u.loc.line for u in outputs}),
            "params": [pattern(n) for n in (p.name, *p.aliases)],
        }
        if edit not in edits:
            edits.append(edit)
    return Fix("unsafe", f"multiply the logits by {facts.base_width} / width", edits) if edits else None


def init_fix(facts: ModelFacts, items, loc: SourceLoc | None) -> Fix | None:
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
        if at and (at.path, at.line) == (loc.path, loc.line) and p.name not in flagged and p.init_exponent is not None:
            exclude.append(min((p.name, *p.aliases), key=lambda n: (sum(c.isdigit() for c in n), len(n))))
    edit = {"kind": "init-std", **_where(facts, loc), "power": power, "exclude": exclude}
    return Fix("unsafe", f"multiply the init std by ({facts.base_width} / width) ** {power:g}", [edit])


def optimizer_fix(facts: ModelFacts, family: str, profile: Profile, role: str) -> Fix | None:
    """Per-role learning rates: every parameter's uses, multipliers and current lr exponent. One fix
    rewrites the optimizer for all roles; `role` says which of them this finding is about. Each use
    aims at the point of the profile's accepted range nearest to where it is (inside: unchanged)."""
    opt = facts.optimizer
    if opt is None or opt.loc is None:
        return None
    k = 2 if family == "sgd" else 1
    params: list[dict] = []
    for p in facts.params:
        if p.lr_exponent is None or p.role_source != "use":
            continue
        uses = []
        for u in p.uses:
            accepted = profile.target("update", u.role, family)
            if accepted is not None:
                current = k * u.multiplier_exponent + p.lr_exponent
                uses.append(
                    {
                        "role": u.role,
                        "multiplier": round(u.multiplier_exponent, 3),
                        "k": k,
                        "target": round(min(max(current, accepted[0]), accepted[1]), 3),
                    }
                )
        entry = {
            "names": [pattern(n) for n in (p.name, *p.aliases)],
            "lr_exponent": round(p.lr_exponent, 3),
            "uses": [dict(t) for t in {tuple(sorted(u.items())) for u in uses}],
        }
        entry["uses"].sort(key=lambda u: (u["role"], u["multiplier"]))
        if uses and entry not in params:
            params.append(entry)
    edit = {
        "kind": "optimizer-lr",
        **_where(facts, opt.loc),
        "family": family,
        "cls": opt.cls,
        "role": role,
        "params": params,
    }
    scaled = "hidden weights" if family == "adam" else "each role"
    return Fix("unsafe", f"give {scaled} their µP learning rate (× width ratio) in {opt.cls}'s param groups", [edit])
