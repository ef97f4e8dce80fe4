"""Every front-end is the same gate: `pytest --mulint` checks as `mulint check` does (its settings,
its unanalysed files, its usage errors), `--diff --require-models` fails a file it never analysed,
text output cannot be hijacked by names or printed output, and output that cannot be written is
said so (or, for a reader that left, ends quietly)."""

import errno
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch  # noqa: F401  pytester's in-process runs unload modules they import; torch cannot be imported twice

from mulint.errors import ErrorRecord
from mulint.findings import Finding
from mulint.report import github, json_report, sarif, text
from mulint.report.escape import json_text, keep_lines, one_line
from mulint.report.summary import error_lines, note_lines
from tests.conftest import MODELS, ROOT

pytest_plugins = ["pytester"]

MUP_TOML = (ROOT / "mulint" / "profile_data" / "mup.toml").read_text(encoding="utf-8")
# The embedding's Adam lr ∝ width^-½ accepted for the input role: the one change that passes the model.
SQRT_EMBEDDING_TOML = MUP_TOML.replace("[update.adam]\ninput = 0.0", "[update.adam]\ninput = [-0.5, 0.0]")

# A model file that starts a process at import: mulint never imports it on its own.
SPAWNS_AT_IMPORT = textwrap.dedent("""
    import subprocess

    import torch.nn as nn

    subprocess.run(["true"])

    class Tower(nn.Module):
        def __init__(self, width: int = 64):
            super().__init__()
            self.up = nn.Linear(8, width)
            self.down = nn.Linear(width, 2)

        def forward(self, x):
            return self.down(self.up(x).tanh())
""")

ESCAPES = "\x1b[2J\x1b]0;owned\x07\u202e"
FORGED = "\nAll checks passed!\r"


# --- pytest --mulint ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_plugin_items_carry_the_settings_of_the_pyproject(pytester):
    pytester.makefile(".toml", custom=SQRT_EMBEDDING_TOML)
    pytester.makepyprojecttoml(
        textwrap.dedent(f'''
        [tool.mulint]
        targets = ["{MODELS / "sqrt_embedding_lr.py"}:make_model"]
        profile = "custom.toml"
        jobs = 3
        timeout = 42
        ignore = ["MU104"]
    ''')
    )
    recorded = pytester.inline_run("--mulint", "--collect-only", "-p", "no:cacheprovider")
    [item] = recorded.getcalls("pytest_collection_finish")[0].session.items
    settings = item.settings
    assert settings.jobs == 3 and settings.timeout == 42.0 and settings.ignore == ("MU104",)
    assert settings.profile == str((pytester.path / "custom.toml").resolve())  # from the config's folder
    assert settings.paths == (f"{MODELS / 'sqrt_embedding_lr.py'}:make_model",)


