"""Deep models are traced with their repeated blocks shortened to two: the facts and the findings
must be exactly those of the full trace."""

import json
import textwrap

import pytest
import torch.nn as nn

from mulint.construct import repeats
from mulint.construct.repeats import ShortenedLists, shortened

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DEEP_SP = textwrap.dedent("""
    import math
    from dataclasses import dataclass

    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    @dataclass
    class Config:
        n_embd: int = 64
        n_head: int = 4
        n_layer: int = 6
        vocab_size: int = 96


    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.n_head = config.n_head
            self.ln = nn.LayerNorm(config.n_embd)
            self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
            self.proj = nn.Linear(config.n_embd, config.n_embd)
            self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
            self.out = nn.Linear(4 * config.n_embd, config.n_embd)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.qkv(self.ln(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
            return x + self.out(F.gelu(self.fc(x)))


    class GPT(nn.Module):
        def __init__(self, config: Config = Config()):
            super().__init__()
            self.config = config
            self.wte = nn.Embedding(config.vocab_size, config.n_embd)
            self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
            self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

        def forward(self, idx):
            x = self.wte(idx)
            FORWARD_LOOP
            return self.head(x)
""")


def _write(tmp_path, loop: str) -> str:
    path = tmp_path / "deep.py"
    path.write_text(DEEP_SP.replace("FORWARD_LOOP", loop))
    return f"{path}:GPT"


def _full_depth(monkeypatch):
    monkeypatch.setattr(repeats, "MIN_BLOCKS", 10**9)


def _without_nodes(params):
    """Graph node names are the trace's own (``layer_norm_5``); everything else must agree."""
    return [{**p, "uses": [{k: v for k, v in u.items() if k != "node"} for u in p["uses"]]} for p in params]


def _check(target):
    """What a worker runs for `mulint check TARGET`, here in the test's process, where the monkeypatched
    MIN_BLOCKS applies (workers are forked from a server that imported mulint before the patch)."""
    from mulint.engine import jobs
    from mulint.engine.isolation import Job
    from mulint.report.json_report import finding_dict

    findings = jobs.check(Job("check", target), lambda message: None)["findings"]
    return [{k: finding_dict(f)[k] for k in ("code", "line", "message", "parameter")} for f in findings]


def _inspect(target):
    from mulint.engine import jobs
    from mulint.engine.isolation import Job
    from mulint.report.inspect_view import as_json

    return json.loads(as_json(jobs.inspect(Job("inspect", target), lambda message: None)["facts"]))


@pytest.mark.slow
def test_shortened_trace_gives_the_full_trace_facts(tmp_path, monkeypatch):
    target = _write(tmp_path, "for block in self.blocks:\n                x = block(x)")
    short_report, short_findings = _inspect(target), _check(target)
    _full_depth(monkeypatch)
    full_report, full_findings = _inspect(target), _check(target)
    assert _without_nodes(short_report["parameters"]) == _without_nodes(full_report["parameters"])
    assert short_report["repeated_blocks"] == {"blocks": 6} and full_report["repeated_blocks"] == {}
    assert short_findings == full_findings
    assert any(f["code"] == "MU201" and "(6 attention layers)" in f["message"] for f in full_findings)


@pytest.mark.slow
def test_forward_that_needs_every_block_is_traced_in_full(tmp_path, inspect_json):
    # range(n_layer) indexing of a shortened list fails; mulint must fall back to the full trace.
    target = _write(tmp_path, "for i in range(self.config.n_layer):\n                x = self.blocks[i](x)")
    report = inspect_json(target)
    roles = {p["name"]: p["roles"] for p in report["parameters"]}
    assert roles["blocks.5.fc.weight"] == ["hidden"] and roles["head.weight"] == ["output"]


def _blocks(widths):
    return nn.ModuleList([nn.Linear(w, w) for w in widths])


