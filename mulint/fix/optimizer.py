"""MU301/MU302: per-role learning rates, by splitting the optimizer's param groups right where it is built.

    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)
 -> return mup_scale_param_groups(torch.optim.AdamW(groups, lr=learning_rate, betas=betas), self,
                                  self.config.n_embd / 128)

The user's own grouping (weight decay by `p.dim()`, no-decay lists, ...) is kept: every group is
split by the table of parameter-name patterns mulint writes beside the helper, and each part's lr
is scaled by `width_mult ** exponent` (1 at the base width, so nothing changes there). AdamW's
weight decay moves the other way, so its `lr * weight_decay` stays the same at every width.
The exponents are what each parameter's role needs given the multipliers on its path, including a
readout multiplier the MU102 fix adds in the same run.
"""

from __future__ import annotations

import libcst as cst

from mulint.edits import OptimizerLr, ParamLr
from mulint.fix import nodes
from mulint.fix.context import FileContext
from mulint.fix.source import Decline, NotForThisFinding
from mulint.fix.width import target_class, width_expression
from mulint.paths import layer_pattern

HELPER = "mup_scale_param_groups"
TABLE = "MUP_LR_EXPONENTS"
COMMENT = "µP: learning rates by parameter role, {base} the base width (see {table})"


def fix(ctx: FileContext, edit: OptimizerLr, state: dict) -> None:
    """The first finding at an optimizer rewrites it for every role; each finding then learns whether
    its own role's parameters got their learning rate."""
    site = (edit.path, edit.line)
    done = state.setdefault("optimizer_sites", {})
    if site not in done:
        done[site] = _rewrite(ctx, edit, state)
    unfixed = {role: why for role, why in done[site].items() if role == edit.role}
    if unfixed:
        raise NotForThisFinding(unfixed[edit.role])


def _rewrite(ctx: FileContext, edit: OptimizerLr, state: dict) -> dict[str, str]:
    """Wrap the optimizer's construction; returns role -> why its parameters could not be fixed."""
    if HELPER in ctx.top_level_names() or TABLE in ctx.top_level_names():
        raise Decline(f"the file already defines {HELPER}/{TABLE}: update the table by hand")
    exponents, unfixed = _exponents(edit, state.get("readout_multiplier", set()))
    if not exponents:
        return unfixed  # every other role already right once this run's readout multiplier is in place
    call = _optimizer_call(ctx, edit)
    base = edit.base_width
    width = width_expression(ctx, call, edit.width_knob, target_class(edit.target))
    model = _model_expression(ctx, call, edit)
    statement = ctx.enclosing(call, cst.SimpleStatementLine)
    assert statement is not None, "the optimizer call was found in a statement line"
    indent = ctx.indented(ctx.positions[statement].start.line)
    ctx.rewrite(
        call,
        lambda updated: cst.Call(
            func=cst.Name(HELPER),
            whitespace_before_args=nodes.line_break(indent),
            args=[
                cst.Arg(updated, comma=_comma()),
                cst.Arg(nodes.expression(model), comma=_comma()),
                cst.Arg(nodes.expression(f"{width} / {base}")),
            ],
        ),
    )
    ctx.add_import("fnmatch")
    ctx.add_top_level(TABLE, _table(exponents))
    ctx.add_top_level(HELPER, _helper("AdamW" in edit.cls))
    ctx.comment_above(call, COMMENT.format(base=base, table=TABLE))
    return unfixed


def _comma() -> cst.Comma:
    return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def _exponents(edit: OptimizerLr, multiplied: set[str]) -> tuple[dict[str, float], dict[str, str]]:
    """(name pattern -> powers of width_mult its lr needs on top of what it has, role -> why some of
    its parameters cannot get theirs). Parameters that cannot are left out of the table."""
    table: dict[str, float] = {}
    unfixed: dict[str, str] = {}
    for param in edit.params:
        try:
            change = _change(param, multiplied)
        except Decline as exc:
            for use in param.uses:
                unfixed.setdefault(use.role, str(exc))
            continue
        pattern = layer_pattern(param.names[0])
        if change and table.get(pattern, change) != change:
            raise Decline(f"parameters matching `{pattern}` need different learning rates")
        if change:
            table[pattern] = change
    return table, unfixed


