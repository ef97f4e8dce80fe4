"""Residual adds read from small hand-made graphs (no torch.export: milliseconds): which adds are
residual, the skip and branch sides, the branch's factor and parameters, post-LN."""

from __future__ import annotations

from mulint.analysis.residual import residual_adds
from mulint.trace import Node, Ref, Traced, graph_of

SHAPE = (2, 8, 16)


def graph(*ops: tuple) -> Traced:
    """``("name", "op", args...)`` in order; names starting with `p_` are parameters, `x` the input."""
    nodes = [Node("x", "placeholder", (), {}, SHAPE, is_user_input=True)]
    params = {}
    for name, op, *args in ops:
        if op == "param":
            params[args[0]] = name
            nodes.append(Node(name, "placeholder", (), {}, (16, 16), param=args[0]))
        else:
            refs = tuple(Ref(a) if isinstance(a, str) else a for a in args)
            nodes.append(Node(name, op, refs, {}, SHAPE, module_path=f"h.0.{name}"))
    nodes.append(Node("output", "output", (Ref(nodes[-1].name),), {}, None))
    return Traced(nodes={n.name: n for n in nodes}, graph=graph_of(nodes), param_nodes=params)


def block(scale: float = 0.5, norm_after: bool = False) -> Traced:
    ops = [
        ("p_ln", "param", "h.0.ln.weight"),
        ("p_w", "param", "h.0.attn.weight"),
        ("ln", "layer_norm", "x", [16], "p_ln"),
        ("lin", "linear", "ln", "p_w"),
        ("scaled", "mul", "lin", scale),
        ("add", "add", "x", "scaled"),
    ]
    if norm_after:
        ops += [
            ("p_ln2", "param", "h.1.ln.weight"),
            ("p_w2", "param", "h.1.attn.weight"),
            ("post", "layer_norm", "add", [16], "p_ln2"),
            ("lin2", "linear", "post", "p_w2"),
            ("add2", "add", "post", "lin2"),
        ]
    return graph(*ops)


def test_a_residual_add_has_its_skip_branch_factor_and_parameters():
    [add] = residual_adds(block(0.5))
    assert (add.node, add.kind, add.skip.root, add.branch.root) == ("add", "main", "x", "lin")
    assert add.branch.factor == 0.5 and add.skip.factor == 1.0
    assert add.params == ("h.0.attn.weight", "h.0.ln.weight")
    assert add.last_weight == "h.0.attn.weight"
    assert not add.post_norm


def test_an_add_without_parameters_between_is_not_residual():
    # GELU's tanh form: x + 0.044715 * x³ adds x to a function of itself, with no weight in between.
    traced = graph(("cube", "pow", "x", 3), ("small", "mul", "cube", 0.044715), ("inner", "add", "x", "small"))
    assert residual_adds(traced) == []


def test_a_factor_on_the_skip_path_is_read_as_such():
    traced = graph(
        ("p_w", "param", "h.0.attn.weight"),
        ("lin", "linear", "x", "p_w"),
        ("kept", "mul", "x", 0.25),
        ("add", "add", "kept", "lin"),
    )
    [add] = residual_adds(traced)
    assert (add.skip.root, add.skip.factor, add.branch.factor) == ("x", 0.25, 1.0)


def test_a_sum_that_goes_through_a_norm_into_the_next_add_is_post_ln():
    first, second = residual_adds(block(norm_after=True))
    assert first.post_norm and first.kind == "main"
    assert not second.post_norm  # the last sum reaches the output: nothing says post-LN there
