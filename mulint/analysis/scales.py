"""Constant multipliers in the graph: on each parameter's path (the `a` of the abc view) and on
attention logits. Scalars are python numbers baked into the trace, so comparing the same node in
the two traces gives how they change with width.
"""

from __future__ import annotations

import math

from mulint.facts import SourceLoc
from mulint.trace import Node, Ref, Traced

# Ops that move, cast or copy values without changing them.
LAYOUT = {
    "view",
    "_unsafe_view",
    "reshape",
    "t",
    "transpose",
    "permute",
    "unsqueeze",
    "squeeze",
    "flatten",
    "unflatten",
    "contiguous",
    "clone",
    "alias",
    "detach",
    "to",
    "_to_copy",
    "expand",
    "type_as",
    "getitem",
    "slice",
    "select",
    "split",
    "split_with_sizes",
    "chunk",
    "narrow",
    "unbind",
    "_assert_tensor_metadata",
    "lift_fresh_copy",
    "dropout",
    "native_dropout",
    "feature_dropout",
    "identity",
    "float",
    "half",
    "bfloat16",
    "movedim",
    "as_strided",
    "repeat_interleave",
    "repeat",
}
SCALING = {"mul", "div", "true_divide", "multiply", "divide"}
SOFTMAX = {"softmax", "_softmax", "_safe_softmax", "log_softmax"}
SDPA = {
    "scaled_dot_product_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_attention_math",
    "_scaled_dot_product_cudnn_attention",
}
ACT_CONTRACTIONS = {"matmul", "bmm", "mm", "einsum", "baddbmm"}
WEIGHT_CONTRACTIONS = {
    "linear",
    "addmm",
    "mm",
    "bmm",
    "matmul",
    "einsum",
    "conv1d",
    "conv2d",
    "conv3d",
    "convolution",
    "baddbmm",
    "addmv",
    "mv",
    "tensordot",
    "dot",
    "grouped_mm",
    "_grouped_mm",
    "grouped_mm_fallback",
}
MASKING = {"add", "sub", "masked_fill", "where", "_safe_softmax"}


def scalar_factor(node: Node, through: str) -> float | None:
    """The constant a mul/div node applies to its input ``through``; None when it is not constant."""
    if node.op not in SCALING:
        return None
    args = list(node.args[:2])
    others = [a for a in args if not (isinstance(a, Ref) and a.name == through)]
    if len(others) != 1 or isinstance(others[0], Ref) or not isinstance(others[0], (int, float)):
        return None
    value = float(others[0])
    if node.op in ("div", "true_divide", "divide"):
        return 1.0 / value if args[0] == Ref(through) and value else None
    return value


def _activation_inputs(node: Node, dependent: set[str]) -> list[str]:
    return [r.name for _, _, r in node.input_refs() if r.name in dependent]


def walk_back(
    traced: Traced, name: str, dependent: set[str], *, logits_only: bool = False
) -> tuple[float, list[SourceLoc], str]:
    """From an activation back through layout ops and constant factors: (factor, their lines, stop node).

    With ``logits_only`` (walking back from q or k), a factor that also reaches other values (a fused
    qkv projection's output times 1/sqrt(fan_in) reaches v as well) is the projection's multiplier,
    not the logits' scale, and is not counted.
    """
    factor, locs = 1.0, []
    for _ in range(32):
        node = traced.nodes[name]
        refs = _activation_inputs(node, dependent)
        if len(refs) != 1:
            break
        value = scalar_factor(node, refs[0])
        if value is not None:
            if not logits_only or feeds_only_logits(traced, node.name, dependent):
                factor *= value
                if node.loc:
                    locs.append(node.loc)
        elif node.op not in LAYOUT:
            break
        name = refs[0]
    return factor, locs, name


def _leads_to_softmax(traced: Traced, name: str, steps: int = 8) -> bool:
    """Whether a product of two activations is attention logits (it is normalised by a softmax)."""
    frontier = [name]
    for _ in range(steps):
        nxt = []
        for current in frontier:
            for node, _, _ in traced.consumers(current):
                if node.op in SOFTMAX:
                    return True
                if node.op in LAYOUT or node.op in SCALING or node.op in MASKING or node.op == "tanh":
                    nxt.append(node.name)
        frontier = nxt
    return False


def _logit_operand(node: Node, pos, traced: Traced) -> bool:
    """The value reaching ``node`` at ``pos`` is q or k of attention logits (not v, not a gate)."""
    if node.op in SDPA:
        return pos in (0, 1, "query", "key")
    return node.op in ACT_CONTRACTIONS and _leads_to_softmax(traced, node.name)


def feeds_only_logits(traced: Traced, name: str, dependent: set[str]) -> bool:
    """Whether every value computed from ``name`` through layout ops and constant factors ends as q
    or k of attention logits: only then does a factor there scale the logits rather than a layer."""
    stack, seen, reached = [name], set(), False
    while stack:
        current = stack.pop()
        for node, pos, _ in traced.consumers(current):
            if (node.name, current) in seen:
                continue
            seen.add((node.name, current))
            if _logit_operand(node, pos, traced):
                reached = True
            elif node.op in LAYOUT or scalar_factor(node, current) is not None:
                stack.append(node.name)
            else:
                return False
    return reached


def input_side(traced: Traced, consumer: Node, dependent: set[str]) -> tuple[float, list[SourceLoc]]:
    """Constant factors applied to the activation right before the op (MuReadout's x / width_mult)."""
    inputs = _activation_inputs(consumer, dependent)
    if len(inputs) != 1:
        return 1.0, []
    factor, locs, _ = walk_back(traced, inputs[0], dependent)
    return factor, locs


def output_side(traced: Traced, consumer: Node, dependent: set[str]) -> tuple[float, list[SourceLoc]]:
    """Constant factors on the op's output up to the next non-linearity (largest over branches).

    Factors that end only in attention logits (q * scale before q @ k, OPT's ``q_proj(x) * scaling``)
    belong to the logits, not to the projection, and are dropped; a factor on a fused qkv output
    reaches v too, so it is the projection's.
    """
    ends: list[tuple[float, list[SourceLoc]]] = []
    stack: list[tuple[str, float, list[SourceLoc]]] = [(consumer.name, 1.0, [])]
    seen = set()
    while stack:
        name, factor, locs = stack.pop()
        consumers = traced.consumers(name)
        if not consumers:
            ends.append((factor, locs))
        for nxt, pos, _idx in consumers:
            if (nxt.name, name) in seen:
                continue
            seen.add((nxt.name, name))
            value = scalar_factor(nxt, name)
            weight_operands = [r for _, _, r in nxt.input_refs() if r.name not in dependent]
            if value is not None:
                stack.append((nxt.name, factor * value, locs + ([nxt.loc] if nxt.loc else [])))
            elif nxt.op in LAYOUT or (nxt.op in ("add", "sub") and weight_operands):
                stack.append((nxt.name, factor, locs))
            elif _logit_operand(nxt, pos, traced) or (nxt.op in WEIGHT_CONTRACTIONS and weight_operands):
                # Attention logits, or the next layer's input (MuReadout's x / width_mult): not ours.
                continue
            else:
                ends.append((factor, locs))  # the next non-linearity, residual sum, v of attention or output
    ends = [e for e in ends if e[0] > 0]
    return max(ends, key=lambda e: abs(math.log(e[0])), default=(1.0, []))


def exponent(value_ref: float, value_other: float, width_ref: int, width_other: int) -> float:
    if value_ref <= 0 or value_other <= 0 or width_ref == width_other:
        return 0.0
    return math.log(value_other / value_ref) / math.log(width_other / width_ref)
