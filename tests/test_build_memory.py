"""The small CPU models cap sequence-length-like fields: a causal mask of block_size² entries must not
set the memory of a check, and the findings must not depend on block_size."""

import json
import textwrap
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn

from mulint.analysis.model import analyse_model
from mulint.analysis.numbers import NUMERIC_SEQ, numeric_knob
from mulint.construct import build_at
from mulint.construct.inputs import SEQ
from mulint.construct.width import find_knob
from mulint.construct.width_limits import capped_fields, is_sequence_field, is_vocab_field
from mulint.reading.targets import parse_target, resolve

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A decoder whose blocks each hold a (block_size, block_size) causal mask buffer; every build records
# the block size and the device and shape of the mask it made.
MASKED_DECODER = """
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

BUILT = []


@dataclass
class DecoderConfig:
    n_embd: int = 64
    n_head: int = 2
    vocab_size: int = 50
    block_size: int = {block_size}


class MaskedSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.to_qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        size = config.block_size
        self.register_buffer("causal", torch.ones(size, size).tril().view(1, 1, size, size))
        BUILT.append((size, self.causal.device.type, tuple(self.causal.shape)))

    def forward(self, h):
        b, t, c = h.shape
        q, k, v = (x.view(b, t, self.n_head, -1).transpose(1, 2) for x in self.to_qkv(h).chunk(3, dim=-1))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(self.causal[:, :, :t, :t] == 0, float("-inf"))
        return self.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c))


class Decoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.tokens = nn.Embedding(config.vocab_size, config.n_embd)
        self.places = nn.Embedding(config.block_size, config.n_embd)
        self.mix = MaskedSelfAttention(config)
        self.unembed = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, idx):
        h = self.tokens(idx) + self.places(torch.arange(idx.shape[1], device=idx.device))
        return self.unembed(h + self.mix(h))
"""


def _write(tmp_path, block_size: int):
    path = tmp_path / f"decoder_{block_size}.py"
    path.write_text(textwrap.dedent(MASKED_DECODER).replace("{block_size}", str(block_size)))
    return path


def _rule_findings(structure) -> list[tuple]:
    from mulint.rules import model_rules

    found = [f for rule in model_rules() for f in rule().check(structure.facts)]
    return sorted((f.code, f.line, f.message, f.parameter) for f in found)


@pytest.mark.slow
def test_a_long_context_is_measured_with_a_short_mask_and_the_same_findings(tmp_path, mulint):
    [target] = resolve(parse_target(f"{_write(tmp_path, 32768)}:Decoder"), allow_exec=True)
    structure = analyse_model(target)
    built = target.module.BUILT
    on_cpu = [b for b in built if b[1] == "cpu"]
    assert len(on_cpu) >= 2  # one small model per numeric width
    assert all(size == NUMERIC_SEQ and shape[-1] == NUMERIC_SEQ for size, _, shape in on_cpu)
    assert any(size == 32768 for size, device, _ in built if device == "meta")  # structure: full size, free
    places = next(p for p in structure.facts.params if p.name == "places.weight")
    assert places.init_exponent is not None and abs(places.init_exponent) < 0.1
    assert "hidden" not in places.roles  # positions are not a width

    code, out, err = mulint("check", "--format", "json", f"{_write(tmp_path, 256)}:Decoder")
    assert code == 1, err
    short = sorted((f["code"], f["line"], f["message"], f["parameter"]) for f in json.loads(out)["findings"])
    assert any(code == "MU102" for code, *_ in short)  # the default readout init is a real finding
    assert _rule_findings(structure) == short


@dataclass
class _Settings:
    n_embd: int = 128
    intermediate_size: int = 512
    max_position_embeddings: int = 8192
    n_ctx: int = 4096
    vocab_size: int = 32000
    pad_token_id: int = 31999
    eos_token_id: int = 2
    n_layer: int = 24


class _Recorder(nn.Module):
    """Keeps its settings, so a test reads what the build saw."""

    def __init__(self, config: _Settings):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd, padding_idx=config.pad_token_id)


def test_limits_cap_sequence_and_vocab_fields_and_keep_token_ids_inside_the_table():
    knob = find_knob(_Recorder, "_Recorder").with_limits(seq=64, vocab=1000)
    with torch.device("meta"):
        seen = knob.build(256).config
    assert (seen.max_position_embeddings, seen.n_ctx, seen.vocab_size) == (64, 64, 1000)
    assert seen.pad_token_id == 999 and seen.eos_token_id == 2  # only ids past the table move
    assert (seen.n_embd, seen.intermediate_size, seen.n_layer) == (256, 1024, 24)  # width scales, depth kept
    described = knob.describe_scaling(256)
    assert described["n_embd"] == 256 and described["vocab_size"] == 1000 and described["n_ctx"] == 64


def test_without_limits_nothing_is_capped():
    knob = find_knob(_Recorder, "_Recorder")
    assert knob.with_limits() is knob
    with torch.device("meta"):
        assert knob.build(64).config.vocab_size == 32000


def test_a_build_the_caps_break_falls_back_to_the_declared_sizes():
    class RopeTable(nn.Module):
        def __init__(self, width: int = 64, max_seq_len: int = 2048, rotary_cache: int = 2048):
            super().__init__()
            if max_seq_len != rotary_cache:
                raise ValueError("the rope table must cover the positions")
            self.proj = nn.Linear(width, width)
            self.max_seq_len = max_seq_len

    knob = find_knob(RopeTable, "RopeTable").with_limits(seq=max(SEQ, 128))
    assert knob.describe_scaling(64)["max_seq_len"] == 128
    model = build_at(knob, 64, target="RopeTable", device="cpu")
    assert model.max_seq_len == 2048
    assert "max_seq_len" not in knob.describe_scaling(64)  # what was built is what is described


def test_argument_knobs_are_capped_too():
    class Tagger(nn.Module):
        def __init__(self, d_model: int = 32, max_len: int = 100_000, ntoken: int = 70_000):
            super().__init__()
            self.table = nn.Embedding(ntoken, d_model)
            self.positions = nn.Parameter(torch.zeros(max_len, d_model))

    knob = numeric_knob(find_knob(Tagger, "Tagger"))
    model = build_at(knob, 64, target="Tagger", device="cpu")
    assert tuple(model.positions.shape) == (NUMERIC_SEQ, 64)
    assert model.table.num_embeddings == 70_000  # the small models keep the vocab (exponents of xavier)


@pytest.mark.parametrize(
    "name,seq,vocab",
    [
        ("block_size", True, False),
        ("n_positions", True, False),
        ("max_position_embeddings", True, False),
        ("n_ctx", True, False),
        ("maxSeqLen", True, False),
        ("context_length", True, False),
        ("vocab_size", False, True),
        ("n_vocab", False, True),
        ("num_embeddings", False, True),
        ("hidden_size", False, False),
        ("n_layer", False, False),
        ("num_blocks", False, False),
    ],
)
def test_field_kinds(name, seq, vocab):
    assert (is_sequence_field(name), is_vocab_field(name)) == (seq, vocab)


def test_fields_that_grow_with_the_width_are_never_capped():
    fields = {"seq_len": 4096, "max_len": 4096, "vocab_size": 8, "n_vocab": 9000}
    assert capped_fields(fields, {"max_len"}, seq=16, vocab=1024) == {"seq_len": 16, "n_vocab": 1024}
