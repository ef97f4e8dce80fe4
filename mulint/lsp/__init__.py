"""mulint in the editor: `mulint lsp`, a language server over stdio (needs the `lsp` extra, pygls).

A front-end beside the CLI: it runs the static rules on the editor's buffers itself and the model
rules through `mulint check` in a subprocess, so this process never imports torch or user code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from pathlib import Path

LOGGER = "mulint.lsp"


class ClientLog(logging.Handler):
    """Log records as `window/logMessage` notifications, sent from the server's event loop (records
    made in worker threads are handed to it)."""

    LEVELS = {logging.ERROR: 1, logging.WARNING: 2, logging.INFO: 3}

    def __init__(self, server) -> None:
        super().__init__(logging.INFO)
        self.server = server
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        from lsprotocol import types

        if self.server.closing:  # the client stops reading at shutdown: the log file still has it
            return

        kind = next((t for level, t in sorted(self.LEVELS.items(), reverse=True) if record.levelno >= level), 4)
        params = types.LogMessageParams(type=types.MessageType(kind), message=self.format(record))
        try:
            if self.loop is None:
                self.loop, self.loop_thread = asyncio.get_running_loop(), threading.get_ident()
            if threading.get_ident() == self.loop_thread:
                self.server.window_log_message(params)
            else:
                self.loop.call_soon_threadsafe(self.server.window_log_message, params)
        except (RuntimeError, OSError, ValueError):  # no loop, or the stream closed: the log file still has it
            pass


def serve(*, daemon: bool = False, log_file: Path | None = None) -> None:
    """Speak LSP on stdin/stdout until the client says exit. `daemon`: model checks go through the
    warm server (`mulint check --daemon`)."""
    from mulint.lsp.server import build_server

    server = build_server(daemon)
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # stderr belongs to the client's own log; nothing of ours goes there twice
    client = ClientLog(server)
    client.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(client)
    if log_file is not None:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.DEBUG)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logging.getLogger("pygls").addHandler(handler)  # the protocol's own errors, in the same file
    # The protocol gets its own handle on stdout; a stray print (ours or a library's) goes to stderr
    # instead of corrupting the messages, and the stream pygls closes at exit is not sys.stdout.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr
    server.start_io(sys.stdin.buffer, protocol_out)