@pytest.mark.slow  # two plugin runs, each analysing the model in a worker
def test_plugin_verdict_follows_the_pyproject_profile(pytester):
    target = f"{MODELS / 'sqrt_embedding_lr.py'}:make_model"
    pytester.makepyprojecttoml(f'[tool.mulint]\ntargets = ["{target}"]\n')
    result = pytester.runpytest("--mulint", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*MU301 Adam: input parameters get updates*"])

    pytester.makefile(".toml", sqrt_embedding=SQRT_EMBEDDING_TOML)
    pytester.makepyprojecttoml(f'[tool.mulint]\ntargets = ["{target}"]\nprofile = "sqrt_embedding.toml"\n')
    result = pytester.runpytest("--mulint", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.slow
def test_plugin_fails_a_target_whose_model_was_not_analysed(pytester):
    pytester.makepyfile(tower=SPAWNS_AT_IMPORT)
    pytester.makepyprojecttoml('[tool.mulint]\ntargets = ["tower.py"]\n')
    result = pytester.runpytest("--mulint", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*mulint[[]tower.py[]]* FAILED*", "*tower.py: not analysed: not imported*"])


# A few of the settings tests/test_settings.py refuses one by one: the plugin goes through the same merge.
@pytest.mark.slow
@pytest.mark.parametrize(
    "body, words",
    [
        ("timeout = nan", "[tool.mulint] timeout"),
        ("select = []", "[tool.mulint] select"),
        ("profile = 'mu-p'", "unknown profile 'mu-p'"),
    ],
)
def test_plugin_config_error_is_a_usage_error_not_an_internal_error(pytester, body, words):
    pytester.makepyfile(tower=SPAWNS_AT_IMPORT)
    pytester.makepyprojecttoml(f'[tool.mulint]\ntargets = ["tower.py"]\n{body}\n')
    result = pytester.runpytest("--mulint", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "INTERNALERROR" not in err + result.stdout.str() and "Traceback" not in err
    assert "--mulint:" in err and words in err


# --- --diff --require-models ----------------------------------------------------------------------------


def test_diff_with_require_models_fails_a_file_it_did_not_analyse(mulint, tmp_path):
    model = tmp_path / "tower.py"
    model.write_text(SPAWNS_AT_IMPORT)
    code, out, err = mulint("check", str(model), "--diff", "--require-models")
    assert code == 2 and out == ""
    assert "--require-models: 1 file(s) defining models were not analysed" in err and "not imported" in err
    code, out, err = mulint("check", str(model), "--diff")  # without it: nothing to change, as before
    assert code == 0 and out == ""


# --- escaping ----------------------------------------------------------------------------------------------


def hostile_finding() -> Finding:
    return Finding(
        code="MU101",
        name="hidden-init-too-large",
        severity="error",
        message=f"hidden init too large for blocks{ESCAPES}",
        path=f"models/evil{FORGED}.py",
        line=4,
        column=1,
        target="evil.py:Net",
        parameter=f"blocks.{ESCAPES}{FORGED}weight",
    )


def _no_controls(output: str, keep: str = "\n") -> None:
    bad = [c for c in output if (ord(c) < 32 and c not in keep) or 0x7F <= ord(c) <= 0x9F or c in "\u202e\u2066\u2028"]
    assert not bad, f"raw control characters {bad!r} in {output!r}"


def test_text_output_shows_control_characters_as_escapes():
    out = text.render([hostile_finding()])
    _no_controls(out)
    first = out.splitlines()[0]
    # The whole finding stays on its line: the forged "All checks passed!" is inside it, escaped.
    assert first.startswith("models/evil\\nAll checks passed!\\r.py:4:1: MU101")
    assert "\\x1b[2J" in first and "\\x07" in first and "\\u202e" in first
    assert not any(line.startswith("All checks passed!") for line in out.splitlines())


def test_github_annotations_show_control_characters_as_escapes():
    out = github.render([hostile_finding()], errors=[ErrorRecord("t", "build", ESCAPES)])
    _no_controls(out)
    assert len(out.splitlines()) == 2 and "%0A" in out and "\\x1b[2J" in out


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_json_and_sarif_round_trip_the_names_with_nothing_raw():
    finding = hostile_finding()
    for out in (json_report.render([finding], [], []), sarif.render([finding], [], "0")):
        _no_controls(out)
        # Escaped in the text, intact in the value: the parameter's name comes back as it was.
        assert f"blocks.{ESCAPES}{FORGED}weight" in list(_strings(json.loads(out)))
    data = json.loads(json_report.render([finding], [], []))
    assert data["findings"][0]["parameter"] == f"blocks.{ESCAPES}{FORGED}weight"  # the value itself intact
    assert json.loads(json_text('"\x9b\u202e"')) == "\x9b\u202e"


def test_errors_notes_and_quoted_output_are_escaped_line_by_line():
    error = ErrorRecord(
        target=f"evil{FORGED}.py:Net",
        step="build",
        message=f"boom{ESCAPES}",
        hint="fix it",
        output=f"loss 0.1\n{ESCAPES}cleared\nAll checks passed!\rX",
    )
    [out] = error_lines([error])
    _no_controls(out)
    assert out.splitlines()[0].startswith("error: evil\\nAll checks passed!\\r.py:Net: [build] boom\\x1b[2J")
    assert "    | \\x1b[2J" in out
    # Every line the model printed, however it ended it, is quoted under the `|` margin.
    assert not any(line.startswith("All checks passed!") for line in out.split("\n"))

    class Result:
        targets = [{"target": "evil.py:Net", "notes": [f"traced{ESCAPES}"]}]
        unanalysed = [{"path": f"evil{FORGED}.py", "reason": f"not imported{ESCAPES}", "hint": "name it"}]

    notes = "\n".join(note_lines(Result()))
    _no_controls(notes)
    assert "note: evil\\nAll checks passed!\\r.py: not analysed" in notes


def test_escape_helpers():
    assert one_line("a\tb\nc\x00\x7f\x85\u2028") == "a\\tb\\nc\\x00\\x7f\\x85\\u2028"
    assert keep_lines("a\tb\r\nc\rd\x1b") == "a\tb\nc\\rd\\x1b"  # tabs and line ends kept, a lone CR shown
    assert one_line("µP – width^-½ ✓") == "µP – width^-½ ✓"  # printable text untouched


def test_a_file_name_with_escapes_reaches_the_terminal_escaped(mulint, tmp_path):
    """End to end on the static path: a schedule file whose name holds a screen-clear and a newline."""
    folder = tmp_path / f"run{ESCAPES}{FORGED}"
    folder.mkdir()
    (folder / "sched.py").write_text(
        'def train(optimizer, lr):\n    for group in optimizer.param_groups:\n        group["lr"] = lr\n'
    )
    code, out, err = mulint("check", str(folder))
    _no_controls(out + err)
    assert "\\x1b[2J" in out


# --- output that cannot be written ---------------------------------------------------------------------


class _Unwritable(io.TextIOBase):
    def __init__(self, error: OSError):
        self.error = error

    def write(self, text):
        raise self.error

    def flush(self):
        pass

    def fileno(self):
        raise io.UnsupportedOperation("no file descriptor")


@pytest.mark.parametrize(
    "error, code, words",
    [
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), 141, ""),
        (OSError(errno.ENOSPC, "No space left on device"), 2, "error: cannot write: No space left on device"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), 2, "error: cannot write: Disk quota exceeded"),
    ],
)
def test_output_that_cannot_be_written(tmp_path, monkeypatch, capsys, error, code, words):
    from mulint.cli import main

    (tmp_path / "sched.py").write_text(
        'def train(optimizer, lr):\n    for group in optimizer.param_groups:\n        group["lr"] = lr\n'
    )
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", _Unwritable(error))
    with pytest.raises(SystemExit) as info:
        main(["check", str(tmp_path / "sched.py")])
    err = capsys.readouterr().err
    assert info.value.code == code
    assert "Traceback" not in err and "internal error" not in err
    assert words in err if words else err == ""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_a_clear_error(tmp_path):
    (tmp_path / "plain.py").write_text("RATE = 0.1\n")
    for fmt in ("text", "json"):
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [sys.executable, "-m", "mulint", "check", str(tmp_path / "plain.py"), "--format", fmt],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                timeout=120,
            )
        assert done.returncode == 2, done.stderr
        assert "error: cannot write: No space left on device" in done.stderr and "internal error" not in done.stderr


