"""What every rule is: a code, a name, a severity, and a pure function from facts to findings."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import ClassVar

from mulint.exponents import (
    TOLERANCE,  # noqa: E402,F401  shared with the measured updates
    fmt_exp,  # noqa: F401  the rules format exponents through base
)
from mulint.facts import ModelFacts, SourceLoc
from mulint.findings import Finding
from mulint.paths import display_path


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[str] = "error"
    summary: ClassVar[str]
    needs: ClassVar[str] = "model"  # "model" (traced facts) or "source" (static, libcst)
    # Static rules: text that any violation must contain; a file without it is not parsed for the rule.
    needles: ClassVar[tuple[str, ...]] = ()

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


def compress_names(names: Iterable[str]) -> str:
    """`h.0.fc.weight, h.1.fc.weight` -> `h.*.fc.weight`: one pattern per repeated layer."""
    patterns: list[str] = []
    for name in names:
        pattern = re.sub(r"(?<=\.)\d+(?=\.)", "*", name)
        if pattern not in patterns:
            patterns.append(pattern)
    return ", ".join(patterns)
