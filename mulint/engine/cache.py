"""Results of model checks, cached by content: a second run on unchanged model code does not
re-trace, and an edit to any file the model depends on analyses it again.

An entry is found by a primary key (the target, the options, the target file's bytes, mulint's own
code by content, Python's and the library versions) and lists every input the worker observed (see
`mulint.engine.deps`): each file the model's code depended on (its modules, in any folder, the files it
read while it was built, the METADATA of every installed distribution it ran) with its sha256, each
directory it listed, each environment variable it read (or found unset). A hit requires all of them to
be as they were. A result with an input that could not be observed is not stored. One JSON file per
key, written atomically with the umask's permissions, so concurrent runs never read half a file and a
team can share the cache; only regular files of bounded size are read from it, anything else is a miss."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import TypeGuard, TypeVar

from mulint import project_files
from mulint.edits import EditError, edit_from_dict
from mulint.findings import Finding, Fix
from mulint.project_files import cache_root
from mulint.version import __version__

_Row = TypeVar("_Row")


_PACKAGES = ("torch", "transformers", "mup")
_FORMAT = 3
_MAX_ENTRY_BYTES = 64 << 20  # a larger file in the cache folder is not an entry mulint wrote
# A file last changed this close to its hashing may change again within the same timestamp tick
# (coarse filesystem clocks): its size and timestamps alone are not trusted, it is hashed again.
_RACY_NS = 2_000_000_000
_STAT_FIELDS = ("size", "mtime_ns", "ctime_ns", "ino", "dev")


@functools.cache
def _own_code() -> str:
    """mulint's own code and data by content: an edited (editable) install never reads stale results.
    The whole package (this module lives in mulint/engine/, and a rule's edit must miss too)."""
    return code_digest(Path(__file__).resolve().parents[1])


def code_digest(root: Path) -> str:
    """The names and bytes of the Python and TOML files under root: a same-size edit with its timestamp
    set back changes it too."""
    return project_files.code_digest(root, lambda path: _read_regular(path, _MAX_ENTRY_BYTES))


@functools.cache
def _library_versions() -> tuple[str, ...]:
    parts = []
    for name in _PACKAGES:
        try:
            parts.append(f"{name}-{metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return tuple(parts)


def _versions() -> str:
    python = "py{}.{}.{}".format(*sys.version_info[:3])
    return "_".join([f"mulint-{__version__}-{_own_code()}", python, *_library_versions()])


def environment() -> str:
    """mulint's code, Python's and the libraries' versions: what every stored result depends on."""
    return _versions()


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
    entry = _parse_entry(read_json(_path(key)), key)
    if entry is None:
        return None
    findings, target, deps, hashed_at_ns, observed = entry
    if not _same_environment(observed["env"]) or not all(_same_listing(row) for row in observed["listings"]):
        return None
    if not all(_unchanged(dep, hashed_at_ns) for dep in deps):
        return None
    return findings, target


def uncacheable(observed: dict | None) -> list[str]:
    """Why a result with these observed inputs must not be cached (empty when it may)."""
    if not _is_observed(observed):
        return ["its inputs were not recorded"]
    return list(observed["unobservable"])


def _is_observed(observed) -> TypeGuard[dict]:
    """The shape `DependencyRecorder.observed` sends (a worker's result is checked before it is trusted)."""

    def strings(items):
        return isinstance(items, list) and all(isinstance(x, str) for x in items)

    if not isinstance(observed, dict) or not strings(observed.get("unobservable")):
        return False
    env, listings, dists = observed.get("env"), observed.get("listings"), observed.get("dists")
    return (
        isinstance(env, dict)
        and all(isinstance(k, str) and isinstance(v, (str, type(None))) for k, v in env.items())
        and isinstance(listings, list)
        and all(
            isinstance(r, list) and len(r) == 2 and isinstance(r[0], str) and isinstance(r[1], bool) for r in listings
        )
        and isinstance(dists, list)
        and all(isinstance(d, dict) and isinstance(d.get("metadata"), str) for d in dists)
        and strings(observed.get("library_files"))
    )


def store_result(
    label: str,
    target_path: Path | None,
    options: dict,
    findings: list[Finding],
    target: dict,
    deps: list[Path],
    *,
    observed: dict,
    started_ns: int | None = None,
) -> None:
    """Cache a result with every observed input: the content of every file, the listing of every
    directory, the value of every environment variable. Not when an input could not be observed, nor when
    a file or directory changed after the check began (the recorder's `started_ns`, or this process's
    lookup of the target): the result may come from its old content."""
    if uncacheable(observed):
        return
    looked_up_ns = _LOOKED_UP_NS.pop(_identity(label, target_path, options), None)
    since = min((t for t in (started_ns, looked_up_ns) if t is not None), default=None)
    key = _primary_key(label, target_path, options)
    if key is None:
        return
    if target_path is not None and Path(target_path).resolve() not in {Path(path) for path in deps}:
        return  # dependencies were not recorded: nothing could tell this entry is stale
    extra = [*observed.get("library_files", []), *(d["metadata"] for d in observed.get("dists", []))]
    paths = sorted({Path(path) for path in [*deps, *extra]})
    hashed_at_ns = time.time_ns()
    records = [_dependency(path) for path in paths]
    listings = [_listing(path, import_only) for path, import_only in observed.get("listings", [])]
    if not (_none_missing(records) and _none_missing(listings)):
        return  # a dependency vanished or changed while it was hashed
    stamps = [max(r["mtime_ns"], r["ctime_ns"]) for r in [*records, *listings] if "mtime_ns" in r]
    if since is not None and any(stamp >= since for stamp in stamps):
        return
    # The values as this process sees them: the worker got this environment, and what mulint's worker
    # setup overrode (its own scratch folders) is mulint's, not an input the user controls.
    from mulint.engine.observe import current_environment

    env = current_environment(observed.get("env", {}))
    write_atomic(
        _path(key),
        {
            "format": _FORMAT,
            "key": key,
            "hashed_at_ns": hashed_at_ns,
            "deps": records,
            "listings": [{"path": r["path"], "import_only": r["import_only"], "names": r["names"]} for r in listings],
            "env": env,
            "dists": observed.get("dists", []),
            "findings": [f.to_dict() for f in findings],
            "target": target,
        },
    )


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


def _same_environment(env: dict) -> bool:
    from mulint.engine.observe import current_environment

    return current_environment(env) == env


def _listing(path: str, import_only: bool) -> dict | None:
    """The directory's names (only those the import system could import, when only it listed the folder:
    an editor's swap file there changes nothing), as a digest; None when it changes while it is read."""
    try:
        before = os.stat(path)
    except FileNotFoundError:
        return {"path": path, "import_only": import_only, "names": None}  # listed while missing: must stay so
    except OSError:
        return None
    names = _names_digest(path, import_only)
    try:
        after = os.stat(path)
    except OSError:
        return None
    if names is None or _stat_record(before) != _stat_record(after):
        return None
    return {"path": path, "import_only": import_only, "names": names, **_stat_record(after)}


def _names_digest(path: str, import_only: bool) -> str | None:
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return None
    except OSError:
        return "<unreadable>"
    if import_only:
        from importlib.machinery import all_suffixes

        suffixes = tuple(all_suffixes())
        names = [n for n in names if n.partition(".")[0].isidentifier() and ("." not in n or n.endswith(suffixes))]
    return hashlib.sha256("\0".join(sorted(names)).encode("utf-8", "surrogateescape")).hexdigest()


def _same_listing(row: dict) -> bool:
    if row["names"] is None:
        return not os.path.lexists(row["path"])
    return _names_digest(row["path"], row["import_only"]) == row["names"]


def _stat_record(info: os.stat_result) -> dict:
    return {
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "ctime_ns": info.st_ctime_ns,
        "ino": info.st_ino,
        "dev": info.st_dev,
    }


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
    """Of a regular file only: a FIFO put in a file's place must not block (OSError otherwise)."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file of at most `limit` bytes; None for anything else (a FIFO, a device,
    a folder, a link to /dev/zero), without blocking."""
    from mulint.sources import NotSource, read_source

    try:
        return read_source(path, limit)
    except (OSError, NotSource):
        return None


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


def read_json(path: Path):
    data = _read_regular(path, _MAX_ENTRY_BYTES)
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def _is_int(value) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _none_missing(rows: list[_Row | None]) -> TypeGuard[list[_Row]]:
    return all(row is not None for row in rows)


def _parse_entry(data, key: str) -> tuple[list[Finding], dict, list[dict], int, dict] | None:
    if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("key") != key:
        return None
    hashed_at_ns, deps, target = data.get("hashed_at_ns"), data.get("deps"), data.get("target")
    if not _is_int(hashed_at_ns) or not isinstance(target, dict) or not isinstance(deps, list):
        return None
    if not all(_is_dependency(dep) for dep in deps):
        return None
    env, listings = data.get("env"), data.get("listings")
    if not isinstance(env, dict) or not all(isinstance(v, (str, type(None))) for v in env.values()):
        return None
    if not isinstance(listings, list) or not all(_is_listing(row) for row in listings):
        return None
    findings = _parse_findings(data.get("findings"))
    if findings is None:
        return None
    return findings, target, deps, hashed_at_ns, {"env": env, "listings": listings}


def _is_listing(row) -> bool:
    return (
        isinstance(row, dict)
        and isinstance(row.get("path"), str)
        and bool(row["path"])
        and isinstance(row.get("import_only"), bool)
        and isinstance(row.get("names"), (str, type(None)))
    )


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
    findings = [f for f in map(_parse_finding, rows) if f is not None]
    return findings if len(findings) == len(rows) else None


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
    if not isinstance(row["edits"], list):
        return None
    try:
        edits = [edit_from_dict(edit) for edit in row["edits"]]
    except EditError:
        return None
    return Fix(row["applicability"], row["message"], edits)


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


def write_atomic(path: Path, payload: dict) -> None:
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
