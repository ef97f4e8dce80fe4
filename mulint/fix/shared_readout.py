"""MU403: `MuSharedReadout(weight)` -> `MuSharedReadout(weight, bias=False)`.

The default bias is shaped like the embedding width, not the vocabulary: it cannot be added to the
logits (or broadcasts wrongly when they are equal), so removing it changes nothing that worked.
"""

from __future__ import annotations

import libcst as cst

from mulint.edits import SharedReadoutBias
from mulint.fix import nodes
from mulint.fix.context import FileContext
from mulint.fix.source import Decline

CLASS = "MuSharedReadout"


def fix(ctx: FileContext, edit: SharedReadoutBias, state: dict) -> None:
    calls = nodes.calls_on_line(ctx, edit.line, lambda c: _is_shared_readout(ctx, c))
    if len(calls) != 1:
        raise Decline(f"found {len(calls)} {CLASS}(...) calls on the line, not one")
    [call] = calls
    if nodes.has_star_args(call):
        raise Decline(f"{CLASS} gets its arguments through *args or **kwargs")
    bias = nodes.argument(call, "bias", 1)
    false = cst.Name("False")
    if bias is None:
        keyword = cst.Arg(
            value=false,
            keyword=cst.Name("bias"),
            equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
        )
        ctx.rewrite(call, lambda updated: updated.with_changes(args=[*_with_comma(updated.args), keyword]))
    else:
        ctx.rewrite(bias, lambda updated: updated.with_changes(value=false))


def _is_shared_readout(ctx: FileContext, call: cst.Call) -> bool:
    return any(name.endswith(CLASS) for name in ctx.qualified_names(call)) or (nodes.dotted(call.func) or "").endswith(
        CLASS
    )


def _with_comma(args) -> list[cst.Arg]:
    args = list(args)
    if args and args[-1].comma is cst.MaybeSentinel.DEFAULT:
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return args
