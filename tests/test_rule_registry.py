"""One place per rule: the rules declare themselves, the registry finds them, the README's table and
the pages' headers follow them; names of many blocks compress. All fast: no torch.export (the typed fix
edits: tests/test_edits.py)."""

import json
import sys

import pytest
from conftest import ROOT

from mulint.edits import InitStd, OptimizerLr, UseTarget
from mulint.facts import BranchFacts, ModelFacts, OptimizerFacts, ParamFacts, ParamUse, SourceLoc
from mulint.paths import layer_pattern
from mulint.rules import all_rules, by_code, check_model_rules, model_rules, source_rules
from mulint.rules.base import RULES, Rule, compress_names
from mulint.rules.pages import load_pages
from mulint.rules.table import END, START, main, page_header, page_title, readme_table


@pytest.fixture
def registry():
    """Rules a test defines leave the registry as they found it."""
    saved = dict(RULES)
    yield RULES
    RULES.clear()
    RULES.update(saved)


# --- the registry --------------------------------------------------------------------------------


def test_every_rule_is_found_and_has_a_page_and_every_page_a_rule():
    codes = [r.code for r in all_rules()]
    assert codes == sorted(codes) and len(codes) == len(set(codes)) >= 20
    assert set(codes) == {p.stem for p in (ROOT / "rules").glob("MU*.md")}
    assert by_code("mu201").name == "sqrt-attention-scale" and by_code("MU999") is None


def test_model_and_source_rules_split_by_what_they_are_judged_on():
    assert [r.code for r in source_rules()] == ["MU303"]
    assert [r.code for r in model_rules()] == [r.code for r in all_rules() if r.code != "MU303"]
    judged = {r.code: r.judged_on for r in all_rules()}
    assert {c for c, j in judged.items() if j == "measured"} == {"MU311", "MU312", "MU313"}
    assert {c for c, j in judged.items() if j == "coord"} == {"MU901", "MU902", "MU951", "MU952", "MU953", "MU954"}
    assert {r.code for r in all_rules() if r.trains_only} == {
        "MU301",
        "MU302",
        "MU304",
        "MU306",
        "MU504",
        "MU505",
        "MU506",
    }


@pytest.mark.parametrize(
    "fields, complaint",
    [
        ({"code": "MU9", "name": "n", "summary": "s"}, "is not MU followed by three digits"),
        ({"code": "MU998", "summary": "s"}, "it has no name"),
        ({"code": "MU998", "name": "n", "summary": "s", "severity": "info"}, "its severity 'info'"),
        ({"code": "MU998", "name": "n", "summary": "s", "judged_on": "branches"}, "its judged_on 'branches'"),
        ({"code": "MU998", "name": "n", "summary": "s", "fix_safety": "maybe"}, "its fix_safety 'maybe'"),
        ({"code": "MU201", "name": "n", "summary": "s"}, "has the code MU201 already"),
    ],
)
def test_a_rule_that_declares_something_wrong_fails_where_it_is_defined(registry, fields, complaint):
    with pytest.raises(TypeError, match=complaint) as raised:
        type("Probe", (Rule,), dict(fields))
    assert "Probe" in str(raised.value) and "MU998" not in registry


def test_a_shared_base_without_a_code_is_no_rule(registry):
    before = set(registry)

    class _Base(Rule):
        judged_on = "measured"

    class Concrete(_Base):
        code, name, summary = "MU998", "concrete", "s"

    assert set(registry) - before == {"MU998"} and registry["MU998"].judged_on == "measured"


def test_a_rule_without_a_fix_cannot_make_one():
    with pytest.raises(TypeError, match="declares no fix"):
        by_code("MU104")().make_fix("m", [])
    assert by_code("MU201")().make_fix("m", []).applicability == "safe"
    assert by_code("MU101")().make_fix("m", []).applicability == "unsafe"


# --- adding a rule: one rule file, one page, its tests -----------------------------------------------

PROBE_RULE = '''
"""MU999: a probe rule, dropped into the rules package as a new contributor would."""

from mulint.findings import Finding
from mulint.rules.base import Rule


class WidthTodo(Rule):
    code = "MU999"
    name = "width-todo"
    severity = "warning"
    summary = "a width_todo marker is left in the code"
    judged_on = "static"
    needles = ("width_todo",)

    def check_source(self, wrapper, path):
        return [
            Finding(self.code, self.name, self.severity, "width_todo left here", path, n, 1)
            for n, line in enumerate(wrapper.module.code.splitlines(), 1)
            if "width_todo" in line
        ]
'''

