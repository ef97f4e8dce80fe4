"""Only the installed `mup` package's classes are the package's: a project's own `mup.py` is not."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from mulint.construct.provenance import from_mup_package


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
