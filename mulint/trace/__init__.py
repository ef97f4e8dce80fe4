"""Trace a built model into an fx graph with torch.export (non-strict, on meta tensors),
and hold it as plain data plus a networkx graph for the graph questions."""

from __future__ import annotations

import contextlib
import io
import math
import operator
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch
import torch.fx
import torch.nn as nn

from mulint import steps
from mulint.construct.inputs import Inputs
from mulint.construct.provenance import is_library_file, quiet, source_loc
from mulint.construct.scalars import ScalarsOnCpu, is_number
from mulint.errors import MulintError
from mulint.facts import SourceLoc

# Ops whose operands after the first give only a dtype, device or shape, never values.
METADATA_ONLY = {"type_as", "expand_as", "view_as", "reshape_as", "to"}


@dataclass(frozen=True)
class Ref:
    """A reference to another node inside a node's arguments."""

    name: str


@dataclass
class Node:
    name: str
    op: str  # short op name: "linear", "addmm", "getitem", "placeholder", "output", ...
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    shape: tuple[int, ...] | None  # of the (first) tensor output
    loc: SourceLoc | None = None
    module_path: str = ""  # the innermost nn.Module the op ran in, e.g. "transformer.h.0.attn"
    module_type: str = ""
    param: str | None = None  # fully qualified name, for parameter placeholders
    is_user_input: bool = False

    def input_refs(self) -> list[tuple[int | str, int | None, Ref]]:
        """(argument position or kwarg name, index inside a list argument, ref) for every input."""
        refs: list[tuple[int | str, int | None, Ref]] = []
        placed: list[tuple[int | str, Any]] = [*enumerate(self.args), *self.kwargs.items()]
        for pos, arg in placed:
            if isinstance(arg, Ref):
                refs.append((pos, None, arg))
            elif isinstance(arg, (list, tuple)):
                refs.extend((pos, i, a) for i, a in enumerate(arg) if isinstance(a, Ref))
        return refs


@dataclass
class Traced:
    nodes: dict[str, Node]
    graph: nx.DiGraph  # edges producer -> consumer, attribute "uses": [(pos, index)]
    param_nodes: dict[str, str] = field(default_factory=dict)  # param FQN -> placeholder name

    def consumers(self, name: str) -> list[tuple[Node, int | str, int | None]]:
        return [
            (self.nodes[c], pos, idx)
            for c in self.graph.successors(name)
            for pos, idx in self.graph.edges[name, c]["uses"]
        ]

    def input_dependent(self) -> set[str]:
        """Nodes whose value depends on the user's inputs (the activation side of the graph).

        ``w.type_as(x)`` (modded-nanogpt's CastedLinear) reads only x's dtype: the weight stays weight."""
        out = {name for name, node in self.nodes.items() if node.is_user_input}
        stack = list(out)
        while stack:
            name = stack.pop()
            for node, pos, _ in self.consumers(name):
                if node.name in out or (node.op in METADATA_ONLY and pos not in (0, "self", "input")):
                    continue
                out.add(node.name)
                stack.append(node.name)
        return out


def short_op(target: Any) -> str:
    if target is operator.getitem:
        return "getitem"
    if isinstance(target, torch._ops.OpOverload):
        name = target._schema.name.split("::")[-1]
        # In-place variants (`w += mask`, `q *= scale`) carry the same value onward as their originals.
        return name[:-1] if name.endswith("_") and not name.endswith("__") and target._schema.is_mutable else name
    if isinstance(target, torch._ops.OpOverloadPacket):
        return target._qualified_op_name.split("::")[-1]
    return getattr(target, "__name__", str(target))


def _plain(value: Any, constants: dict[str, float] | None = None) -> Any:
    """fx arguments as plain data: nodes become Refs, or their value when it is a known scalar."""
    constants = constants or {}
    if isinstance(value, torch.fx.Node):
        return constants[value.name] if value.name in constants else Ref(value.name)
    if isinstance(value, (list, tuple)):
        items = [_plain(v, constants) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return {k: _plain(v, constants) for k, v in value.items()}
    if isinstance(value, (int, float, bool, str, type(None))):
        return value
    if isinstance(value, torch.SymInt):
        return int(value)
    return repr(value)


_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)\n(?P<code>[^\n]*)')


def user_frame(stack_trace: str | None) -> SourceLoc | None:
    """The innermost frame of a node's stack trace that is not torch's own code."""
    if not stack_trace:
        return None
    frames = list(_FRAME.finditer(stack_trace))
    for m in reversed(frames):
        if not is_library_file(m["path"]):
            return source_loc(m["path"], int(m["line"]))
    return None


