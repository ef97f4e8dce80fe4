"""MU101: hidden weights' init std times `(base_width / width) ** 0.5`, in the init call itself.

    nn.init.normal_(module.weight, mean=0.0, std=0.02)
 -> nn.init.normal_(module.weight, mean=0.0, std=0.02 * (128 / self.config.n_embd) ** 0.5)

Understood: `torch.nn.init.normal_/trunc_normal_/uniform_` (any import alias), the tensor methods
`.normal_()` / `.uniform_()`, and `torch.randn(...) * s` products. When the same line also
initialises weights that are not hidden (nanoGPT's `_init_weights` reaches the tied readout), the
factor is guarded by identity so those keep their init: `... if module.weight is not
self.lm_head.weight else 1.0`.
"""

from __future__ import annotations

import re

import libcst as cst

from mulint.edits import InitStd
from mulint.fix import nodes
from mulint.fix.context import FileContext
from mulint.fix.source import Decline
from mulint.fix.width import target_class, width_expression

NN_INIT = "torch.nn.init."
STD_POSITION = {"normal_": 2, "trunc_normal_": 2}  # nn.init.f(tensor, mean, std)
METHOD_STD_POSITION = {"normal_": 1}  # tensor.normal_(mean, std)
RANDOM = {"torch.randn", "torch.randn_like"}
GUARDED_NAME = "mup_std_scale"
COMMENT = "µP: hidden init std × ({base} / width) ** {power:g}, which is 1 at the base width {base}"


def fix(ctx: FileContext, edit: InitStd, state: dict) -> None:
    base, power = edit.base_width, float(edit.power)
    call = _init_call(ctx, edit.line)
    width = width_expression(ctx, call, edit.width_knob, target_class(edit.target))
    factor = nodes.power(f"{base} / {width}", power)
    comment = COMMENT.format(base=base, power=power)
    if edit.exclude:
        guarded = f"{factor} if {_guard(ctx, call, edit)} else 1.0"
        if ctx.insert_before(call, f"{GUARDED_NAME} = {guarded}\n"):
            factor, comment = GUARDED_NAME, comment + f"; {', '.join(edit.exclude)} not hidden"
        else:
            factor = f"({guarded})"
    _scale(ctx, call, factor)
    ctx.comment_above(call, comment)


def _init_call(ctx: FileContext, line: int) -> cst.Call:
    found = nodes.calls_on_line(ctx, line, lambda c: _kind(ctx, c) is not None)
    if len(found) != 1:
        what = "no" if not found else "several"
        raise Decline(f"{what} init call (nn.init.normal_/uniform_, .normal_(), torch.randn(...) * s) on line {line}")
    return found[0]


def _kind(ctx: FileContext, call: cst.Call) -> str | None:
    """`init:normal_` (nn.init), `method:normal_` (tensor method), `random` (torch.randn) or None."""
    for name in ctx.qualified_names(call):
        if name.startswith(NN_INIT) and name[len(NN_INIT) :] in ("normal_", "trunc_normal_", "uniform_"):
            return "init:" + name[len(NN_INIT) :]
        if name in RANDOM:
            return "random"
    if (
        isinstance(call.func, cst.Attribute)
        and call.func.attr.value in ("normal_", "uniform_")
        and not ctx.qualified_names(call)
    ):
        return "method:" + call.func.attr.value
    return None


def _scale(ctx: FileContext, call: cst.Call, factor: str) -> None:
    kind = _kind(ctx, call)
    if nodes.has_star_args(call):
        raise Decline("the init call passes *args/**kwargs")
    if kind == "random":
        ctx.rewrite(call, lambda updated: nodes.times(updated, factor, parenthesize=True))
        return
    assert kind is not None, "an init call: _init_call chose it by its kind"
    how, name = kind.split(":")
    if name == "uniform_":
        offset = 1 if how == "init" else 0
        bounds = [
            nodes.argument(call, "a" if how == "init" else "from", offset),
            nodes.argument(call, "b" if how == "init" else "to", offset + 1),
        ]
        given = [b for b in bounds if b is not None]
        if len(given) < len(bounds):
            raise Decline("uniform_ without explicit bounds")
        for bound in given:
            _scale_argument(ctx, call, bound, factor)
        return
    std = nodes.argument(call, "std", (STD_POSITION if how == "init" else METHOD_STD_POSITION)[name])
    if std is None:
        ctx.rewrite(call, lambda updated: nodes.add_keyword(updated, "std", factor))
    else:
        _scale_argument(ctx, call, std, factor)


def _scale_argument(ctx: FileContext, call: cst.Call, arg: cst.Arg, factor: str) -> None:
    """`std=s` -> `std=s * factor`; `s` in parentheses unless it is an atom or a product/quotient."""
    value = arg.value
    product = isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Multiply, cst.Divide))
    atom = isinstance(value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Float, cst.Integer))
    wrap = not (product or atom or value.lpar)

    def scaled(updated: cst.BaseExpression) -> cst.BaseExpression:
        if wrap:
            updated = updated.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        return nodes.times(updated, factor, parenthesize=False)

    ctx.rewrite(value, scaled)
    continuation = nodes.break_column(ctx, call, len(factor) + 3)
    position = call.args.index(arg)
    if continuation is not None and position > 0:  # continue the call on a new line, before this argument
        ctx.rewrite(
            call,
            lambda updated: updated.with_changes(
                args=[
                    a.with_changes(comma=a.comma.with_changes(whitespace_after=nodes.line_break(continuation)))
                    if i == position - 1 and isinstance(a.comma, cst.Comma)
                    else a
                    for i, a in enumerate(updated.args)
                ]
            ),
        )


def _guard(ctx: FileContext, call: cst.Call, edit: InitStd) -> str:
    """`module.weight is not self.lm_head.weight`: the factor applies to the hidden weights only."""
    fn = ctx.enclosing(call, cst.FunctionDef)
    cls = ctx.enclosing(fn, cst.ClassDef) if fn is not None else None
    if cls is None or cls.name.value != target_class(edit.target):
        raise Decline(
            f"line {edit.line} also initialises {', '.join(edit.exclude)}, which are not hidden; "
            "a guard needs the model (self) in reach"
        )
    tensor = _initialised_tensor(ctx, call)
    others = [_attribute_path(name) for name in edit.exclude]
    if len(others) == 1:
        return f"{tensor} is not {others[0]}"
    return f"all({tensor} is not p for p in ({', '.join(others)}))"


def _initialised_tensor(ctx: FileContext, call: cst.Call) -> str:
    target: cst.BaseExpression | None
    if (_kind(ctx, call) or "").startswith("method:"):
        target = cst.ensure_type(call.func, cst.Attribute).value
    else:
        first = nodes.argument(call, "tensor", 0)
        target = first.value if first is not None else None
    name = nodes.dotted(target) if target is not None else None
    if name is None:
        raise Decline("the initialised tensor is an expression, so it cannot be told apart from the readout")
    return re.sub(r"\.data$", "", name)  # `.data` is a new tensor object: compare the parameter


def _attribute_path(name: str) -> str:
    """`transformer.h.0.attn.weight` -> `self.transformer.h[0].attn.weight`."""
    out = "self"
    for part in name.split("."):
        out += f"[{part}]" if part.isdigit() else f".{part}"
    return out
