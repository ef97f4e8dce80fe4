# From microsoft/mup, examples/MLP/main.py, MIT licence. The MLP and its optimizer, lifted out of the
# script's `if __name__ == '__main__':` block (where they are defined); `args` holds the script's
# argparse defaults with the tanh / cross-entropy multipliers its help text recommends.
import torch.nn.functional as F
import torch
from torch import nn
from types import SimpleNamespace

from mup import MuSGD, get_shapes, set_base_shapes, make_base_shapes, MuReadout

args = SimpleNamespace(lr=0.1, momentum=0.9, output_mult=32.0, input_mult=0.125, init_std=1.0)


class MLP(nn.Module):
    def __init__(self, width=128, num_classes=10, nonlin=F.relu, output_mult=1.0, input_mult=1.0):
        super(MLP, self).__init__()
        self.nonlin = nonlin
        self.input_mult = input_mult
        self.output_mult = output_mult
        self.fc_1 = nn.Linear(3072, width, bias=False)
        self.fc_2 = nn.Linear(width, width, bias=False)
        self.fc_3 = MuReadout(width, num_classes, bias=False, output_mult=args.output_mult)
        self.reset_parameters()
    
    def reset_parameters(self):
        nn.init.kaiming_normal_(self.fc_1.weight, a=1, mode='fan_in')
        self.fc_1.weight.data /= self.input_mult**0.5
        self.fc_1.weight.data *= args.init_std
        nn.init.kaiming_normal_(self.fc_2.weight, a=1, mode='fan_in')
        self.fc_2.weight.data *= args.init_std
        nn.init.zeros_(self.fc_3.weight)

    def forward(self, x):
        out = self.nonlin(self.fc_1(x) * self.input_mult**0.5)
        out = self.nonlin(self.fc_2(out))
        return self.fc_3(out)


# `python main.py --save_base_shapes width64.bsh`, then `--load_base_shapes width64.bsh`: base shapes
# from the model at width 64 and a delta model at width 65.
def make_model(width=64):
    mynet = MLP(width=width, nonlin=torch.tanh, output_mult=args.output_mult, input_mult=args.input_mult)
    base_shapes = get_shapes(MLP(width=64, nonlin=torch.tanh, output_mult=args.output_mult, input_mult=args.input_mult))
    delta_shapes = get_shapes(
        # just need to change whatever dimension(s) we are scaling
        MLP(width=64+1, nonlin=torch.tanh, output_mult=args.output_mult, input_mult=args.input_mult)
    )
    set_base_shapes(mynet, make_base_shapes(base_shapes, delta_shapes))
    return mynet


def make_optimizer(mynet):
    return MuSGD(mynet.parameters(), lr=args.lr, momentum=args.momentum)


# `python main.py` without --load_base_shapes: "then you are using standard parametrization".
def make_standard_model(width=64):
    mynet = MLP(width=width, nonlin=torch.tanh, output_mult=args.output_mult, input_mult=args.input_mult)
    set_base_shapes(mynet, None)
    return mynet
