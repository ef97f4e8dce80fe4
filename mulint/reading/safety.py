"""Static look at a Python file, without importing it: is it safe to import, and what models does it define.

A file is import-safe when nothing Python evaluates while importing it has an effect: no call
outside a list of known-pure ones (pure_calls), no loop, no code of the user's tree run by a
decorator, a metaclass or a base class, and no local import of a file that is itself unsafe
(import_walk). Function bodies do not count: they run only when called.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from mulint.errors import MulintError
from mulint.reading.discovery import Discovery
from mulint.reading.import_judge import ImportJudge
from mulint.reading.local_imports import package_inits
from mulint.reading.module_info import Effect, module_info
from mulint.sources import read_source


@dataclass
class FileSummary:
    path: Path
    tree: ast.Module
    unsafe_line: int | None  # the line of the file whose code first has an effect at import time
    unsafe_reason: str = ""  # a noun phrase: "line N runs <reason> at import time"
    module_classes: list[str] = field(default_factory=list)
    top_level_models: list[str] = field(default_factory=list)  # classes/factories to analyse
    unsafe_file: Path | None = None  # the file whose code has the effect (a local import's, or this one)
    unsafe_message: str = ""  # "line 3 imports train.py, whose line 40 runs a top-level loop"
    # (name, line, reason, hint) of model classes/factories defined where a plain import cannot reach
    unanalysable: list[tuple[str, int, str, str]] = field(default_factory=list)

    def __post_init__(self):
        if self.unsafe_file is None:
            self.unsafe_file = self.path

    @property
    def import_safe(self) -> bool:
        return self.unsafe_line is None


_PARSE_HINT = "fix the file; mulint reads it before anything else"


def _read(path: Path) -> bytes:
    try:
        return read_source(path)
    except OSError as exc:
        raise MulintError(
            f"cannot read {path}: {exc.strerror or exc}", step="parse", hint="check the path and its permissions"
        ) from exc


def _parse(path: Path, source: bytes) -> ast.Module:
    """The file's syntax tree; every way it can fail to parse is a MulintError naming the file."""
    try:
        return ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        where = f"{path}:{exc.lineno}:{exc.offset or 1}" if exc.lineno else str(path)
        raise MulintError(f"syntax error at {where}: {exc.msg}", step="parse", hint=_PARSE_HINT) from exc
    except ValueError as exc:  # NUL bytes on older Pythons
        raise MulintError(f"cannot parse {path}: {exc}", step="parse", hint=_PARSE_HINT) from exc
    except (RecursionError, MemoryError) as exc:
        raise MulintError(
            f"cannot parse {path}: an expression is nested too deeply for Python's parser",
            step="parse",
            hint="split the expression; Python itself cannot compile it",
        ) from exc


def summarize(path: Path) -> FileSummary:
    source = _read(path)
    tree = _parse(path, source)
    info = module_info(path, source, tree)
    judge = ImportJudge(path)
    effect = _first_effect(judge, path)
    summary = FileSummary(path=path, tree=tree, unsafe_line=effect.line if effect else None)
    if effect is not None:
        summary.unsafe_reason = effect.reason(path)
        summary.unsafe_message = effect.sentence(path)
        summary.unsafe_file = path if effect.origin == path.resolve() else effect.origin
    discovery = Discovery(judge, info)
    try:
        summary.module_classes = discovery.module_classes()
        summary.top_level_models = discovery.top_level_models(summary.module_classes)
        summary.unanalysable = discovery.unanalysable(summary.module_classes, summary.top_level_models)
    except RecursionError:
        pass  # a pathological file: no models found rather than a crash
    return summary


def _first_effect(judge: ImportJudge, path: Path) -> Effect | None:
    """The file's own first effect, else one of the package ``__init__.py`` files its import runs first."""
    effect = judge.effect_of(path)
    if effect is not None:
        return effect
    for init in package_inits(path):
        inner = judge.effect_of(init)
        if inner is not None:
            return inner.through(1, init)
    return None
