"""The warm server's client: run `mulint check` through the project's server, starting it when asked to,
and print exactly what the direct path prints.

This runs in every `mulint check` that opts in (`--daemon`, config `daemon = true`) before anything else,
so it imports the standard library and mulint's light modules only: never torch, numpy, libcst or the
analysis (`tests/test_server_client.py` checks the modules loaded; import-linter forbids the rest).

Standard error streams as the check runs; standard output is held until the exit code arrives, so a server
that dies, hangs or is killed mid-check never leaves a partial or doubled output: the client notices
within a bounded time (a first reply, then a heartbeat each second), says so, and the caller falls back
to the direct path. A server whose key differs (another mulint, torch, interpreter, import path or
server setting) is restarted with `Restarting: <why>` on standard error.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from mulint import project_files
from mulint.server import protocol

START_TIMEOUT = 120.0  # seconds a new server may take to import torch (and the preloads) on a busy machine
FIRST_REPLY_TIMEOUT = 10.0  # seconds from the request to the server's first word
SILENCE_TIMEOUT = 10.0  # seconds without a message (heartbeats come each second) before a server is given up
STOP_TIMEOUT = 10.0

# `mulint check`'s options that take a value, to tell them from the paths (tests compare it with the CLI's).
VALUE_OPTIONS = frozenset(
    "--widths --width-arg --optimizer --select --ignore --format --profile --depth-arg --jobs -j "
    "--timeout --max-memory --config".split()
)


class Unavailable(Exception):
    """No server can serve this check; the message says why."""


class Lost(Exception):
    """The server went away or fell silent mid-check."""


class Unwritable(Exception):
    """The client could not write the check's output."""


# --- what the user asked for ---------------------------------------------------------------------------


def config_table(args: list[str]) -> dict:
    """`[tool.mulint]` of --config or of the config found upwards from the first path (else the working
    directory), as `mulint.engine.settings.settings_for` finds it; {} when there is none or it cannot be
    read (the direct path then reports what is wrong with it)."""
    given, first = None, None
    items = iter(args)
    for arg in items:
        if arg == "--config":
            given = next(items, None)
        elif arg.startswith("--config="):
            given = arg.split("=", 1)[1]
        elif arg in VALUE_OPTIONS:
            next(items, None)
        elif not arg.startswith("-") and first is None:
            first = arg
    try:
        if given:
            path: Path | None = Path(given)
        else:
            start = Path(first.split(":")[0]) if first else None
            path = project_files.find_config(start if start is not None and start.exists() else Path.cwd())
        table = project_files.read_toml(path).get("tool", {}).get("mulint") if path else None
    except (OSError, ValueError):
        return {}
    return dict(table, _path=str(path)) if isinstance(table, dict) else {}


def wants_server(args: list[str], table: dict) -> bool:
    """--daemon or --no-daemon, the last one given; else the config's `daemon = true`."""
    for arg in reversed(args):
        if arg in ("--daemon", "--no-daemon"):
            return arg == "--daemon"
    return table.get("daemon") is True


def settings(table: dict) -> tuple[Path, dict]:
    """The project root (the config's folder, else the working directory) and the key a server must have."""
    preload = table.get("preload", [])
    if not (isinstance(preload, list) and all(isinstance(name, str) for name in preload)):
        raise Unavailable("[tool.mulint] preload must be a list of module names")
    idle = table.get("idle-timeout", table.get("idle_timeout", protocol.DEFAULT_IDLE_MINUTES))
    if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not idle > 0:
        raise Unavailable("[tool.mulint] idle-timeout must be a positive number of minutes")
    root = Path(table["_path"]).resolve().parent if table.get("_path") else Path.cwd().resolve()
    return root, protocol.server_key(preload, float(idle))


# --- the check through the server ----------------------------------------------------------------------


def check(args: list[str]) -> int | None:
    """Run `mulint check ARGS` through the server when the user opted in: its exit code, or None when the
    direct path must run (not opted in, no server and none may start, or the server failed; then a line on
    standard error said why)."""
    table = config_table(args[1:])
    if not wants_server(args[1:], table) or sys.stdout is None or sys.stderr is None:
        return None  # (a closed stream: the direct path says so)
    may_start = not os.environ.get("CI")  # never start a server on CI: one check per machine, then gone
    try:
        root, key = settings(table)
        for _ in range(2):
            conn = connect(root)
            if conn is None:
                if not may_start:
                    return None
                start(root, key)
                conn = connect(root)
                if conn is None:
                    raise Unavailable("the server started but does not answer")
            answer = _run(conn, args, key)
            if isinstance(answer, int):
                return answer
            why, pid = answer
            print(f"Restarting: {why}", file=sys.stderr, flush=True)
            if not may_start:
                return None
            _wait_gone(pid)
        raise Unavailable("the restarted server still does not match")
    except Unavailable as exc:
        print(f"mulint: no warm server ({exc}); checking without it", file=sys.stderr, flush=True)
    except Lost as exc:
        hint = " (`mulint server kill` ends a server that hangs)" if "silent" in str(exc) else ""
        print(f"mulint: the warm server {exc}; checking without it{hint}", file=sys.stderr, flush=True)
    except Unwritable:
        pass
    return None


