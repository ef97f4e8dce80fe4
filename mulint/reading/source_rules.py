"""Static rules: read the source with libcst, never import or run it (no torch here)."""

from __future__ import annotations

from pathlib import Path

from mulint.errors import MulintError
from mulint.findings import Finding
from mulint.paths import display_path
from mulint.sources import read_source


def check_source(path: Path, rules) -> list[Finding]:
    return check_text(read_source(path), path, rules)


def check_text(source: bytes | str, path: Path, rules) -> list[Finding]:
    """The static rules on a file's content given here, as bytes from disk or as an editor's unsaved
    text; `path` names the file in the findings."""
    # libcst's parser is the slow part of the static path: skip it for files no rule can match.
    text = source.decode("utf-8", errors="replace") if isinstance(source, bytes) else source
    rules = [r for r in rules if not r.needles or any(n in text for n in r.needles)]
    if not rules:
        return []  # syntax errors were reported by the caller's ast parse (reading.safety.summarize)
    import libcst as cst  # its import alone costs most of a static check: only when a file is parsed
    from libcst.metadata import MetadataWrapper

    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        raise MulintError(
            f"syntax error at {path}:{exc.raw_line}:{exc.raw_column + 1}: {exc.message}",
            step="parse",
            hint="fix the syntax error; mulint reads the file before anything else",
        ) from None  # the message says all libcst's error does
    wrapper = MetadataWrapper(module)
    findings = []
    for rule in rules:
        findings.extend(rule().check_source(wrapper, display_path(str(path))))
    return findings
