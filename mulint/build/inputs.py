"""Example inputs: from the user's ``example_inputs`` function, or synthesised from the first layer.

An ``Inputs`` is (args, kwargs). Candidates are tried in order until the model traces.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

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
    """Input candidates, most likely first, made from the first layer that holds parameters."""
    extra = {**_forward_flags(model), **_decoder_inputs(model, device, batch, seq)}
    return [(args, {**kwargs, **extra}) for args, kwargs in _candidates(model, device, batch, seq)]


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


def _candidates(model: nn.Module, device: str, batch: int, seq: int) -> list[Inputs]:
    # The first layer of a kind that says what it eats; raw parameters (a cls token, the root's
    # own readout) come first in modules() without saying anything about the input.
    typed = (nn.Embedding, nn.modules.conv._ConvNd, nn.Linear)
    first = next((m for m in model.modules() if m is not model and isinstance(m, typed)), None)
    seq = _max_sequence(model, seq)
    make = _maker(device)
    if isinstance(first, nn.Embedding):
        return [((make.ids((batch, seq), first.num_embeddings),), {})]
    if isinstance(first, nn.modules.conv._ConvNd):
        image = getattr(getattr(model, "config", None), "image_size", IMAGE)
        image = image if isinstance(image, int) else IMAGE
        if len(first.kernel_size) == 1:
            return [((make.floats((batch, first.in_channels, length)),), {}) for length in _signal_lengths(model, seq)]
        spatial = {2: (image, image), 3: (seq, seq, seq)}[len(first.kernel_size)]
        return [((make.floats((batch, first.in_channels, *spatial)),), {})]
    if isinstance(first, nn.Linear):
        return [((make.floats((batch, first.in_features)),), {}),
                ((make.floats((batch, seq, first.in_features)),), {})]
    params = [p for p in model.parameters() if p.dim() >= 2]
    if params:
        a, b = params[0].shape[0], params[0].shape[-1]
        return [((make.floats((batch, a)),), {}), ((make.floats((batch, b)),), {}),
                ((make.floats((batch, seq, a)),), {}), ((make.floats((batch, seq, b)),), {})]
    return []


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
