"""nanoGPT-mup-style learning rates in another shape of code: the model's own configure_optimizers puts
its hidden matrices in groups carrying ``lr_scale = base_width / width`` (decayed and not, as nanoGPT
splits them) and leaves every group's lr at the one learning rate; ``train`` below applies the key the
way nanoGPT-mup's train.py does. The model holds raw parameters and calls ``F.linear`` itself, with a
dataclass config whose ``width`` mulint scales."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_WIDTH = 32


@dataclass
class MixerConfig:
    width: int = 64
    vocab: int = 96
    depth: int = 2


class RawMixer(nn.Module):
    def __init__(self, config: MixerConfig):
        super().__init__()
        self.config = config
        width = config.width
        self.embed = nn.Parameter(torch.randn(config.vocab, width))
        self.ins = nn.ParameterList(nn.Parameter(torch.randn(2 * width, width) / width**0.5) for _ in range(config.depth))
        self.outs = nn.ParameterList(
            nn.Parameter(torch.randn(width, 2 * width) / (2 * width) ** 0.5) for _ in range(config.depth)
        )
        self.gains = nn.ParameterList(nn.Parameter(torch.ones(width)) for _ in range(config.depth))
        self.readout = nn.Parameter(torch.zeros(config.vocab, width))

    def forward(self, ids):
        h = self.embed[ids]
        for w_in, w_out, gain in zip(self.ins, self.outs, self.gains):
            h = h + F.linear(F.gelu(F.linear(F.rms_norm(h, (h.shape[-1],)) * gain, w_in)), w_out)
        return F.linear(h, self.readout) * (BASE_WIDTH / self.config.width)

    def configure_optimizers(self, learning_rate=1e-3, weight_decay=0.1):
        scale = BASE_WIDTH / self.config.width
        hidden = [*self.ins, *self.outs]
        hidden_ids = {id(p) for p in hidden}
        rest = [p for p in self.parameters() if id(p) not in hidden_ids]
        groups = [
            {"params": hidden, "weight_decay": weight_decay, "lr_scale": scale},
            {"params": rest, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.95))


def train(model, batches, learning_rate=1e-3):
    optimizer = model.configure_optimizers(learning_rate)
    for ids, targets in batches:
        for param_group in optimizer.param_groups:
            param_group["lr"] = learning_rate * param_group.get("lr_scale", 1.0)
        loss = F.cross_entropy(model(ids).flatten(0, 1), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
