"""VALID / INVALID cases of a rule, in the style of Fixit's rule examples, and the one runner that judges them.

A VALID case is facts the rule must pass in silence. An INVALID case is facts with exactly the
finding it must give: code, the parameters it names, severity, source line, the numbers its message
must carry, and its fix (applicability and the edit's fields) or no fix. Each rule's test module
keeps its cases in `VALID` and `INVALID` (code -> cases); test_every_rule.py checks that every rule
of mulint has both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mulint.facts import ModelFacts
from mulint.findings import Finding
from mulint.rules import by_code, check_model_rules


@dataclass
class Valid:
    facts: ModelFacts
    why: str  # which µP formulation or which edge it stands for


@dataclass
class Invalid:
    facts: ModelFacts
    why: str
    parameter: str | None  # the parameter(s) the finding describes, as printed
    line: int
    severity: str = "error"
    says: tuple[str, ...] = ()  # text the message must contain: its key numbers
    fix: dict | None = None  # {"applicability": ..., **fields of the first edit}; None: no fix
    count: int = 1  # findings of this rule on these facts (the first is the one described)
    says_not: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def run(code: str, facts: ModelFacts) -> list[Finding]:
    """The findings of one rule on every branch of the facts, as `mulint check` runs it."""
    rule = by_code(code)
    assert rule is not None, code
    return check_model_rules(facts, [rule])


def judge_valid(code: str, case: Valid) -> None:
    found = run(code, case.facts)
    assert found == [], f"{code} on {case.why}: {[f.message for f in found]}"


def judge_invalid(code: str, case: Invalid) -> Finding:
    found = run(code, case.facts)
    assert len(found) == case.count, f"{code} on {case.why}: {[(f.parameter, f.message) for f in found]}"
    finding = found[0]
    assert finding.code == code and finding.name == by_code(code).name
    assert finding.parameter == case.parameter, case.why
    assert finding.severity == case.severity, case.why
    assert (finding.path, finding.line) == ("net.py", case.line), case.why
    assert finding.target == "net.py:Net"
    for text in case.says:
        assert text in finding.message, f"{text!r} not in {finding.message!r}"
    for text in case.says_not:
        assert text not in finding.message, f"{text!r} in {finding.message!r}"
    if case.fix is None:
        assert finding.fix is None, f"{case.why}: unexpected fix {finding.fix}"
    else:
        assert finding.fix is not None, f"{case.why}: no fix"
        expected = dict(case.fix)
        assert finding.fix.applicability == expected.pop("applicability")
        edit = finding.fix.edits[0]
        assert {k: edit_field(edit, k) for k in expected} == expected, edit
    return finding


def edit_field(edit, name: str):
    """A field of a fix's typed edit as JSON shows it (its kind, tuples as lists)."""
    return edit.to_dict()[name]


def params(cases: dict) -> list:
    """pytest parameters `(code, case)` with readable ids."""
    import pytest

    return [pytest.param(code, case, id=f"{code}-{case.why}") for code, group in cases.items() for case in group]
