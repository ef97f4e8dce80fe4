"""JSON output: {"findings": [...], "targets": [...], "errors": [...]}."""

from __future__ import annotations

import json

from mulint.findings import Finding

FIELDS = ("code", "name", "severity", "message", "path", "line", "column", "parameter", "target", "fix")


def render(findings: list[Finding], targets: list[dict], errors: list[dict]) -> str:
    rows = []
    for f in sorted(findings, key=lambda f: f.sort_key):
        d = f.to_dict()
        rows.append({k: d[k] for k in FIELDS})
    return json.dumps({"findings": rows, "targets": targets, "errors": errors}, indent=2, default=str)
