"""Reporters, suppression and configuration: pure functions over findings (no torch)."""

import json
import textwrap

import jsonschema
import pytest

from mulint.edits import ScheduleLr
from mulint.engine.suppress import filter_findings, noqa_codes, per_file_ignored, selected
from mulint.errors import ErrorRecord, MulintError
from mulint.findings import Finding, Fix
from mulint.report import github, json_report, sarif, text
from mulint.rules.pages import load_pages, pages_dir, parse_page


def finding(code="MU201", line=3, severity="error", path="pkg/model.py", message="logits: 50% too large, see x,y"):
    return Finding(
        code=code,
        name="sqrt-attention-scale",
        severity=severity,
        message=message,
        path=path,
        line=line,
        column=5,
        target="pkg/model.py:GPT",
        parameter="h.*.attn",
    )


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
    assert list(data) == ["findings", "targets", "errors", "unanalysed", "summary"]
    assert data["summary"] == {"models_analysed": 0, "files_static": 0, "unanalysed": 0, "errors": 0}
    assert set(data["findings"][0]) == {
        "code",
        "name",
        "severity",
        "message",
        "path",
        "line",
        "column",
        "parameter",
        "target",
        "fix",
    }


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
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool", "results"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name", "rules"],
                                "properties": {
                                    "rules": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["id", "shortDescription", "fullDescription", "help"],
                                        },
                                    }
                                },
                            }
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["ruleId", "message", "locations", "level"],
                            "properties": {
                                "locations": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "required": ["artifactLocation", "region"],
                                                "properties": {
                                                    "region": {
                                                        "type": "object",
                                                        "properties": {
                                                            "startLine": {"minimum": 1},
                                                            "startColumn": {"minimum": 1},
                                                        },
                                                    }
                                                },
                                            }
                                        },
                                    },
                                }
                            },
                        },
                    },
                },
            },
        },
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
    page.write_text(
        "# MU999: demo-rule\n\nSeverity: warning · Fix: none\n\n## What it does\nChecks x. More.\n\n"
        "## Example\n```python\nbad = 1\n```\n\n## Use instead\n```python\ngood = 1\n```\n"
    )
    meta = parse_page(page)
    assert (meta.code, meta.name, meta.severity, meta.summary) == ("MU999", "demo-rule", "warning", "Checks x.")
    assert (meta.example_bad, meta.example_good) == ("bad = 1\n", "good = 1\n")
    page.write_text("no title\n")
    with pytest.raises(ValueError, match="MU999.md"):
        parse_page(page)


@pytest.mark.parametrize(
    "line, codes",
    [
        ("x = 1", None),
        ("x = 1  # noqa", set()),
        ("x = 1  # noqa: MU201", {"MU201"}),
        ("x = 1  # NOQA:MU201, MU1", {"MU201", "MU1"}),
        ("x = 1  # noqa: MU201 MU302", {"MU201", "MU302"}),
    ],
)
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
    kept = filter_findings(
        findings,
        select=None,
        ignore=None,
        per_file_ignores={"tests/*": ["MU201"]},
        root=tmp_path,
        read_lines=lambda p: lines[p],
    )
    assert [(f.path, f.code) for f in kept] == [("a.py", "MU101")]
    assert per_file_ignored("MU201", str(tmp_path / "tests" / "b.py"), {"tests/*": ["MU2"]}, tmp_path)
    assert not per_file_ignored("MU101", str(tmp_path / "tests" / "b.py"), {"tests/*": ["MU2"]}, tmp_path)


def write_pyproject(directory, body):
    path = directory / "pyproject.toml"
    path.write_text(textwrap.dedent(body))
    return path


