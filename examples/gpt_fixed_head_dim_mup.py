"""A µP GPT whose head_dim is fixed and whose number of heads grows with d_model (Table 3 style).

Since head_dim does not grow, the usual 1/sqrt(head_dim) attention scale is correct µP here.
Hidden init std ∝ fan_in^-½, an untied zero-initialised readout, and Adam learning rates
∝ 1/d_model for hidden and output weights.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_D_MODEL = 128


class Block(nn.Module):
    def __init__(self, d_model, head_dim):
        super().__init__()
        self.n_head = d_model // head_dim
        self.norm_1 = nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.o = nn.Linear(d_model, d_model, bias=False)
        self.norm_2 = nn.LayerNorm(d_model)
        self.up = nn.Linear(d_model, 4 * d_model, bias=False)
        self.down = nn.Linear(4 * d_model, d_model, bias=False)
        for layer in (self.q, self.k, self.v, self.o, self.up, self.down):
            nn.init.normal_(layer.weight, std=layer.in_features ** -0.5)

    def forward(self, x):
        B, T, C = x.shape
        h = self.norm_1(x)
        q, k, v = (proj(h).view(B, T, self.n_head, -1).transpose(1, 2) for proj in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(y.transpose(1, 2).reshape(B, T, C))
        return x + self.down(F.gelu(self.up(self.norm_2(x))))


class GPT(nn.Module):
    def __init__(self, d_model=128, head_dim=16, n_layer=2, vocab_size=256, block_size=64):
        super().__init__()
        self.d_model = d_model
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(block_size, d_model)
        self.blocks = nn.ModuleList([Block(d_model, head_dim) for _ in range(n_layer)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        nn.init.zeros_(self.head.weight)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.size(1), device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def make_optimizer(model, lr=1e-3):
    matrices = [p for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith(("tok", "pos"))]
    others = [p for p in model.parameters() if all(p is not m for m in matrices)]
    return torch.optim.Adam([
        {"params": matrices, "lr": lr * BASE_D_MODEL / model.d_model},
        {"params": others, "lr": lr},
    ])
