"""Which findings are kept: `--select`/`--ignore` (codes or prefixes), `# noqa`, per-file-ignores.

Codes and prefixes match like ruff's selectors: `MU3` covers MU301..MU399, `ALL` covers everything,
and when both a select and an ignore entry match a code the more specific (longer) one wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from mulint.findings import Finding

# flake8's approach: a regex on the whole line. A `: CODES` list that does not parse leaves a bare
# noqa comment, which suppresses everything on the line (as flake8 does).
_NOQA = re.compile(
    r"#\s*noqa\b(?:\s*:\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?",
    re.IGNORECASE,
)


def noqa_codes(line: str) -> set[str] | None:
    """None: no `# noqa`; an empty set: a bare `# noqa` (everything); else the codes or prefixes listed."""
    match = _NOQA.search(line)
    if match is None:
        return None
    codes = match["codes"]
    return {c.upper() for c in re.split(r"[\s,]+", codes) if c} if codes else set()


def _specificity(code: str, patterns: Iterable[str]) -> int:
    """Length of the longest pattern matching `code`; `ALL` matches with 0; -1 when none matches."""
    best = -1
    code = code.upper()
    for pattern in patterns:
        pattern = pattern.strip().upper()
        if pattern == "ALL":
            best = max(best, 0)
        elif pattern and code.startswith(pattern):
            best = max(best, len(pattern))
    return best


def matches(code: str, patterns: Iterable[str]) -> bool:
    return _specificity(code, patterns) >= 0


def selected(code: str, select: Sequence[str] | None, ignore: Sequence[str] | None) -> bool:
    """None for `select` means every code; a tie between select and ignore is an ignore (as in ruff)."""
    chosen = 0 if select is None else _specificity(code, select)
    if chosen < 0:
        return False
    dropped = _specificity(code, ignore or [])
    return dropped < 0 or chosen > dropped


def is_suppressed_by_noqa(finding: Finding, source_lines: list[str]) -> bool:
    if not 1 <= finding.line <= len(source_lines):
        return False
    codes = noqa_codes(source_lines[finding.line - 1])
    if codes is None:
        return False
    return not codes or matches(finding.code, codes)


def _glob_regex(pattern: str) -> re.Pattern:
    """Glob -> regex as ruff's per-file-ignores read it: `**/` is zero or more directories, and `*`
    may cross `/` (so `tests/*` covers nested test files too)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append(".*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _path_matches(pattern: str, relative: str | None, absolute: str, name: str) -> bool:
    if pattern.startswith("./"):
        pattern = pattern[2:]
    if pattern.startswith("/"):
        return bool(_glob_regex(pattern).match(absolute))
    if relative is not None and _glob_regex(pattern).match(relative):
        return True
    # A pattern without a directory part also matches the file name anywhere (`__init__.py`).
    return "/" not in pattern and bool(_glob_regex(pattern).match(name))


def per_file_ignored(code: str, path: str, per_file_ignores: Mapping[str, Sequence[str]], root: Path) -> bool:
    """Patterns are globs relative to the config's directory `root`; `!pattern` means "files not matching"."""
    if not per_file_ignores:
        return False
    absolute = Path(path).resolve()
    relative: str | None
    try:
        relative = absolute.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        # Not below the root: a relative path is taken as given (relative to the project), an
        # absolute one can only match name patterns.
        relative = None if Path(path).is_absolute() else Path(path).as_posix()
    for pattern, codes in per_file_ignores.items():
        negated = pattern.startswith("!")
        hit = _path_matches(pattern[1:] if negated else pattern, relative, absolute.as_posix(), absolute.name)
        if hit != negated and matches(code, codes):
            return True
    return False


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def filter_findings(
    findings: list[Finding],
    *,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    per_file_ignores: Mapping[str, Sequence[str]] | None = None,
    root: Path | None = None,
    read_lines: Callable[[str], list[str]] = _read_lines,
) -> list[Finding]:
    """Keep the findings that are selected, not ignored for their file, and not under a `# noqa`."""
    root = root if root is not None else Path.cwd()
    sources: dict[str, list[str]] = {}  # each file is read once, and only if a finding survives to it
    kept = []
    for f in findings:
        if not selected(f.code, select, ignore):
            continue
        if per_file_ignored(f.code, f.path, per_file_ignores or {}, root):
            continue
        if f.path not in sources:
            sources[f.path] = read_lines(f.path)
        if not is_suppressed_by_noqa(f, sources[f.path]):
            kept.append(f)
    return kept


def unknown_selector(pattern: str, known: Iterable[str]) -> str | None:
    """None when `pattern` (a code, a prefix or ALL) selects some known rule; else the error message,
    with the closest known code: a typo must not switch every rule off in silence."""
    import difflib

    pattern = pattern.strip().upper()
    known = sorted(known)
    if pattern == "ALL" or any(code.startswith(pattern) for code in known if pattern):
        return None
    close = difflib.get_close_matches(pattern, known, n=1, cutoff=0.6)
    if not close and re.fullmatch(r"MU[0-9]+", pattern):
        close = [c for c in known if c.startswith(pattern[:3])][:1]
    return (
        f"unknown rule code {pattern}"
        + (f"; did you mean {close[0]}?" if close else "")
        + " (`mulint rule` lists them)"
    )


def first_unknown_selector(codes: Iterable[str] | None) -> str | None:
    """The error message for the first code or prefix that selects no rule of mulint's, or None."""
    from mulint.rules import all_rules

    known = [r.code for r in all_rules()]
    return next((problem for code in codes or [] if (problem := unknown_selector(code, known))), None)
