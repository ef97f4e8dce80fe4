"""Reporters, suppression and configuration: pure functions over findings (no torch)."""

import json
import textwrap

import jsonschema
import pytest

from mulint.errors import MulintError
from mulint.findings import Finding, Fix
from mulint.report import github, json_report, sarif, text
from mulint.rules.pages import load_pages, pages_dir, parse_page
from mulint.suppress import filter_findings, noqa_codes, per_file_ignored, selected


def finding(code="MU201", line=3, severity="error", path="pkg/model.py", message="logits: 50% too large, see x,y"):
    return Finding(code=code, name="sqrt-attention-scale", severity=severity, message=message, path=path,
                   line=line, column=5, target="pkg/model.py:GPT", parameter="h.*.attn")


def test_text_is_ruff_shaped():
    out = text.render([finding(line=9), finding(code="MU101", line=2)])
    lines = out.splitlines()
    assert lines[0].startswith("pkg/model.py:2:5: MU101 logits")
    assert lines[1].startswith("pkg/model.py:9:5: MU201 logits")
    assert lines[-1] == "Found 2 problems."
    fixable = finding()
    fixable.fix = Fix("safe", "scale by 1/head_dim")
    assert "MU201 [*]" in text.render([fixable]) and "[*] 1 fixable with the `--fix` option." in text.render([fixable])
    assert text.render([]) == "All checks passed!"


def test_statistics_counts_per_code():
    out = text.render([finding(), finding(line=4), finding(code="MU101")], statistics=True)
    assert out.splitlines()[0].split("\t")[:2] == ["2", "MU201"]


def test_json_schema():
    data = json.loads(json_report.render([finding()], [{"target": "x"}], []))
    assert list(data) == ["findings", "targets", "errors"]
    assert set(data["findings"][0]) == {"code", "name", "severity", "message", "path", "line", "column",
                                        "parameter", "target", "fix"}


def test_github_annotations_escape():
    out = github.render([finding(message="100% bad\nreally"), finding(severity="warning", path="a,b:c.py")])
    second, first = out.splitlines()  # sorted by path
    assert first.startswith("::error file=pkg/model.py,line=3,col=5,title=MU201 (sqrt-attention-scale)::")
    assert first.endswith("MU201 100%25 bad%0Areally")
    assert second.startswith("::warning file=a%2Cb%3Ac.py,")


SARIF_SHAPE = {
    "type": "object",
    "required": ["version", "runs", "$schema"],
    "properties": {
        "version": {"const": "2.1.0"},
        "runs": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["tool", "results"],
            "properties": {
                "tool": {"type": "object", "required": ["driver"], "properties": {"driver": {
                    "type": "object", "required": ["name", "rules"],
                    "properties": {"rules": {"type": "array", "items": {
                        "type": "object", "required": ["id", "shortDescription", "fullDescription", "help"]}}}}}},
                "results": {"type": "array", "items": {
                    "type": "object", "required": ["ruleId", "message", "locations", "level"],
                    "properties": {"locations": {"type": "array", "items": {"type": "object", "properties": {
                        "physicalLocation": {"type": "object", "required": ["artifactLocation", "region"],
                                             "properties": {"region": {"type": "object", "properties": {
                                                 "startLine": {"minimum": 1}, "startColumn": {"minimum": 1}}}}}}}}}}}},
        }},
    },
}


def test_sarif_carries_rules_from_their_pages():
    pages = list(load_pages(pages_dir()).values())
    log = json.loads(sarif.render([finding(), finding(code="MU305", severity="warning")], pages, "0.1.0"))
    jsonschema.validate(log, SARIF_SHAPE)
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert "MU201" in ids and all(r["help"]["markdown"].startswith(f"# {r['id']}") for r in rules)
    result = log["runs"][0]["results"][0]
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 3, "startColumn": 5}


def test_rule_page_parser(tmp_path):
    page = tmp_path / "MU999.md"
    page.write_text("# MU999: demo-rule\n\nSeverity: warning · Fix: none\n\n## What it does\nChecks x. More.\n\n"
                    "## Example\n```python\nbad = 1\n```\n\n## Use instead\n```python\ngood = 1\n```\n")
    meta = parse_page(page)
    assert (meta.code, meta.name, meta.severity, meta.summary) == ("MU999", "demo-rule", "warning", "Checks x.")
    assert (meta.example_bad, meta.example_good) == ("bad = 1\n", "good = 1\n")
    page.write_text("no title\n")
    with pytest.raises(ValueError, match="MU999.md"):
        parse_page(page)


