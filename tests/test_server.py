"""The warm server for real: started in a private runtime folder per test, stopped (or killed with its
process group) at the end, so no process outlives a test. Each start imports torch: slow."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mulint.server import client, protocol
from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.slow


class Project:
    """A folder with a [tool.mulint] config, its runtime folder and the mulint commands run in it."""

    def __init__(self, folder: Path, runtime: Path, cache: Path) -> None:
        self.folder, self.runtime, self.cache = folder, runtime, cache

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        env.update(PYTHONPATH=str(ROOT), MULINT_RUNTIME_DIR=str(self.runtime), MULINT_CACHE_DIR=str(self.cache))
        return {**env, **extra}

    def start(self, *args: str, **extra) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "mulint", *args],
            cwd=self.folder,
            env=self.env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, **extra) -> tuple[int, str, str]:
        process = self.start(*args, **extra)
        out, err = process.communicate(timeout=300)
        return process.returncode, out, err

    def server_pid(self) -> int | None:
        lock = next(self.runtime.glob("*.lock"), None)
        return client._pid(lock) if lock else None

    def cleanup(self) -> None:
        pid = self.server_pid()
        if pid:
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def project(tmp_path):
    with tempfile.TemporaryDirectory(prefix="mls", dir="/tmp") as folder:  # AF_UNIX paths are short
        made = Project(tmp_path, Path(folder) / "run", tmp_path / "cache")
        (tmp_path / "pyproject.toml").write_text("[tool.mulint]\n")
        try:
            yield made
        finally:
            made.cleanup()


def _examples(project: Project) -> None:
    for name in ("nanogpt_sp.py", "mlp_mup.py"):
        (project.folder / name).write_text((EXAMPLES / name).read_text())
    (project.folder / "broken.py").write_text(
        "import torch\nclass M(torch.nn.Module):\n    def __init__(self, width=\n"
    )


def test_warm_output_is_the_direct_output(project):
    """Text, JSON, SARIF and exit codes of the direct path and the warm path, on a µP model, an SP model
    and a usage error; analysed afresh by the server's worker (--no-cache) and from the cache. The server
    warms torch.export up while the direct path runs (it is idle then): the later warm checks run after it."""
    _examples(project)
    runs = [
        ("check", "nanogpt_sp.py", "--format", "json", "--no-cache"),
        ("check", "mlp_mup.py", "nanogpt_sp.py", "--jobs", "2", "--no-cache"),  # workers forked from threads
        ("check", "mlp_mup.py", "--no-cache"),
        ("check", "nanogpt_sp.py"),
        ("check", "nanogpt_sp.py", "--format", "sarif"),
        ("check", "nanogpt_sp.py", "--format", "github", "--statistics"),
        ("check", "mlp_mup.py", "--format", "json"),
        ("check", "broken.py"),
        ("check", "nanogpt_sp.py", "--select", "NOPE"),
        ("check", "missing.py", "--format", "json"),
    ]
    cached = [args for args in runs if "--no-cache" not in args]
    for args in runs:
        if args in cached:  # both runs below find the result cached (JSON says "cached": true)
            project.run(*args, "--daemon")  # the server's worker stores what the direct path reads
        direct = project.run(*args, "--no-daemon")
        warm = project.run(*args, "--daemon")
        assert warm == direct, args
    assert project.run("check", "nanogpt_sp.py", "--daemon")[0] == 1
    assert project.run("check", "mlp_mup.py", "--daemon")[0] == 0
    assert project.run("check", "nanogpt_sp.py", "--select", "NOPE", "--daemon")[0] == 2

    code, out, _ = project.run("server", "status")
    assert code == 0 and f"checks served: {len(runs) + len(cached) + 3} " in out and str(project.runtime) in out
    code, out, _ = project.run("server", "status", "--format", "json")
    status = json.loads(out)
    assert code == 0 and status["pid"] == project.server_pid() and status["key"]["torch version"]
    assert status["warmed up"] is True
    [log] = project.runtime.glob("*.log")
    assert "warmed up torch.export in" in log.read_text()
    [sock] = project.runtime.glob("*.sock")
    assert stat.S_IMODE(os.stat(project.runtime).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    code, out, _ = project.run("server", "stop")
    assert code == 0 and "stopped" in out
    assert not list(project.runtime.glob("*.sock"))
    assert project.run("server", "status")[0] == 1


NOISY = """\
import sys

import torch.nn as nn

print("printed at import")