def _run(conn: socket.socket, args: list[str], key: dict) -> int | tuple[str, int]:
    """Send the check; the exit code once it is over (its output printed), or (why, pid) of a server to restart."""
    request = {
        "op": "check",
        "key": key,
        "argv": args,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "path": list(sys.path),
        "stdout": _facts(sys.stdout),
        "stderr": _facts(sys.stderr),
    }
    held: list[tuple[int, bytes]] = []  # once standard output began, everything waits for the exit code
    try:
        with conn:
            try:
                protocol.send_json(conn, protocol.REQUEST, request)
            except OSError as exc:
                raise Lost(f"went away before the check ({exc})") from None
            conn.settimeout(FIRST_REPLY_TIMEOUT)
            while True:
                try:
                    kind, payload = protocol.receive(conn)
                except TimeoutError:
                    raise Lost(f"fell silent for {conn.gettimeout():g} s") from None
                except (OSError, protocol.ProtocolError) as exc:
                    raise Lost(f"went away mid-check ({exc})") from None
                conn.settimeout(SILENCE_TIMEOUT)
                if kind == protocol.STDERR and not held:
                    _write(2, payload)
                elif kind in (protocol.STDERR, protocol.STDOUT):
                    held.append((2 if kind == protocol.STDERR else 1, payload))
                elif kind == protocol.REPLY:
                    reply = protocol.decode(payload)
                    if "restart" in reply:
                        return str(reply["restart"]), int(reply.get("pid") or 0)
                    raise Lost(f"answered {reply}")
                elif kind == protocol.EXIT:
                    code = protocol.decode(payload).get("code")
                    for fd, data in held:
                        _write(fd, data)
                    return code if isinstance(code, int) else 2
    except protocol.ProtocolError as exc:
        raise Lost(f"sent a malformed message ({exc})") from None
    except KeyboardInterrupt:  # the server's child notices the closed connection and stops its workers
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:  # `mulint check . | head`, as the direct path exits
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    except OSError as exc:  # writing the output failed (a full disk): the direct path words it and exits 2
        raise Unwritable(str(exc)) from None


def _facts(stream) -> dict:
    """What the check's code may ask of the client's stream."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return {"isatty": tty, "encoding": getattr(stream, "encoding", None), "errors": getattr(stream, "errors", None)}


def _write(fd: int, data: bytes) -> None:
    stream = sys.stdout if fd == 1 else sys.stderr
    stream.flush()
    stream.buffer.write(data)
    stream.buffer.flush()


# --- finding, starting and stopping the server ----------------------------------------------------------


def connect(root: Path) -> socket.socket | None:
    """A connection to the project's server, None when none runs (a socket file without a server is stale)."""
    try:
        path = protocol.socket_path(root)
    except OSError as exc:
        raise Unavailable(str(exc)) from None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(FIRST_REPLY_TIMEOUT)
    try:
        conn.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        conn.close()
        return None
    except OSError as exc:
        conn.close()
        raise Unavailable(f"cannot connect to {path}: {exc}") from None
    if protocol.peer_uid(conn) != os.getuid():
        conn.close()
        raise Unavailable(f"{path} is served by another user")
    return conn


def start(root: Path, key: dict) -> None:
    """Start the project's server, detached, and wait until it answers."""
    folder = protocol.private_dir()
    sid = protocol.server_id(root)
    home = key["import path"][0]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [home, os.environ.get("PYTHONPATH")])))
    spec = json.dumps({"root": str(root), "key": key})
    log = os.open(folder / f"{sid}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "mulint.server.daemon", spec],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd="/",
            env=env,
            start_new_session=True,  # its own session: the terminal's Ctrl-C and hang-up never reach it
        )
    finally:
        os.close(log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        conn = connect(root)
        if conn is not None:
            conn.close()
            return
        if process.poll() not in (None, 0):
            raise Unavailable(f"the server failed to start; see {folder / f'{sid}.log'}")
        time.sleep(0.05)
    raise Unavailable(f"the server did not start within {START_TIMEOUT:g} s; see {folder / f'{sid}.log'}")


def ask(root: Path, op: str) -> dict | None:
    """The server's reply to `status` or `stop`, None when none runs."""
    conn = connect(root)
    if conn is None:
        return None
    with conn:
        try:
            protocol.send_json(conn, protocol.REQUEST, {"op": op})
            kind, payload = protocol.receive(conn)
        except (OSError, protocol.ProtocolError) as exc:
            raise Unavailable(f"the server did not answer: {exc}") from None
    return protocol.decode(payload) if kind == protocol.REPLY else None


def stop(root: Path) -> int | None:
    """Ask the server to stop and wait until it has; its pid, None when none ran."""
    reply = ask(root, "stop")
    if reply is None:
        return None
    pid = int(reply.get("stopping") or 0)
    _wait_gone(pid)
    return pid


def kill(root: Path) -> int | None:
    """SIGKILL the project's server (one that hangs) and the checks it runs (its process group; their
    workers die with them); its pid, None when none runs. Its socket goes too."""
    folder = protocol.private_dir()
    sid = protocol.server_id(root)
    pid = _pid(folder / f"{sid}.lock")
    if pid is None:
        return None
    try:
        os.killpg(pid, signal.SIGKILL)  # the server leads its own session and group
    except OSError:
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)
    with contextlib.suppress(FileNotFoundError):
        (folder / f"{sid}.sock").unlink()
    return pid


def _pid(lock: Path) -> int | None:
    """The pid the server wrote into its lock file while it holds the lock (else no server runs)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # nobody holds it: the pid is a crashed server's, maybe another process's now
        except BlockingIOError:
            pass
        pid = int(os.read(fd, 32).decode().strip() or 0)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return None  # the pid was reused by another user's process
    return pid


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT
    while pid > 0 and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0]:  # a server this process started, now a zombie
                return
        time.sleep(0.02)
