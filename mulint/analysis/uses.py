"""How each parameter is *used*: find the ops that consume it and read fan_in / fan_out from them.

Starting at a parameter, follow the weight side of the graph (every node that does not depend on
the user's inputs: views, transposes, casts, scalar multipliers, weight normalisation) to the
first op that mixes it with activations. That op and the parameter's operand position in it say
which dimensions are contracted (fan_in) and which are produced (fan_out). Which dimensions grow
with width is read by comparing the operand's shape in two traces at different widths.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from mulint.analysis.scales import exponent, input_side, output_side, scalar_factor
from mulint.facts import ParamUse, SourceLoc
from mulint.trace import Node, Traced

Axes = tuple[list[int], list[int]]  # (contracted axes, produced axes) of one operand


def _mm_left(ndim: int) -> Axes:
    return ([ndim - 1], [] if ndim == 1 else [ndim - 2])


def _mm_right(ndim: int) -> Axes:
    return ([0], []) if ndim == 1 else ([ndim - 2], [ndim - 1])


def _linear(node: Node, pos, idx, ndim: int) -> Axes | None:
    if pos in (1, "weight"):
        return ([ndim - 1], list(range(ndim - 1)))  # stored (out, in)
    if pos in (0, "input"):
        return ([ndim - 1], list(range(ndim - 1)))
    return None  # bias


def _addmm(node, pos, idx, ndim):
    return {1: _mm_left, 2: _mm_right}.get(pos, lambda n: None)(ndim)


def _mm(node, pos, idx, ndim):
    return {0: _mm_left, 1: _mm_right}.get(pos, lambda n: None)(ndim)


def _conv(node: Node, pos, idx, ndim):
    if pos not in (1, "weight"):
        return None
    transposed = node.op.startswith("conv_transpose") or (
        node.op == "convolution" and len(node.args) > 6 and node.args[6]
    )
    spatial = list(range(2, ndim))
    return ([0, *spatial], [1]) if transposed else ([1, *spatial], [0])


def _lookup(node: Node, pos, idx, ndim):
    if node.op in ("embedding", "embedding_bag", "_embedding_bag") and pos in (0, "weight"):
        return ([0], list(range(1, ndim)))
    if node.op == "index_select" and pos == 0:
        dim = node.args[1] % ndim
        return ([dim], [d for d in range(ndim) if d != dim])
    if node.op == "index" and pos == 0:
        return ([0], list(range(1, ndim)))
    return None


def _einsum(node: Node, pos, idx, ndim):
    if pos != 1 or idx is None:
        return None
    equation = node.args[0].replace(" ", "")
    lhs, _, out = equation.partition("->")
    terms = lhs.split(",")
    if not out and "->" not in equation:  # implicit output: letters used once, sorted
        letters = re.sub(r"[^a-zA-Z]", "", lhs)
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    mine = terms[idx]
    if "..." in mine:
        mine = mine.replace("...", "." * (ndim - len(mine) + 3))
    others = "".join(t for i, t in enumerate(terms) if i != idx)
    contracted = [i for i, c in enumerate(mine) if c != "." and c not in out]
    produced = [i for i, c in enumerate(mine) if c != "." and c in out and c not in others]
    return contracted, produced


def _tensordot(node: Node, pos, idx, ndim):
    if pos not in (0, 1) or len(node.args) < 4:
        return None
    dims = [d % ndim for d in node.args[2 + pos]]
    return dims, [d for d in range(ndim) if d not in dims]


def _bmm_like(left_pos: int, right_pos: int):
    def spec(node, pos, idx, ndim):
        if pos == left_pos:
            return _mm_left(ndim)
        if pos == right_pos:
            return _mm_right(ndim)
        return None

    return spec


CONTRACTIONS: dict[str, Callable] = {
    "linear": _linear,
    "addmm": _addmm,
    "mm": _mm,
    "bmm": _mm,
    "matmul": _mm,
    "dot": _mm,
    "vdot": _mm,
    "inner": _mm,
    "mv": _mm,
    # Mixture-of-experts: (tokens, in) x (experts, in, out), the expert axis finite.
    "grouped_mm": _mm,
    "_grouped_mm": _mm,
    "grouped_mm_fallback": _mm,
    "baddbmm": _bmm_like(1, 2),
    "addbmm": _bmm_like(1, 2),
    "addmv": _bmm_like(1, 2),
    "einsum": _einsum,
    "tensordot": _tensordot,
    "conv1d": _conv,
    "conv2d": _conv,
    "conv3d": _conv,
    "convolution": _conv,
    "conv_transpose1d": _conv,
    "conv_transpose2d": _conv,
    "conv_transpose3d": _conv,
    "embedding": _lookup,
    "embedding_bag": _lookup,
    "_embedding_bag": _lookup,
    "index_select": _lookup,
    "index": _lookup,
}
LOOKUPS = {"embedding", "embedding_bag", "_embedding_bag", "index_select", "index"}


def growing_axes(name: str, ref: Traced, other: Traced) -> set[int]:
    theirs = other.nodes.get(name)
    a, b = ref.nodes[name].shape, theirs.shape if theirs is not None else None
    if a is None or b is None or len(a) != len(b):
        return set()
    return {i for i, (x, y) in enumerate(zip(a, b)) if x != y}


def _role(fan_in_inf: bool, fan_out_inf: bool) -> str:
    return {(False, True): "input", (True, True): "hidden", (True, False): "output"}.get(
        (fan_in_inf, fan_out_inf), "scalar"
    )


def weight_side_paths(start: str, traced: Traced, dependent: set[str]):
    """For each first activation-side consumer: (operand, consumer, position, list index, factor, locs).

    ``factor`` is the product of constant multipliers met on the weight side (``W * mult``).
    """
    found, seen = [], {start}
    stack: list[tuple[str, float, list[SourceLoc]]] = [(start, 1.0, [])]
    while stack:
        name, factor, locs = stack.pop()
        for consumer, pos, idx in traced.consumers(name):
            if consumer.op == "output":
                continue
            # A lookup is a use even when its indices are constants (positional embeddings).
            if consumer.name in dependent or consumer.op in LOOKUPS:
                found.append((name, consumer, pos, idx, factor, locs))
            elif consumer.name not in seen:
                seen.add(consumer.name)
                value = scalar_factor(consumer, name)
                if value is not None:
                    stack.append((consumer.name, factor * value, locs + ([consumer.loc] if consumer.loc else [])))
                else:
                    stack.append((consumer.name, factor, locs))
    return found


def _multipliers(start: str | None, traced: Traced, dependent: set[str]) -> dict[tuple, tuple[float, list]]:
    """(consumer, position, index) -> (total constant factor on that use's path, where they are)."""
    out: dict[tuple, tuple[float, list]] = {}
    if start is None:
        return out
    for _operand, consumer, pos, idx, w_factor, w_locs in weight_side_paths(start, traced, dependent):
        i_factor, i_locs = input_side(traced, consumer, dependent)
        o_factor, o_locs = output_side(traced, consumer, dependent)
        out[(consumer.name, pos, idx)] = (w_factor * i_factor * o_factor, w_locs + i_locs + o_locs)
    return out


def param_uses(
    fqn: str, ref: Traced, other: Traced, dependent: set[str], param_infinite: bool, widths: tuple[int, int] = (1, 2)
) -> list[ParamUse]:
    start = ref.param_nodes.get(fqn)
    if start is None:
        return []
    factors_ref = _multipliers(start, ref, dependent)
    factors_other = _multipliers(other.param_nodes.get(fqn), other, dependent)
    uses, seen = [], set()
    for operand, consumer, pos, idx, _, _ in weight_side_paths(start, ref, dependent):
        key = (consumer.name, pos, idx)
        if key in seen:
            continue
        seen.add(key)
        mult, locs = factors_ref.get(key, (1.0, []))
        mult_other, _ = factors_other.get(key, (mult, []))
        scaling = dict(
            multiplier=mult,
            multiplier_exponent=exponent(abs(mult), abs(mult_other), *widths),
            multiplier_at=locs[0] if locs else None,
            module=consumer.module_path,
        )
        shape = ref.nodes[operand].shape or ()
        growing = growing_axes(operand, ref, other)
        spec = CONTRACTIONS.get(consumer.op)
        axes = spec(consumer, pos, idx, len(shape)) if spec and shape else None
        if axes is None:
            role = "vector" if growing or param_infinite else "scalar"
            uses.append(
                ParamUse(
                    op=consumer.op,
                    kind="elementwise",
                    role=role,
                    fan_in=None,
                    fan_out=None,
                    fan_in_infinite=False,
                    fan_out_infinite=False,
                    node=consumer.name,
                    loc=consumer.loc,
                    **scaling,
                )
            )
            continue
        contracted, produced = axes
        fan_in_inf = any(a in growing for a in contracted)
        fan_out_inf = any(a in growing for a in produced)
        uses.append(
            ParamUse(
                op=consumer.op,
                kind="lookup" if consumer.op in LOOKUPS else "contraction",
                role=_role(fan_in_inf, fan_out_inf),
                fan_in=math.prod(shape[a] for a in contracted),
                fan_out=math.prod(shape[a] for a in produced),
                fan_in_infinite=fan_in_inf,
                fan_out_infinite=fan_out_inf,
                node=consumer.name,
                loc=consumer.loc,
                **scaling,
            )
        )
    return uses


def role_from_shape(shape: tuple[int, ...], infinite_dims: tuple[int, ...]) -> str:
    """For a parameter the trace never used: the storage-based guess (as the mup package makes)."""
    if not infinite_dims:
        return "scalar"
    if len(infinite_dims) == 1:
        return "vector"
    return "hidden"
