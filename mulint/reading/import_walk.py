"""A walk over every expression Python evaluates when it imports a module.

Function bodies run only when called, so they are skipped; everything else is evaluated at import:
class bodies, decorators, default values, base classes and class keywords, annotations (unless
``from __future__ import annotations``), except clauses, both branches of an ordinary ``if``, the
``else`` of ``if __name__ == "__main__":``. The walk stops at the first call not known to be pure
(see pure_calls), the first loop, and the first local import whose own walk finds one.
"""

from __future__ import annotations

import ast
from contextlib import contextmanager

from mulint.reading.class_hooks import defines, enum_member_hook, pure_to_instantiate, subclass_hook
from mulint.reading.local_imports import CompiledModule
from mulint.reading.module_info import Effect, Judge, ModuleInfo
from mulint.reading.name_lookup import NameLookup
from mulint.reading.names import UNKNOWN, Bindings, Ref, is_try, scope_bindings
from mulint.reading.pure_calls import (
    CALLS_ITS_ARGUMENTS,
    OWN_VALUE_METHODS,
    PATH_METHODS,
    STR_METHODS,
    is_pure_builtin,
    is_pure_call,
)
from mulint.reading.value_kinds import ValueKinds


class _Found(Exception):
    def __init__(self, effect: Effect):
        super().__init__(effect.what)
        self.effect = effect


