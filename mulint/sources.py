"""Reading a user's source file: regular files only, and only so much of them.

Every read of user source in the static pass comes here. A FIFO named `pipe.py` would block the read
forever and a symlink to `/dev/zero` would be read until memory runs out, so a file is opened without
blocking, checked to be a regular file, and refused above a size no source file reaches.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mulint.errors import MulintError

MAX_SOURCE_BYTES = 16 << 20  # far above any hand-written module (the largest in torch: ~1 MB)

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


class NotSource(MulintError):
    """A path that is not a regular file of a readable size: named in the message, never read."""


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_source(path: Path, limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of ``path``: OSError when it cannot be read, NotSource when it is not a regular file
    (through symlinks) or is larger than ``limit``."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotSource(
                f"{path} is {kind_of(info.st_mode)}, not a regular file: not read",
                step="parse",
                hint="mulint reads only regular .py files; exclude it or name the real file",
            )
        if info.st_size > limit:
            raise NotSource(
                f"{path} is {info.st_size >> 20} MB: larger than any source file mulint reads "
                f"({limit >> 20} MB): not read",
                step="parse",
                hint="a generated or data file? exclude it (`exclude` in the config)",
            )
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while being read
            raise NotSource(f"{path} grew past {limit >> 20} MB while being read: not read", step="parse")
        return b"".join(chunks)
    finally:
        os.close(fd)


def is_regular(path: Path) -> bool:
    """Whether ``path`` (through symlinks) is a regular file, without opening it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False
