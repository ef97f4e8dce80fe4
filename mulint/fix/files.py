"""Writing a fixed file as a careful editor does.

* A symlink: the file it points to is edited and the link stays a link.
* A read-only file (no write bit, or not writable for this user) is not rewritten.
* The file is re-read under an advisory lock (`flock`) just before it is written: if it changed since
  it was read for planning (another `--fix`, an editor), it is left alone, unless it already holds
  exactly the fixed text (another run made the same fixes).
* The new text replaces the file atomically (a temporary file beside it, renamed over it) with the
  file's mode, owner and extended attributes; a file with hard links, or whose owner or attributes
  a new file could not get, is rewritten in place instead (see `_write_in_place`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the re-read before writing still guards
    fcntl = None  # type: ignore[assignment]  # checked before each use

READ_ONLY = "the file is read-only"
CHANGED = "the file changed since it was checked; run mulint again"
LOCKED = "another program kept the file locked"
LOCK_WAIT = 30.0  # seconds: a fix takes milliseconds to write


class NotWritten(Exception):
    """The file was left as it is; the message says why (its findings keep it as their note)."""


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_digest(path: Path) -> str | None:
    """sha256 of a regular source file, None for anything else or unreadable; never blocks on a FIFO."""
    from mulint.sources import NotSource, read_source

    try:
        return digest(read_source(path))
    except (OSError, NotSource):
        return None


def read_only(path: Path) -> bool:
    """Whether `path` (the file a symlink points to) is read-only as its users see it. root may write
    any file, so the mode bits decide as well: a file without a write bit was made read-only on
    purpose (`chmod a-w`), and an editor refuses to write it without being forced."""
    info = os.stat(path)
    return not info.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK)


def write_fixed(path: Path, original: bytes, fixed: bytes) -> bool:
    """Write `fixed` to the file at `path`, which held `original` when the fixes were planned. True
    when written, False when the file already holds `fixed`; raises NotWritten when it changed since
    or became read-only."""
    real = Path(os.path.realpath(path))  # through a symlink: the link itself stays
    with _locked(real) as fd:
        current = _read_all(fd)
        if current == fixed:
            return False
        if digest(current) != digest(original):
            raise NotWritten(CHANGED)
        if read_only(real):
            raise NotWritten(READ_ONLY)
        info = os.fstat(fd)
        if info.st_nlink > 1 or not _replace(real, fixed, info):
            _write_in_place(real, fixed, current)
    return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    """A read descriptor of the file at `path`, held under an exclusive `flock`. Another run that
    replaced the file while this one waited has locked the file that is no longer there: then the
    new file is locked instead."""
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise NotWritten(CHANGED) from None  # removed or renamed since it was read
        try:
            _lock(fd)
            if _still_at(fd, path):
                yield fd
                return
        finally:
            os.close(fd)  # closing releases the lock


def _lock(fd: int) -> None:
    """An exclusive flock, waiting at most LOCK_WAIT seconds for another run to finish writing."""
    if fcntl is None:
        return
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise NotWritten(LOCKED) from None
            time.sleep(0.02)


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file is still the one at `path` (not replaced or removed meanwhile)."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view, offset = memoryview(data), 0
    while offset < len(data):
        offset += os.pwrite(fd, view[offset:], offset)


def _replace(real: Path, data: bytes, info: os.stat_result) -> bool:
    """Write `data` to a new file beside `real` with its owner and mode, synced, and rename it over
    `real`: readers and a crash see the old or the new file, never a part of one. False, with nothing
    changed, when the directory takes no new file or the new file cannot get the owner or the
    extended attributes."""
    try:
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".mulint")
    except OSError:
        return False
    try:
        try:
            own = os.fstat(fd)
            if (own.st_uid, own.st_gid) != (info.st_uid, info.st_gid):
                os.fchown(fd, info.st_uid, info.st_gid)  # before chmod: chown clears set-id bits
            _copy_attributes(real, fd)
        except OSError:
            os.close(fd)
            os.unlink(tmp)
            return False
        os.fchmod(fd, stat.S_IMODE(info.st_mode))
        _write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, real)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _sync_directory(real.parent)
    return True


def _copy_attributes(real: Path, fd: int) -> None:
    """The file's extended attributes (its ACL and security label among them) on the new file."""
    if not hasattr(os, "listxattr"):
        return
    try:
        names = os.listxattr(real)
    except OSError:  # a filesystem without extended attributes: nothing to keep
        return
    for name in names:
        os.setxattr(fd, name, os.getxattr(real, name))


def _write_in_place(real: Path, data: bytes, current: bytes) -> None:
    """Hard links are names of one inode: a rename would give this name a new file and leave the other
    names with the old text, so the new text goes into the shared inode itself (the file keeps its
    owner and mode by construction). The text was verified to parse before, and a synced backup of the
    original stays beside the file until the new text is on disk, so a crash mid-write loses nothing
    (vim's `backupcopy=yes`); a failed write puts the original back."""
    backup = _backup(real, current)
    fd = os.open(real, os.O_WRONLY)
    try:
        _write_all(fd, data)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    except OSError:
        _write_all(fd, current)  # if this fails too, the backup is still there
        os.ftruncate(fd, len(current))
        raise
    finally:
        os.close(fd)
        if backup is not None and _read_back(real) in (data, current):
            os.unlink(backup)


def _backup(real: Path, data: bytes) -> Path | None:
    """A synced copy of `data` beside `real`, or None when the directory takes no new file."""
    try:
        fd, name = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".mulint-backup")
    except OSError:
        return None
    try:
        _write_all(fd, data)
        os.fsync(fd)
    except OSError:
        os.unlink(name)
        return None
    finally:
        os.close(fd)
    return Path(name)


def _read_back(path: Path) -> bytes | None:
    with contextlib.suppress(OSError):
        return path.read_bytes()
    return None


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable; some filesystems do not let a directory be synced."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
