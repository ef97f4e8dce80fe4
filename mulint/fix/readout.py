"""MU102: the readout's logits multiplied by `base_width / width` (Tensor Programs V, Table 8).

Every call of the readout in its class gets the multiplier, not only the traced one: nanoGPT
computes logits in two branches (training and generation), and a multiplier on one of them leaves
the other in SP. Calls are found by the readout's module (`self.lm_head(x)`) or, for a functional
tied head, by the weight it reads (`F.linear(x, self.wte.weight)`, `x @ self.wte.weight.T`).
"""

from __future__ import annotations

import functools

import libcst as cst

from mulint.edits import ReadoutMultiplier
from mulint.fix import nodes
from mulint.fix.context import FileContext
from mulint.fix.source import Decline
from mulint.fix.width import target_class, width_expression

COMMENT = "µP: readout multiplier {base} / width (1 at the base width {base})"


def fix(ctx: FileContext, edit: ReadoutMultiplier, state: dict) -> None:
    base = edit.base_width
    sites = _readout_calls(ctx, edit)
    if not sites:
        raise Decline(
            f"no call of the readout `{edit.module or edit.params[0]}` found on line {', '.join(map(str, edit.lines))}"
        )
    planned = []
    for node in sites:
        width = width_expression(ctx, node, edit.width_knob, target_class(edit.target))
        planned.append((node, f"{base} / {width}"))
    for node, factor in planned:
        wrap = nodes.needs_parentheses(ctx, node)
        ctx.rewrite(node, functools.partial(nodes.times, factor=f"({factor})", parenthesize=wrap))
        ctx.comment_above(node, COMMENT.format(base=base))
    state.setdefault("readout_multiplier", set()).update(edit.params)


def _readout_calls(ctx: FileContext, edit: ReadoutMultiplier) -> list[cst.CSTNode]:
    """The readout expressions on the finding's lines, then every expression of the same code in the class."""
    found: list[cst.CSTNode] = []
    for line in edit.lines:
        statement = ctx.statement_at(line)
        if statement is not None:
            found += [n for n in ctx.walk(statement) if line in ctx.lines(n) and _is_readout(ctx, n, edit)]
    if not found:
        return []
    codes = {_key(ctx, n) for n in found}
    scope = ctx.enclosing(found[0], cst.ClassDef) or ctx.enclosing(found[0], cst.FunctionDef) or ctx.module
    everywhere = [n for n in ctx.walk(scope) if _is_readout(ctx, n, edit) and _key(ctx, n) in codes]
    # A readout nested in another (impossible in sane code) would be multiplied twice: keep the outer.
    return [n for n in everywhere if not any(a in everywhere for a in ctx.ancestors(n))]


def _key(ctx: FileContext, node: cst.CSTNode) -> str:
    """What identifies the readout: the called module, or the weight a functional head reads."""
    if isinstance(node, cst.Call) and nodes.dotted(node.func) and not _functional(ctx, node):
        return nodes.dotted(node.func) or ""
    return _weight_reference(ctx, node) or ""


def _is_readout(ctx: FileContext, node: cst.CSTNode, edit: ReadoutMultiplier) -> bool:
    module = edit.module
    if isinstance(node, cst.Call) and module and not _functional(ctx, node):
        name = nodes.dotted(node.func) or ""
        return name.split(".")[-1] == module.split(".")[-1] and name.startswith(("self.", "model."))
    if (
        isinstance(node, cst.Call)
        and _functional(ctx, node)
        or (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply))
    ):
        return _weight_reference(ctx, node) in _weight_suffixes(edit.params)
    return False


def _functional(ctx: FileContext, call: cst.Call) -> bool:
    return bool(ctx.qualified_names(call) & {"torch.nn.functional.linear", "torch.matmul"})


def _weight_reference(ctx: FileContext, node: cst.CSTNode) -> str | None:
    """`wte.weight` when the expression reads `self.transformer.wte.weight` (or its `.T`)."""
    for child in ctx.walk(node):
        name = nodes.dotted(child) if isinstance(child, cst.Attribute) else None
        if name and name.endswith(".weight"):
            parts = name.split(".")
            return ".".join(parts[-2:])
    return None


def _weight_suffixes(params: tuple[str, ...]) -> set[str]:
    return {".".join(p.split(".")[-2:]) for p in params}
