"""The project's files as mulint finds them before it loads anything heavy: the nearest `[tool.mulint]`
configuration, the cache folder, and a digest of a source tree by content.

The command line's thin entry and the warm server's client decide with these whether to use the server,
and must start in a fraction of a second: this module imports the standard library only. The engine
(`mulint.engine.config`, `mulint.engine.cache`) finds the same files through it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: Path) -> dict:
    """The parsed file; tomllib's and the system's errors are the caller's to word."""
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def find_config(start: Path, read: Callable[[Path], dict] = read_toml) -> Path | None:
    """The first pyproject.toml with a [tool.mulint] table in `start` (a file's directory) or above it.
    As in ruff, a pyproject.toml without the table is skipped: a sub-package's own pyproject does not
    hide the project's configuration."""
    directory = Path(start).resolve()
    if not directory.is_dir():
        directory = directory.parent
    for folder in (directory, *directory.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and isinstance(read(candidate).get("tool", {}).get("mulint"), dict):
            return candidate
    return None


def cache_root() -> Path:
    """Where mulint keeps what it stores: $MULINT_CACHE_DIR, else $XDG_CACHE_HOME/mulint or ~/.cache/mulint."""
    if os.environ.get("MULINT_CACHE_DIR"):
        return Path(os.environ["MULINT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mulint"


def code_digest(root: Path, read: Callable[[Path], bytes | None]) -> str:
    """The names and bytes of the Python and TOML files under root: a same-size edit with its timestamp
    set back changes it too. `read` gives a file's bytes (None: unreadable)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".toml") and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(read(path) or b"<unreadable>")
        digest.update(b"\0")
    return digest.hexdigest()[:16]
