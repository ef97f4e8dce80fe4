"""A model too big at every small width because of what does not grow with width: the vocabulary
(and depth, experts) is shrunk as the coordinate check shrinks it, and when it still does not fit,
the error says what is big instead of blaming the widths."""

import json
import textwrap

import pytest

from mulint.analysis.numbers import MAX_ELEMENTS
from mulint.construct.width_limits import count_caps

# A byte-pair LM with a five-million-token table and untied readout, configured by a plain class
# instance given as the default (not a dataclass) whose attributes mulint reads; the blocks are a Sequential of residual MLPs.
HUGE_VOCAB = """
import torch.nn as nn


class Settings:
    def __init__(self, d_model=128, vocab_size=5_000_000, n_layers=3):
        self.d_model, self.vocab_size, self.n_layers = d_model, vocab_size, n_layers


class Residual(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x):
        return x + self.fc(x).relu()


class BigVocabLM(nn.Module):
    def __init__(self, settings=Settings()):
        super().__init__()
        s = settings
        self.embed = nn.Embedding(s.vocab_size, s.d_model)
        self.body = nn.Sequential(*[Residual(s.d_model) for _ in range(s.n_layers)])
        self.head = nn.Linear(s.d_model, s.vocab_size, bias=False)
        nn.init.zeros_(self.head.weight)

    def forward(self, ids):
        return self.head(self.body(self.embed(ids))) / self.embed.embedding_dim
"""

# A width knob beside a fixed 20000 x 20000 projection: nothing mulint may shrink makes it small.
FIXED_GIANT = """
import torch.nn as nn


def make_model(width=64):
    return nn.Sequential(nn.Linear(20000, 20000), nn.Linear(20000, width), nn.ReLU(), nn.Linear(width, 10))
"""


@pytest.mark.slow
def test_a_huge_vocabulary_is_capped_and_said(tmp_path, mulint):
    vocab, smallest = 5_000_000, 8
    assert 2 * vocab * smallest > MAX_ELEMENTS  # independently: no width mulint would try fits as declared
    path = tmp_path / "big_vocab.py"
    path.write_text(textwrap.dedent(HUGE_VOCAB))
    code, out, err = mulint("check", f"{path}:BigVocabLM", "--format", "json", "--no-cache")
    report = json.loads(out)
    assert not report["errors"], report["errors"]
    notes = next(t for t in report["targets"] if t["mode"] == "model")["notes"]
    assert any("vocab_size 5000000 -> 1024" in n for n in notes), notes


@pytest.mark.slow
def test_what_is_big_is_named_not_the_widths(tmp_path, mulint):
    path = tmp_path / "giant.py"
    path.write_text(textwrap.dedent(FIXED_GIANT))
    code, out, err = mulint("check", f"{path}:make_model", "--no-cache")
    assert code == 2
    assert "400M parameters even at width" in err and "0.weight (20000, 20000)" in err, err
    assert "--widths" not in err


def test_depth_and_experts_are_capped_but_not_their_ratios():
    fields = {
        "n_layer": 48,
        "num_hidden_layers": 32,
        "num_experts": 64,
        "num_experts_per_tok": 8,
        "layer_norm_eps": 1e-5,
        "first_k_dense_layers": 3,
        "n_shared_experts": 2,
        "d_model": 512,
    }
    caps = count_caps(fields, {"d_model"}, depth=2, experts=4)
    assert caps == {"n_layer": 2, "num_hidden_layers": 2, "num_experts": 8}
