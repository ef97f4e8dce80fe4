"""Text output shaped like ruff's: `path:line:col: CODE [*] message` per finding, then a summary.

`--statistics` replaces the listing with ruff's table: count, code, fix marker, rule name.
"""

from __future__ import annotations

from mulint.findings import Finding
from mulint.report import message_of
from mulint.report.escape import one_line


def render(
    findings: list[Finding],
    *,
    statistics: bool = False,
    fix_available: bool = True,
    unsafe_fixes: bool = False,
    fixed: int = 0,
) -> str:
    """`fix_available=False` (fixes cannot be applied from this run) drops the `[*]` markers and fix hints;
    `unsafe_fixes` counts unsafe fixes as applicable (ruff's `--unsafe-fixes`); `fixed` is how many
    findings `--fix` removed, for the `(K fixed, R remaining)` summary."""
    if statistics:
        return _statistics(findings, fix_available, unsafe_fixes)
    if not findings and not fixed:
        return "All checks passed!"
    lines = [_line(f, fix_available, unsafe_fixes) for f in sorted(findings, key=lambda f: f.sort_key)]
    total = len(findings) + fixed
    counts = f" ({fixed} fixed, {len(findings)} remaining)" if fixed else ""
    lines += ["", f"Found {total} {_plural(total, 'problem')}{counts}."]
    if fix_available:
        summary = _fix_summary(findings, unsafe_fixes)
        if summary:
            lines.append(summary)
    return "\n".join(lines[1:] if not findings else lines)


def _applicable(f: Finding, unsafe_fixes: bool) -> bool:
    return f.fix is not None and (unsafe_fixes or f.fix.applicability == "safe")


def _line(f: Finding, fix_available: bool, unsafe_fixes: bool) -> str:
    mark = " [*]" if fix_available and _applicable(f, unsafe_fixes) else ""
    return f"{one_line(f.path)}:{f.line}:{f.column}: {f.code}{mark} {one_line(message_of(f))}"


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + ("es" if word.endswith(("x", "s")) else "s")


def _fix_summary(findings: list[Finding], unsafe_fixes: bool = False) -> str:
    """ruff's wording: `--fix` applies safe fixes only, so unsafe ones are counted apart as hidden."""
    safe = sum(_applicable(f, unsafe_fixes) for f in findings)
    unsafe = sum(f.fix is not None and not _applicable(f, unsafe_fixes) for f in findings)
    hidden = (
        f"{unsafe} hidden {_plural(unsafe, 'fix')} can be enabled with the `--unsafe-fixes` option" if unsafe else ""
    )
    if safe:
        return f"[*] {safe} fixable with the `--fix` option" + (f" ({hidden})." if hidden else ".")
    return f"No fixes available ({hidden})." if hidden else ""


def _statistics(findings: list[Finding], fix_available: bool, unsafe_fixes: bool = False) -> str:
    if not findings:
        return "All checks passed!"
    rows: dict[str, list] = {}  # code -> [count, name, every finding of it fixable]
    for f in findings:
        row = rows.setdefault(f.code, [0, f.name, True])
        row[0] += 1
        row[2] = row[2] and _applicable(f, unsafe_fixes)
    # Sorted by code first so that equal counts keep a stable, readable order.
    ordered = sorted(sorted(rows.items()), key=lambda item: -item[1][0])
    count_width = max(len(str(count)) for count, _, _ in rows.values())
    code_width = max(len(code) for code in rows)
    # Like ruff, the marker column only appears when something in the table is fixable.
    markers = fix_available and any(fixable for _, _, fixable in rows.values())
    out = []
    for code, (count, name, fixable) in ordered:
        mark = ("[*] " if fixable else "[ ] ") if markers else ""
        out.append(f"{count:>{count_width}}\t{code:<{code_width}}\t{mark}{name}")
    return "\n".join(out)
