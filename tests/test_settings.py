"""Settings: the one merge (defaults < [tool.mulint] < flags or API arguments) into a frozen object,
and every setting that would switch the analysis off refused with exit 2 (or a MulintError) naming
it. Almost all of these fail before any model runs, so they take milliseconds."""

import dataclasses
import math
import textwrap
from pathlib import Path

import pytest

import mulint
from mulint.engine.config import load_config
from mulint.engine.isolation import DEFAULT_TIMEOUT, default_jobs
from mulint.engine.settings import Settings, build_settings, settings_for
from mulint.errors import MulintError
from tests.conftest import EXAMPLES, MODELS

MUP_TOML = (Path(mulint.__file__).parent / "profile_data" / "mup.toml").read_text(encoding="utf-8")


def write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def static_file(tmp_path: Path) -> str:
    """A file with no model: a run of it needs no worker, so an accepted setting would pass quickly."""
    return str(write(tmp_path / "plain.py", "RATE = 0.1\n"))


# --- the merge ---------------------------------------------------------------------------------


def test_defaults_without_any_layer():
    settings = build_settings(None)
    assert (settings.select, settings.ignore, settings.widths, settings.width_arg, settings.profile) == (
        None,
        None,
        None,
        None,
        "mup",
    )
    assert settings.timeout == DEFAULT_TIMEOUT and settings.jobs == default_jobs() and settings.max_memory is None
    assert settings.format == "text" and settings.cache and not settings.require_models
    assert settings.root == Path.cwd() and settings.config_path is None


def test_pyproject_over_defaults_and_arguments_over_pyproject(tmp_path):
    path = write(
        tmp_path / "pyproject.toml",
        """
        [tool.mulint]
        targets = ["nets/", "elsewhere.py:GPT"]
        select = ["MU1", "MU3"]
        widths = [64, 128]
        format = "json"
        timeout = 20
        jobs = 3
        max-memory = "2G"
        lr-scale-key = "lr_factor"
        lr-scale = "applied"
    """,
    )
    (tmp_path / "nets").mkdir()
    config = load_config(path)
    settings = build_settings(config)
    # Every pyproject value over its default; a config target that exists is taken from the config's folder.
    assert settings.select == ("MU1", "MU3") and settings.widths == (64, 128) and settings.format == "json"
    assert (settings.timeout, settings.jobs, settings.max_memory) == (20.0, 3, 2 << 30)
    assert settings.lr_scale_keys == ("lr_factor",) and settings.lr_scale == "applied" and settings.config_path == path
    assert settings.paths == (str(tmp_path.resolve() / "nets/"), "elsewhere.py:GPT")
    # Arguments over the pyproject, one by one; what is not given (None) keeps the pyproject's value.
    over = build_settings(config, paths=["model.py"], select=["mu2"], timeout=5, jobs=None, format=None)
    assert over.select == ("MU2",) and over.timeout == 5.0 and over.jobs == 3 and over.format == "json"
    assert over.paths == ("model.py",) and over.widths == (64, 128)
    assert config.select == ["MU1", "MU3"]  # the loaded layer is left as it was


def test_settings_are_frozen_and_limits_come_from_them():
    settings = build_settings(None, timeout=7, jobs=2, max_memory="1G")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.timeout = 1.0
    limits = settings.limits()
    assert (limits.timeout, limits.jobs, limits.max_memory) == (7.0, 2, 1 << 30)
    one = settings.with_paths(["a.py"])
    assert one.paths == ("a.py",) and one.timeout == 7.0 and settings.paths == ()


def test_a_profile_file_is_found_from_where_it_was_named(tmp_path, monkeypatch):
    write(tmp_path / "proj" / "profiles" / "mine.toml", MUP_TOML)
    config = load_config(write(tmp_path / "proj" / "pyproject.toml", '[tool.mulint]\nprofile = "profiles/mine.toml"\n'))
    monkeypatch.chdir(tmp_path)
    # From the config: relative to the config's folder, whatever the working directory.
    assert build_settings(config).profile == str((tmp_path / "proj" / "profiles" / "mine.toml").resolve())
    # From the command line: relative to the working directory, and it wins over the config's.
    write(tmp_path / "cli.toml", MUP_TOML)
    assert build_settings(config, profile="cli.toml").profile == str((tmp_path / "cli.toml").resolve())
    assert build_settings(config, profile="u-mup").profile == "u-mup"


