"""A LLaMA-style decoder whose FFN size is rounded up to a multiple of 256, in µP through mup-style
per-group AdamW learning rates: every matrix's lr is divided by how much its fan-in has grown over
the same matrix in the model at the base width (so the down-projection's lr follows the rounded FFN
size, not the width). Hidden init std ∝ fan_in^-½, a zero-initialised readout, 1/head_dim attention.

At small widths the rounding keeps the FFN from growing with the width (it is 256 at widths 32 and
64): analysis at such widths sees a down-projection whose lr does not follow the width.
`make_sp_optimizer` is the SP twin: one AdamW lr for every parameter.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE = 256
VOCAB, HEADS, MULTIPLE = 32000, 4, 256


def ffn_size(dim: int) -> int:
    return MULTIPLE * ((int(8 * dim / 3) + MULTIPLE - 1) // MULTIPLE)


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class Layer(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        hidden = ffn_size(dim)
        self.attn_norm, self.ffn_norm = RMSNorm(dim), RMSNorm(dim)
        self.wqkv = nn.Linear(dim, 3 * dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)
        self.w_gate = nn.Linear(dim, hidden, bias=False)
        self.w_up = nn.Linear(dim, hidden, bias=False)
        self.w_down = nn.Linear(hidden, dim, bias=False)
        self.head_dim = dim // HEADS

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.wqkv(self.attn_norm(x)).view(b, t, 3, HEADS, self.head_dim).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / self.head_dim)
        x = x + self.wo(y.transpose(1, 2).reshape(b, t, d))
        h = self.ffn_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class Llama(nn.Module):
    def __init__(self, dim: int = BASE, n_layers: int = 4):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, dim)
        self.layers = nn.ModuleList(Layer(dim) for _ in range(n_layers))
        self.norm = RMSNorm(dim)
        self.out = nn.Linear(dim, VOCAB, bias=False)
        nn.init.normal_(self.tok.weight, std=1.0)
        for name, p in self.layers.named_parameters():
            if p.ndim == 2:
                nn.init.normal_(p, std=p.shape[1] ** -0.5)
        nn.init.zeros_(self.out.weight)

    def forward(self, idx):
        x = self.tok(idx)
        for layer in self.layers:
            x = layer(x)
        return self.out(self.norm(x))


def make_llama(dim: int = BASE):
    return Llama(dim)


def example_inputs(model):
    return (torch.randint(0, VOCAB, (4, 16)),)


def make_optimizer(model, lr: float = 3e-3):
    """Each matrix whose fan-in grows gets lr · base_fan_in / fan_in, the base fan-in read from the
    same model built (on the meta device) at the base width; embedding and gains get lr."""
    with torch.device("meta"):
        base = dict(Llama(BASE, len(model.layers)).named_parameters())
    groups = []
    for name, p in model.named_parameters():
        grows = p.ndim == 2 and name != "tok.weight"
        ratio = p.shape[1] / base[name].shape[1] if grows else 1.0
        groups.append({"params": [p], "lr": lr / ratio, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=lr)


def make_sp_optimizer(model, lr: float = 3e-3):
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)


def make_planted_optimizer(model, lr: float = 3e-3):
    """µP groups, except that the down-projections keep the base lr: a real MU301 on them alone."""
    groups = make_optimizer(model, lr).param_groups
    downs = {id(layer.w_down.weight) for layer in model.layers}
    for group in groups:
        if id(group["params"][0]) in downs:
            group["lr"] = lr
    return torch.optim.AdamW(groups, lr=lr)
