"""A residual MLP on raw parameters and F.linear, in µP's Table 8 style: a readout multiplier
base/width, a constant-std readout init, per-group AdamW learning rates and weight decays."""

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_WIDTH = 64
D_IN, D_OUT = 12, 5


class Block(nn.Module):
    def __init__(self, width: int, std: float):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(width, width) * std)

    def forward(self, h):
        return torch.tanh(F.linear(h, self.weight))


class ResMLP(nn.Module):
    """µP: input std 1, hidden std width^-½, readout std 0.5 behind a base/width multiplier."""

    def __init__(self, width: int = 64, depth: int = 2):
        super().__init__()
        self.width = width
        self.w_in = nn.Parameter(torch.randn(width, D_IN))
        self.blocks = nn.ModuleList(Block(width, width ** -0.5) for _ in range(depth))
        self.gain = nn.Parameter(torch.ones(width))
        self.w_out = nn.Parameter(torch.randn(D_OUT, width) * 0.5)
        self.output_mult = BASE_WIDTH / width

    def forward(self, x):
        h = F.linear(x, self.w_in)
        for block in self.blocks:
            h = h + block(h)
        h = F.rms_norm(h, (self.width,)) * self.gain
        return F.linear(h, self.w_out) * self.output_mult


def make_optimizer(model: ResMLP, lr: float = 1e-2, weight_decay: float = 0.01):
    scale = BASE_WIDTH / model.width
    hidden = [block.weight for block in model.blocks]
    return torch.optim.AdamW([
        {"params": [model.w_in, model.gain], "weight_decay": 0.0},
        {"params": hidden, "lr": lr * scale, "weight_decay": weight_decay / scale},  # lr·wd stays constant
        {"params": [model.w_out], "weight_decay": weight_decay},
    ], lr=lr)
