"""An MLP in the standard parametrization (SP): PyTorch's default init and one Adam learning rate.

mulint flags its readout init (MU102) and the single learning rate (MU301).
"""

import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, width=256, depth=3, in_features=32, n_classes=10):
        super().__init__()
        self.inp = nn.Linear(in_features, width)
        self.hidden = nn.ModuleList([nn.Linear(width, width) for _ in range(depth - 1)])
        self.readout = nn.Linear(width, n_classes)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.readout(h)


def make_optimizer(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3)
