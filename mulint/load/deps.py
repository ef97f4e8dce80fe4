"""The local files a model's code depends on: the modules it imports and the files it reads while it is
imported and built. The result cache checks each of them, so an edit anywhere (a subpackage, a parent
folder, a JSON config) analyses the model again."""

from __future__ import annotations

import functools
import os
import site
import sys
import sysconfig
import time
from pathlib import Path

_HOOK_INSTALLED = False
_ACTIVE = 0  # recorders between __enter__ and __exit__
# Every file opened for reading while any recorder was active in this process. A module imported in an
# earlier recording is not imported again, so what it read then counts for every later recording too.
_READ: set[str] = set()
_FIRST_STARTED_NS: int | None = None
_SYSTEM_DIRS = (Path("/proc"), Path("/sys"), Path("/dev"))
_LIBRARY_PARTS = {"site-packages", "dist-packages"}


class DependencyRecorder:
    """Records the local files a model's code depends on, while it is imported and built."""

    def __init__(self) -> None:
        self._snapshot: tuple[list[str], set[str]] | None = None  # module files and reads, taken at __exit__
        # When this process began recording: what it imported or read since may come from older content,
        # so a file changed after it must not be stored as the content the result came from.
        self.started_ns = 0

    def __enter__(self) -> "DependencyRecorder":
        global _ACTIVE, _FIRST_STARTED_NS
        _install_hook()
        if _FIRST_STARTED_NS is None:
            _FIRST_STARTED_NS = time.time_ns()
        self.started_ns = _FIRST_STARTED_NS
        self._snapshot = None
        _ACTIVE += 1
        return self

    def __exit__(self, *exc) -> None:
        global _ACTIVE
        _ACTIVE -= 1
        self._snapshot = (_module_files(), set(_READ))

    def files(self) -> list[Path]:
        """Resolved paths, sorted, deduplicated: local modules in sys.modules and files opened for reading."""
        modules, read = self._snapshot if self._snapshot is not None else (_module_files(), set(_READ))
        excluded = _excluded_roots()
        found = set()
        for text in {*modules, *read}:
            path = _local_file(text, excluded)
            if path is not None:
                found.add(path)
        return sorted(found)


def _install_hook() -> None:
    # Audit hooks cannot be removed: one per process, idle unless a recorder is active.
    global _HOOK_INSTALLED
    if not _HOOK_INSTALLED:
        sys.addaudithook(_on_audit_event)
        _HOOK_INSTALLED = True


def _on_audit_event(event: str, args: tuple) -> None:
    if event != "open" or not _ACTIVE:
        return
    try:
        path, mode, flags = args
        if isinstance(path, int) or not _reads(mode, flags):
            return  # an open file descriptor names no path
        _READ.add(os.path.abspath(os.fsdecode(path)))  # relative to the directory of the moment
    except Exception:  # an audit hook must never break the code being recorded
        return


def _reads(mode, flags) -> bool:
    """Whether an open reads existing content: builtin open gives a mode string, os.open only flags."""
    if isinstance(mode, str):
        return "r" in mode or ("a" in mode and "+" in mode)
    if isinstance(flags, int):  # a truncated or freshly created file holds nothing read from before
        return (flags & os.O_ACCMODE) != os.O_WRONLY and not flags & (os.O_TRUNC | os.O_EXCL)
    return False


def _module_files() -> list[str]:
    files = []
    for module in list(sys.modules.values()):
        try:
            path = getattr(module, "__file__", None)
        except Exception:  # a lazy module may import on attribute access, and fail
            continue
        if isinstance(path, str) and path:
            files.append(path)
    return files


def _local_file(text: str, excluded: tuple[str, ...]) -> Path | None:
    """The resolved regular file, unless it belongs to Python, an installed library, mulint or the OS."""
    if _is_excluded(os.path.abspath(text), excluded):
        return None  # most of sys.modules: decided without a system call
    try:
        path = Path(text).resolve()
        if not path.is_file():
            path = _archive_of(path)  # a module imported from a zip archive
    except (OSError, ValueError, RuntimeError):
        return None
    if path is None or _is_excluded(str(path), excluded):
        return None
    return path


def _is_excluded(text: str, excluded: tuple[str, ...]) -> bool:
    parts = set(text.split(os.sep))
    if "__pycache__" in parts or _LIBRARY_PARTS & parts:
        return True  # compiled code (its source is recorded) or an installed library
    return any(text == root or text.startswith(root + os.sep) for root in excluded)


def _excluded_roots() -> tuple[str, ...]:
    """Python's and the libraries' folders, mulint's own package and its cache, as given and resolved."""
    import mulint
    from mulint.cache import cache_root

    roots = {*_library_roots(), Path(mulint.__file__).parent, cache_root()}
    return tuple({text for root in roots for text in (os.path.abspath(root), str(_resolved(root)))})


def _archive_of(path: Path) -> Path | None:
    for parent in path.parents:
        if parent.is_file():
            return parent
    return None


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[Path, ...]:
    roots = set(_SYSTEM_DIRS)
    for scheme_paths in (sysconfig.get_paths(), sysconfig.get_paths(vars={"base": sys.base_prefix,
                                                                          "platbase": sys.base_exec_prefix})):
        # "scripts": console scripts of installed packages (mulint's own is a worker's __main__)
        roots.update(Path(scheme_paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib", "scripts"))
    roots.update(Path(p) for p in site.getsitepackages())
    roots.add(Path(site.getusersitepackages()))
    return tuple(roots)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path
