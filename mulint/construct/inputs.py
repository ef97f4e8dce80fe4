"""Example inputs: from the user's ``example_inputs`` function, or synthesised from the first layer.

An ``Inputs`` is (args, kwargs). Candidates are tried in order until the model traces.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

Inputs = tuple[tuple[Any, ...], dict[str, Any]]

BATCH = 2
SEQ = 8
IMAGE = 16


def normalise(value: Any) -> Inputs:
    """Accept a tensor, a tuple of args, a dict of kwargs, or an (args, kwargs) pair."""
    if isinstance(value, dict):
        return (), dict(value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], tuple) and isinstance(value[1], dict):
        return value[0], dict(value[1])
    if isinstance(value, (tuple, list)):
        return tuple(value), {}
    return (value,), {}


def from_user_function(func: Callable, model: nn.Module) -> Inputs:
    takes_model = len(inspect.signature(func).parameters) >= 1
    return normalise(func(model) if takes_model else func())


def to_device(inputs: Inputs, device: str | torch.device) -> Inputs:
    def move(x):
        return x.to(device) if isinstance(x, torch.Tensor) else x

    args, kwargs = inputs
    return tuple(move(a) for a in args), {k: move(v) for k, v in kwargs.items()}


def _max_sequence(model: nn.Module, seq: int = SEQ) -> int:
    sizes = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)]
    config = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "block_size", "max_seq_len"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            sizes.append(value)
    return max(1, min([seq, *sizes]))


def synthesise(model: nn.Module, device: str = "meta", batch: int = BATCH, seq: int = SEQ) -> list[Inputs]:
    """Input candidates, most likely first (see `described_candidates`)."""
    return [inputs for _, inputs in described_candidates(model, device, batch, seq)]


def described_candidates(
    model: nn.Module, device: str = "meta", batch: int = BATCH, seq: int = SEQ
) -> list[tuple[str, Inputs]]:
    """(what it is, inputs) for every plausible input, most likely first: what the first layer in
    module order eats, then the first one forward calls, then every other kind of first layer, then an
    HF model's own dummy_inputs. The order is the same on every device and width."""
    extra = {**_forward_flags(model), **_decoder_inputs(model, device, batch, seq)}
    found, seen = [], set()
    for description, (args, kwargs) in [*_candidates(model, device, batch, seq), *_hf_candidates(model, device)]:
        if description not in seen:
            seen.add(description)
            found.append((description, (args, {**kwargs, **extra})))
    return found


EXAMPLE_INPUTS = """define example_inputs in the model's file, returning the forward's arguments:

    def example_inputs(model):
        return ({call},)  # a tuple of args, a dict of kwargs, or (args, kwargs){note}"""


def example_inputs_hint(model: nn.Module | None = None) -> str:
    """How to define example_inputs, shown with the input mulint made up first for ``model`` (an image
    model's is an image batch), whose sizes the user then corrects: tokens when there is none."""
    call, note = "torch.randint(0, 100, (2, 8))", ""
    try:
        first = described_candidates(model, "meta")[0][1] if model is not None else None
    except Exception:  # noqa: BLE001 - a hint only
        first = None
    tensor = next((a for a in [*first[0], *first[1].values()] if isinstance(a, torch.Tensor)), None) if first else None
    if tensor is not None and model is not None:
        shape = tuple(int(s) for s in tensor.shape)
        vocab = min((m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)), default=100)
        call = f"torch.randn{shape}" if tensor.is_floating_point() else f"torch.randint(0, {vocab}, {shape})"
        call = call.replace(",)", ")") if tensor.is_floating_point() else call
        note = "\n        # the sizes mulint tried: give your model's real ones"
    return EXAMPLE_INPUTS.format(call=call, note=note)


def _forward_parameters(model: nn.Module) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return {}


def _forward_flags(model: nn.Module) -> dict[str, Any]:
    """Keyword flags that keep HF-style models traceable: no KV cache objects in the output."""
    return {"use_cache": False} if "use_cache" in _forward_parameters(model) else {}


def _decoder_inputs(model: nn.Module, device: str, batch: int, seq: int) -> dict[str, Any]:
    """Encoder-decoder models (T5, BART, Whisper) need target tokens too, whatever the encoder eats."""
    if "decoder_input_ids" not in _forward_parameters(model):
        return {}
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if not isinstance(vocab, int):
        tables = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)]
        vocab = max(tables, default=2)
    return {"decoder_input_ids": _maker(device).ids((batch, _max_sequence(model, seq)), vocab)}


