"""MU9xx: what the dynamic coordinate check (`mulint check --coord`) measured."""

from __future__ import annotations

from mulint.rules.base import Rule


class _CoordRule(Rule):
    status: str
    what: str
    judged_on = "coord"

    def check(self, facts):
        bad = [l for l in facts.coord if l.status == self.status]
        # Report the innermost layers: a block whose sublayer is flagged adds nothing.
        names = {l.name for l in bad}
        for layer in bad:
            if any(other.startswith(layer.name + ".") for other in names) or (layer.name == "output" and len(bad) > 1):
                continue
            yield self.finding(
                facts,
                layer.loc,
                (
                    f"coordinate check: the change of `{layer.name}` ({layer.module_type}) per training step "
                    f"{self.what} (slope {layer.slope:+.2f} over widths {', '.join(map(str, facts.coord_widths))})"
                ),
            )


class CoordBlowUp(_CoordRule):
    code = "MU901"
    name = "coord-blow-up"
    summary = "coordinate check: a layer's change per step grows with width"
    status = "blow-up"
    what = "grows with width; in µP it stays constant"


class CoordCollapse(_CoordRule):
    code = "MU902"
    name = "coord-collapse"
    summary = "coordinate check: a layer's change per step shrinks with width (it stops learning)"
    status = "collapse"
    what = "shrinks with width: the layer stops learning in wide models"
