"""The fallback for models torch.export cannot trace (data-dependent control flow: token routing in a
mixture of experts, ``.item()`` in forward): run the model on small real inputs on the CPU and record
each aten op that runs, with its operands' shapes and which parameters they are.

The record is a `Traced` like an exported graph, so roles, multipliers and attention sites are read
the same way. Only the branch the inputs took is seen, as with export: so every width is built and run
from the same seeds on the same inputs, and `path_difference` tells when the widths still took different
paths (a branch on a value that changes with width), which no width exponent may be read from.
"""

from __future__ import annotations

import random
import sys
from types import FrameType
from typing import Any

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from mulint.construct.inputs import Inputs
from mulint.construct.provenance import is_library_file, quiet, source_loc
from mulint.errors import MulintError
from mulint.facts import SourceLoc
from mulint.trace import Node, Ref, Traced, graph_of, short_op

# Bookkeeping ops that carry no value worth a node.
_SKIP = {"detach", "_local_scalar_dense", "lift_fresh", "_assert_tensor_metadata", "sym_size", "sym_stride"}


class _Recorder(TorchDispatchMode):
    def __init__(self, model: nn.Module, inputs: Inputs) -> None:
        super().__init__()
        self.nodes: dict[str, Node] = {}
        self.of_tensor: dict[int, str] = {}  # id(tensor) -> node name
        self.alive: list[torch.Tensor] = []  # keeps ids unique while recording
        self.param_nodes: dict[str, str] = {}
        self.modules: list[str] = []  # the stack of running modules' paths
        self.module_types: list[str] = []
        self.counts: dict[tuple[str, str], int] = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            if id(p) not in self.of_tensor:
                node = self._add(
                    Node(name=f"param:{name}", op="placeholder", args=(), kwargs={}, shape=tuple(p.shape), param=name),
                    p,
                )
                self.param_nodes[name] = node
        args, kwargs = inputs
        for i, value in enumerate([*args, *kwargs.values()]):
            if isinstance(value, torch.Tensor):
                self._add(
                    Node(
                        name=f"input_{i}",
                        op="placeholder",
                        args=(),
                        kwargs={},
                        shape=tuple(value.shape),
                        is_user_input=True,
                    ),
                    value,
                )

    def _add(self, node: Node, tensor: torch.Tensor | None = None) -> str:
        self.nodes[node.name] = node
        if tensor is not None:
            self.of_tensor[id(tensor)] = node.name
            self.alive.append(tensor)
        return node.name

    def _name(self, op: str) -> str:
        """Named by module and order within it, so the two widths' records pair up even when routing
        sends tokens along different paths at each width."""
        module = self.modules[-1] if self.modules else ""
        k = self.counts[module, op] = self.counts.get((module, op), -1) + 1
        return f"{module}/{op}/{k}"

    def _plain(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            name = self.of_tensor.get(id(value))
            if name is not None:
                return Ref(name)
            if value.dim() == 0 and value.device.type != "meta":
                return value.item()  # a python number wrapped by the dispatcher, or a 0-dim constant
            return Ref(
                self._add(
                    Node(name=self._name("constant"), op="placeholder", args=(), kwargs={}, shape=tuple(value.shape)),
                    value,
                )
            )
        if isinstance(value, (list, tuple)):
            items = [self._plain(v) for v in value]
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(value, dict):
            return {k: self._plain(v) for k, v in value.items()}
        if isinstance(value, (int, float, bool, str, type(None))):
            return value
        return repr(value)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = short_op(func)
        if op in _SKIP:
            if op == "detach" and isinstance(out, torch.Tensor) and id(args[0]) in self.of_tensor:
                self.of_tensor[id(out)] = self.of_tensor[id(args[0])]
                self.alive.append(out)
            return out
        tensors = [t for t in (out if isinstance(out, (list, tuple)) else [out]) if isinstance(t, torch.Tensor)]
        node = Node(
            name=self._name(op),
            op=op,
            args=self._plain(tuple(args)),
            kwargs=self._plain(dict(kwargs)),
            shape=tuple(tensors[0].shape) if tensors else None,
            loc=_user_loc(),
            module_path=self.modules[-1] if self.modules else "",
            module_type=self.module_types[-1] if self.module_types else "",
        )
        name = self._add(node)
        if isinstance(out, torch.Tensor):
            self.of_tensor[id(out)] = name
            self.alive.append(out)
        elif isinstance(out, (list, tuple)):
            for i, t in enumerate(out):
                if isinstance(t, torch.Tensor):
                    self._add(
                        Node(
                            name=f"{name}[{i}]",
                            op="getitem",
                            args=(Ref(name), i),
                            kwargs={},
                            shape=tuple(t.shape),
                            loc=node.loc,
                            module_path=node.module_path,
                            module_type=node.module_type,
                        ),
                        t,
                    )
        return out


def _user_loc() -> SourceLoc | None:
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if not is_library_file(frame.f_code.co_filename):
            return source_loc(frame.f_code.co_filename, frame.f_lineno)
        frame = frame.f_back
    return None


def _module_stack(model: nn.Module, recorder: _Recorder):
    paths = {id(m): name for name, m in model.named_modules(remove_duplicate=False)}

    def enter(module, args):
        if id(module) in paths:
            recorder.modules.append(paths[id(module)])
            recorder.module_types.append(type(module).__name__)

    def leave(module, args, output):
        if id(module) in paths and recorder.modules:
            recorder.modules.pop()
            recorder.module_types.pop()

    return (
        nn.modules.module.register_module_forward_pre_hook(enter),
        nn.modules.module.register_module_forward_hook(leave),
    )


def record(model: nn.Module, inputs: Inputs, *, target: str) -> Traced:
    """Run ``model`` on ``inputs`` (real CPU tensors) and return the ops that ran as a `Traced`."""
    recorder = _Recorder(model, inputs)
    hooks = _module_stack(model, recorder)
    args, kwargs = inputs
    try:
        with quiet(), torch.no_grad(), recorder:
            model(*args, **kwargs)
    except Exception as exc:
        raise MulintError(
            f"running the model on example inputs raised {type(exc).__name__}: {exc}",
            target=target,
            step="trace",
            hint="define `example_inputs(model)` in the file returning the forward's arguments",
        ) from exc
    finally:
        for hook in hooks:
            hook.remove()
    return _as_traced(recorder)


def seed_all(seed: int) -> None:
    """Every random generator model code commonly draws from: torch's, Python's and numpy's."""
    torch.manual_seed(seed)
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)