def test_fixing_takes_no_widths(tmp_path):
    config = load_config(write(tmp_path / "pyproject.toml", "[tool.mulint]\nwidths = [64, 128]\n"))
    assert build_settings(config, fixing=True).widths is None
    assert build_settings(config).widths == (64, 128)
    with pytest.raises(MulintError, match="drop --widths"):
        build_settings(config, fixing=True, widths=[64, 128])


def test_settings_for_finds_the_config_upwards_from_the_first_path(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.mulint]\nignore = ['MU104']\n")
    model = write(tmp_path / "pkg" / "m.py", "x = 1\n")
    assert settings_for([f"{model}:Net"]).ignore == ("MU104",)
    assert settings_for([f"{model}:Net"], ignore=["MU2"]).ignore == ("MU2",)


def test_a_selection_is_judged_by_the_rules_the_run_can_apply():
    assert build_settings(None, select=["MU9"], coord=True).select == ("MU9",)
    assert build_settings(None, select=["MU3"], no_exec=True).select == ("MU3",)  # MU305 is static
    assert build_settings(None, ignore=["MU9"]).ignore == ("MU9",)
    with pytest.raises(MulintError, match="coordinate check"):
        build_settings(None, select=["MU901"], coord=False)
    with pytest.raises(MulintError, match="coord=True"):
        build_settings(None, source="api", select=["MU902"])


def test_an_unknown_setting_is_a_programming_error():
    with pytest.raises(TypeError, match="colour"):
        build_settings(None, colour=True)


# --- flags that would switch the analysis off ----------------------------------------------------


@pytest.mark.parametrize(
    "args, named",
    [
        (["--select", ","], "--select"),
        (["--select", " "], "--select"),
        (["--select", ", ,"], "--select"),
        (["--ignore", "ALL"], "--ignore"),
        (["--select", "MU1", "--ignore", "MU1"], "--ignore"),  # a tie is an ignore, as in ruff
        (["--select", "MU9O1"], "unknown rule code MU9O1"),
        (["--select", "MU9"], "MU901, MU902, MU951, MU952, MU953, MU954 run only with the coordinate check"),
        (["--select", "MU1", "--no-exec"], "--no-exec runs the static rules only"),
        (["--select", "MU9", "--coord", "--no-exec"], "--no-exec runs the static rules only"),
        (["--timeout", "nan"], "--timeout"),
        (["--timeout", "inf"], "--timeout"),
        (["--timeout", "-1"], "--timeout"),
        (["--timeout", "0"], "--timeout"),
        (["--max-memory", "99999999999T"], "--max-memory"),
        (["--max-memory", "1M"], "--max-memory"),
        (["--max-memory", "300M"], "below 512M"),  # torch alone needs more: the model would be blamed
        (["--max-memory", "lots"], "--max-memory"),
        (["--jobs", "0"], "--jobs"),
        (["--width-arg", " "], "--width-arg"),
        (["--profile", "mu-p"], "--profile"),
        (["--profile", "missing.toml"], "--profile"),
    ],
)
def test_bad_flags_are_usage_errors(mulint, tmp_path, args, named):
    code, out, err = mulint("check", static_file(tmp_path), "--no-cache", *args)
    assert code == 2, out + err
    assert named in err and "All checks passed" not in out + err
    assert "internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    "body, named",
    [
        ("select = []", "[tool.mulint] select"),
        ("ignore = ['ALL']", "[tool.mulint] ignore"),
        ("timeout = nan", "[tool.mulint] timeout"),
        ("timeout = inf", "[tool.mulint] timeout"),
        ("timeout = -3", "[tool.mulint] timeout"),
        ("max-memory = '99999999999T'", "[tool.mulint] max-memory"),
        ("jobs = 0", "[tool.mulint] jobs"),
        ("jobs = 1.5", "[tool.mulint] jobs"),
        ("profile = 'mu-p'", "[tool.mulint] profile"),
        ("profile = 3", "[tool.mulint] profile"),
        ("profile = ''", "[tool.mulint] profile"),
        ("width-arg = ' '", "[tool.mulint] width-arg"),
        ("optimizer = ''", "[tool.mulint] optimizer"),
        ("per-file-ignores = {'*' = ['ALL']}", "[tool.mulint] per-file-ignores (in"),
        ("per-file-ignores = {'**/*.py' = ['MU']}", "ignores every rule in every file"),
        ("select = ['MU1']\nper-file-ignores = {'*' = ['MU1']}", "ignores every rule in every file"),
    ],
)
def test_bad_config_values_are_usage_errors(mulint, tmp_path, body, named):
    write(tmp_path / "pyproject.toml", f"[tool.mulint]\n{body}\n")
    code, out, err = mulint("check", static_file(tmp_path), "--no-cache")
    assert code == 2, out + err
    assert named in err and "All checks passed" not in out


