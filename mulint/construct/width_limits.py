"""Capped builds of a width knob: sequence-length-like and vocabulary-like fields shrunk for the small
models that are built for real, whose memory must not grow with fields that are not the width.

A field that grows with the width is never capped; the caps change no exponent of the width.
"""

from __future__ import annotations

from typing import Any

from mulint.reading.width_names import WIDTH_TOKENS, is_int, is_int_list, name_tokens

SEQ_TOKENS = {"block", "position", "positions", "ctx", "context", "seq", "len", "length"}
VOCAB_NAMES = {"num_embeddings", "ntoken", "ntokens", "n_token", "n_tokens", "num_tokens"}
SPECIAL_TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id", "padding_idx")
DEPTH_TOKENS = {"layer", "layers", "depth", "blocks"}
EXPERT_TOKENS = {"expert", "experts"}
# Words of fields that count something per layer or per token, or are indices: never a depth or expert count.
NOT_COUNTS = {
    "norm",
    "eps",
    "idx",
    "index",
    "id",
    "ids",
    "scale",
    "dim",
    "size",
    "every",
    "interval",
    "per",
    "tok",
    "token",
    "top",
    "k",
    "shared",
    "activated",
    "active",
    "freq",
    "first",
    "last",
    "start",
    "end",
}


def is_sequence_field(name: str) -> bool:
    """``block_size``, ``n_positions``, ``max_position_embeddings``, ``n_ctx``, ``max_seq_len``, ..."""
    tokens = name_tokens(name)
    return bool(tokens & SEQ_TOKENS) and not tokens & WIDTH_TOKENS


def is_vocab_field(name: str) -> bool:
    """``vocab_size``, ``n_vocab``, ``num_embeddings``, ``ntoken``, ..."""
    return "vocab" in name_tokens(name) or name.lower() in VOCAB_NAMES


def capped_fields(fields: dict[str, Any], grows: set[str], *, seq: int | None, vocab: int | None) -> dict[str, Any]:
    """The int fields above their cap, with the capped value; fields that grow with the width never are."""
    caps: dict[str, Any] = {}
    for key, value in fields.items():
        if key in grows or not is_int(value):
            continue
        if seq is not None and value > seq and is_sequence_field(key):
            caps[key] = seq
        elif vocab is not None and value > vocab and is_vocab_field(key):
            caps[key] = vocab
    if vocab is not None and any(is_vocab_field(k) for k in caps):
        for key in SPECIAL_TOKEN_IDS:  # an id past the table would index out of it
            value = fields.get(key)
            if is_int(value) and value >= vocab:
                caps[key] = vocab - 1
            elif is_int_list(value) and max(value) >= vocab:
                caps[key] = [min(v, vocab - 1) for v in value]
    return caps


def count_caps(fields: dict[str, Any], grows: set[str], *, depth: int, experts: int) -> dict[str, int]:
    """Depth-like (``n_layer``, ``num_hidden_layers``) and expert-count fields (``num_experts``) above
    their cap, capped: neither is a width, so no width exponent changes. Experts stay at least as
    many as a token is routed to (``num_experts_per_tok``)."""
    routed = max(
        [
            v
            for k, v in fields.items()
            if is_int(v)
            and name_tokens(k) & EXPERT_TOKENS
            and name_tokens(k) & {"per", "tok", "top", "k", "activated", "active"}
        ]
        or [0]
    )
    caps = {}
    for key, value in fields.items():
        tokens = name_tokens(key)
        if key in grows or not is_int(value) or tokens & NOT_COUNTS:
            continue
        if tokens & DEPTH_TOKENS and value > depth:
            caps[key] = depth
        elif tokens & EXPERT_TOKENS and value > max(experts, routed):
            caps[key] = max(experts, routed)
    return caps
