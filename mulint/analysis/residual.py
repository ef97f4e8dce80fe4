"""Residual adds in one trace: ``x + m·F(x)``, the skip path x, the branch F and its constant factor m.

An add is residual when the value on one side (walked back through layout ops and constant factors)
is an ancestor of the other side: that side is the skip path, the other the branch, and the parameters
the branch reads that the skip path does not are the branch's. A branch that holds other residual adds
(a U-Net skip from an earlier layer, x0 injected into a later block) is not a block's branch but an
extra path into the stream, as is any add of a value into the stream that neither side derives from.
Read at one depth only; mulint.analysis.depth lines the adds of several depths up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from mulint.analysis.scales import LAYOUT, WEIGHT_CONTRACTIONS, scalar_factor
from mulint.facts import SourceLoc
from mulint.trace import Node, Traced

NORM_OPS = {"layer_norm", "native_layer_norm", "rms_norm", "_fused_rms_norm", "group_norm", "batch_norm"}
MAX_WALK = 32  # ops walked back from an add through layout ops and factors


@dataclass
class Walk:
    """A value walked back to where it is computed: the constant factor met, gates met, where it starts."""

    root: str
    start: str = ""  # the add's operand the walk began at
    factor: float = 1.0
    locs: list[SourceLoc] = field(default_factory=list)
    gates: list[str] = field(default_factory=list)  # parameters multiplied in (a learnable gate)


@dataclass
class ResidualAdd:
    """One add of a branch into the stream, in one trace."""

    node: str  # the add
    skip: Walk  # the stream side
    branch: Walk  # the branch side
    params: tuple[str, ...]  # parameters the branch reads and the stream does not (traced names)
    kind: str  # "main" or "extra"
    loc: SourceLoc | None
    module: str = ""  # the module holding the branch's parameters (their common prefix)
    last_weight: str | None = None  # the parameter of the branch's last contraction
    post_norm: bool = False
    cancelled_factor: float = 1.0  # a factor in front of a norm that undoes it (on the branch's input)
    cancelled_at: SourceLoc | None = None


def is_norm(node: Node) -> bool:
    """A normalisation: the op, or any op inside a module named like one (a hand-written RMSNorm)."""
    return node.op in NORM_OPS or "norm" in node.module_type.lower()


def walk_value(traced: Traced, name: str, dependent: set[str]) -> Walk:
    """Back from ``name`` through layout ops, constant factors and multiplications by a parameter that
    does not depend on the inputs (a gate): the value's root and what was applied on the way."""
    walk = Walk(root=name, start=name)
    for _ in range(MAX_WALK):
        node = traced.nodes[walk.root]
        refs = [r.name for _, _, r in node.input_refs()]
        active = [r for r in refs if r in dependent]
        if len(active) != 1:
            break
        value = scalar_factor(node, active[0])
        if value is not None:
            walk.factor *= value
            walk.locs += [node.loc] if node.loc else []
        elif node.op == "mul" and len(refs) == 2:
            gate = _param_of(traced, next(r for r in refs if r != active[0]), dependent)
            if gate is None:
                break
            walk.gates.append(gate)
            walk.locs += [node.loc] if node.loc else []
        elif node.op not in LAYOUT:
            break
        walk.root = active[0]
    return walk


def _param_of(traced: Traced, name: str, dependent: set[str]) -> str | None:
    """The parameter a weight-side value is (through layout ops), or None."""
    for _ in range(MAX_WALK):
        node = traced.nodes[name]
        if node.param is not None:
            return node.param
        refs = [r.name for _, _, r in node.input_refs() if r.name not in dependent]
        if node.op not in LAYOUT or len(refs) != 1:
            return None
        name = refs[0]
    return None


def _params_in(traced: Traced, nodes: set[str]) -> set[str]:
    return {traced.nodes[n].param for n in nodes if traced.nodes[n].param is not None}  # type: ignore[misc]


