"""Run each model target in a worker process of its own, so user code never runs in mulint's.

Workers are forked from a server process that has torch and mulint's analysis imported already
(multiprocessing's forkserver with those modules preloaded), so a worker starts in milliseconds with
a fresh interpreter state: two targets never share the modules they import. A worker's stdout and
stderr go to a file, never to mulint's output; a worker that exits, crashes, hangs past the timeout
or is killed for memory is reported as an error of its target, naming the step it was in.

Nothing a worker runs outlives mulint: each worker leads a process group of its own, killed when its
target ends, on Ctrl-C and on SIGTERM/SIGHUP (`handle_signals`), at exit, and by the worker itself
when mulint dies (it watches a pipe only mulint holds open). The forkserver exits when mulint does.
Results come back as JSON (`mulint.engine.wire`), checked on arrival, never unpickled; only the tail of a
worker's output is read, and the worker may write only so much (RLIMIT_FSIZE).

This module imports neither torch nor user code; `mulint.engine.worker` and `mulint.engine.jobs` run inside the worker.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mulint.engine.options import JobOptions
from mulint.engine.wire import MAX_MESSAGE, WireError, check_error, check_result, check_trial, decode
from mulint.engine.worker import WorkerRequest, worker_main
from mulint.errors import ErrorRecord, Interrupted

DEFAULT_TIMEOUT = 300.0
SERVER_START_TIMEOUT = 300.0  # the worker server imports torch once; a loaded machine may take a while
OUTPUT_TAIL_LINES = 8
OUTPUT_KEPT_BYTES = 64 << 10  # of a worker's output, the end: what --verbose shows and errors quote
MAX_OUTPUT_BYTES = 256 << 20  # the most any file a worker writes may grow to (its output included)
_PRELOAD = ["torch", "mulint.engine.jobs", "mulint.engine.worker", "mulint.engine.preload"]


@dataclass
class Job:
    """One target for one worker: ``kind`` names the function of `mulint.engine.jobs` that runs it."""

    kind: str  # "check", "inspect" or "coord"
    target: str  # PATH:NAME or module:NAME, as `parse_target` reads it
    options: JobOptions = field(default_factory=JobOptions)
    discovered: bool = False  # found in a bare file rather than named by the user


@dataclass
class Outcome:
    job: Job
    value: Any = None  # what the job function returned
    error: ErrorRecord | None = None
    output: str = ""  # what the target's code printed
    seconds: float = 0.0


@dataclass
class Limits:
    timeout: float = DEFAULT_TIMEOUT  # seconds per target
    max_memory: int | None = None  # bytes per worker; None: default_max_memory(jobs)
    jobs: int = 1  # workers at once


def machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def default_max_memory(jobs: int) -> int:
    """Three quarters of the machine shared by the workers that run at once: a runaway target fails
    with a clear error instead of freezing the machine."""
    return max(1 << 30, int(machine_memory() * 0.75) // max(1, jobs))


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


_context: multiprocessing.context.BaseContext | None = None
_context_lock = threading.Lock()


def _mp_context():
    """The forkserver, preloaded with torch and the analysis, started once per mulint process."""
    global _context
    with _context_lock:
        if _context is None:
            methods = multiprocessing.get_all_start_methods()
            if "forkserver" in methods:
                forkserver = multiprocessing.get_context("forkserver")
                forkserver.set_forkserver_preload(_PRELOAD)
                _context = forkserver
            else:  # Windows: a fresh interpreter per target, slower but as isolated
                _context = multiprocessing.get_context("spawn")
        return _context


def fork_workers_directly() -> None:
    """In a process that has torch and the analysis imported already (a request of the warm server,
    `mulint.server.daemon`), fork each worker from it: a forkserver would import them all again. The
    process must not have touched CUDA, and forks from here keep the isolation: one fresh worker per target."""
    global _context
    with _context_lock:
        _context = multiprocessing.get_context("fork")


def warm_up() -> None:
    """Start the worker server now, so that its imports overlap with the static pass."""
    context = _mp_context()
    if context.get_start_method() == "forkserver":
        threading.Thread(target=_start_server, daemon=True).start()


def _start_server() -> None:
    from multiprocessing import forkserver

    try:
        forkserver.ensure_running()
    except Exception:
        pass  # the first job starts it again and reports what fails


def run_jobs(
    jobs: list[Job],
    limits: Limits,
    *,
    on_done: Callable[[Outcome], None] = lambda o: None,
    on_progress: Callable[[Job, int], None] = lambda job, n: None,
    on_trial: Callable[[Job, Any], None] = lambda job, trial: None,
    on_started: Callable[[], None] = lambda: None,
) -> list[Outcome]:
    """Run every job in a worker, at most ``limits.jobs`` at once; outcomes in the jobs' order.
    ``on_trial``: a transfer trial the job finished (its timeout then counts afresh: per trial).
    ``on_started``: work of the caller's own, done once, as soon as the first worker runs (the caller
    would otherwise only wait for it).

    However this ends (a result, an exception, Ctrl-C, a signal turned into `Interrupted`), every
    worker started here is killed with its process group before it returns or raises."""
    if not jobs:
        return []
    memory = limits.max_memory or default_max_memory(limits.jobs)
    workers = max(1, min(limits.jobs, len(jobs)))
    cancelled = threading.Event()
    mine: set[int] = set()  # this call's workers: another run in this process keeps its own

    # Workers side by side share the cores: each torch's intra-op pool sized for the whole machine
    # would oversubscribe it (two workers on 2 cores ran 3× slower than one after the other).
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None

    first = [on_started]

    def started() -> None:
        try:
            work = first.pop()  # once, whichever worker starts first (pool threads race here)
        except IndexError:
            return
        work()

    def one(job: Job) -> Outcome:
        if cancelled.is_set():
            return Outcome(job=job, error=_error(job, "start", "interrupted", "", "interrupted"))
        outcome = _run_one(job, limits.timeout, memory, on_progress, threads, cancelled, mine, on_trial, started)
        on_done(outcome)
        return outcome

    def cancel() -> None:
        cancelled.set()  # no new worker starts; the running ones are killed now, not waited for
        for pid in list(mine):
            _killpg(pid)

    if workers == 1:
        try:
            return [one(job) for job in jobs]
        except BaseException:
            cancel()
            raise
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        return list(pool.map(one, jobs))
    except BaseException:
        cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# The pid of every worker running now (each leads its process group), for `kill_all` on a signal or at exit.
_live: set[int] = set()
_live_lock = threading.Lock()


def kill_all() -> None:
    """Kill every running worker and whatever it started (its process group)."""
    with _live_lock:
        pids = list(_live)
    for pid in pids:
        _killpg(pid)


def _stop_server() -> None:
    """The worker server would exit on its own once mulint is gone, but tearing down an interpreter
    with torch loaded takes a while: mulint ends it with itself."""
    if _context is None or _context.get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _at_exit() -> None:
    kill_all()
    _stop_server()


atexit.register(_at_exit)


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        try:
            os.kill(pid, signal.SIGKILL)  # killed before it made its group
        except OSError:
            pass


def handle_signals() -> None:
    """In mulint's own process (the CLI, main thread): SIGTERM and SIGHUP unwind like Ctrl-C does, as
    `Interrupted`, so that workers are killed and temporary files removed on the way out; the CLI exits
    128 + the signal's number, as shells expect."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        kill_all()
        _stop_server()
        raise Interrupted(signum)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), interrupt)


