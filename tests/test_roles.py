"""Roles, fans and growing dims come from how a weight is used, not how it is stored."""

import pytest
from conftest import MODELS, roles_of

pytestmark = pytest.mark.slow  # every test traces a model in a worker

LAYOUTS = str(MODELS / "layouts.py")
HF = str(MODELS / "hf_small.py")


def params(report):
    return {p["name"]: p for p in report["parameters"]}


def test_in_out_layout_and_vector_readout(inspect_json):
    p = params(inspect_json(f"{LAYOUTS}:InOut"))
    assert p["w_in"]["roles"] == ["input"] and (p["w_in"]["fan_in"], p["w_in"]["fan_out"]) == (5, 32)
    # stored (in, out): fan_in is shape[0], the dimension x @ W contracts
    assert p["w_hid"]["roles"] == ["hidden"] and (p["w_hid"]["fan_in"], p["w_hid"]["fan_out"]) == (32, 64)
    assert p["w_out"]["roles"] == ["output"] and p["w_out"]["fan_in"] == 64
    assert p["gain"]["roles"] == ["scalar"] and p["gain"]["infinite_dims"] == []


def test_einsum_operands_in_either_position(inspect_json):
    p = params(inspect_json(f"{LAYOUTS}:Einsum"))
    assert p["w_in"]["roles"] == ["input"] and p["w_in"]["fan_in"] == 6
    assert p["w_hid"]["roles"] == ["hidden"]
    assert p["w_out"]["roles"] == ["output"] and (p["w_out"]["fan_in"], p["w_out"]["fan_out"]) == (32, 3)


def test_conv_net(inspect_json):
    p = params(inspect_json(f"{LAYOUTS}:Conv"))
    assert p["stem.weight"]["roles"] == ["input"] and p["stem.weight"]["fan_in"] == 3 * 9
    assert p["body.weight"]["roles"] == ["hidden"] and p["body.weight"]["fan_in"] == 8 * 9
    # groups == channels: each output channel sees a finite 1x3x3 patch
    assert p["depthwise.weight"]["roles"] == ["input"]
    assert p["stem.bias"]["roles"] == ["vector"]
    assert p["head.weight"]["roles"] == ["output"] and p["head.bias"]["roles"] == ["scalar"]


@pytest.mark.parametrize("name", ["FixedHeads", "FixedHeadDim"])
def test_attention_both_ways_of_growing(inspect_json, name):
    report = inspect_json(f"{LAYOUTS}:{name}")
    p = params(report)
    assert p["emb.weight"]["roles"] == ["input", "output"]
    assert p["emb.weight"]["aliases"] == ["head.weight"]
    assert p["pos"]["roles"] == ["vector"] and p["pos"]["infinite_dims"] == [1]
    assert p["qkv.weight"]["roles"] == ["hidden"] and p["qkv.weight"]["infinite_dims"] == [0, 1]
    assert p["proj.weight"]["roles"] == ["hidden"]
    assert report["width_knob"] == "d_model"


def test_gpt2_conv1d_in_out_and_tied_head(inspect_json):
    p = params(inspect_json(f"{HF}:gpt2"))
    wte = p["transformer.wte.weight"]
    assert wte["roles"] == ["input", "output"] and wte["aliases"] == ["lm_head.weight"]
    assert p["transformer.wpe.weight"]["roles"] == ["input"]
    c_attn = p["transformer.h.0.attn.c_attn.weight"]  # HF Conv1D stores (in, out)
    assert c_attn["shape"] == [64, 192] and (c_attn["fan_in"], c_attn["fan_out"]) == (64, 192)
    assert c_attn["roles"] == ["hidden"]
    mlp_out = p["transformer.h.0.mlp.c_proj.weight"]
    assert (mlp_out["fan_in"], mlp_out["fan_out"]) == (256, 64)
    assert p["transformer.h.0.ln_1.weight"]["roles"] == ["vector"]
    assert p["transformer.h.0.attn.c_attn.bias"]["roles"] == ["vector"]


def test_llama_untied(inspect_json):
    report = inspect_json(f"{HF}:llama")
    p = params(report)
    assert p["model.embed_tokens.weight"]["roles"] == ["input"]
    assert p["lm_head.weight"]["roles"] == ["output"] and p["lm_head.weight"]["fan_out"] == 128
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
        assert p[f"model.layers.1.self_attn.{proj}.weight"]["roles"] == ["hidden"]
    down = p["model.layers.0.mlp.down_proj.weight"]
    assert (down["fan_in"], down["fan_out"]) == (192, 64)  # intermediate size scaled with the width
    assert p["model.norm.weight"]["roles"] == ["vector"]


def test_bert_tied_decoder_and_type_embeddings(inspect_json):
    r = roles_of(inspect_json(f"{HF}:bert"))
    assert r["bert.embeddings.word_embeddings.weight"] == ["input", "output"]
    assert r["bert.embeddings.token_type_embeddings.weight"] == ["input"]
    assert r["bert.encoder.layer.0.attention.self.query.weight"] == ["hidden"]
    assert r["cls.predictions.transform.dense.weight"] == ["hidden"]
    assert r["cls.predictions.bias"] == ["scalar"]


def test_factory_without_width_argument_scales_the_models_config(inspect_json):
    report = inspect_json(f"{HF}:gpt2_fixed")
    assert report["width_knob"].endswith("config.n_embd") and report["widths"] == [64, 128]
    assert roles_of(report)["transformer.h.1.mlp.c_fc.weight"] == ["hidden"]


def test_every_parameter_gets_a_role_and_a_source_line(inspect_json):
    report = inspect_json(f"{LAYOUTS}:Conv")
    for p in report["parameters"]:
        assert p["roles"], p["name"]
        assert p["created_at"]["path"].endswith("layouts.py") and p["created_at"]["line"] > 0
    lines = {p["name"]: p["created_at"]["line"] for p in report["parameters"]}
    source = (MODELS / "layouts.py").read_text().splitlines()
    assert "self.stem = nn.Conv2d" in source[lines["stem.weight"] - 1]
    assert "self.head = nn.Linear" in source[lines["head.weight"] - 1]


def test_explicit_widths(inspect_json):
    report = inspect_json(f"{LAYOUTS}:InOut", "--widths", "16,48")
    assert report["widths"] == [16, 48]
    assert params(report)["w_hid"]["shapes"] == {"16": [16, 32], "48": [48, 96]}


def test_forward_creating_tensors_without_a_device_traces(inspect_json):
    p = params(inspect_json(f"{LAYOUTS}:DevicelessForward"))
    assert p["emb.weight"]["roles"] == ["input"] and p["proj.weight"]["roles"] == ["output"]
    assert p["pos"]["roles"] == ["input"]  # indexed by positions: a lookup


def test_vit_patch_embedding_and_cls_token(inspect_json):
    p = params(inspect_json(f"{HF}:vit"))
    patch = p["vit.embeddings.patch_embeddings.projection.weight"]
    assert patch["roles"] == ["input"] and patch["fan_in"] == 3 * 4 * 4
    assert p["vit.embeddings.cls_token"]["roles"] == ["vector"]
    assert p["classifier.weight"]["roles"] == ["output"]
