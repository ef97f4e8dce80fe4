"""The process side of the gate: nothing a model starts outlives mulint, a bare file's import cannot
act on the machine, results are plain data, output is bounded, and the static pass reads only
regular files, each once."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

HANGING = """
import os
import subprocess
import torch.nn as nn


class Spin(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        child = subprocess.Popen(["sleep", "600"])
        with open({pids!r}, "a") as f:
            f.write(f"{{os.getpid()}} {{child.pid}}\\n")
        while True:
            pass

    def forward(self, x):
        return x
"""


def _env(tmp_path, **extra):
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(scratch),
        "MULINT_CACHE_DIR": str(tmp_path / "cache"),
        **extra,
    }


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for a parent that no longer runs."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _session(sid: int) -> list[int]:
    """Every live process of a session (mulint, its worker server and resource tracker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
                pids.append(int(entry.name))
    return pids


def _wait(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _start_hanging(tmp_path, count: int = 1):
    pids = tmp_path / "pids.txt"
    targets = []
    for i in range(count):
        path = tmp_path / f"spin{i}.py"
        path.write_text(HANGING.format(pids=str(pids)))
        targets.append(f"{path}:Spin")
    process = subprocess.Popen(
        [sys.executable, "-m", "mulint", "check", *targets, "--no-cache", "--jobs", str(count), "--timeout", "600"],
        cwd=tmp_path,
        env=_env(tmp_path),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def started():
        return pids.exists() and len(pids.read_text().splitlines()) == count

    assert _wait(started, 240), "the hanging models never started"
    spawned = [int(p) for line in pids.read_text().splitlines() for p in line.split()]
    return process, spawned


def _stop_and_check(tmp_path, process, spawned, signum, code):
    group = _session(process.pid)
    assert process.pid in group and len(group) >= 2  # mulint and its worker server
    sent = time.monotonic()
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    took = time.monotonic() - sent
    assert process.returncode == code, err
    assert "interrupted" in err.decode()
    assert took < 2.0, f"mulint took {took:.1f} s to stop"
    survivors = lambda: [p for p in group + spawned if not _dead(p)]  # noqa: E731
    assert _wait(lambda: not survivors(), 2.0), f"still running: {survivors()}"
    assert not list((tmp_path / "tmp").glob("mulint-*")), "a temporary folder was left behind"


@pytest.mark.slow
def test_sigterm_stops_mulint_its_worker_and_what_the_model_started(tmp_path):
    process, spawned = _start_hanging(tmp_path)
    _stop_and_check(tmp_path, process, spawned, signal.SIGTERM, 143)


@pytest.mark.slow
def test_ctrl_c_with_two_jobs_stops_both_hanging_models_at_once(tmp_path):
    process, spawned = _start_hanging(tmp_path, count=2)
    _stop_and_check(tmp_path, process, spawned, signal.SIGINT, 130)


@pytest.mark.slow
def test_workers_die_when_mulint_is_killed_outright(tmp_path):
    process, spawned = _start_hanging(tmp_path)
    group = _session(process.pid)
    process.kill()  # no handler runs: the worker notices by itself
    process.communicate(timeout=30)
    survivors = lambda: [p for p in group + spawned if not _dead(p)]  # noqa: E731
    assert _wait(lambda: not survivors(), 5.0), f"still running: {survivors()}"
    assert _wait(lambda: not list((tmp_path / "tmp").glob("mulint-*")), 2.0)  # the worker removed its folder


# --- the audit hook on a bare file's import ---------------------------------------------------------

MODEL_WITH = """
import os
import socket
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.inp = nn.Linear(4, width)
        self.out = nn.Linear(width, 2)

    def forward(self, x):
        return self.out(self.inp(x))


{effect}
"""


def _run_discovered(path: Path, name: str = "Net"):
    from mulint.engine.isolation import Job, Limits, run_jobs
    from mulint.engine.options import JobOptions

    [outcome] = run_jobs(
        [Job("check", f"{path}:{name}", JobOptions(widths=(16, 32)), discovered=True)], Limits(timeout=120, jobs=1)
    )
    return outcome


@pytest.mark.slow
@pytest.mark.parametrize(
    "effect, what",
    [
        ('os.system("touch {marker}")', "a process (os.system)"),
        ('open("{marker}", "w").write("x")', "a write to"),
        ('socket.socket().connect(("127.0.0.1", 9))', "network access (socket.connect)"),
        ('__import__("torch").cuda.init()', "CUDA initialisation"),
        ('__import__("ctypes").CDLL(None).system(b"touch {marker}")', "native code (ctypes.dlopen)"),
    ],
)
def test_a_bare_files_effect_at_import_is_refused_naming_its_line(tmp_path, effect, what):
    marker = tmp_path / "made-by-the-model"
    path = tmp_path / "model.py"
    path.write_text(MODEL_WITH.format(effect=effect.format(marker=marker)))
    line = path.read_text().splitlines().index(effect.format(marker=marker)) + 1
    outcome = _run_discovered(path)
    assert outcome.error is not None and outcome.error.kind == "refused"
    assert f"line {line} runs {what}" in outcome.error.message
    assert not marker.exists()


@pytest.mark.slow
def test_swallowing_the_refusal_does_not_let_the_import_through(tmp_path):
    marker = tmp_path / "made"
    path = tmp_path / "model.py"
    path.write_text(MODEL_WITH.format(effect=f'try:\n    os.remove("{marker}")\nexcept BaseException:\n    pass\n'))
    marker.write_text("keep me")
    outcome = _run_discovered(path)
    assert outcome.error.kind == "refused" and "os.remove" in outcome.error.message
    assert marker.read_text() == "keep me"


@pytest.mark.slow
def test_the_hook_catches_what_the_static_walk_misses_as_a_note(mulint, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "sneaky.py"
    effect = f'list(itertools.starmap(os.system, [("touch {marker}",)]))'
    path.write_text("import itertools\n" + MODEL_WITH.format(effect=effect))
    code, out, err = mulint("check", str(path), "--no-cache")
    assert code == 0, err
    line = path.read_text().splitlines().index(effect) + 1
    assert f"not imported: line {line} runs a process (os.system) at import time" in err
    assert not marker.exists()


@pytest.mark.slow
def test_a_correct_bare_model_writing_in_its_scratch_folder_is_analysed(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(
        MODEL_WITH.format(effect='import tempfile\nwith tempfile.TemporaryFile() as f:\n    f.write(b"ok")\n')
    )
    outcome = _run_discovered(path)
    assert outcome.error is None, outcome.error
    assert outcome.value["target"]["parameters"] == 4


@pytest.mark.slow
def test_a_stale_unchecked_pyc_is_not_imported_instead_of_its_source(tmp_path):
    import importlib._bootstrap_external as external
    import py_compile

    marker = tmp_path / "pwned"
    helper = tmp_path / "helper.py"
    helper.write_text(f'import os\nos.system("touch {marker}")\n')
    py_compile.compile(str(helper), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    helper.write_text("SCALE = 1\n")  # the source the walk reads is harmless; the .pyc is not
    assert Path(external.cache_from_source(str(helper))).exists()
    path = tmp_path / "model.py"
    path.write_text("import helper\n" + MODEL_WITH.format(effect=""))
    outcome = _run_discovered(path)
    assert outcome.error is None, outcome.error
    assert not marker.exists()


@pytest.mark.slow
def test_siblings_named_like_standard_modules_do_not_shadow_them(tmp_path):
    for name in ("profile", "shlex", "statistics", "pstats", "cProfile", "dis"):
        (tmp_path / f"{name}.py").write_text('raise RuntimeError("a sibling shadowed the standard library")\n')
    path = tmp_path / "model.py"
    path.write_text(MODEL_WITH.format(effect=""))
    outcome = _run_discovered(path)
    assert outcome.error is None, outcome.error


# --- results are plain data -------------------------------------------------------------------------


@pytest.mark.slow
def test_an_intenum_default_is_not_imported_in_mulints_process(tmp_path, monkeypatch):
    from mulint.engine.checker import run_check
    from mulint.engine.settings import Settings

    (tmp_path / "enummodel.py").write_text(
        textwrap.dedent("""
        import enum
        import torch.nn as nn

        print("@@enummodel imported")


        class Size(enum.IntEnum):
            SMALL = 16


        class Net(nn.Module):
            def __init__(self, width: int = Size.SMALL):
                super().__init__()
                self.inp = nn.Linear(4, width)
                self.out = nn.Linear(width, 2)

            def forward(self, x):
                return self.out(self.inp(x))
    """)
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # where an unpickler would find the user's module
    result = run_check(Settings(paths=("enummodel.py:Net",), cache=False, jobs=1))
    assert not result.errors, result.errors
    assert result.models_analysed == 1
    assert "enummodel" not in sys.modules
    [entry] = [t for t in result.targets if t["mode"] == "model"]
    assert entry["widths"] and all(type(w) is int for w in entry["widths"])


def test_a_message_that_is_not_a_result_is_refused():
    from mulint.coordcheck import CoordResult
    from mulint.engine.wire import WireError, check_result, decode, encode
    from mulint.findings import Finding

    finding = Finding("MU101", "x", "error", "m", "a.py", 3, 1, parameter="w")
    value = decode(encode({"findings": [finding], "target": {"target": "a.py:N", "mode": "model", "widths": [16]}}))
    assert value["findings"] == [finding]
    check_result("check", value)
    import pickle

    with pytest.raises(WireError):
        decode(pickle.dumps(("done", {})))
    with pytest.raises(WireError):  # a record mulint does not know
        decode(b'{"~obj": "Popen", "fields": {"args": "sh"}}')
    with pytest.raises(WireError):  # a field of the wrong type
        decode(
            b'{"~obj": "Finding", "fields": {"code": 1, "name": "", "severity": "", "message": "", '
            b'"path": "", "line": 1, "column": 1}}'
        )
    with pytest.raises(WireError):
        check_result("check", {"findings": "none", "target": {"target": "t", "mode": "model"}})
    with pytest.raises(WireError):
        check_result("coord", {"coord": {"target": "t"}})
    assert isinstance(decode(encode(CoordResult("t", [1], 1, 1, "SGD", []))), CoordResult)


# --- bounded output ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_model_printing_100_mb_costs_mulint_no_memory(tmp_path):
    quiet = tmp_path / "quiet.py"
    quiet.write_text(MODEL_WITH.format(effect=""))
    loud = tmp_path / "loud.py"
    loud.write_text(
        MODEL_WITH.format(
            effect='import sys\nfor _ in range(100):\n    sys.stdout.write("y" * (1 << 20))\n'
            'print()\nprint("@@last line")\n'
        )
    )
    script = textwrap.dedent(f'''
        import sys
        from mulint.engine.isolation import Job, Limits, run_jobs
        from mulint.engine.options import JobOptions

        # getrusage's peak survives exec, so it would count the pytest process this one was forked
        # from; the mm's own high-water mark, reset here, counts this process alone.
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

        def peak():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        [outcome] = run_jobs([Job("check", "{quiet}:Net", JobOptions(widths=(16, 32)))], Limits(timeout=300, jobs=1))
        before = peak()
        [outcome] = run_jobs([Job("check", "{loud}:Net", JobOptions(widths=(16, 32)))], Limits(timeout=300, jobs=1))
        assert outcome.error is None, outcome.error
        assert "@@last line" in outcome.output and len(outcome.output) < 100_000
        assert "torch" not in sys.modules
        print(before, peak())
    ''')
    done = subprocess.run(
        [sys.executable, "-c", script], env=_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    before, after = (int(n) / 1024 for n in done.stdout.split()[-2:])
    assert after - before < 20, f"mulint's process grew from {before:.0f} MB to {after:.0f} MB"
    assert after < 400


@pytest.mark.slow
def test_a_print_loop_is_stopped_at_the_file_size_cap(tmp_path, monkeypatch):
    from mulint.engine import isolation

    monkeypatch.setattr(isolation, "MAX_OUTPUT_BYTES", 4 << 20)
    path = tmp_path / "loop.py"
    path.write_text(MODEL_WITH.format(effect="while True:\n    print('x' * 1000)\n"))
    started = time.monotonic()
    [outcome] = isolation.run_jobs([isolation.Job("check", f"{path}:Net")], isolation.Limits(timeout=120))
    assert outcome.error.kind == "output" and "more than 4 MB" in outcome.error.message
    assert time.monotonic() - started < 60


# --- the static pass reads regular files, each once -------------------------------------------------


@pytest.mark.slow
def test_fifo_device_symlink_and_lock_files_never_hang_or_fail_the_folder(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "plain.py").write_text("X = 1\n")
    os.mkfifo(folder / "pipe.py")
    (folder / "zero.py").symlink_to("/dev/zero")
    (folder / ".#plain.py").symlink_to("user@host.1234:1700000000")  # an editor's lock file
    (folder / "gone.py").symlink_to(folder / "nowhere.py")
    done = subprocess.run(
        [sys.executable, "-m", "mulint", "check", "src", "--no-cache"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "pipe.py is a FIFO (named pipe), not a regular file: not read" in done.stderr
    assert "zero.py is a character device, not a regular file: not read" in done.stderr
    assert "plain.py" not in done.stderr and "gone.py" not in done.stderr
    assert "1 file checked statically" in done.stdout + done.stderr


def test_lock_files_alone_do_not_fail_the_run(mulint, tmp_path):
    (tmp_path / "plain.py").write_text("X = 1\n")
    (tmp_path / ".#plain.py").symlink_to("user@host.1234:1700000000")
    code, out, err = mulint("check", str(tmp_path), "--no-cache")
    assert code == 0, err


def test_an_oversized_file_is_reported_not_read(tmp_path):
    from mulint.sources import NotSource, read_source

    path = tmp_path / "big.py"
    path.write_bytes(b"#" * 2048)
    with pytest.raises(NotSource, match="larger than"):
        read_source(path, limit=1024)
    assert read_source(path, limit=4096) == b"#" * 2048


def test_a_file_named_twice_or_through_a_symlink_is_checked_once(tmp_path, monkeypatch):
    from mulint.engine.checker import run_check
    from mulint.engine.settings import Settings

    (tmp_path / "a.py").write_text("X = 1\n")
    (tmp_path / "b.py").symlink_to(tmp_path / "a.py")
    monkeypatch.chdir(tmp_path)
    result = run_check(Settings(paths=("a.py", str(tmp_path / "a.py"), ".", "b.py"), cache=False))
    assert result.files_static == 1 and not result.errors


# --- failures that must be errors -------------------------------------------------------------------


@pytest.mark.slow
def test_an_optimizer_whose_step_raises_is_an_error(mulint, tmp_path):
    path = tmp_path / "opt.py"
    path.write_text(
        MODEL_WITH.format(
            effect=textwrap.dedent("""
        import torch


        class Broken(torch.optim.Optimizer):  # a family mulint measures rather than looks up
            def step(self, closure=None):
                raise RuntimeError("@@no step today")


        def make_optimizer(model):
            return Broken(model.parameters(), {"lr": 0.1})
    """)
        )
    )
    code, out, err = mulint("check", f"{path}:Net", "--optimizer", f"{path}:make_optimizer", "--no-cache")
    assert code == 2, err
    assert "Broken.step() raised RuntimeError: @@no step today" in err


def test_sys_exit_in_a_model_fn_is_a_mulint_error():
    import torch.nn as nn

    import mulint
    from mulint.errors import MulintError

    def model_fn(width=16):
        if width > 16:
            sys.exit(5)
        return nn.Sequential(nn.Linear(4, width), nn.Linear(width, 2))

    with pytest.raises(MulintError, match=r"sys.exit\(5\)"):
        mulint.check(model_fn)
