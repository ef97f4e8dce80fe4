"""The warm server: one process per (project root, interpreter) that keeps torch and mulint imported and
runs each `mulint check` it is asked for in a child forked from itself, so a check pays no start-up.

The server is single-threaded and never runs user code, a torch kernel or anything that touches CUDA
(forked children could not use CUDA otherwise). Once it has been idle a moment it warms torch.export up,
by tracing mulint's own stand-in models on the meta device (`mulint.trace.warm_up`) one at a time, looking
at its socket between traces; every check forked after that starts with a warm export.

For each request it forks a child that takes the client's working directory, environment, import path,
argv and terminal facts and runs the command line's `main` exactly as the direct path would; that child
forks a fresh worker per target as usual (`mulint.engine.isolation.fork_workers_directly`), so user code
runs only in workers, and no state carries from one check to the next. The child sends standard error
as it comes and standard output in frames, a heartbeat while it works, and the exit code last
(`mulint.server.protocol`).

Started detached by the client (`python -m mulint.server.daemon SPEC`, SPEC the JSON of its root and
key); it holds a lock on `<id>.lock` for its whole life, which is how a crashed server's socket is known
to be stale. It exits after `idle-timeout` minutes without a request, on `mulint server stop`, on SIGTERM,
and when a client with another key asks it to restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib
import importlib.util
import io
import json
import os
import pkgutil
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from mulint.server import protocol

REQUEST_READ_TIMEOUT = 5.0  # seconds a connected client has to send its request
WARM_UP_AFTER = 0.5  # seconds idle before the warm-up: the client that started the server is served first
_WARM = ["torch", "libcst", "mulint.cli"]
# Every module of these packages: what a check loads sooner or later, in the request or in its workers.
_WARM_PACKAGES = [
    "mulint.engine",
    "mulint.fix",
    "mulint.report",
    "mulint.rules",
    "mulint.reading",
    "mulint.construct",
    "mulint.trace",
    "mulint.analysis",
    "mulint.coordcheck",
]


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{os.getpid()}] {message}", file=sys.stderr, flush=True)


class Server:
    def __init__(self, listener: socket.socket, lock_fd: int, spec: dict, path: Path) -> None:
        self.listener = listener
        self.lock_fd = lock_fd
        self.key: dict = spec["key"]
        self.root: str = spec["root"]
        self.path = path
        self.idle_seconds = float(self.key.get("idle-timeout", protocol.DEFAULT_IDLE_MINUTES)) * 60
        self.max_children = max(1, os.cpu_count() or 1)
        self.started = time.time()
        self.last_active = time.monotonic()
        self.last_check = self.last_active  # when a check last started or ended (a status request is no check)
        self.children: set[int] = set()
        self.pending: deque[tuple[socket.socket, dict]] = deque()
        self.served = 0
        self.stopping = ""
        self.warming: Iterator[object] | None = None  # the warm-up's traces still to make, once it started
        self.warmed = False
        self.warm_up_seconds = 0.0
        self.threads: int | None = None  # the process's threads when the warm-up started

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        self.listener.setblocking(False)
        selector.register(self.listener, selectors.EVENT_READ)
        log(f"serving {self.root} on {self.path}")
        while not self.stopping:
            self._reap()
            self._start_pending()
            if not self.children and not self.pending and time.monotonic() - self.last_active > self.idle_seconds:
                self.stopping = f"idle for {self.idle_seconds / 60:g} min"
                break
            idle = not self.children and not self.pending and time.monotonic() - self.last_check > WARM_UP_AFTER
            if not self.warmed and idle and not selector.select(0):
                self._warm_up_step()  # idle: one trace, then a look at the socket again
                continue
            timeout = 0.1 if self.children else protocol.HEARTBEAT_SECONDS
            for _ in selector.select(timeout):
                with contextlib.suppress(BlockingIOError, InterruptedError):
                    conn, _ = self.listener.accept()
                    self._handle(conn)
            for conn, _ in list(self.pending):  # a queued client hears that the server is alive
                with contextlib.suppress(OSError):
                    protocol.send(conn, protocol.HEARTBEAT)
        log(f"stopping: {self.stopping}")

    def _handle(self, conn: socket.socket) -> None:
        self.last_active = time.monotonic()
        try:
            conn.setblocking(True)
            if protocol.peer_uid(conn) != os.getuid():
                log("refused a connection from another user")
                conn.close()
                return
            conn.settimeout(REQUEST_READ_TIMEOUT)
            kind, payload = protocol.receive(conn)
            request = protocol.decode(payload) if kind == protocol.REQUEST else {}
            op = request.get("op")
            if op == "status":
                protocol.send_json(conn, protocol.REPLY, self.status())
            elif op == "stop":
                protocol.send_json(conn, protocol.REPLY, {"stopping": os.getpid()})
                self.stopping = "asked to stop"
            elif op == "check":
                why = protocol.mismatch(request.get("key") or {}, self.key)
                if why:
                    protocol.send_json(conn, protocol.REPLY, {"restart": why, "pid": os.getpid()})
                    self.stopping = f"restart: {why}"
                else:
                    conn.settimeout(None)
                    self.pending.append((conn, request))
                    return
            else:
                log(f"unknown request {op!r}")
        except (OSError, protocol.ProtocolError) as exc:
            log(f"a client went away: {exc}")
        conn.close()

    def _warm_up_step(self) -> None:
        """One trace of the warm-up (`mulint.trace.warm_up`); after the last, what it cached is kept. A
        step that started a thread or touched CUDA stops the server: no check may be forked from it (the
        next client starts a fresh server)."""
        if self.warming is None:
            from mulint.trace import warm_up

            self.warming, self.threads = warm_up.steps(), _threads()
        start = time.monotonic()
        done, failed = False, ""
        try:
            next(self.warming)
        except StopIteration:
            done = True
        except Exception as exc:  # noqa: BLE001 - checks work without it, only slower
            done, failed = True, f"{type(exc).__name__}: {exc}"
        self.warm_up_seconds += time.monotonic() - start
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            self.stopping = "the warm-up initialised CUDA; forked checks could not use it"
        elif _threads() != self.threads:
            self.stopping = "the warm-up started a thread; a fork could not be trusted with it"
        if self.stopping or not done:
            return
        self.warming, self.warmed = None, True
        gc.collect()
        gc.freeze()  # what the warm-up cached lives as long as the server, as the imports do
        log(f"warm-up stopped: {failed}" if failed else f"warmed up torch.export in {self.warm_up_seconds:.2f} s")

    def status(self) -> dict:
        return {
            "pid": os.getpid(),
            "root": self.root,
            "socket": str(self.path),
            "started": self.started,
            "uptime": time.time() - self.started,
            "checks served": self.served,
            "checks running": len(self.children),
            "idle-timeout": self.idle_seconds / 60,
            "warmed up": self.warmed,
            "key": self.key,
        }

    def _start_pending(self) -> None:
        while self.pending and len(self.children) < self.max_children:
            conn, request = self.pending.popleft()
            self.served += 1
            self.last_active = self.last_check = time.monotonic()
            pid = os.fork()
            if pid == 0:
                self._become_request(conn, request)  # never returns
            self.children.add(pid)
            conn.close()

    def _reap(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if not done:
                    continue
            self.children.discard(pid)
            self.last_active = self.last_check = time.monotonic()

    def _become_request(self, conn: socket.socket, request: dict) -> None:
        code = 70
        try:
            self.listener.close()
            os.close(self.lock_fd)  # the lock is the server's alone: it must go when the server does
            for other, _ in self.pending:
                other.close()
            code = run_request(conn, request)
        except BaseException:  # noqa: B902 - the child ends here whatever happens
            log(traceback.format_exc())
        finally:
            os._exit(code)


class _Frames(io.RawIOBase):
    """A write-only stream whose bytes go to the client as messages of one kind."""

    def __init__(self, conn: socket.socket, kind: bytes, lock: threading.Lock, tty: bool) -> None:
        self.conn, self.kind, self.lock, self.tty = conn, kind, lock, tty

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.tty  # the client's terminal fact: progress lines show when its stderr is a terminal

    def write(self, data) -> int:
        data = bytes(data)
        with self.lock:
            protocol.send(self.conn, self.kind, data)
        return len(data)


def _text_stream(conn: socket.socket, kind: bytes, lock: threading.Lock, facts: dict) -> io.TextIOWrapper:
    raw = _Frames(conn, kind, lock, bool(facts.get("isatty")))
    return io.TextIOWrapper(
        io.BufferedWriter(raw, 1 << 16),
        encoding=facts.get("encoding") or "utf-8",
        errors=facts.get("errors") or "strict",
        # as Python buffers a terminal's output by line and a pipe's by block, the order of the two streams
        # on the client's terminal is the direct path's
        line_buffering=kind == protocol.STDERR or bool(facts.get("isatty")),
    )


def run_request(conn: socket.socket, request: dict) -> int:
    """In the request's child: become the client's `mulint` process, run the command line, send the
    exit code. Returns this process's own exit status."""
    conn.setblocking(True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    lock = threading.Lock()
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.path[:] = request["path"]
    sys.argv = ["mulint", *request["argv"]]
    sys.stdout = _text_stream(conn, protocol.STDOUT, lock, request.get("stdout", {}))
    sys.stderr = _text_stream(conn, protocol.STDERR, lock, request.get("stderr", {}))
    done = threading.Event()
    threading.Thread(target=_heartbeat, args=(conn, lock, done), name="mulint-heartbeat", daemon=True).start()

    from mulint.cli import main
    from mulint.engine import isolation

    isolation.fork_workers_directly()
    try:
        main(list(request["argv"]))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    finally:
        isolation.kill_all()
    done.set()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    with lock:
        protocol.send_json(conn, protocol.EXIT, {"code": code})
    conn.close()
    return 0


def _heartbeat(conn: socket.socket, lock: threading.Lock, done: threading.Event) -> None:
    """Say the check is alive; a client that left (Ctrl-C, killed) ends the check as SIGTERM ends mulint."""
    while not done.wait(protocol.HEARTBEAT_SECONDS):
        try:
            with lock:
                protocol.send(conn, protocol.HEARTBEAT)
        except OSError:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _warm(preload: list[str]) -> None:
    """Import what every check needs, and what the config asks for, once; compute what is cached per
    process (mulint's code digest) so that no request pays for it."""
    for name in [*_WARM, *_submodules(), *preload]:
        if name in preload and not installed_library(name):
            # the project's own code would be held as it was when the server started: edits would go unseen
            log(f"not preloading {name}: only installed libraries are preloaded, not the project's code")
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # a preload that fails is imported by the worker that needs it, as without it
            log(f"cannot preload {name}: {type(exc).__name__}: {exc}")
    from mulint.engine import cache, observe
    from mulint.rules import all_rules

    cache.environment()
    all_rules()
    observe.remember_distributions()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():  # is_initialized() itself does not initialise it
        raise RuntimeError("CUDA was initialised in the warm server; its forked checks could not use it")


def _threads() -> int | None:
    """The process's threads, native ones included (where the system tells)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def installed_library(name: str) -> bool:
    """Whether module `name` is part of an installed (not editable) distribution or the standard
    library: found, without importing it, below the interpreter's library folders."""
    import site
    import sysconfig

    try:
        spec = importlib.util.find_spec(name.split(".")[0])
    except (ImportError, ValueError):
        return False
    origin = getattr(spec, "origin", None) if spec else None
    if not origin or origin in ("built-in", "frozen"):
        return spec is not None
    paths = sysconfig.get_paths()
    roots = {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"], *site.getsitepackages()}
    with contextlib.suppress(AttributeError):
        roots.add(site.getusersitepackages())
    where = os.path.realpath(origin)
    return any(where.startswith(os.path.realpath(root) + os.sep) for root in roots if root)


def _submodules() -> list[str]:
    names = []
    for package in _WARM_PACKAGES:
        module = importlib.import_module(package)
        names += [info.name for info in pkgutil.walk_packages(module.__path__, f"{package}.")]
    return names


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    sys.path[:] = spec["key"]["import path"]
    folder = protocol.private_dir()
    sid = protocol.server_id(Path(spec["root"]))
    lock_fd = os.open(folder / f"{sid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another server of this project started first: the client will find it
    os.ftruncate(lock_fd, 0)
    os.write(lock_fd, str(os.getpid()).encode())  # for `mulint server kill`
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopping: list[str] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append("SIGTERM"))
    _warm(list(spec["key"].get("preload") or []))
    # What is imported now lives as long as the server: kept out of the collector's sight, a check's full
    # collections neither walk it nor write to its pages (each write copies a page the fork shares).
    gc.collect()
    gc.freeze()
    path = folder / f"{sid}.sock"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # the lock is ours: a socket file left here is a crashed server's
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    listener.listen(64)
    server = Server(listener, lock_fd, spec, path)
    signal.signal(signal.SIGTERM, lambda signum, frame: setattr(server, "stopping", "SIGTERM"))
    if stopping:
        server.stopping = "SIGTERM"
    try:
        server.serve()
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # before the lock goes: a new server may bind the same path right after
        listener.close()
        os.close(lock_fd)


if __name__ == "__main__":
    main()
