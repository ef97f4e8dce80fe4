"""A residual MLP written with explicit per-role modules, in µP (Table 3: scaled init, per-group Adam lrs)
and its SP twin (PyTorch defaults, one lr): the pair a transfer sweep must tell apart."""

import torch
from torch import nn

BASE = 64
D_IN, D_OUT = 24, 10


class ResMLP(nn.Module):
    def __init__(self, width: int = BASE, mup: bool = True):
        super().__init__()
        self.width, self.mup = width, mup
        self.embed = nn.Linear(D_IN, width)
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(2))
        self.head = nn.Linear(width, D_OUT, bias=False)
        if mup:
            nn.init.normal_(self.embed.weight, std=D_IN**-0.5)
            for block in self.blocks:
                nn.init.normal_(block.weight, std=width**-0.5)
            nn.init.zeros_(self.head.weight)

    def forward(self, x):
        h = torch.relu(self.embed(x))
        for block in self.blocks:
            h = h + torch.relu(block(h))
        return self.head(h)


def mup_net(width: int = BASE):
    return ResMLP(width, mup=True)


def sp_net(width: int = BASE):
    return ResMLP(width, mup=False)


def mup_adam(model, lr=2e-3):
    scale = BASE / model.width
    hidden = [b.weight for b in model.blocks] + [model.head.weight]
    others = [p for p in model.parameters() if all(p is not q for q in hidden)]
    return torch.optim.Adam([{"params": others, "lr": lr}, {"params": hidden, "lr": lr * scale}])


def sp_adam(model, lr=2e-3):
    return torch.optim.Adam(model.parameters(), lr=lr)
