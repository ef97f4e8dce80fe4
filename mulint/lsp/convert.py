"""Findings and errors as LSP diagnostics: ranges in the editor's UTF-16 columns, mulint's severities,
the rule code linking to its page.

Plain conversions, no server state: `mulint check --format json` rows become `Finding`s again (their
fix edits checked as the cache checks them), and each finding or error becomes one diagnostic.
"""

from __future__ import annotations

import dataclasses
import io
import re
import tokenize
from pathlib import Path

from lsprotocol import types

from mulint.edits import edit_from_dict
from mulint.findings import Finding, Fix

SOURCE = "mulint"
SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}


def finding_from_json(row: dict, base: Path) -> Finding:
    """A JSON finding as the Finding it was; its paths (relative to `base`, the directory the check
    ran in) made absolute, so a fix edits the right file whatever this process's directory."""
    fix = None
    if row.get("fix"):
        edits = [edit_from_dict(data) for data in row["fix"]["edits"]]
        fix = Fix(applicability=row["fix"]["applicability"], message=row["fix"]["message"], edits=edits)
    finding = Finding(
        code=row["code"],
        name=row["name"],
        severity=row["severity"],
        message=row["message"],
        path=row["path"],
        line=int(row["line"]),
        column=int(row["column"]),
        target=row.get("target") or "",
        parameter=row.get("parameter"),
        fix=fix,
    )
    return rebased(finding, base)


def rebased(finding: Finding, base: Path) -> Finding:
    """The finding with its path and its edits' paths absolute (relative ones are taken from `base`)."""
    fix = finding.fix
    if fix is not None:
        edits = [dataclasses.replace(edit, path=str(base / edit.path)) for edit in fix.edits]
        fix = dataclasses.replace(fix, edits=edits)
    return dataclasses.replace(finding, path=str(base / finding.path), fix=fix)


def utf16_length(text: str) -> int:
    """LSP columns count UTF-16 code units; Python strings count code points."""
    return len(text.encode("utf-16-le")) // 2


def code_end(line: str) -> int:
    """Where the line's code ends (in code points): before a trailing comment and whitespace."""
    end = len(line.rstrip())
    try:
        for token in tokenize.generate_tokens(io.StringIO(line).readline):
            if token.type == tokenize.COMMENT:
                end = len(line[: token.start[1]].rstrip())
                break
    except (tokenize.TokenError, SyntaxError):  # a line inside a string or a bracket: the whole line
        pass
    return end


def finding_range(finding: Finding, lines: list[str]) -> types.Range:
    """From the finding's (1-based) line and column to the end of that line's code."""
    index = min(max(finding.line - 1, 0), max(len(lines) - 1, 0))
    line = lines[index] if lines else ""
    start = min(max(finding.column - 1, 0), len(line))
    end = max(code_end(line), start)
    return types.Range(
        start=types.Position(line=index, character=utf16_length(line[:start])),
        end=types.Position(line=index, character=utf16_length(line[:end])),
    )


def rule_href(code: str, pages: Path) -> str | None:
    """The rule's page as a file URI, when the page is there (the project names no public URL)."""
    page = pages / f"{code}.md"
    return page.resolve().as_uri() if page.is_file() else None


def finding_diagnostic(finding: Finding, lines: list[str], pages: Path) -> types.Diagnostic:
    href = rule_href(finding.code, pages)
    return types.Diagnostic(
        range=finding_range(finding, lines),
        message=finding.message,  # as `mulint check` prints it
        severity=SEVERITY.get(finding.severity, types.DiagnosticSeverity.Information),
        code=finding.code,
        code_description=types.CodeDescription(href=href) if href else None,
        source=SOURCE,
    )


def error_line(text: str, path: Path) -> int:
    """The 1-based line of `path` an error message names (`.../model.py:12`), else 1."""
    match = re.search(re.escape(path.name) + r"(?:\"?, line |:)(\d+)", text)
    return int(match[1]) if match else 1


def error_diagnostic(
    message: str, hint: str, path: Path, lines: list[str], severity=types.DiagnosticSeverity.Error
) -> types.Diagnostic:
    """A check that failed, at the line its message names (else the top of the file)."""
    index = min(error_line(message, path), max(len(lines), 1)) - 1
    line = lines[index] if index < len(lines) else ""
    return types.Diagnostic(
        range=types.Range(
            start=types.Position(line=index, character=0),
            end=types.Position(line=index, character=utf16_length(line[: code_end(line)])),
        ),
        message=message + (f"\nhint: {hint}" if hint else ""),
        severity=severity,
        source=SOURCE,
    )
