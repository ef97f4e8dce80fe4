"""The local files a model's code depends on: the modules it imports and the files it reads while it is
imported and built, and its other observed inputs (directories listed, environment variables read, the
installed distributions it ran; see `mulint.engine.observe`). The result cache checks each of them, so an
edit anywhere (a subpackage, a parent folder, a JSON config, `USE_MUP=1`, a new file a glob matches, an
upgraded library) analyses the model again. What cannot be observed (a read by a native extension of
the project, a library loaded with ctypes, /proc, a process or the network) is named, and the result is
then not cached."""

from __future__ import annotations

import functools
import os
import site
import sys
import sysconfig
import time
from pathlib import Path

from mulint import steps
from mulint.engine import observe

_HOOK_INSTALLED = False
_ACTIVE = 0  # recorders between __enter__ and __exit__
# Every file opened for reading while any recorder was active in this process. A module imported in an
# earlier recording is not imported again, so what it read then counts for every later recording too.
_READ: set[str] = set()
_LISTED: dict[str, bool] = {}  # directory -> listed only by the import system (then only module names count)
_UNOBSERVABLE: dict[str, None] = {}  # why an input of the model's code could not be observed, in order
_PROCESS_EVENTS = {
    "subprocess.Popen": "starts a process",
    "os.system": "starts a process",
    "os.posix_spawn": "starts a process",
    "os.exec": "starts a process",
    "os.spawn": "starts a process",
    "ctypes.dlopen": "loads a native library with ctypes",
    "socket.connect": "uses the network",
    "socket.getaddrinfo": "uses the network",
}
_FIRST_STARTED_NS: int | None = None
_SYSTEM_DIRS = (Path("/proc"), Path("/sys"), Path("/dev"))


class DependencyRecorder:
    """Records the local files a model's code depends on, while it is imported and built."""

    def __init__(self) -> None:
        self._snapshot: tuple[list[str], set[str]] | None = None  # module files and reads, taken at __exit__
        self._observed: dict | None = None  # inputs besides files, taken at __exit__
        # When this process began recording: what it imported or read since may come from older content,
        # so a file changed after it must not be stored as the content the result came from.
        self.started_ns = 0

    def __enter__(self) -> DependencyRecorder:
        global _ACTIVE, _FIRST_STARTED_NS
        observe.excluded = _excluded_roots()
        _install_hook()
        observe.watch_environment()
        observe.recording = True
        if _FIRST_STARTED_NS is None:
            _FIRST_STARTED_NS = time.time_ns()
        self.started_ns = _FIRST_STARTED_NS
        self._snapshot = None
        self._observed = None
        _ACTIVE += 1
        return self

    def __exit__(self, *exc) -> None:
        global _ACTIVE
        _ACTIVE -= 1
        observe.recording = _ACTIVE > 0
        with steps.phase("dependencies"):
            self._snapshot = (_module_files(), set(_READ))
            self._observed = self._observe()

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

    def observed(self) -> dict:
        """Inputs besides files: {"listings": [[dir, import_only]], "env": {name: value or None},
        "dists": [{"name", "version", "metadata"}], "library_files": [...], "unobservable": [why, ...]}."""
        return self._observed if self._observed is not None else self._observe()

    def _observe(self) -> dict:
        excluded = _excluded_roots()
        outside, library_files, unobservable = [], [], list(_UNOBSERVABLE)
        for name, module in list(sys.modules.items()):
            try:
                path = getattr(module, "__file__", None)
            except Exception:  # a lazy module may import on attribute access, and fail
                continue
            if not isinstance(path, str) or not path:
                outside.append(name)
            elif _local_file(path, excluded) is None:
                outside.append(name)
            elif observe.is_native_extension(path):
                unobservable.append(f"imports the native extension {path}: what it reads cannot be observed")
        dists, unclaimed = observe.distributions(outside)
        for name in unclaimed:
            path = getattr(sys.modules.get(name), "__file__", None)
            if isinstance(path, str) and os.path.isfile(path) and not _is_excluded(os.path.abspath(path), _own_roots()):
                library_files.append(os.path.abspath(path))  # a module no installed distribution claims
        listings = sorted(
            [path, only] for path, only in _LISTED.items() if not _is_excluded(path, excluded) and not _is_system(path)
        )
        return {
            "listings": listings,
            "env": observe.environment_read(),
            "dists": dists,
            "library_files": sorted(set(library_files)),
            "unobservable": unobservable,
        }