def residual_adds(traced: Traced) -> list[ResidualAdd]:
    """Every residual add of the trace, main branches and extra paths, in graph order."""
    dependent = traced.input_dependent()
    ancestors: dict[str, set[str]] = {}

    def anc(name: str) -> set[str]:
        if name not in ancestors:
            ancestors[name] = nx.ancestors(traced.graph, name)
        return ancestors[name]

    def between(skip: Walk, branch: Walk) -> set[str]:  # what the branch computes that the stream does not
        return anc(branch.root) - anc(skip.root) - {skip.root}

    # (add, skip, branch, its parameters, what it computes; None for a gated path from the stream's own root)
    candidates: list[tuple[Node, Walk, Walk, set[str], set[str] | None]] = []
    for node in traced.nodes.values():
        sides = _stream_operands(node, dependent)
        if sides is None:
            continue
        a, b = (walk_value(traced, s, dependent) for s in sides)
        if a.root == b.root:
            if a.gates or b.gates:  # `x0 + g·x0` in the first block: the gated side is the path
                skip, branch = (b, a) if a.gates else (a, b)
                candidates.append((node, skip, branch, set(branch.gates), None))
            continue
        if a.root in anc(b.root) or b.root in anc(a.root):
            skip, branch = (a, b) if a.root in anc(b.root) else (b, a)
            params = _params_in(traced, between(skip, branch)) | set(branch.gates)
            if params:
                candidates.append((node, skip, branch, params, between(skip, branch)))
    adds = {node.name for node, *_ in candidates}

    def own_params(skip: Walk, branch: Walk) -> tuple[str, ...]:
        """The branch's parameters, without those of another stream it reads (a decoder's cross-attention
        reads the encoder's output: the encoder's blocks are not the decoder block's branch)."""
        region = between(skip, branch)
        for other in (region & adds) - nx.descendants(traced.graph, skip.root):
            for end in _stream_ends(traced, other, region):  # the other stream up to its final norm
                region -= anc(end) | {end}
        return tuple(sorted(_params_in(traced, region) | set(branch.gates)))

    found: list[ResidualAdd] = []
    for node, skip, branch, params, region in candidates:
        if region is None:
            found.append(ResidualAdd(node.name, skip, branch, tuple(sorted(params)), "extra", node.loc))
        elif region & adds & nx.descendants(traced.graph, skip.root):
            # The "branch" holds other residual adds after the skip (an encoder's adds, read by a decoder's
            # cross-attention, are not after it): the stream itself, and the other side an extra path.
            found.append(ResidualAdd(node.name, branch, skip, own_params(branch, skip), "extra", node.loc))
        else:
            # GPT-NeoX's `mlp_out + attn_out + x`: one add of two branches, each its own
            parts = _parallel_parts(traced, branch, dependent) or [branch]
            found += [ResidualAdd(node.name, skip, part, own_params(skip, part), "main", node.loc) for part in parts]
    stream = {r.node for r in found} | {r.skip.root for r in found}
    found += _injections(traced, dependent, stream, {r.node for r in found}, anc)
    for add in found:
        add.module = _common_module(traced, add)
        add.last_weight = _last_weight(traced, add.branch.root, dependent)
        add.post_norm = _feeds_only_norms(traced, add.node, stream)
        if add.kind == "main":
            add.cancelled_factor, add.cancelled_at = _factor_before_norm(traced, add, dependent, anc)
    return sorted(found, key=lambda r: list(traced.nodes).index(r.node))


def _stream_ends(traced: Traced, start: str, region: set[str]) -> set[str]:
    """``start`` and what follows it through layout ops and norms only: a stream up to its final norm."""
    found, stack = {start}, [start]
    while stack:
        for node, _, _ in traced.consumers(stack.pop()):
            if node.name in region and node.name not in found and (is_norm(node) or node.op in LAYOUT):
                found.add(node.name)
                stack.append(node.name)
    return found


def _parallel_parts(traced: Traced, branch: Walk, dependent: set[str]) -> list[Walk]:
    """The two branches of a parallel block summed before the stream is added, each with its own factor
    times the sum's; none when the branch is one computation."""
    sides = _stream_operands(traced.nodes[branch.root], dependent)
    if sides is None:
        return []
    parts = [walk_value(traced, s, dependent) for s in sides]
    if parts[0].root == parts[1].root or any(
        p.root in nx.ancestors(traced.graph, q.root) for p, q in (parts, parts[::-1])
    ):
        return []
    for part in parts:
        part.factor *= branch.factor
        part.locs = branch.locs + part.locs
        part.gates = branch.gates + part.gates
        part.start = branch.start
    return parts


def _stream_operands(node: Node, dependent: set[str]) -> tuple[str, str] | None:
    """The two input-dependent operands of an add whose result has both operands' shape (no broadcast)."""
    if node.op != "add" or node.name not in dependent or len(node.args) < 2:
        return None
    refs = [a for a in node.args[:2] if hasattr(a, "name") and a.name in dependent]
    if len(refs) != 2 or len(node.args) > 2 and node.args[2] not in (1, 1.0):
        return None
    return refs[0].name, refs[1].name


