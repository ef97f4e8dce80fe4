"""Param groups carry `lr_scale`, and no code anywhere multiplies a group's lr by it: torch ignores
the key, so each group trains at its own lr. The weights are raw parameters used through F.linear.
``mup_optimizer`` puts the hidden matrix's µP factor into its lr (and keeps the key, for logging);
``sp_optimizer`` only records the factor under the key, so the hidden matrix trains at the base lr."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_WIDTH = 32


class RawMLP(nn.Module):
    def __init__(self, width: int = 64, inputs: int = 10, outputs: int = 5):
        super().__init__()
        self.mult = width / BASE_WIDTH
        self.w_in = nn.Parameter(torch.randn(width, inputs) / math.sqrt(inputs))
        self.w_hidden = nn.Parameter(torch.randn(width, width) / math.sqrt(width))
        self.w_out = nn.Parameter(torch.randn(outputs, width) * 0.02)

    def forward(self, x):
        h = torch.tanh(F.linear(x, self.w_in))
        h = torch.tanh(F.linear(h, self.w_hidden))
        return F.linear(h / self.mult, self.w_out)


def mup_optimizer(model, learning_rate=1e-3):
    scale = 1 / model.mult
    return torch.optim.Adam([
        {"params": [model.w_hidden], "lr": learning_rate * scale, "lr_scale": scale},
        {"params": [model.w_in, model.w_out], "lr_scale": 1.0},
    ], lr=learning_rate)


def sp_optimizer(model, learning_rate=1e-3):
    return torch.optim.Adam([
        {"params": [model.w_hidden], "lr_scale": 1 / model.mult},
        {"params": [model.w_in, model.w_out]},
    ], lr=learning_rate)
