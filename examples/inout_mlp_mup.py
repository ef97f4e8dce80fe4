"""A µP MLP whose weights are raw parameters stored (in, out) and applied as x @ W.

The `mup` package guesses fan_in from shape[1] and gets this layout wrong; mulint reads fan_in
from how each weight is used. Table 3 style: hidden std ∝ fan_in^-½, zero readout, Adam
learning rates ∝ 1/width for hidden and output weights.
"""

import torch
import torch.nn as nn

BASE_WIDTH = 128


class InOutMLP(nn.Module):
    def __init__(self, width=128, in_features=16, n_classes=10, depth=2):
        super().__init__()
        self.width = width
        self.w_in = nn.Parameter(torch.randn(in_features, width) * in_features ** -0.5)
        self.w_hidden = nn.ParameterList(
            [nn.Parameter(torch.randn(width, width) * width ** -0.5) for _ in range(depth - 1)])
        self.w_out = nn.Parameter(torch.zeros(width, n_classes))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x):
        h = torch.relu(x @ self.w_in + self.bias)
        for w in self.w_hidden:
            h = torch.relu(h @ w)
        return h @ self.w_out


def make_optimizer(model, lr=1e-3):
    matrices = list(model.w_hidden) + [model.w_out]
    return torch.optim.Adam([
        {"params": matrices, "lr": lr * BASE_WIDTH / model.width},
        {"params": [model.w_in, model.bias], "lr": lr},
    ])