@pytest.mark.parametrize("line, codes", [
    ("x = 1", None), ("x = 1  # noqa", set()), ("x = 1  # noqa: MU201", {"MU201"}),
    ("x = 1  # NOQA:MU201, MU1", {"MU201", "MU1"}), ("x = 1  # noqa: MU201 MU302", {"MU201", "MU302"}),
])
def test_noqa_comments(line, codes):
    assert noqa_codes(line) == codes


def test_select_and_ignore_prefixes():
    assert selected("MU301", None, None)
    assert not selected("MU301", ["MU2"], None)
    assert selected("MU301", ["MU3"], ["MU30"]) is False
    assert selected("MU301", ["MU301"], ["MU3"])  # the more specific wins
    assert not selected("MU301", ["ALL"], ["MU301"])


def test_filter_findings_applies_noqa_and_per_file_ignores(tmp_path):
    lines = {"a.py": ["", "", "x  # noqa: MU2"], "tests/b.py": ["", "", "x"]}
    findings = [finding(path="a.py"), finding(path="tests/b.py"), finding(code="MU101", path="a.py")]
    kept = filter_findings(findings, select=None, ignore=None, per_file_ignores={"tests/*": ["MU201"]},
                           root=tmp_path, read_lines=lambda p: lines[p])
    assert [(f.path, f.code) for f in kept] == [("a.py", "MU101")]
    assert per_file_ignored("MU201", str(tmp_path / "tests" / "b.py"), {"tests/*": ["MU2"]}, tmp_path)
    assert not per_file_ignored("MU101", str(tmp_path / "tests" / "b.py"), {"tests/*": ["MU2"]}, tmp_path)


def write_pyproject(directory, body):
    path = directory / "pyproject.toml"
    path.write_text(textwrap.dedent(body))
    return path


def test_config_found_upwards_and_read(tmp_path):
    from mulint.config import find_config, load_config

    write_pyproject(tmp_path, """
        [tool.mulint]
        select = ["mu1", "MU2"]
        widths = [128, 64]
        width-arg = "d_model"
        per-file-ignores = {"tests/*" = ["MU201"]}
    """)
    write_pyproject(tmp_path / "sub", "[project]\nname = 'x'\n") if (tmp_path / "sub").mkdir() is None else None
    found = find_config(tmp_path / "sub")
    assert found == tmp_path / "pyproject.toml"  # the inner pyproject has no [tool.mulint]
    config = load_config(found)
    assert config.select == ["MU1", "MU2"] and config.widths == [64, 128] and config.width_arg == "d_model"
    assert config.per_file_ignores == {"tests/*": ["MU201"]}


@pytest.mark.parametrize("body, words", [
    ("[tool.mulint]\nselekt = ['MU1']\n", "unknown key"),
    ("[tool.mulint]\nwidths = [64]\n", "two different"),
    ("[tool.mulint]\nselect = 'MU1'\n", "must be a list"),
    ("[tool.mulint\n", "invalid TOML"),
])
def test_bad_config_is_a_clear_error(tmp_path, body, words):
    from mulint.config import load_config

    with pytest.raises(MulintError, match=words):
        load_config(write_pyproject(tmp_path, body))


def test_config_drives_check(tmp_path, mulint):
    from conftest import EXAMPLES

    (tmp_path / "model.py").write_text((EXAMPLES / "mlp_sp.py").read_text())
    write_pyproject(tmp_path, '[tool.mulint]\ntargets = ["model.py"]\nignore = ["MU3"]\n')
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code, out, err = mulint("check", "--format", "json")
    finally:
        os.chdir(cwd)
    assert code == 1, err
    assert {f["code"] for f in json.loads(out)["findings"]} == {"MU102"}
    write_pyproject(tmp_path, "[tool.mulint]\nwidths = 3\n")
    code, _, err = mulint("check", str(tmp_path / "model.py"))
    assert code == 2 and "widths" in err
