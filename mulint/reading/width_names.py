"""The names that mark a model's width, read from source as from live objects: the arguments and
config fields mulint scales (``width``, ``n_embd``, ``hidden_size``), the config parameters that carry
them, and the words that make a field a width (``ffn_dim``) or a size that does not grow with it
(``vocab_size``, ``n_head``). Discovery ranks classes by them without running anything; the width knob
(mulint.construct.width) scales by them.
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

WIDTH_NAMES = (
    "width",
    "d_model",
    "n_embd",
    "hidden_size",
    "dim",
    "embed_dim",
    "hidden_dim",
    "n_embed",
    "emb_dim",
    "model_dim",
    "d_embed",
    "ninp",
)
CONFIG_PARAM_NAMES = ("config", "cfg", "conf", "args", "hparams", "model_config", "params")

FINITE_TOKENS = {
    "vocab",
    "position",
    "positions",
    "pos",
    "ctx",
    "block",
    "seq",
    "len",
    "length",
    "layer",
    "layers",
    "label",
    "labels",
    "class",
    "classes",
    "token",
    "tokens",
    "eps",
    "range",
    "patch",
    "image",
    "img",
    "channels",
    "expert",
    "experts",
    "window",
    "bucket",
    "buckets",
    "rope",
    "type",
    "max",
    "min",
    "heads",
    "head",
    "group",
    "groups",
    "in",
    "input",
    "inputs",
    "out",
    "output",
    "outputs",
    "depth",
    "stride",
    "kernel",
    "batch",
    "step",
    "steps",
    "seed",
    "iter",
    "iters",
    "frames",
    "samples",
    "rank",
    "theta",
    "id",
    "ids",
    "base",
    "ref",
    "reference",
    "proxy",
    "init",
    "std",
    "kv",
    "pad",
    "padding",
    "bos",
    "eos",
    "sep",
    "mask",
    "time",
    "freq",
    "dropout",
    "prob",
    "ratio",
    "scale",
    "alpha",
    "beta",
    "temperature",
    "projection",  # CLIP/SigLIP's projection_dim: the joint embedding a contrastive readout produces
    "mult",
    "multiplier",
    "factor",
    "expansion",
    "expand",  # lucidrains' ff_mult=4: a ratio to the width
}
WIDTH_TOKENS = {
    "hidden",
    "intermediate",
    "inner",
    "ffn",
    "ff",
    "mlp",
    "embd",
    "embed",
    "model",
    "dim",
    "width",
    "feedforward",
    "filter",
    "proj",
    "features",
    "hiddens",
    "emb",
    "embedding",
    "channel",
    "units",
    "d",
}
HEAD_DIM_NAMES = {
    "head_dim",
    "d_head",
    "head_size",
    "d_kv",
    "kv_channels",
    "attention_head_size",
    "dim_head",
    "head_dim_size",
    "headdim",
}
HEADS_NAMES = {"n_head", "n_heads", "num_heads", "num_attention_heads", "nhead", "heads", "num_head", "n_heads_q"}


def name_tokens(name: str) -> set[str]:
    return {t.lower() for t in re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", name) if t}


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_int_list(value: Any) -> TypeGuard[list[int] | tuple[int, ...]]:
    return isinstance(value, (list, tuple)) and bool(value) and all(is_int(v) and v > 0 for v in value)
