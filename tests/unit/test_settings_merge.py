"""The settings merge (`mulint.engine.settings.build_settings`), key by key: the default, `[tool.mulint]`
over it, a flag or API argument over that, an argument not given (None) keeping the config's value,
and a bad value named as the user wrote it in each layer."""

import textwrap
from pathlib import Path

import pytest

import mulint
from mulint.engine.config import KEYS, load_config
from mulint.engine.isolation import DEFAULT_TIMEOUT, default_jobs
from mulint.engine.settings import Settings, build_settings
from mulint.errors import MulintError
from mulint.reading.functions import FunctionRef

# TOML key: (TOML value, its setting, argument value, its setting, the default)
MERGE = {
    "select": ('["MU1", "mu3"]', ("MU1", "MU3"), ["mu2"], ("MU2",), None),
    "ignore": ('["MU3"]', ("MU3",), ["MU101", "MU2"], ("MU101", "MU2"), None),
    "per-file-ignores": ('{"tests/*" = ["MU3"]}', {"tests/*": ("MU3",)}, {"a/*": ["mu1"]}, {"a/*": ("MU1",)}, {}),
    "widths": ("[128, 64, 64]", (64, 128), [32, 64], (32, 64), None),
    "width-arg": ('"d_model"', "d_model", " n_embd ", "n_embd", None),
    "optimizer": (
        '"opt.py:make"',
        FunctionRef("opt.py", "", "make"),
        "other.py:build",
        FunctionRef("other.py", "", "build"),
        None,
    ),
    "exclude": ('["vendor/"]', ("vendor/",), ["third_party/"], ("third_party/",), ()),
    "format": ('"json"', "json", "sarif", "sarif", "text"),
    "timeout": ("20", 20.0, 5, 5.0, DEFAULT_TIMEOUT),
    "max-memory": ('"2G"', 2 << 30, "512M", 512 << 20, None),
    "jobs": ("3", 3, 1, 1, default_jobs()),
    "require-models": ("true", True, False, False, False),
    "profile": ('"u-mup"', "u-mup", "spectral", "spectral", "mup"),
    "lr-scale-key": ('"lr_factor"', ("lr_factor",), ["a", "b"], ("a", "b"), ()),
    "lr-scale": ('"applied"', "applied", "ignored", "ignored", "auto"),
    "depth-arg": ('"n_layer"', "n_layer", " num_layers ", "num_layers", None),
    "depth": ("false", False, True, True, True),
    "daemon": ("true", True, False, False, False),
    "preload": ('["transformers"]', ("transformers",), ["mup"], ("mup",), ()),
    "idle-timeout": ("5", 5.0, 1, 1.0, 30.0),
}


def config_with(tmp_path, body: str):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.mulint]\n" + textwrap.dedent(body), encoding="utf-8")
    return load_config(path)


def test_every_key_of_the_table_is_tried():
    assert set(MERGE) | {"targets"} == set(KEYS)


@pytest.mark.parametrize("key", sorted(MERGE))
def test_default_then_config_then_argument(tmp_path, key):
    toml, from_config, given, from_given, default = MERGE[key]
    name = KEYS[key][0]
    assert getattr(build_settings(None), name) == default
    config = config_with(tmp_path, f"{key} = {toml}\n")
    assert getattr(build_settings(config), name) == from_config
    assert getattr(build_settings(config, **{name: None}), name) == from_config  # not given: the config's
    assert getattr(build_settings(config, **{name: given}), name) == from_given
    assert getattr(build_settings(config, source="api", **{name: given}), name) == from_given
    # The other settings keep their defaults: one key changes one setting.
    untouched = {f for f in Settings.__dataclass_fields__ if f not in (name, "root", "config_path", "paths")}
    defaults = build_settings(None)
    assert {f: getattr(build_settings(config), f) for f in untouched} == {f: getattr(defaults, f) for f in untouched}


def test_run_only_switches_have_no_config_key_and_default_off():
    settings = build_settings(None)
    assert (settings.no_exec, settings.coord, settings.cache) == (False, False, True)
    flipped = build_settings(None, coord=True, cache=False)
    assert (flipped.coord, flipped.cache) == (True, False)
    with pytest.raises(MulintError) as caught:
        build_settings(None, coord="yes")
    assert caught.value.message == "--coord: must be True or False"