def _run_one(
    job: Job,
    timeout: float,
    max_memory: int,
    on_progress: Callable[[Job, int], None],
    threads: int | None = None,
    cancelled: threading.Event | None = None,
    mine: set[int] | None = None,
    on_trial: Callable[[Job, Any], None] = lambda job, trial: None,
    on_started: Callable[[], None] = lambda: None,
) -> Outcome:
    context = _mp_context()
    # The worker's own folder: its output, its temporary files (TMPDIR), the only place user code it
    # imports for a bare file may write; removed whatever happens.
    scratch = tempfile.mkdtemp(prefix="mulint-worker-")
    output_path = os.path.join(scratch, "output.txt")
    Path(output_path).touch()
    receiver, sender = context.Pipe(duplex=False)
    alive_r, alive_w = context.Pipe(duplex=False)  # the worker kills its group when this closes
    request = WorkerRequest(
        job=job,
        cwd=os.getcwd(),
        env=dict(os.environ),
        output=output_path,
        scratch=scratch,
        max_memory=max_memory,
        max_output=MAX_OUTPUT_BYTES,
        threads=threads,
    )
    process = context.Process(target=worker_main, args=(request, sender, alive_r), daemon=True)
    start = time.monotonic()
    outcome = Outcome(job=job)
    step = "import"
    finished = False
    try:
        with _main_hidden():
            process.start()
        with _live_lock:
            _live.add(process.pid)
        if mine is not None:
            mine.add(process.pid)
        sender.close()
        alive_r.close()
        on_started()
        # The clock starts when the worker says it runs: the first worker waits for the server to
        # import torch, which is not the target's time.
        deadline = start + max(timeout, SERVER_START_TIMEOUT)
        started = False
        while True:
            if cancelled is not None and cancelled.is_set():
                outcome.error = _error(job, step, "interrupted", "", "interrupted")
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome.error = (
                    _timed_out(job, step, timeout)
                    if started
                    else _error(
                        job, "start", f"the worker did not start within {SERVER_START_TIMEOUT:g} s", "", "timeout"
                    )
                )
                break
            if not receiver.poll(min(remaining, 0.2)):
                if not process.is_alive() and not receiver.poll(0):
                    outcome.error = _died(job, step, process, max_memory)
                    break
                continue
            try:
                kind, payload = _message(receiver.recv_bytes(MAX_MESSAGE), job)
            except (EOFError, OSError):
                process.join(5)
                outcome.error = _died(job, step, process, max_memory)
                break
            except WireError as exc:
                outcome.error = _error(
                    job,
                    "internal",
                    f"the worker sent a malformed result: {exc}",
                    "report it with `--verbose` output",
                    "internal",
                )
                break
            if kind == "step":
                if not started:
                    started, deadline = True, time.monotonic() + timeout
                step = payload
            elif kind == "progress":
                on_progress(job, payload)
            elif kind == "trial":
                on_trial(job, payload)
                deadline = time.monotonic() + timeout  # a sweep's timeout holds per trial
            elif kind == "done":
                outcome.value, finished = payload, True
                break
            elif kind == "error":
                outcome.error, finished = payload, True
                break
    finally:
        receiver.close()
        if finished:
            process.join(5)  # it is closing down; whatever it started still goes below
        if process.pid is not None:
            _killpg(process.pid)  # what the target started goes too, even after a result
            process.join(5)
        with _live_lock:
            _live.discard(process.pid)
        if mine is not None:
            mine.discard(process.pid)
        alive_w.close()
        outcome.seconds = time.monotonic() - start
        outcome.output = read_tail(output_path)
        shutil.rmtree(scratch, ignore_errors=True)
    if outcome.error is not None and outcome.output.strip():
        outcome.error = dataclasses.replace(outcome.error, output=_tail(outcome.output))
    return outcome


