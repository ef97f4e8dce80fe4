"""A unit-scaled transformer (u-µP style): every weight initialised with std 1, and each layer's
1/sqrt(fan_in) applied in forward. The fused qkv projection is scaled on its output, then split by
indexing a view. ``make_unscaled`` forgets that factor on the qkv projection."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_WIDTH = 64


class UnitBlock(nn.Module):
    def __init__(self, width: int, heads: int, scale_qkv: bool):
        super().__init__()
        self.width, self.heads, self.scale_qkv = width, heads, scale_qkv
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.qkv.weight, std=1.0)
        nn.init.normal_(self.proj.weight, std=1.0)

    def forward(self, x):
        B, T, C = x.shape
        head_dim = C // self.heads
        qkv = self.qkv(self.norm(x))
        if self.scale_qkv:
            qkv = qkv * (1 / math.sqrt(self.width))
        qkv = qkv.view(B, T, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / head_dim)
        y = y.transpose(1, 2).reshape(B, T, C)
        return x + self.proj(y) * (1 / math.sqrt(self.width))


class UnitLM(nn.Module):
    def __init__(self, width: int = BASE_WIDTH, vocab: int = 40, depth: int = 2, scale_qkv: bool = True):
        super().__init__()
        self.width = width
        self.embed = nn.Embedding(vocab, width)
        nn.init.normal_(self.embed.weight, std=1.0)
        self.blocks = nn.ModuleList(UnitBlock(width, 4, scale_qkv) for _ in range(depth))
        self.head = nn.Linear(width, vocab, bias=False)
        nn.init.normal_(self.head.weight, std=1.0)

    def forward(self, idx):
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(x) * (1 / self.width)


def make_scaled(width: int = BASE_WIDTH) -> UnitLM:
    return UnitLM(width)


def make_unscaled(width: int = BASE_WIDTH) -> UnitLM:
    return UnitLM(width, scale_qkv=False)


def make_optimizer(model: UnitLM):
    """Adam, hidden lr ∝ 1/sqrt(width): with the 1/sqrt(fan_in) multiplier the update is ∝ 1/width."""
    ratio = BASE_WIDTH / model.width
    hidden = [p for n, p in model.named_parameters() if n.endswith(("qkv.weight", "proj.weight"))]
    ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.Adam([{"params": hidden, "lr": 1e-2 * ratio ** 0.5}, {"params": rest, "lr": 1e-2}])