def _injections(traced: Traced, dependent, stream: set[str], known: set[str], anc) -> list[ResidualAdd]:
    """Adds into the stream of a value neither side derives from: a value embedding (an extra path), or
    a parallel block's second branch (main)."""
    found = []
    for node in traced.nodes.values():
        sides = _stream_operands(node, dependent)
        if sides is None or node.name in known:
            continue
        walks = [walk_value(traced, s, dependent) for s in sides]
        on_stream = [w for w in walks if w.root in stream]
        if len(on_stream) != 1:
            continue
        skip = on_stream[0]
        branch = walks[1] if walks[0] is skip else walks[0]
        region = anc(branch.root) - anc(skip.root) - {skip.root}
        params = _params_in(traced, region) | set(branch.gates)
        # A parallel block's second branch reads the stream before the first was added: a main branch.
        kind = "main" if params and anc(branch.root) & stream and not region & known else "extra"
        found.append(ResidualAdd(node.name, skip, branch, tuple(sorted(params)), kind, node.loc))
    return found


def _common_module(traced: Traced, add: ResidualAdd) -> str:
    """The deepest module holding the branch's parameters, from their names; a pre-norm's gain and a
    gate are left out when there are others (they sit in the block, beside the branch's module)."""
    own = [p for p in add.params if p not in add.branch.gates and not _feeds_norm(traced, p)] or list(add.params)
    names = [p.rsplit(".", 1)[0].split(".") if "." in p else [] for p in own]
    if not names:
        return traced.nodes[add.branch.root].module_path
    common: list[str] = []
    for parts in zip(*names):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common)


def _feeds_norm(traced: Traced, param: str) -> bool:
    """Whether a parameter is a norm's gain or bias (read by a norm op, or inside a norm module)."""
    name = traced.param_nodes.get(param)
    return name is not None and any(is_norm(node) for node, _, _ in traced.consumers(name))


def _last_weight(traced: Traced, root: str, dependent: set[str]) -> str | None:
    """The weight of the contraction that computes the branch's output (the largest parameter it reads)."""
    node = traced.nodes[root]
    if node.op not in WEIGHT_CONTRACTIONS:
        return None
    params = [_param_of(traced, r.name, dependent) for _, _, r in node.input_refs() if r.name not in dependent]
    sized = [(len(traced.nodes[traced.param_nodes[p]].shape or ()), p) for p in params if p in traced.param_nodes]
    return max(sized)[1] if sized else None


def _feeds_only_norms(traced: Traced, name: str, stream: set[str]) -> bool:
    """Post-LN: the sum reaches only norms (through layout ops), and a norm's output is the stream again
    (a later add's skip path): a pre-LN model's last sum feeds only the final norm, which is not."""
    frontier, norms = [name], []
    while frontier:
        current = frontier.pop()
        for node, _, _ in traced.consumers(current):
            if node.op == "output":
                return False
            if is_norm(node):
                norms.append(node)
            elif node.op in LAYOUT:
                frontier.append(node.name)
            else:
                return False
    return any(_norm_output(traced, n) in stream for n in norms)


def _norm_output(traced: Traced, norm: Node) -> str:
    """The last node of a norm (a hand-written one spans several ops of its module)."""
    name = norm.name
    while True:
        nxt = [c for c, _, _ in traced.consumers(name) if c.module_path == norm.module_path and c.op != "output"]
        if not nxt or not is_norm(nxt[0]):
            return name
        name = nxt[0].name


def _factor_before_norm(traced: Traced, add: ResidualAdd, dependent, anc) -> tuple[float, SourceLoc | None]:
    """A constant factor on the stream where it enters the branch, right before the branch's own norm:
    the norm divides it out again (``x + F(norm(m·x))``)."""
    region = anc(add.branch.root) - anc(add.skip.root) - {add.skip.root}
    on_skip = anc(add.skip.start) | {add.skip.start}  # a factor the stream itself carries (Gemma's embed scale)
    for node, _, _ in traced.consumers(add.skip.root):
        if node.name not in region or node.name in on_skip:
            continue
        value = scalar_factor(node, add.skip.root)
        if value is None:
            continue
        name = node.name
        for _ in range(MAX_WALK):
            nxt = [c for c, _, _ in traced.consumers(name) if c.name in region]
            if len(nxt) != 1:
                break
            if is_norm(nxt[0]):
                return value, node.loc
            if nxt[0].op not in LAYOUT:
                break
            name = nxt[0].name
    return 1.0, None
