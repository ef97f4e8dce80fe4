"""The factory applies the lr-scale key itself and keeps it: each group's lr is already
``learning_rate * lr_scale`` when the optimizer is built, so nothing may multiply it again. A
residual MLP on feature vectors, its blocks written as nn.Sequential, the readout's input divided by
the width multiplier; ``sp_optimizer`` is the same factory with the hidden scale left at 1."""

import torch
import torch.nn as nn

BASE_WIDTH = 32


class ResidualMLP(nn.Module):
    def __init__(self, width: int = 64, inputs: int = 12, classes: int = 6, depth: int = 2):
        super().__init__()
        self.mult = width / BASE_WIDTH
        self.stem = nn.Linear(inputs, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
            for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes, bias=False)
        nn.init.normal_(self.head.weight, std=0.02)

    def forward(self, x):
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(self.norm(h) / self.mult)


def _groups(model, hidden_scale, weight_decay=0.1):
    hidden = [p for n, p in model.named_parameters() if n.startswith("blocks.") and p.dim() == 2]
    ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if id(p) not in ids]
    # AdamW decays by lr * weight_decay: the hidden decay grows as its lr shrinks
    return [{"params": hidden, "lr_scale": hidden_scale, "weight_decay": weight_decay / hidden_scale},
            {"params": rest, "lr_scale": 1.0, "weight_decay": 0.0}]


def configure_optimizers(model, learning_rate=3e-3):
    groups = _groups(model, 1 / model.mult)
    for group in groups:
        group["lr"] = learning_rate * group["lr_scale"]
    return torch.optim.AdamW(groups, lr=learning_rate)


def sp_optimizer(model, learning_rate=3e-3):
    groups = _groups(model, 1.0)
    for group in groups:
        group["lr"] = learning_rate * group["lr_scale"]
    return torch.optim.AdamW(groups, lr=learning_rate)
