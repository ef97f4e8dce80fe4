"""Static look at a Python file, without importing it: is it safe to import, and what models does it define.

A file is import-safe when its top level holds only imports, definitions, constant assignments,
docstrings and an ``if __name__ == "__main__":`` block, so importing it cannot start training.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from mulint.errors import MulintError

# Base classes that make a class an nn.Module, as written in source.
_MODULE_BASES = {"Module", "nn.Module", "torch.nn.Module", "PreTrainedModel"}
_FACTORY_WORDS = ("model", "net", "network")
_OPTIMIZER_FACTORIES = {"configure_optimizers", "make_optimizer", "build_optimizer", "create_optimizer"}


@dataclass
class FileSummary:
    path: Path
    tree: ast.Module
    unsafe_line: int | None  # first top-level statement that runs code at import time
    unsafe_reason: str = ""
    module_classes: list[str] = field(default_factory=list)
    top_level_models: list[str] = field(default_factory=list)  # classes/factories to analyse

    @property
    def import_safe(self) -> bool:
        return self.unsafe_line is None


def parse_file(path: Path) -> ast.Module:
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise MulintError(f"cannot read {path}: {exc.strerror}", step="target") from exc
    try:
        return ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise MulintError(
            f"syntax error at {path}:{exc.lineno}:{exc.offset or 1}: {exc.msg}",
            step="parse",
            hint="fix the syntax error; mulint reads the file before anything else",
        ) from exc


def summarize(path: Path) -> FileSummary:
    tree = parse_file(path)
    line, reason = _first_unsafe_statement(tree.body)
    summary = FileSummary(path=path, tree=tree, unsafe_line=line, unsafe_reason=reason)
    summary.module_classes = _module_classes(tree)
    summary.top_level_models = _top_level_models(tree, summary.module_classes)
    return summary


def _is_constant_expr(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Name, ast.Attribute)):
        return True  # a reference, e.g. torch.float32; evaluating it runs nothing of note
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_constant_expr(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is None or _is_constant_expr(k) for k in node.keys) and all(
            _is_constant_expr(v) for v in node.values
        )
    if isinstance(node, ast.UnaryOp):
        return _is_constant_expr(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_constant_expr(node.left) and _is_constant_expr(node.right)
    return False


def _is_main_guard(node: ast.If) -> bool:
    test = node.test
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _is_type_checking_guard(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _first_unsafe_statement(body: list[ast.stmt]) -> tuple[int | None, str]:
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                             ast.ClassDef, ast.Pass)):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring
        if isinstance(stmt, ast.Assign) and _is_constant_expr(stmt.value):
            continue
        if isinstance(stmt, ast.AnnAssign) and (stmt.value is None or _is_constant_expr(stmt.value)):
            continue
        if isinstance(stmt, ast.If) and (_is_main_guard(stmt) or _is_type_checking_guard(stmt)):
            continue
        if isinstance(stmt, ast.Try):
            # `try: import x except ImportError: x = None` is an import, not a computation.
            inner = stmt.body + [s for h in stmt.handlers for s in h.body] + stmt.orelse + stmt.finalbody
            line, reason = _first_unsafe_statement(inner)
            if line is None:
                continue
            return line, reason
        return stmt.lineno, _describe(stmt)
    return None, ""


def _describe(stmt: ast.stmt) -> str:
    if isinstance(stmt, (ast.For, ast.While, ast.AsyncFor)):
        return "a top-level loop"
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        return "an assignment that calls code"
    if isinstance(stmt, ast.Expr):
        return "a top-level call"
    return f"a top-level {type(stmt).__name__.lower()} statement"


def _base_name(base: ast.expr) -> str:
    if isinstance(base, ast.Name):
        return base.id
    if isinstance(base, ast.Attribute):
        return f"{_base_name(base.value)}.{base.attr}"
    return ""


def _module_classes(tree: ast.Module) -> list[str]:
    """Classes that subclass nn.Module, directly or through another class of the file."""
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    found: list[str] = []
    changed = True
    while changed:
        changed = False
        for name, node in classes.items():
            if name in found:
                continue
            bases = {_base_name(b) for b in node.bases}
            if bases & _MODULE_BASES or any(b.endswith("PreTrainedModel") for b in bases) or bases & set(found):
                found.append(name)
                changed = True
    return [n.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name in found]


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
    return names


def _top_level_models(tree: ast.Module, module_classes: list[str]) -> list[str]:
    """Model classes no other model class of the file builds, and model factories."""
    class_nodes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in module_classes}
    used: set[str] = set()
    for name, node in class_nodes.items():
        used |= (_called_names(node) & set(class_nodes)) - {name}
        used |= {_base_name(b) for b in node.bases} & set(class_nodes)  # abstract bases
    factories = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
            continue
        if node.name in _OPTIMIZER_FACTORIES or node.name == "example_inputs":
            continue
        returns = _base_name(node.returns) if node.returns is not None else ""
        named_like_model = any(w in node.name.lower() for w in _FACTORY_WORDS)
        if returns.split(".")[-1] in set(class_nodes) | {"Module"} or (named_like_model and _builds_module(node, class_nodes)):
            factories.append(node.name)
            used |= _called_names(node) & set(class_nodes)
    classes = [n for n in class_nodes if n not in used]
    return factories + classes


def _builds_module(func: ast.FunctionDef, class_nodes: dict) -> bool:
    called = _called_names(func)
    return bool(called & set(class_nodes)) or any(c.endswith(("Model", "ForCausalLM", "LMHeadModel")) for c in called)
