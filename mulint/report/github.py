"""GitHub Actions workflow commands: one `::error`/`::warning` annotation per finding.

Workflow commands are parsed from the log line, so data must not contain a raw `%`, CR or LF, and
property values must not contain the `,` and `:` that separate properties. The annotation sits on
the offending line itself, so the message is the rule's sentence alone.
"""

from __future__ import annotations

from mulint.errors import ErrorRecord
from mulint.findings import Finding
from mulint.report.escape import but_line_ends


def escape_data(text: str) -> str:
    # Terminal escapes shown, not played, in the log; then `%` first: the escapes introduced below
    # contain `%` themselves.
    return but_line_ends(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(
    findings: list[Finding], *, errors: list[ErrorRecord] | None = None, unanalysed: list[dict] | None = None
) -> str:
    """Findings as errors/warnings on their lines, target errors as `::error`, and files whose models
    were not analysed as `::notice` on the file: a green job must show what it did not check."""
    lines = []
    for f in sorted(findings, key=lambda f: f.sort_key):
        level = "warning" if f.severity == "warning" else "error"
        props = ",".join(
            [
                f"file={escape_property(f.path)}",
                f"line={f.line}",
                f"col={f.column}",
                f"title={escape_property(f'{f.code} ({f.name})')}",
            ]
        )
        lines.append(f"::{level} {props}::{escape_data(f'{f.code} {f.message}')}")
    for error in errors or []:
        hint = f" (hint: {error.hint})" if error.hint else ""
        text = f"[{error.step}] {error.message}{hint}"
        lines.append(f"::error title={escape_property('mulint: ' + error.target)}::{escape_data(text)}")
    for item in unanalysed or []:
        props = f"file={escape_property(item['path'])},title={escape_property('mulint: model not analysed')}"
        lines.append(f"::notice {props}::{escape_data(item['reason'] + '. ' + item['hint'])}")
    return "\n".join(lines)
