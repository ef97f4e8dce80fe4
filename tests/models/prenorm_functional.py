"""A pre-norm transformer kept in nn.ParameterDicts and run through functional calls (F.embedding,
F.rms_norm, F.linear, scaled_dot_product_attention), µP by hand: embedding entries of std 1, hidden
weights of std fan_in^-½, a zero-initialised readout, attention scaled by 1/head_dim, biases on the
query, key and value projections and in the MLP (the key bias gets no gradient: softmax cancels it).

Its optimizer factories use optimizers from pytorch-optimizer and heavyball, imported inside each
factory, each with a learning-rate rule that is µP for it and one that is not."""

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE = 64


def _normal(*shape, std):
    return nn.Parameter(torch.randn(*shape) * std)


def _layer(dim, mlp_ratio):
    return nn.ParameterDict({
        "attn_gain": nn.Parameter(torch.ones(dim)),
        **{f"w{x}": _normal(dim, dim, std=dim ** -0.5) for x in "qkv"},
        **{f"b{x}": nn.Parameter(torch.zeros(dim)) for x in "qkv"},
        "wo": _normal(dim, dim, std=dim ** -0.5),
        "mlp_gain": nn.Parameter(torch.ones(dim)),
        "w_up": _normal(mlp_ratio * dim, dim, std=dim ** -0.5),
        "b_up": nn.Parameter(torch.zeros(mlp_ratio * dim)),
        "w_down": _normal(dim, mlp_ratio * dim, std=(mlp_ratio * dim) ** -0.5),
        "b_down": nn.Parameter(torch.zeros(dim)),
    })


class PreNormLM(nn.Module):
    def __init__(self, dim: int = BASE, vocab: int = 48, depth: int = 2, heads: int = 2, mlp_ratio: int = 2):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.width_mult = dim / BASE
        self.embed = _normal(vocab, dim, std=1.0)
        self.layers = nn.ModuleList(_layer(dim, mlp_ratio) for _ in range(depth))
        self.final_gain = nn.Parameter(torch.ones(dim))
        self.readout = nn.Parameter(torch.zeros(vocab, dim))

    def _attend(self, layer, x):
        h = F.rms_norm(x, (self.dim,), layer["attn_gain"])
        q, k, v = (F.linear(h, layer[f"w{x}"], layer[f"b{x}"]).unflatten(-1, (self.heads, -1)).transpose(1, 2)
                   for x in "qkv")
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / q.size(-1))
        return F.linear(y.transpose(1, 2).flatten(2), layer["wo"])

    def _mlp(self, layer, x):
        h = F.linear(F.rms_norm(x, (self.dim,), layer["mlp_gain"]), layer["w_up"], layer["b_up"])
        return F.linear(F.gelu(h), layer["w_down"], layer["b_down"])

    def forward(self, tokens):
        x = F.embedding(tokens, self.embed)
        for layer in self.layers:
            x = x + self._attend(layer, x)
            x = x + self._mlp(layer, x)
        return F.linear(F.rms_norm(x, (self.dim,), self.final_gain), self.readout)


def example_inputs(model):
    return (torch.randint(0, model.embed.shape[0], (2, 8)),)


def by_role(model, hidden_lr, output_lr, rest_lr):
    """Param groups: the hidden matrices, the readout, and the embedding with the vectors."""
    hidden = [p for layer in model.layers for p in layer.values() if p.ndim == 2]
    rest = [model.embed, model.final_gain] + [p for layer in model.layers for p in layer.values() if p.ndim == 1]
    return [dict(params=hidden, lr=hidden_lr), dict(params=[model.readout], lr=output_lr),
            dict(params=rest, lr=rest_lr)]


# The µP rule of every optimizer below that normalises each entry of its update (a sign, or an
# Adam-like ratio, in some basis) is Adam's: hidden and readout lr ∝ 1/width, embedding and vectors
# constant.

def lion_one_lr(model):
    from pytorch_optimizer import Lion

    return Lion(model.parameters(), lr=3e-4, weight_decay=0.0)


def lion_mup(model):
    from pytorch_optimizer import Lion

    lr = 3e-4
    return Lion(by_role(model, lr / model.width_mult, lr / model.width_mult, lr), lr=lr, weight_decay=0.0)


def schedule_free_one_lr(model):
    from pytorch_optimizer import ScheduleFreeAdamW

    return ScheduleFreeAdamW(model.parameters(), lr=1e-3)


def schedule_free_mup(model):
    from pytorch_optimizer import ScheduleFreeAdamW

    lr = 1e-3
    return ScheduleFreeAdamW(by_role(model, lr / model.width_mult, lr / model.width_mult, lr), lr=lr)


def prodigy(model):
    """Prodigy as its authors use it: lr 1 for everything, the step size d estimated as it trains."""
    from pytorch_optimizer import Prodigy

    return Prodigy(model.parameters(), lr=1.0)


def prodigy_groups(model):
    """Per-group lrs written for µP, hidden first: pytorch-optimizer's Prodigy steps every group with
    the first group's lr times d, so the embedding and vectors move like the hidden weights."""
    from pytorch_optimizer import Prodigy

    return Prodigy(by_role(model, 1 / model.width_mult, 1 / model.width_mult, 1.0), lr=1.0)


def _heavyball():
    import heavyball

    heavyball.utils.compile_mode = None  # no torch.compile of each step: minutes on a CPU
    return heavyball


def soap_one_lr(model):
    heavyball = _heavyball()
    return heavyball.SOAP(model.parameters(), lr=1e-3, weight_decay=0.0)


def soap_mup(model):
    heavyball = _heavyball()
    lr = 1e-3
    return heavyball.SOAP(by_role(model, lr / model.width_mult, lr / model.width_mult, lr), lr=lr, weight_decay=0.0)
