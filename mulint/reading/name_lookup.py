"""Name lookup for the import walk: the class scope, comprehension variables, the module, its star imports, builtins."""

from __future__ import annotations

import ast

from mulint.reading.local_imports import CompiledModule
from mulint.reading.module_info import Judge, ModuleInfo
from mulint.reading.names import BUILTIN_NAMES, UNKNOWN, Bindings, Ref


class NameLookup:
    """Mixed into the import walk: what a name or dotted expression of `info` refers to."""

    judge: Judge
    info: ModuleInfo
    scopes: list[Bindings]

    def _lookup(self, name: str) -> Ref:
        for scope in reversed(self.scopes):
            ref = scope.lookup(name)
            if ref is not None:
                return ref
        ref = self.info.bindings.lookup(name)
        if ref is not None:
            return ref
        for star in self.info.bindings.star_imports:
            ref = self._star_lookup(star, name)
            if ref is not None:
                return ref
        return Ref("builtin", attr=name) if name in BUILTIN_NAMES else UNKNOWN

    def _star_lookup(self, star: ast.ImportFrom, name: str) -> Ref | None:
        try:
            file = self.judge.imports.module_file(self.info.path, star.level, star.module or "")
        except CompiledModule:
            return UNKNOWN
        if file is None:
            return None  # an installed package's names: trusted like the rest of it
        return self.judge.info(file).bindings.lookup(name)

    def resolve(self, expr: ast.expr) -> tuple[Ref, list[str]] | None:
        attrs: list[str] = []
        while isinstance(expr, ast.Attribute):
            attrs.insert(0, expr.attr)
            expr = expr.value
        if isinstance(expr, ast.Name):
            return self._lookup(expr.id), attrs
        return None

    @staticmethod
    def qualname(ref: Ref, attrs: list[str]) -> str:
        base = ref.qualname
        return ".".join([base, *attrs]) if base else ""

    def local_class(self, expr: ast.expr) -> tuple[ModuleInfo, ast.ClassDef] | None:
        resolved = self.resolve(expr)
        if resolved is None:
            return None
        ref, attrs = resolved
        if ref.kind == "import" and not self.judge.is_local(ref):
            return None
        return self.judge.local_class(ref, attrs)
