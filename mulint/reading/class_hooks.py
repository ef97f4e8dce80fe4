"""What defining or instantiating a class of the checked code runs: hooks Python calls implicitly.

Subclassing runs the base's ``__init_subclass__`` and metaclass; an enum runs its ``__new__`` or
``__init__`` for each member; instantiating runs ``__init__``, except for a dataclass or NamedTuple
whose generated constructor only stores its arguments (and calls its pure default factories).
"""

from __future__ import annotations

import ast

from mulint.reading.module_info import Judge, ModuleInfo


def _walk(judge: Judge, info: ModuleInfo):
    return judge.walk(info)


def methods(s: ast.ClassDef) -> set[str]:
    return {n.name for n in s.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def has_members(s: ast.ClassDef) -> bool:
    return any(isinstance(n, (ast.Assign, ast.AnnAssign)) for n in s.body)


_ENUM_HOOKS = ("__new__", "__init__", "_generate_next_value_")


def enum_member_hook(walk, s: ast.ClassDef) -> str | None:
    """The method of the checked code an enum with members runs for each of them, if any."""
    if not has_members(s) or not _is_enum(walk, s):
        return None
    for node in [s] + [found[1] for found in map(walk.local_class, s.bases) if found]:
        hook = next((m for m in _ENUM_HOOKS if m in methods(node)), None)
        if hook:
            return hook
    return None


def _is_enum(walk, s: ast.ClassDef, depth: int = 0) -> bool:
    for base in s.bases:
        resolved = walk.resolve(base)
        if resolved and walk.qualname(*resolved).startswith("enum."):
            return True
        found = walk.local_class(base)
        if found and depth < 6 and _is_enum(_walk(walk.judge, found[0]), found[1], depth + 1):
            return True
    return False


def defines(judge: Judge, info: ModuleInfo, node: ast.ClassDef, method: str, depth: int = 0) -> bool:
    """Whether the class or one of its bases in the user's tree defines `method`."""
    if method in methods(node):
        return True
    if depth > 6:
        return False
    walk = _walk(judge, info)
    for base in node.bases:
        found = walk.local_class(base)
        if found and defines(judge, found[0], found[1], method, depth + 1):
            return True
    return False


def subclass_hook(judge: Judge, info: ModuleInfo, node: ast.ClassDef, depth: int = 0) -> str | None:
    """What subclassing `node` runs: its (or a base's) __init_subclass__ or metaclass, from the user's tree."""
    if "__init_subclass__" in methods(node):
        return f"the __init_subclass__ of {node.name}"
    walk = _walk(judge, info)
    for keyword in node.keywords:
        if keyword.arg == "metaclass" and walk.local_class(keyword.value):
            return f"the metaclass of {node.name}"
    if depth > 6:
        return None
    for base in node.bases:
        found = walk.local_class(base)
        if found:
            hook = subclass_hook(judge, found[0], found[1], depth + 1)
            if hook:
                return hook
    return None


def pure_to_instantiate(judge: Judge, info: ModuleInfo, node: ast.ClassDef, depth: int = 0) -> bool:
    """A dataclass or NamedTuple of the user's tree whose construction runs none of its code.

    Its generated ``__init__`` only stores the arguments and calls the default factories, so
    those must be pure too (``list``, a lambda of pure code, another such class).
    """
    if depth > 6 or any(k.arg == "metaclass" for k in node.keywords) or _runs_own_code(node):
        return False
    walk = _walk(judge, info)
    decorators = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
    quals = [walk.qualname(*r) for r in map(walk.resolve, decorators) if r]
    base_quals = [walk.qualname(*r) for r in map(walk.resolve, node.bases) if r]
    if base_quals and base_quals == ["typing.NamedTuple"] and len(node.bases) == 1:
        return not node.decorator_list
    if quals != ["dataclasses.dataclass"]:
        return False
    for base in node.bases:
        found = walk.local_class(base)
        if found is None or not pure_to_instantiate(judge, found[0], found[1], depth + 1):
            return False
    return all(_pure_factory(walk, judge, f, depth) for f in _default_factories(node))


def _runs_own_code(node: ast.ClassDef) -> bool:
    """Whether using an instance may run the class's own code: a dunder (``__post_init__``, ``__hash__``,
    ``__set_name__``...) Python calls implicitly, or a property read like an attribute."""
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if stmt.name.startswith("__") and stmt.name.endswith("__") or stmt.decorator_list:
                return True
    return False


def _default_factories(node: ast.ClassDef) -> list[ast.expr]:
    factories = []
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.value, ast.Call):
            factories += [k.value for k in stmt.value.keywords if k.arg == "default_factory"]
    return factories


def _pure_factory(walk, judge: Judge, factory: ast.expr, depth: int) -> bool:
    if isinstance(factory, ast.Lambda):
        return walk.is_pure(factory.body)
    if walk._callee_problem(factory, None) is None:
        return True
    found = walk.local_class(factory)
    return found is not None and pure_to_instantiate(judge, found[0], found[1], depth + 1)
