"""The typed records between mulint's stages: the settings become one `JobOptions` per job, a failure one
`ErrorRecord` whatever made it, a user's function one `FunctionRef` parsed where the settings are read;
`inspect` and `coord` read `[tool.mulint]` as `check` does. No model is built here: milliseconds each."""

from __future__ import annotations

import json
import textwrap

import pytest

from mulint.engine.options import JobOptions
from mulint.engine.settings import build_settings, settings_for
from mulint.engine.wire import WireError, check_error, decode, encode
from mulint.errors import ErrorRecord, MulintError
from mulint.reading.functions import FunctionRef, GivenFunction, resolve_function

# --- errors -----------------------------------------------------------------------------------------


def test_an_error_record_is_made_from_the_error_with_the_target_and_step_it_lacks():
    named = MulintError("boom", target="a.py:Net", step="build", hint="h", kind="needs-arguments")
    assert ErrorRecord.of(named, target="other", step="import") == ErrorRecord(
        "a.py:Net", "build", "boom", "h", "needs-arguments"
    )
    bare = MulintError("boom")
    assert ErrorRecord.of(bare, target="b.py:M", step="trace") == ErrorRecord("b.py:M", "trace", "boom")


def test_the_json_output_of_an_error_has_no_kind_and_its_output_only_when_printed():
    quiet = ErrorRecord("t", "build", "m", "h", kind="crashed")
    assert list(quiet.as_json().items()) == [("target", "t"), ("step", "build"), ("message", "m"), ("hint", "h")]
    loud = ErrorRecord("t", "build", "m", output="printed")
    assert loud.as_json()["output"] == "printed" and "kind" not in loud.as_json()


def test_an_error_record_crosses_the_pipe_and_a_forged_one_does_not():
    record = ErrorRecord("a.py:Net", "build", "boom", "h", "exited", "out")
    kind, payload = decode(encode(("error", record)))
    assert kind == "error" and check_error(payload) == record
    with pytest.raises(WireError):  # the dict errors once were: no longer an error record
        check_error(decode(encode({"target": "t", "step": "s", "message": "m", "hint": ""})))
    forged = encode(("error", record)).replace(b'"step":"build"', b'"step":3')
    with pytest.raises(WireError, match="ErrorRecord.step"):
        decode(forged)


def test_repeated_errors_are_merged_into_one_record_naming_every_target():
    from mulint.engine.checker import merge_repeated

    first, again = ErrorRecord("a.py:A", "import", "m", "h"), ErrorRecord("a.py:B", "import", "m", "h")
    other = ErrorRecord("a.py:C", "build", "m", "h")
    merged = merge_repeated([first, again, other, first])
    assert merged == [ErrorRecord("a.py:A, a.py:B", "import", "m", "h"), other]
    assert first.target == "a.py:A"  # records are never changed in place


# --- job options ------------------------------------------------------------------------------------


def test_a_check_job_is_told_the_merged_settings(tmp_path):
    settings = build_settings(
        None, widths=[32, 64], width_arg="d", select=["MU1"], profile="spectral", lr_scale_keys=["lr_factor"]
    )
    options = JobOptions.for_check(settings)
    assert (options.widths, options.width_arg, options.select, options.ignore) == ((32, 64), "d", ("MU1",), None)
    assert (options.profile, options.lr_scale_keys, options.lr_scale, options.coord) == (
        "spectral",
        ("lr_factor",),
        "auto",
        False,
    )
    assert JobOptions.for_inspect(settings).select is None  # inspect runs no rules


def test_the_cache_key_of_job_options_is_json_and_tells_settings_apart():
    base = JobOptions(widths=(32, 64), optimizer=FunctionRef("opt.py", "", "make"))
    key = json.dumps(base.as_key(), sort_keys=True)
    assert json.loads(key)["optimizer"] == {"path": "opt.py", "module": "", "name": "make"}
    for changed in (
        JobOptions(widths=(32, 64), optimizer=FunctionRef("opt.py", "", "other")),
        JobOptions(widths=(32, 64), optimizer=FunctionRef("opt.py", "", "make"), profile="spectral"),
        JobOptions(widths=(32, 128), optimizer=FunctionRef("opt.py", "", "make")),
    ):
        assert json.dumps(changed.as_key(), sort_keys=True) != key


# --- the user's functions ---------------------------------------------------------------------------


