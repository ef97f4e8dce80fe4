"""Inputs of a model's code that are not files it opens: the environment variables it reads, the
directories it lists and the installed distributions of the modules it runs. The result cache keys each
of them (`mulint.engine.cache`), so `USE_MUP=1`, a new file matched by a glob or an upgraded library analyses
the model again.

Environment reads have no audit event: the process's `os.environ` object is given a recording class in
place (its identity kept, so `os.getenv` and every saved reference record too). The worker process ends
after one target, so the class is never put back.

Only what the user's code observes counts: a read, listing or effect is recorded when a frame of the
user's own files is on the stack (their own code, or a library it called). mulint's and torch's own
reads (torch's config variables, mulint's search for local modules) are not inputs of the model."""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import os
import sys
from importlib import metadata
from types import FrameType

_LIBRARY_PARTS = {"site-packages", "dist-packages", "__pycache__"}
excluded: tuple[str, ...] = ()  # roots of files that are not the user's (set by the recorder)
recording = False
_ENV_READ: dict[str, str | None] = {}  # name -> value when read, None when it was unset
_ENV_WRITTEN: set[str] = set()  # set by the process itself (torch sets some of its own): not inputs
_WHOLE_ENV = "*"  # the name recorded when code reads every variable (iterates the environment)


class _RecordingEnviron(os._Environ):
    """os.environ that notes every variable read while recording is on."""

    def __getitem__(self, key):
        try:
            value = super().__getitem__(key)
        except KeyError:
            _note(key, None)
            raise
        _note(key, value)
        return value

    def __contains__(self, key):
        found = super().__contains__(key)
        if not found:
            _note(key, None)
        else:
            self[key]  # noqa: B018 - records the value
        return found

    def __setitem__(self, key, value):
        if recording:
            _ENV_WRITTEN.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key):
        if recording:
            _ENV_WRITTEN.add(key)
        super().__delitem__(key)

    def __iter__(self):
        if recording and _WHOLE_ENV not in _ENV_READ and user_frame(2) is not None:
            _ENV_READ[_WHOLE_ENV] = whole_environment()
        return super().__iter__()


def _note(key, value) -> None:
    if (
        recording
        and isinstance(key, str)
        and key not in _ENV_READ
        and key not in _ENV_WRITTEN
        and user_frame(3) is not None
    ):
        _ENV_READ[key] = value


def is_excluded(text: str, roots: tuple[str, ...]) -> bool:
    """Whether an absolute path is Python's, an installed library's, compiled code or under one of roots."""
    if _LIBRARY_PARTS & set(text.split(os.sep)):
        return True
    return any(text == root or text.startswith(root + os.sep) for root in roots)


def user_frame(depth: int):
    """The innermost frame of the user's own code on the stack above `depth`, or None."""
    try:
        frame: FrameType | None = sys._getframe(depth)
    except ValueError:
        return None
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith("<") and not is_excluded(os.path.abspath(name), excluded):
            return frame
        frame = frame.f_back
    return None


def whole_environment() -> str:
    """A digest of every variable, for code that reads them all (`dict(os.environ)`, `subprocess`)."""
    text = "\0".join(f"{k}={v}" for k, v in sorted(os.environ._data.items()))  # type: ignore[attr-defined]
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def watch_environment() -> None:
    if type(os.environ) is os._Environ:
        os.environ.__class__ = _RecordingEnviron


def environment_read() -> dict[str, str | None]:
    return dict(_ENV_READ)


def current_environment(names) -> dict[str, str | None]:
    """This process's values of the names, as `environment_read` records them."""
    return {name: whole_environment() if name == _WHOLE_ENV else os.environ.get(name) for name in names}


# --- installed distributions ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _stdlib_names() -> frozenset[str]:
    return frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names)


