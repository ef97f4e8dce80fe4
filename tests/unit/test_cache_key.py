"""The result cache's key: an entry is never reused by another torch (transformers, mup) or by mulint's
own code after an edit, even one that keeps the file's size and timestamp. No model runs here: entries
are stored and looked up directly."""

import importlib
import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

import pytest

import mulint
from mulint.edits import InitStd
from mulint.engine import cache
from mulint.findings import Finding, Fix

OPTIONS = {"widths": None, "profile": "mup"}
LABEL = "model.py:GPT"


@pytest.fixture
def stored(tmp_path, monkeypatch):
    """An entry for model.py, stored in a cache folder of its own."""
    monkeypatch.setenv("MULINT_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model.py"
    model.write_text("WIDTH = 64\n", encoding="utf-8")
    past = 1_600_000_000
    os.utime(model, (past, past))  # written before the check began
    finding = Finding("MU101", "hidden-init-too-large", "error", "m", "model.py", 3, 5, LABEL, "h.*.w")
    finding.fix = Fix("unsafe", "scale", [InitStd("model.py", 3, 64, "width", LABEL, power=0.5, exclude=())])
    nothing_else = {"env": {}, "listings": [], "dists": [], "library_files": [], "unobservable": []}
    cache.store_result(LABEL, model, OPTIONS, [finding], {"target": LABEL}, [model.resolve()], observed=nothing_else)
    assert cache.lookup(LABEL, model, OPTIONS) == ([finding], {"target": LABEL})
    return model


def entry_folder(root: Path) -> str:
    (entry,) = root.rglob("*.json")
    return entry.parent.name


def test_the_entry_is_filed_under_mulint_s_code_python_and_the_library_versions(stored, tmp_path):
    folder = entry_folder(tmp_path / "cache")
    own = cache.code_digest(Path(mulint.__file__).resolve().parent)
    python = "py{}.{}.{}".format(*sys.version_info[:3])
    assert folder.startswith(f"mulint-{mulint.__version__}-{own}_{python}_")
    assert f"_torch-{metadata.version('torch')}" in folder


def test_another_torch_version_misses_and_the_same_one_hits_again(stored, monkeypatch):
    real = metadata.version

    def other_torch(name):
        return "2.99.0" if name == "torch" else real(name)

    monkeypatch.setattr(metadata, "version", other_torch)
    importlib.reload(cache)  # a new process: versions are read once per process
    try:
        assert cache.lookup(LABEL, stored, OPTIONS) is None
    finally:
        monkeypatch.setattr(metadata, "version", real)
        importlib.reload(cache)
    assert cache.lookup(LABEL, stored, OPTIONS) is not None


@pytest.fixture
def package_copy(tmp_path) -> Path:
    copy = tmp_path / "copy" / "mulint"
    shutil.copytree(Path(mulint.__file__).resolve().parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_same_size_edit_with_its_timestamp_set_back_changes_the_code_digest(package_copy):
    before = cache.code_digest(package_copy)
    target = package_copy / "exponents.py"
    text = target.read_bytes()
    stamp = target.stat()
    edited = text.replace(b"TOLERANCE = 0.25", b"TOLERANCE = 0.40")
    assert len(edited) == len(text) and edited != text
    target.write_bytes(edited)
    os.utime(target, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert target.stat().st_size == stamp.st_size and target.stat().st_mtime_ns == stamp.st_mtime_ns
    assert cache.code_digest(package_copy) != before
    target.write_bytes(text)
    assert cache.code_digest(package_copy) == before


def test_profiles_and_renames_count_and_compiled_files_do_not(package_copy):
    before = cache.code_digest(package_copy)
    profile = package_copy / "profile_data" / "mup.toml"
    profile.write_text(profile.read_text(encoding="utf-8").replace("blow_up = 0.3", "blow_up = 0.4"), encoding="utf-8")
    assert cache.code_digest(package_copy) != before
    shutil.copy(Path(mulint.__file__).resolve().parent / "profile_data" / "mup.toml", profile)
    assert cache.code_digest(package_copy) == before
    (package_copy / "__pycache__").mkdir(exist_ok=True)
    (package_copy / "__pycache__" / "facts.cpython-311.pyc").write_bytes(b"\0" * 16)
    assert cache.code_digest(package_copy) == before
    (package_copy / "steps.py").rename(package_copy / "stages.py")
    assert cache.code_digest(package_copy) != before