def _shape(val: Any) -> tuple[int, ...] | None:
    if isinstance(val, (list, tuple)):
        val = next((v for v in val if isinstance(v, torch.Tensor)), None)
    if isinstance(val, torch.Tensor):
        try:
            return tuple(int(s) for s in val.shape)
        except TypeError:
            return None
    return None


def export(model: nn.Module, inputs: Inputs, *, target: str) -> Traced:
    steps.enter("trace")
    args, kwargs = inputs
    try:
        # Tensors the forward creates without a device (torch.arange for positions, masks) must be
        # made on the model's device too, or meta and CPU tensors meet.
        devices = {p.device.type for p in model.parameters()}
        device = torch.device("meta" if "meta" in devices else next(iter(devices), "cpu"))  # CPU scalars aside
        program = None
        if device.type == "meta":
            try:  # scalars made in forward keep their values: the multipliers they hold are read
                with _tracing(model, device), ScalarsOnCpu():
                    program = torch.export.export(model, args, kwargs=kwargs, strict=False)
            except Exception:
                program = None  # an op that refuses a CPU scalar beside meta tensors: trace plainly
        if program is None:
            with _tracing(model, device):
                program = torch.export.export(model, args, kwargs=kwargs, strict=False)
    except Exception as exc:
        raise _trace_error(exc, target) from exc
    return from_exported(program)


@contextlib.contextmanager
def _tracing(model: nn.Module, device: torch.device):
    # torch.export prints the partial graph of a failed trace to stderr; the error says what failed.
    with (
        quiet(),
        contextlib.redirect_stderr(io.StringIO()),
        _frozen_width_mults(model),
        torch.device(device),
        _value_free_checks(device),
        _helper_frames_kept(),
    ):
        yield


@contextlib.contextmanager
def _helper_frames_kept():
    """torch.export keeps only the `forward` frames of a node's stack trace, so an op in a helper
    function the forward calls (mup's `multi_head_attention_forward`, HF's `eager_attention_forward`)
    is placed at the line calling the helper, not at the line to edit. Keep, besides those, every frame
    in a file that holds one of the forwards: the model's own helpers, not a utility library's code."""
    tracer = getattr(torch.fx.proxy, "TracerBase", None)
    original = getattr(tracer, "_filter_traceback_frames", None)
    if tracer is None or original is None or "_filter_traceback_frames" not in vars(tracer):
        yield  # another torch: its own filtering stands
        return

    def keep_helpers(self, summary):
        kept = original(self, summary)
        if not getattr(self, "_record_forward_stack_traces_only", False) or not kept:
            return kept
        files = {frame.filename for frame in kept if frame.name == "forward"}
        ids = {id(frame) for frame in kept}
        return traceback.StackSummary.from_list(
            [frame for frame in summary if id(frame) in ids or frame.filename in files]
        )

    tracer._filter_traceback_frames = keep_helpers
    try:
        yield
    finally:
        tracer._filter_traceback_frames = original


