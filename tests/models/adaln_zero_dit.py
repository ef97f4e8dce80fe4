"""A small DiT with adaLN-Zero conditioning, in µP written by hand (Table 3: the scales live in the
init and in per-group Adam learning rates, no multipliers).

Every block's attention and MLP outputs are multiplied by a gate that a zero-initialised Linear
computes from the timestep embedding, so at init each block adds nothing to the stream; the final
projection to patches is zero-initialised too (a µP readout may start at zero). Heads are fixed,
head_dim grows with width, and the attention logits are scaled by 1/head_dim (times the base
head_dim, so the model equals its SP sibling at the base width).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_WIDTH = 64
PATCH, CHANNELS, IMAGE, FREQS = 2, 4, 8, 64


def timestep_features(t: torch.Tensor) -> torch.Tensor:
    half = FREQS // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)
        self.ada = nn.Linear(width, 6 * width, bias=False)
        nn.init.zeros_(self.ada.weight)  # adaLN-Zero: the block starts as the identity
        
        self.scale = math.sqrt(BASE_WIDTH // heads) / (width // heads)

    def attend(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))

    def forward(self, x, c):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(F.silu(c)).chunk(6, dim=-1)
        x = x + gate1.unsqueeze(1) * self.attend(modulate(self.norm1(x), shift1, scale1))
        h = modulate(self.norm2(x), shift2, scale2)
        return x + gate2.unsqueeze(1) * self.fc2(F.gelu(self.fc1(h), approximate="tanh"))


class DiT(nn.Module):
    def __init__(self, width: int = BASE_WIDTH, depth: int = 2, heads: int = 4):
        super().__init__()
        tokens = (IMAGE // PATCH) ** 2
        self.patchify = nn.Conv2d(CHANNELS, width, kernel_size=PATCH, stride=PATCH)
        self.pos = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.t_in = nn.Linear(FREQS, width)
        self.t_hidden = nn.Linear(width, width)
        self.blocks = nn.ModuleList(DiTBlock(width, heads) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(width, 2 * width, bias=False)
        self.to_patches = nn.Linear(width, PATCH * PATCH * CHANNELS)
        for zeroed in (self.final_ada, self.to_patches):
            nn.init.zeros_(zeroed.weight)
            if zeroed.bias is not None:
                nn.init.zeros_(zeroed.bias)

    def forward(self, latents, t):
        x = self.patchify(latents).flatten(2).transpose(1, 2) + self.pos
        c = self.t_hidden(F.silu(self.t_in(timestep_features(t))))
        for block in self.blocks:
            x = block(x, c)
        shift, scale = self.final_ada(F.silu(c)).chunk(2, dim=-1)
        return self.to_patches(modulate(self.final_norm(x), shift, scale))


def make_dit(width: int = BASE_WIDTH):
    return DiT(width)


def example_inputs(model):
    return torch.randn(8, CHANNELS, IMAGE, IMAGE), torch.randint(0, 1000, (8,))


def make_optimizer(model, lr: float = 3e-4):
    """µP Adam: matrices whose fan-in grows with width (hidden, readout) at lr · base/width; the
    patch and timestep inputs and every vector at lr."""
    width = model.t_hidden.in_features
    scaled = [p for n, p in model.named_parameters() if p.ndim == 2 and not n.startswith("t_in")]
    rest = [p for n, p in model.named_parameters() if not (p.ndim == 2 and not n.startswith("t_in"))]
    return torch.optim.Adam([{"params": scaled, "lr": lr * BASE_WIDTH / width}, {"params": rest, "lr": lr}])


def make_sp_optimizer(model, lr: float = 3e-4):
    """The SP twin: one Adam lr for every parameter, as DiT trains."""
    return torch.optim.Adam(model.parameters(), lr=lr)
