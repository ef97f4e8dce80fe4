"""Results of model checks, cached by content: a second run on unchanged model code does not
re-trace. One JSON file per key, under a directory per mulint (and torch) version, written
atomically so concurrent runs never read half a file."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from mulint import __version__
from mulint.findings import Finding, Fix

_PACKAGES = ("torch", "transformers", "mup")


def cache_root() -> Path:
    if os.environ.get("MULINT_CACHE_DIR"):
        return Path(os.environ["MULINT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mulint"


@functools.lru_cache(maxsize=None)
def _own_code() -> str:
    """mulint's own source, by size and mtime: an edited (editable) install never reads stale results."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def _versions() -> str:
    parts = [f"mulint-{__version__}-{_own_code()}"]
    for name in _PACKAGES:
        try:
            parts.append(f"{name}-{metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return "_".join(parts)


def key_for(label: str, files: list[Path], options: dict) -> str:
    """Hash of the target, the options and the bytes of every file its model code may come from."""
    digest = hashlib.sha256(json.dumps([label, options], sort_keys=True, default=str).encode())
    for path in sorted(set(files)):
        digest.update(str(path).encode())
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<missing>")
    return digest.hexdigest()


def source_files(target_path: Path | None) -> list[Path]:
    """The target's file and the Python files beside it (the model imports its siblings)."""
    if target_path is None:
        return []
    directory = target_path.resolve().parent
    return [p for p in directory.glob("*.py")] + [target_path.resolve()]


def _path(key: str) -> Path:
    return cache_root() / _versions() / f"{key}.json"


def load(key: str) -> tuple[list[Finding], dict] | None:
    try:
        data = json.loads(_path(key).read_text(encoding="utf-8"))
        findings = []
        for row in data["findings"]:
            fix = Fix(**row["fix"]) if row.get("fix") else None
            findings.append(Finding(**{**row, "fix": fix}))
        return findings, data["target"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, from another version's layout, or unreadable: recompute


def store(key: str, findings: list[Finding], target: dict) -> None:
    path = _path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"findings": [asdict(f) for f in findings], "target": target}, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only or full cache never fails a check
