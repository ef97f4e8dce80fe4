"""Targets, discovery, import safety, width knobs and the errors users see for bad input."""

import textwrap

import pytest
from conftest import MODELS

from mulint.construct.width import scaled_fields
from mulint.reading.safety import summarize
from mulint.reading.targets import parse_target

MODEL_SRC = """
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return self.fc(x).relu()

class Net(nn.Module):
    def __init__(self, width=16, n_in=3):
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.block = Block(width)
        self.out = nn.Linear(width, 2)

    def forward(self, x):
        return self.out(self.block(self.inp(x)))
"""


def write(tmp_path, name, source):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_parse_target_forms():
    assert parse_target("a/b.py:Net").path.name == "b.py"
    assert parse_target("a/b.py:Net").name == "Net"
    assert parse_target("pkg.mod:make").module == "pkg.mod"
    assert parse_target("model.py").name is None


def test_discovery_skips_submodules(tmp_path):
    summary = summarize(write(tmp_path, "m.py", MODEL_SRC))
    assert summary.import_safe
    assert summary.top_level_models == ["Net"]


def test_discovery_prefers_factories_over_the_classes_they_build(tmp_path):
    src = MODEL_SRC + "\n\ndef make_model(width: int = 16) -> Net:\n    return Net(width)\n"
    assert summarize(write(tmp_path, "m.py", src)).top_level_models == ["make_model"]


@pytest.mark.parametrize(
    "tail, safe",
    [
        ("\nSEED = 3\nNAMES = ['a', 'b']\n", True),
        ("\nif __name__ == '__main__':\n    Net()(None)\n", True),
        ("\ntry:\n    import mup\nexcept ImportError:\n    mup = None\n", True),
        ("\nmodel = Net()\n", False),
        ("\nfor step in range(3):\n    print(step)\n", False),
        ("\nprint('hi')\n", False),
    ],
)
def test_import_safety(tmp_path, tail, safe):
    assert summarize(write(tmp_path, "m.py", MODEL_SRC + tail)).import_safe is safe


@pytest.mark.slow
def test_bare_file_is_discovered_and_analysed(tmp_path, inspect_json):
    path = write(tmp_path, "m.py", MODEL_SRC)
    report = inspect_json(str(path))
    assert report["target"].endswith("m.py:Net")
    assert {p["name"]: p["roles"] for p in report["parameters"]}["block.fc.weight"] == ["hidden"]


def test_unsafe_bare_file_is_not_imported(tmp_path, mulint):
    marker = tmp_path / "ran"
    path = write(tmp_path, "train.py", MODEL_SRC + f"\nopen({str(marker)!r}, 'w').write('x')\n")
    code, _, err = mulint("inspect", str(path))
    assert code == 2 and "not imported" in err and "line 22" in err
    assert not marker.exists()


def test_no_exec_never_imports(tmp_path, mulint):
    path = write(tmp_path, "m.py", MODEL_SRC)
    from mulint.errors import MulintError
    from mulint.reading.targets import resolve

    with pytest.raises(MulintError, match="--no-exec"):
        resolve(parse_target(f"{path}:Net"), allow_exec=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    "target, step, words",
    [
        ("nowhere.py:Net", "target", "no such file"),
        ("{models}/layouts.py:Nope", "target", "'Nope' not found"),
        ("no_such_package_xyz:Net", "import", "ModuleNotFoundError"),
    ],
)
def test_bad_targets_exit_2_with_the_step(mulint, target, step, words):
    code, out, err = mulint("inspect", target.format(models=MODELS))
    assert code == 2 and out == ""
    assert f"[{step}]" in err and words in err and "Traceback" not in err


@pytest.mark.slow
def test_syntax_error(tmp_path, mulint):
    path = write(tmp_path, "broken.py", "def f(:\n    pass\n")
    code, _, err = mulint("inspect", f"{path}:f")
    assert code == 2 and "syntax error" in err and "broken.py:1" in err


@pytest.mark.slow
def test_no_width_knob(tmp_path, mulint):
    path = write(
        tmp_path,
        "m.py",
        MODEL_SRC.replace("width=16", "size=16")
        .replace("Linear(n_in, width)", "Linear(n_in, size)")
        .replace("Block(width)", "Block(size)")
        .replace("Linear(width, 2)", "Linear(size, 2)"),
    )
    code, _, err = mulint("inspect", f"{path}:Net")
    assert code == 2 and "[width]" in err and "--width-arg" in err
    code, out, err = mulint("inspect", f"{path}:Net", "--width-arg", "size")
    assert code == 0, err


