"""GitHub Actions workflow commands: one `::error`/`::warning` annotation per finding.

Workflow commands are parsed from the log line, so data must not contain a raw `%`, CR or LF, and
property values must not contain the `,` and `:` that separate properties. The annotation sits on
the offending line itself, so the message is the rule's sentence alone.
"""

from __future__ import annotations

from mulint.findings import Finding


def escape_data(text: str) -> str:
    # `%` first: the escapes introduced below contain `%` themselves.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(findings: list[Finding]) -> str:
    lines = []
    for f in sorted(findings, key=lambda f: f.sort_key):
        level = "warning" if f.severity == "warning" else "error"
        props = ",".join([
            f"file={escape_property(f.path)}",
            f"line={f.line}",
            f"col={f.column}",
            f"title={escape_property(f'{f.code} ({f.name})')}",
        ])
        lines.append(f"::{level} {props}::{escape_data(f'{f.code} {f.message}')}")
    return "\n".join(lines)
