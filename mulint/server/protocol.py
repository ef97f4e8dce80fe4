"""What the warm server and its client agree on: the per-user folder of sockets, which server serves a
project (its id), what must match for a server to serve a client (its key), and the framing of messages.

One server per (project root, interpreter), in a 0700 folder of the user's, as mypy's daemon and
Bazel's server do. The key holds everything the server's loaded code depends on: mulint's version and
the digest of its source (an editable install changes without a new version), the versions of torch,
transformers and mup, the interpreter, the import path, and the server's own settings. Standard library
only: the client imports this and must start fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
import struct
import sys
from pathlib import Path

from mulint import project_files
from mulint.version import __version__

DEFAULT_IDLE_MINUTES = 30.0  # as `idle-timeout` defaults in mulint.engine.settings
LIBRARIES = ("torch", "transformers", "mup")  # the libraries the result cache is keyed by, too
HEARTBEAT_SECONDS = 1.0  # a request's child says it is alive this often while it works

# Message kinds: each message is a 4-byte length, a kind byte and the payload.
REQUEST = b"Q"  # client -> server: JSON {"op": ..., ...}
REPLY = b"R"  # server -> client: JSON, an answer to status/stop, or {"restart": why}
STDOUT = b"O"  # the check's standard output, bytes
STDERR = b"E"  # the check's standard error, bytes
HEARTBEAT = b"H"  # still working (or waiting for a free slot)
EXIT = b"X"  # JSON {"code": int}: the check is over, its output complete
_HEADER = struct.Struct(">IB")
MAX_FRAME = 64 << 20


class ProtocolError(Exception):
    """The other side sent something that is not a message, or went away."""


def runtime_dir() -> Path:
    """The user's folder for the servers' sockets: $MULINT_RUNTIME_DIR, else $XDG_RUNTIME_DIR/mulint,
    else a folder of this user's under the cache root."""
    if os.environ.get("MULINT_RUNTIME_DIR"):
        return Path(os.environ["MULINT_RUNTIME_DIR"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "mulint"
    return project_files.cache_root() / f"server-{os.getuid()}"


def private_dir() -> Path:
    """The runtime folder, made 0700 if new; refused (OSError) when another user owns it or others can
    enter it: the socket inside must be this user's alone."""
    folder = runtime_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.stat(folder)
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise OSError(f"{folder} must belong to this user with mode 0700 (it is {stat.S_IMODE(info.st_mode):o})")
    return folder


def project_root(start: Path | None = None) -> Path:
    """The folder of the nearest [tool.mulint] config above `start` (else the working directory)."""
    start = start or Path.cwd()
    try:
        found = project_files.find_config(start)
    except (OSError, ValueError):
        found = None
    return found.parent if found else Path.cwd().resolve()


def server_id(root: Path) -> str:
    """Which server serves a project: one per (project root, interpreter)."""
    text = f"{Path(root).resolve()}\0{sys.executable}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def socket_path(root: Path) -> Path:
    return private_dir() / f"{server_id(root)}.sock"


def library_versions(path: list[str]) -> dict[str, str]:
    """The installed versions of torch, transformers and mup, from their `.dist-info` folders on `path`
    (the first found wins, as imports go): a directory listing, not importlib.metadata's scan."""
    found: dict[str, str] = {}
    pattern = re.compile(r"^(" + "|".join(LIBRARIES) + r")-(.+)\.dist-info$", re.IGNORECASE)
    for entry in path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            match = pattern.match(name)
            if match and match[1].lower() not in found:
                found[match[1].lower()] = match[2]
    return found


def mulint_digest() -> str:
    """mulint's own source by content: a server loaded from other code than the client's is stale."""

    def read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError:
            return None

    return project_files.code_digest(Path(__file__).resolve().parents[1], read)


def server_key(preload: list[str], idle_minutes: float) -> dict:
    """What must match for a running server to serve this client; the names say why on a mismatch."""
    # sys.path[0] is the script's folder (`mulint`) or the working directory (`python -m mulint`): left
    # out, so both ways of running mulint share a server; the folder mulint itself comes from stands in.
    home = str(Path(__file__).resolve().parents[2])
    path = [home, *(entry for entry in sys.path[1:] if entry != home)]
    return {
        "mulint version": __version__,
        "mulint source": mulint_digest(),
        **{f"{name} version": version for name, version in sorted(library_versions(path).items())},
        "interpreter": sys.executable,
        "import path": path,
        "preload": list(preload),
        "idle-timeout": idle_minutes,
    }


def mismatch(mine: dict, theirs: dict) -> str | None:
    """Why a server with key `theirs` cannot serve a client with key `mine`: `torch version changed`."""
    for name in sorted(set(mine) | set(theirs)):
        if mine.get(name) != theirs.get(name):
            return f"{name} changed"
    return None


def send(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    sock.sendall(_HEADER.pack(len(payload), kind[0]) + payload)


def send_json(sock: socket.socket, kind: bytes, value) -> None:
    send(sock, kind, json.dumps(value).encode())


def receive(sock: socket.socket) -> tuple[bytes, bytes]:
    """The next (kind, payload); ProtocolError when the other side closed or sent garbage. The socket's
    timeout bounds the wait (socket.timeout, an OSError)."""
    size, kind = _HEADER.unpack(_exactly(sock, _HEADER.size))
    if size > MAX_FRAME:
        raise ProtocolError(f"a message of {size} bytes")
    return bytes([kind]), _exactly(sock, size)


def decode(payload: bytes) -> dict:
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError("not a JSON object")
    return value


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ProtocolError("the connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end (SO_PEERCRED on Linux, getpeereid elsewhere)."""
    if hasattr(socket, "SO_PEERCRED"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[1]
    try:
        return os.getpeereid(sock.fileno())[0]  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None
