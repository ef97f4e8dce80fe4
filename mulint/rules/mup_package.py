"""MU4xx: misuse of the mup package that silently leaves a model outside µP."""

from __future__ import annotations

from mulint import edits
from mulint.facts import ModelFacts, SourceLoc
from mulint.findings import Fix
from mulint.profiles import ROLES
from mulint.rules.base import Rule, edit_site
from mulint.rules.init import effective_uses, too_large


class MissingBaseShapes(Rule):
    code = "MU401"
    name = "mup-missing-set-base-shapes"
    summary = "mup layers used without set_base_shapes: the model has no base shapes"

    def check(self, facts):
        for m in facts.mup_modules:
            if not m.base_shapes:
                yield self.finding(
                    facts,
                    m.loc,
                    (
                        f"{m.cls} `{m.name}` is used but set_base_shapes(model, base, delta=...) was never called "
                        f"on the model; call it before building the optimizer"
                    ),
                )


class InitAfterBaseShapes(Rule):
    code = "MU402"
    name = "init-after-set-base-shapes"
    summary = "parameters re-initialised outside mup.init after set_base_shapes, undoing µP's rescaling"

    def check(self, facts):
        groups: dict[tuple, tuple] = {}
        for role in ROLES:
            for p, _use, eff in effective_uses(facts, role, late=True):
                if too_large(facts, role, eff):
                    loc = p.late_init_at[-1]
                    names = groups.setdefault((loc.path, loc.line), (loc, []))[1]
                    names.append(p.name) if p.name not in names else None
        for loc, names in groups.values():
            yield self.finding(
                facts,
                loc,
                (
                    "re-initialises parameters after set_base_shapes without mup.init, undoing µP's width "
                    "scaling; use mup.init.normal_/uniform_ or initialise before set_base_shapes"
                ),
                names,
            )


class SharedReadoutBias(Rule):
    code = "MU403"
    name = "mushared-readout-bias"
    summary = "MuSharedReadout with the default bias=True gets a bias of the wrong shape"
    fix_safety = "safe"

    def check(self, facts):
        for m in facts.mup_modules:
            if not m.bias_ok:
                finding = self.finding(
                    facts,
                    m.loc,
                    (
                        f"{m.cls} `{m.name}` has a bias shaped like the embedding width, not the vocabulary "
                        f"(mup's default bias=True); pass bias=False"
                    ),
                )
                finding.fix = self.build_fix(facts, m.loc)
                yield finding

    def build_fix(self, facts: ModelFacts, loc: SourceLoc | None) -> Fix | None:
        """`bias=False` on the MuSharedReadout construction."""
        return (
            self.make_fix("pass bias=False", [edits.SharedReadoutBias(**edit_site(facts, loc))])
            if loc is not None
            else None
        )
