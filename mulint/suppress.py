"""Which findings are kept: --select/--ignore (codes or prefixes), `# noqa`, per-file-ignores."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Callable

from mulint.findings import Finding

_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]*(?:[\s,]+[A-Z]+[0-9]*)*))?", re.I)


def noqa_codes(line: str) -> set[str] | None:
    """None: no noqa; empty set: a bare noqa (everything); else the codes/prefixes listed."""
    match = _NOQA.search(line)
    if match is None:
        return None
    codes = match["codes"]
    return {c.upper() for c in re.split(r"[\s,]+", codes) if c} if codes else set()


def _matches(code: str, patterns: list[str]) -> int:
    """Length of the longest pattern that matches (ALL counts as 0-length but matching), -1 if none."""
    best = -1
    for p in patterns:
        p = p.upper()
        if p == "ALL":
            best = max(best, 0)
        elif code.startswith(p):
            best = max(best, len(p))
    return best


def selected(code: str, select: list[str] | None, ignore: list[str] | None) -> bool:
    chosen = _matches(code, select) if select else 0
    if chosen < 0:
        return False
    dropped = _matches(code, ignore or [])
    return dropped < 0 or chosen > dropped  # the more specific of the two wins


def per_file_ignored(code: str, path: str, per_file_ignores: dict[str, list[str]], root: Path) -> bool:
    try:
        rel = Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = Path(path).as_posix()
    for pattern, codes in per_file_ignores.items():
        if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(Path(rel).name, pattern) \
                or Path(rel).match(pattern):
            if _matches(code, codes) >= 0:
                return True
    return False


def is_suppressed_by_noqa(finding: Finding, lines: list[str]) -> bool:
    if not (1 <= finding.line <= len(lines)):
        return False
    codes = noqa_codes(lines[finding.line - 1])
    if codes is None:
        return False
    return not codes or _matches(finding.code, sorted(codes)) >= 0


def filter_findings(findings: list[Finding], *, select, ignore, per_file_ignores, root: Path,
                    read_lines: Callable[[str], list[str]]) -> list[Finding]:
    cache: dict[str, list[str]] = {}
    kept = []
    for f in findings:
        if not selected(f.code, select, ignore):
            continue
        if per_file_ignores and per_file_ignored(f.code, f.path, per_file_ignores, root):
            continue
        if f.path not in cache:
            cache[f.path] = read_lines(f.path)
        if is_suppressed_by_noqa(f, cache[f.path]):
            continue
        kept.append(f)
    return kept
