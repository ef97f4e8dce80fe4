"""Real µP and SP code from public repositories, checked through the command line: the mup package's own
examples (a Transformer with its custom attention, an MLP trained with MuSGD), a µP fork of nanoGPT, a µP
diffusion transformer, timm's ViT, HF's Granite with µP multipliers in its config and HF's AFMoE (an MoE
with `mup_enabled`); each file in tests/models/real/ names the repository and path it comes from. Each
verdict is asserted per rule and parameter, in both directions: µP code checks clean, SP code and bugs
planted into copies of the µP files are caught at the line to edit."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from conftest import MODELS

REAL = MODELS / "real"

TRANSFORMER = REAL / "mup_transformer.py"
MLP = REAL / "mup_mlp_sgd.py"
NANOGPT = REAL / "nanogpt_mup_catstate.py"
DIT = REAL / "dit_mup.py"
VIT = REAL / "timm_vit_sp.py"
GRANITE = REAL / "granite_mup.py"
AFMOE = REAL / "afmoe_mup.py"

# Every target whose optimizer mulint finds by itself (make_optimizer, create_optimizer): one run.
DEFAULT_TARGETS = [
    f"{TRANSFORMER}:make_model",
    f"{TRANSFORMER}:make_model_with_bias",
    f"{TRANSFORMER}:make_tied_model",
    f"{MLP}:make_model",
    f"{MLP}:make_standard_model",
    f"{NANOGPT}:make_model",
    f"{DIT}:make_model",
    f"{VIT}:vit_small",
    f"{GRANITE}:make_model",
    f"{AFMOE}:make_model",
]


def run_check(*args: str) -> tuple[int, dict]:
    """`mulint check ... --format json` in-process: (exit code, report)."""
    from mulint.cli import main

    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out):
        try:
            main(["check", *args, "--format", "json"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, json.loads(out.getvalue())


def verdict(report: dict, target: str) -> dict[str, set[str]]:
    """code -> the parameters (or "" for a finding without one) that the target's findings name."""
    found: dict[str, set[str]] = {}
    for f in report["findings"]:
        if f.get("target") == target:
            found.setdefault(f["code"], set()).update((f["parameter"] or "").split(", "))
    return found


def line_of(report: dict, target: str, code: str) -> str:
    lines = {
        open(f["path"]).read().splitlines()[f["line"] - 1].strip()
        for f in report["findings"]
        if f.get("target") == target and f["code"] == code
    }
    assert len(lines) == 1, lines
    return lines.pop()


def static_codes(report: dict, path) -> set[str]:
    return {f["code"] for f in report["findings"] if f["path"].endswith(path.name) and not f.get("target")}


@pytest.fixture(scope="module")
def default_run():
    code, report = run_check(*DEFAULT_TARGETS)
    assert not report["errors"], report["errors"]
    analysed = {t["target"] for t in report["targets"] if t["mode"] == "model"}
    assert analysed == set(DEFAULT_TARGETS)
    assert all(t["optimizer"] for t in report["targets"] if t["mode"] == "model")
    return report


HIDDEN_ENCODER = {
    f"transformer_encoder.layers.*.{n}"
    for n in ("self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight", "linear2.weight")
}


@pytest.mark.slow
def test_the_mup_transformer_example_is_clean(default_run):
    """mup's Transformer: its own MultiheadAttention (q·1/d inside a helper, `torch.equal` branches) run by
    nn.TransformerEncoder, MuReadout, base shapes from a delta model, MuAdam; with bias, the bias_k/bias_v
    token appended to the keys and values are vectors."""
    assert verdict(default_run, f"{TRANSFORMER}:make_model") == {}
    assert verdict(default_run, f"{TRANSFORMER}:make_model_with_bias") == {}


