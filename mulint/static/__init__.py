"""Static rules: read the source with libcst, never import or run it (no torch here)."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper

from mulint.errors import MulintError
from mulint.findings import Finding
from mulint.paths import display_path


def check_source(path: Path, rules) -> list[Finding]:
    source = path.read_bytes()
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        raise MulintError(f"syntax error at {path}:{exc.raw_line}:{exc.raw_column + 1}: {exc.message}",
                          step="parse", hint="fix the syntax error; mulint reads the file before anything else")
    wrapper = MetadataWrapper(module)
    findings = []
    for rule in rules:
        findings.extend(rule().check_source(wrapper, display_path(str(path))))
    return findings
