"""A mixture of experts with data-dependent token routing (top-1, a loop over the experts that skips
empty ones, a capacity read with ``.item()``): torch.export cannot trace it, so it is recorded while it
runs. ``RoutedMoE`` is µP (hidden std 1/sqrt(fan_in), router and readout std 1/fan_in, hidden lr
1/width); ``SPRoutedMoE`` keeps PyTorch's defaults and one learning rate."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Expert(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.up = nn.Linear(width, 2 * width, bias=False)
        self.down = nn.Linear(2 * width, width, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.up(x)))


class MoE(nn.Module):
    def __init__(self, width: int, experts: int = 2):
        super().__init__()
        self.router = nn.Linear(width, experts, bias=False)
        self.experts = nn.ModuleList(Expert(width) for _ in range(experts))

    def forward(self, x):
        tokens = x.reshape(-1, x.size(-1))
        choice = self.router(tokens).argmax(dim=-1)
        capacity = int(torch.bincount(choice, minlength=len(self.experts)).max().item())
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            idx = (choice == e).nonzero().squeeze(-1)[:capacity]
            if idx.numel() == 0:
                continue
            out[idx] = expert(tokens[idx])
        return out.reshape(x.shape)


class RoutedMoE(nn.Module):
    MUP = True

    def __init__(self, width: int = 64, vocab: int = 32):
        super().__init__()
        self.width = width
        self.embed = nn.Embedding(vocab, width)
        self.norm = nn.LayerNorm(width)
        self.moe = MoE(width)
        self.head = nn.Linear(width, vocab, bias=False)
        if self.MUP:
            nn.init.normal_(self.embed.weight, std=1.0)
            for name, p in self.moe.named_parameters():
                fan_in = p.shape[1]
                nn.init.normal_(p, std=1.0 / fan_in if name.startswith("router") else fan_in ** -0.5)
            nn.init.normal_(self.head.weight, std=1.0 / width)

    def forward(self, idx):
        x = self.embed(idx)
        x = x + self.moe(self.norm(x))
        return self.head(x)


class SPRoutedMoE(RoutedMoE):
    MUP = False


def make_optimizer(model):
    if not model.MUP:
        return torch.optim.Adam(model.parameters(), lr=1e-3)
    matrices = [p for n, p in model.named_parameters() if n.startswith(("moe.", "head."))]
    ids = {id(p) for p in matrices}
    return torch.optim.Adam([{"params": matrices, "lr": 1e-3 * 64 / model.width},
                             {"params": [p for p in model.parameters() if id(p) not in ids], "lr": 1e-3}])
