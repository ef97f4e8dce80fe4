"""A µP GPT (hidden init 0.02/sqrt(width_mult), attention scaled by 1/head_dim, readout multiplier
1/width_mult, untied) and optimizer factories beyond Adam and SGD, each with a learning-rate rule
that is µP for it and one that is not: Muon (both LR adjustments), a Lion-like sign update with
momentum, and torch's Adafactor."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE = 64
LR = 0.02


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)
        self.ln_2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width, bias=False)
        self.out = nn.Linear(4 * width, width, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1 / q.size(-1))
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, width: int = BASE, vocab: int = 64, layers: int = 2, heads: int = 2):
        super().__init__()
        self.width_mult = width / BASE
        self.wte = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2 and name.startswith("blocks."):
                nn.init.normal_(p, std=0.02 / math.sqrt(self.width_mult))
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.lm_head.weight, std=0.02)

    def forward(self, idx):
        x = self.wte(idx)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x)) / self.width_mult


def example_inputs(model):
    return (torch.randint(0, model.wte.num_embeddings, (2, 8)),)


class SignMomentum(torch.optim.Optimizer):
    """Lion-like: the sign of an interpolation of momentum and gradient."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99)):
        super().__init__(params, dict(lr=lr, betas=betas))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].setdefault("m", torch.zeros_like(p))
                p.add_(torch.sign(b1 * m + (1 - b1) * p.grad), alpha=-group["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)


def _split(model):
    hidden = [p for n, p in model.named_parameters() if p.dim() == 2 and n.startswith("blocks.")]
    rest = [p for n, p in model.named_parameters() if not (p.dim() == 2 and n.startswith("blocks."))]
    return hidden, rest


def _muon(model, lr, adjust_lr_fn):
    hidden, rest = _split(model)
    return [torch.optim.Muon(hidden, lr=lr, adjust_lr_fn=adjust_lr_fn, weight_decay=0.0),
            torch.optim.AdamW(rest, lr=1e-3, weight_decay=0.0)]


def muon_original(model):
    return _muon(model, LR, "original")


def muon_original_adam_rule(model):
    return _muon(model, LR / model.width_mult, "original")


def muon_match_rms(model):
    return _muon(model, LR, "match_rms_adamw")


def muon_match_rms_sqrt(model):
    return _muon(model, LR / math.sqrt(model.width_mult), "match_rms_adamw")


def muon_on_everything(model):
    """Muon stepping the embedding and the readout too (2-D, so torch accepts them)."""
    matrices = [p for p in model.parameters() if p.dim() == 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    return [torch.optim.Muon(matrices, lr=LR, weight_decay=0.0), torch.optim.AdamW(vectors, lr=1e-3)]


def _two_groups(cls, model, hidden_scale, **kwargs):
    hidden, rest = _split(model)
    return cls([dict(params=hidden, lr=1e-3 * hidden_scale), dict(params=rest)], lr=1e-3, **kwargs)


def sign_one_lr(model):
    return _two_groups(SignMomentum, model, 1.0)


def sign_mup(model):
    return _two_groups(SignMomentum, model, 1 / model.width_mult)


def adafactor_one_lr(model):
    return _two_groups(torch.optim.Adafactor, model, 1.0, eps=(1e-7, 1e-3))


def adafactor_adam_rule(model):
    return _two_groups(torch.optim.Adafactor, model, 1 / model.width_mult, eps=(1e-7, 1e-3))


def adafactor_mup(model):
    return _two_groups(torch.optim.Adafactor, model, 1 / math.sqrt(model.width_mult), eps=(1e-7, 1e-3))


def adamw_mup(model):
    return _two_groups(torch.optim.AdamW, model, 1 / model.width_mult, weight_decay=0.0)


def adamw_one_lr(model):
    return _two_groups(torch.optim.AdamW, model, 1.0, weight_decay=0.0)


def zero_readout_adamw_mup(model):
    """µP AdamW with the readout zero-initialised: no gradient reaches the hidden weights at step 1."""
    model.lm_head.weight.detach().zero_()
    return adamw_mup(model)


def frozen_embedding_adamw(model):
    model.wte.weight.requires_grad_(False)
    return adamw_mup(model)


def _sgd_groups(model, input_scale, output_scale):
    hidden, _ = _split(model)
    vectors = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.SGD([dict(params=hidden), dict(params=[model.wte.weight] + vectors, lr=0.1 * input_scale),
                            dict(params=[model.lm_head.weight], lr=0.1 * output_scale)], lr=0.1)


def sgd_mup(model):
    """µP SGD (Table 8): input and vector lr ∝ width, hidden constant, output ∝ width (with the 1/width
    multiplier, 2a+c = -1)."""
    return _sgd_groups(model, model.width_mult, model.width_mult)


def sgd_one_lr(model):
    return _sgd_groups(model, 1.0, 1.0)
