"""`mulint inspect` output: a table of every parameter's shape, growing dims, fans and roles, then
the evidence (mulint.report.evidence): per parameter and per width the numbers the rules judge."""

from __future__ import annotations

import json

from mulint.facts import ModelFacts
from mulint.paths import display_path
from mulint.report.depth_view import depth_lines
from mulint.report.escape import keep_lines, one_line
from mulint.report.evidence import model_evidence, param_evidence
from mulint.report.evidence_view import evidence_lines


def as_json(facts: ModelFacts) -> str:
    data = facts.to_dict()
    for p in data["parameters"]:
        if p.get("created_at"):
            p["created_at"]["path"] = display_path(p["created_at"]["path"])
        for use in p["uses"]:
            if use.get("loc"):
                use["loc"]["path"] = display_path(use["loc"]["path"])
    for branch in data.get("depth", {}).get("branches", []):
        for key in ("loc", "multiplier_at"):
            if branch.get(key):
                branch[key]["path"] = display_path(branch[key]["path"])
    data["evidence"] = model_evidence(facts)
    for p, record in zip(facts.params, data["parameters"]):
        record["evidence"] = param_evidence(facts, p)
    return json.dumps(data, indent=2)


def as_text(facts: ModelFacts) -> str:
    header = [
        one_line(facts.target),
        f"  width: {facts.width_knob} = {facts.base_width}; built at {', '.join(map(str, facts.widths))} on the meta device",
    ]
    if facts.repeated_blocks:
        lists = ", ".join(f"{path} ({n} blocks)" for path, n in facts.repeated_blocks.items())
        header.append(f"  traced: the first two blocks of {lists}; later blocks are used as the second is")
    header.append("")
    rows = [("parameter", "shape", "inf dims", "fan_in", "fan_out", "roles", "created at")]
    for p in facts.params:
        name = one_line(p.name + (f" (= {', '.join(p.aliases)})" if p.aliases else ""))
        roles = ", ".join(p.roles) + (" (by shape)" if p.role_source == "shape" else "")
        loc = one_line(f"{display_path(p.created_at.path)}:{p.created_at.line}") if p.created_at else ""
        rows.append(
            (
                name,
                "×".join(map(str, p.shape)) or "()",
                ",".join(map(str, p.infinite_dims)) or "-",
                _fan(p.fan_in, p.primary_use and p.primary_use.fan_in_infinite),
                _fan(p.fan_out, p.primary_use and p.primary_use.fan_out_infinite),
                roles,
                loc,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counts: dict[str, int] = {}
    for p in facts.params:
        for r in p.roles:
            counts[r] = counts.get(r, 0) + 1
    summary = ", ".join(f"{n} {r}" for r, n in counts.items())
    footer = ["", f"{len(facts.params)} parameters: {summary}. inf = grows with width."]
    footer += [one_line(line) for line in evidence_lines(facts)]  # each one line, whatever the names hold
    footer += [f"note: {keep_lines(n)}" for n in facts.notes]
    footer += depth_lines(facts.depth)  # last: the width output above reads as before
    return "\n".join(header + lines + footer)


def _fan(value, infinite) -> str:
    if value is None:
        return "-"
    return f"{value}{' (inf)' if infinite else ''}"
