"""The init the training code applies after it builds the model, read from its source (never run).

Many repositories build the model and then initialise it in a separate step: ``model = GPT(cfg);
model.init_weights()``, ``model.apply(model._init_weights)``, ``init_weights(model)``. A check that
only constructs the model would judge PyTorch's default init instead of the one that trains. This
module reads the training code beside the model (the target's file, the ``train*.py`` files in its
folder and the local files they import) and returns the init calls made on a freshly built model of
the target, in the order that code makes them, so they can be applied when mulint builds it.
It also names the init-like methods of a model class that nothing calls (neither its constructor
nor the training code): then the init is judged as constructed, and the report says so.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Words that make a method or function an initialiser: init_weights, _init_weights, reset_parameters,
# initialize_weights, weights_init, init_params. The call is applied only where the training code
# makes it on the model it just built; the name decides only which calls are worth applying.
_INIT_WORDS = {"init", "initialize", "initialise", "initialization", "reset"}
# Methods of nn.Module that return the model itself: `model = GPT(cfg).to(device)` is still the model.
_SAME_MODEL = {"to", "cuda", "cpu", "float", "half", "bfloat16", "double", "train", "eval", "requires_grad_"}
# HF's post_init() runs init_weights(), which applies _init_weights to every module.
_HF_POST_INIT = {"init_weights", "_init_weights", "_initialize_weights"}


def is_init_name(name: str) -> bool:
    """``init_weights``, ``_init_weights``, ``reset_parameters``, ``initialize_weights``, ``weights_init``."""
    tokens = {t.lower() for t in re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", name) if t}
    return bool(tokens & _INIT_WORDS) and name != "__init__"


@dataclass
class InitCall:
    """One init call the training code makes on the model it built."""

    kind: str  # "method": model.NAME(*args); "apply": model.apply(model.NAME); "function": NAME(model, *args);
    #            "apply-function": model.apply(NAME)
    name: str
    path: str  # the file that makes the call
    line: int
    text: str  # the call as written, for the report
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    readable: bool = True  # False when an argument is not a literal mulint can read without running code
    after: str = ""  # a call before it that changes the model in a way mulint does not repeat (set_base_shapes)
    defined_in: str = ""  # for functions: the file that defines it ("" when it is the call's own file)

    @property
    def where(self) -> str:
        return f"{Path(self.path).name}:{self.line}"


@dataclass
class TrainingInit:
    calls: list[InitCall] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # the training files read


def training_files(target_file: Path) -> list[Path]:
    """The target's file, the ``train*.py`` files beside it (and beside its outermost package, as in
    ``train.py`` + ``models/gpt.py``), and the local modules those import."""
    from mulint.reading.local_imports import package_root

    files = [target_file.resolve()]
    if any(part.endswith("-packages") for part in files[0].parts):
        return files  # an installed library's model: no training script of the user's lives there
    folders = list(dict.fromkeys([target_file.resolve().parent, package_root(target_file)]))
    for folder in folders:
        scripts = sorted(p for p in folder.glob("train*.py") if p.is_file())
        files += scripts
        for script in scripts:
            tree = _parse(script)
            for name in _imported_modules(tree) if tree is not None else []:
                parts = name.split(".")
                local = folder.joinpath(*parts[:-1], f"{parts[-1]}.py")
                if local.is_file():
                    files.append(local.resolve())
    return list(dict.fromkeys(files))


def find_training_init(target_file: Path, target_name: str) -> TrainingInit:
    """The init calls the training code makes right after building `target_name`, first script first."""
    found = TrainingInit()
    for path in training_files(target_file):
        tree = _parse(path)
        if tree is None:
            continue
        found.files.append(str(path))
        defined = _function_sources(tree, path, target_file.resolve())
        names = {target_name} | {
            a.asname
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom)
            for a in n.names
            if a.name == target_name and a.asname
        }
        for scope in _scopes(tree):
            calls = _calls_in_scope(scope, names, str(path), defined)
            if calls:
                found.calls = calls
                return found  # the first place that builds and initialises the model decides
    return found


def uncalled_init_methods(
    cls_source: str, cls_name: str, called: set[str], bases: Sequence[tuple[str, str]] = ()
) -> list[str]:
    """Init-like methods `cls_name` defines that neither its constructor (directly, through
    ``self.apply(self.X)`` or through other methods it calls) nor the training code (`called`) calls.
    ``bases``: (source, class name) of the classes it inherits from, nearest first: a method it inherits
    (``init_weights`` calling ``self.reset_parameters()``) reaches its own methods too."""
    methods = _methods(cls_source, cls_name)
    if methods is None:
        return []
    reachable = dict(methods)
    for source, name in bases:
        for method_name, node in (_methods(source, name) or {}).items():
            reachable.setdefault(method_name, node)  # the class's own definition wins, as in Python
    reached, todo = set(called), ["__init__", *called]
    while todo:
        found = reachable.get(todo.pop())
        if found is None:
            continue
        for name in _self_uses(found):
            if name == "post_init":
                todo += [n for n in _HF_POST_INIT if n not in reached]
                reached |= _HF_POST_INIT
            if name not in reached:
                reached.add(name)
                todo.append(name)
    return [
        name for name, node in methods.items() if is_init_name(name) and name not in reached and _does_something(node)
    ]


def _does_something(method: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Not a placeholder: a body of more than a docstring, `pass`, `...` or `raise NotImplementedError`
    (`def init_weights(self): pass` changes nothing, called or not)."""
    for statement in method.body:
        if isinstance(statement, ast.Pass) or (
            isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
        ):
            continue
        if isinstance(statement, ast.Raise):
            raised = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
            if isinstance(raised, ast.Name) and raised.id == "NotImplementedError":
                continue
        return True
    return False


