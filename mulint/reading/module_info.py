"""A file of the user's tree as the import walk reads it, parsed once per content (its bindings, or why
it cannot be parsed), the first effect importing it has, and what a walk asks the judge about other
files (``Judge``). Below both the judge (mulint.reading.import_judge) and the walk
(mulint.reading.import_walk): the judge starts walks, a walk asks the judge.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mulint.reading.local_imports import LocalImports
from mulint.reading.names import Bindings, Ref, module_bindings
from mulint.sources import NotSource, read_source


@dataclass(frozen=True)
class Effect:
    """The first code with effects a file runs at import: `what` at `origin`:`origin_line`.

    `line` is the line of the judged file that leads there, `via` the local files imported on
    the way (the last one is `origin`), empty when the judged file runs it itself.
    """

    line: int
    what: str
    origin: Path
    origin_line: int
    via: tuple[Path, ...] = ()

    def through(self, line: int, imported: Path) -> Effect:
        return Effect(line, self.what, self.origin, self.origin_line, (imported,) + self.via)

    def reason(self, judged: Path) -> str:
        """A noun phrase for "line N runs <reason> at import time"."""
        if not self.via:
            return self.what
        names = [_display(f, judged) for f in self.via]
        chain = "".join(f", which imports {n}" for n in names[1:])
        return f"an import of {names[0]}{chain}, whose line {self.origin_line} runs {self.what}"

    def sentence(self, judged: Path) -> str:
        """``line 3 imports train.py, whose line 40 runs a top-level loop``."""
        if not self.via:
            return f"line {self.line} runs {self.what}"
        return f"line {self.line} imports {self.reason(judged).removeprefix('an import of ')}"


def _display(path: Path, judged: Path) -> str:
    try:
        return str(path.relative_to(judged.resolve().parent))
    except ValueError:
        return str(path)


@dataclass
class ModuleInfo:
    path: Path
    tree: ast.Module | None
    bindings: Bindings
    digest: str
    error: str = ""  # why the file could not be parsed
    error_line: int = 1


def read_digest(path: Path) -> tuple[bytes, str]:
    source = read_source(path)
    return source, hashlib.sha1(source).hexdigest()


_INFOS: dict[tuple[Path, str], ModuleInfo] = {}


def module_info(path: Path, source: bytes | None = None, tree: ast.Module | None = None) -> ModuleInfo:
    path = path.resolve()
    if source is None:
        try:
            source, digest = read_digest(path)
        except OSError as exc:
            return ModuleInfo(path, None, Bindings(path), "", f"a file mulint cannot read ({exc.strerror})")
        except NotSource as exc:
            return ModuleInfo(path, None, Bindings(path), "", f"a file mulint does not read ({exc.message})")
    else:
        digest = hashlib.sha1(source).hexdigest()
    key = (path, digest)
    if key not in _INFOS:
        _INFOS[key] = _parse_info(path, source, digest, tree)
    return _INFOS[key]


def _parse_info(path: Path, source: bytes, digest: str, tree: ast.Module | None) -> ModuleInfo:
    if tree is None:
        try:
            tree = ast.parse(source, filename=str(path))
        except SyntaxError as exc:
            return ModuleInfo(path, None, Bindings(path), digest, "code mulint cannot parse", exc.lineno or 1)
        except (ValueError, RecursionError, MemoryError):
            return ModuleInfo(path, None, Bindings(path), digest, "code mulint cannot parse")
    return ModuleInfo(path, tree, module_bindings(tree, path), digest)


class Judge(Protocol):
    """The lookups across files a walk makes (mulint.reading.import_judge.ImportJudge)."""

    imports: LocalImports
    memo: dict[str, dict]

    def info(self, path: Path) -> ModuleInfo: ...

    def effect_of(self, path: Path) -> Effect | None: ...

    def walk(self, info: ModuleInfo) -> Any: ...  # an ImportWalk over info

    def import_file(self, ref: Ref) -> tuple[Path, bool] | None: ...

    def is_local(self, ref: Ref) -> bool: ...

    def local_class(self, ref: Ref, attrs: list[str], depth: int = 0) -> tuple[ModuleInfo, ast.ClassDef] | None: ...

    def local_definition(
        self, ref: Ref, attrs: list[str], kinds: tuple[str, ...] = ..., depth: int = 0
    ) -> tuple[ModuleInfo, ast.AST] | None: ...
