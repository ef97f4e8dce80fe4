"""The residual structure read from the trace at several depths: which adds are residual, which
parameters are block parameters, each branch's measured α̂ and how its multiplier is set, on small
models in every style of tests/models/depth_styles.py, against what each model's code implies."""

from __future__ import annotations

import functools

import pytest
import torch

from mulint.analysis.depth import (
    NO_BRANCHES_NOTE,
    NOT_SCALED_NOTE,
    POST_LN_NOTE,
    analyse_depth,
    depths_for,
    finish_depth,
)
from mulint.analysis.structure import analyse_structure
from mulint.reading.targets import parse_target, resolve
from tests.models import depth_styles

STYLES = "tests/models/depth_styles.py"
BLOCK_PARAMS = 12  # per block of depth_styles.Block: two norms (2 each), qkv and proj (2 each), up and down (2 each)


@functools.cache
def depth_of(name: str, depth_arg: str | None = None):
    [target] = resolve(parse_target(f"{STYLES}:{name}"), allow_exec=True)
    structure = analyse_structure(target)
    return analyse_depth(target, structure, depth_arg, numeric_width=32)


def branches(name: str) -> dict[tuple[str, str], object]:
    return {(b.kind, b.name): b for b in depth_of(name).branches}


def test_depths_built_are_the_base_and_two_doublings():
    assert depths_for(4) == [4, 8, 16]
    assert depths_for(2) == [2, 4, 8]


@pytest.mark.parametrize(
    ("model", "alpha", "source"),
    [
        ("BlockForward", 0.5, "depth"),  # (4 / n_layer) ** 0.5 in Block.forward
        ("DecoderOutside", 0.5, "depth"),  # scale_depth / sqrt(n_layer) in the decoder layer
        ("Gated", 1.0, "learned"),  # gates initialised to 4 / n_layer
        ("Parallel", 1.0, "depth"),  # both parallel branches × 4 / n_layer
        ("SummedParallel", 1.0, "depth"),  # (mlp + attn) × 4 / n_layer + x
        ("Stored", 0.0, "constant"),  # 0.22
        ("StaleKnob", 0.0, "knob"),  # residual_scale = 0.5, its own argument
        ("Cancelled", 1.0, "depth"),  # 4 / n_layer, in front of the pre-norm
        ("SkipScaled", 0.0, "none"),  # the branch is unscaled; the skip path is
        ("PostNorm", 0.0, "none"),
        ("UNetSkips", 0.0, "none"),
    ],
)
def test_main_branches_alpha_and_source(model, alpha, source):
    main = depth_of(model).main_branches
    attn = "blocks.*.self_attn" if model == "DecoderOutside" else "blocks.*.attn"
    assert {b.name for b in main} == {attn, "blocks.*.mlp"}
    for branch in main:
        assert branch.alpha == pytest.approx(alpha, abs=0.05), branch.name
        assert branch.source == source, branch.name


def test_multiplier_values_follow_the_code_at_each_depth():
    branch = branches("BlockForward")[("main", "blocks.*.attn")]
    assert branch.multiplier == pytest.approx({L: (4 / L) ** 0.5 for L in (4, 8, 16)})
    assert branch.loc is not None and "self.scale * self.attn" in branch.loc.code
    decoder = branches("DecoderOutside")[("main", "blocks.*.self_attn")]
    assert decoder.multiplier == pytest.approx({L: 1.4 / L**0.5 for L in (4, 8, 16)})
    assert decoder.multiplier_at is not None and "residual_scale" in decoder.multiplier_at.code


def test_block_and_non_block_parameters():
    depth = depth_of("BlockForward")
    non_block = {p.name for p in depth.params if not p.block}
    assert non_block == {"embed.weight", "norm.weight", "norm.bias", "head.weight"}
    assert sum(p.block for p in depth.params) == 4 * BLOCK_PARAMS  # every block, not only the two traced
    assert depth.param("blocks.3.ln_1.weight").branch == "blocks.*.attn"  # the pre-norm is on its branch
    assert depth.param("blocks.2.mlp.down.bias").branch == "blocks.*.mlp"
    attn = branches("BlockForward")[("main", "blocks.*.attn")]
    assert attn.last_weight == "blocks.0.attn.proj.weight"
    assert "blocks.3.attn.qkv.weight" in attn.params and "blocks.3.mlp.up.weight" not in attn.params


