"""Rule pages (`rules/MUxxx.md`): what a rule does, why, its examples, fix safety, references."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SECTIONS = {"what it does": "what", "why is this bad?": "why", "example": "example_bad",
            "use instead": "example_good", "fix safety": "fix_safety", "references": "references"}


@dataclass
class RuleMeta:
    code: str
    name: str
    severity: str = "error"
    summary: str = ""
    what: str = ""
    why: str = ""
    example_bad: str = ""
    example_good: str = ""
    fix_safety: str = ""
    references: str = ""
    markdown: str = ""


def pages_dir() -> Path:
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "rules", here.parents[1] / "rule_pages"):
        if candidate.is_dir():
            return candidate
    return here.parents[2] / "rules"


def parse_page(path: Path) -> RuleMeta:
    text = path.read_text(encoding="utf-8")
    title = re.match(r"#\s*(MU\d{3}):\s*(\S+)", text)
    if not title:
        raise ValueError(f"{path}: the first line must be '# MUxxx: rule-name'")
    meta = RuleMeta(code=title[1], name=title[2], markdown=text)
    severity = re.search(r"^Severity:\s*([a-z]+)", text, re.M)
    meta.severity = severity[1] if severity else "error"
    for head, body in re.findall(r"^##\s+(.+?)\n(.*?)(?=^##\s|\Z)", text, re.M | re.S):
        key = SECTIONS.get(head.strip().lower())
        if key is None:
            continue
        body = body.strip()
        code = re.search(r"```python\n(.*?)```", body, re.S)
        setattr(meta, key, code[1] if code and key.startswith("example") else body)
    meta.summary = meta.what.split(". ")[0].replace("\n", " ").strip().rstrip(".") + "." if meta.what else ""
    return meta


def load_pages(directory: Path) -> dict[str, RuleMeta]:
    return {p.stem: parse_page(p) for p in sorted(directory.glob("MU*.md"))}