def _change(param: ParamLr, multiplied: set[str]) -> float:
    readout_mult = -1.0 if set(param.names) & multiplied else 0.0
    wanted = {
        round(u.target - u.k * (u.multiplier + (readout_mult if u.role == "output" else 0)), 2) for u in param.uses
    }
    if max(wanted) - min(wanted) > 0.1:
        roles = "/".join(sorted({u.role for u in param.uses}))
        raise Decline(
            f"`{param.names[0]}` ({roles}) would need different learning rates for its roles; "
            f"fix MU102 too (a multiplier on the logits), then its lr can stay as it is"
        )
    exact = min(wanted) - param.lr_exponent
    change = round(exact * 2) / 2
    if abs(change - exact) > 0.15:
        raise Decline(f"`{param.names[0]}` needs its lr ∝ width^{min(wanted):+.2f}, not a multiple of 0.5")
    return change


def _optimizer_call(ctx: FileContext, edit: OptimizerLr) -> cst.Call:
    cls = edit.cls

    def is_optimizer(call: cst.Call) -> bool:
        names = ctx.qualified_names(call) | {nodes.dotted(call.func) or ""}
        return any(name.split(".")[-1] == cls for name in names)

    found = nodes.calls_on_line(ctx, edit.line, is_optimizer)
    if len(found) != 1:
        raise Decline(f"could not find the {cls}(...) construction on line {edit.line}")
    return found[0]


def _model_expression(ctx: FileContext, call: cst.Call, edit: OptimizerLr) -> str:
    fn = ctx.enclosing(call, cst.FunctionDef)
    params = [p.name.value for p in fn.params.params] if fn is not None else []
    cls = ctx.enclosing(fn, cst.ClassDef) if fn is not None else None
    if cls is not None and params[:1] == ["self"] and cls.name.value == target_class(edit.target):
        return "self"
    if cls is None and params:
        return params[0]
    raise Decline(
        "the optimizer is built where the model is not in reach (neither `self` of the model "
        "class nor the first argument of a function)"
    )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _table(exponents: dict[str, float]) -> str:
    rows = "".join(f'    "{pattern}": {_number(e)},\n' for pattern, e in sorted(exponents.items()))
    return (
        "# µP learning rates by parameter role (Tensor Programs V, Table 8): a parameter whose name matches\n"
        "# a pattern learns at its group's lr * width_mult ** exponent, with width_mult = width / base width.\n"
        f"{TABLE} = {{\n{rows}}}\n"
    )


def _helper(decoupled_decay: bool) -> str:
    decay = ', "weight_decay": group["weight_decay"] / scale' if decoupled_decay else ""
    doc = (
        "\n    AdamW's weight decay is scaled the other way, so that lr * weight_decay stays the same.\n    "
        if decoupled_decay
        else ""
    )
    return (
        f"def {HELPER}(optimizer, model, width_mult):\n"
        f'    """Split every param group of `optimizer` by {TABLE} and scale each part\'s learning rate.{doc}"""\n'
        "    exponents = {}\n"
        "    for name, param in model.named_parameters(remove_duplicate=False):\n"
        f"        for pattern, exponent in {TABLE}.items():\n"
        "            if fnmatch.fnmatchcase(name, pattern):\n"
        "                exponents[id(param)] = exponent\n"
        "    groups = list(optimizer.param_groups)\n"
        "    optimizer.param_groups.clear()\n"
        "    for group in groups:\n"
        "        parts = {}\n"
        '        for param in group["params"]:\n'
        "            parts.setdefault(exponents.get(id(param), 0), []).append(param)\n"
        "        for exponent, params in parts.items():\n"
        "            scale = width_mult ** exponent\n"
        "            optimizer.add_param_group(\n"
        f'                {{**group, "params": params, "lr": group["lr"] * scale{decay}}})\n'
        "    return optimizer\n"
    )
