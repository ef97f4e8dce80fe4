"""The fix machinery (libcst): run each enabled finding's fixer on the parsed files, then verify."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mulint.edits import (
    AttentionScale,
    BranchMultiplier,
    Edit,
    InitStd,
    OptimizerLr,
    ReadoutMultiplier,
    ScheduleLr,
    SharedReadoutBias,
)
from mulint.findings import Finding
from mulint.fix import (
    FixResult,
    attention,
    depth,
    enabled,
    init,
    optimizer,
    outside_reason,
    readout,
    resolved,
    schedule,
    shared_readout,
)
from mulint.fix.context import FileContext
from mulint.fix.files import READ_ONLY, read_only
from mulint.fix.source import Decline, NotForThisFinding, parses

NOTHING = "the fix finds nothing to change in the source"

# Each edit type's fixer. Order matters: the optimizer fix reads which readouts got a multiplier in this run.
FIXERS: dict[type[Edit], Callable[[FileContext, Any, dict], None]] = {
    AttentionScale: attention.fix,
    ReadoutMultiplier: readout.fix,
    InitStd: init.fix,
    OptimizerLr: optimizer.fix,
    ScheduleLr: schedule.fix,
    SharedReadoutBias: shared_readout.fix,
    BranchMultiplier: depth.fix,
}


def plan_fixes(findings: list[Finding], *, unsafe: bool, allowed: set[Path] | None = None) -> FixResult:
    """Run the fixers of every enabled finding; nothing is written here. `allowed`: the only files a
    fix may edit (the checked ones): never an installed package a model's code comes from."""
    result = FixResult()
    state: dict = {}
    state["allowed"] = resolved(allowed)
    todo = [edit for f in findings if f.fix is not None and enabled(f, unsafe) for edit in f.fix.edits]
    outcome: dict[Edit, str | None] = {}  # edit -> None (made) or the reason it was not
    for kind, fixer in FIXERS.items():
        for edit in todo:
            if type(edit) is kind and edit not in outcome:
                outcome[edit] = _run(fixer, edit, state, result)
    _verify(result, outcome)
    for finding in findings:
        reasons = [outcome.get(e) for e in finding.fix.edits] if finding.fix and enabled(finding, unsafe) else [""]
        if enabled(finding, unsafe) and not any(reasons):
            result.fixed.append(finding)
            continue
        why = next((r for r in reasons if r), "")
        if why:
            result.declined[id(finding)] = why
        result.remaining.append(finding)
    return result


def _run(fixer, edit: Edit, state: dict, result: FixResult) -> str | None:
    path = edit.path
    try:
        if why := outside_reason(path, state["allowed"]):
            raise Decline(why)
        if path not in result.files:
            if read_only(Path(path)):
                raise Decline(READ_ONLY)
            result.files[path] = FileContext.read(Path(path))
        ctx = result.files[path]
        before = ctx.snapshot()
        try:
            fixer(ctx, edit, state)
        except NotForThisFinding:
            raise
        except Exception:
            ctx.restore(before)  # nothing half-done stays
            raise
        changed = state.setdefault("changed_lines", set())
        if ctx.snapshot() == before and (path, edit.line) not in changed:
            raise Decline(NOTHING)  # `[*]` promises a diff: a fixer that finds nothing to change declines
        changed.add((path, edit.line))
        return None
    except Decline as exc:
        return str(exc)
    except Exception as exc:  # a fixer bug must not lose the finding or break the check
        return f"internal error while fixing ({type(exc).__name__}: {exc})"


def _verify(result: FixResult, outcome: dict) -> None:
    """A file whose fixed text would not parse is left alone, and its fixes count as not made."""
    for path, ctx in result.files.items():
        if not ctx.changed:
            continue
        try:
            fixed = ctx.render()
            error = parses(fixed)
            why = f"the fixed file would not parse ({error}); left unchanged"
            if error is None and fixed.bytes == ctx.raw:
                error = why = NOTHING  # the changes render as the text that is there
        except Exception as exc:  # a fixer bug: keep the file as it is
            error = why = f"internal error while fixing ({type(exc).__name__}: {exc})"
        if error is None:
            continue
        ctx.restore(({}, {}, {}, [], []))
        for edit in outcome:
            if edit.path == path:
                outcome[edit] = why
