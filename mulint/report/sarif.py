"""SARIF 2.1.0 for code scanning: one run, every rule with the text of its `rules/` page, one result per finding.

Relative paths are given against `%SRCROOT%` (what GitHub code scanning resolves against the
repository), absolute ones as file URIs. Lines and columns are 1-based, as SARIF requires.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mulint.errors import ErrorRecord
from mulint.findings import Finding
from mulint.report import message_of
from mulint.rules.pages import RuleMeta

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://pypi.org/project/mulint/"
SRCROOT = "%SRCROOT%"


def _level(severity: str) -> str:
    return "warning" if severity.startswith("warning") else "error"


def _flat(text: str) -> str:
    """One line: pages are hard-wrapped markdown, descriptions read better unwrapped."""
    return " ".join(text.split())


def _rule(meta: RuleMeta) -> dict:
    help_text = "\n\n".join(_flat(part) for part in (meta.what, meta.why, meta.fix_safety) if part)
    return {
        "id": meta.code,
        "name": meta.name,
        "shortDescription": {"text": _flat(meta.summary) or meta.name},
        "fullDescription": {"text": _flat(meta.what) or _flat(meta.summary) or meta.name},
        "help": {"text": help_text or meta.name, "markdown": meta.markdown or f"# {meta.code}: {meta.name}"},
        "defaultConfiguration": {"level": _level(meta.severity)},
    }


def _rule_without_page(f: Finding) -> dict:
    # A finding whose rule has no page still needs a rule entry, or its ruleIndex points nowhere.
    return _rule(RuleMeta(code=f.code, name=f.name, severity=f.severity))


def _artifact(path: str) -> dict:
    p = Path(path)
    if p.is_absolute():
        return {"uri": p.as_uri()}
    return {"uri": quote(p.as_posix(), safe="/"), "uriBaseId": SRCROOT}


def _result(f: Finding, index: int) -> dict:
    result = {
        "ruleId": f.code,
        "ruleIndex": index,
        "level": _level(f.severity),
        "message": {"text": message_of(f)},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact(f.path),
                    "region": {"startLine": max(1, f.line), "startColumn": max(1, f.column)},
                }
            }
        ],
    }
    extra = {k: v for k, v in (("parameter", f.parameter), ("target", f.target)) if v}
    if extra:
        result["properties"] = extra
    return result


def _notification(level: str, text: str, path: str | None = None) -> dict:
    note: dict[str, Any] = {"level": level, "message": {"text": text}}
    if path:
        note["locations"] = [{"physicalLocation": {"artifactLocation": _artifact(path)}}]
    return note


def _invocation(errors: list[ErrorRecord], unanalysed: list[dict]) -> dict:
    """Targets that failed (errors) and model files not analysed (warnings) as tool notifications: code
    scanning shows them, so an empty result list never passes for a full analysis."""
    notes = []
    for error in errors:
        hint = f" Hint: {error.hint}" if error.hint else ""
        path = error.target.split(":")[0] if error.target.split(":")[0].endswith(".py") else None
        notes.append(_notification("error", f"{error.target}: [{error.step}] {error.message}.{hint}", path))
    for item in unanalysed:
        notes.append(
            _notification("warning", f"model not analysed: {item['reason']}. Hint: {item['hint']}", item["path"])
        )
    return {"executionSuccessful": not errors, "toolExecutionNotifications": notes}


def render(
    findings: list[Finding],
    rules: list[RuleMeta],
    version: str,
    *,
    root: Path | None = None,
    errors: list[ErrorRecord] | None = None,
    unanalysed: list[dict] | None = None,
) -> str:
    """`root`: the directory relative paths start from (default: the working directory)."""
    entries = {meta.code: _rule(meta) for meta in rules}
    for f in findings:
        entries.setdefault(f.code, _rule_without_page(f))
    codes = sorted(entries)
    index = {code: i for i, code in enumerate(codes)}
    base = (root or Path.cwd()).resolve().as_uri().rstrip("/") + "/"  # SARIF wants a trailing slash
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mulint",
                        "version": version,
                        "informationUri": INFO_URI,
                        "rules": [entries[c] for c in codes],
                    }
                },
                "invocations": [_invocation(errors or [], unanalysed or [])],
                "originalUriBaseIds": {SRCROOT: {"uri": base}},
                "results": [_result(f, index[f.code]) for f in sorted(findings, key=lambda f: f.sort_key)],
            }
        ],
    }
    from mulint.report.escape import json_text

    return json_text(json.dumps(log, indent=2, ensure_ascii=False))
