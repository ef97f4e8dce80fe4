"""The two checks behind the editor's diagnostics.

Static rules run here, on the buffer's unsaved text, as `mulint check` runs them on the file (same
selection, per-file-ignores and `# noqa`). Model rules need torch and the user's code: they run in a
`mulint check --format json` subprocess (through the warm server when `check` has `--daemon`), so
this process never imports torch and a model that crashes or hangs cannot take the editor's server
down. A cancelled model check ends its subprocess.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mulint.engine.settings import Settings, settings_for
from mulint.errors import MulintError
from mulint.findings import Finding
from mulint.lsp.convert import finding_from_json, rebased

log = logging.getLogger(__name__)

# How long a cancelled check's subprocess gets to end its workers after SIGTERM before SIGKILL.
STOP_GRACE = 5.0


class ProjectSettings:
    """`[tool.mulint]` for each file, as `mulint check FILE` would read it; cleared when a config changes."""

    def __init__(self) -> None:
        self._by_file: dict[Path, Settings | MulintError] = {}

    def clear(self) -> None:
        self._by_file.clear()

    def of(self, path: Path) -> Settings:
        """The file's settings; raises the MulintError a bad config gives (again on every call)."""
        if path not in self._by_file:
            try:
                self._by_file[path] = settings_for([str(path)])
            except MulintError as exc:
                self._by_file[path] = exc
        found = self._by_file[path]
        if isinstance(found, MulintError):
            raise found
        return found


def static_codes() -> set[str]:
    from mulint.rules import source_rules

    return {rule.code for rule in source_rules()}


def static_findings(text: str, path: Path, settings: Settings) -> list[Finding]:
    """The static rules on `text` as the content of `path`; MulintError when it does not parse."""
    from mulint.engine.suppress import filter_findings, selected
    from mulint.reading.source_rules import check_text
    from mulint.rules import source_rules

    rules = [r for r in source_rules() if selected(r.code, settings.select, settings.ignore)]
    try:
        found = check_text(text, path, rules)
    except (RecursionError, MemoryError, ValueError, UnicodeError) as exc:
        raise MulintError(f"cannot parse {path}: {type(exc).__name__}: {exc}", step="parse") from exc
    found = [rebased(f, Path.cwd()) for f in found]
    lines = text.splitlines()
    return filter_findings(
        found,
        select=settings.select,
        ignore=settings.ignore,
        per_file_ignores=settings.per_file_ignores,
        root=settings.root,
        read_lines=lambda _: lines,
    )


@dataclass
class ModelCheck:
    """What a `mulint check --format json` run said about one file."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (message, hint)
    notes: list[tuple[str, str]] = field(default_factory=list)  # models not analysed: (reason, hint)


def defines_models(path: Path) -> bool:
    """Whether `mulint check` would analyse (or report on) models in the saved file; a file that
    defines none (a training script, a helper) needs no model check: its static findings are here."""
    from mulint.reading.safety import summarize

    try:
        summary = summarize(path)
    except Exception:  # unreadable or not Python: the check says why
        return True
    return bool(summary.module_classes or summary.top_level_models or summary.unanalysable)


def check_command(path: Path, daemon: bool) -> list[str]:
    return [sys.executable, "-m", "mulint", "check", "--format", "json", *(["--daemon"] if daemon else []), str(path)]


async def model_check(path: Path, cwd: Path, daemon: bool) -> ModelCheck:
    """Run `mulint check --format json` on the saved file in `cwd` (where its config is). Cancelling
    the task stops the subprocess (SIGTERM: mulint ends its workers; then SIGKILL)."""
    command = check_command(path, daemon)
    log.info("model check: %s (in %s)", " ".join(command), cwd)
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        out, err = await process.communicate()
    except asyncio.CancelledError:
        log.info("model check of %s cancelled", path)
        await _stop(process)
        raise
    log.info("model check of %s exited %s", path, process.returncode)
    return parse_check_output(out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), cwd, path)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_GRACE)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
    except asyncio.CancelledError:  # cancelled again (the server exiting): no grace left
        process.kill()
        raise


def parse_check_output(out: str, err: str, cwd: Path, path: Path) -> ModelCheck:
    """The JSON report, or (a usage or config error prints none) the error `check` wrote to stderr."""
    result = ModelCheck()
    try:
        report = json.loads(out)
    except ValueError:
        report = None
    if not isinstance(report, dict):
        message, hint = _stderr_error(err)
        result.errors.append((message or "mulint check printed no report", hint))
        return result
    own = path.resolve()
    for row in report.get("findings", []):
        try:
            finding = finding_from_json(row, cwd)
        except (KeyError, TypeError, ValueError) as exc:  # EditError is a ValueError
            log.warning("a finding mulint check printed could not be read: %s", exc)
            continue
        if Path(finding.path).resolve() == own:
            result.findings.append(finding)
    for error in report.get("errors", []):
        result.errors.append((f"{error.get('target', '')}: {error.get('message', '')}", error.get("hint", "")))
    for note in report.get("unanalysed", []):
        result.notes.append((note.get("reason", ""), note.get("hint", "")))
    return result


def _stderr_error(err: str) -> tuple[str, str]:
    """`error: ...` and its `  hint: ...` as `mulint check` prints them (else the last lines)."""
    lines = [line for line in err.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
    if not starts:
        return "\n".join(lines[-5:]), ""
    rest = lines[starts[-1] :]
    message = re.sub(r"^\[[a-z-]+\] ", "", rest[0][len("error:") :].strip())  # the step, as in `[config] `
    hints = [line.strip()[len("hint:") :].strip() for line in rest[1:] if line.strip().startswith("hint:")]
    return message, " ".join(hints)