@pytest.mark.slow
def test_the_mup_transformer_example_tied(default_run):
    """`main.py --tied`: set_base_shapes rescales a MuSharedReadout's weight as a readout (× sqrt(width_mult),
    mup issue #55), so the shared embedding's init grows with width: reported at the set_base_shapes line."""
    target = f"{TRANSFORMER}:make_tied_model"
    assert verdict(default_run, target) == {"MU102": {"encoder.weight"}, "MU103": {"encoder.weight"}}
    assert line_of(default_run, target, "MU103").startswith("set_base_shapes(model, build(256, tied=True)")


@pytest.mark.slow
def test_the_mup_transformer_in_standard_parametrization(mulint):
    target = f"{TRANSFORMER}:make_standard_model"
    code, report = run_check(target, "--optimizer", f"{TRANSFORMER}:make_standard_optimizer")
    assert code == 1
    assert verdict(report, target) == {"MU201": {""}, "MU301": {"decoder.weight", *HIDDEN_ENCODER}}
    # the scale is applied in the helper forward calls: the finding is at that line, not at the call
    assert line_of(report, target, "MU201") == "q = q * scaling"


@pytest.mark.slow
def test_the_mup_mlp_with_musgd(default_run):
    """MuSGD: the input layer's lr grows with width, the readout's shrinks; without base shapes
    (`set_base_shapes(model, None)`, the script's SP mode) both stay constant: too small, too large."""
    assert verdict(default_run, f"{MLP}:make_model") == {}
    assert verdict(default_run, f"{MLP}:make_standard_model") == {"MU302": {"fc_1.weight", "fc_3.weight"}}


NANOGPT_HIDDEN = {f"transformer.h.*.{n}.weight" for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}


@pytest.mark.slow
def test_the_nanogpt_mup_fork_as_its_training_script_runs_it(default_run):
    """Its real bugs: the fast path calls scaled_dot_product_attention with the default 1/sqrt(d) (the
    µP 1/d is only in the manual path), and train.py's loop sets each group's lr from the last parameter
    it names, so the tied embedding and the positions share the hidden weights' lr/width_mult."""
    target = f"{NANOGPT}:make_model"
    assert verdict(default_run, target) == {
        "MU201": {""},
        "MU301": {"transformer.wte.weight", "transformer.wpe.weight"},
        "MU304": {"transformer.wte.weight", "transformer.wpe.weight", *NANOGPT_HIDDEN},
    }
    assert line_of(default_run, target, "MU201").startswith("y = torch.nn.functional.scaled_dot_product_attention(")
    messages = {f["message"] for f in default_run["findings"] if f.get("target") == target and f["code"] == "MU301"}
    assert all("too small" in m for m in messages) and len(messages) == 2  # as input and as tied readout
    assert "MU303" in static_codes(default_run, NANOGPT)  # the loop writing one lr into every group


@pytest.mark.slow
def test_the_mup_diffusion_transformer_is_clean(default_run):
    """DiT-µP: heads grow with width at head_dim 72 (1/sqrt(72) is µP), adaLN modulation matrices are
    hidden, the timestep MLP's first layer and the patch conv are inputs, MuReadout zero-initialised."""
    assert verdict(default_run, f"{DIT}:make_model") == {}


