"""A nanoGPT-style forward with two branches: with ``targets`` (training) the logits of every position,
without them (generation) the last position's only. ``LastTokenMultiplierLM`` scales the logits by
1/width_mult on the training branch only; ``BothBranchesLM`` on both."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class BothBranchesLM(nn.Module):
    def __init__(self, n_embd: int = 64, vocab_size: int = 40, base_n_embd: int = 64):
        super().__init__()
        self.width_mult = n_embd / base_n_embd
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.fc = nn.Linear(n_embd, n_embd, bias=False)
        nn.init.normal_(self.fc.weight, std=0.02 / math.sqrt(self.width_mult))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        nn.init.normal_(self.lm_head.weight, std=0.02)

    def readout(self, x):
        return self.lm_head(x) / self.width_mult

    def forward(self, idx, targets=None):
        x = F.gelu(self.fc(self.wte(idx)))
        if targets is not None:
            logits = self.readout(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        else:
            logits = self.readout(x[:, [-1], :])  # only the last position is needed to generate
            loss = None
        return logits, loss


class LastTokenMultiplierLM(BothBranchesLM):
    def forward(self, idx, targets=None):
        x = F.gelu(self.fc(self.wte(idx)))
        if targets is not None:
            logits = self.readout(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        else:
            logits = self.lm_head(x[:, [-1], :])  # the multiplier forgotten here
            loss = None
        return logits, loss


def make_optimizer(model):
    return torch.optim.AdamW([{"params": [model.fc.weight], "lr": 1e-3 / model.width_mult},
                              {"params": [model.wte.weight, model.lm_head.weight], "lr": 1e-3}], weight_decay=0.0)


class TrainModeMultiplierLM(BothBranchesLM):
    """The multiplier applied in train mode only (no targets argument)."""

    def forward(self, idx):
        x = F.gelu(self.fc(self.wte(idx)))
        return self.readout(x) if self.training else self.lm_head(x)