def share_inputs(reference: Inputs, other: Inputs) -> Inputs:
    """`other` with every tensor whose shape and dtype do not depend on width replaced by the reference
    width's: the widths then run on identical data, not on two draws."""

    def same(a, b):
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            return a.clone() if (a.shape, a.dtype, a.device) == (b.shape, b.dtype, b.device) else b
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
            return type(b)(same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
            return {k: same(a[k], b[k]) for k in b}
        return b

    return same(reference[0], other[0]), same(reference[1], other[1])


def path_of(traced: Traced) -> tuple[list[str], set[str]]:
    """The ops that ran, by module and order, and the parameters they read."""
    ops = [n.name for n in traced.nodes.values() if n.op not in ("placeholder", "getitem")]
    used = {name for name, node in traced.param_nodes.items() if node in traced.graph and traced.graph.out_degree(node)}
    return ops, used


def path_difference(a: Traced, b: Traced, widths: tuple[int, int]) -> str | None:
    """How the two recordings' paths differ, or None when the same ops ran on the same parameters."""
    (ops_a, used_a), (ops_b, used_b) = path_of(a), path_of(b)
    if ops_a == ops_b and used_a == used_b:
        return None
    parts = []
    for width, only in ((widths[0], used_a - used_b), (widths[1], used_b - used_a)):
        if only:
            parts.append(f"only width {width} used {', '.join(sorted(only)[:3])}")
    if ops_a != ops_b:
        k = next((i for i, (x, y) in enumerate(zip(ops_a, ops_b)) if x != y), min(len(ops_a), len(ops_b)))
        first = [ops[k] if k < len(ops) else "(the end)" for ops in (ops_a, ops_b)]
        parts.append(f"op {k + 1} was {first[0]} at width {widths[0]} and {first[1]} at width {widths[1]}")
    return "; ".join(parts)


def _as_traced(recorder: _Recorder) -> Traced:
    return Traced(
        nodes=dict(recorder.nodes), graph=graph_of(recorder.nodes.values()), param_nodes=dict(recorder.param_nodes)
    )
