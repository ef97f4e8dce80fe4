"""A nanoGPT-mup-style project: the model's configure_optimizers keeps the hidden matrices' µP
factor under `lr_scale` with one lr for every group, and the training script beside it (train.py)
writes ``lr * param_group.get('lr_scale', 1.0)`` into every group each step. A token model whose
blocks mix features with a gated MLP; ``sp_optimizer`` leaves every scale at 1."""

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_D_MODEL = 32


class GatedBlock(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.norm = nn.RMSNorm(d_model)
        self.gate = nn.Linear(d_model, 2 * d_model, bias=False)
        self.up = nn.Linear(d_model, 2 * d_model, bias=False)
        self.down = nn.Linear(2 * d_model, d_model, bias=False)

    def forward(self, x):
        h = self.norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class TokenMixer(nn.Module):
    def __init__(self, d_model: int = 64, vocab: int = 40, layers: int = 2):
        super().__init__()
        self.width_mult = d_model / BASE_D_MODEL
        self.embed = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList(GatedBlock(d_model) for _ in range(layers))
        self.norm = nn.RMSNorm(d_model)
        self.unembed = nn.Linear(d_model, vocab, bias=False)
        nn.init.normal_(self.unembed.weight, std=0.02)

    def forward(self, tokens):
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.unembed(self.norm(x) / self.width_mult)

    def param_groups(self, hidden_scale, weight_decay):
        hidden = [p for n, p in self.named_parameters() if n.startswith("layers.") and p.dim() == 2]
        ids = {id(p) for p in hidden}
        return [{"params": hidden, "weight_decay": weight_decay / hidden_scale, "lr_scale": hidden_scale},
                {"params": [p for p in self.parameters() if id(p) not in ids], "weight_decay": 0.0}]

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        return torch.optim.AdamW(self.param_groups(1 / self.width_mult, weight_decay), lr=learning_rate, betas=betas)


def sp_optimizer(model, learning_rate=1e-3):
    return torch.optim.AdamW(model.param_groups(1.0, 0.1), lr=learning_rate)
