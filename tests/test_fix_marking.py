"""`[*]` means `--diff` changes the file: every finding a plain check marks fixable is fixed by its own
fix alone, over the examples and every rule page's violating example; a fix that finds nothing to
change is not marked."""

import json
import re
import shutil

import pytest
from conftest import EXAMPLES, ROOT

from mulint.engine.cache import _parse_finding
from mulint.fix import plan_fixes

PAGES = sorted((ROOT / "rules").glob("MU*.md"))
MODEL_EXAMPLES = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("train_"))


def violating_example(page) -> str:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)[0]


def marked(mulint, path) -> list:
    code, out, err = mulint("check", str(path), "--format", "json")
    assert code in (0, 1), err
    return [row for row in json.loads(out)["findings"] if row["fix"] is not None]


def assert_each_fix_changes_its_file(rows, path):
    """Planned together, as `--diff --unsafe-fixes` plans them (one finding's fix may rest on
    another's: an output LR kept once the logits get their multiplier), every marked finding is fixed
    and the file changes; the edits of each marked finding are among those made."""
    before = path.read_bytes()
    findings = [_parse_finding(row) for row in rows]
    result = plan_fixes(findings, unsafe=True, allowed={path})
    assert result.fixed == findings, result.declined
    if findings:
        assert "+++ " in result.diff()
    for finding in findings:  # alone, a fix either changes the file or names the fix it rests on
        alone = plan_fixes([finding], unsafe=True, allowed={path})
        assert alone.fixed == [finding] and alone.diff() or "too" in alone.declined.get(id(finding), ""), (
            finding.code,
            finding.message,
            alone.declined,
        )
    assert path.read_bytes() == before  # marking and planning write nothing


@pytest.mark.slow
@pytest.mark.parametrize("example", MODEL_EXAMPLES, ids=lambda p: p.stem)
def test_marked_findings_of_the_examples_change_the_file(example, tmp_path, mulint):
    path = tmp_path / example.name
    shutil.copy(example, path)
    assert_each_fix_changes_its_file(marked(mulint, path), path)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_marked_findings_of_the_rule_pages_change_the_file(page, rule_page_folder, mulint):
    path = rule_page_folder(page) / "bad_example.py"  # where tests/test_rule_pages.py checks it too
    path.write_text(violating_example(page))
    assert_each_fix_changes_its_file(marked(mulint, path), path)


def test_a_fix_that_changes_nothing_is_not_marked(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from mulint.edits import AttentionScale
    from mulint.findings import Finding, Fix
    from mulint.fix import apply
    from mulint.fix.run import fix_findings

    path = tmp_path / "model.py"
    path.write_text("import torch\n\nscores = q @ k.transpose(-2, -1) / 8\n")
    touched = []
    # A fixer that finds its node but leaves it as it is (the source already holds what it would write).
    monkeypatch.setitem(apply.FIXERS, AttentionScale, lambda ctx, edit, state: touched.append(edit.line))

    def finding():
        edit = AttentionScale(
            path=str(path),
            line=3,
            base_width=256,
            width_knob="width",
            target=f"{path}:M",
            form="explicit",
            base_head_dim=64,
        )
        return Finding(
            "MU201",
            "sqrt-attention-scale",
            "error",
            "logits / sqrt(head_dim)",
            str(path),
            3,
            10,
            fix=Fix("safe", "scale by sqrt(64) / head_dim", [edit]),
        )

    planned = plan_fixes([finding()], unsafe=True, allowed={path})
    assert planned.fixed == [] and "nothing to change" in next(iter(planned.declined.values()))
    plain = SimpleNamespace(findings=[finding()])
    fix_findings(plain, {path}, apply_fixes=False, show_diff=False, unsafe_fixes=False)
    assert touched == [3, 3] and plain.findings[0].fix is None  # planned, then not marked
