"""A nanoGPT-style GPT in µP written from Table 8 of Tensor Programs V: the width enters through
multipliers (the readout's input multiplied by base/width, 1/d attention), hidden init ∝
1/sqrt(width) and hidden learning rates ∝ 1/width. The readout multiplier is applied in place
after the final norm (``x *= ...``), as some code bases write it; ``out_of_place`` writes it as a
new tensor, and ``standard`` is the same GPT in the standard parametrization.

The base width is the default, 256.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    n_embd: int = 256
    base_n_embd: int = 256
    n_head: int = 4
    n_layer: int = 2
    vocab_size: int = 64
    block_size: int = 32
    mup: bool = True
    in_place: bool = True


class SelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.n_head = config.n_head
        base_head_dim = config.base_n_embd // config.n_head
        self.mup_scale = math.sqrt(base_head_dim) if config.mup else None

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        scale = self.mup_scale / q.size(-1) if self.mup_scale else None
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.width_mult = config.n_embd / config.base_n_embd if config.mup else 1.0
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        for name, p in self.named_parameters():
            if p.dim() < 2:
                continue
            hidden = name.startswith("h.")
            nn.init.normal_(p, std=0.02 / math.sqrt(self.width_mult) if hidden else 0.02)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        if self.config.in_place:
            x *= 1 / self.width_mult
        else:
            x = x * (1 / self.width_mult)
        return self.lm_head(x)

    def configure_optimizers(self, learning_rate=1e-3, weight_decay=0.0):
        hidden = [p for n, p in self.named_parameters() if n.startswith("h.") and p.dim() == 2]
        other = [p for n, p in self.named_parameters() if not (n.startswith("h.") and p.dim() == 2)]
        return torch.optim.AdamW([
            {"params": hidden, "lr": learning_rate / self.width_mult, "weight_decay": weight_decay * self.width_mult},
            {"params": other, "lr": learning_rate, "weight_decay": 0.0},
        ])


def out_of_place(n_embd: int = 256) -> GPT:
    return GPT(GPTConfig(n_embd=n_embd, in_place=False))


def standard(n_embd: int = 256) -> GPT:
    return GPT(GPTConfig(n_embd=n_embd, mup=False))