PROBE_PAGE = """# MU999: width-todo

Severity: warning · Fix: none

## What it does
Reports `width_todo` markers.

## Why is this bad?
A marker is a promise.

## Example
```python
width_todo = 1
```

## Use instead
```python
width = 1
```
"""


@pytest.fixture
def probe_rule(registry, tmp_path, monkeypatch):
    """A rule file beside the package's rules (on the package's path) and its page in a pages folder."""
    import mulint.rules
    from mulint.rules import pages

    folder = tmp_path / "more_rules"
    folder.mkdir()
    (folder / "mu999_probe.py").write_text(PROBE_RULE)
    monkeypatch.setattr(mulint.rules, "__path__", [*mulint.rules.__path__, str(folder)])
    page_folder = tmp_path / "pages"
    page_folder.mkdir()
    (page_folder / "MU999.md").write_text(PROBE_PAGE)
    monkeypatch.setattr(pages, "pages_dir", lambda: page_folder)
    yield
    sys.modules.pop("mulint.rules.mu999_probe", None)


def test_a_new_rule_file_and_page_are_all_it_takes(probe_rule, mulint, tmp_path):
    rule = by_code("MU999")
    assert rule is not None and rule in source_rules() and rule not in model_rules()
    assert page_title(rule) + "\n\n" + page_header(rule) == "\n".join(PROBE_PAGE.splitlines()[:3])
    assert (
        "| MU999 | width-todo | warning | none | source | a width_todo marker is left in the code |" in readme_table()
    )

    code, out, _ = mulint("rule", "MU999")
    assert code == 0 and out == PROBE_PAGE + "\n"
    code, out, _ = mulint("rule")
    assert code == 0 and out.splitlines()[-1].split() == [
        "MU999",
        "width-todo",
        "warning",
        "static",
        "a",
        *"width_todo marker is left in the code".split(),
    ]

    script = tmp_path / "train.py"
    script.write_text("steps = 10\nwidth_todo = 1\n")
    code, out, err = mulint("check", str(script), "--select", "MU999", "--format", "json")
    assert code == 1, err
    assert [(f["code"], f["line"]) for f in json.loads(out)["findings"]] == [("MU999", 2)]
    code, out, _ = mulint("check", str(script), "--select", "MU999", "--format", "sarif")
    run = json.loads(out)["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["MU999"]
    assert run["tool"]["driver"]["rules"][0]["shortDescription"]["text"] == "Reports `width_todo` markers."
    assert [r["ruleId"] for r in run["results"]] == ["MU999"]
    code, _, _ = mulint("check", str(script), "--ignore", "MU999")
    assert code == 0


# --- the README's table and the pages' headers --------------------------------------------------------


def test_the_readme_table_is_the_rules_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count(START) == 1 and readme.count(END) == 1
    table = readme.split(START + "\n")[1].split(END)[0]
    assert table == readme_table(), "regenerate it: python -m mulint.rules.table"


def test_every_page_header_is_its_rules():
    pages = load_pages(ROOT / "rules")
    for rule in all_rules():
        lines = pages[rule.code].markdown.splitlines()
        assert lines[0] == page_title(rule), rule.code
        assert lines[1] == "" and lines[2] == page_header(rule), f"{rule.code}: python -m mulint.rules.table --header"
        assert pages[rule.code].severity == rule.severity


def test_headers_say_the_note_the_fix_and_the_profile():
    assert page_header(by_code("MU103")) == "Severity: error (warning when the init shrinks) · Fix: none"
    assert page_header(by_code("MU105")) == "Severity: warning · Fix: none · Profile: `u-mup`"
    assert page_header(by_code("MU201")) == "Severity: error · Fix: safe"


def test_the_table_command(capsys):
    assert main([]) == 0 and capsys.readouterr().out == readme_table()
    assert main(["--header", "mu403"]) == 0
    assert capsys.readouterr().out == "# MU403: mushared-readout-bias\n\nSeverity: error · Fix: safe\n"
    assert main(["--header", "MU000"]) == 2 and "unknown rule code" in capsys.readouterr().err
    assert main(["--bogus"]) == 2


# --- check_model_rules follows what each rule declares ------------------------------------------------


def _use(role, line=5, module="", multiplier_exponent=0.0):
    return ParamUse(
        op="linear",
        kind="contraction",
        role=role,
        fan_in=64,
        fan_out=64,
        fan_in_infinite=True,
        fan_out_infinite=role != "output",
        node="n",
        loc=SourceLoc("m.py", line),
        module=module,
        multiplier_exponent=multiplier_exponent,
    )


def _facts(params, **kw):
    return ModelFacts(
        target="m.py:M", path="m.py", width_knob="width", base_width=64, widths=[64, 128], params=params, **kw
    )


def test_branches_and_measured_updates_follow_the_declared_fields(registry):
    calls = []

    class Hidden(Rule):
        code, name, summary = "MU991", "hidden-somewhere", "s"

        def check(self, facts):
            calls.append((self.code, bool(facts.branches)))
            if any(u.role == "hidden" for p in facts.params for u in p.uses):
                yield self.finding(facts, SourceLoc("m.py", 5), "hidden", ["h.0.w"])

    class Trains(Hidden):
        code, name, summary, trains_only = "MU992", "trains", "s", True

        def check(self, facts):
            calls.append((self.code, bool(facts.branches)))
            yield self.finding(facts, SourceLoc("m.py", 7), "lr", ["h.0.w"])

    class Measured(Hidden):
        code, name, summary, judged_on = "MU993", "measured", "s", "measured"

    param = ParamFacts(name="h.0.w", shape=(64, 64), shapes={}, infinite_dims=(0, 1), uses=[_use("hidden")])
    training = BranchFacts(
        name="train", description="the training branch", trains=True, uses={"h.0.w": [_use("output")]}
    )
    facts = _facts([param], branch="the inference branch", branch_trains=False, branches=[training])
    found = check_model_rules(facts, [Hidden, Trains, Measured])
    assert [(f.code, f.message) for f in found] == [
        ("MU991", "hidden (on the inference branch)"),
        ("MU992", "lr"),
        ("MU993", "hidden"),
    ]
    assert sorted(calls) == [("MU991", False), ("MU991", True), ("MU992", False), ("MU993", True)]
    assert [f.code for f in check_model_rules(_facts([param]), [Hidden, Trains, Measured])] == [
        "MU991",
        "MU992",
        "MU993",
    ]


# --- names of models with ten or more blocks -------------------------------------------------------------


def test_layer_patterns_of_ten_and_more_blocks():
    assert layer_pattern("transformer.h.10.attn.c_attn.weight") == "transformer.h.*.attn.c_attn.weight"
    assert layer_pattern("h.123.mlp.0.weight") == "h.*.mlp.*.weight"
    assert layer_pattern("0.weight") == "0.weight" and layer_pattern("scales.10") == "scales.10"
    names = [f"h.{i}.attn.weight" for i in range(12)] + ["h.11.mlp.weight", "wte.weight"]
    assert compress_names(names) == "h.*.attn.weight, h.*.mlp.weight, wte.weight"


def test_findings_and_fixes_of_a_twelve_block_model_name_every_block_once():
    """Constant-std hidden weights in 12 blocks and one lr for all: MU101 and MU301 name `h.*.fc.weight`,
    and the optimizer fix's table has one pattern for them."""
    params = [
        ParamFacts(
            name=f"h.{i}.fc.weight",
            shape=(64, 64),
            shapes={},
            infinite_dims=(0, 1),
            uses=[_use("hidden")],
            init_exponent=0.0,
            init_rms={64: 0.02, 128: 0.02},
            init_at=SourceLoc("m.py", 9),
            lr_exponent=0.0,
        )
        for i in range(12)
    ]
    optimizer = OptimizerFacts(label="m.py:opt", cls="AdamW", family="adam", loc=SourceLoc("m.py", 20))
    found = {
        f.code: f for f in check_model_rules(_facts(params, optimizer=optimizer), [by_code("MU101"), by_code("MU301")])
    }
    assert found["MU101"].parameter == found["MU301"].parameter == "h.*.fc.weight"
    [edit] = found["MU301"].fix.edits
    assert isinstance(edit, OptimizerLr) and [p.names for p in edit.params] == [("h.*.fc.weight",)]
    assert edit.params[0].uses == (UseTarget(k=1, multiplier=0.0, role="hidden", target=-1.0),)
    [init] = found["MU101"].fix.edits
    assert isinstance(init, InitStd) and init.power == 0.5 and init.exclude == ()
    assert found["MU101"].fix.applicability == by_code("MU101").fix_safety