def distributions(module_names) -> tuple[list[dict], list[str]]:
    """({"name", "version", "metadata"}: the distribution of each top-level module and the file holding
    its version), and the top-level names no distribution claims (stdlib ones left out)."""
    tops = _tops(module_names)
    found: dict[str, dict] = {}
    unclaimed = []
    for top in sorted(tops):
        records = _known[top] if top in _known else _records_of(top)
        if not records:
            unclaimed.append(top)
        for record in records:
            found.setdefault(record["name"], dict(record))
    return sorted(found.values(), key=lambda d: d["name"]), unclaimed


# top-level module -> its distributions' records, read in a process that forks workers, for the modules
# imported there: every worker runs those very modules, so what they were installed as when imported is
# what a result depends on. Reading the metadata again cost each worker 0.05 s.
_known: dict[str, list[dict]] = {}


def remember_distributions() -> None:
    """Read now the distributions of every top-level module imported so far (before forking workers)."""
    for top in _tops(list(sys.modules)) - _known.keys():
        try:
            _known[top] = _records_of(top)
        except Exception:  # noqa: BLE001 - a module odd enough to fail here is read by each worker, as before
            continue


def _tops(module_names) -> set[str]:
    """The top-level names of the modules, the standard library's and mulint's own left out."""
    return {name.partition(".")[0] for name in module_names} - _stdlib_names() - {"mulint", "__main__", ""}


def _records_of(top: str) -> list[dict]:
    records = []
    for dist in _distributions_of(top):
        try:
            name, version = dist.metadata["Name"], dist.version
        except (OSError, ValueError, KeyError, TypeError):
            continue
        record = _metadata_file(getattr(dist, "_path", None))
        if name and record is not None:
            records.append({"name": name, "version": version, "metadata": record})
    return records


def _distributions_of(top: str) -> list:
    """The installed distributions that provide a top-level module: by its own name first, then by the
    top_level.txt of the distributions beside it (cheap), then by every distribution's file list."""
    try:
        dist = metadata.distribution(top)
        if top in (dist.read_text("top_level.txt") or top).split():
            return [dist]
    except (metadata.PackageNotFoundError, OSError, ValueError):
        pass
    for folder in _folders_of(top):
        beside = [metadata.PathDistribution(info) for info in _provided(str(folder)).get(top, [])]
        if beside:
            return beside
    return []  # its file is keyed instead (deps: library_files)


def _folders_of(top: str) -> list:
    from pathlib import Path

    module = sys.modules.get(top)
    files = [getattr(module, "__file__", None)] + list(getattr(module, "__path__", None) or [])
    folders = []
    for text in files:
        if isinstance(text, str) and text:
            path = Path(text)
            folders.append(path.parent.parent if path.name.startswith("__init__.") else path.parent)
    return folders


@functools.cache
def _provided(folder: str) -> dict[str, list]:
    """top-level module -> the distribution folders installed in `folder` that provide it, from their
    top_level.txt or, without one, the first part of each path in RECORD."""
    from pathlib import Path

    out: dict[str, list] = {}
    try:
        infos = sorted(p for p in Path(folder).iterdir() if p.suffix in (".dist-info", ".egg-info") and p.is_dir())
    except OSError:
        return out
    for info in infos:
        try:
            if (info / "top_level.txt").is_file():
                tops = set((info / "top_level.txt").read_text(errors="replace").split())
            else:
                lines = (info / "RECORD").read_text(errors="replace").splitlines()
                tops = {line.split(",", 1)[0].split("/", 1)[0] for line in lines}
                tops = {t.split(".", 1)[0] for t in tops if not t.endswith((".dist-info", ".data"))}
        except OSError:
            continue
        for top in tops:
            out.setdefault(top, []).append(info)
    return out


def _metadata_file(where) -> str | None:
    """The file holding a distribution's version: METADATA (dist-info), PKG-INFO (egg-info), or an
    egg-info that is itself a file."""
    if where is None:
        return None
    where = os.fspath(where)
    if os.path.isfile(where):
        return where
    for name in ("METADATA", "PKG-INFO"):
        if os.path.isfile(os.path.join(where, name)):
            return os.path.join(where, name)
    return None


def is_native_extension(path: str) -> bool:
    return path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
