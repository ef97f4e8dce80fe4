"""Small libcst building blocks shared by the fixers: arguments, products, calls on a line."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import libcst as cst

from mulint.fix.context import FileContext

# Parents under which `a * b` needs no parentheses: the product is a whole value there.
_WHOLE_VALUE = (
    cst.Assign,
    cst.AnnAssign,
    cst.AugAssign,
    cst.Return,
    cst.Arg,
    cst.Element,
    cst.DictElement,
    cst.Expr,
    cst.Yield,
)


def expression(code: str) -> cst.BaseExpression:
    return cst.parse_expression(code)


def times(node: cst.BaseExpression, factor: str, *, parenthesize: bool) -> cst.BaseExpression:
    """`node * factor`, in parentheses when it sits inside a larger expression."""
    product = cst.BinaryOperation(left=node, operator=cst.Multiply(), right=expression(factor))
    if parenthesize:
        product = product.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return product


def needs_parentheses(ctx: FileContext, node: cst.CSTNode) -> bool:
    parent = ctx.parents.get(node)
    if (
        isinstance(parent, cst.BinaryOperation)
        and parent.left is node
        and isinstance(parent.operator, (cst.Multiply, cst.Divide, cst.MatrixMultiply))
        and not node.lpar
    ):
        return False  # `(a * f) * b` reads as `a * f * b`
    return not isinstance(parent, _WHOLE_VALUE)


def argument(call: cst.Call, keyword: str, position: int | None) -> cst.Arg | None:
    """The argument bound to `keyword`, given by name or at `position` (0-based) among positionals."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if position is not None and position < len(positional):
        return positional[position]
    return None


def has_star_args(call: cst.Call) -> bool:
    return any(a.star for a in call.args)


MAX_LINE = 110  # longer lines get the new argument on a line of its own


def line_break(indent: str) -> cst.ParenthesizedWhitespace:
    """A line break inside brackets (in the file's own newline), continuing after the whitespace
    `indent` (see FileContext.aligned / indented: tabs in a tab-indented file)."""
    return cst.ParenthesizedWhitespace(
        first_line=cst.TrailingWhitespace(), empty_lines=[], indent=False, last_line=cst.SimpleWhitespace(indent)
    )


def add_keyword(call: cst.Call, keyword: str, value: str, *, break_at: str | None = None) -> cst.Call:
    """`f(a, b)` -> `f(a, b, keyword=value)`, keeping a trailing comma and the call's line breaks;
    `break_at`: the whitespace to continue after on a new line (aligned with the first argument)."""
    args = list(call.args)
    new = cst.Arg(
        value=expression(value),
        keyword=cst.Name(keyword),
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    separator = cst.Comma(whitespace_after=line_break(break_at) if break_at is not None else cst.SimpleWhitespace(" "))
    if (
        len(args) > 1
        and isinstance(args[-2].comma, cst.Comma)
        and not isinstance(args[-2].comma.whitespace_after, cst.SimpleWhitespace)
    ):
        separator = args[-2].comma  # the call already puts one argument per line
    if isinstance(last.comma, cst.Comma):  # trailing comma: keep it after the new argument
        new = new.with_changes(comma=last.comma)
    args[-1] = last.with_changes(comma=separator)
    return call.with_changes(args=[*args, new])


def dotted(node: cst.CSTNode) -> str | None:
    """`self.lm_head` for a Name/Attribute chain; None for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def calls_in(ctx: FileContext, root: cst.CSTNode, predicate: Callable[[cst.Call], bool]) -> Iterator[cst.Call]:
    for node in ctx.walk(root):
        if isinstance(node, cst.Call) and predicate(node):
            yield node


def calls_on_line(ctx: FileContext, line: int, predicate: Callable[[cst.Call], bool]) -> list[cst.Call]:
    statement = ctx.statement_at(line)
    if statement is None:
        return []
    return [c for c in calls_in(ctx, statement, predicate) if line in ctx.lines(c)]


def side_effect_free(node: cst.CSTNode) -> bool:
    """Names and attribute chains only: safe to evaluate a second time."""
    return dotted(node) is not None


def power(base: str, exponent: float) -> str:
    """`(b)` for exponent 1, `(b) ** 0.5` otherwise."""
    if abs(exponent - 1) < 1e-9:
        return f"({base})"
    text = f"{exponent:g}"
    return f"({base}) ** {text}" if exponent > 0 else f"({base}) ** ({text})"


def break_column(ctx: FileContext, call: cst.Call, added: int) -> str | None:
    """Where to continue when `added` characters more would make the call's last line too long: the
    whitespace that aligns a new line under the first argument. None when the line stays short enough."""
    if not call.args:
        return None
    end = ctx.positions[call].end
    if ctx.visual_column(end.line, end.column) + added <= MAX_LINE:
        return None
    first = ctx.positions[call.args[0]].start
    return ctx.aligned(first.line, first.column)