class ImportWalk(ValueKinds, NameLookup):
    def __init__(self, judge: Judge, info: ModuleInfo):
        self.judge = judge
        self.info = info
        self.scopes: list[Bindings] = []
        self.where: list[str] = []
        self.line = 1

    def first_effect(self) -> Effect | None:
        assert self.info.tree is not None, "the judge walks files that parsed"
        try:
            self._block(self.info.tree.body)
        except _Found as found:
            return found.effect
        except RecursionError:
            return self._make(self.line, "an expression nested too deeply for mulint to read")
        return None

    def is_pure(self, expr: ast.expr) -> bool:
        try:
            self._expr(expr)
        except (_Found, RecursionError):
            return False
        return True

    # Effects and context --------------------------------------------------------------------------

    def _make(self, line: int, what: str) -> Effect:
        if self.where:
            what = f"{what} {self.where[-1]}"
        return Effect(line, what, self.info.path, line)

    def _effect(self, node: ast.AST, what: str):
        raise _Found(self._make(getattr(node, "lineno", self.line), what))

    @contextmanager
    def _inside(self, where: str):
        self.where.append(where)
        try:
            yield
        finally:
            self.where.pop()

    # Statements -----------------------------------------------------------------------------------

    def _block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.line = stmt.lineno
            self._stmt(stmt)

    def _stmt(self, s: ast.stmt) -> None:
        if isinstance(s, (ast.Import, ast.ImportFrom)):
            self._import(s)
        elif isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._function(s)
        elif isinstance(s, ast.ClassDef):
            self._class(s)
        elif isinstance(s, ast.Expr):
            self._expr(s.value)
        elif isinstance(s, (ast.Assign, ast.AugAssign)):
            self._expr(s.value)
            for target in s.targets if isinstance(s, ast.Assign) else [s.target]:
                self._target(target, s)
        elif isinstance(s, ast.AnnAssign):
            self._annotation(s.annotation, "in a variable annotation")
            if s.value is not None:
                self._expr(s.value)
                self._target(s.target, s)
        elif isinstance(s, ast.If):
            self._if(s)
        elif is_try(s):
            self._try(s)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                self._expr(item.context_expr)
                if item.optional_vars is not None:
                    self._target(item.optional_vars, s)
            self._block(s.body)
        elif isinstance(s, (ast.For, ast.AsyncFor, ast.While)):
            self._effect(s, "a loop" if self.where else "a top-level loop")
        elif isinstance(s, ast.Delete):
            for target in s.targets:
                self._target(target, s)
        elif isinstance(s, ast.Match):
            self._expr(s.subject)
            for case in s.cases:
                self._children(case.pattern)
                if case.guard is not None:
                    self._expr(case.guard)
                self._block(case.body)
        else:  # assert, raise, pass, global, return...: their expressions
            self._children(s)

    def _children(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._expr(child)
            elif isinstance(child, ast.pattern):
                self._children(child)

    def _if(self, s: ast.If) -> None:
        if is_main_guard(s.test):
            with self._inside('in the else branch of `if __name__ == "__main__":`'):
                self._block(s.orelse)
            return
        if self._is_type_checking(s.test):
            forced = self._type_checking_forced()
            if forced:
                with self._inside(f"under `if TYPE_CHECKING:` (line {forced} sets TYPE_CHECKING)"):
                    self._block(s.body)
            with self._inside("in the else branch of `if TYPE_CHECKING:`"):
                self._block(s.orelse)
            return
        self._expr(s.test)
        self._block(s.body)
        self._block(s.orelse)

    def _is_type_checking(self, test: ast.expr) -> bool:
        if isinstance(test, ast.Name):
            return test.id == "TYPE_CHECKING"
        return (
            isinstance(test, ast.Attribute)
            and test.attr == "TYPE_CHECKING"
            and self.qualname(*(self.resolve(test) or (UNKNOWN, [])))
            in ("typing.TYPE_CHECKING", "typing_extensions.TYPE_CHECKING")
        )

    def _type_checking_forced(self) -> int | None:
        """The line of a module-level ``TYPE_CHECKING = ...`` other than False: the guarded block runs."""
        for ref in self.info.bindings.names.get("TYPE_CHECKING", []):
            if ref.kind == "import" and ref.qualname in ("typing.TYPE_CHECKING", "typing_extensions.TYPE_CHECKING"):
                continue
            if ref.kind == "variable" and isinstance(ref.node, ast.Constant) and ref.node.value is False:
                continue
            return getattr(ref.node, "lineno", None) or self.line
        return None

    def _try(self, s: ast.Try) -> None:
        self._block(s.body)
        for handler in s.handlers:
            if handler.type is not None:
                with self._inside("in an except clause"):
                    self._expr(handler.type)
            self._block(handler.body)
        self._block(s.orelse)
        self._block(s.finalbody)

    def _target(self, target: ast.expr, stmt: ast.stmt) -> None:
        if isinstance(target, ast.Name):
            return
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._target(elt, stmt)
            return
        if isinstance(target, ast.Starred):
            self._target(target.value, stmt)
            return
        if not isinstance(target, (ast.Attribute, ast.Subscript)):
            return  # no other expression is a target Python parses
        self._expr(target.value)
        if isinstance(target, ast.Subscript):
            self._expr(target.slice)
        if not self._owns(target.value):
            self._effect(stmt, f"an assignment to {_label(target)}")

    def _owns(self, expr: ast.expr) -> bool:
        """Whether `expr` is an object this module made (its own class, function or container)."""
        resolved = self.resolve(expr)
        if resolved is None:
            return False
        ref, _ = resolved
        if ref.kind in ("class", "function"):
            return True
        return ref.kind == "variable" and self._kind_of_ref(ref) in ("container", "logger")

    # Imports --------------------------------------------------------------------------------------

    def _import(self, s: ast.Import | ast.ImportFrom) -> None:
        try:
            files = self.judge.imports.files_run_by(s, self.info.path)
        except CompiledModule as exc:
            self._effect(s, f"an import of {exc.path.name}, compiled code mulint cannot read")
        for file in files:
            if file == self.info.path:
                continue
            inner = self.judge.effect_of(file)
            if inner is not None:
                raise _Found(inner.through(s.lineno, file))
        if isinstance(s, ast.ImportFrom):
            self._module_getattr(s)

    def _module_getattr(self, s: ast.ImportFrom) -> None:
        """`from m import x` where local m defines a module ``__getattr__`` and no `x`: it runs."""
        try:
            file = self.judge.imports.module_file(self.info.path, s.level, s.module or "")
        except CompiledModule:
            return
        if file is None:
            return
        bindings = self.judge.info(file).bindings
        if bindings.lookup("__getattr__") is None:
            return
        for alias in s.names:
            if (
                alias.name != "*"
                and bindings.lookup(alias.name) is None
                and not (file.parent / f"{alias.name}.py").exists()
                and not (file.parent / alias.name).is_dir()
            ):
                self._effect(s, f"the module __getattr__ of {file.name} (importing {alias.name})")

    def _module_attribute(self, e: ast.Attribute) -> None:
        """`m.x` on a local module m that defines a module ``__getattr__`` and no `x`: it runs."""
        resolved = self.resolve(e.value)
        if resolved is None or resolved[1] or resolved[0].kind != "import" or not self.judge.is_local(resolved[0]):
            return
        found = self.judge.import_file(resolved[0])
        if found is None or not found[1]:
            return
        bindings = self.judge.info(found[0]).bindings
        if bindings.lookup("__getattr__") is not None and bindings.lookup(e.attr) is None:
            self._effect(e, f"the module __getattr__ of {found[0].name} (reading {e.attr})")

    # Definitions ----------------------------------------------------------------------------------

    def _function(self, s: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in s.decorator_list:
            self._decorator(decorator, s.name)
        with self._inside(f"in a default argument of {s.name}"):
            for default in s.args.defaults + [d for d in s.args.kw_defaults if d is not None]:
                self._expr(default)
        args = s.args
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]:
            if arg.annotation is not None:
                self._annotation(arg.annotation, f"in an annotation of {s.name}")
        if s.returns is not None:
            self._annotation(s.returns, f"in an annotation of {s.name}")

    def _annotation(self, annotation: ast.expr, where: str) -> None:
        if self.info.bindings.future_annotations:
            return  # kept as a string, never evaluated at import
        with self._inside(where):
            self._expr(annotation)

    def _decorator(self, decorator: ast.expr, owner: str) -> None:
        with self._inside(f"in a decorator of {owner}"):
            self._expr(decorator)
            if isinstance(decorator, ast.Call):
                # A pure decorator factory returns a pure decorator, except partial(f), which calls f.
                resolved = self.resolve(decorator.func)
                if resolved and self.qualname(*resolved) == "functools.partial" and decorator.args:
                    self._judge_callee(decorator.args[0], decorator)
            else:
                self._judge_callee(decorator, decorator)  # applying it calls it with the definition

    def _class(self, s: ast.ClassDef) -> None:
        for decorator in s.decorator_list:
            self._decorator(decorator, s.name)
        with self._inside(f"in the bases of class {s.name}"):
            for base in s.bases:
                self._expr(base)
            for keyword in s.keywords:
                self._expr(keyword.value)
        self._class_hooks(s)
        self.scopes.append(scope_bindings(s.body, self.info.path))
        try:
            with self._inside(f"in the body of class {s.name}"):
                self._block(s.body)
        finally:
            self.scopes.pop()

    def _class_hooks(self, s: ast.ClassDef) -> None:
        """Code of the user's tree that defining class `s` runs: a metaclass, a base's __init_subclass__."""
        for keyword in s.keywords:
            if keyword.arg == "metaclass" and self.local_class(keyword.value):
                self._effect(
                    s, f"the metaclass {_label(keyword.value)} (defined in the checked code) creating class {s.name}"
                )
        for base in s.bases:
            found = self.local_class(base)
            if found is not None:
                hook = subclass_hook(self.judge, *found)
                if hook:
                    self._effect(s, f"{hook}, run by defining class {s.name}")
        hook = enum_member_hook(self, s)
        if hook:
            self._effect(s, f"the {hook} of enum {s.name}, run for each member")

    # Expressions ----------------------------------------------------------------------------------

    def _expr(self, e: ast.expr) -> None:
        if isinstance(e, (ast.Constant, ast.Name)):
            return
        if isinstance(e, ast.Call):
            self._call(e)
        elif isinstance(e, ast.Lambda):
            for default in e.args.defaults + [d for d in e.args.kw_defaults if d is not None]:
                self._expr(default)  # the body runs when the lambda is called
        elif isinstance(e, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            self._comprehension(e)
        elif isinstance(e, ast.Attribute):
            self._expr(e.value)
            self._module_attribute(e)
        elif isinstance(e, ast.Subscript):
            self._expr(e.value)
            self._expr(e.slice)
            found = self.local_class(e.value)
            if found and defines(self.judge, *found, "__class_getitem__"):
                self._effect(e, f"the __class_getitem__ of {_label(e.value)}")
        else:
            self._children(e)

    def _comprehension(self, e: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> None:
        scope = Bindings(self.info.path)
        for generator in e.generators:
            self._expr(generator.iter)
            for name in ast.walk(generator.target):
                if isinstance(name, ast.Name):
                    scope.add(name.id, Ref("variable", self.info.path, None))
        self.scopes.append(scope)
        try:
            for generator in e.generators:
                for condition in generator.ifs:
                    self._expr(condition)
            for part in (e.key, e.value) if isinstance(e, ast.DictComp) else (e.elt,):
                self._expr(part)
        finally:
            self.scopes.pop()

    def _call(self, call: ast.Call) -> None:
        self._expr(call.func)
        arguments = call.args + [k.value for k in call.keywords]
        for argument in arguments:
            self._expr(argument)
        self._judge_callee(call.func, call)
        resolved = self.resolve(call.func)
        if resolved and self.qualname(*resolved) in CALLS_ITS_ARGUMENTS:
            for argument in arguments:
                self._passed_callable(argument, call)

    def _passed_callable(self, argument: ast.expr, call: ast.Call) -> None:
        """A function handed to sorted(), map(), ... runs now: judge calling it."""
        if isinstance(argument, ast.Lambda):
            with self._inside(f"in a lambda called by {_label(call.func)}"):
                self._expr(argument.body)
        elif isinstance(argument, (ast.Name, ast.Attribute)):
            self._judge_callee(argument, call)

    def _judge_callee(self, func: ast.expr, call: ast.expr) -> None:
        problem = self._callee_problem(func, call if isinstance(call, ast.Call) else None)
        if problem:
            self._effect(call, problem)

    def _callee_problem(self, func: ast.expr, call: ast.Call | None) -> str | None:
        label = f"a call of {_label(func)}()"
        if isinstance(func, ast.Attribute):
            receiver = self._kind(func.value)
            if (receiver == "str" and func.attr in STR_METHODS) or (receiver == "path" and func.attr in PATH_METHODS):
                return None
        resolved = self.resolve(func)
        if resolved is None:
            return label
        ref, attrs = resolved
        if ref.kind == "builtin":
            return None if not attrs and is_pure_builtin(ref.attr, call) else label
        if ref.kind == "function":
            return f"{label}, a function of {self._where_defined(ref.origin)} (its body runs)"
        if ref.kind == "variable":
            kind = self._kind_of_ref(ref)
            if kind is not None and len(attrs) == 1 and attrs[0] in OWN_VALUE_METHODS.get(kind, ()):
                return None
            return label
        if ref.kind == "class" or (ref.kind == "import" and self.judge.is_local(ref)):
            found = self.judge.local_class(ref, attrs)
            if found is not None and pure_to_instantiate(self.judge, *found):
                return None
            if found is not None:
                return f"{label}, a class of {self._where_defined(found[0].path)} (its __init__ runs)"
            return f"{label}, code of {self._where_defined(self.judge.import_file(ref))}"
        if ref.kind == "import":
            return None if is_pure_call(self.qualname(ref, attrs), call) else label
        return label

    def _where_defined(self, where) -> str:
        path = where[0] if isinstance(where, tuple) else where
        if path is None or path == self.info.path:
            return "this file"
        return path.name if path.name != "__init__.py" else f"{path.parent.name}/__init__.py"


def _label(expr: ast.expr) -> str:
    try:
        text = ast.unparse(expr)
    except (RecursionError, ValueError):
        return "an expression"
    return text if len(text) <= 40 else text[:37] + "..."


def is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    mains = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(mains) == 1