class _IdentityEqual(torch.overrides.TorchFunctionMode):
    """`torch.equal(query, key)` (self-attention or not?) has no answer without values: on the meta
    device a tensor equals itself and nothing else, which is what such branches ask."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.equal and len(args) == 2:
            return args[0] is args[1]
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _value_free_checks(device: torch.device):
    """Checks on tensor values that only pick a fast path cannot run on meta tensors: answer them
    without values (the computation is the same either way)."""
    if device.type != "meta":
        yield
        return
    import torch.nn.modules.transformer as transformer

    detect = getattr(transformer, "_detect_is_causal_mask", None)
    if detect is not None:  # nn.TransformerEncoder compares the mask with a causal one: a hint only
        transformer._detect_is_causal_mask = lambda mask, is_causal=None, size=None: bool(is_causal)
    try:
        with _IdentityEqual():
            yield
    finally:
        if detect is not None:
            transformer._detect_is_causal_mask = detect


@contextlib.contextmanager
def _frozen_width_mults(model: nn.Module):
    """mup layers read ``self.weight.infshape`` in forward; export swaps parameters for fake tensors
    that lack it, so hand each layer its width multiplier as a constant while tracing."""
    patched = []
    module: Any  # a mup layer, given a constant in place of its method
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if callable(getattr(module, "width_mult", None)) and hasattr(weight, "infshape"):
            value = module.width_mult()
            module.width_mult = lambda value=value: value
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.width_mult


def _trace_error(exc: Exception, target: str) -> MulintError:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not is_library_file(f.filename)]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    hint = (
        "define `example_inputs(model)` in the file returning the forward's arguments; for HF models "
        "pass a config with use_cache=False"
    )
    if "DataDependent" in type(exc).__name__:
        hint = (
            "the forward branches on tensor values (`if x.sum() > 0`, `.item()`), which mulint cannot "
            "know: it traces on the meta device, without values; branch on shapes or flags instead"
        )
    return MulintError(
        f"torch.export could not trace it: {type(exc).__name__}: {first_line}{where}",
        target=target,
        step="trace",
        hint=hint,
    )


# Ops that keep a scalar constant a constant (``torch.sqrt(torch.tensor(d) * 3)``): op -> (arity, value).
_SAME: tuple[int, Callable[..., Any]] = (1, lambda x: x)
_CONSTANT_OPS: dict[str, tuple[int, Callable[..., Any]]] = {
    "lift_fresh_copy": _SAME,
    "detach": _SAME,
    "clone": _SAME,
    "_to_copy": _SAME,
    "to": _SAME,
    "alias": _SAME,
    "sqrt": (1, math.sqrt),
    "rsqrt": (1, lambda x: 1 / math.sqrt(x)),
    "reciprocal": (1, lambda x: 1 / x),
    "neg": (1, lambda x: -x),
    "mul": (2, lambda x, y: x * y),
    "div": (2, lambda x, y: x / y),
    "pow": (2, lambda x, y: x**y),
    "add": (2, lambda x, y: x + y),
    "sub": (2, lambda x, y: x - y),
}


def _constant_scalars(program: torch.export.ExportedProgram) -> dict[str, float]:
    """Graph nodes whose value is a known scalar: 0-dim constants and buffers (Gemma's ``embed_scale``)
    that live on the CPU, and ops over them."""
    kinds = torch.export.graph_signature.InputKind
    lifted = {
        spec.arg.name: spec.target
        for spec in program.graph_signature.input_specs
        if spec.kind in (kinds.CONSTANT_TENSOR, kinds.BUFFER)
    }
    stored = {**program.state_dict, **program.constants}
    values: dict[str, float] = {}
    for fx_node in program.graph.nodes:
        if fx_node.name in lifted:
            tensor = stored.get(lifted[fx_node.name])
            if isinstance(tensor, torch.Tensor) and tensor.numel() == 1 and tensor.device.type != "meta":
                values[fx_node.name] = float(tensor.reshape(()).item())
            continue
        op = _CONSTANT_OPS.get(short_op(fx_node.target)) if fx_node.op == "call_function" else None
        if op is None or len(fx_node.args) < op[0]:
            continue
        args = fx_node.args[: op[0]]
        operands = [values.get(a.name) if isinstance(a, torch.fx.Node) else a for a in args]
        if any(isinstance(a, torch.fx.Node) for a in args) and all(is_number(a) for a in operands):
            try:
                values[fx_node.name] = float(op[1](*operands))
            except (ArithmeticError, TypeError, ValueError):
                pass
    return values


def from_exported(program: torch.export.ExportedProgram) -> Traced:
    signature = program.graph_signature
    param_of = dict(signature.inputs_to_parameters)
    user_inputs = set(signature.user_inputs)
    constants = _constant_scalars(program)
    nodes: dict[str, Node] = {}
    for fx_node in program.graph.nodes:
        stack = fx_node.meta.get("nn_module_stack") or {}
        module_path, module_type = "", ""
        if stack:
            path, cls = list(stack.values())[-1]
            module_path = _module_fqn(path)
            module_type = cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1].strip("'>")
        node = Node(
            name=fx_node.name,
            op=fx_node.op if fx_node.op in ("placeholder", "output", "get_attr") else short_op(fx_node.target),
            args=_plain(tuple(fx_node.args), constants),
            kwargs=_plain(dict(fx_node.kwargs), constants),
            shape=_shape(fx_node.meta.get("val")),
            loc=user_frame(fx_node.meta.get("stack_trace")),
            module_path=module_path,
            module_type=module_type,
            param=param_of.get(fx_node.name),
            is_user_input=fx_node.op == "placeholder" and fx_node.name in user_inputs,
        )
        nodes[node.name] = node
    param_nodes = {fqn: name for name, fqn in param_of.items()}
    return Traced(nodes=nodes, graph=graph_of(nodes.values()), param_nodes=param_nodes)


def graph_of(nodes) -> nx.DiGraph:
    """Each node's edges to its users, with the argument positions (pos, index) that use it; the
    exported graph and the recorded one are read the same way."""
    graph = nx.DiGraph()
    for node in nodes:
        graph.add_node(node.name)
        for pos, idx, ref in node.input_refs():
            if graph.has_edge(ref.name, node.name):
                graph.edges[ref.name, node.name]["uses"].append((pos, idx))
            else:
                graph.add_edge(ref.name, node.name, uses=[(pos, idx)])
    return graph


def _module_fqn(path: str) -> str:
    # nn_module_stack paths look like "L['self'].transformer.h[0].attn" or "transformer.h.0.attn"
    path = re.sub(r"^L\['self'\]\.?", "", path)
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    path = re.sub(r"\._modules\['([^']+)'\]", r".\1", path)
    return path.strip(".")
