"""Weight normalisation: the magnitude `g` is a vector-like parameter (never a hidden matrix, whose
MU101 fix would break µP), and the layer's init is judged on the composed weight g·v/‖v‖, with the
parametrization and with the older `weight_g`/`weight_v` hook alike."""

import textwrap
import warnings

import pytest

from mulint.analysis.model import analyse_model
from mulint.reading.targets import parse_target, resolve
from mulint.rules import model_rules

# every test traces a model
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

MODELS = textwrap.dedent("""
    import torch.nn as nn
    from torch.nn.utils import weight_norm as legacy_weight_norm
    from torch.nn.utils.parametrizations import weight_norm


    class Normed(nn.Module):
        '''µP: the rows of the hidden weight get norm 1 (entries ~ fan_in^-1/2) through g, whatever v's scale.'''

        def __init__(self, width: int = 64, legacy: bool = False, sp: bool = False):
            super().__init__()
            self.embed = nn.Embedding(40, width)
            nn.init.normal_(self.embed.weight, std=1.0)
            hidden = nn.Linear(width, width, bias=False)
            if sp:
                nn.init.normal_(hidden.weight, std=0.02)  # g = ‖v‖ keeps it: entries 0.02 at every width
            self.hidden = (legacy_weight_norm if legacy else weight_norm)(hidden)
            if not sp:
                g = hidden.weight_g if legacy else hidden.parametrizations.weight.original0
                nn.init.ones_(g)
                v = hidden.weight_v if legacy else hidden.parametrizations.weight.original1
                nn.init.normal_(v, std=0.02)  # v's own scale is divided away
            self.readout = nn.Linear(width, 40, bias=False)
            nn.init.zeros_(self.readout.weight)

        def forward(self, idx):
            return self.readout(self.hidden(self.embed(idx)).relu())


    def legacy(width: int = 64):
        return Normed(width, legacy=True)


    def sp(width: int = 64):
        return Normed(width, sp=True)
""")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    path = tmp_path_factory.mktemp("wn") / "normed.py"
    path.write_text(MODELS)
    return path


def analyse(spec):
    [target] = resolve(parse_target(spec), allow_exec=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the legacy hook is deprecated
        facts = analyse_model(target).facts
    return facts, {(f.code, f.parameter) for rule in model_rules() for f in rule().check(facts)}


@pytest.mark.parametrize(
    "name, g, v",
    [
        ("Normed", "hidden.parametrizations.weight.original0", "hidden.parametrizations.weight.original1"),
        ("legacy", "hidden.weight_g", "hidden.weight_v"),
    ],
)
def test_weight_norm_magnitude_is_a_vector_and_the_composed_init_is_judged(models, name, g, v):
    facts, findings = analyse(f"{models}:{name}")
    params = {p.name: p for p in facts.params}
    assert params[g].roles == ("vector",) and params[v].roles == ("hidden",)
    # v was drawn at std 0.02; the layer computes with rows of norm 1: entries (1/width)^½
    assert params[v].init_exponent == pytest.approx(-0.5, abs=0.1)
    assert not [f for f in findings if f[0].startswith("MU1")], findings


def test_an_sp_weight_normed_layer_is_still_reported(models):
    _, findings = analyse(f"{models}:sp")
    assert ("MU101", "hidden.parametrizations.weight.original1") in findings
    assert not [f for f in findings if f[1] == "hidden.parametrizations.weight.original0"]
