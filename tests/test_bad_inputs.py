"""Bad input gets a clear error naming it, never an internal error or a silent pass, and the other
files of the run are still checked."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import EXAMPLES

# MU303: a schedule writing one LR into every group; found statically, without importing anything.
SCHEDULE = textwrap.dedent("""
    def train(optimizer, lr):
        for group in optimizer.param_groups:
            group["lr"] = lr
""")


@pytest.mark.parametrize("option", ["--select", "--ignore"])
def test_an_unknown_rule_code_is_an_error_with_the_closest_code(mulint, tmp_path, option):
    (tmp_path / "sched.py").write_text(SCHEDULE)
    code, out, err = mulint("check", str(tmp_path / "sched.py"), option, "MU2O1")
    assert code == 2
    assert "unknown rule code MU2O1; did you mean MU201?" in err and option in err


def test_a_code_that_matches_no_rule_does_not_switch_every_rule_off(mulint, tmp_path):
    (tmp_path / "sched.py").write_text(SCHEDULE)
    code, out, err = mulint("check", str(tmp_path / "sched.py"), "--select", "MU999")
    assert code == 2 and "unknown rule code MU999" in err
    assert mulint("check", str(tmp_path / "sched.py"), "--select", "MU3")[0] == 1  # a prefix is fine


@pytest.mark.parametrize("table", ['select = ["MU2O1"]', '[tool.mulint.per-file-ignores]\n"x/*" = ["MU77"]'])
def test_unknown_codes_in_the_config_are_errors(mulint, tmp_path, table):
    (tmp_path / "pyproject.toml").write_text(f"[tool.mulint]\n{table}\n")
    (tmp_path / "sched.py").write_text(SCHEDULE)
    code, out, err = mulint("check", str(tmp_path / "sched.py"))
    assert code == 2 and "unknown rule code" in err and "[tool.mulint" in err


def test_a_missing_path_is_named_and_the_others_are_still_checked(mulint, tmp_path):
    (tmp_path / "sched.py").write_text(SCHEDULE)
    code, out, err = mulint("check", str(tmp_path / "nope.py"), str(tmp_path / "sched.py"))
    assert code == 2
    assert f"no such file or directory: {tmp_path / 'nope.py'}" in err
    assert "MU303" in out


def test_a_file_that_is_not_python_is_named(mulint, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    code, out, err = mulint("check", str(tmp_path / "notes.txt"))
    assert code == 2 and "notes.txt is not a Python file" in err


@pytest.mark.parametrize(
    "content",
    [
        b"def broken(:\n",
        b"x = 1\x00\n",
        b"x = " + b"+".join([b"1"] * 200_000) + b"\n",
        b"# -*- coding: utf-8 -*-\nname = '\xff\xfe'\n",
    ],
    ids=["syntax", "nul", "deep", "undecodable"],
)
def test_an_unparsable_file_is_an_error_of_its_own(mulint, tmp_path, content):
    (tmp_path / "bad.py").write_bytes(content)
    (tmp_path / "sched.py").write_text(SCHEDULE)
    code, out, err = mulint("check", str(tmp_path), "--format", "json")
    assert code == 2
    report = json.loads(out)
    assert [f["code"] for f in report["findings"]] == ["MU303"]  # the good file is still reported
    [error] = report["errors"]
    assert error["target"].endswith("bad.py") and "internal" not in error["message"]


def test_a_symlink_loop_is_an_error_of_its_own(mulint, tmp_path):
    os.symlink(tmp_path / "loop.py", tmp_path / "loop.py")
    (tmp_path / "sched.py").write_text(SCHEDULE)
    code, out, err = mulint("check", str(tmp_path / "loop.py"), str(tmp_path / "sched.py"))
    assert code == 2 and "loop.py" in err and "internal error" not in err
    assert "MU303" in out


def test_a_build_package_is_source_but_build_output_is_skipped(mulint, tmp_path):
    package = tmp_path / "mymodels" / "build"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sched.py").write_text(SCHEDULE)
    output = tmp_path / "build" / "lib"
    output.mkdir(parents=True)
    (output / "sched.py").write_text(SCHEDULE)
    code, out, err = mulint("check", str(tmp_path), "--verbose")
    assert code == 1
    assert "mymodels/build/sched.py" in out and "build/lib/sched.py" not in out
    assert f"skipped folder {tmp_path / 'build'}" in err


def test_a_directory_without_python_files_is_not_a_pass(mulint, tmp_path):
    (tmp_path / "README.md").write_text("no code here")
    code, out, err = mulint("check", str(tmp_path))
    assert code == 2 and "no Python files" in err


@pytest.mark.slow
def test_writing_into_a_closed_pipe_exits_quietly(tmp_path):
    for i in range(400):
        (tmp_path / f"sched{i:03d}.py").write_text(SCHEDULE)
    mulint = [sys.executable, "-c", "from mulint.cli import main; main()"]
    checker = subprocess.Popen([*mulint, "check", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    checker.stdout.readline()
    checker.stdout.close()  # `| head -1`
    err = checker.stderr.read().decode()
    checker.wait(timeout=60)
    assert "Traceback" not in err and "internal error" not in err and "BrokenPipe" not in err


def test_coord_refuses_an_unwritable_plot_before_training(mulint, tmp_path):
    code, out, err = mulint("coord", f"{EXAMPLES / 'mlp_mup.py'}:MLP", "--plot", str(tmp_path / "no" / "dir" / "p.png"))
    assert code == 2 and "[plot] cannot write the plot" in err


@pytest.mark.slow
def test_coord_names_a_batch_function_that_raises(mulint, tmp_path):
    (tmp_path / "batch.py").write_text("def batch(model):\n    raise RuntimeError('no data on this machine')\n")
    code, out, err = mulint(
        "coord",
        f"{EXAMPLES / 'mlp_mup.py'}:MLP",
        "--batch",
        f"{tmp_path / 'batch.py'}:batch",
        "--steps",
        "1",
        "--seeds",
        "1",
    )
    assert code == 2
    assert "the --batch function" in err and "no data on this machine" in err and "internal error" not in err


@pytest.mark.slow
def test_an_error_shared_by_several_models_is_printed_once(mulint, tmp_path):
    path = tmp_path / "two.py"
    path.write_text(
        textwrap.dedent("""
        import torch.nn as nn
        import a_package_that_is_not_installed


        class First(nn.Module):
            def __init__(self, width: int = 16):
                super().__init__()
                self.body = nn.Linear(width, width)

            def forward(self, x):
                return self.body(x)


        class Second(First):
            pass


        class Third(nn.Module):
            def __init__(self, width: int = 16):
                super().__init__()
                self.body = nn.Linear(width, width)

            def forward(self, x):
                return self.body(x)
    """)
    )
    code, out, err = mulint("check", str(path))
    assert code == 2
    assert err.count("No module named 'a_package_that_is_not_installed'") == 1
    assert f"{path}:Second, {path}:Third: [import]" in err
    assert "2 targets could not be analysed" in out
