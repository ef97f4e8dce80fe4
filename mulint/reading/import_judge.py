"""Judging files of the user's tree: does importing one run code with effects? Cached per file.

A file's verdict depends on the local files it imports, so it is cached with the digests of every
file it read, and recomputed when one of them changes. Import cycles end where Python ends them: a
module being imported is not run again. A verdict that leaned on such a half-imported module is not
cached, since judged on its own that file would run the whole cycle.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

from mulint.reading.local_imports import LocalImports, search_roots
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
_VERDICTS: dict[tuple[Path, tuple[Path, ...]], tuple[Effect | None, dict[Path, tuple[int, int]]]] = {}


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


class ImportJudge:
    """Verdicts for the files one target's import reaches, with that target's search roots."""

    def __init__(self, target: Path):
        self.roots = search_roots(target)
        self.imports = LocalImports(self.roots)
        self._in_progress: list[Path] = []
        self._hits: set[Path] = set()  # half-imported modules the current verdict leaned on
        self._deps: dict[Path, tuple[int, int]] = {}
        self._infos: dict[Path, ModuleInfo] = {}
        self.memo: dict[str, dict] = {}  # lookups other steps make during one summary
        self._walked: dict[Path, tuple[Effect | None, dict[Path, tuple[int, int]]]] = {}

    def info(self, path: Path) -> ModuleInfo:
        path = path.resolve()
        if path not in self._infos:
            self._infos[path] = module_info(path)
        self._deps[path] = _stamp(path)
        return self._infos[path]

    def effect_of(self, path: Path) -> Effect | None:
        """The first effect importing `path` has, or None."""
        path = path.resolve()
        if path in self._in_progress:
            self._hits.add(path)
            return None  # Python does not run a module that is being imported again
        if path in self._walked:
            # Within one verdict a file is walked once: every file an import reaches is walked
            # before the verdict is given, so a result that leaned on a half-imported module
            # cannot hide that module's effects from this verdict.
            effect, deps = self._walked[path]
            self._deps.update(deps)
            return effect
        cached = _VERDICTS.get((path, self.roots))
        if cached is not None and _still_valid(cached[1]) and not _reaches(cached[0], self._in_progress):
            self._deps.update(cached[1])
            return cached[0]
        outer_hits, outer_deps = self._hits, self._deps
        self._hits, self._deps = set(), {}
        self._in_progress.append(path)
        try:
            effect = self._judge(path)
        finally:
            self._in_progress.pop()
            hits, deps = self._hits - {path}, self._deps
            self._hits, self._deps = outer_hits | hits, {**outer_deps, **deps}
        self._walked[path] = (effect, deps)
        if not hits:
            _VERDICTS[(path, self.roots)] = (effect, deps)
        return effect

    def _judge(self, path: Path) -> Effect | None:
        from mulint.reading.import_walk import ImportWalk

        info = self.info(path)
        if info.tree is None:
            return Effect(info.error_line, info.error, path, info.error_line)
        return ImportWalk(self, info).first_effect()

    # Lookups across files, for the walk and for model discovery.

    def import_file(self, ref: Ref) -> tuple[Path, bool] | None:
        """(local file, whether the binding is that module itself) for an import binding; None when installed."""
        from mulint.reading.local_imports import CompiledModule

        if ref.kind != "import" or ref.origin is None:
            return None
        try:
            if ref.attr:
                sub, folder, found = self.imports.module(ref.origin, ref.level, f"{ref.module}.{ref.attr}".strip("."))
                if found and sub and (sub[-1].stem == ref.attr or sub[-1].parent.name == ref.attr):
                    return sub[-1], True
                file = self.imports.module_file(ref.origin, ref.level, ref.module)
                return (file, False) if file is not None else None
            run, _, found = self.imports.absolute(ref.module)
            return (run[-1], True) if found and run else None
        except CompiledModule:
            return None

    def is_local(self, ref: Ref) -> bool:
        from mulint.reading.local_imports import CompiledModule

        if ref.kind != "import":
            return ref.kind in ("function", "class", "variable")
        if ref.level:
            return True
        try:
            run, folder, _ = self.imports.absolute(ref.module)
        except CompiledModule:
            return True
        return bool(run) or folder is not None

    def local_class(self, ref: Ref, attrs: list[str], depth: int = 0) -> tuple[ModuleInfo, ast.ClassDef] | None:
        """The class definition a reference names, when it is a class of the user's tree."""
        found = self.local_definition(ref, attrs, ("class",), depth)
        if found is None:
            return None
        info, node = found
        return (info, node) if isinstance(node, ast.ClassDef) else None

    def local_definition(
        self, ref: Ref, attrs: list[str], kinds: tuple[str, ...] = ("class", "function"), depth: int = 0
    ) -> tuple[ModuleInfo, ast.AST] | None:
        """The class or function definition a reference names, when it is one of the user's tree."""
        if depth > 6:
            return None
        if ref.kind in kinds and not attrs and ref.origin is not None and ref.node is not None:
            return self.info(ref.origin), ref.node
        if ref.kind != "import":
            return None
        found = self.import_file(ref)
        if found is None:
            return None
        file, is_module = found
        names = attrs if is_module else [ref.attr] + attrs
        if len(names) != 1:
            return None
        info = self.info(file)
        inner = info.bindings.lookup(names[0])
        return self.local_definition(inner, [], kinds, depth + 1) if inner is not None else None


def _reaches(effect: Effect | None, in_progress: list[Path]) -> bool:
    """Whether a cached effect lies in a module being imported now: Python would not run it again."""
    return effect is not None and bool({effect.origin, *effect.via} & set(in_progress))


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1)
    return (stat.st_mtime_ns, stat.st_size)


def _still_valid(deps: dict[Path, tuple[int, int]]) -> bool:
    return all(_stamp(path) == stamp for path, stamp in deps.items())
