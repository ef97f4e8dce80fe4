"""A finding: one rule violated at one source location. Plain data, shared by rules and reporters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Fix:
    applicability: str  # "safe" or "unsafe"
    message: str
    edits: list[dict] = field(default_factory=list)  # filled by the fixers


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
        return asdict(self)

    @property
    def sort_key(self) -> tuple:
        return (self.path, self.line, self.column, self.code, self.parameter or "")
