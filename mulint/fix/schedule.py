"""MU303: a schedule that writes one lr into every group scales each group's own initial lr instead.

    param_group["lr"] = lr
 -> param_group["lr"] = lr * (param_group.setdefault("initial_lr", param_group["lr"]) / learning_rate)

`initial_lr` is the key torch's own schedulers keep; the first write stores the group's lr as the
optimizer built it (µP's per-group value). `learning_rate`, the lr the schedule is relative to, is
read from the script: the constant branch of `lr = get_lr(it) if decay_lr else learning_rate`, or
the one peak-lr-like module constant the schedule function reads. With a single group that started
at `learning_rate` the new value is exactly the old one.
"""

from __future__ import annotations

import re

import libcst as cst

from mulint.edits import ScheduleLr
from mulint.fix import nodes
from mulint.fix.context import FileContext
from mulint.fix.source import Decline

LR_NAME = re.compile(r"(^|_)(lr|learning_rate)($|_)", re.I)
NOT_BASE = re.compile(r"min|final|end|decay|warmup|scale|mult|ratio|factor", re.I)
COMMENT = "µP: the schedule scales each param group's own initial lr"


def fix(ctx: FileContext, edit: ScheduleLr, state: dict) -> None:
    statement = ctx.statement_at(edit.line)
    found = _lr_write(ctx, statement) if isinstance(statement, cst.SimpleStatementLine) else None
    if statement is None or found is None:
        raise Decline(f"no `group['lr'] = ...` write recognised on line {edit.line}")
    group, value, quote = found
    base = _base_lr(ctx, value, statement)
    own = f"{group}.setdefault({quote}initial_lr{quote}, {group}[{quote}lr{quote}])"
    factor = f"({own} / {base})"
    wrap = not isinstance(value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) and not value.lpar
    ctx.rewrite(
        value,
        lambda updated: nodes.times(
            updated.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()]) if wrap else updated,
            factor,
            parenthesize=False,
        ),
    )
    ctx.comment_above(statement, COMMENT)


def _lr_write(ctx: FileContext, statement: cst.SimpleStatementLine):
    """(group variable, the value written, the quote the file uses) for the statement's lr write."""
    small = statement.body[0]
    if isinstance(small, cst.Assign) and isinstance(small.targets[0].target, cst.Subscript):
        target = small.targets[0].target
        key = target.slice[0].slice
        if isinstance(target.value, cst.Name) and isinstance(key, cst.Index) and _is_lr(key.value):
            return target.value.value, small.value, cst.ensure_type(key.value, cst.SimpleString).value[0]
    call = small.value if isinstance(small, cst.Expr) else None
    if (
        isinstance(call, cst.Call)
        and isinstance(call.func, cst.Attribute)
        and call.func.attr.value == "update"
        and isinstance(call.func.value, cst.Name)
    ):
        group = call.func.value.value
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == "lr":
                return group, arg.value, '"'
            if arg.keyword is None and isinstance(arg.value, cst.Dict):
                for element in arg.value.elements:
                    if isinstance(element, cst.DictElement) and _is_lr(element.key):
                        return group, element.value, cst.ensure_type(element.key, cst.SimpleString).value[0]
    return None


def _is_lr(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.SimpleString) and node.evaluated_value == "lr"


def _base_lr(ctx: FileContext, value: cst.BaseExpression, statement: cst.CSTNode) -> str:
    """The name of the lr the schedule's values are relative to (its peak)."""
    expressions = [value]
    if isinstance(value, cst.Name):
        expressions = [
            a.value
            for a in ctx.walk()
            if isinstance(a, cst.Assign)
            and any(isinstance(t.target, cst.Name) and t.target.value == value.value for t in a.targets)
        ]
    for expr in expressions:  # `get_lr(it) if decay_lr else learning_rate`: the constant branch
        if isinstance(expr, cst.IfExp):
            for branch in (expr.body, expr.orelse):
                if isinstance(branch, cst.Name) and _base_like(branch.value):
                    return branch.value
    names = set()
    functions = {s.name.value: s for s in ctx.module.body if isinstance(s, cst.FunctionDef)}
    for expr in expressions:
        for node in ctx.walk(expr):
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value in functions:
                names |= _names(ctx, functions[node.func.value])
            if isinstance(node, cst.Name):
                names.add(node.value)
    candidates = sorted(n for n in names & _module_names(ctx) if _base_like(n))
    if len(candidates) == 1:
        return candidates[0]
    what = f"several candidates ({', '.join(candidates)})" if candidates else "no module-level peak lr"
    raise Decline(f"could not tell which learning rate the schedule is relative to: {what}")


def _base_like(name: str) -> bool:
    return bool(LR_NAME.search(name)) and not NOT_BASE.search(name)


def _names(ctx: FileContext, root: cst.CSTNode) -> set[str]:
    return {n.value for n in ctx.walk(root) if isinstance(n, cst.Name)}


def _module_names(ctx: FileContext) -> set[str]:
    """Names assigned at module level, tuple targets included (`learning_rate, min_lr = 6e-4, 6e-5`)."""
    out = set()
    for statement in ctx.module.body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, (cst.Assign, cst.AnnAssign)):
                    targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                    for target in targets:
                        out |= _names(ctx, target)
    return out
