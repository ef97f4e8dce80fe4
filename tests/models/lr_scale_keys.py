"""nanoGPT-mup style: the µP learning rates live in param groups under `lr_scale`, a key torch
ignores, which the training applies once, on top of the lr the factory set (``apply_lr_scales``:
``group['lr'] *= group.get('lr_scale', 1.0)``). A small MLP language model with a tied readout and a
width multiplier in its config."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class MLPConfig:
    n_embd: int = 64
    vocab_size: int = 48
    n_layer: int = 2
    mup_base_width: int = 64

    @property
    def mup_width_multiplier(self) -> float:
        return self.n_embd / self.mup_base_width


class Block(nn.Module):
    def __init__(self, config: MLPConfig):
        super().__init__()
        self.ln = nn.LayerNorm(config.n_embd)
        self.c_fc = nn.Linear(config.n_embd, 2 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(2 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x):
        return x + self.c_proj(F.gelu(self.c_fc(self.ln(x))))


class MLPLM(nn.Module):
    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        for name, p in self.named_parameters():
            if name.endswith(("c_fc.weight", "c_proj.weight")):
                nn.init.normal_(p, std=0.02 / config.mup_width_multiplier ** 0.5)
        nn.init.normal_(self.wte.weight, std=0.02)

    def forward(self, idx):
        x = self.wte(idx)
        for block in self.h:
            x = block(x)
        x = self.ln_f(x) / self.config.mup_width_multiplier
        return self.lm_head(x)

    def _groups(self, weight_decay, scale_key, hidden_lr_scale, hidden_lr=None):
        hidden = [p for n, p in self.named_parameters() if n.endswith(("c_fc.weight", "c_proj.weight"))]
        ids = {id(p) for p in hidden}
        rest = [p for p in self.parameters() if id(p) not in ids]
        mult = self.config.mup_width_multiplier
        group = {"params": hidden, "weight_decay": weight_decay * mult, scale_key: hidden_lr_scale}
        if hidden_lr is not None:
            group["lr"] = hidden_lr
        return [group, {"params": rest, "weight_decay": 0.0, scale_key: 1.0}]

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        groups = self._groups(weight_decay, "lr_scale", 1 / self.config.mup_width_multiplier)
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)


def lr_scaled_twice(model, learning_rate=1e-3):
    """The group's lr is scaled by 1/width as well as its lr_scale: the loop applies both."""
    mult = model.config.mup_width_multiplier
    return torch.optim.AdamW(model._groups(0.1, "lr_scale", 1 / mult, hidden_lr=learning_rate / mult),
                             lr=learning_rate)


def own_key(model, learning_rate=1e-3):
    """A project-specific key, known to mulint only through the config's lr-scale-key."""
    return torch.optim.AdamW(model._groups(0.1, "lr_factor", 1 / model.config.mup_width_multiplier),
                             lr=learning_rate)


def apply_lr_scales(optimizer):
    """Before the first step: each group's lr times its scale, whatever lr the factory gave the group."""
    for group in optimizer.param_groups:
        group["lr"] *= group.get("lr_scale", 1.0)
    return optimizer


def make_model(width: int = 64) -> MLPLM:
    return MLPLM(MLPConfig(n_embd=width))
