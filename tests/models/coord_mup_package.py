"""A pre-norm decoder made µP with the `mup` package, written as its README suggests for a model
built from a width argument: `set_base_shapes` from a base and a delta model, `mup.init` after it,
`MuReadout` (randomly initialised, not zero), 1/d attention and `MuAdam`. ``standard`` is the same
decoder in the standard parametrization (nn.Linear readout, torch Adam).

The base width is the default, 256.
"""

import math

import mup
import torch
import torch.nn as nn
from mup import MuAdam, MuReadout, set_base_shapes

BASE_WIDTH = 256
HEADS = 4


class Mixer(nn.Module):
    def __init__(self, width, mup_attention):
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.o = nn.Linear(width, width)
        self.mup_attention = mup_attention

    def forward(self, x):
        b, t, w = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, HEADS, w // HEADS).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        d = q.size(-1)
        scale = math.sqrt(BASE_WIDTH // HEADS) / d if self.mup_attention else d ** -0.5
        scores = torch.einsum("bhqd,bhkd->bhqk", q, k) * scale
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), 1)
        y = torch.einsum("bhqk,bhkd->bhqd", scores.masked_fill(mask, -1e9).softmax(-1), v)
        return self.o(y.transpose(1, 2).reshape(b, t, w))


class Residual(nn.Module):
    def __init__(self, width, mup_attention):
        super().__init__()
        self.pre_mix = nn.LayerNorm(width)
        self.mix = Mixer(width, mup_attention)
        self.pre_ffn = nn.LayerNorm(width)
        self.ffn = nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(), nn.Linear(2 * width, width))

    def forward(self, x):
        x = x + self.mix(self.pre_mix(x))
        return x + self.ffn(self.pre_ffn(x))


class LM(nn.Module):
    def __init__(self, width=256, depth=2, tokens=64, context=32, use_mup=True):
        super().__init__()
        self.use_mup = use_mup
        self.embed = nn.Embedding(tokens, width)
        self.pos = nn.Embedding(context, width)
        self.body = nn.Sequential(*[Residual(width, use_mup) for _ in range(depth)])
        self.final = nn.LayerNorm(width)
        self.unembed = MuReadout(width, tokens, readout_zero_init=False) if use_mup else nn.Linear(width, tokens)

    def forward(self, ids):
        h = self.embed(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        return self.unembed(self.final(self.body(h)))


def mup_model(width: int = 256) -> LM:
    model = LM(width)
    set_base_shapes(model, LM(BASE_WIDTH), delta=LM(BASE_WIDTH * 2))
    for name, p in model.named_parameters():
        if p.dim() == 2 and not name.startswith(("embed", "pos", "unembed")):
            mup.init.normal_(p, std=0.02)
    return model


def standard(width: int = 256) -> LM:
    model = LM(width, use_mup=False)
    for name, p in model.named_parameters():
        if p.dim() == 2 and not name.startswith(("embed", "pos")):
            nn.init.normal_(p, std=0.02)
    return model


def make_optimizer(model):
    if model.use_mup:
        return MuAdam(model.parameters(), lr=1e-3)
    return torch.optim.Adam(model.parameters(), lr=1e-3)
