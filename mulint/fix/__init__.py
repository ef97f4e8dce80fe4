"""`mulint check --fix / --unsafe-fixes / --diff`: turn findings' fixes into edited source.

Rules describe a fix as data in the finding (`Fix.edits`: typed edits from `mulint.edits`, saying what
to change, where, with which base width), so cached results keep it. Here each edit type has a small
libcst fixer; the applier parses every file once, lets the fixers ask for changes keyed by the nodes
at the findings' lines, renders the file, checks that it parses, and only then writes it or shows the diff. Writing
(`mulint.fix.files`) goes through symlinks, keeps mode, owner and hard links, refuses read-only files,
and never overwrites a change made since the file was read.
A fixer that cannot make its change safely declines: the code stays and the finding keeps a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mulint.findings import Finding

if TYPE_CHECKING:
    from mulint.fix.context import FileContext


@dataclass
class FixResult:
    fixed: list[Finding] = field(default_factory=list)
    remaining: list[Finding] = field(default_factory=list)
    files: dict[str, FileContext] = field(default_factory=dict)  # path -> file with its changes
    declined: dict[int, str] = field(default_factory=dict)  # id(finding) -> why its fix was not made

    def diff(self) -> str:
        from mulint.fix.source import unified_diff

        return "".join(
            unified_diff(path, ctx.module, ctx.render()) for path, ctx in sorted(self.files.items()) if ctx.changed
        )

    def write(self) -> list[str]:
        """Write every changed file; the paths written. A file that changed since it was read for
        planning (another --fix, an editor) or became read-only is left as it is, and its fixes move
        back to `remaining` with the reason; one that already holds the fixed text counts as fixed."""
        from mulint.fix.files import NotWritten, write_fixed

        written, unwritten = [], {}
        for path, ctx in sorted(self.files.items()):
            fixed = ctx.render()
            if not ctx.changed or fixed.bytes == ctx.raw:
                continue
            try:
                if write_fixed(ctx.path, ctx.raw, fixed.bytes):
                    written.append(path)
            except NotWritten as exc:
                unwritten[path] = str(exc)
        self._not_fixed(unwritten)
        return written

    def _not_fixed(self, unwritten: dict[str, str]) -> None:
        """Findings with an edit in a file that was not written stay, with the reason."""
        for finding in list(self.fixed):
            edits = finding.fix.edits if finding.fix else ()
            why = next((unwritten[e.path] for e in edits if e.path in unwritten), None)
            if why:
                self.fixed.remove(finding)
                self.remaining.append(finding)
                self.declined[id(finding)] = why
                annotate([finding], {id(finding): why})


def enabled(finding: Finding, unsafe: bool) -> bool:
    return finding.fix is not None and bool(finding.fix.edits) and (unsafe or finding.fix.applicability == "safe")


def outside_checked_files(findings: list[Finding], *, unsafe: bool, allowed: set[Path] | None) -> dict[int, str]:
    """id(finding) -> why its fix cannot be made: it would edit a file that was not checked (an
    installed package's model code). Needs no parsing."""
    allowed_paths = resolved(allowed)
    return {
        id(f): why
        for f in findings
        if f.fix is not None and enabled(f, unsafe)
        for e in f.fix.edits
        if (why := outside_reason(e.path, allowed_paths))
    }


def resolved(allowed: set[Path] | None) -> set[Path] | None:
    return {p.resolve() for p in allowed} if allowed is not None else None


def resolved_text(path: str | Path) -> str:
    """The path resolved, as text; as given when it cannot be (a symlink loop: the fix's own write refuses it)."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):
        return str(path)


def outside_reason(path: str, allowed_paths: set[Path] | None) -> str | None:
    """Why a fix may not edit `path` (not a checked file), or None when it may."""
    if allowed_paths is None or Path(path).resolve() in allowed_paths:
        return None
    return f"the fix would edit {path}, which is not among the checked files"


def plan_fixes(findings: list[Finding], *, unsafe: bool, allowed: set[Path] | None = None) -> FixResult:
    """Run the fixers of every enabled finding; nothing is written here. `allowed`: the only files a
    fix may edit (the checked ones): never an installed package a model's code comes from."""
    outside = outside_checked_files(findings, unsafe=unsafe, allowed=allowed)
    if not any(enabled(f, unsafe) and id(f) not in outside for f in findings):
        # Without a fix to make in a checked file, libcst (a second of import) is not even loaded.
        return FixResult(remaining=list(findings), declined=outside)
    from mulint.fix.apply import plan_fixes as plan

    return plan(findings, unsafe=unsafe, allowed=allowed)


def annotate(findings: list[Finding], declined: dict[int, str], *, notes: bool = True) -> None:
    """Drop the fix marker a declined fix cannot honour; with `notes` (a --fix or --diff run) the
    finding also says why it was not fixed."""
    for finding in findings:
        why = declined.get(id(finding))
        if why:
            finding.message = f"{finding.message} (not fixed: {why})" if notes else finding.message
            finding.fix = None