def test_a_function_is_parsed_once_into_where_it_is_and_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref = FunctionRef.parse("train/opt.py:make_optimizer")
    assert (ref.path, ref.name, ref.label) == ("train/opt.py", "make_optimizer", "train/opt.py:make_optimizer")
    ref = FunctionRef.parse("pkg.optim:build")
    assert (ref.path, ref.module, ref.label) == (None, "pkg.optim", "pkg.optim:build")
    with pytest.raises(MulintError, match="'opt.py' does not name a function") as caught:
        FunctionRef.parse("opt.py", flag="--batch")
    assert "--batch path/to/file.py:NAME" in caught.value.hint


def test_a_function_resolves_to_itself_whether_named_or_given(tmp_path, monkeypatch):
    (tmp_path / "opt_seams.py").write_text("def make(model):\n    return ('made', model)\n")
    monkeypatch.chdir(tmp_path)
    function, label = resolve_function(FunctionRef.parse("opt_seams.py:make"))
    assert label == "opt_seams.py:make" and function("m") == ("made", "m")

    def given(model):
        return model

    assert resolve_function(GivenFunction(given, "tests:given")) == (given, "tests:given")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--optimizer", "opt.py"], "error: [config] --optimizer: 'opt.py' does not name a function"),
        (["--optimizer", "not a name:f"], "error: [config] --optimizer: 'not a name:f' is neither a file nor"),
    ],
)
def test_an_optimizer_that_names_no_function_is_a_usage_error(mulint, tmp_path, monkeypatch, args, words):
    (tmp_path / "model.py").write_text("x = 1\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = mulint("check", "model.py", *args)
    assert code == 2 and err.startswith(words), err


def test_a_config_optimizer_is_parsed_with_the_settings(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.mulint]\noptimizer = "train.py"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MulintError, match=r"\[tool.mulint\] optimizer \(in .*\): 'train.py' does not name"):
        settings_for(["model.py"])
    (tmp_path / "pyproject.toml").write_text('[tool.mulint]\noptimizer = "train.py:make"\n')
    assert settings_for(["model.py"]).optimizer == FunctionRef("train.py", "", "make")


# --- inspect and coord read [tool.mulint] -------------------------------------------------------------

CONFIG = """\
[tool.mulint]
select = ["MU9"]            # check's rules only: no reason for inspect or coord to refuse it
widths = [16, 32]           # the widths check builds at
width-arg = "width"
optimizer = "opt.py:make"
profile = "spectral"
timeout = 42
max-memory = "2G"
lr-scale-key = "lr_factor"
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(CONFIG)
    (tmp_path / "model.py").write_text("class Net:\n    pass\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def given_to_worker(monkeypatch):
    """The job and limits the command hands its worker (no worker runs)."""
    from mulint import cli

    seen = []

    class Stop(Exception):
        pass

    def run_one_job(job, limits, verbose, **kwargs):
        seen.append((job, limits))
        raise Stop

    monkeypatch.setattr(cli, "run_one_job", run_one_job)
    return seen


def test_coord_reads_the_config_under_its_flags(project, mulint, given_to_worker):
    mulint("coord", "model.py:Net", "--width-arg", "hidden", "--batch", "opt.py:batch", "--steps", "2")
    [(job, limits)] = given_to_worker
    options = job.options
    assert (options.width_arg, options.optimizer, options.profile) == (
        "hidden",
        FunctionRef("opt.py", "", "make"),
        "spectral",
    )
    assert options.lr_scale_keys == ("lr_factor",) and options.batch == FunctionRef("opt.py", "", "batch")
    assert options.widths is None  # coord trains at its own widths, as `check --coord` does
    assert (options.steps, options.seeds, limits.timeout, limits.max_memory, limits.jobs) == (2, 2, 42.0, 2 << 30, 1)


def test_coord_takes_its_widths_from_the_flag(project, mulint, given_to_worker):
    mulint("coord", "model.py:Net", "--widths", "64,128,256")
    [(job, _)] = given_to_worker
    assert job.options.widths == (64, 128, 256)


def test_inspect_reads_the_config_under_its_flags(project, mulint, given_to_worker):
    mulint("inspect", "model.py:Net", "--profile", "mup", "--timeout", "7")
    [(job, limits)] = given_to_worker
    options = job.options
    assert (options.widths, options.width_arg, options.profile) == ((16, 32), "width", "mup")
    assert options.optimizer == FunctionRef("opt.py", "", "make") and options.lr_scale_keys == ("lr_factor",)
    assert (limits.timeout, limits.jobs) == (7.0, 1)


def test_a_bad_config_value_is_a_usage_error_of_coord_too(project, mulint, given_to_worker):
    (project / "pyproject.toml").write_text(textwrap.dedent(CONFIG).replace("timeout = 42", "timeout = -1"))
    code, out, err = mulint("coord", "model.py:Net")
    assert code == 2 and "[tool.mulint] timeout: must be a positive, finite number" in err
    assert given_to_worker == []