def test_targets_are_replaced_by_paths_and_taken_from_the_config_folder(tmp_path):
    (tmp_path / "nets").mkdir()
    config = config_with(tmp_path, 'targets = ["nets/", "pkg.module:GPT"]\n')
    assert build_settings(config).paths == (str(tmp_path.resolve() / "nets/"), "pkg.module:GPT")
    assert build_settings(config, paths=["m.py"]).paths == ("m.py",)
    with pytest.raises(TypeError, match="unknown setting: targets"):
        build_settings(config, targets=["x.py"])


@pytest.mark.parametrize(
    ("name", "value", "cli", "api"),
    [
        ("jobs", 0, "--jobs: must be a positive integer", "jobs=: must be a positive integer"),
        ("timeout", float("inf"), "--timeout: must be a positive, finite number", "timeout=: must be"),
        ("max_memory", "100M", "--max-memory: '100M' is below 512M", "max_memory=: '100M' is below 512M"),
        ("lr_scale_keys", 3, "--lr-scale-key: must be a list", "lr_scale_keys=: must be a list"),
        ("widths", [64], "--widths: needs at least two different positive widths", "widths=: needs"),
        ("profile", "nope", "--profile: unknown profile 'nope'", "profile=: unknown profile 'nope'"),
        ("select", ["XX1"], "--select:", "select=:"),
    ],
)
def test_a_bad_argument_is_named_as_written(name, value, cli, api):
    with pytest.raises(MulintError) as caught:
        build_settings(None, **{name: value})
    assert caught.value.message.startswith(cli) and caught.value.step == "config"
    with pytest.raises(MulintError) as caught:
        build_settings(None, source="api", **{name: value})
    assert caught.value.message.startswith(api)


def test_a_bad_config_value_names_the_file_and_key(tmp_path):
    with pytest.raises(MulintError, match=r"pyproject\.toml: \[tool\.mulint\] jobs: must be a positive integer"):
        config_with(tmp_path, "jobs = 0\n")
    with pytest.raises(MulintError, match=r"\[tool\.mulint\] jobz: unknown key \(did you mean jobs\?\)"):
        config_with(tmp_path, "jobz = 2\n")
    with pytest.raises(MulintError, match=r"given twice \(also as per-file-ignores\)"):
        config_with(tmp_path, "per-file-ignores = {}\nper_file_ignores = {}\n")
    config = config_with(tmp_path, 'profile = "nope"\n')
    with pytest.raises(MulintError) as caught:
        build_settings(config)
    assert caught.value.message == f"[tool.mulint] profile (in {tmp_path / 'pyproject.toml'}): unknown profile 'nope'"


def test_fixing_takes_no_widths(tmp_path):
    config = config_with(tmp_path, "widths = [64, 128]\n")
    assert build_settings(config, fixing=True).widths is None
    with pytest.raises(MulintError, match="drop --widths"):
        build_settings(config, fixing=True, widths=[64, 128])


def test_a_profile_file_is_resolved_against_the_config_folder(tmp_path):
    shipped = Path(mulint.__file__).parent / "profile_data" / "mup.toml"
    (tmp_path / "mine.toml").write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    config = config_with(tmp_path, 'profile = "mine.toml"\n')
    assert build_settings(config).profile == str((tmp_path / "mine.toml").resolve())


def test_selections_that_would_check_nothing_are_errors():
    with pytest.raises(
        MulintError, match="MU901, MU902, MU951, MU952, MU953, MU954 run only with the coordinate check"
    ):
        build_settings(None, select=["MU9"])
    assert build_settings(None, select=["MU9"], coord=True).select == ("MU9",)
    with pytest.raises(MulintError, match="runs the static rules only"):
        build_settings(None, select=["MU1"], no_exec=True)
    with pytest.raises(MulintError, match="ignores every rule in every file"):
        build_settings(None, per_file_ignores={"**/*.py": ["ALL"]})


def test_the_settings_are_frozen():
    settings = build_settings(None, select=["MU1"])
    with pytest.raises(AttributeError):
        settings.select = ("MU2",)
    assert isinstance(settings.select, tuple)
