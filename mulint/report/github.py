"""GitHub Actions workflow commands: one `::error`/`::warning` annotation per finding."""

from __future__ import annotations

from mulint.findings import Finding


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def render(findings: list[Finding]) -> str:
    lines = []
    for f in sorted(findings, key=lambda f: f.sort_key):
        level = "warning" if f.severity == "warning" else "error"
        props = f"file={_prop(f.path)},line={f.line},col={f.column},title={_prop(f'{f.code} ({f.name})')}"
        lines.append(f"::{level} {props}::{_data(f'{f.code} {f.message}')}")
    return "\n".join(lines)
