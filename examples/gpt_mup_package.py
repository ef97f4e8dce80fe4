"""A small GPT made µP with the `mup` package: MuReadout, set_base_shapes, mup.init and MuAdamW.

The attention scale is sqrt(base_head_dim) / head_dim (1/sqrt(head_dim) at the base width), the
readout is a zero-initialised `MuReadout`, and matrices are re-initialised with `mup.init` after
`set_base_shapes`, as the package's README asks.
"""

import math

import mup
import torch
import torch.nn as nn
import torch.nn.functional as F
from mup import MuAdamW, MuReadout, set_base_shapes

BASE_N_EMBD = 64


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd)
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.fc_out = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        head_dim = q.size(-1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=math.sqrt(BASE_N_EMBD // self.n_head) / head_dim)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fc_out(F.gelu(self.fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, n_embd=128, n_head=4, n_layer=2, vocab_size=256, block_size=64):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = MuReadout(n_embd, vocab_size, bias=False, readout_zero_init=True)

    def forward(self, idx):
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def make_model(n_embd: int = 128, n_head: int = 4) -> GPT:
    model = GPT(n_embd, n_head)
    set_base_shapes(model, GPT(BASE_N_EMBD, n_head), delta=GPT(2 * BASE_N_EMBD, n_head))
    for name, p in model.named_parameters():
        if name.endswith("bias") or "ln_" in name:
            continue
        if p.dim() >= 2 and "lm_head" not in name:
            mup.init.normal_(p, std=0.02)
    return model


def make_optimizer(model):
    return MuAdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
