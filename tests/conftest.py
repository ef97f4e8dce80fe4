import json
import os
import signal
import sys
from pathlib import Path

import pytest

# Write bytecode as Python does by default, whatever the environment says: with PYTHONDONTWRITEBYTECODE
# set, every run rewrote every test module's asserts again (collection of the fast tier: 13.6 s, against
# 7.9 s) and every mulint process a test starts compiled mulint from source. mulint's workers still write
# none for the user's files (`mulint.engine.worker`).
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# The tests that press Ctrl-C send SIGINT to a mulint they start. A test run a shell started in the
# background (`pytest &` without job control) has SIGINT ignored, and every process it starts would
# inherit that: give the run, and so its children, the default a terminal gives.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MODELS = Path(__file__).resolve().parent / "models"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Keep the result cache of the test run apart from the user's."""
    os.environ["MULINT_CACHE_DIR"] = str(tmp_path_factory.mktemp("mulint-cache"))


@pytest.fixture(scope="session")
def rule_page_folder(tmp_path_factory):
    """One folder per rule page for its examples, shared by the tests of the session: a check of the
    same example at the same path with the same options is analysed once (mulint's result cache)."""
    root = tmp_path_factory.mktemp("rule-pages")

    def folder(page: Path) -> Path:
        path = root / page.stem
        path.mkdir(exist_ok=True)
        return path

    return folder


@pytest.fixture
def mulint(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from mulint.cli import main

    def run(*args: str):
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def inspect_json(mulint):
    def run(target: str, *args: str) -> dict:
        code, out, err = mulint("inspect", target, "--format", "json", *args)
        assert code == 0, err
        return json.loads(out)

    return run


def roles_of(report: dict) -> dict[str, list[str]]:
    return {p["name"]: p["roles"] for p in report["parameters"]}


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's in-process training: tiny matmuls, where threads only add
    synchronisation on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def parent_modules(args: list[str], env: dict[str, str] | None = None, timeout: int = 600):
    """Run the CLI in a fresh interpreter: the finished process and the modules its own process had
    imported when it exited. Workers import torch; the parent must not (seconds of import per run)."""
    import subprocess
    import sys

    probe = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print('@@parent modules:', json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        "from mulint.cli import main\nmain(sys.argv[1:])\n"
    )
    run = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=timeout, env=env)
    line = next((ln for ln in run.stderr.splitlines() if ln.startswith("@@parent modules: ")), None)
    assert line is not None, run.stderr
    return run, set(json.loads(line.split(": ", 1)[1]))
