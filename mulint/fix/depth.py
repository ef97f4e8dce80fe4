"""MU501: a residual branch's output times `(BASE_DEPTH / depth) ** α`, where the block is plain
(`x = x + self.attn(self.ln_1(x))` or `x += self.mlp(...)`).

`BASE_DEPTH` is a module constant set to the model's default depth, so the factor is exactly 1 there
and the model at its base depth computes as before; the depth is the model's own knob, reached as the
width is (mulint.fix.width: an argument, or kept on self as `self.mup_depth`). α comes from the rule
(1, CompleteP's, which needs no depth factor on an Adam learning rate).
"""

from __future__ import annotations

import functools

import libcst as cst

from mulint.edits import BranchMultiplier
from mulint.fix import nodes
from mulint.fix.context import FileContext
from mulint.fix.source import Decline
from mulint.fix.width import target_class, width_expression

CONSTANT = "BASE_DEPTH"
STORED_DEPTH = "mup_depth"
COMMENT = "depth: the branch × {factor}, 1 at the base depth {base}"


def fix(ctx: FileContext, edit: BranchMultiplier, state: dict) -> None:
    statement = ctx.statement_at(edit.line)
    branch = _branch_output(ctx, statement)
    depth = width_expression(ctx, branch, edit.depth_knob, target_class(edit.target), stored=STORED_DEPTH)
    _base_constant(ctx, edit.base_depth, edit.depth_knob)
    factor = nodes.power(f"{CONSTANT} / {depth}", edit.alpha)
    # a call is an atom and `*` binds tighter than the add: `x + F(x) * f` needs no parentheses
    ctx.rewrite(branch, functools.partial(nodes.times, factor=factor, parenthesize=False))
    shown = nodes.power(f"{CONSTANT} / depth", edit.alpha)
    ctx.comment_above(branch, COMMENT.format(factor=shown, base=edit.base_depth))


def _branch_output(ctx: FileContext, statement: cst.CSTNode | None) -> cst.Call:
    """The call added to the stream in `x = x + F(...)`, `x = F(...) + x`, `x += F(...)` or `return x + F(...)`."""
    small = statement.body[0] if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1 else None
    if (
        isinstance(small, cst.AugAssign)
        and isinstance(small.operator, cst.AddAssign)
        and isinstance(small.value, cst.Call)
    ):
        return small.value
    stream, value = None, None
    if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
        stream, value = small.targets[0].target.value, small.value
    elif isinstance(small, cst.Return):  # `return x + self.mlp(self.ln_2(x))`, nanoGPT's last add
        value = small.value
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
        sides = (value.left, value.right)
        names = [s for s in sides if isinstance(s, cst.Name) and (stream is None or s.value == stream)]
        calls = [s for s in sides if isinstance(s, cst.Call)]
        if len(names) == 1 and len(calls) == 1:
            return calls[0]
    raise Decline("the residual add is not a plain `x = x + self.branch(...)`")


def _base_constant(ctx: FileContext, base: int, knob: str) -> None:
    """`BASE_DEPTH = 12` after the imports; an existing BASE_DEPTH is kept only when it says the same."""
    if CONSTANT not in ctx.top_level_names():
        ctx.add_top_level(CONSTANT, f"{CONSTANT} = {base}  # the depth ({knob}) the hyperparameters are tuned at")
        return
    for statement in ctx.module.body:
        small = statement.body[0] if isinstance(statement, cst.SimpleStatementLine) else None
        if isinstance(small, cst.Assign) and any(
            isinstance(t.target, cst.Name) and t.target.value == CONSTANT for t in small.targets
        ):
            if ctx.code(small.value).strip() != str(base):
                raise Decline(f"the module's {CONSTANT} is not the base depth {base}")
            return
    raise Decline(f"the module defines {CONSTANT} otherwise")
