"""A token model built as an nn.Sequential by a factory, with µP init and Adam learning rates, except
that the embedding's lr shrinks as width^-½ (a choice u-µP accepts and µP calls too small).

The default µP profile flags the embedding's update (MU301); a profile that accepts [-0.5, 0] for
the input role under Adam passes it: a model whose verdict the profile alone decides."""

import torch
import torch.nn as nn

BASE = 64


def make_model(width: int = 128, vocab: int = 50) -> nn.Sequential:
    model = nn.Sequential(nn.Embedding(vocab, width), nn.Linear(width, width, bias=False), nn.ReLU(),
                          nn.Linear(width, vocab, bias=False))
    nn.init.normal_(model[0].weight, std=1.0)
    nn.init.normal_(model[1].weight, std=width ** -0.5)
    nn.init.zeros_(model[3].weight)
    return model


def example_inputs(width: int = 128):
    return (torch.randint(0, 50, (2, 8)),)


def make_optimizer(model: nn.Sequential, lr: float = 1e-3):
    width = model[0].embedding_dim
    return torch.optim.Adam([
        {"params": [model[0].weight], "lr": lr * (BASE / width) ** 0.5},
        {"params": [model[1].weight, model[3].weight], "lr": lr * BASE / width},
    ])
