"""Inside a worker process: set it up as `python` would run the target, fenced in, then run its job.

`mulint.engine.isolation` starts this in a fresh process forked from the worker server. Before any user
code runs the worker makes itself the leader of a process group (so one kill ends whatever the target
starts), arranges to die with mulint (a pipe only mulint holds open, and the kernel's parent-death
signal), caps its memory and the size of any file it writes, sends its output to a file in its own
scratch folder (also its TMPDIR), and never reads a cached `.pyc` that was not checked against its
source. Messages to mulint are JSON (`mulint.engine.wire`).

Imported by mulint's parent process too (for `worker_main`'s name), so nothing here imports torch at
module level.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from mulint.engine.wire import WireError, encode
from mulint.errors import ErrorRecord


@dataclass(frozen=True)
class WorkerRequest:
    """What mulint hands a worker process with its job: where and how to run it."""

    job: Any  # mulint.engine.isolation.Job
    cwd: str  # mulint's working directory: the target's paths are relative to it
    env: dict[str, str]  # mulint's environment, as the target would see it under `python`
    output: str  # the file the worker's stdout and stderr go to
    scratch: str  # the worker's own folder (its TMPDIR), removed with it
    max_memory: int  # bytes
    max_output: int  # bytes any file it writes may grow to
    threads: int | None = None  # torch's intra-op threads (None: torch's default)


def worker_main(request: WorkerRequest, sender, alive) -> None:
    job = request.job
    _own_group()
    _die_with_mulint(alive, request.scratch)
    _redirect_output(request.output)
    os.environ.clear()
    os.environ.update(request.env)
    _use_scratch(request.scratch)
    try:
        os.chdir(request.cwd)
    except OSError:
        pass
    _stdlib_first()
    sys.argv = [job.target.rsplit(":", 1)[0]]  # the target's own argv, never mulint's options
    _limit_memory(request.max_memory)
    _limit_file_size(request.max_output)
    _import_sources_only()
    if request.threads:
        import torch  # preloaded by the server: no import cost here

        torch.set_num_threads(request.threads)
    from mulint import steps
    from mulint.engine import jobs
    from mulint.reading import guard

    guard.install(request.scratch, armed=job.discovered)

    def send(message: tuple) -> None:
        sender.send_bytes(encode(message))

    steps.listen(lambda step: send(("step", step)))
    steps.enter("import")
    try:
        kind, payload = jobs.run(job, request.max_memory, send)
    except BaseException as exc:  # noqa: B902 - a bug of mulint's own still ends this target only
        kind, payload = "error", _internal(job, f"{type(exc).__name__}: {exc}", "report it with `--verbose` output")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        data = encode((kind, payload))
    except (WireError, ValueError, TypeError, RecursionError) as exc:
        data = encode(("error", _internal(job, f"cannot send the result: {exc}", "")))
    sender.send_bytes(data)
    sender.close()


def _internal(job, message: str, hint: str) -> ErrorRecord:
    return ErrorRecord(target=job.target, step="internal", message=message, hint=hint, kind="internal")


def _own_group() -> None:
    try:
        os.setsid()  # a group of its own: one kill ends whatever the target started too
    except OSError:
        pass


def _die_with_mulint(alive, scratch: str) -> None:
    """mulint holds the other end of ``alive`` and never writes: when mulint's process ends, however
    it ends, the pipe reads EOF and the worker removes its scratch folder (mulint, killed, could not)
    and kills its group. The parent-death signal also covers the moment the worker server (the
    worker's parent) exits, which it does when mulint does."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the pipe alone

    def watch() -> None:
        try:
            alive.poll(None)
        except (OSError, EOFError, ValueError):
            pass
        try:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
            os.killpg(0, signal.SIGKILL)
        finally:
            os._exit(137)

    threading.Thread(target=watch, name="mulint-alive", daemon=True).start()


def _use_scratch(scratch: str) -> None:
    """Temporary files of the target and of torch go to the worker's folder, removed with it."""
    import tempfile

    os.environ["TMPDIR"] = scratch
    tempfile.tempdir = scratch


def _stdlib_first() -> None:
    """The working directory (`''` when mulint runs as `python -m mulint`) goes after the standard
    library: a user's `profile.py` there must not stand in for the module torch imports lazily."""
    from mulint.reading.targets import after_stdlib

    cwd = os.getcwd()
    front = [entry for entry in sys.path[: after_stdlib()] if entry in ("", ".", cwd)]
    for entry in front:
        sys.path.remove(entry)
    index = after_stdlib()
    sys.path[index:index] = front


def _import_sources_only() -> None:
    """Import what the static walk read: a hash-based `.pyc` is checked against its source (an
    unchecked one would run code the walk never saw), and none is written beside the user's files."""
    sys.dont_write_bytecode = True
    try:
        import _imp

        _imp.check_hash_based_pycs = "always"
    except (ImportError, AttributeError):  # pragma: no cover - CPython has it
        pass


def _redirect_output(path: str) -> None:
    """Both descriptors, so prints from C code and subprocesses are captured too, and Python's own
    streams onto them: forked from a warm server's request, the worker inherits streams that write to
    the server's client, not to a descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    inherited = [stream for stream, number in ((sys.stdout, 1), (sys.stderr, 2)) if _descriptor(stream) != number]
    for stream in (sys.stdout, sys.stderr):
        if stream not in inherited:
            stream.flush()  # (an inherited stream's buffer is the request's to send, not a copy for here)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    if sys.stdout in inherited:
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    if sys.stderr in inherited:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    for stream in (sys.stdout, sys.stderr):  # a worker killed on timeout keeps what it printed
        try:
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(line_buffering=True)
        except ValueError:
            pass
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # a model that asks for input gets EOF, not the user's terminal
    os.close(devnull)


def _descriptor(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None


def _limit_memory(max_memory: int) -> None:
    """RLIMIT_DATA counts what malloc and anonymous mappings hold (Linux ≥ 4.7), not the address
    space torch reserves, so an allocation past the cap fails in the worker with a clear error."""
    _lower_limit("RLIMIT_DATA", max_memory)


def _limit_file_size(max_bytes: int) -> None:
    """No file the worker writes (its output above all: a print loop) grows past ``max_bytes``; the
    kernel stops the worker with SIGXFSZ, reported as such. (Python ignores SIGXFSZ, and a model
    could catch the OSError of a failed write and go on printing.)"""
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    _lower_limit("RLIMIT_FSIZE", max_bytes, hard=True)  # the hard limit too: the model cannot raise it


def _lower_limit(name: str, value: int, hard: bool = False) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    if not hasattr(resource, name):
        return
    which = getattr(resource, name)
    _, ceiling = resource.getrlimit(which)
    soft = value if ceiling == resource.RLIM_INFINITY else min(value, ceiling)
    try:
        resource.setrlimit(which, (soft, soft if hard else ceiling))
    except (ValueError, OSError):
        pass
