"""SARIF 2.1.0 for code scanning: one run, the rules with their help text, one result per finding."""

from __future__ import annotations

import json
from pathlib import PurePath

from mulint.findings import Finding
from mulint.rules.pages import RuleMeta

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://pypi.org/project/mulint/"


def _rule(meta: RuleMeta) -> dict:
    return {
        "id": meta.code,
        "name": meta.name,
        "shortDescription": {"text": meta.summary or meta.name},
        "fullDescription": {"text": meta.what or meta.summary or meta.name},
        "help": {"text": meta.why or meta.summary or meta.name, "markdown": meta.markdown},
        "defaultConfiguration": {"level": "warning" if meta.severity.startswith("warning") else "error"},
    }


def render(findings: list[Finding], rules: list[RuleMeta], version: str) -> str:
    rules = sorted(rules, key=lambda r: r.code)
    index = {r.code: i for i, r in enumerate(rules)}
    results = []
    for f in sorted(findings, key=lambda f: f.sort_key):
        result = {
            "ruleId": f.code,
            "level": "warning" if f.severity == "warning" else "error",
            "message": {"text": f.message + (f" [{f.parameter}]" if f.parameter else "")},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": PurePath(f.path).as_posix(), "uriBaseId": "%SRCROOT%"},
                "region": {"startLine": max(1, f.line), "startColumn": max(1, f.column)},
            }}],
        }
        if f.code in index:
            result["ruleIndex"] = index[f.code]
        results.append(result)
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "mulint", "version": version, "informationUri": INFO_URI,
                                "rules": [_rule(r) for r in rules]}},
            "results": results,
        }],
    }
    return json.dumps(log, indent=2)
