"""Rule pages (`rules/MUxxx.md`): what a rule does, why it breaks µTransfer, examples, fix safety, references.

A page looks like::

    # MU201: sqrt-attention-scale

    Severity: error · Fix: safe

    ## What it does
    ## Why is this bad?
    ## Example            (a ```python block that violates the rule)
    ## Use instead        (the fixed ```python block)
    ## Fix safety
    ## References

Missing sections parse as empty strings; a page without a valid title is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mulint.rules.base import SEVERITIES

SECTIONS = {
    "what it does": "what",
    "why is this bad?": "why",
    "example": "example_bad",
    "use instead": "example_good",
    "fix safety": "fix_safety",
    "references": "references",
}

_TITLE = re.compile(r"#\s+(MU\d+)\s*:\s*([a-z0-9][a-z0-9-]*)\s*$", re.I)
_SEVERITY = re.compile(r"severity\s*:\s*(\w+)", re.I)
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")  # pages may start a sentence in lower case ("mulint builds")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "al.")


@dataclass
class RuleMeta:
    code: str
    name: str
    severity: str = "error"
    summary: str = ""  # the first sentence of "What it does"
    what: str = ""
    why: str = ""
    example_bad: str = ""  # the code of the "Example" block
    example_good: str = ""  # the code of the "Use instead" block
    fix_safety: str = ""
    references: str = ""
    markdown: str = ""  # the whole page


def pages_dir() -> Path:
    """The repository's `rules/` beside the package; else pages shipped as package data."""
    here = Path(__file__).resolve()
    repo_pages = here.parents[2] / "rules"
    if repo_pages.is_dir():
        return repo_pages
    packaged = here.parents[1] / "rule_pages"
    return packaged if packaged.is_dir() else repo_pages


def explanation(rule) -> str:
    """What `mulint rule CODE` prints (and an editor's hover shows): the rule's page, else its summary."""
    page = pages_dir() / f"{rule.code}.md"
    return page.read_text(encoding="utf-8") if page.exists() else f"{rule.code}: {rule.name}\n\n{rule.summary}"


def _split_sections(lines: list[str]) -> dict[str, list[str]]:
    """`## heading` -> its lines; headings inside code fences are code (a Python `## comment`), not sections."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_fence = False
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("## "):
            current = sections.setdefault(line[3:].strip().lower(), [])
            continue
        if current is not None:
            current.append(line)
    return sections


def _first_code_block(body: str) -> str:
    """The code of the first fenced block, with its final newline; the text itself if there is none."""
    match = re.search(r"^[ \t]*(```|~~~)[^\n]*\n(.*?)^[ \t]*\1", body, re.S | re.M)
    return match[2] if match else body


def _first_sentence(text: str) -> str:
    paragraph = " ".join(text.split("\n\n")[0].split())
    for end in _SENTENCE_END.finditer(paragraph):
        if not paragraph[: end.start()].lower().endswith(_ABBREVIATIONS):  # "e.g. SDPA" goes on
            return paragraph[: end.start()]
    return paragraph


def parse_page(path: Path) -> RuleMeta:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    title = _TITLE.match(first.strip())
    if not title:
        raise ValueError(f"{path}: the first line must be '# MUxxx: rule-name', not {first.strip()!r}")
    meta = RuleMeta(code=title[1].upper(), name=title[2], markdown=text)

    # The severity line sits between the title and the first section; anything after its first
    # word is commentary ("error (warning when the init shrinks)").
    header = lines[lines.index(first) + 1 :]
    header = header[: next((i for i, line in enumerate(header) if line.startswith("## ")), len(header))]
    severity = next((m for m in map(_SEVERITY.match, (line.strip() for line in header)) if m), None)
    if severity:
        meta.severity = severity[1].lower()
        if meta.severity not in SEVERITIES:
            raise ValueError(f"{path}: severity must be one of {', '.join(SEVERITIES)}, not {severity[1]!r}")

    for heading, body_lines in _split_sections(lines).items():
        field = SECTIONS.get(heading)
        if field is None:
            continue
        body = "\n".join(body_lines)
        if field.startswith("example"):
            code = _first_code_block(body)
            # Keep the code's indentation; only the blank lines around it go.
            setattr(meta, field, code.strip("\n") + "\n" if code.strip() else "")
        else:
            setattr(meta, field, body.strip())
    meta.summary = _first_sentence(meta.what)
    return meta


def load_pages(directory: Path) -> dict[str, RuleMeta]:
    """Code -> page for every `MU*.md` in `directory` (none when it does not exist)."""
    pages = {}
    for path in sorted(Path(directory).glob("MU*.md")):
        meta = parse_page(path)
        if meta.code != path.stem.upper():
            raise ValueError(f"{path}: the title names {meta.code}, the file name {path.stem}")
        pages[meta.code] = meta
    return pages
