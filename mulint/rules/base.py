"""What every rule is: everything said about it, declared on its class, and a pure function from facts
to findings. Defining a subclass with a `code` registers it: no list of rules is kept by hand."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import ClassVar

from mulint.edits import Edit
from mulint.facts import ModelFacts, SourceLoc
from mulint.findings import Finding, Fix
from mulint.paths import display_path, layer_pattern

SEVERITIES = ("error", "warning")
# What a rule is judged on: the source alone (libcst, nothing imported), the traced model's facts, the
# dynamic coordinate check (`check --coord`), or the optimizer updates measured with the default call
# of forward (judged once, not per branch: only those facts hold their numbers).
JUDGED_ON = ("static", "model", "coord", "measured")
FIX_SAFETY = ("safe", "unsafe", "none")
_CODE = re.compile(r"MU\d{3}")

# code -> rule class, filled as rule classes are defined
RULES: dict[str, type[Rule]] = {}


class Rule:
    code: ClassVar[str]  # "MU201"
    name: ClassVar[str]  # "sqrt-attention-scale"
    severity: ClassVar[str] = "error"  # of its findings, unless the note says when it differs
    severity_note: ClassVar[str] = ""  # "warning when the init shrinks": some findings differ
    summary: ClassVar[str]  # one line: `mulint rule` and the README's table show it
    judged_on: ClassVar[str] = "model"  # one of JUDGED_ON
    trains_only: ClassVar[bool] = False  # judged only on the branch of forward that trains (learning rates)
    fix_safety: ClassVar[str] = "none"  # its fix: "safe" (--fix), "unsafe" (--unsafe-fixes) or "none"
    profile: ClassVar[str] = ""  # the one profile it fires under (its page's examples run there); "" any
    # Static rules: text that any violation must contain; a file without it is not parsed for the rule.
    needles: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in vars(cls):  # a rule; bases shared by several rules (no code of their own) are not
            _register(cls)

    def check(self, facts: ModelFacts) -> Iterator[Finding]:
        raise NotImplementedError

    def finding(
        self,
        facts: ModelFacts,
        loc: SourceLoc | None,
        message: str,
        parameters: Iterable[str] = (),
        severity: str | None = None,
    ) -> Finding:
        path, line, column = (display_path(loc.path), loc.line, loc.column) if loc else (facts.path, 1, 1)
        names = compress_names(parameters)
        return Finding(
            code=self.code,
            name=self.name,
            severity=severity or self.severity,
            message=message,
            path=path,
            line=line,
            column=column,
            target=facts.target,
            parameter=names or None,
        )

    def make_fix(self, message: str, edits: Iterable[Edit]) -> Fix:
        """The rule's fix, as safe as the rule declares."""
        if self.fix_safety == "none":
            raise TypeError(f"{self.code} declares no fix (fix_safety = 'none')")
        return Fix(self.fix_safety, message, list(edits))


def edit_site(facts: ModelFacts, loc: SourceLoc) -> dict:
    """The fields every edit of a model's code shares (`mulint.edits.ModelEdit`): the file as analysed
    and the line; the base width (the model's default, so the fixed model equals the old one there),
    the width knob and the target the fixer writes the width expression from."""
    return {
        "path": display_path(loc.path),
        "line": loc.line,
        "base_width": facts.base_width,
        "width_knob": facts.width_knob,
        "target": facts.target,
    }


def _register(rule: type[Rule]) -> None:
    """Check what the rule declares, once, where it is defined: a mistake names the rule."""
    where = f"{rule.__module__}.{rule.__qualname__}"
    missing = [field for field in ("name", "summary") if not getattr(rule, field, "")]
    problems = [f"it has no {field}" for field in missing]
    if not _CODE.fullmatch(rule.code):
        problems.append(f"its code {rule.code!r} is not MU followed by three digits")
    for field, allowed in (("severity", SEVERITIES), ("judged_on", JUDGED_ON), ("fix_safety", FIX_SAFETY)):
        if getattr(rule, field) not in allowed:
            problems.append(f"its {field} {getattr(rule, field)!r} is none of {', '.join(allowed)}")
    known = RULES.get(rule.code)
    if known is not None and f"{known.__module__}.{known.__qualname__}" != where:  # not the same rule reloaded
        problems.append(f"{known.__module__}.{known.__qualname__} has the code {rule.code} already")
    if problems:
        raise TypeError(f"rule {where}: {'; '.join(problems)}")
    RULES[rule.code] = rule


def compress_names(names: Iterable[str]) -> str:
    """`h.0.fc.weight, h.1.fc.weight` -> `h.*.fc.weight`: one pattern per repeated layer."""
    return ", ".join(dict.fromkeys(layer_pattern(name) for name in names))
