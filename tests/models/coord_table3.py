"""A decoder in µP written from Table 3 of Tensor Programs V: no multipliers, the width enters
through init and learning rates alone (the readout initialised ∝ 1/width and trained at lr ∝
1/width, hidden matrices at init ∝ 1/sqrt(width) and lr ∝ 1/width, 1/d attention). The same class
built with ``mup=False`` is the standard parametrization: one init, one learning rate, 1/sqrt(d).

The base width is the default, 256.
"""

import math

import torch
import torch.nn as nn

BASE = 256


class Attention(nn.Module):
    def __init__(self, d_model, n_heads, mup):
        super().__init__()
        self.n_heads, self.mup = n_heads, mup
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def heads(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, -1).transpose(1, 2)

    def forward(self, x):
        q, k, v = self.heads(self.query(x)), self.heads(self.key(x)), self.heads(self.value(x))
        d = q.shape[-1]
        scale = math.sqrt(BASE // self.n_heads) / d if self.mup else 1 / math.sqrt(d)
        scores = (q @ k.transpose(-1, -2)) * scale
        t = x.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        weights = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        y = (weights @ v).transpose(1, 2).reshape(x.shape)
        return self.out(y)


class Layer(nn.Module):
    def __init__(self, d_model, n_heads, mup):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = Attention(d_model, n_heads, mup)
        self.norm2 = nn.LayerNorm(d_model)
        self.up = nn.Linear(d_model, 4 * d_model)
        self.down = nn.Linear(4 * d_model, d_model)

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.down(torch.relu(self.up(self.norm2(x))))


class Decoder(nn.Module):
    def __init__(self, d_model=256, n_heads=4, n_layers=2, vocab=64, ctx=32, mup=True):
        super().__init__()
        self.d_model, self.mup = d_model, mup
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Parameter(torch.zeros(ctx, d_model))
        self.layers = nn.ModuleList(Layer(d_model, n_heads, mup) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.normal_(self.tokens.weight, std=1.0)
        nn.init.normal_(self.positions, std=1.0)
        for p in self.layers.parameters():
            if p.dim() == 2:  # hidden matrices: variance 1/fan_in in both parametrizations
                nn.init.normal_(p, std=1 / math.sqrt(p.shape[1]))
        # Table 3: the readout's variance is 1/fan_in² in µP (equal to SP's 1/fan_in at the base width).
        std = math.sqrt(BASE) / self.d_model if self.mup else 1 / math.sqrt(self.d_model)
        nn.init.normal_(self.head.weight, std=std)

    def forward(self, ids):
        x = self.tokens(ids) + self.positions[: ids.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x))

    def configure_optimizers(self, lr=1e-3):
        """µP (Adam): hidden and readout matrices at lr × base/width; embeddings and vectors at lr."""
        scaled = [p for n, p in self.named_parameters() if p.dim() == 2 and (n.startswith("layers.") or n == "head.weight")]
        ids = {id(p) for p in scaled}
        rest = [p for p in self.parameters() if id(p) not in ids]
        factor = BASE / self.d_model if self.mup else 1.0
        return torch.optim.Adam([{"params": scaled, "lr": lr * factor}, {"params": rest, "lr": lr}])


def standard(d_model: int = 256) -> Decoder:
    return Decoder(d_model=d_model, mup=False)
