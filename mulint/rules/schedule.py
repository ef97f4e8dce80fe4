"""MU303 (static): a schedule that writes one absolute lr into every param group."""

from __future__ import annotations

from mulint.edits import ScheduleLr
from mulint.findings import Finding
from mulint.rules.base import Rule


class OneLrForAllGroups(Rule):
    code = "MU303"
    name = "schedule-overwrites-group-lr"
    summary = "code assigns one absolute lr to every param group, erasing µP's per-group learning rates"
    judged_on = "static"
    fix_safety = "unsafe"
    needles = ("param_groups",)

    def check_source(self, wrapper, path: str) -> list[Finding]:
        from libcst.metadata import PositionProvider  # libcst only when a file is parsed

        from mulint.reading.lr_writes import absolute_lr_writes

        positions = wrapper.resolve(PositionProvider)
        findings = []
        for node in absolute_lr_writes(wrapper):
            start = positions[node].start
            findings.append(
                Finding(
                    code=self.code,
                    name=self.name,
                    severity=self.severity,
                    path=path,
                    line=start.line,
                    column=start.column + 1,
                    message=(
                        "sets every param group's lr to the same absolute value, erasing µP's per-group learning "
                        "rates; scale each group's own base lr instead (g['lr'] = g['initial_lr'] * lr / base_lr)"
                    ),
                    fix=self.make_fix(
                        "scale each group's own initial lr by the schedule's lr / base lr",
                        [ScheduleLr(path=path, line=start.line)],
                    ),
                )
            )
        return findings