_TYPED = (nn.Embedding, nn.modules.conv._ConvNd, nn.Linear)


def _first_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The first layer of each kind that says what it eats, in module order, with the first layer
    forward itself calls (``self.tok_emb(idx)`` after a ``self.pos_emb`` declared first) second.
    Raw parameters (a cls token, the root's own readout) say nothing about the input."""
    named = [(n, m) for n, m in model.named_modules() if m is not model and isinstance(m, _TYPED)]
    firsts: list[tuple[str, nn.Module]] = []
    for kind in (nn.Embedding, nn.modules.conv._ConvNd, nn.Linear):
        first = next(((n, m) for n, m in named if isinstance(m, kind)), None)
        if first is not None:
            firsts.append(first)
    firsts.sort(key=lambda nm: [n for n, _ in named].index(nm[0]))
    called = _first_called(model, dict(named))
    if called is not None and called not in firsts[:1]:
        firsts.insert(1 if firsts else 0, called)
    return list(dict.fromkeys(firsts))


def _first_called(model: nn.Module, named: dict[str, nn.Module]) -> tuple[str, nn.Module] | None:
    """The first ``self.<layer>`` of a known kind that forward's source mentions."""
    import ast
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(type(model).forward)))
    except (OSError, TypeError, SyntaxError):
        return None
    mentions = sorted(
        (node.lineno, node.col_offset, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr in named
    )
    return (mentions[0][2], named[mentions[0][2]]) if mentions else None


def _raw_tables(model: nn.Module, depth: int = 0) -> list[tuple[str, int]]:
    """(name, rows) of tensors held by the model that forward indexes with its first argument like an
    embedding: ``self.wte[idx]``, ``F.embedding(idx, self.wte)``, ``self.wte.index_select(0, idx)``, in
    its own forward or in that of a submodule it hands the argument to (``self.embed(tokens)`` whose
    forward is ``self.W_E[tokens]``, as in hand-written transformers without nn.Embedding)."""
    import ast
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(type(model).forward)))
    except (OSError, TypeError, SyntaxError):
        return []
    func = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    args = [a.arg for a in func.args.args[1:2]] if func is not None else []
    if not args:
        return []

    def is_ids(e: ast.expr) -> bool:  # the argument, or a reshaping of it (`idx.flatten()`, `idx.long()`)
        while isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute):
            e = e.func.value
        return isinstance(e, ast.Name) and e.id == args[0]

    found = []
    for node in ast.walk(tree):
        table = None
        if isinstance(node, ast.Subscript) and is_ids(node.slice):
            table = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "embedding" and len(node.args) >= 2 and is_ids(node.args[0]):
                table = node.args[1]
            elif node.func.attr == "index_select" and len(node.args) == 2 and is_ids(node.args[1]):
                table = node.func.value
            elif node.args and is_ids(node.args[0]) and depth < 3:
                inner = _self_attribute(model, node.func)
                # (torch's own layers, nn.Embedding first, are read by `_first_layers`)
                if (
                    isinstance(inner, nn.Module)
                    and inner is not model
                    and not type(inner).__module__.startswith("torch.")
                ):
                    prefix = ast.unparse(node.func)
                    found += [
                        (f"{prefix}.{name.removeprefix('self.')}", rows) for name, rows in _raw_tables(inner, depth + 1)
                    ]
        if table is None:
            continue
        value = _self_attribute(model, table)
        if isinstance(value, torch.Tensor) and value.dim() == 2:
            found.append((ast.unparse(table), int(value.shape[0])))
    return list(dict.fromkeys(found))


def _self_attribute(model: nn.Module, expr) -> Any:
    import ast

    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.insert(0, expr.attr)
        expr = expr.value
    if not (isinstance(expr, ast.Name) and expr.id == "self" and parts):
        return None
    value: Any = model
    for part in parts:
        try:
            value = getattr(value, part, None)
        except Exception:  # noqa: BLE001 - a property of the user's that raises when read: not a table
            return None
    return value


