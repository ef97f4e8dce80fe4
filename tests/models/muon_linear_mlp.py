"""A residual MLP language model in µP for torch.optim.Muon: hidden nn.Linear layers stepped by Muon
("original" lr adjustment, one lr at every width), the embedding and a zero-initialised readout with a
base/width output multiplier stepped by AdamW beside it (a list of two optimizers). `make_sp_optimizer`:
one AdamW for everything, SP."""

import torch
from torch import nn

BASE = 64


class Net(nn.Module):
    def __init__(self, width: int = 256, vocab: int = 64, depth: int = 3):
        super().__init__()
        self.width = width
        self.embed = nn.Embedding(vocab, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(depth))
        self.head = nn.Linear(width, vocab, bias=False)
        for layer in self.hidden:
            nn.init.normal_(layer.weight, std=width ** -0.5)
        nn.init.zeros_(self.head.weight)

    def forward(self, idx):
        x = self.embed(idx)
        for layer in self.hidden:
            x = x + torch.relu(layer(x))
        return self.head(x) * (BASE / self.width)


def make_optimizer(model):
    hidden = [p for layer in model.hidden for p in layer.parameters()]
    others = [model.embed.weight, model.head.weight]
    return [torch.optim.Muon(hidden, lr=0.02, adjust_lr_fn="original"),
            torch.optim.AdamW(others, lr=3e-3, weight_decay=0.0)]


def make_sp_optimizer(model):
    return torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
