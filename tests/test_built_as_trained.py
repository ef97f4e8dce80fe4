"""A model whose constructor needs arguments is built the way the training script beside it builds
it (its config written out in the script), with no factory file; the init the script applies after
construction comes with it."""

import json
import textwrap

import pytest

from mulint.reading.training_init import find_construction

# LLaMA-style: a ModelArgs dataclass whose fields have no defaults, a Transformer taking it, and an
# init method the script calls; the readout is zero-initialised there (µP), hidden weights std 1/sqrt(dim).
MODEL = """
import math
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class ModelArgs:
    dim: int
    n_layers: int
    vocab_size: int
    hidden_dim: int


class FeedForward(nn.Module):
    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x):
        return self.w2(torch.relu(self.w1(x)))


class Transformer(nn.Module):
    def __init__(self, params: ModelArgs):
        super().__init__()
        self.tok_embeddings = nn.Embedding(params.vocab_size, params.dim)
        self.layers = nn.ModuleList(FeedForward(params.dim, params.hidden_dim) for _ in range(params.n_layers))
        self.norm = nn.LayerNorm(params.dim)
        self.output = nn.Linear(params.dim, params.vocab_size, bias=False)

    def init_weights(self):
        for layer in self.layers:
            for lin in (layer.w1, layer.w2):
                nn.init.normal_(lin.weight, std=lin.in_features ** -0.5)
        nn.init.normal_(self.tok_embeddings.weight)
        OUTPUT_INIT

    def forward(self, tokens):
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = h + layer(h)
        return self.output(self.norm(h))
"""

TRAIN = """
import torch
from llama import ModelArgs, Transformer

DIM = 256
args = ModelArgs(dim=DIM, n_layers=2, vocab_size=512, hidden_dim=4 * DIM)


def main():
    model = Transformer(args)
    model.init_weights()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)


if __name__ == "__main__":
    main()
"""


def repo(tmp_path, output_init):
    (tmp_path / "llama.py").write_text(textwrap.dedent(MODEL).replace("OUTPUT_INIT", output_init))
    (tmp_path / "train.py").write_text(textwrap.dedent(TRAIN))
    return tmp_path / "llama.py"


def test_the_script_construction_is_read_with_its_constants(tmp_path):
    found = find_construction(repo(tmp_path, "pass"), "Transformer")
    assert found.text == "Transformer(args)" and found.where == "train.py:10"
    assert found.args == [
        (
            "call",
            "ModelArgs",
            [],
            {
                "dim": ("value", 256),
                "n_layers": ("value", 2),
                "vocab_size": ("value", 512),
                "hidden_dim": ("value", 1024),
            },
        )
    ]


@pytest.mark.slow
def test_built_and_initialised_as_trained(tmp_path, mulint):
    path = repo(tmp_path, "nn.init.zeros_(self.output.weight)")
    code, out, err = mulint("check", str(path), "--format", "json", "--no-cache")
    report = json.loads(out)
    assert not report["errors"] and not report.get("unanalysed"), (report["errors"], report.get("unanalysed"))
    entry = next(t for t in report["targets"] if t["mode"] == "model")
    assert entry["width_knob"] == "params.dim" and entry["widths"][0] <= 256
    assert any(
        "built as the training code builds it: `Transformer(args)` (train.py:10), since on its own" in n
        for n in entry["notes"]
    )
    assert any("`model.init_weights()` (train.py:11)" in n for n in entry["notes"]), entry["notes"]
    assert {f["code"] for f in report["findings"]} <= {"MU301", "MU304"}  # no init finding: µP init


@pytest.mark.slow
def test_an_sp_readout_in_the_init_method_is_found_there(tmp_path, mulint):
    path = repo(tmp_path, "nn.init.normal_(self.output.weight, std=0.02)  # readout")
    code, out, err = mulint("check", str(path), "--format", "json", "--no-cache")
    report = json.loads(out)
    line = next(i for i, l in enumerate(path.read_text().splitlines(), 1) if "# readout" in l)
    assert [(f["code"], f["line"]) for f in report["findings"] if f["code"].startswith("MU1")] == [("MU102", line)]
