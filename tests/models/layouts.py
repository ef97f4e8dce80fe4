"""Models whose weights are stored and applied in unusual ways."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class InOut(nn.Module):
    """Weights stored (in, out) and applied as x @ W; a 1-D readout vector."""

    def __init__(self, width=32, d_in=5):
        super().__init__()
        self.w_in = nn.Parameter(torch.randn(d_in, width))
        self.w_hid = nn.Parameter(torch.randn(width, 2 * width))
        self.w_out = nn.Parameter(torch.randn(2 * width))
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x):
        h = torch.tanh(x @ self.w_in)
        h = torch.tanh(h @ self.w_hid)
        return (h @ self.w_out) * self.gain


class Einsum(nn.Module):
    def __init__(self, width=32, d_in=6, n_out=3):
        super().__init__()
        self.w_in = nn.Parameter(torch.randn(width, d_in))
        self.w_hid = nn.Parameter(torch.randn(width, width))
        self.w_out = nn.Parameter(torch.randn(width, n_out))

    def forward(self, x):
        h = torch.einsum("bi,oi->bo", x, self.w_in).relu()
        h = torch.einsum("oi,bi->bo", self.w_hid, h).relu()
        return torch.einsum("bi,ik->bk", h, self.w_out)


class Conv(nn.Module):
    def __init__(self, width=8, in_channels=3, n_classes=4):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.body = nn.Conv2d(width, width, 3, padding=1)
        self.depthwise = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x):
        h = F.relu(self.stem(x))
        h = F.relu(self.body(h))
        h = F.relu(self.depthwise(h))
        return self.head(h.mean(dim=(2, 3)))


class Attention(nn.Module):
    """One attention block; heads either fixed (head_dim grows) or growing (head_dim fixed)."""

    def __init__(self, d_model=32, n_head=None, head_dim=None, vocab=50):
        super().__init__()
        self.n_head = n_head if n_head is not None else d_model // head_dim
        self.emb = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.zeros(16, d_model))
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.head = nn.Linear(d_model, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, idx):
        b, t = idx.shape
        x = self.emb(idx) + self.pos[:t]
        q, k, v = self.qkv(x).split(x.size(-1), dim=-1)
        q, k, v = (z.view(b, t, self.n_head, -1).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        y = att.softmax(-1) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, -1))
        return self.head(x)


class FixedHeads(Attention):
    def __init__(self, d_model=32, n_head=4):
        super().__init__(d_model=d_model, n_head=n_head)


class FixedHeadDim(Attention):
    def __init__(self, d_model=32, head_dim=8):
        super().__init__(d_model=d_model, head_dim=head_dim)


class DevicelessForward(nn.Module):
    """Creates tensors in forward without a device (positions, a causal mask), as most code does."""

    def __init__(self, width=32, vocab=20):
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.zeros(16, width))
        self.proj = nn.Linear(width, vocab)

    def forward(self, idx):
        t = idx.size(1)
        positions = torch.arange(t)
        mask = torch.triu(torch.ones(t, t), 1)
        x = self.emb(idx) + self.pos[positions]
        return self.proj(x + mask.sum() * 0)
