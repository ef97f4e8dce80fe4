"""The SP sibling of evidence_resmlp.ResMLP: every weight drawn with std 0.02, no readout
multiplier, one learning rate; its optimizer has a name mulint does not look for, so it is found
only when named."""

import torch
import torch.nn as nn
import torch.nn.functional as F

D_IN, D_OUT = 12, 5


class ResMLPSP(nn.Module):
    def __init__(self, width: int = 64, depth: int = 2):
        super().__init__()
        self.width = width
        self.w_in = nn.Parameter(torch.randn(width, D_IN) * 0.02)
        self.hidden = nn.ParameterList(nn.Parameter(torch.randn(width, width) * 0.02) for _ in range(depth))
        self.gain = nn.Parameter(torch.ones(width))
        self.w_out = nn.Parameter(torch.randn(D_OUT, width) * 0.02)

    def forward(self, x):
        h = F.linear(x, self.w_in)
        for weight in self.hidden:
            h = h + torch.tanh(F.linear(h, weight))
        return F.linear(F.rms_norm(h, (self.width,)) * self.gain, self.w_out)


def sp_optimizer(model):
    return torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
