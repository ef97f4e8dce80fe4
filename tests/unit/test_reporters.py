"""The reporters on findings made by the rules from facts (no model run): text as ruff prints it, JSON's
fields and fix, SARIF validated against the official 2.1.0 schema, GitHub annotations escaped."""

import json
import re
from pathlib import Path

import jsonschema
import pytest

from mulint.errors import ErrorRecord
from mulint.findings import Finding
from mulint.report import github, json_report, sarif, text
from mulint.rules import all_rules, check_model_rules
from mulint.rules.pages import load_pages, pages_dir

from .facts_builder import adam, embedding, hidden, model, output, sdpa, vector

SCHEMA = json.loads((Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sp_findings() -> list[Finding]:
    """An SP transformer: MU101 and MU102 (unsafe fixes), MU201 (safe), MU301 twice (unsafe), MU304 (no fix)."""
    facts = model(
        embedding("wte.weight", lr=0.0),
        *(hidden(f"h.{i}.fc.weight", init=0.0, lr=0.0, wd=0.1, wd_exp=0.0, init_line=89) for i in range(12)),
        vector("h.0.ln.weight", lr=0.0),
        output("head.weight", init=-0.5, lr=-1.0, wd=0.1),
        optimizer=adam(),
        attention=[sdpa(count=12)],
    )
    found = check_model_rules(facts)
    assert sorted(f.code for f in found) == ["MU101", "MU102", "MU201", "MU301", "MU304"]
    return found


def code_of(line: str) -> str:
    """`MU201 [*]` of `net.py:42:9: MU201 [*] attention logits ...`."""
    return re.match(r"net\.py:\d+:\d+: (MU\d+(?: \[\*\])?) ", line)[1]


def test_text_lists_findings_as_ruff_does_with_fix_markers_and_the_summary(sp_findings):
    out = text.render(sp_findings).splitlines()
    assert out[0].startswith("net.py:19:9: MU102 readout init ∝ width^-0.50") and out[0].endswith("[head.weight]")
    assert [code_of(line) for line in out[:5]] == ["MU102", "MU201 [*]", "MU301", "MU304", "MU101"]
    assert out[1].startswith("net.py:42:9: MU201 [*] attention logits") and "(12 attention layers)" in out[1]
    assert out[4].startswith("net.py:89:9: MU101 hidden weight init ∝ width^0") and out[4].endswith("[h.*.fc.weight]")
    assert out[-2:] == [
        "Found 5 problems.",
        "[*] 1 fixable with the `--fix` option (3 hidden fixes can be enabled with the `--unsafe-fixes` option).",
    ]
    unsafe = text.render(sp_findings, unsafe_fixes=True).splitlines()
    assert unsafe[-1] == "[*] 4 fixable with the `--fix` option." and code_of(unsafe[0]) == "MU102 [*]"
    plain = text.render(sp_findings, fix_available=False).splitlines()
    assert "[*]" not in "\n".join(plain) and plain[-1] == "Found 5 problems."
    assert text.render(sp_findings[:2], fixed=3).splitlines()[-2] == "Found 5 problems (3 fixed, 2 remaining)."


def test_text_without_findings_and_the_statistics_table(sp_findings):
    assert text.render([]) == "All checks passed!"
    assert text.render([], fixed=2) == "Found 2 problems (2 fixed, 0 remaining)."
    rows = [line.split("\t") for line in text.render(sp_findings, statistics=True).splitlines()]
    assert rows == [
        ["1", "MU101", "[ ] hidden-init-too-large"],
        ["1", "MU102", "[ ] readout-init-too-large"],
        ["1", "MU201", "[*] sqrt-attention-scale"],
        ["1", "MU301", "[ ] adam-lr-scaling"],
        ["1", "MU304", "[ ] adamw-decay-scaling"],
    ]


def test_text_keeps_a_name_with_control_characters_on_its_line():
    evil = Finding(
        "MU101", "hidden-init-too-large", "error", "m", "a\nAll checks passed!.py", 1, 1, parameter="x\x1b[2J"
    )
    (line,) = text.render([evil]).splitlines()[:1]
    assert line == "a\\nAll checks passed!.py:1:1: MU101 m [x\\x1b[2J]"


def test_json_has_every_field_in_order_and_the_fix_as_data(sp_findings):
    targets = [{"target": "net.py:Net", "mode": "model"}, {"target": "train.py", "mode": "static"}]
    data = json.loads(json_report.render(sp_findings, targets, [], unanalysed=[]))
    assert list(data) == ["findings", "targets", "errors", "unanalysed", "summary"]
    assert data["summary"] == {"models_analysed": 1, "files_static": 1, "unanalysed": 0, "errors": 0}
    first = data["findings"][0]
    assert list(first) == list(json_report.FIELDS)
    assert (first["code"], first["path"], first["line"], first["parameter"]) == ("MU102", "net.py", 19, "head.weight")
    attention = next(f for f in data["findings"] if f["code"] == "MU201")
    assert attention["fix"]["applicability"] == "safe"
    assert (
        attention["fix"]["edits"][0]["kind"] == "attention-scale"
        and attention["fix"]["edits"][0]["base_head_dim"] == 32
    )
    assert next(f for f in data["findings"] if f["code"] == "MU304")["fix"] is None


def test_sarif_validates_against_the_schema_and_points_each_result_at_its_rule(sp_findings, tmp_path):
    pages = list(load_pages(pages_dir()).values())
    log = json.loads(sarif.render(sp_findings, pages, "9.9.9", root=tmp_path))
    validator = jsonschema.validators.validator_for(SCHEMA)
    errors = list(validator(SCHEMA, format_checker=validator.FORMAT_CHECKER).iter_errors(log))
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert {r["id"] for r in rules} == {r.code for r in all_rules()}
    for result in run["results"]:
        rule = rules[result["ruleIndex"]]
        assert rule["id"] == result["ruleId"]
        assert rule["shortDescription"]["text"] and rule["help"]["text"]
    mu304 = next(r for r in run["results"] if r["ruleId"] == "MU304")
    assert mu304["level"] == "warning"
    location = mu304["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "net.py", "uriBaseId": "%SRCROOT%"}
    assert location["region"] == {"startLine": 60, "startColumn": 9}
    assert mu304["properties"] == {"parameter": "head.weight", "target": "net.py:Net"}
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"


def test_sarif_of_a_finding_without_a_page_and_of_failed_targets(tmp_path):
    odd = Finding("MU999", "no-page", "warning", "m", str(tmp_path / "with space.py"), 0, 0)
    error = ErrorRecord(target="model.py:Net", step="trace", message="boom", hint="simplify forward")
    log = json.loads(sarif.render([odd], [], "1", root=tmp_path, errors=[error]))
    validator = jsonschema.validators.validator_for(SCHEMA)
    assert not list(validator(SCHEMA).iter_errors(log))
    run = log["runs"][0]
    (result,) = run["results"]
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 1, "startColumn": 1}
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("with%20space.py")
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["message"]["text"] == (
        "model.py:Net: [trace] boom. Hint: simplify forward"
    )


def test_github_annotations_escape_data_and_properties(sp_findings):
    lines = github.render(sp_findings).splitlines()
    assert lines[0].startswith("::error file=net.py,line=19,col=9,title=MU102 (readout-init-too-large)::MU102 readout")
    assert next(line for line in lines if "MU304" in line).startswith("::warning ")
    tricky = Finding("MU101", "n", "error", "50% done\r\nnext", "a:b,c.py", 3, 4)
    (line,) = github.render([tricky]).splitlines()
    assert line == "::error file=a%3Ab%2Cc.py,line=3,col=4,title=MU101 (n)::MU101 50%25 done%0D%0Anext"
    error = ErrorRecord(target="m.py:Net", step="build", message="no")
    assert github.render([], errors=[error]) == "::error title=mulint%3A m.py%3ANet::[build] no"
