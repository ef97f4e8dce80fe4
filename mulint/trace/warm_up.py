"""Warm torch.export up in a process that forks checks: trace mulint's own stand-in transformers once, on
the meta device, so that the first trace in each forked check does not pay torch's first-call costs.

A process that has never exported anything spends its first export filling torch's lazy state: op
dispatch tables, decompositions, the fake-tensor caches. Each check forked from it pays that again, and
loses it when it ends. Traced here once, before the forks, a GPT-style and a Llama-style block cover the
ops most models use (embeddings, norms, linear layers, attention by matmul or by scaled_dot_product_attention,
rotary embeddings, masks, activations, the loss), at two widths as a check traces them. The first export
of examples/nanogpt_sp.py in a fork went from 0.30-0.35 s to 0.16-0.18 s (benchmarks/README.md).

Everything runs on the meta device: no kernel runs, so no thread pool starts and CUDA is never touched,
and forking after it stays as safe as after the imports. The stand-ins are mulint's code, never the user's.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from mulint.trace import Traced, export

WIDTHS = (64, 128)
VOCAB = 96
TOKENS = 8


class _RMSNorm(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, llama: bool) -> None:
        super().__init__()
        self.heads, self.llama = heads, llama
        self.norm1 = _RMSNorm(width) if llama else nn.LayerNorm(width)
        self.norm2 = _RMSNorm(width) if llama else nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width, bias=not llama)
        self.proj = nn.Linear(width, width, bias=not llama)
        self.up = nn.Linear(width, 4 * width, bias=not llama)
        self.gate = nn.Linear(width, 4 * width, bias=False)
        self.down = nn.Linear(4 * width, width, bias=not llama)
        self.drop = nn.Dropout(0.1)

    def attend(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        if self.llama:
            q, k = q * cos + _rotated(q) * sin, k * cos + _rotated(k) * sin
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / q.size(-1))
        else:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
            y = self.drop(F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)) @ v
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, d))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attend(self.norm1(x), cos, sin))
        h = self.norm2(x)
        h = F.silu(self.gate(h)) * self.up(h) if self.llama else F.gelu(self.up(h))
        return x + self.down(h)


def _rotated(z: torch.Tensor) -> torch.Tensor:
    half = z.shape[-1] // 2
    return torch.cat((-z[..., half:], z[..., :half]), dim=-1)


class StandIn(nn.Module):
    """Two blocks (as a check traces repeated blocks), a tied readout; ``llama``: RMSNorm, rotary
    embeddings, SDPA and a gated MLP, and a loss when given targets."""

    def __init__(self, width: int, llama: bool, heads: int = 4) -> None:
        super().__init__()
        self.llama, self.heads = llama, heads
        self.wte = nn.Embedding(VOCAB, width)
        self.wpe = nn.Embedding(TOKENS, width)
        self.blocks = nn.ModuleList(_Block(width, heads, llama) for _ in range(2))
        self.norm = _RMSNorm(width) if llama else nn.LayerNorm(width)
        self.head = nn.Linear(width, VOCAB, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long)
        x = self.wte(idx) if self.llama else self.wte(idx) + self.wpe(pos)
        half = x.size(-1) // (2 * self.heads)
        angles = torch.outer(pos.float(), 1.0 / (10000 ** (torch.arange(0, half).float() / half)))
        cos, sin = torch.cat((angles, angles), -1).cos(), torch.cat((angles, angles), -1).sin()
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.head(self.norm(x))
        if targets is None:
            return logits
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def steps() -> Iterator[tuple[str, Traced]]:
    """Trace the stand-ins one at a time, yielding after each (its name and trace), so the caller can
    serve what arrives in between. Each is built and traced on the meta device."""
    for llama in (False, True):
        for width in WIDTHS:
            with torch.device("meta"):
                model = StandIn(width, llama)
                idx = torch.randint(0, VOCAB, (2, TOKENS))
                inputs = ((idx,), {"targets": idx} if llama else {})
            traced = export(model, inputs, target="mulint's stand-in")
            yield f"{'llama' if llama else 'gpt'}-style at width {width}", traced
