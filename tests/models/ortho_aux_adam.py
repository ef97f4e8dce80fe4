"""A small pre-norm transformer in µP with one optimizer object that runs orthogonalised momentum on
the hidden matrices and Adam on everything else, chosen per param group by a `use_ortho` flag."""

import torch
from torch import nn


def orthogonalise(m: torch.Tensor, steps: int = 6) -> torch.Tensor:
    """Nearest semi-orthogonal matrix by a cubic Newton-Schulz iteration."""
    x = m / (m.norm() + 1e-7)
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    for _ in range(steps):
        x = 1.5 * x - 0.5 * x @ x.T @ x
    return x.T if tall else x


class OrthoWithAdam(torch.optim.Optimizer):
    def __init__(self, groups):
        for g in groups:
            g.setdefault("lr", 0.02 if g["use_ortho"] else 1e-3)
        super().__init__(groups, {})

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if g["use_ortho"]:
                    buf = st.setdefault("buf", torch.zeros_like(p))
                    buf.mul_(0.9).add_(p.grad)
                    scale = max(1.0, p.shape[0] / p.shape[1]) ** 0.5
                    p.add_(orthogonalise(buf), alpha=-g["lr"] * scale)
                else:
                    st["t"] = st.get("t", 0) + 1
                    m = st.setdefault("m", torch.zeros_like(p))
                    v = st.setdefault("v", torch.zeros_like(p))
                    m.lerp_(p.grad, 0.1)
                    v.lerp_(p.grad.square(), 0.05)
                    mhat, vhat = m / (1 - 0.9 ** st["t"]), v / (1 - 0.95 ** st["t"])
                    p.add_(mhat / (vhat.sqrt() + 1e-10), alpha=-g["lr"])


class Layer(nn.Module):
    def __init__(self, d_model, n_head):
        super().__init__()
        self.n_head = n_head
        self.norm1, self.norm2 = nn.RMSNorm(d_model), nn.RMSNorm(d_model)
        self.wq = nn.Linear(d_model, d_model, bias=False)
        self.wk = nn.Linear(d_model, d_model, bias=False)
        self.wv = nn.Linear(d_model, d_model, bias=False)
        self.wo = nn.Linear(d_model, d_model, bias=False)
        self.up = nn.Linear(d_model, 3 * d_model, bias=False)
        self.down = nn.Linear(3 * d_model, d_model, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        h = self.norm1(x)
        q, k, v = (w(h).view(b, t, self.n_head, -1).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        att = (q @ k.transpose(-1, -2)) / q.shape[-1]  # µP: 1/d_head
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        x = x + self.wo((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.down(torch.relu(self.up(self.norm2(x))).square())


class Net(nn.Module):
    def __init__(self, d_model=64, base_d_model=64, vocab=64, depth=2, n_head=2):
        super().__init__()
        self.mult = base_d_model / d_model
        self.embed = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList([Layer(d_model, n_head) for _ in range(depth)])
        self.norm = nn.RMSNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)
        nn.init.zeros_(self.head.weight)
        for layer in self.layers:
            for lin in (layer.wq, layer.wk, layer.wv, layer.wo, layer.up, layer.down):
                nn.init.normal_(lin.weight, std=lin.in_features ** -0.5)

    def forward(self, tokens):
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x)) * self.mult


def make_optimizer(model):
    hidden = [p for p in model.layers.parameters() if p.ndim == 2]
    gains = [p for p in model.parameters() if p.ndim < 2]
    return OrthoWithAdam([
        dict(params=hidden, use_ortho=True, lr=0.02),
        dict(params=[model.embed.weight], use_ortho=False, lr=3e-3),
        dict(params=[model.head.weight], use_ortho=False, lr=3e-3),  # the 1/width output multiplier carries µP
        dict(params=gains, use_ortho=False, lr=3e-3),
    ])