def _methods(source: str, cls_name: str) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef] | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    cls = next((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls_name), None)
    if cls is None:
        return None
    return {n.name: n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def methods_called(function_source: str) -> set[str]:
    """Names of the methods a function calls on anything (``model.init_weights()``): what a factory
    does to the model it builds, before handing it over."""
    try:
        tree = ast.parse(textwrap.dedent(function_source))
    except SyntaxError:
        return set()
    return {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}


# Reading the source ---------------------------------------------------------------------------------


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


def _imported_modules(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def _function_sources(tree: ast.Module, path: Path, target_file: Path) -> dict[str, str]:
    """Functions a call in this file can name, with the file that defines them: its own, and those
    imported from the target's module (``from model import init_weights``)."""
    out = {n.name: str(path) for n in tree.body if isinstance(n, ast.FunctionDef)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[-1] == target_file.stem:
            # `from model import init_weights`, `from models.gpt import init_weights`
            for alias in node.names:
                out[alias.asname or alias.name] = str(target_file)
    return out


def _scopes(tree: ast.Module):
    """The module body (with its ``if`` blocks) and every function body, each as one statement list."""
    yield _flat(tree.body)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield _flat(node.body)


def _flat(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements in order, entering if/with/try/for blocks but not nested functions or classes."""
    out = []
    for stmt in body:
        out.append(stmt)
        if isinstance(stmt, (ast.If, ast.With, ast.Try, ast.For, ast.While)):
            inner = list(stmt.body) + list(getattr(stmt, "orelse", [])) + list(getattr(stmt, "finalbody", []))
            for handler in getattr(stmt, "handlers", []):
                inner += handler.body
            out += _flat(inner)
    return out


def _calls_in_scope(
    stmts: list[ast.stmt], target_names: set[str], path: str, defined: dict[str, str]
) -> list[InitCall]:
    model: str | None = None  # the variable holding the model just built
    calls: list[InitCall] = []
    after = ""
    for stmt in stmts:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            var = _dotted(stmt.targets[0])
            if var and _builds(stmt.value, target_names):
                if calls:
                    break  # a second model built after the first was initialised
                model = var
                continue
            if var and var == model and not _same_model(stmt.value, model):
                break  # the variable now holds something else (a DDP wrapper, a compiled model)
        if model is not None and _inline_init(stmt, model):
            # An init written in the script itself: mulint does not run the script, but says so.
            text = ast.unparse(stmt).splitlines()[0].rstrip(":")
            calls.append(InitCall("inline", "", path, stmt.lineno, text, readable=False, after=after))
            continue
        if model is None or not isinstance(stmt, ast.Expr) or not isinstance(stmt.value, ast.Call):
            continue
        call = _init_call(stmt.value, model, path, defined)
        if call is not None:
            call.after = after
            calls.append(call)
        elif _changes_model(stmt.value, model):
            after = after or ast.unparse(stmt.value)
    return calls


_WRITES = {
    "normal_",
    "uniform_",
    "zero_",
    "fill_",
    "copy_",
    "trunc_normal_",
    "orthogonal_",
    "zeros_",
    "ones_",
    "constant_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "eye_",
}
_WALKS = {"parameters", "named_parameters", "modules", "named_modules", "children", "named_children"}


def _inline_init(stmt: ast.stmt, model: str) -> bool:
    """A loop over the model's parameters or modules that writes them (``for p in model.parameters():
    nn.init.normal_(p, std=0.02)``), or one write to a parameter of it (``nn.init.zeros_(model.head.weight)``)."""

    def writes(node: ast.AST) -> bool:
        return any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in _WRITES
            for n in ast.walk(node)
        )

    if isinstance(stmt, ast.For) and isinstance(stmt.iter, ast.Call) and isinstance(stmt.iter.func, ast.Attribute):
        return stmt.iter.func.attr in _WALKS and _dotted(stmt.iter.func.value) == model and writes(stmt)
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        call = stmt.value
        if isinstance(call.func, ast.Attribute) and call.func.attr in _WRITES:
            touched = [call.func.value, *call.args[:1]]
            return any(_dotted(t).startswith(model + ".") for t in touched)
    return False


# Calls that change the parameters in ways an init applied at construction cannot stand for: mup's
# base shapes (its init reads them), a checkpoint loaded over the init.
_CHANGES = {"load", "restore", "resume", "checkpoint", "shapes", "pretrained"}


def _changes_model(call: ast.Call, model: str) -> bool:
    name = _dotted(call.func).split(".")[-1]
    words = {t.lower() for t in re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", name) if t}
    on_model = _dotted(call.func).rsplit(".", 1)[0] == model or any(_dotted(a) == model for a in call.args)
    return on_model and bool(words & _CHANGES)


def _builds(value: ast.expr, target_names: set[str]) -> bool:
    while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in _SAME_MODEL:
        value = value.func.value
    return isinstance(value, ast.Call) and _dotted(value.func).split(".")[-1] in target_names


def _same_model(value: ast.expr, model: str) -> bool:
    while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in _SAME_MODEL:
        value = value.func.value
    return _dotted(value) == model


def _init_call(call: ast.Call, model: str, path: str, defined: dict[str, str]) -> InitCall | None:
    func = call.func
    text = ast.unparse(call)
    if isinstance(func, ast.Attribute) and _dotted(func.value) == model:
        if func.attr == "apply" and len(call.args) == 1 and not call.keywords:
            fn = call.args[0]
            if isinstance(fn, ast.Attribute) and _dotted(fn.value) == model and is_init_name(fn.attr):
                return InitCall("apply", fn.attr, path, call.lineno, text)
            if isinstance(fn, ast.Name) and is_init_name(fn.id):
                return InitCall("apply-function", fn.id, path, call.lineno, text, defined_in=defined.get(fn.id, ""))
            return None
        if is_init_name(func.attr):
            return _with_args(InitCall("method", func.attr, path, call.lineno, text), call.args, call.keywords)
        return None
    if isinstance(func, ast.Name) and is_init_name(func.id) and call.args and _dotted(call.args[0]) == model:
        found = InitCall("function", func.id, path, call.lineno, text, defined_in=defined.get(func.id, ""))
        return _with_args(found, call.args[1:], call.keywords)
    return None


def _with_args(call: InitCall, args: list[ast.expr], keywords: list[ast.keyword]) -> InitCall:
    try:
        call.args = tuple(ast.literal_eval(a) for a in args)
        call.kwargs = {k.arg: ast.literal_eval(k.value) for k in keywords if k.arg is not None}
        call.readable = all(k.arg is not None for k in keywords)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        call.readable = False
    return call


def _dotted(expr: ast.expr) -> str:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        inner = _dotted(expr.value)
        return f"{inner}.{expr.attr}" if inner else ""
    return ""


def _self_uses(method: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names of ``self.X`` attributes a method touches: called (``self.X()``) or passed (``self.apply(self.X)``)."""
    return {
        n.attr
        for n in ast.walk(method)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
    }


# How the training code constructs the model -------------------------------------------------------


@dataclass
class Construction:
    """``GPT(GPTConfig(n_layer=12, n_embd=768))`` as the training code writes it, its arguments read
    as values: ("value", v) for a literal, ("call", name, args, kwargs) for a call of a named class."""

    path: str
    line: int
    text: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{Path(self.path).name}:{self.line}"


def find_construction(target_file: Path, target_name: str) -> Construction | None:
    """The first construction of the model in the training code whose arguments are literals, names
    bound to literals, or calls (config classes, ``dict``) of them: never a value only a run knows."""
    for path in training_files(target_file):
        tree = _parse(path)
        if tree is None:
            continue
        module_env = _bindings(_flat(tree.body))
        for scope in _scopes(tree):
            for i, stmt in enumerate(scope):
                value = stmt.value if isinstance(stmt, (ast.Assign, ast.Expr)) else None
                while (
                    isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Attribute)
                    and value.func.attr in _SAME_MODEL
                ):
                    value = value.func.value
                if not (isinstance(value, ast.Call) and _dotted(value.func).split(".")[-1] == target_name):
                    continue
                env = {**module_env, **_bindings(scope[:i])}
                read = _call_values(value, env, 0)
                if read is not None:
                    return Construction(str(path), value.lineno, ast.unparse(value), read[2], read[3])
    return None


def _bindings(stmts: list[ast.stmt]) -> dict[str, ast.expr]:
    env: dict[str, ast.expr] = {}
    for stmt in stmts:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            env[stmt.targets[0].id] = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            env[stmt.target.id] = stmt.value
    return env


def _call_values(call: ast.Call, env: dict, depth: int):
    if any(isinstance(a, ast.Starred) for a in call.args):
        return None
    args = [_value(a, env, depth + 1) for a in call.args]
    if any(a is None for a in args):
        return None
    kwargs: dict = {}
    for kw in call.keywords:
        value = _value(kw.value, env, depth + 1)
        if value is None:
            return None
        if kw.arg is not None:
            kwargs[kw.arg] = value
        elif value[0] == "value" and isinstance(value[1], dict):
            kwargs.update({k: ("value", v) for k, v in value[1].items()})
        elif value[0] == "call" and value[1] == "dict" and not value[2]:
            kwargs.update(value[3])
        else:
            return None
    return ("call", _dotted(call.func).split(".")[-1], args, kwargs)


def _value(expr: ast.expr, env: dict, depth: int):
    if depth > 8:
        return None
    try:
        return ("value", ast.literal_eval(expr))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if isinstance(expr, ast.Name) and expr.id in env:
        return _value(env[expr.id], {k: v for k, v in env.items() if k != expr.id}, depth + 1)
    if isinstance(expr, ast.Call) and _dotted(expr.func):
        return _call_values(expr, env, depth)
    if isinstance(expr, (ast.BinOp, ast.UnaryOp)):
        return _arithmetic(expr, env, depth)
    keys = [k for k in expr.keys if isinstance(k, ast.Constant)] if isinstance(expr, ast.Dict) else []
    if isinstance(expr, ast.Dict) and len(keys) == len(expr.keys):  # no `**other`, no computed key
        values = [_value(v, env, depth + 1) for v in expr.values]
        if all(v is not None and v[0] == "value" for v in values):
            return ("value", {k.value: v[1] for k, v in zip(keys, values)})
    return None


def _arithmetic(expr: ast.BinOp | ast.UnaryOp, env: dict, depth: int):
    """`4 * n_embd`, `-1`, `d_model // n_head` over names bound to numbers."""
    import operator

    ops: dict[type, Callable[..., Any]] = {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv,
        ast.Div: operator.truediv,
        ast.Pow: operator.pow,
        ast.USub: operator.neg,
        ast.UAdd: operator.pos,
    }
    parts = [expr.left, expr.right] if isinstance(expr, ast.BinOp) else [expr.operand]
    values = [_value(p, env, depth + 1) for p in parts]
    if type(expr.op) not in ops or any(
        v is None or v[0] != "value" or not isinstance(v[1], (int, float)) or isinstance(v[1], bool) for v in values
    ):
        return None
    try:
        return ("value", ops[type(expr.op)](*(v[1] for v in values)))
    except (ArithmeticError, ValueError, OverflowError):
        return None
