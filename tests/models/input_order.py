"""Input synthesis beyond the first layer: a position table declared before the layer that reads the
input (so module order points at the wrong layer), and a forward mulint cannot feed at all."""

import torch
import torch.nn as nn


class FeaturesWithPositions(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        self.pos = nn.Embedding(16, width)  # declared first, fed with torch.arange
        self.inp = nn.Linear(10, width)
        self.out = nn.Linear(width, 3)

    def forward(self, x):
        h = self.inp(x) + self.pos(torch.arange(x.size(1), device=x.device))
        return self.out(h.relu())


class TwoStreams(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        self.a = nn.Linear(4, width)
        self.b = nn.Linear(6, width)

    def forward(self, left, right):
        return self.a(left) * self.b(right)
