"""A small conv net in SP (PyTorch defaults, one SGD learning rate); width is the channel count.

mulint flags the readout (MU102) and SGD's single learning rate (MU302).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvNet(nn.Module):
    def __init__(self, width=32, in_channels=3, n_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.readout = nn.Linear(width, n_classes)

    def forward(self, x):
        h = F.relu(self.stem(x))
        h = F.relu(self.conv1(h))
        h = F.relu(self.conv2(h))
        return self.readout(h.mean(dim=(2, 3)))


def make_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