def gathered() -> frozenset:
    """What the recordings of this process have gathered that a result's dependencies are made of, as
    tagged items: the local files read and listed, the local modules and the packages imported, what could
    not be observed and the environment variables looked up (`mulint.parallel` takes a result computed
    beside the worker only when the worker has gathered by then whatever that work added)."""
    excluded = _excluded_roots()
    items: set = {("read", path) for path in _READ if not _is_excluded(path, excluded)}
    items |= {("listed", item) for item in _LISTED.items() if not _is_excluded(item[0], excluded)}
    items |= {("module", path) for path in _module_files() if not _is_excluded(os.path.abspath(path), excluded)}
    items |= {("package", name.partition(".")[0]) for name in list(sys.modules)}
    items |= {("unobservable", why) for why in _UNOBSERVABLE}
    items |= {("env", item) for item in observe.environment_read().items()}
    return frozenset(items)


def _own_roots() -> tuple[str, ...]:
    """mulint's package and Python's standard library (keyed by Python's version)."""
    import mulint

    paths = sysconfig.get_paths()
    roots = {Path(mulint.__file__).parent, Path(paths["stdlib"]), Path(paths["platstdlib"])}
    return tuple({text for root in roots for text in (os.path.abspath(root), str(_resolved(root)))})


def _install_hook() -> None:
    # Audit hooks cannot be removed: one per process, idle unless a recorder is active.
    global _HOOK_INSTALLED
    if not _HOOK_INSTALLED:
        sys.addaudithook(_on_audit_event)
        _HOOK_INSTALLED = True


def _on_audit_event(event: str, args: tuple) -> None:
    if not _ACTIVE:
        return
    try:
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int) or not _reads(mode, flags):
                return  # an open file descriptor names no path
            path = os.path.abspath(os.fsdecode(path))  # relative to the directory of the moment
            _READ.add(path)
            if _is_system(path) and path != os.devnull:
                _unobservable(f"reads {path}")
        elif event in ("os.listdir", "os.scandir"):
            path = args[0]
            if isinstance(path, int):
                return
            path = os.path.abspath(os.fsdecode(path) if path is not None else ".")
            if _is_system(path):
                _unobservable(f"lists {path}")
            elif observe.user_frame(2) is not None:
                caller = sys._getframe(1).f_code.co_filename
                _LISTED[path] = _LISTED.get(path, True) and caller.startswith("<frozen importlib")
        elif event in _PROCESS_EVENTS or event.startswith(("os.exec", "os.spawn")):
            _unobservable(_PROCESS_EVENTS.get(event) or "starts a process")
    except Exception:  # an audit hook must never break the code being recorded
        return


def _is_system(path: str) -> bool:
    return any(path == str(root) or path.startswith(str(root) + os.sep) for root in _SYSTEM_DIRS)


def _unobservable(what: str) -> None:
    """Noted only when the user's code is on the stack: mulint's and torch's own reads are theirs."""
    frame = observe.user_frame(3)
    if frame is not None:
        _UNOBSERVABLE.setdefault(f"{what} (line {frame.f_lineno} of {frame.f_code.co_filename})")


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
        resolved = Path(text).resolve()
        path = resolved if resolved.is_file() else _archive_of(resolved)  # else imported from a zip archive
    except (OSError, ValueError, RuntimeError):
        return None
    if path is None or _is_excluded(str(path), excluded):
        return None
    return path


def _is_excluded(text: str, excluded: tuple[str, ...]) -> bool:
    return observe.is_excluded(text, excluded)  # compiled code (its source is recorded) or a library


def _excluded_roots() -> tuple[str, ...]:
    """Python's and the libraries' folders, mulint's own package and its cache, as given and resolved."""
    import mulint
    from mulint.engine.cache import cache_root

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
    for scheme_paths in (
        sysconfig.get_paths(),
        sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix}),
    ):
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
