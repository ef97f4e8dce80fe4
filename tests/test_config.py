"""`[tool.mulint]`: discovery upwards, every key, clear errors for bad files, CLI values over config values."""

import textwrap
from pathlib import Path

import pytest

from mulint.engine.config import Config, find_config, load_config
from mulint.errors import MulintError


def write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_found_upwards_from_a_file_skipping_pyprojects_without_the_table(tmp_path):
    top = write(tmp_path / "pyproject.toml", "[tool.mulint]\nselect = ['MU2']\n")
    write(tmp_path / "pkg" / "pyproject.toml", "[project]\nname = 'pkg'\n\n[tool.ruff]\nline-length = 100\n")
    model = write(tmp_path / "pkg" / "models" / "gpt.py", "x = 1\n")
    assert find_config(model) == top
    assert find_config(model.parent) == top
    assert find_config(model.parent / "not_yet_written.py") == top


def test_the_nearest_table_wins(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.mulint]\n")
    inner = write(tmp_path / "a" / "pyproject.toml", "[tool.mulint]\nignore = ['MU3']\n")
    assert find_config(tmp_path / "a" / "b") == inner


def test_nothing_found(tmp_path):
    write(tmp_path / "pyproject.toml", "[project]\nname = 'x'\n")
    assert find_config(tmp_path / "deep" / "er") is None


def test_every_key_is_read(tmp_path):
    path = write(
        tmp_path / "pyproject.toml",
        """
        [tool.mulint]
        targets = ["model.py:GPT", "nets/"]
        select = ["mu1", "MU201"]
        ignore = ["MU304"]
        widths = [256, 64, 128, 64]
        width-arg = "n_embd"
        optimizer = "train.py:configure"
        exclude = ["legacy/*"]
        format = "sarif"

        [tool.mulint.per-file-ignores]
        "tests/*" = ["MU3"]
        "**/train_*.py" = ["all"]
    """,
    )
    config = load_config(path)
    assert config == Config(
        root=tmp_path.resolve(),
        targets=["model.py:GPT", "nets/"],
        select=["MU1", "MU201"],
        ignore=["MU304"],
        per_file_ignores={"tests/*": ["MU3"], "**/train_*.py": ["ALL"]},
        widths=[64, 128, 256],
        width_arg="n_embd",
        optimizer="train.py:configure",
        exclude=["legacy/*"],
        format="sarif",
        path=path,
    )


def test_defaults_and_underscore_spellings(tmp_path):
    config = load_config(write(tmp_path / "pyproject.toml", "[tool.mulint]\n"))
    assert (
        config.targets,
        config.select,
        config.ignore,
        config.per_file_ignores,
        config.widths,
        config.width_arg,
        config.optimizer,
        config.exclude,
        config.format,
    ) == ([], None, None, {}, None, None, None, [], None)
    config = load_config(
        write(
            tmp_path / "pyproject.toml",
            """
        [tool.mulint]
        per_file_ignores = {"tests/*" = ["MU2"]}
        width_arg = "d_model"
    """,
        )
    )
    assert config.per_file_ignores == {"tests/*": ["MU2"]} and config.width_arg == "d_model"


@pytest.mark.parametrize(
    "body, key, words",
    [
        ("selekt = ['MU1']", "selekt", "unknown key (did you mean select?)"),
        ("colour = true", "colour", "unknown key"),
        ("select = 'MU1'", "select", "must be a list"),
        ("select = ['MU1', 2]", "select", "must be a list of strings"),
        ("ignore = ['E501']", "ignore", "unknown rule code E501"),
        ("widths = [64]", "widths", "two different"),
        ("widths = [64, -128]", "widths", "positive"),
        ("widths = [64.0, 128.0]", "widths", "list of integers"),
        ("widths = 3", "widths", "list of integers"),
        ("width-arg = 3", "width-arg", "must be a string"),
        ("format = 'xml'", "format", "text, json, sarif, github"),
        ("per-file-ignores = ['tests/*']", "per-file-ignores", "must be a table"),
        ("per-file-ignores = {'tests/*' = 'MU2'}", "per-file-ignores", '"tests/*": must be a list'),
        ("per-file-ignores = {}\nper_file_ignores = {}", "per_file_ignores", "given twice"),
    ],
)
def test_bad_values_name_the_file_and_the_key(tmp_path, body, key, words):
    path = write(tmp_path / "pyproject.toml", f"[tool.mulint]\n{body}\n")
    with pytest.raises(MulintError) as info:
        load_config(path)
    error = info.value
    assert error.step == "config" and error.hint
    assert str(path) in error.message and f"[tool.mulint] {key}:" in error.message and words in error.message


def test_toml_syntax_error_names_the_file_and_the_line(tmp_path):
    path = write(tmp_path / "pyproject.toml", '[tool.mulint]\nselect = ["MU1"\nignore = []\n')
    with pytest.raises(MulintError) as info:
        load_config(path)
    assert info.value.step == "config" and str(path) in info.value.message
    assert "invalid TOML" in info.value.message and "line 3" in info.value.message
    # Discovery reads the files it passes, so it reports the same error.
    with pytest.raises(MulintError, match="invalid TOML"):
        find_config(tmp_path)


def test_tool_mulint_must_be_a_table(tmp_path):
    with pytest.raises(MulintError, match="must be a table"):
        load_config(write(tmp_path / "pyproject.toml", "[tool]\nmulint = 3\n"))


@pytest.mark.slow
def test_lr_scale_key_from_the_config_is_applied(mulint, tmp_path):
    """A training loop that multiplies each group's lr by `group["lr_factor"]`: named in the config,
    the key is judged as applied; unnamed, the same model gets MU301."""
    (tmp_path / "model.py").write_text(
        textwrap.dedent("""
        import torch, torch.nn as nn

        class MLP(nn.Module):
            def __init__(self, width: int = 128):
                super().__init__()
                self.width = width
                self.inp = nn.Linear(16, width)
                self.hid = nn.Linear(width, width)
                nn.init.normal_(self.hid.weight, std=width ** -0.5)
                self.out = nn.Linear(width, 4)
                nn.init.zeros_(self.out.weight)

            def forward(self, x):
                return self.out(self.hid(self.inp(x).relu()).relu())

        def make_optimizer(model):
            matrices = [model.hid.weight, model.out.weight]
            rest = [p for p in model.parameters() if all(p is not m for m in matrices)]
            return torch.optim.Adam([{"params": matrices, "lr": 1e-3, "lr_factor": 128 / model.width},
                                     {"params": rest, "lr": 1e-3}])
    """)
    )
    target = f"{tmp_path / 'model.py'}:MLP"
    code, out, _ = mulint("check", target, "--no-cache")
    assert code == 1 and "MU301" in out
    (tmp_path / "pyproject.toml").write_text('[tool.mulint]\nlr-scale-key = "lr_factor"\n')
    code, out, err = mulint("check", target, "--no-cache")
    assert code == 0, out + err


@pytest.mark.parametrize("how", ["option", "config"])
def test_an_unknown_profile_is_a_usage_error(mulint, tmp_path, how):
    (tmp_path / "sched.py").write_text("x = 1\n")
    args = ["check", str(tmp_path / "sched.py")]
    if how == "option":
        args += ["--profile", "mu-p"]
    else:
        (tmp_path / "pyproject.toml").write_text('[tool.mulint]\nprofile = "mu-p"\n')
    code, out, err = mulint(*args)
    assert code == 2 and "unknown profile 'mu-p'" in err and "u-mup" in err
