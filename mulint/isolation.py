"""Run each model target in a worker process of its own, so user code never runs in mulint's.

Workers are forked from a server process that has torch and mulint's analysis imported already
(multiprocessing's forkserver with those modules preloaded), so a worker starts in milliseconds with
a fresh interpreter state: two targets never share the modules they import. A worker's stdout and
stderr go to a file, never to mulint's output; a worker that exits, crashes, hangs past the timeout
or is killed for memory is reported as an error of its target, naming the step it was in.

This module imports neither torch nor user code; `mulint.jobs` runs inside the worker.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

DEFAULT_TIMEOUT = 300.0
SERVER_START_TIMEOUT = 300.0  # the worker server imports torch once; a loaded machine may take a while
OUTPUT_TAIL_LINES = 8
_PRELOAD = ["torch", "mulint.jobs"]


@dataclass
class Job:
    """One target for one worker: ``kind`` names the function of `mulint.jobs` that runs it."""

    kind: str  # "check", "inspect" or "coord"
    target: str  # PATH:NAME or module:NAME, as `parse_target` reads it
    options: dict[str, Any] = field(default_factory=dict)
    discovered: bool = False  # found in a bare file rather than named by the user


@dataclass
class Outcome:
    job: Job
    value: Any = None  # what the job function returned
    error: dict | None = None  # {"target", "step", "message", "hint", "kind"}
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


_context = None
_context_lock = threading.Lock()


def _mp_context():
    """The forkserver, preloaded with torch and the analysis, started once per mulint process."""
    global _context
    with _context_lock:
        if _context is None:
            methods = multiprocessing.get_all_start_methods()
            if "forkserver" in methods:
                _context = multiprocessing.get_context("forkserver")
                _context.set_forkserver_preload(_PRELOAD)
            else:  # Windows: a fresh interpreter per target, slower but as isolated
                _context = multiprocessing.get_context("spawn")
        return _context


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


def run_jobs(jobs: list[Job], limits: Limits, *, on_done: Callable[[Outcome], None] = lambda o: None,
             on_progress: Callable[[Job, int], None] = lambda job, n: None) -> list[Outcome]:
    """Run every job in a worker, at most ``limits.jobs`` at once; outcomes in the jobs' order."""
    if not jobs:
        return []
    memory = limits.max_memory or default_max_memory(limits.jobs)
    workers = max(1, min(limits.jobs, len(jobs)))

    # Workers side by side share the cores: each torch's intra-op pool sized for the whole machine
    # would oversubscribe it (two workers on 2 cores ran 3× slower than one after the other).
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None

    def one(job: Job) -> Outcome:
        outcome = _run_one(job, limits.timeout, memory, on_progress, threads)
        on_done(outcome)
        return outcome

    if workers == 1:
        return [one(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, jobs))


def _run_one(job: Job, timeout: float, max_memory: int, on_progress: Callable[[Job, int], None],
             threads: int | None = None) -> Outcome:
    context = _mp_context()
    fd, output_path = tempfile.mkstemp(prefix="mulint-output-", suffix=".txt")
    os.close(fd)
    receiver, sender = context.Pipe(duplex=False)
    request = {"job": job, "cwd": os.getcwd(), "env": dict(os.environ), "output": output_path,
               "max_memory": max_memory, "threads": threads}
    process = context.Process(target=_worker_main, args=(request, sender), daemon=True)
    start = time.monotonic()
    outcome = Outcome(job=job)
    step = "import"
    try:
        with _main_hidden():
            process.start()
        sender.close()
        # The clock starts when the worker says it runs: the first worker waits for the server to
        # import torch, which is not the target's time.
        deadline = start + max(timeout, SERVER_START_TIMEOUT)
        started = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill(process)
                outcome.error = _timed_out(job, step, timeout) if started else \
                    _error(job, "start", f"the worker did not start within {SERVER_START_TIMEOUT:g} s", "", "timeout")
                break
            if not receiver.poll(min(remaining, 0.5)):
                if not process.is_alive() and not receiver.poll(0):
                    outcome.error = _died(job, step, process, max_memory)
                    break
                continue
            try:
                kind, payload = receiver.recv()
            except (EOFError, OSError):
                process.join(5)
                outcome.error = _died(job, step, process, max_memory)
                break
            if kind == "step":
                if not started:
                    started, deadline = True, time.monotonic() + timeout
                step = payload
            elif kind == "progress":
                on_progress(job, payload)
            elif kind == "done":
                outcome.value = payload
                break
            elif kind == "error":
                outcome.error = payload
                break
    finally:
        receiver.close()
        process.join(5)
        if process.is_alive():
            _kill(process)
        outcome.seconds = time.monotonic() - start
        outcome.output = _read_and_remove(output_path)
    if outcome.error is not None and outcome.output.strip():
        outcome.error = {**outcome.error, "output": _tail(outcome.output)}
    return outcome


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


