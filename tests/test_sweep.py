"""The architecture sweep (benchmarks/sweep.py) over small configs of popular HF models: no crash,
roles that match each layer's kind, and the SP findings every one of them should get."""

import importlib.util
import sys

import pytest
import torch
from conftest import MODELS, ROOT, roles_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _load_sweep():
    spec = importlib.util.spec_from_file_location("mulint_sweep", ROOT / "benchmarks" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


sweep = _load_sweep()
ZOO = str(MODELS / "hf_zoo.py")


@pytest.fixture(scope="module")
def results(tmp_path_factory, one_torch_thread):
    return {r.name: r for r in sweep.sweep(jobs=2)}  # two cores: half the fixture's minute


@pytest.mark.slow
def test_the_sweep_covers_every_kind_of_architecture(results):
    assert len(results) >= 15
    kinds = {r.family for r in results.values()}
    assert {"decoder", "encoder", "encoder-decoder", "vision"} <= kinds


@pytest.mark.slow
def test_no_architecture_crashes_or_fails(results):
    assert [(r.name, r.crash or r.error) for r in results.values() if r.crash or r.error] == []


@pytest.mark.slow
def test_roles_match_each_layers_kind(results):
    """Embeddings input, readouts output, norms vector, matrices growing both ways hidden, all used."""
    assert {r.name: r.role_problems for r in results.values() if r.role_problems} == {}
    for r in results.values():
        assert r.roles.get("input", 0) >= 1 and r.roles.get("output", 0) >= 1 and r.roles.get("hidden", 0) >= 4, r


@pytest.mark.slow
def test_every_architecture_gets_its_sp_findings(results):
    got = {r.name: set(r.codes) for r in results.values()}
    expected = {r.name: r.expected_codes for r in results.values()}
    assert got == expected
    # The differences are the exception, each with its reason.
    assert sum(1 for r in results.values() if r.expected_codes == sweep.SP_CODES) >= 15


@pytest.mark.slow
def test_the_docs_quote_this_sweep(results):
    """docs/architectures.md quotes `python benchmarks/sweep.py --markdown`; compared here, on the sweep
    this module runs anyway (tests/readme_outputs.py masks the timings)."""
    from tests.readme_outputs import SWEEP, all_blocks, comparable

    (block,) = [b for b in all_blocks() if b.commands == [SWEEP]]
    assert comparable(block.text) == comparable(sweep.markdown(list(results.values()))), (
        "regenerate it with `python -m tests.readme_outputs --write --only docs/architectures.md`"
    )


def test_role_check_is_not_vacuous():
    from mulint.facts import ModelFacts, ParamFacts, ParamUse

    def param(name, module_type, shape, inf, role):
        use = ParamUse(
            op="x",
            kind="contraction",
            role=role,
            fan_in=1,
            fan_out=1,
            fan_in_infinite=False,
            fan_out_infinite=False,
            node="n",
        )
        return ParamFacts(name=name, shape=shape, shapes={}, infinite_dims=inf, uses=[use], module_type=module_type)

    facts = ModelFacts(
        target="t",
        path="",
        width_knob="w",
        base_width=8,
        widths=[8, 16],
        params=[
            param("ln.weight", "LayerNorm", (8,), (0,), "hidden"),
            param("fc.weight", "Linear", (8, 8), (0, 1), "output"),
            param("ok.weight", "Linear", (8, 8), (0, 1), "hidden"),
        ],
    )
    problems = sweep._role_problems(facts, torch.nn.Module())
    assert [p.split(" ")[0].rstrip(":") for p in problems] == ["ln.weight", "fc.weight"]


@pytest.mark.slow
def test_markdown_table_has_a_row_per_architecture(results):
    table = sweep.markdown(list(results.values()))
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == len(results) + 1
    assert "| t5 | encoder-decoder |" in table and "MU104" in table


UNTRACEABLE = """
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.inp = nn.Linear(8, width)
        self.out = nn.Linear(width, 4)

    def forward(self, x):
        h = self.inp(x)
        if h.sum() > 0:  # data-dependent control flow: torch.export cannot trace it
            h = h.relu()
        return self.out(h)
"""


@pytest.mark.slow
def test_an_untraceable_model_is_recorded_while_it_runs(mulint, tmp_path):
    path = tmp_path / "untraceable.py"
    path.write_text(UNTRACEABLE)
    result = sweep.run_arch("Net", "mlp", path=path)
    assert not result.crash and not result.error and result.codes == {"MU102": 1}  # the default-init readout
    code, out, err = mulint("check", f"{path}:Net", "--no-cache")
    assert code == 1 and "MU102" in out and "[trace]" not in err


@pytest.mark.slow
def test_a_model_that_cannot_run_is_a_clean_exit_2_error(mulint, tmp_path):
    path = tmp_path / "unrunnable.py"
    path.write_text(UNTRACEABLE.replace("h = h.relu()", "raise ValueError('no')").replace("h.sum() > 0", "True"))
    code, out, err = mulint("check", f"{path}:Net", "--no-cache")
    assert code == 2 and "[trace]" in err and "unrunnable.py:Net" in err and "hint:" in err


# What the sweep needed fixed, checked on the architectures that showed it.


@pytest.mark.slow
def test_mixture_of_experts_weights_are_hidden_with_fans_from_the_grouped_matmul(inspect_json):
    p = {q["name"]: q for q in inspect_json(f"{ZOO}:mixtral")["parameters"]}
    experts = p["model.layers.0.mlp.experts.gate_up_proj"]  # (experts, 2·intermediate, hidden)
    assert experts["roles"] == ["hidden"] and (experts["fan_in"], experts["fan_out"]) == (64, 384)
    down = p["model.layers.0.mlp.experts.down_proj"]
    assert down["roles"] == ["hidden"] and (down["fan_in"], down["fan_out"]) == (192, 64)
    assert p["model.layers.0.mlp.gate.weight"]["roles"] == ["output"]  # the router reads the stream out


@pytest.mark.slow
def test_per_stage_widths_are_a_width_knob(inspect_json):
    report = inspect_json(f"{ZOO}:convnext")
    assert report["width_knob"].endswith("config.hidden_sizes")
    p = {q["name"]: q for q in report["parameters"]}
    assert p["convnext.encoder.stages.1.layers.0.pwconv1.weight"]["shapes"] == {"32": [256, 64], "64": [512, 128]}
    assert p["convnext.encoder.stages.0.layers.0.dwconv.weight"]["roles"] == ["input"]  # depthwise: finite fan-in


@pytest.mark.slow
def test_encoder_decoder_and_audio_inputs_are_synthesised(inspect_json):
    r = roles_of(inspect_json(f"{ZOO}:whisper"))
    assert r["model.encoder.conv1.weight"] == ["input"] and r["model.encoder.conv2.weight"] == ["hidden"]
    assert r["model.decoder.embed_tokens.weight"] == ["input", "output"]
    assert r["model.decoder.layers.0.encoder_attn.k_proj.weight"] == ["hidden"]


@pytest.mark.slow
def test_clip_projection_is_a_readout(inspect_json):
    p = {q["name"]: q for q in inspect_json(f"{ZOO}:clip_text")["parameters"]}
    projection = p["text_projection.weight"]
    assert projection["roles"] == ["output"] and projection["infinite_dims"] == [1]


@pytest.mark.slow
@pytest.mark.parametrize("arch, scale", [("bloom", 0.25), ("gemma2", 0.25), ("t5", 1.0)])
def test_attention_scale_through_baddbmm_alpha_and_softcapping(inspect_json, arch, scale):
    sites = inspect_json(f"{ZOO}:{arch}")["attention"]
    assert sites and all(s["scale"] == pytest.approx(scale) for s in sites)
    assert all(s["head_dim_exponent"] == pytest.approx(1.0) for s in sites)


@pytest.mark.slow
def test_attention_scaled_by_a_tensor_made_in_forward_is_read(inspect_json):
    # DeBERTa divides by torch.sqrt(torch.tensor(head_dim) * k), a scalar made in forward (k = 1 + the
    # number of relative-position terms); on the meta device its value would not exist.
    sites = inspect_json(f"{ZOO}:deberta_v2")["attention"]
    assert sites and all(s["form"] == "explicit" for s in sites)
    assert all(any(s["scale"] == pytest.approx((k * s["head_dim"]) ** -0.5) for k in (1, 2, 3)) for s in sites)
    assert all(s["scale_exponent"] == pytest.approx(-0.5, abs=0.05) for s in sites)


@pytest.mark.slow
def test_embedding_multiplier_held_in_a_buffer_is_read(inspect_json):
    # Gemma multiplies the embedding's output by a 0-dim buffer holding sqrt(hidden_size).
    embed = next(p for p in inspect_json(f"{ZOO}:gemma")["parameters"] if p["name"].endswith("embed_tokens.weight"))
    [lookup] = [u for u in embed["uses"] if u["role"] == "input"]
    assert lookup["multiplier"] == pytest.approx(64**0.5, rel=0.01) and lookup["multiplier_exponent"] == pytest.approx(
        0.5
    )


@pytest.mark.slow
def test_unscaled_attention_says_so(mulint):
    import json

    code, out, err = mulint("check", f"{ZOO}:t5", "--select", "MU201", "--format", "json")
    [finding] = json.loads(out)["findings"]
    assert "scale=1 " in finding["message"] and "not scaled by head_dim at all" in finding["message"]
