# A u-µP model written by hand from graphcore-research/unit-scaling (Apache-2.0 licence), its user guide
# (docs/user_guide.rst, "u-µP") and unit_scaling/_modules.py's TransformerDecoder: unit-scaled modules
# (uu.Embedding, uu.RMSNorm, uu.Linear with its 1/sqrt(fan_in) scale in the op, uu.LinearReadout with
# 1/fan_in) and unit_scaling.functional's residual_split/residual_add; hidden matrices trained by
# torch.optim.Muon beside u-µP's own AdamW for the rest.
import torch
import unit_scaling as uu
import unit_scaling.functional as U


class MLPLM(torch.nn.Module):
    def __init__(self, hidden_size=256, vocab_size=128, layers=2, residual_mult=0.5):
        super().__init__()
        self.embedding = uu.Embedding(vocab_size, hidden_size)
        self.norms = torch.nn.ModuleList(uu.RMSNorm(hidden_size) for _ in range(layers))
        self.up = torch.nn.ModuleList(uu.Linear(hidden_size, 4 * hidden_size) for _ in range(layers))
        self.down = torch.nn.ModuleList(uu.Linear(4 * hidden_size, hidden_size) for _ in range(layers))
        self.tau = [residual_mult] * layers
        self.final_norm = uu.RMSNorm(hidden_size)
        self.projection = uu.LinearReadout(hidden_size, vocab_size)

    def forward(self, input_ids):
        x = self.embedding(input_ids)
        for norm, up, down, tau in zip(self.norms, self.up, self.down, self.tau):
            residual, skip = U.residual_split(x, tau)
            residual = down(U.gelu(up(norm(residual))))
            x = U.residual_add(residual, skip, tau)
        return self.projection(self.final_norm(x))


def make_model(hidden_size=256):
    return MLPLM(hidden_size)


def _split(model):
    hidden = [*model.up.parameters(), *model.down.parameters()]
    hidden = [p for p in hidden if p.ndim == 2]
    rest = [p for p in model.parameters() if all(p is not h for h in hidden)]
    return hidden, rest


def make_optimizer(model):
    """Muon as torch ships it (adjust_lr_fn="original", weight_decay=0.1) at one lr: u-µP's weights are
    unit-scaled with the 1/sqrt(fan_in) in the op, so Muon's width-stable update of W is an update of the
    effective weight ∝ width^-½: too small."""
    hidden, rest = _split(model)
    return [torch.optim.Muon(hidden, lr=0.02, adjust_lr_fn="original"), uu.optim.AdamW(rest, lr=2**-4)]


def match_rms_muon(model):
    """Muon's match_rms_adamw scale, 0.2·sqrt(max(A, B)) ∝ width^½, makes up for the op's 1/sqrt(fan_in)."""
    hidden, rest = _split(model)
    return [torch.optim.Muon(hidden, lr=0.02, adjust_lr_fn="match_rms_adamw"), uu.optim.AdamW(rest, lr=2**-4)]