def test_config_found_upwards_and_read(tmp_path):
    from mulint.engine.config import find_config, load_config

    write_pyproject(
        tmp_path,
        """
        [tool.mulint]
        select = ["mu1", "MU2"]
        widths = [128, 64]
        width-arg = "d_model"
        per-file-ignores = {"tests/*" = ["MU201"]}
    """,
    )
    write_pyproject(tmp_path / "sub", "[project]\nname = 'x'\n") if (tmp_path / "sub").mkdir() is None else None
    found = find_config(tmp_path / "sub")
    assert found == tmp_path / "pyproject.toml"  # the inner pyproject has no [tool.mulint]
    config = load_config(found)
    assert config.select == ["MU1", "MU2"] and config.widths == [64, 128] and config.width_arg == "d_model"
    assert config.per_file_ignores == {"tests/*": ["MU201"]}


@pytest.mark.parametrize(
    "body, words",
    [
        ("[tool.mulint]\nselekt = ['MU1']\n", "unknown key"),
        ("[tool.mulint]\nwidths = [64]\n", "two different"),
        ("[tool.mulint]\nselect = 'MU1'\n", "must be a list"),
        ("[tool.mulint\n", "invalid TOML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, body, words):
    from mulint.engine.config import load_config

    with pytest.raises(MulintError, match=words):
        load_config(write_pyproject(tmp_path, body))


@pytest.mark.slow
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


# --- exact output of each reporter ---------------------------------------------------------------

SCHEMA_FILE = __import__("pathlib").Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"


def test_text_lines_are_exact_and_sorted_by_path_line_column_code():
    safe = finding(code="MU201", line=3)
    safe.fix = Fix("safe", "scale by 1/head_dim")
    out = text.render(
        [
            safe,
            finding(code="MU102", line=3, message="readout too large"),
            finding(code="MU101", path="a.py", line=7, message="hidden init too large"),
            finding(code="MU101", line=1, message="first"),
        ]
    )
    assert out.splitlines() == [
        "a.py:7:5: MU101 hidden init too large [h.*.attn]",
        "pkg/model.py:1:5: MU101 first [h.*.attn]",
        "pkg/model.py:3:5: MU102 readout too large [h.*.attn]",
        "pkg/model.py:3:5: MU201 [*] logits: 50% too large, see x,y [h.*.attn]",
        "",
        "Found 4 problems.",
        "[*] 1 fixable with the `--fix` option.",
    ]


def test_text_singular_unsafe_fixes_and_no_fix_available():
    plain = finding()
    plain.parameter = None
    assert text.render([plain]).splitlines() == [
        "pkg/model.py:3:5: MU201 logits: 50% too large, see x,y",
        "",
        "Found 1 problem.",
    ]
    unsafe = finding()
    unsafe.fix = Fix("unsafe", "rescale the init")
    assert (
        text.render([unsafe]).splitlines()[-1]
        == "No fixes available (1 hidden fix can be enabled with the `--unsafe-fixes` option)."
    )
    safe = finding(line=4)
    safe.fix = Fix("safe", "x")
    assert text.render([unsafe, safe]).splitlines()[-1] == (
        "[*] 1 fixable with the `--fix` option (1 hidden fix can be enabled with the `--unsafe-fixes` option)."
    )
    out = text.render([safe], fix_available=False)
    assert "[*]" not in out and out.splitlines()[-1] == "Found 1 problem."


def test_statistics_table_is_ruffs():
    fixed = [finding(line=n) for n in range(10, 21)]
    for f in fixed:
        f.fix = Fix("safe", "x")
    other = finding(code="MU101")
    other.name = "hidden-init-too-large"
    assert text.render(fixed + [other], statistics=True).splitlines() == [
        "11\tMU201\t[*] sqrt-attention-scale",
        " 1\tMU101\t[ ] hidden-init-too-large",
    ]
    # No marker column when nothing is fixable; a code counts as fixable only if all its findings are.
    half = finding(line=5)
    half.fix = Fix("safe", "x")
    assert text.render([finding(), half], statistics=True) == "2\tMU201\tsqrt-attention-scale"


def test_json_carries_fix_as_dict_and_passes_targets_and_errors_through():
    fixed = finding()
    fixed.fix = Fix("safe", "scale by 1/head_dim", [ScheduleLr(path="model.py", line=3)])
    error = ErrorRecord(target="t.py:M", step="build", message="boom", hint="h", kind="crashed")
    data = json.loads(json_report.render([finding(line=9), fixed], [{"target": "t.py:M", "mode": "model"}], [error]))
    assert [f["line"] for f in data["findings"]] == [3, 9]
    assert data["findings"][0]["fix"] == {
        "applicability": "safe",
        "message": "scale by 1/head_dim",
        "edits": [{"kind": "schedule-lr", "path": "model.py", "line": 3}],
    }
    assert data["findings"][1]["fix"] is None and data["findings"][1]["parameter"] == "h.*.attn"
    assert data["errors"] == [{"target": "t.py:M", "step": "build", "message": "boom", "hint": "h"}]
    assert data["targets"][0]["mode"] == "model"


def test_github_escapes_cr_and_property_separators():
    f = finding(message="a\r\nb: 5%", path="dir:x/a,b.py")
    f.name = "odd,name:here"
    assert github.render([f]) == (
        "::error file=dir%3Ax/a%2Cb.py,line=3,col=5,title=MU201 (odd%2Cname%3Ahere)::MU201 a%0D%0Ab: 5%25"
    )
    assert github.render([finding(severity="warning")]).startswith("::warning file=pkg/model.py,")
    assert github.render([]) == ""


def test_schema_file_is_the_official_sarif_2_1_0_schema():
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    assert schema["id"].startswith("https://docs.oasis-open.org/sarif/sarif/v2.1.0/")
    jsonschema.validators.validator_for(schema).check_schema(schema)


def validate_sarif(log: dict) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    errors = list(validator_class(schema, format_checker=validator_class.FORMAT_CHECKER).iter_errors(log))
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]


def test_sarif_validates_against_the_official_schema(tmp_path):
    pages = list(load_pages(pages_dir()).values())
    unknown = finding(code="MU999", path=str(tmp_path / "with space.py"))  # no page, absolute path
    warn = finding(code="MU304", severity="warning", path="sub dir/train.py", line=0)
    warn.column = 0
    log = json.loads(sarif.render([finding(), unknown, warn], pages, "1.2.3", root=tmp_path))
    validate_sarif(log)
    run = log["runs"][0]
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json" and log["version"] == "2.1.0"
    assert run["tool"]["driver"]["name"] == "mulint" and run["tool"]["driver"]["version"] == "1.2.3"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(r["id"] for r in rules) and len(rules) == len(pages) + 1
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    by_code = {r["ruleId"]: r for r in run["results"]}
    assert by_code["MU201"]["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "pkg/model.py", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 3, "startColumn": 5},
    }
    assert by_code["MU201"]["message"]["text"] == "logits: 50% too large, see x,y [h.*.attn]"
    location = by_code["MU304"]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "sub%20dir/train.py"
    assert location["region"] == {"startLine": 1, "startColumn": 1}  # SARIF is 1-based
    assert by_code["MU304"]["level"] == "warning" and by_code["MU201"]["level"] == "error"
    assert by_code["MU999"]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": (tmp_path / "with space.py").as_uri()
    }
    mu201 = rules[by_code["MU201"]["ruleIndex"]]
    assert mu201["name"] == "sqrt-attention-scale" and mu201["defaultConfiguration"] == {"level": "error"}
    assert mu201["shortDescription"]["text"].startswith("Finds every attention site")
    assert "\n" not in mu201["fullDescription"]["text"] and mu201["help"]["markdown"].startswith("# MU201")


def test_sarif_without_findings_is_still_valid():
    validate_sarif(json.loads(sarif.render([], [], "0.1.0")))


def test_sarif_schema_check_catches_a_broken_log():
    log = json.loads(sarif.render([finding()], [], "0.1.0"))
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startColumn"] = 0
    log["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(AssertionError, match="startColumn"):
        validate_sarif(log)
