"""MU201: attention logits scaled by 1/sqrt(head_dim) while head_dim grows with width; and the converse, a
scale that shrinks faster than 1/head_dim (by the model width while head_dim is fixed), which makes the
logits vanish and attention uniform in wide models."""

from __future__ import annotations

from mulint.edits import AttentionScale
from mulint.exponents import TOLERANCE, fmt_exp
from mulint.facts import AttentionSite, ModelFacts
from mulint.findings import Fix
from mulint.rules.base import Rule, edit_site


class SqrtAttentionScale(Rule):
    code = "MU201"
    name = "sqrt-attention-scale"
    summary = "attention logits scaled by 1/sqrt(head_dim) while head_dim grows with width"
    fix_safety = "safe"

    def check(self, facts):
        by_line: dict[tuple, list] = {}
        for site in facts.attention:
            if site.form == "tensor":
                continue  # scaled by a tensor the meta trace cannot read: not judged
            grows = site.head_dim_exponent > TOLERANCE
            too_large = grows and site.scale_exponent > -site.head_dim_exponent + TOLERANCE
            if too_large or site.scale_exponent < -site.head_dim_exponent - TOLERANCE:
                key = (site.loc.path, site.loc.line) if site.loc else ("", 0)
                by_line.setdefault(key, []).append(site)
        for sites in by_line.values():
            site = sites[0]
            if site.scale_exponent < -site.head_dim_exponent - TOLERANCE:
                yield self._vanishing(facts, site, sites)
                continue
            how = {
                "sdpa-default": "scaled_dot_product_attention's default scale 1/sqrt(head_dim)",
                "sdpa": f"scale={site.scale:.4g}",
                "explicit": f"a scale of {site.scale:.4g}",
            }[site.form]
            layers = sum(s.count for s in sites)
            count = f" ({layers} attention layers)" if layers > 1 else ""
            # T5 and relatives leave the logits unscaled: further from µP than SP's 1/sqrt(head_dim).
            unscaled = ", not scaled by head_dim at all" if abs(site.scale_exponent) <= TOLERANCE else ""
            finding = self.finding(
                facts,
                site.loc,
                (
                    f"attention logits use {how} (∝ width^{fmt_exp(site.scale_exponent)}{unscaled}) while head_dim grows "
                    f"({site.head_dim} at width {min(facts.widths)}){count}; µP needs 1/head_dim"
                ),
            )
            finding.fix = self.build_fix(facts, site)
            yield finding

    def _vanishing(self, facts: ModelFacts, site: AttentionSite, sites: list[AttentionSite]):
        """A scale below 1/head_dim (`/ self.d` with d the model width, heads growing): no fix is offered,
        since the head_dim the user meant is not known."""
        layers = sum(s.count for s in sites)
        count = f" ({layers} attention layers)" if layers > 1 else ""
        head_dim = (
            f"head_dim is fixed ({site.head_dim})"
            if abs(site.head_dim_exponent) <= TOLERANCE
            else f"head_dim ∝ width^{fmt_exp(site.head_dim_exponent)} ({site.head_dim} at width {min(facts.widths)})"
        )
        return self.finding(
            facts,
            site.loc,
            (
                f"attention logits are scaled by {site.scale:.4g} ∝ width^{fmt_exp(site.scale_exponent)} while "
                f"{head_dim}{count}: they vanish and attention turns uniform as width grows; µP needs 1/head_dim"
            ),
        )

    def build_fix(self, facts: ModelFacts, site: AttentionSite) -> Fix | None:
        """sqrt(head_dim at base) / head_dim: the old 1/sqrt(head_dim) at base width, 1/head_dim beyond."""
        if site.loc is None or not facts.widths:
            return None
        ref = facts.base_width if facts.base_width in facts.widths else min(facts.widths)
        base_head_dim = site.head_dim * (facts.base_width / ref) ** site.head_dim_exponent
        sqrt_form = abs(site.scale_exponent + 0.5 * site.head_dim_exponent) < 0.1
        if abs(base_head_dim - round(base_head_dim)) > 1e-6 or not (site.form == "sdpa-default" or sqrt_form):
            return None
        hd = int(round(base_head_dim))
        edit = AttentionScale(**edit_site(facts, site.loc), form=site.form, base_head_dim=hd)
        return self.make_fix(f"scale the attention logits by sqrt({hd}) / head_dim", [edit])
