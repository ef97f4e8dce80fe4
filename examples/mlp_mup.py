"""The same MLP in µP, written by hand in the style of Table 3 (no multipliers).

Hidden init std ∝ fan_in^-½, input init independent of width, zero readout, and Adam learning
rates ∝ 1/width for hidden and output weights. At width 256 it trains exactly like its SP sibling
with per-group learning rates.
"""

import torch
import torch.nn as nn

BASE_WIDTH = 256


class MLP(nn.Module):
    def __init__(self, width=256, depth=3, in_features=32, n_classes=10):
        super().__init__()
        self.width = width
        self.inp = nn.Linear(in_features, width)
        self.hidden = nn.ModuleList([nn.Linear(width, width) for _ in range(depth - 1)])
        self.readout = nn.Linear(width, n_classes)
        nn.init.normal_(self.inp.weight, std=in_features ** -0.5)
        for layer in self.hidden:
            nn.init.normal_(layer.weight, std=width ** -0.5)
        nn.init.zeros_(self.readout.weight)
        for module in (self.inp, *self.hidden, self.readout):
            nn.init.zeros_(module.bias)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.readout(h)


def make_optimizer(model, lr=1e-3):
    matrices = [layer.weight for layer in model.hidden] + [model.readout.weight]
    others = [p for p in model.parameters() if all(p is not m for m in matrices)]
    return torch.optim.Adam([
        {"params": matrices, "lr": lr * BASE_WIDTH / model.width},
        {"params": others, "lr": lr},
    ])
