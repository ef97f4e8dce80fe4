"""Only the installed `mup` package's classes are the package's: a project's own `mup.py` is not."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from mulint.construct.provenance import from_mup_package, is_mup_package_file


def test_the_packages_readout_is_the_packages():
    mup = pytest.importorskip("mup")
    assert from_mup_package(mup.MuReadout) and from_mup_package(mup.MuSharedReadout)


def test_a_class_of_a_local_module_named_mup_is_not(tmp_path, monkeypatch):
    (tmp_path / "mup.py").write_text("class MuReadout:\n    pass\n")
    spec = importlib.util.spec_from_file_location("mup", tmp_path / "mup.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mup", module)
    spec.loader.exec_module(module)
    assert module.MuReadout.__module__ == "mup" and not from_mup_package(module.MuReadout)


def test_only_the_packages_files_are_mup_files(tmp_path):
    """A project whose folder is named `mup` (src/mup/model.py) is the user's code: its lines are where
    findings go, and the inits it writes are its own, not the package's rescaling."""
    mup = pytest.importorskip("mup")
    assert is_mup_package_file(mup.__file__) and is_mup_package_file(mup.layer.__file__)
    assert not is_mup_package_file(str(tmp_path / "src" / "mup" / "model.py"))
    assert not is_mup_package_file("/home/me/mup/train.py")


PROJECT_MODEL = """
import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.inp = nn.Linear(16, width)
        self.hidden = nn.Linear(width, width)
        self.out = nn.Linear(width, 10)
        nn.init.zeros_(self.out.weight)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(torch.relu(self.inp(x))))) / self.hidden.in_features

    def configure_optimizers(self, lr=1e-3):
        return torch.optim.AdamW(self.parameters(), lr=lr)


def make_optimizer(model):
    return model.configure_optimizers()
"""


@pytest.mark.slow
def test_a_project_folder_named_mup_keeps_its_lines(tmp_path, mulint):
    """The optimizer one lr for all, built in a project whose folder is `mup/`: the finding is at the
    line constructing it, as anywhere else (it was put at line 1 of the target file, the project's frames
    taken for the package's)."""
    folder = tmp_path / "src" / "mup"
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(PROJECT_MODEL)
    code, out, err = mulint(
        "check", f"{folder}/model.py:MLP", "--optimizer", f"{folder}/model.py:make_optimizer", "--format", "json"
    )
    findings = json.loads(out)["findings"]
    hidden = [f for f in findings if f["code"] == "MU301" and "hidden" in f["message"]]
    line = PROJECT_MODEL.splitlines().index("        return torch.optim.AdamW(self.parameters(), lr=lr)") + 1
    assert code == 1 and hidden, err
    assert {(f["path"].rsplit("/", 1)[-1], f["line"]) for f in hidden} == {("model.py", line)}
