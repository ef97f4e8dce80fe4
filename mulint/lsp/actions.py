"""Quick fixes and hover text for mulint's diagnostics.

A quick fix makes exactly the change `mulint check --fix` makes: the same planner (`mulint.fix`) runs
on the saved file and the fixed text is sent as minimal line edits. Findings are computed on the saved
file, so fixes are offered only while the buffer holds that text (after a save).
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

from lsprotocol import types

from mulint.findings import Finding
from mulint.lsp.convert import utf16_length

log = logging.getLogger(__name__)

FIX_ALL = f"{types.CodeActionKind.SourceFixAll.value}.mulint"


def fixed_text(findings: list[Finding], path: Path, unsafe: bool) -> str | None:
    """The file as `--fix` (with `--unsafe-fixes` when `unsafe`) would write it for these findings;
    None when nothing would change."""
    from mulint.fix import plan_fixes

    planned = plan_fixes(findings, unsafe=unsafe, allowed={path})
    for why in planned.declined.values():
        log.info("fix not made: %s", why)
    context = planned.files.get(str(path))
    if context is None or not planned.fixed or not context.changed:
        return None
    module = context.render()
    return module.bytes.decode(module.encoding)


def text_edits(old: str, new: str) -> list[types.TextEdit]:
    """Line edits turning `old` into `new`."""
    before, after = old.splitlines(keepends=True), new.splitlines(keepends=True)
    edits = []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        edits.append(
            types.TextEdit(
                range=types.Range(start=_position(before, i1), end=_position(before, i2)),
                new_text="".join(after[j1:j2]),
            )
        )
    return edits


def _position(lines: list[str], index: int) -> types.Position:
    """The start of line `index`; past the last line, the end of the text (which may lack a newline)."""
    if index < len(lines) or not lines or lines[-1].endswith(("\n", "\r")):
        return types.Position(line=index, character=0)
    return types.Position(line=len(lines) - 1, character=utf16_length(lines[-1]))


def apply_edits(text: str, edits: list[types.TextEdit]) -> str:
    """`text` with non-overlapping line edits made (as an editor makes them): for tests and checks."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def offset(position: types.Position) -> int:
        if position.line >= len(lines):
            return len(text)
        line = lines[position.line]
        units = 0
        for i, char in enumerate(line):
            if units >= position.character:
                return offsets[position.line] + i
            units += utf16_length(char)
        return offsets[position.line] + len(line)

    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]
    return text


def code_action(
    title: str, kind: str, uri: str, edits: list[types.TextEdit], diagnostics: list[types.Diagnostic], preferred: bool
) -> types.CodeAction:
    return types.CodeAction(
        title=title,
        kind=kind,
        diagnostics=diagnostics or None,
        edit=types.WorkspaceEdit(changes={uri: edits}),
        is_preferred=preferred or None,
    )


def hover_text(code: str) -> str | None:
    """The rule's page, as `mulint rule CODE` prints it."""
    from mulint.rules import by_code
    from mulint.rules.pages import explanation

    rule = by_code(code)
    return explanation(rule) if rule is not None else None