@pytest.mark.slow
def test_timm_vit_is_standard_parametrization(default_run):
    """timm's ViT at its declared img_size (position table for its patches), trunc_normal 0.02 everywhere,
    SDPA's default scale with heads fixed, AdamW with decay groups: every SP finding."""
    hidden = {f"blocks.*.{n}.weight" for n in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")}
    assert verdict(default_run, f"{VIT}:vit_small") == {
        "MU101": hidden,
        "MU102": {"head.weight"},
        "MU201": {""},
        "MU301": {*hidden, "head.weight"},
    }
    assert line_of(default_run, f"{VIT}:vit_small", "MU101") == "trunc_normal_(module.weight, std=.02)"


@pytest.mark.slow
def test_granite_with_mup_multipliers_in_its_config(default_run):
    """HF Granite µP by config: hidden init ∝ width^-½ with the embedding multiplier ∝ width^+½ (the
    effective embedding is constant), attention 1/head_dim, logits divided by the width multiplier, the
    embedding's Adam lr ∝ width^-½. Only AdamW's default eps is left: hidden gradients shrink below it."""
    assert verdict(default_run, f"{GRANITE}:make_model") == {"MU305": {""}} or set(
        verdict(default_run, f"{GRANITE}:make_model")
    ) == {"MU305"}


@pytest.mark.slow
def test_afmoe_with_mup_enabled_has_an_sp_readout(default_run):
    """HF AFMoE (grouped 3-D experts, a zero-initialised sigmoid router, shared experts) with `mup_enabled`
    and init ∝ width^-½: µP everywhere but the readout, whose logits nothing scales down."""
    assert verdict(default_run, f"{AFMOE}:make_model") == {"MU102": {"lm_head.weight"}}


# Bugs planted into copies of the µP files: exactly their findings, at the line to edit (the attention
# scale's op; the optimizer's construction). --------------------------------------------------------

HF_HIDDEN = {
    f"model.layers.*.{n}.weight"
    for n in (
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    )
}

PLANTED = {
    "dit: heads fixed, head_dim grows under 1/sqrt(d)": (
        DIT,
        ("num_heads = hidden_size // dim_heads", "num_heads = 4"),
        {"MU201": {""}},
        "x = F.scaled_dot_product_attention(",
    ),
    "dit: plain AdamW, one lr": (
        DIT,
        (
            "return MuAdamW(model.parameters(), lr=2 ** -10, weight_decay=0)",
            "return torch.optim.AdamW(model.parameters(), lr=2 ** -10, weight_decay=0)",
        ),
        # MuReadout's 1/width_mult makes a constant lr right for the readout: not named
        {
            "MU301": {
                "t_embedder.mlp.*.weight",
                "final_layer.adaLN_modulation.*.weight",
                *(
                    f"blocks.*.{n}.weight"
                    for n in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2", "adaLN_modulation.*")
                ),
            }
        },
        "return torch.optim.AdamW(model.parameters(), lr=2 ** -10, weight_decay=0)",
    ),
    "granite: embedding lr not scaled down": (
        GRANITE,
        ('{"params": embedding, "lr": lr / math.sqrt(width_mult)}', '{"params": embedding, "lr": lr}'),
        {"MU301": {"model.embed_tokens.weight"}},
        "return torch.optim.AdamW([",
    ),
    "afmoe: mup_enabled with a constant init std": (
        AFMOE,
        (
            "initializer_range=initializer_range or 0.02 / math.sqrt(width_mult)",
            "initializer_range=initializer_range or 0.02",
        ),
        # the embedding multiplier sqrt(hidden_size) now makes the embedding grow; experts (3-D) too; at the
        # lines of the model's `_init_weights`, not in transformers' pass-through init helpers
        {
            "MU101": {
                *HF_HIDDEN,
                "model.layers.*.self_attn.gate_proj.weight",
                "model.layers.*.mlp.experts.gate_up_proj",
                "model.layers.*.mlp.experts.down_proj",
                *(f"model.layers.*.mlp.shared_experts.{n}.weight" for n in ("gate_proj", "up_proj", "down_proj")),
            },
            "MU102": {"lm_head.weight"},
            "MU103": {"model.embed_tokens.weight"},
        },
        None,
    ),
    "mup transformer: 1/sqrt(d) in the custom attention": (
        TRANSFORMER,
        (
            "scaling = float(head_dim) ** -1 * math.sqrt(attn_mult)",
            "scaling = float(head_dim) ** -0.5 * math.sqrt(attn_mult)",
        ),
        {"MU201": {""}},
        "q = q * scaling",
    ),
    "mup mlp: torch SGD instead of MuSGD": (
        MLP,
        (
            "return MuSGD(mynet.parameters(), lr=args.lr, momentum=args.momentum)",
            "return torch.optim.SGD(mynet.parameters(), lr=args.lr, momentum=args.momentum)",
        ),
        {"MU302": {"fc_1.weight", "fc_3.weight"}},
        "return torch.optim.SGD(mynet.parameters(), lr=args.lr, momentum=args.momentum)",
    ),
}


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    targets = {}
    for i, (case, (path, (old, new), _, _)) in enumerate(PLANTED.items()):
        source = path.read_text()
        assert source.count(old) == 1, old
        copy = folder / f"planted_{i}_{path.name}"
        copy.write_text(source.replace(old, new))
        targets[case] = f"{copy}:make_model"
    code, report = run_check(*targets.values())
    assert not report["errors"], report["errors"]
    return targets, report


@pytest.mark.slow
@pytest.mark.parametrize("case", PLANTED)
def test_a_planted_bug_gives_exactly_its_findings(planted_run, case):
    targets, report = planted_run
    target = targets[case]
    _, _, expected, line = PLANTED[case]
    found = verdict(report, target)
    assert {code: names for code, names in found.items() if code != "MU305"} == expected  # Granite's eps stays
    if line is not None:
        [code] = expected
        assert line_of(report, target, code) == line
    else:  # in the library's own `_init_weights`, at the line initialising the weight
        for f in report["findings"]:
            if f.get("target") == target and f["code"] in expected:
                assert "transformers" in f["path"] and not f["path"].endswith("initialization.py"), f["path"]
                assert "init.normal_(module." in open(f["path"]).read().splitlines()[f["line"] - 1]


@pytest.mark.slow
def test_coord_on_the_mup_mlp_names_the_layers_it_could_not_judge(mulint):
    """mup's MLP with its recommended output_mult=32 and MuSGD at lr 0.1 fits the fixed batch in one step:
    the loss reaches 0 and the hidden layers never move. The check passes on the output alone and says that
    fc_1 and fc_2 were not judged, instead of counting them as keeping their change constant."""
    code, out, err = mulint("coord", f"{MLP}:make_model", "--format", "json", "--seeds", "1")
    result = json.loads(out)
    assert code == 0 and result["verdict"] == "pass"
    [note] = [n for n in result["notes"] if "did not change" in n]
    assert note.startswith("fc_1, fc_2 did not change in 3 steps at any width")
    assert {l["name"]: l["slope"] for l in result["layers"]}["fc_2"] is None


@pytest.mark.slow
def test_the_attention_fix_leaves_a_deliberate_sp_branch(mulint, tmp_path):
    """nanoGPT-mup's manual attention offers both scales (`if self.use_mup: ... 1/d else: ... 1/sqrt(d)`):
    the fix gives the flash path its µP scale and leaves the SP alternative as it is."""
    copy = tmp_path / NANOGPT.name
    copy.write_text(NANOGPT.read_text())
    code, out, err = mulint("check", f"{copy}:make_model", "--diff", "--select", "MU201")
    changed = [line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert code == 1 and any("scale=math.sqrt(64) / q.size(-1))" in line for line in changed)
    assert not any("math.sqrt(k.size(-1))" in line for line in changed), changed


def test_a_bare_file_offers_its_factories_not_the_parts_they_build():
    """`mulint check tests/models/real/` analyses what each file builds: DiT is built by make_model through
    the DiT_mup helper (with base shapes: the bare class would be a MuReadout without them, MU401), the
    Transformer by make_model through build(), and timm's Block and Mlp are handed to VisionTransformer as
    defaults (`block_fn=Block`), not models needing arguments."""
    from mulint.reading.safety import summarize

    models = {path.stem: summarize(path).top_level_models for path in sorted(REAL.glob("*.py"))}
    assert models == {
        "afmoe_mup": ["make_model"],
        "dit_mup": ["make_model"],
        "granite_mup": ["make_model"],
        "mup_mlp_sgd": ["make_model", "make_standard_model"],
        "mup_transformer": ["make_model", "make_model_with_bias", "make_tied_model", "make_standard_model"],
        "nanogpt_mup_catstate": ["make_model"],
        "timm_vit_sp": ["VisionTransformer"],
    }
