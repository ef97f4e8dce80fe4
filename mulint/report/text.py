"""Text output in ruff's shape: `path:line:col: CODE [*] message`, then a summary."""

from __future__ import annotations

from collections import Counter

from mulint.findings import Finding


def render(findings: list[Finding], *, statistics: bool = False) -> str:
    if statistics:
        return _statistics(findings)
    if not findings:
        return "All checks passed!"
    lines = []
    for f in sorted(findings, key=lambda f: f.sort_key):
        mark = " [*]" if f.fix is not None else ""
        where = f" [{f.parameter}]" if f.parameter else ""
        lines.append(f"{f.path}:{f.line}:{f.column}: {f.code}{mark} {f.message}{where}")
    n = len(findings)
    lines += ["", f"Found {n} problem{'s' if n != 1 else ''}."]
    fixable = sum(f.fix is not None for f in findings)
    if fixable:
        lines.append(f"[*] {fixable} fixable with the `--fix` option.")
    return "\n".join(lines)


def _statistics(findings: list[Finding]) -> str:
    counts = Counter((f.code, f.name, f.fix is not None) for f in findings)
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0]))
    width = max((len(str(n)) for n in counts.values()), default=1)
    return "\n".join(f"{n:>{width}}\t{code}\t{'[*]' if fix else '[ ]'} {name}" for (code, name, fix), n in rows)
