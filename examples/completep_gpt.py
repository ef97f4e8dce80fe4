"""A nanoGPT-style GPT in µP for width and CompleteP (α = 1) for depth.

Width, as in nanogpt_mup.py: hidden init std 0.02 * sqrt(base / width), attention scale
sqrt(base_head_dim) / head_dim, the tied readout's logits times base / width, AdamW learning rate
∝ 1/width for hidden matrices (their weight decay scaled up so lr · wd stays put).

Depth, CompleteP's two lines on top of µP: every residual branch's output is multiplied by
base_depth / n_layer before it is added to the stream, and the block parameters' Adam ε is
multiplied by the same factor (their learning rate needs no depth factor at α = 1). The output
projections keep the plain hidden init: no GPT-2 `1/sqrt(2 * n_layer)` on top of the multiplier.
At n_embd = 128 and n_layer = 4 this is the µP model unchanged.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    block_size: int = 64
    vocab_size: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    bias: bool = True
    base_n_embd: int = 128  # the width the hyperparameters were tuned at
    base_n_layer: int = 4  # the depth the hyperparameters were tuned at


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.n_head = config.n_head
        base_head_dim = config.base_n_embd // config.n_head
        self.scale = math.sqrt(base_head_dim) / (config.n_embd // config.n_head)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)
        self.branch_scale = config.base_n_layer / config.n_layer  # CompleteP: α = 1

    def forward(self, x):
        x = x + self.branch_scale * self.attn(self.ln_1(x))
        return x + self.branch_scale * self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.width_mult = config.n_embd / config.base_n_embd
        self.depth_mult = config.n_layer / config.base_n_layer
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear) and module is not self.lm_head:
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02 / math.sqrt(self.width_mult))
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x) / self.width_mult
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    def configure_optimizers(self, weight_decay=0.1, learning_rate=1e-3, betas=(0.9, 0.95), eps=1e-8):
        blocks = {id(p) for p in self.transformer.h.parameters()}
        embeddings = [self.transformer.wte.weight, self.transformer.wpe.weight]
        others = [p for p in self.parameters() if id(p) not in blocks and all(p is not e for e in embeddings)]
        block_hidden = [p for p in self.transformer.h.parameters() if p.dim() >= 2]
        block_vectors = [p for p in self.transformer.h.parameters() if p.dim() < 2]
        block_eps = eps / self.depth_mult  # CompleteP: block ε ∝ 1/depth
        groups = [
            {"params": block_hidden, "lr": learning_rate / self.width_mult,
             "weight_decay": weight_decay * self.width_mult, "eps": block_eps / self.width_mult},
            {"params": block_vectors, "weight_decay": 0.0, "eps": block_eps},
            {"params": embeddings, "weight_decay": weight_decay},
            {"params": others, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps)