def _kill(process) -> None:
    """The worker leads a process group of its own: whatever the target started goes with it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError, OSError):
        process.kill()
    process.join(5)


def _error(job: Job, step: str, message: str, hint: str, kind: str = "") -> dict:
    return {"target": job.target, "step": step, "message": message, "hint": hint, "kind": kind}


def _timed_out(job: Job, step: str, timeout: float) -> dict:
    return _error(job, step, f"timed out after {timeout:g} s",
                  "a loop that never ends in __init__ or forward? If the model really needs longer, "
                  "raise --timeout (config `timeout`)", kind="timeout")


def _died(job: Job, step: str, process, max_memory: int) -> dict:
    process.join(5)
    code = process.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
        if -code == signal.SIGKILL:
            return _error(job, step, f"the worker was killed ({name}), most likely by the system's "
                                     "out-of-memory killer",
                          f"the model needs more memory than the machine has; give smaller --widths, or a "
                          f"lower --max-memory (now {_gb(max_memory)}) to fail early", kind="killed")
        return _error(job, step, f"the model's code crashed the worker ({name})",
                      "run the model in plain Python to see the crash (a native extension, or a bad "
                      "pointer in C code)", kind="crashed")
    return _error(job, step, f"the model's code ended the process (exit code {code}, e.g. os._exit)",
                  "move the code that exits under `if __name__ == \"__main__\":`", kind="exited")


def _gb(size: int) -> str:
    return f"{size / (1 << 30):.1f} GB"


def _read_and_remove(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def _tail(output: str) -> str:
    return "\n".join(output.rstrip().splitlines()[-OUTPUT_TAIL_LINES:])


# --- inside the worker -------------------------------------------------------------------------

def _worker_main(request: dict, sender) -> None:
    """Set the worker up as `python` would run the target, then run the job and send its result."""
    job: Job = request["job"]
    try:
        os.setsid()  # a group of its own: a timeout kills whatever the target started too
    except OSError:
        pass
    _redirect_output(request["output"])
    os.environ.clear()
    os.environ.update(request["env"])
    try:
        os.chdir(request["cwd"])
    except OSError:
        pass
    sys.argv = [job.target.rsplit(":", 1)[0]]  # the target's own argv, never mulint's options
    _limit_memory(request["max_memory"])
    if request.get("threads"):
        import torch  # preloaded by the server: no import cost here

        torch.set_num_threads(request["threads"])
    from mulint import jobs, steps

    steps.listen(lambda step: sender.send(("step", step)))
    steps.enter("import")
    try:
        kind, payload = jobs.run(job, request["max_memory"], sender.send)
    except BaseException as exc:  # noqa: B902 - a bug of mulint's own still ends this target only
        kind, payload = "error", _error(job, "internal", f"{type(exc).__name__}: {exc}",
                                        "report it with `--verbose` output", kind="internal")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        sender.send((kind, payload))
    except Exception as exc:  # an unpicklable result
        sender.send(("error", _error(job, "internal", f"cannot send the result: {exc}", "", kind="internal")))
    sender.close()


def _redirect_output(path: str) -> None:
    """Both descriptors, so prints from C code and subprocesses are captured too."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    for stream in (sys.stdout, sys.stderr):  # a worker killed on timeout keeps what it printed
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # a model that asks for input gets EOF, not the user's terminal
    os.close(devnull)


def _limit_memory(max_memory: int) -> None:
    """RLIMIT_DATA counts what malloc and anonymous mappings hold (Linux ≥ 4.7), not the address
    space torch reserves, so an allocation past the cap fails in the worker with a clear error."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    if not hasattr(resource, "RLIMIT_DATA"):
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    soft = max_memory if hard == resource.RLIM_INFINITY else min(max_memory, hard)
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
    except (ValueError, OSError):
        pass
