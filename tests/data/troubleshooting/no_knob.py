"""A model whose width is fixed inside it: nothing for mulint to set (the README's troubleshooting)."""

import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        return self.fc(x)