class Prints(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.fc = nn.Linear(width, width)
        print("printed while building", file=sys.stderr)
        sys.exit(3)
"""


def test_what_the_model_prints_stays_in_its_worker_as_on_the_direct_path(project):
    """Workers forked from a request inherit streams that write to the client: the model's prints must
    still go to its output file, quoted in the error as the direct path quotes them, never to the
    terminal."""
    (project.folder / "noisy.py").write_text(NOISY, encoding="utf-8")
    direct = project.run("check", "noisy.py:Prints", "--no-cache", "--no-daemon")
    warm = project.run("check", "noisy.py:Prints", "--no-cache", "--daemon")
    assert warm == direct
    code, out, err = warm
    assert code == 2 and "printed" not in out and "| printed while building" in err


def test_two_clients_at_once_and_a_restart_on_a_changed_key(project):
    _examples(project)
    project.run("check", "nanogpt_sp.py", "--format", "json")  # fills the cache: the runs below find it
    direct = project.run("check", "nanogpt_sp.py", "--format", "json")
    assert project.run("server", "start")[0] == 0
    first_pid = project.server_pid()
    both = [project.start("check", "nanogpt_sp.py", "--format", "json", "--daemon") for _ in range(2)]
    for process in both:
        out, err = process.communicate(timeout=300)
        assert (process.returncode, out) == direct[:2], err
    (project.folder / "pyproject.toml").write_text('[tool.mulint]\npreload = ["json"]\n')
    code, out, err = project.run("check", "nanogpt_sp.py", "--format", "json", "--daemon")
    assert (code, out) == direct[:2]
    assert "Restarting: preload changed" in err
    assert project.server_pid() not in (None, first_pid)
    assert project.run("server", "stop")[0] == 0


def _slow_model(project: Project) -> None:
    (project.folder / "slow_model.py").write_text(
        "import time\nimport torch\n\nSLEPT = []\n\n\nclass Net(torch.nn.Module):\n"
        "    def __init__(self, width=64):\n        super().__init__()\n"
        "        if not SLEPT:  # the first build only: the check is slow enough to be killed in\n"
        "            SLEPT.append(time.sleep(3))\n"
        "        self.fc = torch.nn.Linear(width, width)\n\n    def forward(self, x):\n        return self.fc(x)\n"
    )


def _wait_for_a_running_check(project: Project, limit: float = 120.0) -> None:
    """Until the server says a check is running: a fixed sleep loses the race on a loaded machine."""
    deadline = time.monotonic() + limit
    while True:
        code, out, _ = project.run("server", "status", "--format", "json")
        if code == 0 and json.loads(out)["checks running"] >= 1:
            return
        assert time.monotonic() < deadline, "the check never started in the server"
        time.sleep(0.05)


def test_a_server_killed_mid_check_falls_back_to_the_direct_path(project):
    """The server and its check's child die mid-check: the client says so and prints the direct result, once."""
    _slow_model(project)
    direct = project.run("check", "slow_model.py", "--format", "json", "--no-cache")
    assert project.run("server", "start")[0] == 0
    pid = project.server_pid()
    process = project.start("check", "slow_model.py", "--format", "json", "--no-cache", "--daemon")
    _wait_for_a_running_check(project)  # then it is under way in the server's child, in the model's 3 s build
    os.killpg(pid, signal.SIGKILL)
    out, err = process.communicate(timeout=300)
    assert (process.returncode, out) == direct[:2]
    assert "the warm server went away mid-check" in err and "checking without it" in err


def test_a_stale_socket_is_replaced_and_an_idle_server_exits(project):
    (project.folder / "pyproject.toml").write_text("[tool.mulint]\ndaemon = true\nidle-timeout = 0.05\n")
    (project.folder / "model.py").write_text("x = 1\n")
    project.runtime.mkdir(mode=0o700)
    path = project.runtime / f"{protocol.server_id(project.folder)}.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a crashed server's socket file
    code, out, err = project.run("check", "model.py", "--no-exec")  # `daemon = true`: starts the server
    assert code == 0, err
    assert project.server_pid() and path.exists()
    assert project.run("server", "status")[0] == 0
    deadline = time.monotonic() + 60  # 3 s idle, then it goes
    while time.monotonic() < deadline and project.server_pid():
        time.sleep(0.2)
    assert project.server_pid() is None
    assert not path.exists()


def test_a_hung_server_is_given_up_within_bounded_time(project):
    _examples(project)
    project.run("check", "mlp_mup.py", "--format", "json")  # fills the cache
    direct = project.run("check", "mlp_mup.py", "--format", "json")
    assert project.run("server", "start")[0] == 0
    os.kill(project.server_pid(), signal.SIGSTOP)  # it accepts nothing and answers nothing
    started = time.monotonic()
    code, out, err = project.run("check", "mlp_mup.py", "--format", "json", "--daemon")
    assert (code, out) == direct[:2]
    assert "the warm server fell silent for 10 s; checking without it" in err
    assert time.monotonic() - started < client.FIRST_REPLY_TIMEOUT + 60
    pid = project.server_pid()
    code, out, _ = project.run("server", "kill")
    assert code == 0 and f"killed the mulint server (pid {pid})" in out
    assert project.server_pid() is None and not list(project.runtime.glob("*.sock"))


def test_a_client_that_leaves_stops_its_check(project):
    """Ctrl-C in the client: the check's child in the server notices at its next heartbeat and stops
    with its workers; the server serves on."""
    _slow_model(project)
    assert project.run("server", "start")[0] == 0
    process = project.start("check", "slow_model.py", "--no-cache", "--daemon")
    _wait_for_a_running_check(project)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted" in err
    deadline = time.monotonic() + 30
    status = ""
    while time.monotonic() < deadline:
        status = project.run("server", "status")[1]
        if "(0 running)" in status:
            break
        time.sleep(0.5)
    assert "checks served: 1 (0 running)" in status
    assert not _workers_of(project.server_pid())


def _workers_of(pid: int) -> list[int]:
    """Every process below pid (its children, theirs, ...), from /proc."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            children = [int(c) for c in task.read_text().split()]
            found += children
            todo += children
    return found
