"""The fix machinery (libcst): run each enabled finding's fixer on the parsed files, then verify."""

from __future__ import annotations

import json
from pathlib import Path

from mulint.findings import Finding
from mulint.fix import (
    FixResult,
    attention,
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
from mulint.fix.files import CHANGED, READ_ONLY, digest, read_only
from mulint.fix.source import Decline, NotForThisFinding, parses

NOTHING = "the fix finds nothing to change in the source"

# Order matters: the optimizer fix reads which readouts got a multiplier in this run.
FIXERS = {
    "attention-scale": attention.fix,
    "readout-multiplier": readout.fix,
    "init-std": init.fix,
    "optimizer-lr": optimizer.fix,
    "schedule-lr": schedule.fix,
    "shared-readout-bias": shared_readout.fix,
}


def plan_fixes(findings: list[Finding], *, unsafe: bool, allowed: set[Path] | None = None) -> FixResult:
    """Run the fixers of every enabled finding; nothing is written here. `allowed`: the only files a
    fix may edit (the checked ones): never an installed package a model's code comes from."""
    result = FixResult()
    state: dict = {}
    state["allowed"] = resolved(allowed)
    todo = [f for f in findings if enabled(f, unsafe)]
    outcome: dict[str, str | None] = {}  # edit key -> None (made) or the reason it was not
    for kind, fixer in FIXERS.items():
        for finding in todo:
            for edit in finding.fix.edits:
                key = json.dumps(edit, sort_keys=True)
                if edit.get("kind") != kind or key in outcome:
                    continue
                outcome[key] = _run(fixer, edit, state, result)
    _verify(result, outcome)
    for finding in findings:
        reasons = (
            [outcome.get(json.dumps(e, sort_keys=True)) for e in finding.fix.edits]
            if enabled(finding, unsafe)
            else [""]
        )
        if enabled(finding, unsafe) and not any(reasons):
            result.fixed.append(finding)
            continue
        why = next((r for r in reasons if r), "")
        if why:
            result.declined[id(finding)] = why
        result.remaining.append(finding)
    return result


def _run(fixer, edit: dict, state: dict, result: FixResult) -> str | None:
    path = edit["path"]
    try:
        if why := outside_reason(path, state["allowed"]):
            raise Decline(why)
        if path not in result.files:
            if read_only(Path(path)):
                raise Decline(READ_ONLY)
            result.files[path] = FileContext.read(Path(path))
        ctx = result.files[path]
        if edit.get("sha256") not in (None, digest(ctx.raw)):  # the analysis read other text
            raise Decline(CHANGED)
        before = ctx.snapshot()
        try:
            fixer(ctx, edit, state)
        except NotForThisFinding:
            raise
        except Exception:
            ctx.restore(before)  # nothing half-done stays
            raise
        changed = state.setdefault("changed_lines", set())
        if ctx.snapshot() == before and (path, edit.get("line")) not in changed:
            raise Decline(NOTHING)  # `[*]` promises a diff: a fixer that finds nothing to change declines
        changed.add((path, edit.get("line")))
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
        for key in outcome:
            if json.loads(key).get("path") == path:
                outcome[key] = why