@pytest.mark.slow
def test_closed_stdout_is_an_error_not_a_silent_pass(tmp_path):
    (tmp_path / "plain.py").write_text("RATE = 0.1\n")
    done = subprocess.run(
        [sys.executable, "-m", "mulint", "check", str(tmp_path / "plain.py")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        timeout=120,
        preexec_fn=lambda: __import__("os").close(1),
    )
    assert done.returncode == 2 and "standard output is closed" in done.stderr


def test_inspect_text_shows_names_and_notes_escaped():
    from mulint.facts import ModelFacts, ParamFacts
    from mulint.report.inspect_view import as_text

    facts = ModelFacts(
        target=f"evil{FORGED}.py:Net",
        path="evil.py",
        width_knob="width",
        base_width=64,
        widths=[64, 128],
        params=[
            ParamFacts(
                name=f"blocks.{ESCAPES}{FORGED}weight",
                shape=(64, 64),
                shapes={64: (64, 64), 128: (128, 128)},
                infinite_dims=(0, 1),
            )
        ],
        notes=[f"printed {ESCAPES}"],
    )
    out = as_text(facts)
    _no_controls(out)
    assert "blocks.\\x1b[2J" in out and "note: printed \\x1b[2J" in out
    assert not any(line.startswith("All checks passed!") for line in out.split("\n"))
