"""What the rules declare, as the README's rule table and each page's header line, so neither drifts.

`python -m mulint.rules.table` prints the markdown table that README.md holds between its
`rule-table` markers; `python -m mulint.rules.table --header MU201` prints the line under a page's
title. The tests compare both with the files.
"""

from __future__ import annotations

import sys

from mulint.rules import all_rules
from mulint.rules.base import Rule

START = "<!-- rule-table:start -->"
END = "<!-- rule-table:end -->"
JUDGED_ON_WORDS = {"static": "source", "model": "model", "coord": "`--coord`", "measured": "measured update"}


def page_title(rule: type[Rule]) -> str:
    return f"# {rule.code}: {rule.name}"


def page_header(rule: type[Rule]) -> str:
    """`Severity: error (warning when the init shrinks) · Fix: none · Profile: `u-mup``."""
    severity = f"{rule.severity} ({rule.severity_note})" if rule.severity_note else rule.severity
    profile = f" · Profile: `{rule.profile}`" if rule.profile else ""
    return f"Severity: {severity} · Fix: {rule.fix_safety}{profile}"


def _row(rule: type[Rule]) -> str:
    judged = JUDGED_ON_WORDS[rule.judged_on]
    if rule.profile:
        judged += f" (`--profile {rule.profile}`)"
    if rule.trains_only:
        judged += " (training branch)"
    severity = f"{rule.severity} ({rule.severity_note})" if rule.severity_note else rule.severity
    cells = [rule.code, rule.name, severity, rule.fix_safety, judged, rule.summary]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def readme_table(rules: list[type[Rule]] | None = None) -> str:
    """The markdown table of every rule, one row each, by code."""
    header = "| code | name | severity | fix | judged on | what |\n|---|---|---|---|---|---|\n"
    return header + "".join(_row(rule) + "\n" for rule in (all_rules() if rules is None else rules))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--header"] and len(argv) == 2:
        rule = next((r for r in all_rules() if r.code == argv[1].upper()), None)
        if rule is None:
            print(f"unknown rule code {argv[1]!r}", file=sys.stderr)
            return 2
        print(f"{page_title(rule)}\n\n{page_header(rule)}")
        return 0
    if argv:
        print("usage: python -m mulint.rules.table [--header CODE]", file=sys.stderr)
        return 2
    print(readme_table(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
