"""Target errors as every reporter prints them (text, JSON, SARIF, GitHub annotations), compared byte for
byte with outputs recorded before errors became records (tests/data/error_output/): errors made in
mulint's own process (a missing file, an empty folder, a parse error, --no-exec, repeats merged) and
in a worker (a model that raises, exits or interrupts itself, with what it printed).

`python tests/test_error_output.py --write` records them again, after a deliberate change of the output.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

RECORDED = Path(__file__).resolve().parent / "data" / "error_output"
FORMATS = ("text", "json", "sarif", "github")

MODEL = """\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return self.fc(x)


class Other(Net):
    pass
"""

FAILING = """\
import os

import torch.nn as nn


class Raises(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        print("building at", width)
        raise ValueError("no config for this width")


class Exits(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        print("leaving now")
        os._exit(3)


class Interrupts(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        print("stop")
        raise KeyboardInterrupt
"""

# name -> (files to write, arguments of `mulint check`)
IN_PROCESS = (
    {"broken.py": "def f(:\n", "model.py": MODEL, "empty/readme.txt": "not source\n"},
    ["missing.py", "empty", "broken.py", "model.py:Net", "model.py:Other", "--no-exec", "--no-cache"],
)
IN_WORKERS = (
    {"failing.py": FAILING},
    ["failing.py:Raises", "failing.py:Exits", "failing.py:Interrupts", "--no-cache", "--jobs", "1"],
)


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _run(args: list[str], capsys) -> str:
    from mulint.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return f"exit {code}\n--- stdout\n{out}--- stderr\n{err}"


def outputs(scenario, folder: Path, capsys, monkeypatch) -> dict[str, str]:
    """What `mulint check` prints in each format, and `inspect` on the first target."""
    files, args = scenario
    _write(folder, files)
    monkeypatch.chdir(folder)
    printed = {fmt: _run(["check", *args, "--format", fmt], capsys) for fmt in FORMATS}
    printed["inspect"] = _run(["inspect", args[0]], capsys)
    from mulint.version import __version__

    # What may vary: the folder, and mulint's version in SARIF's tool driver.
    driver = f'"name": "mulint",\n          "version": "{__version__}"'
    return {
        name: text.replace(str(folder), "<folder>").replace(driver, driver.replace(__version__, "<mulint version>"))
        for name, text in printed.items()
    }


def _compare(name: str, printed: dict[str, str]) -> None:
    for fmt, text in printed.items():
        assert text == (RECORDED / f"{name}.{fmt}.txt").read_text(encoding="utf-8"), f"{name} --format {fmt}"


def test_errors_made_in_mulints_process_print_as_before(tmp_path, capsys, monkeypatch):
    _compare("in_process", outputs(IN_PROCESS, tmp_path, capsys, monkeypatch))


@pytest.mark.slow
def test_errors_sent_by_workers_print_as_before(tmp_path, capsys, monkeypatch):
    _compare("in_workers", outputs(IN_WORKERS, tmp_path, capsys, monkeypatch))


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    # Outside pytest: capture by hand, as the fixtures do in a test.
    import contextlib
    import io
    import os
    import tempfile

    class Capture:
        def __init__(self):
            self.out, self.err = io.StringIO(), io.StringIO()

        def readouterr(self):
            out, err = self.out.getvalue(), self.err.getvalue()
            self.out.seek(0), self.out.truncate(), self.err.seek(0), self.err.truncate()
            return out, err

    class Chdir:
        def chdir(self, path):
            os.chdir(path)

    RECORDED.mkdir(parents=True, exist_ok=True)
    for name, scenario in (("in_process", IN_PROCESS), ("in_workers", IN_WORKERS)):
        capture = Capture()
        with tempfile.TemporaryDirectory() as folder:
            here = os.getcwd()
            with contextlib.redirect_stdout(capture.out), contextlib.redirect_stderr(capture.err):
                printed = outputs(scenario, Path(folder).resolve(), capture, Chdir())
            os.chdir(here)
        for fmt, text in printed.items():
            (RECORDED / f"{name}.{fmt}.txt").write_text(text, encoding="utf-8")
