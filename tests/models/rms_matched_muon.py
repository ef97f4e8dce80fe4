"""A residual MLP language model in µP, its matrices held as raw (in, out) parameters used through einsum, with
a Muon whose update is normalised as a whole: the orthogonalised momentum (a quintic Newton-Schulz
step, compiled with torch.compile at import, as speedrun code does) is rescaled to a fixed RMS measured
from the update itself. Orthogonal updates of full rank n have RMS n^-½, so this update's spectral norm
grows like sqrt(width) and the hidden lr must shrink like width^-½: µP as written here. On a gradient
whose rank is capped by a handful of tokens the same rescaling grows like width instead.

Knobs for the tests: `readout` ("zero": zero-initialised with a 1/width output multiplier; "scaled":
init std 1/width with the multiplier; "sp": std width^-½, no multiplier), `hidden_lr_rule` ("mup":
lr ∝ width^-½; "constant").
"""

import torch
from torch import nn

COMPILED = []  # graphs torch.compile built for the Newton-Schulz step: none when run eagerly


def _recording_backend(graph, example_inputs):
    COMPILED.append(graph)
    return graph.forward


def _newton_schulz(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g / (g.norm() + 1e-7)
    wide = x.shape[0] <= x.shape[1]
    x = x if wide else x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x if wide else x.T


newton_schulz = torch.compile(_newton_schulz, backend=_recording_backend, dynamic=False)


class RmsMatchedMuon(torch.optim.Optimizer):
    """Momentum, orthogonalised, then scaled so that the update's own RMS is `rms`."""

    def __init__(self, params, lr=0.02, momentum=0.95, rms=0.2):
        super().__init__(params, dict(lr=lr, momentum=momentum, rms=rms))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad)
                update = newton_schulz(buf)
                update = update * (group["rms"] / (update.pow(2).mean().sqrt() + 1e-12))
                p.add_(update, alpha=-group["lr"])


class ResidualMLPLM(nn.Module):
    def __init__(self, width=64, vocab=512, depth=2, base_width=64, readout="zero"):
        super().__init__()
        self.width, self.base_width = width, base_width
        self.tokens = nn.Embedding(vocab, width)
        self.ups = nn.ParameterList([nn.Parameter(torch.randn(width, 2 * width) * width ** -0.5)
                                     for _ in range(depth)])
        self.downs = nn.ParameterList([nn.Parameter(torch.randn(2 * width, width) * (2 * width) ** -0.5)
                                       for _ in range(depth)])
        self.gain = nn.Parameter(torch.ones(width))
        std = {"zero": 0.0, "scaled": 1.0 / width, "sp": width ** -0.5}[readout]
        self.unembed = nn.Parameter(torch.randn(width, vocab) * std)
        self.out_mult = 1.0 if readout == "sp" else base_width / width

    def forward(self, ids):
        x = self.tokens(ids)
        for up, down in zip(self.ups, self.downs):
            h = torch.nn.functional.rms_norm(x, (self.width,))
            x = x + torch.einsum("btf,fd->btd", torch.relu(torch.einsum("btd,df->btf", h, up)), down)
        x = torch.nn.functional.rms_norm(x, (self.width,)) * self.gain
        return torch.einsum("btd,dv->btv", x, self.unembed) * self.out_mult


def make_model(width=64, readout="zero"):
    return ResidualMLPLM(width=width, readout=readout)


def make_optimizer(model, hidden_lr_rule="mup"):
    scale = (model.base_width / model.width) ** 0.5 if hidden_lr_rule == "mup" else 1.0
    return [RmsMatchedMuon([*model.ups, *model.downs], lr=0.02 * scale),
            torch.optim.AdamW([model.tokens.weight, model.unembed, model.gain], lr=3e-3, weight_decay=0.0)]


def make_scaled_readout(width=64):
    return make_model(width, readout="scaled")


def make_sp_readout(width=64):
    return make_model(width, readout="sp")


def make_optimizer_constant_lr(model):
    return make_optimizer(model, hidden_lr_rule="constant")