@pytest.mark.parametrize(
    ("loop", "blocks_at_8"),
    [
        ("for block in self.blocks:\n                x = block(x)", 2),
        ("for i in range(self.config.n_layer):\n                x = self.blocks[i](x)", 8),  # needs every block
    ],
)
def test_the_depth_traces_of_a_model_too_shallow_to_shorten_are_shortened(tmp_path, loop, blocks_at_8):
    """Two blocks are traced as they are; its traces at 4 and 8 blocks are shortened all the same (only the
    first blocks' adds are read), unless its forward needs every block."""
    from mulint.analysis.depth import trace_at
    from mulint.analysis.structure import analyse_structure
    from mulint.construct.depth import find_depth_knob
    from mulint.reading.targets import parse_target, resolve

    (tmp_path / "deep.py").write_text(
        DEEP_SP.replace("n_layer: int = 6", "n_layer: int = 2").replace("FORWARD_LOOP", loop)
    )
    [target] = resolve(parse_target(f"{tmp_path / 'deep.py'}:GPT"), allow_exec=True)
    structure = analyse_structure(target)
    assert structure.shortened.lengths == {}
    knob = find_depth_knob(structure.knob, target=target.label)
    traced = trace_at(target, structure, knob.at(8), next(iter(structure.traces)))
    blocks = {name.split(".")[1] for name in traced.param_nodes if name.startswith("blocks.")}
    assert len(blocks) == blocks_at_8


def test_only_lists_of_identical_blocks_are_shortened():
    model = nn.Module()
    model.same = _blocks([8] * 5)
    model.mixed = _blocks([8, 8, 8, 16, 8])
    model.short = _blocks([8] * 3)
    model.first_differs = _blocks([16, 8, 8, 8, 8])  # T5: only block 0 holds the position bias
    with shortened(model) as lists:
        assert (len(model.same), len(model.mixed), len(model.short), len(model.first_differs)) == (2, 5, 3, 2)
        assert lists.lengths == {"same": 5, "first_differs": 5}
    assert len(model.same) == 5 and model.same[4] is not None  # restored afterwards


@pytest.mark.parametrize(
    "name, expected",
    [
        ("layers.0.attn.weight", "layers.0.attn.weight"),
        ("layers.1.attn.weight", "layers.1.attn.weight"),
        ("layers.37.attn.weight", "layers.1.attn.weight"),
        ("layers.7", "layers.1"),
        ("head.weight", "head.weight"),
    ],
)
def test_representative_block(name, expected):
    assert ShortenedLists({"layers": 80}).representative(name) == expected


def test_counts_and_module_paths_map_back_to_the_full_model():
    lists = ShortenedLists({"model.layers": 80})
    assert lists.count("model.layers.1.self_attn") == 79
    assert lists.count("model.layers.0.self_attn") == 1
    assert lists.count("lm_head") == 1
    assert lists.localize("model.layers.1.mlp", "model.layers.42.mlp.up_proj.weight") == "model.layers.42.mlp"
    assert lists.localize("lm_head", "model.layers.42.mlp.up_proj.weight") == "lm_head"


DEEP_HF = textwrap.dedent("""
    import sys
    sys.path.insert(0, {models!r})
    import hf_zoo

    LAYER_FIELDS = ("num_hidden_layers", "num_layers", "num_decoder_layers", "encoder_layers", "decoder_layers")


    def deep():
        model = hf_zoo.{arch}()
        config = model.config
        for field in LAYER_FIELDS:
            if isinstance(getattr(config, field, None), int):
                setattr(config, field, 5)
        return type(model)(config)
""")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["t5", "llama"])
def test_hf_models_at_depth_five_agree_with_their_full_trace(arch, tmp_path, monkeypatch):
    from conftest import MODELS

    path = tmp_path / f"deep_{arch}.py"
    path.write_text(DEEP_HF.format(models=str(MODELS), arch=arch))
    short = _inspect(f"{path}:deep")
    assert any(".4." in p["name"] for p in short["parameters"])  # the model really has five blocks
    assert short["repeated_blocks"] and set(short["repeated_blocks"].values()) == {5}
    _full_depth(monkeypatch)
    assert _without_nodes(short["parameters"]) == _without_nodes(_inspect(f"{path}:deep")["parameters"])