@pytest.mark.parametrize(
    "globs",
    [{"tests/*": ["ALL"]}, {"*": ["MU1"]}, {"!models/*": ["ALL"]}, {"**/train_*.py": ["ALL"], "tests/**": ["MU3"]}],
)
def test_per_file_ignores_that_leave_files_to_check_are_accepted(globs):
    assert build_settings(None, per_file_ignores=globs).per_file_ignores == {
        glob: tuple(codes) for glob, codes in globs.items()
    }


def test_a_flag_can_repair_a_config_that_selects_nothing(mulint, tmp_path):
    """The check is on the merged selection: --select over `select = []` is a working run."""
    write(tmp_path / "pyproject.toml", "[tool.mulint]\nselect = []\n")
    code, out, err = mulint("check", static_file(tmp_path), "--select", "MU3")
    assert code == 0 and "All checks passed!" in out, err


@pytest.mark.parametrize(
    "args, named",
    [
        (["--steps", "0"], "--steps"),
        (["--seeds", "0"], "--seeds"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "0"], "--lr"),
        (["--timeout", "inf"], "--timeout"),
    ],
)
def test_coord_flags_are_checked_before_any_training(mulint, args, named):
    code, out, err = mulint("coord", f"{EXAMPLES / 'mlp_mup.py'}:MLP", *args)
    assert code == 2 and named in err and "PASS" not in out


@pytest.mark.parametrize("args", [["--timeout", "nan"], ["--max-memory", "99999999999T"], ["--widths", "64,64"]])
def test_inspect_flags_are_checked_as_checks_are(mulint, args):
    code, out, err = mulint("inspect", f"{EXAMPLES / 'mlp_mup.py'}:MLP", *args)
    assert code == 2 and args[0] in err and "internal error" not in err


# --- profiles ------------------------------------------------------------------------------------


def _profile_with(tmp_path: Path, old: str, new: str) -> Path:
    assert old in MUP_TOML
    return write(tmp_path / "custom.toml", MUP_TOML.replace(old, new, 1))


