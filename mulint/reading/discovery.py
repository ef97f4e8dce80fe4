"""Which models a file holds: nn.Module classes, the factories that build them, and those out of reach.

A model class is one no other model class of the file builds. A factory is a public function named
like one (``make_model``, ``build_*``, ``create_*``, ``get_model``, or with model/net in its name)
that returns a module: its annotation says so, or it returns a call of a module class (of the
file, of a local file, of torch.nn or transformers), possibly through a variable or ``.to()``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping

from mulint.reading.import_judge import ImportJudge
from mulint.reading.import_walk import ImportWalk, is_main_guard
from mulint.reading.module_info import ModuleInfo
from mulint.reading.names import is_try

# Base classes that make a class an nn.Module, as written in source.
_MODULE_BASES = {"Module", "nn.Module", "torch.nn.Module", "PreTrainedModel"}
_NOT_MODULES = {"Parameter", "UninitializedParameter", "UninitializedBuffer", "Buffer"}
_HF_MODEL = re.compile(r"(PreTrainedModel|Model|For[A-Z]\w*)$")
_FACTORY_PREFIXES = ("make_", "build_", "create_")
_FACTORY_WORDS = ("model", "net", "network")
# Words in the names of functions that build something other than the model (an optimizer, data, a loss).
_OTHER_BUILDS = (
    "optim",
    "sched",
    "loss",
    "criterion",
    "data",
    "loader",
    "batch",
    "token",
    "input",
    "metric",
    "lr",
    "param",
    "example",
)
Function = ast.FunctionDef | ast.AsyncFunctionDef  # a def or an async def: factories may be either

_MODULE_METHODS = {"to", "cuda", "cpu", "float", "half", "bfloat16", "double", "train", "eval", "requires_grad_"}
_HF_BUILDERS = {"from_config", "_from_config", "from_pretrained"}


def base_name(base: ast.expr) -> str:
    if isinstance(base, ast.Name):
        return base.id
    if isinstance(base, ast.Attribute):
        return f"{base_name(base.value)}.{base.attr}"
    return ""


class Discovery:
    def __init__(self, judge: ImportJudge, info: ModuleInfo, depth: int = 0):
        self.judge = judge
        self.info = info
        self.walk = ImportWalk(judge, info)
        self.depth = depth
        assert info.tree is not None, "models are discovered in files that parsed"
        self.tree: ast.Module = info.tree

    # Module classes -------------------------------------------------------------------------------

    def module_classes(
        self, classes: list[ast.ClassDef] | None = None, known: set[str] | frozenset[str] = frozenset()
    ) -> list[str]:
        """Classes that subclass nn.Module, directly or through another module class (or one of `known`)."""
        if classes is None:
            memo = self.judge.memo.setdefault("module_classes", {})  # one summary's worth: files may change
            if self.info.path not in memo:
                memo[self.info.path] = self.module_classes([n for n in self.tree.body if isinstance(n, ast.ClassDef)])
            return list(memo[self.info.path])
        found: set[str] = set(known)
        changed = True
        while changed:
            changed = False
            for node in classes:
                if node.name not in found and any(self._is_module_base(b, found) for b in node.bases):
                    found.add(node.name)
                    changed = True
        return [n.name for n in classes if n.name in found]

    def _is_module_base(self, base: ast.expr, found: set[str]) -> bool:
        name = base_name(base)
        if name in _MODULE_BASES or name.endswith("PreTrainedModel") or name in found:
            return True
        return self.is_module_class(base)

    def is_module_class(self, expr: ast.expr) -> bool:
        """Whether `expr` names an nn.Module class: torch.nn, transformers, or a local file's."""
        resolved = self.walk.resolve(expr)
        if resolved is None:
            return False
        qualname = self.walk.qualname(*resolved)
        last = qualname.rsplit(".", 1)[-1]
        if qualname.startswith("torch.nn.") and last[:1].isupper() and last not in _NOT_MODULES:
            return True
        if qualname.startswith("transformers.") and (_HF_MODEL.search(last) or last.startswith("AutoModel")):
            return True
        ref, attrs = resolved
        if ref.kind != "import" or self.depth > 4 or not self.judge.is_local(ref):
            return False
        found = self.judge.local_class(ref, attrs)
        if found is None or found[0].tree is None:
            return False
        info, node = found
        return node.name in Discovery(self.judge, info, self.depth + 1).module_classes()

    def is_local_factory(self, expr: ast.expr) -> bool:
        """Whether `expr` names a model factory of another file of the user's tree (`return
        gpt.make_model(width)`): a function that file's own discovery calls a factory."""
        resolved = self.walk.resolve(expr)
        if resolved is None or self.depth > 4:
            return False
        ref, attrs = resolved
        if ref.kind != "import" or not self.judge.is_local(ref):
            return False
        found = self.judge.local_definition(ref, attrs, ("function",))
        if found is None:
            return False
        info, node = found
        if info.tree is None or not isinstance(node, ast.FunctionDef):
            return False
        other = Discovery(self.judge, info, self.depth + 1)
        return bool(other.factories([node], set(other.module_classes())))

    # Top-level models -----------------------------------------------------------------------------

    def top_level_models(self, module_classes: list[str]) -> list[str]:
        """Factories, then model classes no model class or factory of the file builds."""
        class_nodes = {n.name: n for n in self.tree.body if isinstance(n, ast.ClassDef) and n.name in module_classes}
        functions = {n.name: n for n in self.tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        factories = self.factories(list(functions.values()), set(class_nodes))
        models = set(class_nodes) | set(factories)
        used: set[str] = set()
        for name, node in class_nodes.items():
            used |= (_built_names(node, functions) & models) - {name}
            used |= {base_name(b) for b in node.bases} & set(class_nodes)  # abstract bases
        for name in factories:
            used |= (_built_names(functions[name], functions) & models) - {name}
        classes = [c for c in class_nodes if c not in used]
        called = _called_outside(self.tree, set(classes))
        ranked = sorted(classes, key=lambda c: _model_rank(class_nodes[c], class_nodes, functions, c in called))
        return [f for f in factories if f not in used] + ranked

    def factories(self, functions: list[Function], module_classes: set[str]) -> list[str]:
        candidates = [f for f in functions if _named_like_factory(f.name)]
        found: list[str] = []
        changed = True
        while changed:  # a factory may return another factory's model
            changed = False
            for func in candidates:
                if func.name not in found and self._returns_module(func, module_classes, set(found)):
                    found.append(func.name)
                    changed = True
        return [f.name for f in candidates if f.name in found]

    def _returns_module(self, func: Function, classes: set[str], factories: set[str], depth: int = 0) -> bool:
        classes = classes | set(self.module_classes([n for n in ast.walk(func) if isinstance(n, ast.ClassDef)]))
        if func.returns is not None and self._is_module_expr(func.returns, classes, factories, {}, annotation=True):
            return True
        assigned: dict[str, ast.expr] = {}
        for node in _own_nodes(func):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                assigned[node.targets[0].id] = node.value
        returns = [n.value for n in _own_nodes(func) if isinstance(n, ast.Return) and n.value is not None]
        return any(self._is_module_expr(r, classes, factories, assigned, depth=depth) for r in returns)

    def _is_module_expr(
        self,
        e: ast.expr,
        classes: set[str],
        factories: set[str],
        assigned: dict,
        annotation: bool = False,
        depth: int = 0,
    ) -> bool:
        if depth > 6:
            return False
        if annotation:
            if isinstance(e, ast.Constant) and isinstance(e.value, str):
                return e.value in classes or e.value.rsplit(".", 1)[-1] == "Module"
            return base_name(e).split(".")[-1] in classes | {"Module"} or self.is_module_class(e)
        if isinstance(e, ast.Name) and e.id in assigned:
            return self._is_module_expr(assigned.pop(e.id), classes, factories, assigned, depth=depth + 1)
        if not isinstance(e, ast.Call):
            return False
        func = e.func
        if isinstance(func, ast.Attribute) and func.attr in _MODULE_METHODS:
            return self._is_module_expr(func.value, classes, factories, assigned, depth=depth + 1)
        if isinstance(func, ast.Attribute) and func.attr in _HF_BUILDERS:
            return self.is_module_class(func.value)
        if isinstance(func, ast.Name) and (func.id in classes or func.id in factories):
            return True
        if isinstance(func, ast.Name) and depth < 3:  # a private builder: `return _build(config)`
            builder = next((n for n in self.tree.body if isinstance(n, ast.FunctionDef) and n.name == func.id), None)
            if builder is not None and self._returns_module(builder, classes, factories, depth + 1):
                return True
        return self.is_module_class(func) or self.is_local_factory(func)

    # Models mulint cannot reach -------------------------------------------------------------------

    def unanalysable(self, module_classes: list[str], top_level: list[str]) -> list[tuple[str, int, str, str]]:
        """(name, line, reason, hint) for model classes and factories defined out of the import's reach."""
        reachable = (
            set(module_classes)
            | set(top_level)
            | {n.name for n in self.tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        )
        found: list[tuple[str, int, str, str]] = []
        for stmt in self.tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if stmt.name in top_level:
                    continue  # its nested classes are analysed through it
                where = f"inside function {stmt.name}"
                hint = f"define it at the top level of the file, or name a factory that builds it (file.py:{stmt.name})"
                found += self._models_in(stmt.body, where, hint, set(module_classes), reachable)
            elif isinstance(stmt, (ast.If, ast.With, ast.For, ast.While, ast.Match)) or is_try(stmt):
                where, hint = _block_words(stmt)
                found += self._models_in(_inner_statements(stmt), where, hint, set(module_classes), reachable)
        return found

    def _models_in(self, body: list[ast.stmt], where: str, hint: str, known: set[str], reachable: set[str]) -> list:
        nodes = [n for s in body for n in ast.walk(s)]
        classes = [n for n in nodes if isinstance(n, ast.ClassDef)]
        module_classes = set(self.module_classes(classes, known)) | known
        functions = [n for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        factories = set(self.factories(functions, module_classes))
        return [
            (n.name, n.lineno, f"defined {where}", hint)
            for n in classes + functions
            if (n.name in factories or (isinstance(n, ast.ClassDef) and n.name in module_classes))
            and n.name not in reachable
        ]


def _model_rank(node: ast.ClassDef, classes: dict[str, ast.ClassDef], functions: dict, called: bool) -> tuple:
    """Sort key, most model-like first, among classes nothing of the file builds: one that takes a
    config, then the one at the top of the largest module tree (a model wrapper builds its blocks; an
    ALiBi or rotary helper builds nothing), then one that takes the width, then one no helper function
    of the file builds; file order last (sorted is stable)."""
    from mulint.reading.width_names import CONFIG_PARAM_NAMES, WIDTH_NAMES

    init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    args = [a for a in (init.args.args[1:] + init.args.kwonlyargs if init else [])]
    takes_config = any(
        a.arg in CONFIG_PARAM_NAMES or "config" in ast.unparse(a.annotation or ast.Constant("")).lower() for a in args
    )
    takes_width = any(a.arg in WIDTH_NAMES for a in args)
    return (not takes_config, -_tree_size(node, classes, functions), not takes_width, called)


def _tree_size(node: ast.ClassDef, classes: dict[str, ast.ClassDef], functions: dict) -> int:
    """How many distinct module-like classes (capitalised calls: nn.Linear, Block) a class builds,
    through the file's own classes too."""
    built: set[str] = set()
    todo, seen = [node], set()
    while todo:
        current = todo.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        names = {n for n in _called_names(current) | _passed_names(current) if n[:1].isupper()}
        built |= names
        todo += [classes[n] for n in names if n in classes]
    return len(built - {node.name})


def _called_outside(tree: ast.Module, names: set[str]) -> set[str]:
    """Those of `names` a helper function or another class of the file builds (`get_alibi()`)."""
    found = set()
    for top in tree.body:
        if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue  # a script part building the model (`if __name__ == "__main__":`) says it is one
        for sub in ast.walk(top):
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in names:
                if not (isinstance(top, ast.ClassDef) and top.name == sub.func.id):
                    found.add(sub.func.id)
    return found


def _block_words(stmt: ast.stmt) -> tuple[str, str]:
    if isinstance(stmt, ast.If) and is_main_guard(stmt.test):
        return (
            'inside `if __name__ == "__main__":`',
            'move it above the `if __name__ == "__main__":` block so importing the file defines it',
        )
    kind = (
        "a try block"
        if is_try(stmt)
        else {
            ast.If: "an if block",
            ast.With: "a with block",
            ast.For: "a loop",
            ast.While: "a loop",
            ast.Match: "a match block",
        }[type(stmt)]
    )
    return (
        f"inside {kind} (line {stmt.lineno})",
        "define it at the top level of the file so mulint finds it, or name it (file.py:NAME) to import it",
    )


def _inner_statements(stmt: ast.stmt) -> list[ast.stmt]:
    body = list(getattr(stmt, "body", [])) + list(getattr(stmt, "orelse", [])) + list(getattr(stmt, "finalbody", []))
    for handler in getattr(stmt, "handlers", []):
        body += handler.body
    for case in getattr(stmt, "cases", []):
        body += case.body
    return body


def _named_like_factory(name: str) -> bool:
    if name.startswith("_") or name == "example_inputs":
        return False
    words = name.lower().split("_")
    if any(w.startswith(_OTHER_BUILDS) for w in words):
        return False
    return name.startswith(_FACTORY_PREFIXES) or name == "get_model" or any(w in name.lower() for w in _FACTORY_WORDS)


def _own_nodes(func: Function):
    """The nodes of a function's body, not those of functions or classes nested in it."""
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                stack.append(child)


def _built_names(node: ast.AST, functions: Mapping[str, ast.AST]) -> set[str]:
    """Names a class or function builds: those it calls, those it passes on to be built (timm's
    `block_fn=Block` default, `partial(Mlp, ...)`), and those the file's helper functions it calls build
    (`make_model` calling `DiT_mup(...)`, which returns `DiT(...)`)."""
    names: set[str] = set()
    todo, seen = [node], set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found = _called_names(current) | _passed_names(current)
        names |= found
        todo.extend(functions[n] for n in found if n in functions)
    return names


def _passed_names(node: ast.AST) -> set[str]:
    """Bare names given as argument defaults or as arguments of a call: classes handed on to be built."""
    values: list[ast.expr] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.arguments):
            values += [*sub.defaults, *(d for d in sub.kw_defaults if d is not None)]
        elif isinstance(sub, ast.Call):
            values += [*sub.args, *(k.value for k in sub.keywords)]
    return {v.id for v in values if isinstance(v, ast.Name)}


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