def _message(data: bytes, job: Job) -> tuple[str, Any]:
    """A worker's message, decoded without running anything it holds and checked against what each
    kind of message carries."""
    message = decode(data)
    if not (isinstance(message, (list, tuple)) and len(message) == 2 and isinstance(message[0], str)):
        raise WireError("not a (kind, payload) pair")
    kind, payload = message
    if kind == "step" and isinstance(payload, str):
        return kind, payload
    if kind == "progress" and type(payload) is int:
        return kind, payload
    if kind == "trial":
        return kind, check_trial(payload)
    if kind == "error":
        return kind, check_error(payload)
    if kind == "done":
        return kind, check_result(job.kind, payload)
    raise WireError(f"unexpected message {kind!r}")


_start_lock = threading.Lock()


@contextlib.contextmanager
def _main_hidden():
    """multiprocessing runs the parent's `__main__` again in each child, to find functions pickled
    from it. The worker's function lives in mulint, and the parent's main script (a user's program
    calling mulint, a test runner) must never run in a worker: hide it while the child starts."""
    with _start_lock:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


def _error(job: Job, step: str, message: str, hint: str, kind: str = "") -> ErrorRecord:
    return ErrorRecord(target=job.target, step=step, message=message, hint=hint, kind=kind)


def _timed_out(job: Job, step: str, timeout: float) -> ErrorRecord:
    return _error(
        job,
        step,
        f"timed out after {timeout:g} s",
        "a loop that never ends in __init__ or forward? If the model really needs longer, "
        "raise --timeout (config `timeout`)",
        kind="timeout",
    )


def _died(job: Job, step: str, process, max_memory: int) -> ErrorRecord:
    process.join(5)
    code = process.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
        if -code == signal.SIGKILL:
            return _error(
                job,
                step,
                f"the worker was killed ({name}), most likely by the system's out-of-memory killer",
                f"the model needs more memory than the machine has; give smaller --widths, or a "
                f"lower --max-memory (now {_gb(max_memory)}) to fail early",
                kind="killed",
            )
        if -code == getattr(signal, "SIGXFSZ", -1):
            return _error(
                job,
                step,
                f"the model's code wrote more than {MAX_OUTPUT_BYTES >> 20} MB (printed "
                "output or files) and was stopped",
                "print less while the model is built and run",
                kind="output",
            )
        return _error(
            job,
            step,
            f"the model's code crashed the worker ({name})",
            "run the model in plain Python to see the crash (a native extension, or a bad pointer in C code)",
            kind="crashed",
        )
    return _error(
        job,
        step,
        f"the model's code ended the process (exit code {code}, e.g. os._exit)",
        'move the code that exits under `if __name__ == "__main__":`',
        kind="exited",
    )


def _gb(size: int) -> str:
    return f"{size / (1 << 30):.1f} GB"


def read_tail(path: str, limit: int = OUTPUT_KEPT_BYTES) -> str:
    """The last ``limit`` bytes of a worker's output, never the whole file: a model that prints
    gigabytes costs mulint no memory."""
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > limit:
                stream.seek(size - limit)
            data = stream.read(limit)
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > limit:
        text = text.split("\n", 1)[-1]  # from the first whole line
        text = f"[{(size - len(data)) / (1 << 20):.1f} MB of earlier output not kept]\n{text}"
    return text


def _tail(output: str) -> str:
    return "\n".join(output.rstrip().splitlines()[-OUTPUT_TAIL_LINES:])
