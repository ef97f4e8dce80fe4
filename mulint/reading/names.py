"""What a name at the top level of a module refers to, read from the source alone.

A name is bound by an import (``import torch.nn as nn`` binds ``nn`` to ``torch.nn``), by a
definition of the file (function or class), or by an assignment (a variable). Import-time
analysis needs this to tell ``torch.manual_seed(0)`` (an allow-listed call) from ``seed(0)``
where ``seed`` is a function of the file (whose body would run).
"""

from __future__ import annotations

import ast
import builtins
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

BUILTIN_NAMES = frozenset(dir(builtins))

# `try` with `except*` is a node of its own from Python 3.11 (ast.TryStar, the same fields as ast.Try).
_TRY_NODES: tuple[type[ast.stmt], ...]
if sys.version_info >= (3, 11):
    _TRY_NODES = (ast.Try, ast.TryStar)
else:
    _TRY_NODES = (ast.Try,)


def is_try(node: ast.AST) -> TypeGuard[ast.Try]:
    """A `try` statement, with `except` or `except*` clauses."""
    return isinstance(node, _TRY_NODES)


@dataclass(frozen=True)
class Ref:
    """One binding of a name.

    kind: "import" (``module``/``attr`` say what was imported, ``level`` the dots of a relative
    import), "function", "class", "variable" (``node`` is the assigned value, None when unknown),
    "builtin" or "unknown".
    """

    kind: str
    origin: Path | None = None  # the file holding the binding
    node: ast.AST | None = None
    module: str = ""
    attr: str = ""
    level: int = 0

    @property
    def qualname(self) -> str:
        """The dotted name an import binds (``torch.nn.functional``), for the allow-list."""
        if self.kind == "builtin":
            return self.attr
        if self.kind != "import":
            return ""
        dots = "." * self.level
        return f"{dots}{self.module}.{self.attr}" if self.attr and self.module else f"{dots}{self.module or self.attr}"


UNKNOWN = Ref("unknown")


@dataclass
class Bindings:
    """The names a module binds at import time (its top level, conditional blocks included)."""

    path: Path | None
    names: dict[str, list[Ref]] = field(default_factory=dict)
    star_imports: list[ast.ImportFrom] = field(default_factory=list)
    future_annotations: bool = False

    def add(self, name: str, ref: Ref) -> None:
        self.names.setdefault(name, []).append(ref)

    def lookup(self, name: str) -> Ref | None:
        """The binding of `name`, or None when the module does not bind it.

        A name bound twice in different ways (``try: import x`` / ``except: x = None``) is
        "unknown" unless every binding is the same import: calling it is then not proven pure.
        """
        refs = self.names.get(name)
        if not refs:
            return None
        first = refs[0]
        if all(_same(r, first) for r in refs[1:]):
            return first
        for kind in ("function", "class"):
            if any(r.kind == kind for r in refs):
                return next(r for r in refs if r.kind == kind)
        return Ref("unknown", origin=self.path)


def _same(a: Ref, b: Ref) -> bool:
    """The same binding twice: one import repeated, or one value assigned again."""
    if a.kind == "import":
        return (b.kind, b.module, b.attr, b.level) == ("import", a.module, a.attr, a.level)
    return a == b


def module_bindings(tree: ast.Module, path: Path | None) -> Bindings:
    bindings = Bindings(path)
    bindings.future_annotations = any(
        isinstance(s, ast.ImportFrom) and s.module == "__future__" and any(a.name == "annotations" for a in s.names)
        for s in tree.body
    )
    _bind_block(tree.body, bindings, path)
    return bindings


def scope_bindings(body: list[ast.stmt], path: Path | None) -> Bindings:
    """Names a class body binds (its methods and attributes), looked up before the module's."""
    bindings = Bindings(path)
    _bind_block(body, bindings, path)
    return bindings


def _bind_block(body: list[ast.stmt], bindings: Bindings, path: Path | None) -> None:
    for stmt in body:
        _bind_stmt(stmt, bindings, path)


def _bind_stmt(stmt: ast.stmt, bindings: Bindings, path: Path | None) -> None:
    if isinstance(stmt, ast.Import):
        for alias in stmt.names:
            if alias.asname:
                bindings.add(alias.asname, Ref("import", path, stmt, module=alias.name))
            else:
                top = alias.name.split(".")[0]
                bindings.add(top, Ref("import", path, stmt, module=top))
    elif isinstance(stmt, ast.ImportFrom):
        for alias in stmt.names:
            if alias.name == "*":
                bindings.star_imports.append(stmt)
            else:
                bindings.add(
                    alias.asname or alias.name,
                    Ref("import", path, stmt, module=stmt.module or "", attr=alias.name, level=stmt.level),
                )
    elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        bindings.add(stmt.name, Ref("function", path, stmt))
    elif isinstance(stmt, ast.ClassDef):
        bindings.add(stmt.name, Ref("class", path, stmt))
    elif isinstance(stmt, ast.Assign):
        for target in stmt.targets:
            _bind_target(target, stmt.value, bindings, path)
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        _bind_target(stmt.target, stmt.value, bindings, path)  # (`x += ...` keeps what x is)
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        _bind_target(stmt.target, None, bindings, path)
        _bind_block(stmt.body + stmt.orelse, bindings, path)
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        for item in stmt.items:
            if item.optional_vars is not None:
                _bind_target(item.optional_vars, None, bindings, path)
        _bind_block(stmt.body, bindings, path)
    elif isinstance(stmt, (ast.If, ast.While)):
        _bind_block(stmt.body + stmt.orelse, bindings, path)
    elif is_try(stmt):
        for handler in stmt.handlers:
            if handler.name:
                bindings.add(handler.name, Ref("variable", path, None))
            _bind_block(handler.body, bindings, path)
        _bind_block(stmt.body + stmt.orelse + stmt.finalbody, bindings, path)
    elif isinstance(stmt, ast.Match):
        for case in stmt.cases:
            _bind_block(case.body, bindings, path)
    for node in ast.walk(stmt) if isinstance(stmt, (ast.Expr, ast.Assign, ast.If, ast.While)) else ():
        if isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            bindings.add(node.target.id, Ref("variable", path, None))


def _bind_target(target: ast.expr, value: ast.expr | None, bindings: Bindings, path: Path | None) -> None:
    if isinstance(target, ast.Name):
        bindings.add(target.id, Ref("variable", path, value))
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            _bind_target(elt, None, bindings, path)
    elif isinstance(target, ast.Starred):
        _bind_target(target.value, None, bindings, path)
