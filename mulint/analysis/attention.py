"""Attention sites: where logits q·kᵀ are scaled, by how much, and whether head_dim grows with width."""

from __future__ import annotations

import math

from mulint.analysis.scales import (
    ACT_CONTRACTIONS,
    LAYOUT,
    MASKING,
    SCALING,
    SDPA,
    SOFTMAX,
    exponent,
    scalar_factor,
    walk_back,
)
from mulint.facts import AttentionSite, SourceLoc
from mulint.trace import Node, Ref, Traced

# Logit soft-capping (Gemma 2, Grok: c·tanh(x/c)) is the identity on the logits' scale until they
# reach c: the scale that matters is the one applied before it.
SOFTCAP = {"tanh"}


def _logit_source(traced: Traced, softmax: Node, dependent: set[str]):
    """From a softmax back to the q·kᵀ contraction: (contraction node, factor, locs) or None."""
    frontier: list[tuple[str, float, list[SourceLoc]]] = [(r.name, 1.0, []) for _, _, r in softmax.input_refs()[:1]]
    for _ in range(12):
        nxt = []
        for name, factor, locs in frontier:
            node = traced.nodes[name]
            if node.op in ACT_CONTRACTIONS:
                operands = [r.name for _, _, r in node.input_refs() if r.name in dependent]
                if len(operands) >= 2:
                    return node, factor * _alpha(node), locs
                continue
            refs = [r.name for _, _, r in node.input_refs() if r.name in dependent]
            if len(refs) == 1 and (value := scalar_factor(node, refs[0])) is not None:
                nxt.append((refs[0], factor * value, locs + ([node.loc] if node.loc else [])))
            elif node.op in LAYOUT or node.op in MASKING or node.op in SOFTCAP:
                nxt.extend((r, factor, locs) for r in refs)
        frontier = nxt
        if not frontier:
            break
    return None


def _alpha(node: Node) -> float:
    """baddbmm's own factor on the product (BLOOM: alibi.baddbmm(q, k, alpha=1/sqrt(head_dim)))."""
    alpha = node.kwargs.get("alpha", 1.0)
    return float(alpha) if isinstance(alpha, (int, float)) else 1.0


def _sdpa_scale(node: Node) -> float | None:
    scale = node.kwargs.get("scale")
    if scale is None and len(node.args) > 6 and not isinstance(node.args[6], Ref):
        scale = node.args[6]
    return float(scale) if isinstance(scale, (int, float)) else None


def _site(traced: Traced, node: Node, dependent: set[str]):
    """(form, explicit scale or None, pre-factor on q and k, head_dim, locs, q operand) of one site."""
    if node.op in SDPA:
        q, k = node.args[0], node.args[1]
        fq, lq, sq = walk_back(traced, q.name, dependent, logits_only=True)
        fk, lk, sk = walk_back(traced, k.name, dependent, logits_only=True)
        head_dim = _last_dim(traced, q.name)
        scale = _sdpa_scale(node)
        form = "sdpa" if scale is not None else "sdpa-default"
        scale = scale if scale is not None else 1 / math.sqrt(head_dim)
        return _tensor_form(form, traced, (sq, sk), dependent), scale * fq * fk, head_dim, lq + lk, node
    found = _logit_source(traced, node, dependent)
    if found is None:
        return None
    contraction, factor, locs = found
    operands = [r.name for _, _, r in contraction.input_refs() if r.name in dependent]
    fq, lq, sq = walk_back(traced, operands[0], dependent, logits_only=True)
    fk, lk, sk = walk_back(traced, operands[1], dependent, logits_only=True)
    head_dim = _last_dim(traced, operands[0])
    form = _tensor_form("explicit", traced, (sq, sk), dependent)
    return form, factor * fq * fk, head_dim, locs + lq + lk, contraction


def _last_dim(traced: Traced, name: str) -> int:
    shape = traced.nodes[name].shape
    assert shape is not None, "q and k are tensors"
    return shape[-1]


def _tensor_form(form: str, traced: Traced, stops: tuple[str, ...], dependent: set[str]) -> str:
    """ "tensor" when q or k is scaled by a tensor computed in forward (DeBERTa's
    ``k / torch.sqrt(torch.tensor(d) * 3)``): its value does not exist on the meta device."""
    for name in stops:
        node = traced.nodes[name]
        refs = [r.name for _, _, r in node.input_refs()]
        if node.op in SCALING and len(refs) == 2 and sum(r in dependent for r in refs) == 1:
            return "tensor"
    return form


def attention_sites(ref: Traced, other: Traced, widths: tuple[int, int], dependent: set[str]) -> list[AttentionSite]:
    sites = []
    for node in ref.nodes.values():
        if node.op not in SDPA and node.op not in SOFTMAX:
            continue
        if node.op in SOFTMAX and node.name not in dependent:
            continue
        a = _site(ref, node, dependent)
        b = _site(other, other.nodes[node.name], dependent) if node.name in other.nodes else None
        if a is None or b is None:
            continue
        form, scale, head_dim, locs, anchor = a
        _, scale_other, head_dim_other, _, _ = b
        loc = locs[0] if locs else (node.loc if node.op in SDPA else anchor.loc) or node.loc
        sites.append(
            AttentionSite(
                node=node.name,
                form=form,
                loc=loc,
                head_dim=head_dim,
                head_dim_exponent=exponent(head_dim, head_dim_other, *widths),
                scale=scale,
                scale_exponent=exponent(scale, scale_other, *widths),
            )
        )
    return sites