@pytest.mark.slow
def test_model_failing_at_second_width(tmp_path, mulint):
    src = MODEL_SRC.replace(
        "super().__init__()\n        self.inp", "super().__init__()\n        assert width <= 16\n        self.inp"
    )
    path = write(tmp_path, "m.py", src)
    code, _, err = mulint("inspect", f"{path}:Net")
    assert code == 2 and "[build]" in err and "width 32" in err and "--widths" in err


@pytest.mark.slow
def test_a_branch_on_tensor_values_is_recorded_instead_of_exported(tmp_path, mulint):
    src = MODEL_SRC.replace(
        "return self.out(self.block(self.inp(x)))",
        "h = self.block(self.inp(x))\n        if h.sum() > 0:\n            h = -h\n        return self.out(h)",
    )
    path = write(tmp_path, "m.py", src)
    code, out, err = mulint("inspect", f"{path}:Net")
    assert code == 0, err
    assert "traced by running the model on small CPU inputs" in out and "torch.export failed" in out


@pytest.mark.slow
def test_user_example_inputs(tmp_path, inspect_json):
    src = MODEL_SRC.replace(
        "def forward(self, x):\n        return self.out",
        "def forward(self, x, scale):\n        return scale * self.out",
    )
    src += "\n\ndef example_inputs(model):\n    import torch\n    return (torch.randn(4, 3), 2.0)\n"
    path = write(tmp_path, "m.py", src)
    report = inspect_json(f"{path}:Net")
    assert {p["name"]: p["roles"] for p in report["parameters"]}["inp.weight"] == ["input"]


def test_scaled_fields_keep_finite_fields_and_scale_multiples():
    fields = {
        "n_embd": 768,
        "n_head": 12,
        "n_layer": 12,
        "vocab_size": 50257,
        "n_positions": 1024,
        "n_inner": 3072,
        "base_n_embd": 768,
        "max_position_embeddings": 3072,
        "d_ff": 2048,
    }
    changed = scaled_fields(fields, "n_embd", 768, 1536)
    assert changed == {"n_embd": 1536, "n_inner": 6144, "d_ff": 4096}


def test_scaled_fields_head_dim_grows_only_when_head_count_is_given():
    llama = {"hidden_size": 4096, "num_attention_heads": 32, "head_dim": 128, "intermediate_size": 11008}
    assert scaled_fields(llama, "hidden_size", 4096, 8192) == {
        "hidden_size": 8192,
        "head_dim": 256,
        "intermediate_size": 22016,
    }
    heads_grow = {"d_model": 128, "head_dim": 16}
    assert scaled_fields(heads_grow, "d_model", 128, 256) == {"d_model": 256}


@pytest.mark.slow
def test_config_dataclass_knob(tmp_path, inspect_json):
    src = MODEL_SRC.replace(
        "class Net(nn.Module):\n    def __init__(self, width=16, n_in=3):",
        "from dataclasses import dataclass\n\n@dataclass\nclass Cfg:\n    n_embd: int = 16\n    n_in: int = 3\n    hidden_mult: int = 4\n\n"
        "class Net(nn.Module):\n    def __init__(self, config: Cfg):\n        width, n_in = config.n_embd, config.n_in",
    )
    path = write(tmp_path, "m.py", src)
    report = inspect_json(f"{path}:Net")
    assert report["width_knob"] == "config.n_embd" and report["widths"] == [16, 32]


def test_small_width_named_ints_are_ratios_not_dimensions():
    """`mlp=4` or `ff_mult=4` beside a width of 256 multiply the width; scaling them with it would make
    the MLP grow like width² and its init look wrong."""
    fields = {"dim": 256, "mlp": 4, "ff_mult": 4, "expansion": 2, "ffn": 1024, "hidden": 8}
    assert scaled_fields(fields, "dim", 256, 512) == {"dim": 512, "ffn": 2048}
    small = {"width": 16, "mlp": 8}  # 8 hidden units beside a width of 16: a dimension
    assert scaled_fields(small, "width", 16, 32) == {"width": 32, "mlp": 16}