def test_depth_knob_and_depths_recorded():
    depth = depth_of("BlockForward")
    assert (depth.knob, depth.base_depth, depth.depths, depth.named_by_user) == ("n_layer", 4, [4, 8, 16], False)
    assert depth_of("BlockForward", "n_layer").named_by_user


def test_gate_is_named_and_its_init_counts():
    attn = branches("Gated")[("main", "blocks.*.attn")]
    assert attn.gate == "blocks.0.attn_gate"
    assert attn.multiplier == pytest.approx({4: 1.0, 8: 0.5, 16: 0.25})
    assert depth_of("Gated").param("blocks.2.mlp_gate").block


def test_parallel_branches_are_both_main():
    found = branches("Parallel")
    assert set(found) == {("main", "blocks.*.attn"), ("main", "blocks.*.mlp")}
    assert "blocks.1.ln_1.weight" in found[("main", "blocks.*.attn")].params  # the shared norm, once


def test_stale_knob_names_the_field_that_sets_it():
    for branch in depth_of("StaleKnob").main_branches:
        assert (branch.source, branch.knob) == ("knob", "residual_scale")
        assert branch.multiplier == pytest.approx({4: 0.5, 8: 0.5, 16: 0.5})
    for branch in depth_of("Stored").main_branches:
        assert (branch.source, branch.knob) == ("constant", "")


def test_skip_path_scaled_instead_of_the_branch():
    for branch in depth_of("SkipScaled").main_branches:
        assert branch.skip_exponent == pytest.approx(-1.0, abs=0.05)
    assert all(b.skip_exponent == 0 for b in depth_of("BlockForward").branches)


def test_factor_in_front_of_the_pre_norm_is_cancelled():
    assert all(b.cancelled_by_norm for b in depth_of("Cancelled").main_branches)
    assert not any(b.cancelled_by_norm for b in depth_of("BlockForward").branches)


def test_post_ln_is_flagged_with_a_note():
    depth = depth_of("PostNorm")
    assert all(b.post_norm for b in depth.main_branches)
    assert POST_LN_NOTE in depth.notes
    assert not any(b.post_norm for b in depth_of("BlockForward").branches)  # the last sum feeds ln_f only


def test_x0_injection_is_an_extra_path_with_its_gate():
    found = branches("X0Injection")
    extra = found[("extra", "blocks.*.x0_gate")]
    assert extra.params == tuple(f"blocks.{i}.x0_gate" for i in range(4))
    assert (extra.source, extra.alpha) == ("learned", 0.0)
    assert found[("main", "blocks.*.attn")].alpha == pytest.approx(0.5, abs=0.05)


def test_unet_skips_are_extra_paths():
    extra = [b for b in depth_of("UNetSkips").branches if b.kind == "extra"]
    assert [(b.name, b.params) for b in extra] == [("skip_weights", ("skip_weights",))]
    assert not depth_of("UNetSkips").param("embed.weight").block


def test_functional_blocks_name_their_branches_by_the_last_weight():
    [target] = resolve(parse_target("tests/models/prenorm_functional.py:PreNormLM"), allow_exec=True)
    depth = analyse_depth(target, analyse_structure(target))
    assert {b.name for b in depth.branches} == {"layers.*.wo", "layers.*.w_down"}
    assert {p.name for p in depth.params if not p.block} == {"embed", "final_gain", "readout"}


def _init_and_lr_at(depth: int) -> tuple[float, float]:
    """The attention output projection's init rms and its Adam lr, read here from the model itself."""
    torch.manual_seed(0)
    model = depth_styles.FoldedInit(width=32, n_layer=depth)
    weight = model.blocks[0].attn.proj.weight
    group = next(g for g in model.configure_optimizers().param_groups if any(p is weight for p in g["params"]))
    return float(weight.detach().pow(2).mean().sqrt()), group["lr"]


