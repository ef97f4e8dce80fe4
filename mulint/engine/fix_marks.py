"""A plain check's `[*]` marks, remembered by content.

A finding is marked fixable only when its fix really changes the file, which takes the same libcst
planning `--diff` does: half a second on a small model, most of a cache hit. The outcome depends only
on the findings' fix edits, the bytes and mode of each file they would edit, the checked files and
mulint's own code, so it is kept in the cache folder under a digest of exactly those: the same check of
unchanged files plans nothing, and any change to one of them plans again. `--no-cache` plans every time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mulint.engine.cache import cache_root, environment, read_json, write_atomic
from mulint.fix.files import source_digest
from mulint.fix.run import declined_fixes

FOLDER = "fix-marks"


def remembered_declines(findings: list, allowed: set) -> dict[int, str]:
    """`declined_fixes`, read from the cache when the same findings were planned on the same files."""
    key = _key(findings, allowed)
    if key is None:
        return declined_fixes(findings, allowed)
    path = cache_root() / FOLDER / f"{key}.json"
    kept = read_json(path)
    if isinstance(kept, dict) and kept.get("key") == key and _is_declines(kept.get("declined"), len(findings)):
        return {int(i): why for i, why in kept["declined"].items()}
    declined = declined_fixes(findings, allowed)
    write_atomic(path, {"key": key, "declined": {str(i): why for i, why in declined.items()}})
    return declined


def _key(findings: list, allowed: set) -> str | None:
    """The digest of every input of the planning; None when a file it would read cannot be read (then
    nothing is remembered) or no finding has a fix (nothing to plan, nothing to keep)."""
    fixes = [f.fix.to_dict() if f.fix is not None else None for f in findings]
    paths = sorted({e.path for f in findings if f.fix is not None for e in f.fix.edits})
    if not paths:
        return None
    files = {}
    for path in paths:
        try:
            digest, mode = source_digest(Path(path)), os.stat(path).st_mode
        except OSError:
            return None
        if digest is None:  # not a regular source file (a FIFO is never opened), or unreadable
            return None
        files[path] = [digest, mode, str(Path(path).resolve())]
    payload = {
        "mulint": environment(),
        "fixes": fixes,
        "files": files,
        "allowed": sorted(str(Path(p).resolve()) for p in allowed),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _is_declines(value, count: int) -> bool:
    return isinstance(value, dict) and all(
        isinstance(i, str) and i.isdigit() and int(i) < count and isinstance(why, str) for i, why in value.items()
    )
