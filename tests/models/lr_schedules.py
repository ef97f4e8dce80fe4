"""Optimizer factories that build an LR scheduler with the optimizer and return both, in the forms
training code uses: ``(optimizer, scheduler)``, Lightning's ``[optimizers], [schedulers]`` and
``{"optimizer": ..., "lr_scheduler": {"scheduler": ..., "interval": "step"}}``. A warm-up sets every
group's lr to (nearly) 0 when it is built; the groups' base lrs are what µP is about. The model is
an nn.Sequential made by a factory, its readout a module dividing its input by the width multiplier."""

import torch
import torch.nn as nn
from torch.optim import lr_scheduler

BASE_WIDTH = 32


class ScaledReadout(nn.Module):
    def __init__(self, width: int, classes: int = 4):
        super().__init__()
        self.mult = width / BASE_WIDTH
        self.proj = nn.Linear(width, classes, bias=False)
        nn.init.normal_(self.proj.weight, std=0.02)

    def forward(self, h):
        return self.proj(h / self.mult)


def make_model(width: int = 32) -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), ScaledReadout(width))


def _mup_groups(model, learning_rate):
    mult = model[2].in_features / BASE_WIDTH
    hidden = [model[2].weight]
    rest = [p for p in model.parameters() if p is not model[2].weight]
    return [{"params": hidden, "lr": learning_rate / mult}, {"params": rest, "lr": learning_rate}]


def _warmup(step):
    return min(1.0, step / 100)


def warmup_one_lr(model, learning_rate=1e-3):
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    return optimizer, lr_scheduler.LambdaLR(optimizer, _warmup)


def warmup_mup(model, learning_rate=1e-3):
    optimizer = torch.optim.AdamW(_mup_groups(model, learning_rate), weight_decay=0.0)
    return optimizer, lr_scheduler.LambdaLR(optimizer, _warmup)


def lightning_dict(model, learning_rate=1e-3):
    optimizer = torch.optim.AdamW(_mup_groups(model, learning_rate), weight_decay=0.0)
    warm = lr_scheduler.LinearLR(optimizer, start_factor=1e-3, total_iters=50)
    decay = lr_scheduler.CosineAnnealingLR(optimizer, T_max=500)
    schedule = lr_scheduler.SequentialLR(optimizer, [warm, decay], milestones=[50])
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def lightning_lists(model, learning_rate=1e-3):
    optimizer = torch.optim.AdamW(_mup_groups(model, learning_rate), weight_decay=0.0)
    return [optimizer], [lr_scheduler.CosineAnnealingLR(optimizer, T_max=500)]


def one_cycle_one_peak(model, learning_rate=1e-3):
    """OneCycleLR with one max_lr writes the same schedule into every group: the µP groups are lost."""
    optimizer = torch.optim.AdamW(_mup_groups(model, learning_rate), weight_decay=0.0)
    return optimizer, lr_scheduler.OneCycleLR(optimizer, max_lr=10 * learning_rate, total_steps=1000)


def one_cycle_per_group(model, learning_rate=1e-3):
    optimizer = torch.optim.AdamW(_mup_groups(model, learning_rate), weight_decay=0.0)
    peaks = [10 * group["lr"] for group in optimizer.param_groups]
    return optimizer, lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=1000)


def warmups_per_group(model, learning_rate=1e-3):
    """A longer warm-up for the hidden group than for the rest: the lr ratios move until both end."""
    optimizer = torch.optim.AdamW(_mup_groups(model, learning_rate), weight_decay=0.0)
    return optimizer, lr_scheduler.LambdaLR(optimizer, [lambda s: min(1.0, s / 100), _warmup_short])


def _warmup_short(step):
    return min(1.0, step / 10)
