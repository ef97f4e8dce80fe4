"""Pre-LN residual stacks of two-layer MLP branches for the depth coordinate check, one class per way
of scaling with depth. Each branch is multiplied by (BASE_DEPTH / n_layer) ** alpha before its add,
and the block parameters train at Adam lr × (n_layer / BASE_DEPTH) ** lr_exponent:

- ``Standard``: no depth scaling (α = 0, SP in depth);
- ``DepthMup``: α = ½ with its LR rule (block lr ∝ L^-½), Depth-µP;
- ``DepthMupOneLr``: α = ½ without it;
- ``CompleteP``: α = 1, one lr (CompleteP needs no depth factor on the lr);
- ``CompletePHalfLr``: α = 1 with α = ½'s lr rule on top;
- ``LayerLoop``: CompleteP with the multiplier in the model's loop over its layers, outside the
  branch modules the list holds (``x = x + scale * layer(x)``, as decoder stacks write it).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_DEPTH = 4


class Mlp(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.proj = nn.Linear(4 * width, width)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(self.norm(x))))


class Block(nn.Module):
    def __init__(self, width, scale):
        super().__init__()
        self.mlp = Mlp(width)
        self.scale = scale

    def forward(self, x):
        return x + self.scale * self.mlp(x)


class Standard(nn.Module):
    alpha = 0.0
    lr_exponent = 0.0

    def __init__(self, width=64, n_layer=BASE_DEPTH, vocab_size=64):
        super().__init__()
        self.n_layer = n_layer
        self.scale = (BASE_DEPTH / n_layer) ** self.alpha
        self.wte = nn.Embedding(vocab_size, width)
        self.blocks = self.make_blocks(width, n_layer)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)

    def make_blocks(self, width, n_layer):
        return nn.ModuleList(Block(width, self.scale) for _ in range(n_layer))

    def stream(self, idx):
        x = self.wte(idx)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, idx):
        return self.head(self.norm(self.stream(idx)))

    def configure_optimizers(self, lr=3e-3):
        blocks = list(self.blocks.parameters())
        others = [p for p in self.parameters() if all(p is not b for b in blocks)]
        block_lr = lr * (self.n_layer / BASE_DEPTH) ** self.lr_exponent
        return torch.optim.Adam([{"params": blocks, "lr": block_lr}, {"params": others, "lr": lr}])


class DepthMup(Standard):
    alpha = 0.5
    lr_exponent = -0.5


class DepthMupOneLr(Standard):
    alpha = 0.5


class CompleteP(Standard):
    alpha = 1.0


class CompletePHalfLr(Standard):
    alpha = 1.0
    lr_exponent = -0.5


class LayerLoop(Standard):
    alpha = 1.0

    def make_blocks(self, width, n_layer):
        return nn.ModuleList(Mlp(width) for _ in range(n_layer))

    def stream(self, idx):
        x = self.wte(idx)
        for layer in self.blocks:
            x = x + self.scale * layer(x)
        return x


class PartsLoop(Standard):
    """Blocks that are containers: the loop calls each block's parts (`for norm, mlp in self.blocks`)."""

    alpha = 1.0

    def make_blocks(self, width, n_layer):
        return nn.ModuleList(nn.ModuleList([nn.LayerNorm(width), Mlp(width)]) for _ in range(n_layer))

    def stream(self, idx):
        x = self.wte(idx)
        for norm, mlp in self.blocks:
            x = x + self.scale * mlp(norm(x))
        return x


def example_inputs(model):
    return (torch.randint(0, model.head.out_features, (8, 16), generator=torch.Generator().manual_seed(0)),)
