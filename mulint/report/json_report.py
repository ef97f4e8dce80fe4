"""JSON output: `{"findings": [...], "targets": [...], "errors": [...]}`, for scripts and CI."""

from __future__ import annotations

import json

from mulint.findings import Finding

FIELDS = ("code", "name", "severity", "message", "path", "line", "column", "parameter", "target", "fix")


def finding_dict(f: Finding) -> dict:
    """One finding with exactly FIELDS, in that order; `fix` is null or the Fix as a dict."""
    data = f.to_dict()  # asdict turns the nested Fix into a dict as well
    return {key: data[key] for key in FIELDS}


def render(findings: list[Finding], targets: list[dict], errors: list[dict]) -> str:
    rows = [finding_dict(f) for f in sorted(findings, key=lambda f: f.sort_key)]
    # default=str: targets may carry Paths or other plain values that json cannot encode itself.
    return json.dumps({"findings": rows, "targets": targets, "errors": errors}, indent=2, default=str,
                      ensure_ascii=False)
