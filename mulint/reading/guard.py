"""The second line of defence for bare files: effects refused while a worker imports one.

mulint imports a file it was not told to import (a bare file, found in a folder) only when the static
walk (`mulint.reading.safety`) finds nothing with an effect at import time. A walk can be fooled (code
run implicitly by `hasattr`, `__subclasshook__`, `typing` evaluators, names rebound after use), so the
worker also installs an audit hook (PEP 578) that, while such a file is imported, refuses what the
walk would have forbidden: starting or signalling processes, the network, writing or removing files
outside the worker's scratch folder, calling native code through ctypes, initialising CUDA. The
refused call raises, and the import ends as the same "not imported: line N runs ... at import time"
note the walk gives, naming the user's line.

Only the import is guarded. Building and tracing the model run the code the user wrote to be run
when a model is made; torch's own tracing machinery writes its caches and may start compilers there,
and refusing those would fail correct models. A file named explicitly (PATH:NAME) is not guarded:
the user asked for it to be imported.

Audit hooks cannot be removed, so the hook is installed once per worker (workers are per target) and
costs one test of a flag per audited event while no import is guarded.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from mulint.errors import MulintError

_PROCESS = {
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.startfile",
    "os.kill",
    "os.killpg",
    "pty.spawn",
}
_NATIVE = {"ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "ctypes.cdata", "ctypes.addressof"}
_NETWORK = {
    "socket.connect",
    "socket.bind",
    "socket.sendto",
    "socket.sendmsg",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "socket.getnameinfo",
    "urllib.Request",
    "http.client.connect",
    "ftplib.connect",
    "smtplib.connect",
    "poplib.connect",
    "imaplib.open",
    "nntplib.connect",
    "telnetlib.Telnet.open",
    "webbrowser.open",
}
# event -> the positions of its arguments that name a file it creates, changes or removes
_FILES = {
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.rename": (0, 1),
    "os.mkdir": (0,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.link": (1,),
    "os.symlink": (1,),
    "os.truncate": (0,),
    "os.utime": (0,),
    "os.chflags": (0,),
    "os.lchflags": (0,),
    "os.mkfifo": (0,),
    "os.mknod": (0,),
    "os.setxattr": (0,),
    "os.removexattr": (0,),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.copymode": (1,),
    "shutil.copystat": (1,),
    "shutil.move": (0, 1),
    "shutil.make_archive": (0,),
    "shutil.unpack_archive": (1,),
    "shutil.chown": (0,),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

_scratch: str | None = None  # set by `install`: the only folder user code may write to
_armed = False  # this worker's target comes from a bare file: its import is guarded
_folder: str | None = None  # while guarding: the user's folder, to find the user's line on the stack
_refused: list[tuple[str, str, int]] = []  # (what, file, line) of each refused effect


class Refused(BaseException):
    """Raised by the hook. A BaseException, so `except Exception` in user code does not hide it
    (and a hidden one is still recorded, and ends the import)."""


def install(scratch: str, armed: bool) -> None:
    """Once per worker: the hook, and whether this worker's target import is guarded."""
    global _scratch, _armed
    _scratch, _armed = os.path.realpath(scratch), armed
    if armed:
        sys.addaudithook(_hook)


@contextlib.contextmanager
def guarded(folder: Path, target: str, path: Path):
    """Refuse effects while the block imports the user's file (a no-op unless `install` armed it).
    A refused effect ends the block as a MulintError of kind "refused", whatever the file did with
    the exception."""
    global _folder
    if not _armed:
        yield
        return
    _refused.clear()
    _folder = os.path.realpath(folder)
    restore = _guard_cuda()
    try:
        yield
    except BaseException:
        if not _refused:
            raise
    finally:
        _folder = None
        restore()
    if _refused:
        what, file, line = _refused[0]
        where = f"line {line}" if file == os.path.realpath(path) else f"line {line} of {_shown(file)}"
        raise MulintError(
            f"not imported: {where} runs {what} at import time (refused while importing)",
            target=target,
            step="import",
            kind="refused",
            hint=f'move that code under `if __name__ == "__main__":`, or name the model '
            f"explicitly ({path}:NAME) to import it anyway",
        )


def _shown(file: str) -> str:
    try:
        return os.path.relpath(file)
    except ValueError:
        return file


def _hook(event: str, args: tuple) -> None:
    if _folder is None:
        return
    if event in _PROCESS:
        _refuse(f"a process ({event})")
    elif event in _NETWORK:
        _refuse(f"network access ({event})")
    elif event in _NATIVE:  # C functions called by hand (libc's system()) would pass every other test
        _refuse(f"native code ({event})")
    elif event == "open":
        path, mode, flags = (tuple(args) + (None, None, 0))[:3]
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
        if writes and not _inside_scratch(path):
            _refuse(f"a write to {path} (open)")
    elif event in _FILES:
        for index in _FILES[event]:
            if index < len(args) and not _inside_scratch(args[index]):
                _refuse(f"a change to {args[index]} ({event})")


def _inside_scratch(path) -> bool:
    if isinstance(path, int) or path is None:
        return True  # an open descriptor: already allowed when it was opened
    if _scratch is None:
        return False  # not installed: no folder is scratch
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return real == os.devnull or real == _scratch or real.startswith(_scratch + os.sep)


def _refuse(what: str) -> None:
    asked = _user_line()
    if asked is None:
        return  # an installed library's own import-time code (a cache folder it makes): not the user's
    _refused.append((what, *asked))
    raise Refused(f"mulint refused {what} while importing a file it was not told to import")


_MULINT = os.path.dirname(os.path.realpath(__file__)) + os.sep
_LIBRARY = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def _user_line() -> tuple[str, int] | None:
    """The innermost frame of the user's folder: the line that asked for the effect. None when an
    installed library's module code, imported by the user's file, asked for it first."""
    folder = _folder
    if folder is None:
        return None  # not guarding: no user's folder to find
    frame: FrameType | None = sys._getframe(3)
    while frame is not None:
        file = frame.f_code.co_filename
        if not file.startswith("<"):
            real = os.path.realpath(file)
            library = any(part in real for part in _LIBRARY) or real.startswith(_MULINT)
            if not library and real.startswith(folder + os.sep):
                return real, frame.f_lineno
            if library and frame.f_code.co_name == "<module>":
                return None
        frame = frame.f_back
    return None


def _guard_cuda():
    """torch offers no audit event for CUDA: its lazy initialiser refuses while the guard is on."""
    cuda: Any = sys.modules.get("torch.cuda")  # its private initialiser is patched, which no module type declares
    original = getattr(cuda, "_lazy_init", None)
    if cuda is None or original is None:
        return lambda: None

    def refusing_init(*args, **kwargs):
        if _folder is not None:
            _refuse("CUDA initialisation (torch.cuda)")
        return original(*args, **kwargs)

    cuda._lazy_init = refusing_init

    def restore():
        cuda._lazy_init = original

    return restore
