"""The warm server's client without a server: what it imports, what it reads from the command line and
the config, the key it compares, the framing, the private folder. Milliseconds each (the subprocess ones
start Python without torch)."""

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import pytest

from mulint.server import client, protocol
from tests.conftest import ROOT


def _env(runtime: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PYTHONPATH=str(ROOT), MULINT_RUNTIME_DIR=str(runtime), **extra)
    return env


@pytest.fixture
def runtime():
    # AF_UNIX paths are short (108 bytes): a folder of its own directly in /tmp
    with tempfile.TemporaryDirectory(prefix="mls", dir="/tmp") as folder:
        yield Path(folder) / "run"


def test_the_client_imports_neither_torch_nor_numpy_nor_libcst(tmp_path, runtime):
    """The whole decision and the attempt to reach a server, as `mulint check --daemon` makes them with
    CI set (so nothing starts): the modules loaded stay light."""
    (tmp_path / "pyproject.toml").write_text('[tool.mulint]\ndaemon = true\npreload = ["json"]\n')
    (tmp_path / "model.py").write_text("x = 1\n")
    script = (
        "import json, sys\n"
        "from mulint.server import client\n"
        "code = client.check(['check', 'model.py', '--format', 'json'])\n"
        "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=_env(runtime, CI="1"), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["code"] is None  # CI: no server starts, the direct path runs
    loaded = set(answer["modules"])
    assert "mulint.server.client" in loaded and "mulint.project_files" in loaded
    for heavy in ("torch", "numpy", "libcst", "click", "networkx", "mulint.engine", "mulint.cli"):
        assert heavy not in loaded
    assert not list(runtime.glob("*.sock")) and not list(runtime.glob("*.lock"))


def test_value_options_are_the_check_commands():
    """The client tells paths from option values with this list: it must follow the command's options."""
    from mulint.cli import check

    taking = {name for p in check.params if isinstance(p, click.Option) and not p.is_flag for name in p.opts}
    assert client.VALUE_OPTIONS == taking


def test_the_last_flag_wins_over_the_config():
    assert client.wants_server(["a.py", "--daemon"], {})
    assert not client.wants_server(["--daemon", "a.py", "--no-daemon"], {"daemon": True})
    assert client.wants_server(["a.py"], {"daemon": True})
    assert not client.wants_server(["a.py"], {"daemon": "yes"})  # not a boolean: the direct path reports it
    assert not client.wants_server(["a.py"], {})


def test_config_found_from_the_first_path_or_given(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.mulint]\ndaemon = true\nidle-timeout = 5\n")
    (project / "sub" / "m.py").write_text("")
    other = tmp_path / "other.toml"
    other.write_text("[tool.mulint]\ndaemon = false\n")
    monkeypatch.chdir(tmp_path)
    table = client.config_table(["--widths", "64,128", "project/sub/m.py:make"])
    assert table["daemon"] is True
    root, key = client.settings(table)
    assert root == project.resolve() and key["idle-timeout"] == 5.0
    assert client.config_table(["--config", str(other), "project/sub/m.py"])["daemon"] is False
    assert client.config_table([f"--config={other}"])["daemon"] is False
    assert client.config_table(["nowhere.py"]) == {}  # no config above the working directory
    (project / "pyproject.toml").write_text("[tool.mulint\n")  # broken: the direct path reports it
    assert client.config_table(["project/sub/m.py"]) == {}


def test_bad_server_settings_are_not_guessed():
    with pytest.raises(client.Unavailable, match="preload"):
        client.settings({"preload": "transformers"})
    with pytest.raises(client.Unavailable, match="idle-timeout"):
        client.settings({"idle-timeout": 0})


def test_the_key_names_what_changed():
    key = protocol.server_key(["transformers"], 30.0)
    assert key["mulint version"] and len(key["mulint source"]) == 16
    assert key["torch version"].startswith("2.")  # read from the dist-info folder, as metadata would
    assert key["interpreter"] == sys.executable
    assert protocol.mismatch(key, dict(key)) is None
    assert protocol.mismatch(key, {**key, "torch version": "1.0"}) == "torch version changed"
    assert protocol.mismatch(key, protocol.server_key([], 30.0)) == "preload changed"
    older = {k: v for k, v in key.items() if k != "mup version"}
    assert protocol.mismatch(key, older) == "mup version changed"


def test_library_versions_follow_the_import_path(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    (first / "torch-9.9.dist-info").mkdir(parents=True)
    (second / "torch-1.0.dist-info").mkdir(parents=True)
    (second / "mup-1.0.0.dist-info").mkdir()
    assert protocol.library_versions([str(first), str(second)]) == {"torch": "9.9", "mup": "1.0.0"}


def test_the_idle_default_is_the_settings():
    from mulint.engine.settings import DEFAULT_IDLE_MINUTES

    assert protocol.DEFAULT_IDLE_MINUTES == DEFAULT_IDLE_MINUTES


def test_frames_round_trip_and_a_closed_peer_is_an_error():
    left, right = socket.socketpair()
    with left, right:
        protocol.send_json(left, protocol.REQUEST, {"op": "status"})
        protocol.send(left, protocol.STDOUT, b"x" * 100_000)
        assert protocol.receive(right) == (protocol.REQUEST, b'{"op": "status"}')
        assert protocol.receive(right) == (protocol.STDOUT, b"x" * 100_000)
        assert protocol.peer_uid(right) == os.getuid()
        left.close()
        with pytest.raises(protocol.ProtocolError):
            protocol.receive(right)


def test_the_runtime_folder_is_private(runtime, monkeypatch):
    monkeypatch.setenv("MULINT_RUNTIME_DIR", str(runtime))
    folder = protocol.private_dir()
    assert folder == runtime and (os.stat(folder).st_mode & 0o777) == 0o700
    os.chmod(folder, 0o755)
    with pytest.raises(OSError, match="0700"):
        protocol.private_dir()


def test_a_socket_file_without_a_server_is_no_server(runtime, monkeypatch, tmp_path):
    monkeypatch.setenv("MULINT_RUNTIME_DIR", str(runtime))
    path = protocol.socket_path(tmp_path)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a crashed server's socket: the file stays, nobody listens
    assert path.exists()
    assert client.connect(tmp_path) is None
    assert client.kill(tmp_path) is None  # no server holds the lock: nothing is killed


def test_ci_never_starts_a_server(tmp_path, runtime):
    """`CI` set: --daemon runs the direct path and leaves no server behind."""
    (tmp_path / "model.py").write_text("import torch\n")
    args = [sys.executable, "-m", "mulint", "check", "--no-exec", "model.py"]
    direct = subprocess.run(args, cwd=tmp_path, env=_env(runtime, CI="true"), capture_output=True, text=True)
    daemon = subprocess.run(
        [*args, "--daemon"], cwd=tmp_path, env=_env(runtime, CI="true"), capture_output=True, text=True
    )
    assert (daemon.returncode, daemon.stdout, daemon.stderr) == (direct.returncode, direct.stdout, direct.stderr)
    assert not list(runtime.glob("*.sock")) and not list(runtime.glob("*.lock"))


def test_only_installed_libraries_are_preloaded(tmp_path, monkeypatch):
    """A project module held by the server would stay as it was when the server started."""
    from mulint.server.daemon import installed_library

    (tmp_path / "my_layers.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed_library("json") and installed_library("sys") and installed_library("click")
    assert not installed_library("my_layers")
    assert not installed_library("no_such_module_anywhere")