def test_a_factor_folded_into_the_last_weight_with_its_lr_counts_as_the_multiplier():
    depth = depth_of("FoldedInit")
    depth = type(depth)(**{**depth.__dict__, "branches": [type(b)(**b.__dict__) for b in depth.branches]})
    assert all(b.alpha == 0 for b in depth.branches)  # nothing in forward
    proj = depth.param("blocks.0.attn.proj.weight")
    for L in depth.depths:
        proj.init_rms[L], proj.lr[L] = _init_and_lr_at(L)
    proj.init_exponent, proj.lr_exponent = -1.0, -1.0
    finish_depth(depth, "mup")
    attn = next(b for b in depth.branches if b.name == "blocks.*.attn")
    assert attn.alpha == pytest.approx(1.0, abs=0.05)
    assert attn.source == "depth"
    mlp = next(b for b in depth.branches if b.name == "blocks.*.mlp")
    assert mlp.alpha == 0  # its last weight's numbers are not in: nothing folds
    assert NOT_SCALED_NOTE not in depth.notes


def test_init_alone_does_not_fold_without_its_lr():
    depth = depth_of("FoldedInit")
    depth = type(depth)(**{**depth.__dict__, "branches": [type(b)(**b.__dict__) for b in depth.branches]})
    depth.notes = []
    proj = depth.param("blocks.0.attn.proj.weight")
    proj = type(proj)(**proj.__dict__)
    proj.init_rms = {L: 0.02 * 4 / L for L in depth.depths}
    proj.init_exponent, proj.lr_exponent = -1.0, 0.0
    depth.params = [proj if p.name == proj.name else p for p in depth.params]
    finish_depth(depth, "mup")
    assert all(b.alpha == 0 and b.source == "none" for b in depth.branches)
    assert NOT_SCALED_NOTE in depth.notes  # GPT-2's init alone: no depth intent in the multiplier


def test_the_default_profile_notes_a_model_without_depth_scaling():
    plain = depth_of("UNetSkips")
    for profile, noted in (("mup", False), ("completep", False)):
        depth = type(plain)(**{**plain.__dict__, "notes": []})
        finish_depth(depth, profile)
        assert (NOT_SCALED_NOTE in depth.notes) is noted  # a learned extra path is depth intent
    scaled = type(plain)(**{**depth_of("BlockForward").__dict__, "notes": []})
    finish_depth(scaled, "mup")
    assert NOT_SCALED_NOTE not in scaled.notes
    unscaled = type(plain)(**{**depth_of("SkipScaled").__dict__, "notes": []})
    finish_depth(unscaled, "mup")
    assert NOT_SCALED_NOTE not in unscaled.notes  # a scaled skip path is intent too (judged, not noted)


def test_a_network_without_residual_adds_has_no_branches_and_says_so():
    [target] = resolve(parse_target("examples/inout_mlp_mup.py:InOutMLP"), allow_exec=True)
    depth = analyse_depth(target, analyse_structure(target))
    finish_depth(depth, "mup")
    assert depth.knob == "depth" and depth.branches == []
    assert not any(p.block for p in depth.params)
    assert depth.notes == [NO_BRANCHES_NOTE]  # not "branches are not scaled": there are none


def test_the_completep_example_scales_every_branch_by_one_over_depth():
    [target] = resolve(parse_target("examples/completep_gpt.py:GPT"), allow_exec=True)
    depth = analyse_depth(target, analyse_structure(target))
    assert (depth.knob, depth.base_depth) == ("config.n_layer", 4)
    assert {b.name for b in depth.main_branches} == {"transformer.h.*.attn", "transformer.h.*.mlp"}
    for branch in depth.main_branches:
        assert branch.alpha == pytest.approx(1.0, abs=0.05)
        assert (branch.source, branch.knob) == ("depth", "config.n_layer")
    assert {p.name for p in depth.params if not p.block} == {
        "transformer.wte.weight",  # tied with lm_head.weight
        "transformer.wpe.weight",
        "transformer.ln_f.weight",
        "transformer.ln_f.bias",
    }


def test_a_decoders_cross_attention_is_its_own_branch_without_the_encoder():
    found = branches("EncoderDecoder")
    assert set(found) == {
        ("main", "blocks.*.attn"),
        ("main", "blocks.*.mlp"),
        ("main", "decoder.*.attn"),
        ("main", "decoder.*.cross"),
        ("main", "decoder.*.mlp"),
    }
    assert all(b.alpha == pytest.approx(0.5, abs=0.05) for b in found.values())
    cross = found[("main", "decoder.*.cross")].params
    assert "decoder.3.cross.kv.weight" in cross and "decoder.3.ln_x.weight" in cross
    assert not any(p.startswith(("blocks.", "enc_norm")) for p in cross)
