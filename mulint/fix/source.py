"""Reading, checking and writing fixed source: bytes in, bytes out, never a file that does not parse.

libcst keeps the file's encoding, line endings and comments; new statements take the file's own
newline. Writes go to a temporary file beside the original and replace it atomically.
"""

from __future__ import annotations

import ast
import difflib
import os
import tempfile
import warnings
from pathlib import Path

import libcst as cst


class Decline(Exception):
    """A fix that cannot be made safely: the code stays as it is and the finding keeps this reason."""


class NotForThisFinding(Decline):
    """A shared change was made for other findings, but it does not fix this one (the change stays)."""


def parses(module: cst.Module) -> str | None:
    """None when the rendered module parses for Python itself (not just for libcst); else the error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # e.g. invalid escapes the file already had
            ast.parse(module.bytes)
        cst.parse_module(module.bytes)
    except (SyntaxError, ValueError, cst.ParserSyntaxError) as exc:
        return str(exc)
    return None


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data` in one step; its permissions stay; a failure leaves the original."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def unified_diff(path: str, before: cst.Module, after: cst.Module) -> str:
    """`--- a/path` / `+++ b/path` hunks, as git and ruff print them."""
    old = before.code.splitlines(keepends=True)
    new = after.code.splitlines(keepends=True)
    lines = difflib.unified_diff(old, new, fromfile=f"a/{path}", tofile=f"b/{path}")
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)
