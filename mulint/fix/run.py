"""What `check` does with the findings' fixes: mark them (a plain check), show them (--diff) or write
them (--fix), only ever in the files that were checked (``allowed``)."""

from __future__ import annotations

from mulint.errors import MulintError
from mulint.fix import FixResult, annotate, plan_fixes


def fix_findings(result, allowed: set, apply_fixes: bool, show_diff: bool, unsafe_fixes: bool) -> FixResult:
    """Plan the fixes; with --fix write them and keep only the findings that remain; --fix and --diff
    say why a fix was not made."""
    fixing = apply_fixes or show_diff
    if not fixing:
        # A plain check marks a finding `[*]` only when its fix really changes the file: the same
        # planning --diff does (libcst is loaded only when some finding has a fix to try). Fixes
        # that would edit an unchecked file (an installed package) are never offered.
        planned = plan_fixes(result.findings, unsafe=True, allowed=allowed)
        annotate(result.findings, planned.declined, notes=False)
        return FixResult(remaining=list(result.findings))
    fixes = plan_fixes(result.findings, unsafe=unsafe_fixes or not fixing, allowed=allowed)
    annotate(result.findings, fixes.declined, notes=fixing)
    if apply_fixes and not show_diff:
        try:
            fixes.write()
        except OSError as exc:
            raise MulintError(f"could not write the fixed file: {exc}", step="fix", hint="check the file's permissions")
        result.findings = fixes.remaining
    else:
        fixes.fixed = [] if not show_diff else fixes.fixed
    return fixes
