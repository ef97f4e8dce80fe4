"""The rules: each a small class that declares everything about itself and checks facts purely.

How to add a rule
-----------------
1. Write the rule class in a module of this package (a new `mulint/rules/<topic>.py`, or beside its
   relatives). Subclassing `Rule` with a `code` registers it; the registry is found, not kept::

       class WidthlessDropout(Rule):
           code = "MU601"                   # MU + three digits, unused
           name = "widthless-dropout"       # kebab-case, as pages and SARIF show it
           severity = "warning"             # "error" or "warning"
           summary = "dropout rate ..."     # one line: `mulint rule` and the README table
           judged_on = "model"              # "static" | "model" | "coord" | "measured"
           trains_only = False              # True: only on the branch of forward that trains
           fix_safety = "none"              # "safe" | "unsafe" | "none"

           def check(self, facts):          # pure: ModelFacts in, Findings out; no torch
               ...
               yield self.finding(facts, loc, "message", parameter_names)

   Optional: `severity_note` (when some findings differ: "warning when the init shrinks") and
   `profile` (the one profile it fires under). A fix is built on the class too: `self.make_fix(
   message, [edit])` with a typed edit from `mulint.edits` (a new kind needs its dataclass there and
   its fixer in `mulint.fix.apply.FIXERS`). A static rule (`judged_on = "static"`) implements
   `check_source(wrapper, path)` over libcst instead, with `needles`: text any violation contains.
2. Write its page, `rules/MU601.md`: the title `# MU601: widthless-dropout`, the header line
   `python -m mulint.rules.table --header MU601` prints, and the sections (see `mulint.rules.pages`).
   Its examples are executed by the tests: the first must raise exactly this code, the second nothing.
3. Regenerate the README's rule table: `python -m mulint.rules.table` prints it, to paste between
   the `rule-table` markers.
4. Test it: facts-level tests (build facts, call `rule().check(facts)`, assert), fast. The tests of
   the pages and of the registry (tests/test_rule_registry.py) fail until the page and table agree.

Nothing else changes: selection (`--select`), `mulint rule`, SARIF and the run engine find the rule.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import replace

from mulint.rules.base import RULES, Rule


def all_rules() -> list[type[Rule]]:
    """Every rule, by code: the rule classes of every module of this package."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return sorted(RULES.values(), key=lambda r: r.code)


def by_code(code: str) -> type[Rule] | None:
    return next((r for r in all_rules() if r.code == code.upper()), None)


def model_rules() -> list[type[Rule]]:
    """The rules judged on a traced model (its facts, its coordinate check, its measured updates)."""
    return [r for r in all_rules() if r.judged_on != "static"]


def source_rules() -> list[type[Rule]]:
    """The rules that read the source only."""
    return [r for r in all_rules() if r.judged_on == "static"]


def _branch_view(facts, branch):
    """The facts as seen on another branch of forward: its uses and attention sites."""
    params = [replace(p, uses=branch.uses.get(p.name, p.uses)) for p in facts.params]
    return replace(facts, params=params, attention=branch.attention, branches=[])


def check_model_rules(facts, rules: list[type[Rule]] | None = None) -> list:
    """Run the model rules on every branch of forward the facts hold. A finding that holds on some
    branches only names them; learning-rate findings come from the branch that trains."""
    rules = model_rules() if rules is None else rules
    if not facts.branches:
        return [f for rule in rules for f in rule().check(facts)]
    measured = [f for rule in rules if rule.judged_on == "measured" for f in rule().check(facts)]
    rules = [rule for rule in rules if rule.judged_on != "measured"]
    trains_only = {rule.code for rule in rules if rule.trains_only}
    views = [(facts.branch, facts.branch_trains, facts)] + [
        (b.description, b.trains, _branch_view(facts, b)) for b in facts.branches
    ]
    found: dict[tuple, tuple] = {}  # (code, place, parameters) -> (finding, branches it holds on)
    for description, trains, view in views:
        for rule in rules:
            if rule.trains_only and not trains:
                continue
            for finding in rule().check(view):
                key = (finding.code, finding.path, finding.line, finding.parameter)
                first, where = found.setdefault(key, (finding, []))
                where.append(description)
    out = []
    for (code, *_), (finding, where) in found.items():
        judged = [d for d, trains, _ in views if trains or code not in trains_only]
        if len(where) < len(judged) and code not in trains_only:
            finding.message += f" (on {' and '.join(where)})"
        out.append(finding)
    return out + measured
