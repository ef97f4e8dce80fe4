"""An embedding held as a raw Parameter or buffer and indexed by token ids (`self.wte[idx]`,
`F.embedding(idx, self.wte)`) gets integer token ids below its row count, and the model traces."""

import textwrap

import pytest
import torch

from mulint.construct.inputs import described_candidates

pytestmark = pytest.mark.slow  # every test analyses a model in a worker

# A character-level LM in the style of hand-rolled research code: the token table is a bare Parameter,
# positions a buffer, one mixing matrix and a readout, with no nn.Embedding anywhere.
SOURCE = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class CharLM(nn.Module):
    def __init__(self, width: int = 64, n_chars: int = 53):
        super().__init__()
        self.table = nn.Parameter(torch.randn(n_chars, width))
        self.mix = nn.Linear(width, width)
        self.readout = nn.Parameter(torch.zeros(n_chars, width))

    def forward(self, chars):
        h = LOOKUP
        h = torch.tanh(self.mix(h))
        return h @ self.readout.T / h.shape[-1]
"""

LOOKUPS = {
    "subscript": "self.table[chars]",
    "functional": "F.embedding(chars, self.table)",
    "index_select": "self.table.index_select(0, chars.flatten()).view(*chars.shape, -1)",
}


@pytest.mark.parametrize("style", sorted(LOOKUPS))
def test_token_ids_below_the_raw_table(style, tmp_path, inspect_json):
    path = tmp_path / f"char_{style}.py"
    path.write_text(textwrap.dedent(SOURCE.replace("LOOKUP", LOOKUPS[style])))
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    model = namespace["CharLM"]()
    description, (args, _) = described_candidates(model, device="cpu")[0]
    assert "`self.table`" in description and "below 53" in description
    assert args[0].dtype == torch.long and 0 <= int(args[0].min()) and int(args[0].max()) < 53
    report = inspect_json(f"{path}:CharLM")
    roles = {p["name"]: p["roles"] for p in report["parameters"]}
    assert roles["table"] == ["input"] and roles["mix.weight"] == ["hidden"] and roles["readout"] == ["output"]


# Hand-written transformers in the style of interpretability tutorials: each piece a module of its own,
# the token table a bare Parameter indexed in the Embed module's forward, which the model calls.
SUBMODULE_SOURCE = """
import torch
import torch.nn as nn


class Embed(nn.Module):
    def __init__(self, vocab, width):
        super().__init__()
        self.W_E = nn.Parameter(torch.randn(vocab, width))

    def forward(self, tokens):
        return self.W_E[tokens]


class PosEmbed(nn.Module):
    def __init__(self, n_ctx, width):
        super().__init__()
        self.W_pos = nn.Parameter(torch.randn(n_ctx, width))

    def forward(self, tokens):
        return self.W_pos[: tokens.shape[1]].unsqueeze(0)


class Demo(nn.Module):
    def __init__(self, width: int = 64, vocab: int = 97):
        super().__init__()
        self.embed = Embed(vocab, width)
        self.pos_embed = PosEmbed(16, width)
        self.mix = nn.Linear(width, width)
        self.W_U = nn.Parameter(torch.zeros(width, vocab))

    def forward(self, tokens):
        residual = self.embed(tokens) + self.pos_embed(tokens)
        return torch.relu(self.mix(residual)) @ self.W_U / residual.shape[-1]
"""


def test_token_ids_below_a_table_a_submodule_indexes(tmp_path, inspect_json):
    path = tmp_path / "demo.py"
    path.write_text(SUBMODULE_SOURCE)
    namespace: dict = {}
    exec(compile(SUBMODULE_SOURCE, str(path), "exec"), namespace)
    description, (args, _) = described_candidates(namespace["Demo"](), device="cpu")[0]
    assert "`self.embed.W_E`" in description and "below 97" in description
    assert args[0].dtype == torch.long and int(args[0].max()) < 97
    report = inspect_json(f"{path}:Demo")
    roles = {p["name"]: p["roles"] for p in report["parameters"]}
    assert roles["embed.W_E"] == ["input"] and roles["mix.weight"] == ["hidden"] and roles["W_U"] == ["output"]


def test_a_property_that_raises_when_read_is_no_table(tmp_path):
    """Reading `self.boom` for the lookup runs the user's property: one that raises is not a table, and
    the table the ids reach is still found (it was an internal error)."""
    source = SUBMODULE_SOURCE.replace(
        "    def forward(self, tokens):\n        residual =",
        "    @property\n    def boom(self):\n        raise ValueError('read')\n\n"
        "    def forward(self, tokens):\n        if tokens is None:\n            self.boom(tokens)\n        residual =",
    )
    assert "self.boom(tokens)" in source
    (tmp_path / "demo.py").write_text(source)  # (the lookup is read from the file's source)
    namespace: dict = {}
    exec(compile(source, str(tmp_path / "demo.py"), "exec"), namespace)
    description, (args, _) = described_candidates(namespace["Demo"](), device="cpu")[0]
    assert "`self.embed.W_E`" in description and args[0].dtype == torch.long
