"""No silent pass: a file that defines a model mulint did not analyse is named, with the reason and
the way out, in every output format; `--require-models` makes that an error."""

import json
import textwrap

import pytest

from tests.test_report import validate_sarif

SCRIPT = textwrap.dedent("""
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self, width: int = 32):
            super().__init__()
            self.body = nn.Linear(width, width)

        def forward(self, x):
            return self.body(x)

    for step in range(1000):  # a training script: never imported by a plain check
        pass
""")

COMPONENT = textwrap.dedent("""
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, block_config, dropout):
            super().__init__()
            self.fc = nn.Linear(block_config.size, block_config.size)

        def forward(self, x):
            return self.fc(x)
""")


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


def test_text_names_the_file_the_line_and_the_way_out(mulint, script):
    code, out, err = mulint("check", str(script))
    assert code == 0
    assert f"note: {script}: not analysed: not imported: line 13" in err and "a top-level loop" in err
    assert f"{script}:Net" in err  # the way out: name the model
    assert "All checks passed!" not in out
    assert (
        out.splitlines()[-1]
        == "0 models analysed, 1 file checked statically, 1 file with models not analysed (see notes)."
    )


def test_json_lists_the_unanalysed_file(mulint, script):
    report = json.loads(mulint("check", str(script), "--format", "json")[1])
    [item] = report["unanalysed"]
    assert item["path"] == str(script) and "line 13" in item["reason"] and item["hint"]
    assert report["summary"]["models_analysed"] == 0 and report["summary"]["files_static"] == 1


def test_sarif_carries_a_notification(mulint, script):
    log = json.loads(mulint("check", str(script), "--format", "sarif")[1])
    validate_sarif(log)
    [note] = log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert note["level"] == "warning" and "not analysed" in note["message"]["text"]


def test_github_prints_a_notice_on_the_file(mulint, script):
    out = mulint("check", str(script), "--format", "github")[1]
    assert out.startswith(f"::notice file={script},title=mulint%3A model not analysed::")


def test_require_models_makes_it_an_error(mulint, script):
    code, out, err = mulint("check", str(script), "--require-models")
    assert code == 2 and "--require-models" in err


def test_require_models_from_the_config(mulint, script):
    (script.parent / "pyproject.toml").write_text("[tool.mulint]\nrequire-models = true\n")
    assert mulint("check", str(script))[0] == 2


@pytest.mark.slow
def test_a_component_that_needs_arguments_is_named(mulint, tmp_path):
    path = tmp_path / "blocks.py"
    path.write_text(COMPONENT)
    code, out, err = mulint("check", str(path), "--format", "json")
    assert code == 0, err
    [item] = json.loads(out)["unanalysed"]
    assert item["path"] == str(path) and "Block" in item["reason"]
    assert mulint("check", str(path), "--require-models")[0] == 2


@pytest.mark.slow
def test_a_named_target_that_fails_is_an_error_not_a_note(mulint, tmp_path):
    path = tmp_path / "blocks.py"
    path.write_text(COMPONENT)
    code, out, err = mulint("check", f"{path}:Block", "--format", "json")
    assert code == 2
    report = json.loads(out)
    assert report["unanalysed"] == [] and report["errors"][0]["target"] == f"{path}:Block"
