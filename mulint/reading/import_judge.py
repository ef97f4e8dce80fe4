"""Judging files of the user's tree: does importing one run code with effects? Cached per file.

A file's verdict depends on the local files it imports, so it is cached with the digests of every
file it read, and recomputed when one of them changes. Import cycles end where Python ends them: a
module being imported is not run again. A verdict that leaned on such a half-imported module is not
cached, since judged on its own that file would run the whole cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mulint.reading.import_walk import ImportWalk
from mulint.reading.local_imports import CompiledModule, LocalImports, search_roots
from mulint.reading.module_info import Effect, ModuleInfo, module_info
from mulint.reading.names import Ref

_VERDICTS: dict[tuple[Path, tuple[Path, ...]], tuple[Effect | None, dict[Path, tuple[int, int]]]] = {}


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
        info = self.info(path)
        if info.tree is None:
            return Effect(info.error_line, info.error, path, info.error_line)
        return self.walk(info).first_effect()

    def walk(self, info: ModuleInfo) -> ImportWalk:
        """A walk over ``info`` that asks this judge about other files."""
        return ImportWalk(self, info)

    # Lookups across files, for the walk and for model discovery.

    def import_file(self, ref: Ref) -> tuple[Path, bool] | None:
        """(local file, whether the binding is that module itself) for an import binding; None when installed."""
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