@pytest.mark.parametrize(
    "old, new, words",
    [
        ("[update.adam]", "[update.adma]", "unknown optimizer family 'adma' (did you mean adam?)"),
        ('exact = ["adam", "sgd"]', 'exact = ["adam", "sgdm"]', "unknown optimizer family 'sgdm'"),
        ('exact = ["adam", "sgd"]', 'exact = ["adam", "sgd"]\nexcat = []', "unknown key 'excat'"),
        ("[spectral]", "[spectrl]", "unknown key 'spectrl'"),
        ("[init]\ninput = 0.0", "[init]\ninptu = 0.0", "unknown role 'inptu' (did you mean input?)"),
        ("[init]\ninput = 0.0\nvector = 0.0\nhidden = -0.5\noutput = -1.0", "[init]", "[init] gives no exponent"),
        ("[init]\ninput = 0.0\nvector = 0.0\nhidden = -0.5\noutput = -1.0", "init = 3", "[init] must be a table"),
        ("[init]\ninput = 0.0", "[init]\ninput = 'zero'", "[init] input: must be a number"),
        ("[init]\ninput = 0.0", "[init]\ninput = true", "[init] input: must be a number"),
        ("[init]\ninput = 0.0", "[init]\ninput = nan", "[init] input: must be a number"),
        ("[init]\ninput = 0.0", "[init]\ninput = [0.0, 0.5, 1.0]", "[init] input: must be a number"),
        ("[init]\ninput = 0.0", "[init]\ninput = [0.5, 0.0]", "is empty"),
        ("[update.sgd]\ninput = 1.0", "[update.sgd]\nimput = 1.0", "[update.sgd]: unknown role 'imput'"),
        (
            "[update.sgd]\ninput = 1.0\nvector = 1.0\nhidden = 0.0\noutput = -1.0\n",
            "",
            "'exact' lists sgd but there is no [update.sgd] table",
        ),
        ("[coord]\nblow_up = 0.3", "[coord]\nblow_up = '0.3'", "[coord] blow_up: must be a number"),
        ("[coord]\nblow_up = 0.3", "[coord]\nblow_upp = 0.3", "[coord]: unknown key(s) blow_upp"),
        ('name = "mup"', "name = 7", "'name' must be a string"),
        ('name = "mup"', "", "'name' is missing"),
    ],
)
def test_a_malformed_profile_file_is_a_usage_error_naming_the_key(mulint, tmp_path, old, new, words):
    profile = _profile_with(tmp_path, old, new)
    code, out, err = mulint("check", static_file(tmp_path), "--profile", str(profile))
    assert code == 2, out + err
    assert "--profile" in err and "malformed" in err and words in err


def test_the_shipped_profiles_and_a_copy_of_mup_are_accepted(tmp_path):
    from mulint.profiles import load_profile, profile_names

    for name in profile_names():
        assert load_profile(name).name == name
    copy = load_profile(str(write(tmp_path / "copy.toml", MUP_TOML)))
    assert copy.init == load_profile("mup").init and copy.update == load_profile("mup").update


# --- the API goes through the same merge ------------------------------------------------------------


def _never_built(width):
    raise AssertionError("a bad setting must be refused before the model is built")


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"select": []}, "select="),
        ({"ignore": ["ALL"]}, "ignore="),
        ({"select": "MU1"}, "select="),  # a bare string is not a list of codes
        ({"select": ["MU2O1"]}, "unknown rule code MU2O1"),
        ({"widths": [64]}, "widths="),
        ({"profile": "mu-p"}, "profile="),
        ({"width_arg": ""}, "width_arg="),
    ],
)
def test_api_check_refuses_bad_arguments_before_building(kwargs, named):
    with pytest.raises(MulintError) as info:
        mulint.check(_never_built, **kwargs)
    assert named in str(info.value) and info.value.step == "config"


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"steps": 0}, "steps="),
        ({"steps": 51}, "steps="),
        ({"seeds": 0}, "seeds="),
        ({"lr": math.nan}, "lr="),
        ({"lr": -1e-3}, "lr="),
        ({"steps": True}, "steps="),
    ],
)
def test_api_coord_refuses_a_run_that_trains_nothing(kwargs, named):
    with pytest.raises(MulintError) as info:
        mulint.coord(_never_built, **kwargs)
    assert named in str(info.value) and info.value.step == "config"


# --- a width knob that names nothing ----------------------------------------------------------------


@pytest.mark.slow  # a worker imports torch and looks for the knob: ~10 s on a loaded machine
def test_a_width_arg_naming_nothing_is_an_error_not_a_note(mulint):
    """A discovered model with a --width-arg it does not have: the setting is wrong, exit 2 (without
    --require-models too), never "not analysed" and exit 0."""
    code, out, err = mulint("check", str(MODELS / "sqrt_embedding_lr.py"), "--width-arg", "n_embd", "--no-cache")
    assert code == 2, out + err
    assert "--width-arg n_embd names no argument" in err and "width" in err
    assert "All checks passed" not in out


def test_settings_is_the_options_object_the_checker_runs_by():
    """One shape from the front-ends to the checker: no second options class to drift."""
    import mulint.engine.checker as checker

    assert not hasattr(checker, "CheckOptions") and checker.Settings is Settings
