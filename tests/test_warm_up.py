"""The warm server's warm-up: mulint's stand-in transformers traced on the meta device, and a server that
warms up only when idle, one trace at a time, answering what arrives in between."""

import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import torch

from mulint.server import daemon, protocol
from mulint.trace import warm_up


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_the_stand_ins_trace_on_meta_without_a_thread_cuda_or_a_changed_default_device():
    before = _threads()
    traced = dict(warm_up.steps())
    assert list(traced) == [
        "gpt-style at width 64",
        "gpt-style at width 128",
        "llama-style at width 64",
        "llama-style at width 128",
    ]
    assert _threads() == before and not torch.cuda.is_initialized()
    assert torch.get_default_device() == torch.device("cpu")
    for name, trace in traced.items():
        ops = {node.op for node in trace.nodes.values()}
        # each style covers the attention and the MLP it stands in for, with the width it was built at
        width = int(name.rsplit(" ", 1)[1])
        embedding = trace.nodes[trace.param_nodes["wte.weight"]]
        assert embedding.shape == (warm_up.VOCAB, width)
        if name.startswith("gpt"):
            assert {"softmax", "masked_fill", "gelu", "layer_norm"} <= ops
        else:
            assert {"scaled_dot_product_attention", "silu", "rsqrt", "cat", "cross_entropy_loss"} <= ops


def _server(folder: Path) -> tuple[daemon.Server, Path]:
    path = folder / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    spec = {"root": str(folder), "key": {"idle-timeout": 30}}
    return daemon.Server(listener, -1, spec, path), path


def _status(path: Path) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(str(path))
        protocol.send_json(conn, protocol.REQUEST, {"op": "status"})
        kind, payload = protocol.receive(conn)
        assert kind == protocol.REPLY
        return protocol.decode(payload)


def test_an_idle_server_warms_up_one_trace_at_a_time_and_answers_in_between(monkeypatch):
    """A status request made while the warm-up runs is answered before the warm-up's end, and it does not
    delay the warm-up as a check would (a check's start or end puts it off)."""
    made: list[int] = []
    release = threading.Event()

    def slow_steps():
        for i in range(200):
            made.append(i)
            release.wait(0.05)  # a trace's time; once released, the rest go at once
            yield f"step {i}", None

    monkeypatch.setattr(warm_up, "steps", slow_steps)
    monkeypatch.setattr(daemon.gc, "freeze", lambda: None)  # (the test's own process)
    with tempfile.TemporaryDirectory(prefix="mlw", dir="/tmp") as folder:  # AF_UNIX paths are short
        server, path = _server(Path(folder))
        server.last_check -= daemon.WARM_UP_AFTER  # idle long enough
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not made and time.monotonic() < deadline:
                time.sleep(0.01)
            status = _status(path)
            assert made and status["warmed up"] is False
            assert len(made) < 200, "the status request waited for the whole warm-up"
            release.set()
            deadline = time.monotonic() + 30
            while not _status(path)["warmed up"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(made) == 200 and server.warmed
        finally:
            server.stopping = "test over"
            thread.join(30)
            server.listener.close()
    assert not thread.is_alive()


def test_no_warm_up_before_the_server_was_idle_a_moment(monkeypatch):
    """The client that started the server is served first: a fresh server does not warm up at once."""
    started = []
    monkeypatch.setattr(warm_up, "steps", lambda: iter(started.append(1) or ()))
    with tempfile.TemporaryDirectory(prefix="mlw", dir="/tmp") as folder:
        server, path = _server(Path(folder))
        server.last_check = time.monotonic() + 3600  # as if a check had just ended, for an hour
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        try:
            assert _status(path)["warmed up"] is False
            assert not started
        finally:
            server.stopping = "test over"
            thread.join(30)
            server.listener.close()


def test_a_warm_up_step_that_starts_a_thread_stops_the_server(monkeypatch):
    """Nothing may be forked from a process with a thread the fork would not carry: the server stops
    after the step (the next client starts a fresh one), not at the end of the warm-up."""
    stop = threading.Event()
    made: list[int] = []

    def spawning_steps():
        threading.Thread(target=stop.wait, daemon=True).start()
        made.append(1)
        yield "spawned", None
        made.append(2)
        yield "never reached", None

    monkeypatch.setattr(warm_up, "steps", spawning_steps)
    with tempfile.TemporaryDirectory(prefix="mlw", dir="/tmp") as folder:
        server, _ = _server(Path(folder))
        server.last_check -= daemon.WARM_UP_AFTER
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        try:
            thread.join(30)
            assert not thread.is_alive()
            assert server.stopping == "the warm-up started a thread; a fork could not be trusted with it"
            assert made == [1] and not server.warmed
        finally:
            stop.set()
            server.stopping = server.stopping or "test over"
            thread.join(30)
            server.listener.close()
