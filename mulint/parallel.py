"""Work done beside the caller, on another core: a forked copy of the process runs it and sends back its
result, while the caller goes on with other work.

Only mulint's workers allow it (`allow`): a worker is mulint's own process, on one torch thread, whose
state a fork may copy. The Python API runs in the user's process, which may hold threads, CUDA or open
files; there every piece of work runs in turn, in the caller. Nothing the copy does survives it except
its result, so the caller takes that result only when whatever the copy added to the `watched` sets
(what the worker's dependency recorder gathers: the files read, the modules imported, the environment
variables looked up) the caller has gathered by then too: nothing it must record is lost with the copy.
Work that added more, failed in any way, or sent nothing back is done again in the caller, so a result
from beside is always the one the caller would have computed, and a failure is reported as if nothing
ran beside. No copy is made while a thread the model started runs (a lock it holds at the fork would be
held forever in the copy), and a copy that has not answered long after the caller needs it is killed
and its work done in the caller.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from mulint import steps

T = TypeVar("T")
_HEADER = struct.Struct("<Q")
_allowed = False
_watched: list[Callable[[], frozenset]] = []
_own_threads = 1  # the threads the process had when `allow` was called: mulint's own
# How long the caller waits for a copy, once it needs the result, before it does the work itself: the
# copy's work takes about as long as the caller's since the fork, so a copy far slower than that is stuck
# (on a lock some thread held at the fork).
MIN_WAIT = 10.0
WAIT_FACTOR = 4.0
outcomes: list[str] = []  # per result: "beside" (the copy's), "here" (computed by the caller) or "none"


def allow(watched: list[Callable[[], frozenset]]) -> None:
    """Let `beside` fork from now on in this process; ``watched``: what the caller records, as sets; a
    copy's result counts only when the caller's sets hold by then all that the copy added to them."""
    global _allowed, _own_threads
    _allowed = hasattr(os, "fork")
    _watched[:] = watched
    _own_threads = threading.active_count()


class Pending(Generic[T]):
    """Work started beside the caller; `result()` waits for it (or does it, when it ran nowhere else).
    ``redo`` False: a guess worth making only on another core; `result()` is then None wherever the
    copy's result cannot be taken, and the work never runs in the caller."""

    def __init__(self, work: Callable[[], T], redo: bool = True) -> None:
        self._work = work
        self._redo = redo
        self._pid: int | None = None
        self._read = -1
        self._started = time.monotonic()
        if not _allowed or threading.active_count() > _own_threads:
            return  # (a thread the model started could hold a lock the copy would wait on forever)
        read, write = os.pipe()
        _flush()  # the copy must not print what the caller buffered
        # What the model prints in the copy is held apart, and added to the caller's output only with the
        # result it came with: work done again in the caller prints once, as it would have.
        self._printed = tempfile.TemporaryFile()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the copy ends in os._exit, which coverage never sees
            os.close(read)
            os.dup2(self._printed.fileno(), 1)
            os.dup2(self._printed.fileno(), 2)
            _run_copy(work, write)
        os.close(write)
        self._pid, self._read = pid, read

    def result(self) -> T | None:
        if self._pid is None:
            return self._here()
        now = time.monotonic()
        data = _read_message(self._read, now + max(MIN_WAIT, WAIT_FACTOR * (now - self._started)))
        if data is None:
            os.kill(self._pid, signal.SIGKILL)  # stuck, or ended without a word: it is over either way
        os.close(self._read)
        _, status = os.waitpid(self._pid, 0)
        self._pid = None
        if data is not None and status == 0:
            try:
                added, value = pickle.loads(data)
                found = all(more <= watch() for more, watch in zip(added, _watched, strict=True))
            except Exception:  # noqa: BLE001 - a value that does not come back whole is computed here
                found = False
            if found:
                outcomes.append("beside")
                self._print_copys_output()
                return value
        self._printed.close()
        return self._here()

    def _print_copys_output(self) -> None:
        _flush()
        self._printed.seek(0)
        while chunk := self._printed.read(1 << 20):
            _write_all(1, chunk)
        self._printed.close()

    def cancel(self) -> None:
        """Stop the copy, if it still runs, and forget its result."""
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.close(self._read)
            os.waitpid(self._pid, 0)
            self._pid = None
            self._printed.close()
        self._redo = False

    def _here(self) -> T | None:
        if not self._redo:
            outcomes.append("none")
            return None
        outcomes.append("here")
        return self._work()


def beside(work: Callable[[], T], *, redo: bool = True) -> Pending[T]:
    return Pending(work, redo)


def _run_copy(work: Callable[[], object], write: int) -> None:
    status = 1
    try:
        _die_with_caller()
        steps.listen(None)  # the caller's listener speaks on the caller's pipe to mulint
        before = [watch() for watch in _watched]
        value = work()
        added = [watch() - old for watch, old in zip(_watched, before)]
        data = pickle.dumps((added, value), protocol=pickle.HIGHEST_PROTOCOL)
        _write_all(write, _HEADER.pack(len(data)) + data)
        status = 0
    except BaseException:  # noqa: B902 - the caller does the work again and reports what fails
        pass
    finally:
        _flush()  # what the model printed here, into the copy's own output
        os._exit(status)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a stream the model replaced may fail in any way
            pass


def _die_with_caller() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the caller's process group is killed with it anyway


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_message(fd: int, deadline: float) -> bytes | None:
    """The copy's whole message, or None when it ended without one or the deadline passed. Framed by
    length, so a process the work started that still holds the pipe open cannot keep the caller waiting."""
    header = _read_exactly(fd, _HEADER.size, deadline)
    if header is None:
        return None
    return _read_exactly(fd, _HEADER.unpack(header)[0], deadline)


def _read_exactly(fd: int, size: int, deadline: float) -> bytes | None:
    chunks, left = [], size
    while left:
        wait = deadline - time.monotonic()
        if wait <= 0 or not select.select([fd], [], [], wait)[0]:
            return None
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
