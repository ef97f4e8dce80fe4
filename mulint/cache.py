"""Results of model checks, cached by content: a second run on unchanged model code does not
re-trace, and an edit to any file the model depends on analyses it again.

An entry is found by a primary key (the target, the options, the target file's bytes, mulint's own
code and the library versions) and lists every file the model's code depended on (its modules, in any
folder, and the files it read while it was built; see `mulint.load.deps`) with its sha256: a hit
requires each of them to still hold the same content. One JSON file per key, written atomically with
the umask's permissions, so concurrent runs never read half a file and a team can share the cache."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import tempfile
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from mulint import __version__
from mulint.findings import Finding, Fix

_PACKAGES = ("torch", "transformers", "mup")
_FORMAT = 2
# A file last changed this close to its hashing may change again within the same timestamp tick
# (coarse filesystem clocks): its size and timestamps alone are not trusted, it is hashed again.
_RACY_NS = 2_000_000_000
_STAT_FIELDS = ("size", "mtime_ns", "ctime_ns", "ino", "dev")


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
        info = path.stat()
        digest.update(f"{path.name}:{info.st_size}:{info.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def _library_versions() -> tuple[str, ...]:
    parts = []
    for name in _PACKAGES:
        try:
            parts.append(f"{name}-{metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return tuple(parts)


def _versions() -> str:
    return "_".join([f"mulint-{__version__}-{_own_code()}", *_library_versions()])


def _path(key: str) -> Path:
    return cache_root() / _versions() / f"{key}.json"


# --- results keyed by the target and checked against every recorded dependency -----------------------

# When this process last looked each target up: a later result of it may come from the content of then.
_LOOKED_UP_NS: dict[str, int] = {}


def lookup(label: str, target_path: Path | None, options: dict) -> tuple[list[Finding], dict] | None:
    """The cached findings and target entry, when every file the model depended on is unchanged."""
    _LOOKED_UP_NS[_identity(label, target_path, options)] = time.time_ns()
    key = _primary_key(label, target_path, options)
    if key is None:
        return None
    entry = _parse_entry(_read_json(_path(key)), key)
    if entry is None:
        return None
    findings, target, deps, hashed_at_ns = entry
    if not all(_unchanged(dep, hashed_at_ns) for dep in deps):
        return None
    return findings, target


def store_result(label: str, target_path: Path | None, options: dict, findings: list[Finding], target: dict,
                 deps: list[Path], *, started_ns: int | None = None) -> None:
    """Cache a result with the content of every dependency. Not when a dependency changed after the check
    began (the recorder's `started_ns`, or this process's lookup of the target): the result may come
    from its old content."""
    looked_up_ns = _LOOKED_UP_NS.pop(_identity(label, target_path, options), None)
    since = min((t for t in (started_ns, looked_up_ns) if t is not None), default=None)
    key = _primary_key(label, target_path, options)
    if key is None:
        return
    paths = sorted({Path(path) for path in deps})
    if target_path is not None and Path(target_path).resolve() not in paths:
        return  # dependencies were not recorded: nothing could tell this entry is stale
    hashed_at_ns = time.time_ns()
    records = [_dependency(path) for path in paths]
    if any(record is None for record in records):
        return  # a dependency vanished or changed while it was hashed
    if since is not None and any(max(r["mtime_ns"], r["ctime_ns"]) >= since for r in records):
        return
    _write_atomic(_path(key), {"format": _FORMAT, "key": key, "hashed_at_ns": hashed_at_ns, "deps": records,
                               "findings": [asdict(f) for f in findings], "target": target})


def _primary_key(label: str, target_path: Path | None, options: dict) -> str | None:
    """None when the target file cannot be read (no entry can match it)."""
    # The working directory and PYTHONPATH decide which files a module target imports and how paths print.
    where = [os.getcwd(), os.environ.get("PYTHONPATH", "")]
    try:
        text = json.dumps(["entry", _FORMAT, label, options, where], sort_keys=True, default=_plain)
        digest = hashlib.sha256(text.encode())
        if target_path is not None:
            resolved = Path(target_path).resolve()
            digest.update(str(resolved).encode() + b"\0")
            digest.update(resolved.read_bytes())
    except (OSError, ValueError, TypeError, RuntimeError):
        return None
    return digest.hexdigest()


def _identity(label: str, target_path: Path | None, options: dict) -> str:
    return json.dumps([label, str(target_path), options], sort_keys=True, default=_plain)


def _plain(value):
    """Options JSON cannot hold, in an order that does not vary between runs (a set's does)."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return str(value)


def _stat_record(info: os.stat_result) -> dict:
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "ctime_ns": info.st_ctime_ns,
            "ino": info.st_ino, "dev": info.st_dev}


