"""The model's own width, written as an expression that is valid where a fix needs it.

Fixed code must say `128 / self.config.n_embd`, not a number: it has to keep working when the user
changes the width. The analysis names the width knob (`config.n_embd`, `width`,
`make_model().config.hidden_size`); this module finds how that value is reachable at a given line:
a parameter of the enclosing function, an attribute `__init__` stored on `self`, or an attribute of
the model a module-level function receives.
"""

from __future__ import annotations

import libcst as cst

from mulint.fix.context import FileContext


def split_knob(knob: str) -> tuple[str | None, list[str]]:
    """`config.n_embd` -> ("config", ["n_embd"]); `make().config.x` -> (None, ["config", "x"]): an
    attribute path of the model itself."""
    if "()." in knob:
        return None, knob.split("().", 1)[1].split(".")
    root, *fields = knob.split(".")
    return root, fields


def _params(fn: cst.FunctionDef) -> list[str]:
    p = fn.params
    return [param.name.value for param in [*p.posonly_params, *p.params, *p.kwonly_params]]


def _methods(cls: cst.ClassDef, name: str) -> cst.FunctionDef | None:
    return next((s for s in cls.body.body if isinstance(s, cst.FunctionDef) and s.name.value == name), None)


def _stored_attribute(ctx: FileContext, cls: cst.ClassDef, root: str | None, fields: list[str]) -> list[str] | None:
    """The attribute path on `self` that holds the width, from `self.A = root[.fields]` in __init__."""
    if root is None:
        return fields
    init = _methods(cls, "__init__")
    if init is None or root not in _params(init):
        return None
    for node in ctx.walk(init):
        if not isinstance(node, cst.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0].target
        if not (
            isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self"
        ):
            continue
        value = ctx.code(node.value).replace(" ", "")
        if value == root:
            return [target.attr.value, *fields]
        if value == ".".join([root, *fields]):
            return [target.attr.value]
    return None


STORED_WIDTH = "mup_width"


def _store_width(
    ctx: FileContext, cls: cst.ClassDef, root: str | None, fields: list[str], stored: str = STORED_WIDTH
) -> list[str] | None:
    """Keep the width on self (`self.mup_width = config.n_embd` after `super().__init__()`), so that
    other methods can reach it (minGPT keeps no config on self); None when there is no safe place.
    ``stored``: the attribute's name (the depth is kept as `mup_depth`)."""
    init = _methods(cls, "__init__")
    if root is None or init is None or root not in _params(init) or not isinstance(init.body, cst.IndentedBlock):
        return None
    code = f"self.{stored} = {'.'.join([root, *fields])}"
    if any(code in codes for codes in ctx.before.values()):
        return [stored]  # another fix of this run stores it already
    body = list(init.body.body)
    supers = [i for i, st in enumerate(body) if "super(" in ctx.code(st) and "__init__" in ctx.code(st)]
    after = supers[0] + 1 if supers else None  # nn.Module refuses attributes before its __init__
    statement = body[after] if after is not None and after < len(body) else None
    if not isinstance(statement, cst.SimpleStatementLine):
        return None
    return [stored] if ctx.insert_before(statement.body[0], code) else None


def _class_named(ctx: FileContext, name: str | None) -> cst.ClassDef | None:
    return next((s for s in ctx.module.body if isinstance(s, cst.ClassDef) and s.name.value == name), None)


def width_expression(
    ctx: FileContext, node: cst.CSTNode, knob: str, target_class: str | None, stored: str = STORED_WIDTH
) -> str:
    """Python source for the width at `node` (or any other field of the model's knob: the depth); raises
    Decline when no such expression is in reach. ``stored``: the attribute it is kept on when needed."""
    from mulint.fix.source import Decline

    root, fields = split_knob(knob)
    fn = ctx.enclosing(node, cst.FunctionDef)
    if fn is None:
        raise Decline(f"the width `{knob}` is not in reach at module level")
    params = _params(fn)
    if root is not None and root in params and root != "self":
        return ".".join([root, *fields])
    cls = ctx.enclosing(fn, cst.ClassDef)
    if cls is not None and params and params[0] == "self" and ctx.enclosing(fn, cst.FunctionDef) is None:
        # A knob that is an attribute of the model itself only holds in the model's own class.
        own = root is not None or cls.name.value == target_class
        found = _stored_attribute(ctx, cls, root, fields) if own else None
        if found is None and own:
            found = _store_width(ctx, cls, root, fields, stored)
        if found is not None:
            return ".".join(["self", *found])
        raise Decline(
            f"`{cls.name.value}.{fn.name.value}` cannot reach the width `{knob}`: "
            f"`{cls.name.value}.__init__` does not keep it on self"
        )
    model_class = _class_named(ctx, target_class)
    if cls is None and params and model_class is not None:
        held = _stored_attribute(ctx, model_class, root, fields)
        if held is not None:
            return ".".join([params[0], *held])
    raise Decline(f"`{fn.name.value}` cannot reach the width `{knob}` (no argument or stored attribute holds it)")


def target_class(target: str) -> str | None:
    """`path/to/file.py:GPT` -> `GPT`."""
    return target.rsplit(":", 1)[1] if ":" in target else None
