"""A plain check's `[*]` marks are remembered by content: the same findings on unchanged files plan
nothing the second time and mark the same; an edit of a file a fix would change, or a damaged entry,
plans again."""

import json
import shutil

import pytest
from conftest import EXAMPLES

from mulint.engine import fix_marks
from mulint.engine.cache import _parse_finding
from mulint.fix.run import declined_fixes


@pytest.fixture
def sp_findings(tmp_path, mulint):
    path = tmp_path / "mlp_sp.py"
    shutil.copy(EXAMPLES / "mlp_sp.py", path)
    code, out, err = mulint("check", str(path), "--format", "json", "--no-cache")
    assert code == 1, err
    findings = [_parse_finding(row) for row in json.loads(out)["findings"]]
    assert any(f.fix is not None for f in findings)
    return path, findings


def counting(monkeypatch) -> list:
    calls = []

    def plan(findings, allowed):
        calls.append(1)
        return declined_fixes(findings, allowed)

    monkeypatch.setattr(fix_marks, "declined_fixes", plan)
    return calls


def test_the_marks_are_planned_once_for_the_same_files(sp_findings, monkeypatch):
    path, findings = sp_findings
    calls = counting(monkeypatch)
    expected = declined_fixes(findings, {path})
    assert fix_marks.remembered_declines(findings, {path}) == expected and len(calls) == 1
    assert fix_marks.remembered_declines(findings, {path}) == expected and len(calls) == 1  # read back
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    fix_marks.remembered_declines(findings, {path})
    assert len(calls) == 2  # the file a fix would edit changed: planned again
    fix_marks.remembered_declines(findings, set())
    assert len(calls) == 3  # other checked files (a fix outside them is never offered): planned again


def test_a_damaged_entry_is_planned_again(sp_findings, monkeypatch, tmp_path):
    path, findings = sp_findings
    monkeypatch.setenv("MULINT_CACHE_DIR", str(tmp_path / "cache"))
    calls = counting(monkeypatch)
    expected = fix_marks.remembered_declines(findings, {path})
    [entry] = (fix_marks.cache_root() / fix_marks.FOLDER).glob("*.json")
    entry.write_text('{"key": "x", "declined": {"99": 1}}', encoding="utf-8")
    assert fix_marks.remembered_declines(findings, {path}) == expected and len(calls) == 2


@pytest.mark.slow
def test_a_cached_check_marks_as_a_planned_one(tmp_path, mulint):
    path = tmp_path / "nanogpt_sp.py"
    shutil.copy(EXAMPLES / "nanogpt_sp.py", path)
    shutil.copy(EXAMPLES / "train_nanogpt_sp.py", tmp_path / "train_nanogpt_sp.py")
    first = mulint("check", str(path))
    second = mulint("check", str(path))  # the result and the marks from the cache
    planned = mulint("check", str(path), "--no-cache")
    assert first == second == planned and "[*]" in planned[1]