def _candidates(model: nn.Module, device: str, batch: int, seq: int) -> list[tuple[str, Inputs]]:
    seq = _max_sequence(model, seq)
    make = _maker(device)
    found: list[tuple[str, Inputs]] = [
        (f"token ids ({batch}, {seq}) below {rows} for `{name}`", ((make.ids((batch, seq), rows),), {}))
        for name, rows in _raw_tables(model)
    ]
    for name, first in _first_layers(model):
        if isinstance(first, nn.Embedding):
            found.append(
                (
                    f"token ids ({batch}, {seq}) below {first.num_embeddings} for `{name}`",
                    ((make.ids((batch, seq), first.num_embeddings),), {}),
                )
            )
        elif isinstance(first, nn.modules.conv._ConvNd):
            found.extend(_conv_inputs(model, name, first, make, batch, seq))
        elif isinstance(first, nn.Linear):
            for shape in ((batch, first.in_features), (batch, seq, first.in_features)):
                found.append((f"floats {shape} for `{name}`", ((make.floats(shape),), {})))
    if found:
        return found
    params = [p for p in model.parameters() if p.dim() >= 2]
    if params:
        a, b = params[0].shape[0], params[0].shape[-1]
        for shape in ((batch, a), (batch, b), (batch, seq, a), (batch, seq, b)):
            found.append((f"floats {shape} for the first matrix", ((make.floats(shape),), {})))
    return found


def _conv_inputs(model, name, first, make, batch: int, seq: int) -> list[tuple[str, Inputs]]:
    if len(first.kernel_size) == 1:
        return [
            (
                f"signals ({batch}, {first.in_channels}, {length}) for `{name}`",
                ((make.floats((batch, first.in_channels, length)),), {}),
            )
            for length in _signal_lengths(model, seq)
        ]
    shapes: list[tuple[int, ...]]
    if len(first.kernel_size) == 3:
        shapes = [(batch, first.in_channels, seq, seq, seq)]
    else:
        shapes = [(batch, first.in_channels, *size) for size in _image_sizes(model)]
    return [(f"images {shape} for `{name}`", ((make.floats(shape),), {})) for shape in shapes]


_IMAGE_SIZE_KEYS = ("image_size", "img_size", "input_size")


def _image_sizes(model: nn.Module) -> list[tuple[int, int]]:
    """(H, W) to try: the size the model declares first (HF's ``config.image_size``, timm's
    ``patch_embed.img_size``, DiT's ``input_size``: a position table is made for it), then a small one."""
    sizes = []
    holders = [getattr(model, "config", None), *model.modules()]
    for holder in holders:
        for key in _IMAGE_SIZE_KEYS:
            value = getattr(holder, key, None) if holder is not None else None
            if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 1024:
                sizes.append((value, value))
            elif (
                isinstance(value, (tuple, list))
                and len(value) == 2
                and all(isinstance(v, int) and 0 < v <= 1024 for v in value)
            ):
                sizes.append((value[0], value[1]))
    return list(dict.fromkeys([*sizes[:1], (IMAGE, IMAGE)]))


def _hf_candidates(model: nn.Module, device: str) -> list[tuple[str, Inputs]]:
    """A transformers model's own example: ``dummy_inputs``, and its main input alone."""
    try:
        dummy: Any = model.dummy_inputs  # transformers' own attribute: a dict of tensors
    except Exception:
        return []
    if not isinstance(dummy, dict) or not dummy:
        return []
    dummy = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in dummy.items()}
    found: list[tuple[str, Inputs]] = [(f"dummy_inputs ({', '.join(dummy)})", ((), dummy))]
    main = getattr(model, "main_input_name", None)
    if isinstance(main, str) and main in dummy and len(dummy) > 1:
        found.append((f"dummy_inputs['{main}']", ((), {main: dummy[main]})))
    return found


def _signal_lengths(model: nn.Module, seq: int) -> list[int]:
    """Lengths for a 1-d signal (audio features): free first, then the fixed lengths an encoder that
    adds a position table after strided convolutions demands (Whisper: 2 x its source positions)."""
    tables = sorted({m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)})
    return [seq * 2, *(k * n for n in tables for k in (2, 1))]


class _maker:
    def __init__(self, device: str) -> None:
        self.device = device

    def ids(self, shape, high: int) -> torch.Tensor:
        if self.device == "meta":
            return torch.zeros(shape, dtype=torch.long, device="meta")
        return torch.randint(0, high, shape, device=self.device)

    def floats(self, shape) -> torch.Tensor:
        return torch.randn(shape, device=self.device)
