"""What `check` does with the findings' fixes: mark them (a plain check), show them (--diff) or write
them (--fix), only ever in the files that were checked (``allowed``), and only on the text that was
analysed: a file that changed while it was checked is refused (its findings' lines may now hold other
code), and nothing at all is written."""

from __future__ import annotations

from pathlib import Path

from mulint.errors import MulintError
from mulint.fix import FixResult, annotate, enabled, plan_fixes, resolved_text


def declined_fixes(findings: list, allowed: set) -> dict[int, str]:
    """Why each finding's fix would not be made, by the finding's index (the others are `[*]`): the same
    planning --diff does, every fix enabled (libcst is loaded only when some finding has a fix to try).
    Fixes that would edit an unchecked file (an installed package) are never offered."""
    planned = plan_fixes(findings, unsafe=True, allowed=allowed)
    return {i: planned.declined[id(f)] for i, f in enumerate(findings) if id(f) in planned.declined}


def fix_findings(
    result, allowed: set, apply_fixes: bool, show_diff: bool, unsafe_fixes: bool, declined=declined_fixes
) -> FixResult:
    """Plan the fixes; with --fix write them and keep only the findings that remain; --fix and --diff
    say why a fix was not made. ``declined``: how a plain check finds the fixes it does not mark (the
    engine remembers them by content, so a cache hit plans nothing)."""
    fixing = apply_fixes or show_diff
    if not fixing:
        # A plain check marks a finding `[*]` only when its fix really changes the file.
        reasons = declined(result.findings, allowed)
        annotate(result.findings, {id(result.findings[i]): why for i, why in reasons.items()}, notes=False)
        return FixResult(remaining=list(result.findings))
    _refuse_changed(result, unsafe_fixes or not fixing)
    fixes = plan_fixes(result.findings, unsafe=unsafe_fixes or not fixing, allowed=allowed)
    annotate(result.findings, fixes.declined, notes=fixing)
    if apply_fixes and not show_diff:
        try:
            fixes.write()
        except OSError as exc:
            raise MulintError(
                f"could not write the fixed file: {exc}", step="fix", hint="check the file's permissions"
            ) from exc
        result.findings = fixes.remaining
    else:
        fixes.fixed = [] if not show_diff else fixes.fixed
    return fixes


def _refuse_changed(result, unsafe: bool) -> None:
    """Raise when a file a fix would edit no longer holds the text it held when the check began."""
    from mulint.fix.files import source_digest

    sources = getattr(result, "sources", None)
    if sources is None:
        return  # results without a record of what was analysed (the API's): nothing to compare
    paths = sorted({resolved_text(e.path) for f in result.findings if enabled(f, unsafe) for e in f.fix.edits})
    changed = [p for p in paths if p in sources and source_digest(Path(p)) != sources[p]]
    if changed:
        raise MulintError(
            f"{', '.join(changed)} changed while it was checked: the fixes were made for the text "
            f"that was analysed, whose lines may now hold other code; nothing was written",
            step="fix",
            hint="run mulint again on the saved file",
        )
