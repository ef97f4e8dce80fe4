"""MU201: attention logits scaled by sqrt(base_head_dim) / head_dim instead of 1/sqrt(head_dim).

At the base head_dim the new scale equals the old one, so the model at its base width is unchanged.
Forms:
  * `F.scaled_dot_product_attention(q, k, v)` (default scale)  ->  `..., scale=math.sqrt(32) / q.size(-1))`
  * a scale with one square root of the head_dim in it (`* (1.0 / math.sqrt(k.size(-1)))`,
    `/ math.sqrt(self.head_dim)`, `self.scale = self.head_dim ** -0.5`, `scale=...`):
    `sqrt(X)` -> `(X / math.sqrt(32))` and `X ** -0.5` -> `(math.sqrt(32) / X)`.
Other attention code in the same function (nanoGPT's non-flash branch) gets the same rewrite, so
both paths stay µP.
"""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from mulint.edits import AttentionScale
from mulint.fix import nodes
from mulint.fix.context import FileContext
from mulint.fix.source import Decline

SDPA = "scaled_dot_product_attention"
SQRT_FUNCTIONS = {"math.sqrt", "numpy.sqrt"}
COMMENT = "µP: attention logits scale like 1/head_dim; sqrt({hd}) / head_dim equals 1/sqrt(head_dim) at head_dim {hd}"


def fix(ctx: FileContext, edit: AttentionScale, state: dict) -> None:
    base = edit.base_head_dim
    fn = ctx.function_at(edit.line)
    if fn is None:
        raise Decline("the attention is not inside a function")
    calls = list(nodes.calls_in(ctx, fn, lambda c: _is_sdpa(ctx, c)))
    done = False
    if edit.form == "sdpa-default":
        call = _sdpa_on_line(ctx, calls, edit.line)
        _add_default_scale(ctx, call, base)
        done = True
    for statement in _scale_statements(ctx, fn, calls):
        done = _rewrite_sqrt(ctx, statement, base) or done
    if not done:
        raise Decline("no `1/sqrt(head_dim)` form found to rewrite (the scale is computed elsewhere or differently)")


def _is_sdpa(ctx: FileContext, call: cst.Call) -> bool:
    return any(name.endswith(SDPA) for name in ctx.qualified_names(call)) or (nodes.dotted(call.func) or "").endswith(
        SDPA
    )


def _sdpa_on_line(ctx: FileContext, calls: list[cst.Call], line: int) -> cst.Call:
    defaults = [c for c in calls if nodes.argument(c, "scale", 6) is None]
    here = [c for c in defaults if line in ctx.lines(c)]
    if len(here) == 1 or len(defaults) == 1:
        return (here or defaults)[0]
    raise Decline("could not tell which scaled_dot_product_attention call the finding is about")


def _add_default_scale(ctx: FileContext, call: cst.Call, base: int) -> None:
    query = nodes.argument(call, "query", 0)
    if query is None or nodes.has_star_args(call):
        raise Decline("scaled_dot_product_attention gets its query through *args")
    if not nodes.side_effect_free(query.value):
        raise Decline(
            "the query passed to scaled_dot_product_attention is an expression; "
            "bind it to a name first so its head_dim can be read"
        )
    q = nodes.dotted(query.value)
    scale = f"math.sqrt({base}) / {q}.size(-1)"
    continuation = nodes.break_column(ctx, call, len(scale) + 8)
    ctx.rewrite(call, lambda updated: nodes.add_keyword(updated, "scale", scale, break_at=continuation))
    ctx.add_import("math")
    ctx.comment_above(call, COMMENT.format(hd=base))


def _scale_statements(ctx: FileContext, fn: cst.FunctionDef, calls: list[cst.Call]) -> list[cst.CSTNode]:
    """Statements that may hold the scale: explicit `q @ kᵀ` products and their factors, SDPA calls
    with a scale, and the assignments of `self.X` / local names they read."""
    statements: list[cst.CSTNode] = []
    for node in ctx.walk(fn):
        if (
            isinstance(node, cst.SimpleStatementLine)
            and _has_logits_product(ctx, node)
            and not _alternative_to_a_mup_branch(ctx, node)
        ):
            statements.append(node)
    for call in calls:
        scale = nodes.argument(call, "scale", 6)
        if scale is not None:
            statements.append(scale.value)
    referenced = set()
    for statement in statements:
        referenced |= {nodes.dotted(n) for n in ctx.walk(statement) if isinstance(n, (cst.Attribute, cst.Name))}
    cls = ctx.enclosing(fn, cst.ClassDef)
    for node in ctx.walk(cls or fn):
        if (
            isinstance(node, cst.Assign)
            and len(node.targets) == 1
            and nodes.dotted(node.targets[0].target) in referenced
        ):
            if _sqrt_sites(ctx, node.value) and not _alternative_to_a_mup_branch(ctx, node):
                statements.append(node.value)
    return list(dict.fromkeys(statements))


