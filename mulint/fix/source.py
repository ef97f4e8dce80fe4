"""Checking fixed source: bytes in, bytes out, never a file that does not parse.

libcst keeps the file's encoding, line endings and comments; new code takes the file's own newline,
indentation and encoding (FileContext.fit). Writing is `mulint.fix.files`.
"""

from __future__ import annotations

import ast
import difflib
import warnings

import libcst as cst


class Decline(Exception):
    """A fix that cannot be made safely: the code stays as it is and the finding keeps this reason."""


class NotForThisFinding(Decline):
    """A shared change was made for other findings, but it does not fix this one (the change stays)."""


def parses(module: cst.Module) -> str | None:
    """None when the rendered module parses for Python itself (not just for libcst); else the error."""
    try:
        data = module.bytes
    except UnicodeEncodeError as exc:
        return f"its text cannot be written in the file's declared encoding ({exc.encoding})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # e.g. invalid escapes the file already had
            ast.parse(data)
        cst.parse_module(data)
    except (SyntaxError, ValueError, cst.ParserSyntaxError) as exc:
        return str(exc)
    return None


def unified_diff(path: str, before: cst.Module, after: cst.Module) -> str:
    """`--- a/path` / `+++ b/path` hunks, as git and ruff print them."""
    old = before.code.splitlines(keepends=True)
    new = after.code.splitlines(keepends=True)
    lines = difflib.unified_diff(old, new, fromfile=f"a/{path}", tofile=f"b/{path}")
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)
