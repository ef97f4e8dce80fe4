"""modded-nanogpt style: CastedLinear layers, functional rms_norm, a ReLU² MLP, and a factory that
returns a list of optimizers: AdamW for the embedding and the head, Muon for the hidden matrices."""

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_DIM = 64


class CastedLinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=False)

    def forward(self, x):
        return F.linear(x, self.weight.type_as(x))


class Block(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.c_fc = CastedLinear(dim, 4 * dim)
        self.c_proj = CastedLinear(4 * dim, dim)
        nn.init.normal_(self.c_fc.weight, std=dim ** -0.5)
        nn.init.normal_(self.c_proj.weight, std=(4 * dim) ** -0.5)

    def forward(self, x):
        return x + self.c_proj(F.relu(self.c_fc(F.rms_norm(x, (x.size(-1),)))).square())


class GPT(nn.Module):
    def __init__(self, model_dim: int = BASE_DIM, vocab_size: int = 48, num_layers: int = 2):
        super().__init__()
        self.model_dim = model_dim
        self.embed = nn.Embedding(vocab_size, model_dim)
        self.blocks = nn.ModuleList(Block(model_dim) for _ in range(num_layers))
        self.lm_head = CastedLinear(model_dim, vocab_size)
        self.lm_head.weight.detach().zero_()

    def forward(self, input_seq):
        x = F.rms_norm(self.embed(input_seq), (self.model_dim,))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(F.rms_norm(x, (self.model_dim,)))


def _split(model):
    hidden = [p for p in model.blocks.parameters() if p.ndim >= 2]
    return hidden, [model.embed.weight], [model.lm_head.weight]


def make_optimizer(model):
    hidden, embed, head = _split(model)
    adam = torch.optim.AdamW([dict(params=embed, lr=0.3), dict(params=head, lr=0.008 * BASE_DIM / model.model_dim)],
                             betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0)
    muon = torch.optim.Muon(hidden, lr=0.05, momentum=0.95)
    return [adam, muon]


def head_lr_not_scaled(model):
    hidden, embed, head = _split(model)
    adam = torch.optim.AdamW([dict(params=embed, lr=0.3), dict(params=head, lr=0.008)],
                             betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0)
    return {"adam": adam, "muon": torch.optim.Muon(hidden, lr=0.05, momentum=0.95)}