def _alternative_to_a_mup_branch(ctx: FileContext, statement: cst.CSTNode) -> bool:
    """A `q @ kᵀ` product in one branch of an `if` whose other branch already has a product scaled
    without a square root (nanoGPT-mup's `if self.use_mup: ... * (1.0 / k.size(-1)) else: ... / sqrt`):
    the model offers both parametrizations on purpose, and the µP one exists. Leave the SP one."""
    branch = ctx.enclosing(statement, cst.If)
    while branch is not None:
        for other in (branch.body, branch.orelse):
            if other is None or any(node is statement for node in ctx.walk(other)):
                continue
            if any(
                isinstance(node, cst.SimpleStatementLine)
                and _has_logits_product(ctx, node)
                and not _sqrt_sites(ctx, node)
                for node in ctx.walk(other)
            ):
                return True
        branch = ctx.enclosing(branch, cst.If)
    return False


def _has_logits_product(ctx: FileContext, statement: cst.CSTNode) -> bool:
    for node in ctx.walk(statement):
        if (
            isinstance(node, cst.BinaryOperation)
            and isinstance(node.operator, cst.MatrixMultiply)
            and _is_transpose(node.right)
        ):
            return True
        if (
            isinstance(node, cst.Call)
            and "torch.matmul" in ctx.qualified_names(node)
            and len(node.args) >= 2
            and _is_transpose(node.args[1].value)
        ):
            return True
    return False


def _is_transpose(node: cst.CSTNode) -> bool:
    return m.matches(node, m.Call(func=m.Attribute(attr=m.Name("transpose")))) or m.matches(
        node, m.Attribute(attr=m.Name("mT") | m.Name("T"))
    )


def _sqrt_sites(ctx: FileContext, root: cst.CSTNode) -> list[cst.Call | cst.BinaryOperation]:
    sites: list[cst.Call | cst.BinaryOperation] = []
    for node in ctx.walk(root):
        if isinstance(node, cst.Call) and ctx.qualified_names(node) & SQRT_FUNCTIONS and len(node.args) == 1:
            sites.append(node)
        elif (
            isinstance(node, cst.BinaryOperation)
            and isinstance(node.operator, cst.Power)
            and _number(node.right) in (0.5, -0.5)
        ):
            sites.append(node)
    return sites


def _number(node: cst.CSTNode) -> float | None:
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = _number(node.expression)
        return None if inner is None else -inner
    if isinstance(node, (cst.Float, cst.Integer)):
        return float(node.evaluated_value)
    return None


def _operand(ctx: FileContext, node: cst.BaseExpression) -> str:
    """Source of `node`, parenthesised unless it is an atom (so `X / c` keeps X whole)."""
    code = ctx.code(node)
    atom = isinstance(node, (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer)) or node.lpar
    return code if atom else f"({code})"


def _rewrite_sqrt(ctx: FileContext, root: cst.CSTNode, base: int) -> bool:
    sites = _sqrt_sites(ctx, root)
    if len(sites) != 1:
        return False  # none, or several roots: not a recognisable 1/sqrt(head_dim)
    [site] = sites
    operand = site.args[0].value if isinstance(site, cst.Call) else site.left
    if _number(operand) is not None:
        return False  # the root of a number is not the head_dim
    head_dim = _operand(ctx, operand)
    # sqrt(X) -> X / sqrt(base), X ** -0.5 -> sqrt(base) / X: 1/sqrt(X) becomes sqrt(base) / X.
    inverse = isinstance(site, cst.BinaryOperation) and (_number(site.right) or 0.0) < 0  # a number: ±0.5
    replacement = f"(math.sqrt({base}) / {head_dim})" if inverse else f"({head_dim} / math.sqrt({base}))"
    ctx.rewrite(site, lambda updated: nodes.expression(replacement))
    ctx.add_import("math")
    ctx.comment_above(site, COMMENT.format(hd=base))
    return True
