"""The files a model's code depends on, recorded while it is imported and built: local modules in any
folder and the files it reads, never Python's, an installed library's, mulint's or the system's."""

import json
import os
import sys
import time
from pathlib import Path

import click

import mulint
from mulint.engine.deps import DependencyRecorder


def test_recording_excludes_libraries_stdlib_mulint_and_system_files(tmp_path):
    with DependencyRecorder() as recorder:
        Path(json.__file__).read_text()  # a library's file opened for reading
        Path(click.__file__).read_text()
        Path("/proc/self/status").read_text()
        (tmp_path / "data.json").write_text("{}")  # written only
    files = recorder.files()
    for library_file in (json.__file__, click.__file__, mulint.__file__, os.__file__):
        assert Path(library_file).resolve() not in files  # also in sys.modules
    assert not [f for f in files if f.parts[1] in ("proc", "sys", "dev") or "__pycache__" in f.parts]
    assert tmp_path.resolve() / "data.json" not in files
    assert Path(__file__).resolve() in files  # a local module in sys.modules is a dependency


def test_files_read_while_recording_are_dependencies_files_read_outside_are_not(tmp_path):
    for name in ("before.yaml", "during.yaml", "after.yaml", "nested.yaml"):
        (tmp_path / name).write_text("width: 64\n")
    (tmp_path / "before.yaml").read_text()
    with DependencyRecorder() as outer:
        (tmp_path / "during.yaml").read_bytes()
        with DependencyRecorder() as inner:
            os.close(os.open(tmp_path / "nested.yaml", os.O_RDONLY))
        assert inner.started_ns == outer.started_ns <= time.time_ns()
    (tmp_path / "after.yaml").read_text()
    tmp = tmp_path.resolve()
    for recorder in (outer, inner):
        assert {tmp / "during.yaml", tmp / "nested.yaml"} <= set(recorder.files())
        assert not {tmp / "before.yaml", tmp / "after.yaml"} & set(recorder.files())


def test_a_later_recording_keeps_what_a_module_read_when_an_earlier_one_imported_it(tmp_path, monkeypatch):
    name = f"vocab_reader_{tmp_path.name}"
    (tmp_path / "vocab.json").write_text("[]")
    (tmp_path / f"{name}.py").write_text(
        "import pathlib\nVOCAB = (pathlib.Path(__file__).parent / 'vocab.json').read_text()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with DependencyRecorder() as first:
            __import__(name)
        with DependencyRecorder() as second:
            __import__(name)  # already imported: vocab.json is not read again
    finally:
        sys.modules.pop(name, None)
    tmp = tmp_path.resolve()
    for recorder in (first, second):
        assert {tmp / "vocab.json", tmp / f"{name}.py"} <= set(recorder.files())