def _dependency(path: Path) -> dict | None:
    """Path, sha256 and stat of a regular file, or None when it changes while it is read."""
    try:
        before = os.stat(path)
        digest = _sha256(path)
        after = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(before.st_mode) or _stat_record(before) != _stat_record(after):
        return None
    return {"path": str(path), "sha256": digest, **_stat_record(after)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unchanged(dep: dict, hashed_at_ns: int) -> bool:
    """Same content as when stored: same stat, changed well before it was hashed, skips hashing."""
    try:
        info = os.stat(dep["path"])
        if not stat.S_ISREG(info.st_mode):
            return False
        settled = max(info.st_mtime_ns, info.st_ctime_ns) < hashed_at_ns - _RACY_NS
        if settled and _stat_record(info) == {name: dep[name] for name in _STAT_FIELDS}:
            return True  # ctime moves on every write and cannot be set back by hand
        return _sha256(Path(dep["path"])) == dep["sha256"]
    except (OSError, ValueError):
        return False


# --- reading entries: any shape but the expected one is a miss ---------------------------------------

def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_entry(data, key: str) -> tuple[list[Finding], dict, list[dict], int] | None:
    if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("key") != key:
        return None
    hashed_at_ns, deps, target = data.get("hashed_at_ns"), data.get("deps"), data.get("target")
    if not _is_int(hashed_at_ns) or not isinstance(target, dict) or not isinstance(deps, list):
        return None
    if not all(_is_dependency(dep) for dep in deps):
        return None
    findings = _parse_findings(data.get("findings"))
    if findings is None:
        return None
    return findings, target, deps, hashed_at_ns


def _is_dependency(dep) -> bool:
    if not isinstance(dep, dict) or not isinstance(dep.get("path"), str) or not dep["path"]:
        return False
    digest = dep.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        return False
    return all(_is_int(dep.get(name)) for name in _STAT_FIELDS)


_FINDING_TEXT = ("code", "name", "severity", "message", "path", "target")
_FINDING_INT = ("line", "column")


def _parse_findings(rows) -> list[Finding] | None:
    if not isinstance(rows, list):
        return None
    findings = [_parse_finding(row) for row in rows]
    return None if any(f is None for f in findings) else findings


def _parse_finding(row) -> Finding | None:
    if not isinstance(row, dict) or set(row) != {*_FINDING_TEXT, *_FINDING_INT, "parameter", "fix"}:
        return None
    if not all(isinstance(row[name], str) for name in _FINDING_TEXT):
        return None
    if not all(_is_int(row[name]) for name in _FINDING_INT):
        return None
    if row["parameter"] is not None and not isinstance(row["parameter"], str):
        return None
    fix = row["fix"]
    if fix is not None:
        fix = _parse_fix(fix)
        if fix is None:
            return None
    return Finding(**{**row, "fix": fix})


def _parse_fix(row) -> Fix | None:
    if not isinstance(row, dict) or set(row) != {"applicability", "message", "edits"}:
        return None
    if not isinstance(row["applicability"], str) or not isinstance(row["message"], str):
        return None
    if not isinstance(row["edits"], list) or not all(isinstance(edit, dict) for edit in row["edits"]):
        return None
    return Fix(**row)


# --- writing entries: atomic, with the umask's permissions, never failing a check --------------------

def _umask() -> int:
    try:  # read without changing it: os.umask can only set, which would race with other threads
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomic(path: Path, payload: dict) -> None:
    try:
        text = json.dumps(payload)
    except (TypeError, ValueError):
        return  # not JSON: not cached
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # mode 0o777, less the umask
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600: a shared cache must stay readable
            fh.write(text)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass  # a read-only or full cache never fails a check
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# --- the former interface, by source files beside the target (until every caller uses lookup) -------

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


def load(key: str) -> tuple[list[Finding], dict] | None:
    data = _read_json(_path(key))
    if not isinstance(data, dict) or not isinstance(data.get("target"), dict):
        return None  # missing, from another version's layout, or unreadable: recompute
    findings = _parse_findings(data.get("findings"))
    return None if findings is None else (findings, data["target"])


def store(key: str, findings: list[Finding], target: dict) -> None:
    _write_atomic(_path(key), {"findings": [asdict(f) for f in findings], "target": target})
