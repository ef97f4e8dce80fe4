"""A finding: one rule violated at one source location. Plain data, shared by rules and reporters."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mulint.edits import Edit


@dataclass
class Fix:
    applicability: str  # "safe" or "unsafe"
    message: str
    edits: list[Edit] = field(default_factory=list)  # what the fixers change, one typed edit per change

    def to_dict(self) -> dict:
        return {
            "applicability": self.applicability,
            "message": self.message,
            "edits": [e.to_dict() for e in self.edits],
        }


@dataclass
class Finding:
    code: str  # e.g. "MU201"
    name: str  # e.g. "sqrt-attention-scale"
    severity: str  # "error" or "warning"
    message: str
    path: str  # as given to / discovered by mulint, relative when under the working directory
    line: int  # 1-based
    column: int  # 1-based
    target: str = ""  # the model target, e.g. "examples/nanogpt_sp.py:GPT"; "" for static rules
    parameter: str | None = None  # the parameter(s) concerned, comma-separated
    fix: Fix | None = None

    def to_dict(self) -> dict:
        """Every field as JSON-ready data; the fix's edits with their kind."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["fix"] = self.fix.to_dict() if self.fix is not None else None
        return data

    @property
    def sort_key(self) -> tuple:
        return (self.path, self.line, self.column, self.code, self.parameter or "")
