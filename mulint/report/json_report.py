"""JSON output: `{"findings", "targets", "errors", "unanalysed", "summary"}`, for scripts and CI.

`unanalysed` lists the files that define a model mulint did not analyse (`{"path", "reason", "hint"}`),
and `summary` counts what was analysed, so a script can tell a clean run from an empty one. Under
`check --verbose` a `"timings"` object follows: where each target's time went, by phase."""

from __future__ import annotations

import json

from mulint.errors import ErrorRecord
from mulint.findings import Finding
from mulint.report.escape import json_text

FIELDS = ("code", "name", "severity", "message", "path", "line", "column", "parameter", "target", "fix")


def finding_dict(f: Finding) -> dict:
    """One finding with exactly FIELDS, in that order; `fix` is null or the Fix as a dict."""
    data = f.to_dict()  # asdict turns the nested Fix into a dict as well
    return {key: data[key] for key in FIELDS}


def render(
    findings: list[Finding],
    targets: list[dict],
    errors: list[ErrorRecord],
    *,
    unanalysed: list[dict] | None = None,
    timings: dict[str, dict] | None = None,
) -> str:
    """``timings`` (`check --verbose` only: they differ from run to run, and the default output must not):
    a top-level `"timings"` object, target -> {"phases": {name: seconds}, "seconds", ...}."""
    rows = [finding_dict(f) for f in sorted(findings, key=lambda f: f.sort_key)]
    summary = {
        "models_analysed": sum(t.get("mode") == "model" for t in targets),
        "files_static": sum(t.get("mode") == "static" for t in targets),
        "unanalysed": len(unanalysed or []),
        "errors": len(errors),
    }
    report = {
        "findings": rows,
        "targets": targets,
        "errors": [error.as_json() for error in errors],
        "unanalysed": unanalysed or [],
        "summary": summary,
    }
    if timings is not None:
        report["timings"] = timings_json(timings)
    # default=str: targets may carry Paths or other plain values that json cannot encode itself.
    return json_text(
        json.dumps(
            report,
            indent=2,
            default=str,
            ensure_ascii=False,
        )
    )


def timings_json(timings: dict[str, dict]) -> dict[str, dict]:
    """Each target's phases in milliseconds' precision, with their sum as `"seconds"`."""
    out = {}
    for target, entry in timings.items():
        phases = {name: round(seconds, 3) for name, seconds in entry.get("phases", {}).items()}
        facts = {key: value for key, value in entry.items() if key != "phases"}
        out[target] = {**facts, "seconds": round(sum(entry.get("phases", {}).values()), 3), "phases": phases}
    return out
