"""The whole message and fix title of every INVALID case, as `mulint check` prints them: what a user
reads is behaviour, so a changed word, number or unit shows here (the other tests check the key
numbers). Update a message here when a rule's wording changes on purpose."""

import pytest

from . import test_rules_attention, test_rules_init, test_rules_measured, test_rules_mup_coord, test_rules_optimizer
from .cases import run

MODULES = (test_rules_init, test_rules_attention, test_rules_optimizer, test_rules_measured, test_rules_mup_coord)

MESSAGES = {
    # test_rules_init.INVALID
    ("MU101", "SP: constant std 0.02"): (
        "hidden weight init ∝ width^0 (rms 0.02 at width 128); µP needs std ∝ fan_in^-½ (width^-0.50)",
        "multiply the init std by (128 / width) ** 0.5",
    ),
    ("MU101", "just outside the tolerance"): (
        "hidden weight init ∝ width^-0.24 (rms 0.02 at width 128); µP needs std ∝ fan_in^-½ (width^-0.50)",
        "multiply the init std by (128 / width) ** 0.25",
    ),
    ("MU101", "a multiplier that grows with width"): (
        "hidden weight init ∝ width^0 (rms 0.02 at width 128, multiplier ∝ width^+0.50); µP needs std ∝ fan_in^-½ (width^-0.50)",
        "multiply the init std by (128 / width) ** 0.5",
    ),
    ("MU101", "an init growing like sqrt(width)"): (
        "hidden weight init ∝ width^+0.50 (rms 0.02 at width 128); µP needs std ∝ fan_in^-½ (width^-0.50)",
        "multiply the init std by (128 / width) ** 1",
    ),
    ("MU102", "SP: nn.Linear's default init"): (
        "readout init ∝ width^-0.50 (rms 0.02 at width 128); µP needs width^-1 (std ∝ 1/fan_in, a 1/width multiplier, or zero init)",
        "multiply the logits by 128 / width",
    ),
    ("MU102", "just outside the tolerance"): (
        "readout init ∝ width^-0.74 (rms 0.02 at width 128); µP needs width^-1 (std ∝ 1/fan_in, a 1/width multiplier, or zero init)",
        "multiply the logits by 128 / width",
    ),
    ("MU102", "nanoGPT SP: tied embedding/readout, std 0.02"): (
        "tied embedding/readout init ∝ width^0 (rms 0.02 at width 128); as a readout µP needs width^-1: multiply the logits by base_width / width",
        "multiply the logits by 128 / width",
    ),
    ("MU102", "MuSharedReadout: the multiplier is there, the shared init grows"): (
        "tied embedding/readout init ∝ width^-0.50 (rms 0.02 at width 128, multiplier ∝ width^-1.00); as a readout µP needs width^-1: the logits' multiplier is there, but the shared weight's init grows with width",
        None,
    ),
    ("MU102", "an init growing like width^0.24: one multiplier still fixes it"): (
        "readout init ∝ width^+0.24 (rms 0.02 at width 128); µP needs width^-1 (std ∝ 1/fan_in, a 1/width multiplier, or zero init)",
        "multiply the logits by 128 / width",
    ),
    ("MU102", "an init growing like width^0.26: too large for one multiplier, no fix"): (
        "readout init ∝ width^+0.26 (rms 0.02 at width 128); µP needs width^-1 (std ∝ 1/fan_in, a 1/width multiplier, or zero init)",
        None,
    ),
    ("MU103", "a norm gain growing like sqrt(width)"): (
        "vector parameter init ∝ width^+0.50 (rms 1 at width 128) grows with width; µP keeps it constant (width^0)",
        None,
    ),
    ("MU103", "vector just outside the tolerance"): (
        "vector parameter init ∝ width^+0.26 (rms 1 at width 128) grows with width; µP keeps it constant (width^0)",
        None,
    ),
    ("MU103", "embedding just outside (above)"): (
        "input parameter init ∝ width^+0.26 (rms 1 at width 128) grows with width; µP keeps it constant (width^0)",
        None,
    ),
    ("MU103", "embedding std 1/sqrt(d_model): the signal fades"): (
        "input weight init ∝ width^-0.50 (rms 1 at width 128) shrinks with width; µP keeps it constant (width^0), or the signal fades in wide models",
        None,
    ),
    ("MU103", "dense input just outside (below)"): (
        "input weight init ∝ width^-0.26 (rms 0.02 at width 128) shrinks with width; µP keeps it constant (width^0), or the signal fades in wide models",
        None,
    ),
    ("MU103", "a multiplier growing on the embedding's path"): (
        "input parameter init ∝ width^+0.50 (rms 1 at width 128, multiplier ∝ width^+0.50) grows with width; µP keeps it constant (width^0)",
        None,
    ),
    ("MU104", "std ∝ 1/fan_in on a hidden weight"): (
        "hidden weight init ∝ width^-1.00 (rms 0.02 at width 128) shrinks too fast; µP needs std ∝ fan_in^-½ (width^-0.50)",
        None,
    ),
    ("MU104", "just outside the tolerance"): (
        "hidden weight init ∝ width^-0.76 (rms 0.02 at width 128) shrinks too fast; µP needs std ∝ fan_in^-½ (width^-0.50)",
        None,
    ),
    ("MU105", "u-µP: the scale sits in the init"): (
        "hidden weight: forward multiplier ∝ width^0 and init ∝ width^-0.50; u-µP keeps the init unit (width^0) and scales by width^-0.50 in the forward op (µP holds either way)",
        None,
    ),
    ("MU105", "multiplier just outside u-µP's range"): (
        "hidden weight: forward multiplier ∝ width^-0.25 and init ∝ width^-0.25; u-µP keeps the init unit (width^0) and scales by width^-0.50 in the forward op (µP holds either way)",
        None,
    ),
    # test_rules_attention.INVALID
    ("MU201", "nanoGPT SP: the default 1/sqrt(head_dim), two layers on one line"): (
        "attention logits use scaled_dot_product_attention's default scale 1/sqrt(head_dim) (∝ width^-0.50) while head_dim grows (32 at width 128) (2 attention layers); µP needs 1/head_dim",
        "scale the attention logits by sqrt(32) / head_dim",
    ),
    ("MU201", "scale just outside µP's, not the sqrt form: no fix"): (
        "attention logits use a scale of 0.2 (∝ width^-0.74) while head_dim grows (32 at width 128); µP needs 1/head_dim",
        None,
    ),
    ("MU201", "T5: logits not scaled, a repeated block standing for 12 layers"): (
        "attention logits use a scale of 1 (∝ width^0, not scaled by head_dim at all) while head_dim grows (32 at width 128) (12 attention layers); µP needs 1/head_dim",
        None,
    ),
    ("MU201", "head_dim just outside 'fixed'"): (
        "attention logits use scale=0.125 (∝ width^0, not scaled by head_dim at all) while head_dim grows (32 at width 128); µP needs 1/head_dim",
        None,
    ),
    ("MU201", "explicit q @ kᵀ / sqrt(head_dim): the sqrt form is fixed"): (
        "attention logits use a scale of 0.1768 (∝ width^-0.50) while head_dim grows (32 at width 128); µP needs 1/head_dim",
        "scale the attention logits by sqrt(32) / head_dim",
    ),
    ("MU201", "heads grow, head_dim fixed, logits divided by the model width (a ViT's `/ (feats / 19.5)`): no fix"): (
        "attention logits are scaled by 0.1523 ∝ width^-1.00 while head_dim is fixed (64) (2 attention layers): they vanish and attention turns uniform as width grows; µP needs 1/head_dim",
        None,
    ),
    ("MU201", "scale just outside µP's, from below"): (
        "attention logits are scaled by 0.02 ∝ width^-1.26 while head_dim ∝ width^+1.00 (32 at width 128): they vanish and attention turns uniform as width grows; µP needs 1/head_dim",
        None,
    ),
    # test_rules_optimizer.INVALID
    ("MU301", "SP: one lr for all (hidden, then the readout)"): (
        "AdamW: hidden parameters get updates ∝ width^0 (lr ∝ width^0), µP needs width^-1.00 (too large: it blows up as width grows)",
        "give hidden weights their µP learning rate (× width ratio) in AdamW's param groups",
    ),
    ("MU301", "hidden lr just outside (above)"): (
        "AdamW: hidden parameters get updates ∝ width^-0.75 (lr ∝ width^-0.74), µP needs width^-1.00 (too large: it blows up as width grows)",
        "give hidden weights their µP learning rate (× width ratio) in AdamW's param groups",
    ),
    ("MU301", "over-scaled readout lr"): (
        "AdamW: output parameters get updates ∝ width^-2.00 (lr ∝ width^-2.00), µP needs width^-1.00 (too small: it stops learning as width grows)",
        "give hidden weights their µP learning rate (× width ratio) in AdamW's param groups",
    ),
    ("MU301", "scaled embedding lr"): (
        "AdamW: input parameters get updates ∝ width^-1.00 (lr ∝ width^-1.00), µP needs width^0 (too small: it stops learning as width grows)",
        "give hidden weights their µP learning rate (× width ratio) in AdamW's param groups",
    ),
    ("MU301", "u-µP's embedding lr under the µP profile"): (
        "AdamW: input parameters get updates ∝ width^-0.50 (lr ∝ width^-0.50), µP needs width^0 (too small: it stops learning as width grows)",
        "give hidden weights their µP learning rate (× width ratio) in AdamW's param groups",
    ),
    ("MU301", "readout lr just outside (below)"): (
        "AdamW: output parameters get updates ∝ width^-1.25 (lr ∝ width^-1.26), µP needs width^-1.00 (too small: it stops learning as width grows)",
        "give hidden weights their µP learning rate (× width ratio) in AdamW's param groups",
    ),
    ("MU301", "an lr_scale key the loop applies: the fixer does not rewrite it"): (
        "AdamW: hidden parameters get updates ∝ width^0 (lr ∝ width^0, param_group['lr'] × param_group['lr_scale'] as the training loop applies it), µP needs width^-1.00 (too large: it blows up as width grows)",
        None,
    ),
    ("MU301", "several optimizers: the AdamW-stepped one is judged, no fix"): (
        "AdamW: hidden parameters get updates ∝ width^0 (lr ∝ width^0), µP needs width^-1.00 (too large: it blows up as width grows)",
        None,
    ),
    ("MU302", "SGD with one lr: input and vectors too small, readout too large"): (
        "SGD: input parameters get updates ∝ width^0 (lr ∝ width^0), µP needs width^+1.00 (too small: it stops learning as width grows)",
        "give each role their µP learning rate (× width ratio) in SGD's param groups",
    ),
    ("MU302", "SGD readout with a 1/width multiplier and lr ∝ 1/width: 2a+c = -3"): (
        "SGD: output parameters get updates ∝ width^-3.00 (lr ∝ width^-1.00), µP needs width^-1.00 (too small: it stops learning as width grows)",
        "give each role their µP learning rate (× width ratio) in SGD's param groups",
    ),
    ("MU302", "hidden lr just outside"): (
        "SGD: hidden parameters get updates ∝ width^+0.25 (lr ∝ width^+0.26), µP needs width^0 (too large: it blows up as width grows)",
        "give each role their µP learning rate (× width ratio) in SGD's param groups",
    ),
    ("MU304", "µP lr with a constant weight decay"): (
        "AdamW decays by lr·weight_decay ∝ width^-1.00; keep it constant across widths (scale weight_decay by width/base_width where lr is scaled by base_width/width)",
        None,
    ),
    ("MU304", "lr·wd just outside"): (
        "AdamW decays by lr·weight_decay ∝ width^-0.26; keep it constant across widths (scale weight_decay by width/base_width where lr is scaled by base_width/width)",
        None,
    ),
    ("MU304", "a decay scaled up without its lr scaled down"): (
        "AdamW decays by lr·weight_decay ∝ width^+1.00; keep it constant across widths (scale weight_decay by width/base_width where lr is scaled by base_width/width)",
        None,
    ),
    ("MU305", "eps 1e-4 against gradients of 5e-4"): (
        "AdamW eps=0.0001 is not negligible next to hidden weights' gradient entries (rms 0.0005 at width 512, shrinking like 1/width): wide models get damped updates; use eps ≤ 5e-06",
        None,
    ),
    ("MU305", "Muon beside AdamW: the AdamW part's eps is judged"): (
        "AdamW + Muon eps=0.0001 is not negligible next to hidden weights' gradient entries (rms 0.0005 at width 512, "
        "shrinking like 1/width): wide models get damped updates; use eps ≤ 5e-06",
        None,
    ),
    ("MU305", "eps just over a tenth"): (
        "AdamW eps=0.000101 is not negligible next to hidden weights' gradient entries (rms 0.001 at width 512, shrinking like 1/width): wide models get damped updates; use eps ≤ 1e-05",
        None,
    ),
    ("MU306", "lr * (base_width // width): 0 beyond the base width"): (
        "AdamW: learning rate 0 at width 256, 512, not at the others: these parameters never train (an integer division like base_width // width is 0 once width > base_width); freeze them with requires_grad_(False) if that is meant",
        None,
    ),
    ("MU306", "lr 0 everywhere"): (
        "AdamW: learning rate 0 at width 128, 256, 512 (every width analysed): these parameters never train (an integer division like base_width // width is 0 once width > base_width); freeze them with requires_grad_(False) if that is meant",
        None,
    ),
    # test_rules_measured.INVALID
    ("MU311", "a per-coordinate update with a constant lr"): (
        "Sophia: hidden weights' updates (RMS→RMS operator norm) ∝ width^+0.50, measured on step 2, lr ∝ width^0; the spectral condition needs width^0: hidden parameters need lr ∝ width^-0.50 with Sophia (too large: it blows up as width grows)",
        None,
    ),
    ("MU311", "just outside"): (
        "Sophia: hidden weights' updates (RMS→RMS operator norm) ∝ width^+0.25, measured on step 2, lr ∝ width^0; the spectral condition needs width^0: hidden parameters need lr ∝ width^-0.25 with Sophia (too large: it blows up as width grows)",
        None,
    ),
    ("MU311", "spectral profile: Adam with one lr"): (
        "AdamW: hidden weights' updates (RMS→RMS operator norm) ∝ width^+1.00, measured on step 2, lr ∝ width^0; the spectral condition needs width^0: hidden parameters need lr ∝ width^-1.00 with AdamW (too large: it blows up as width grows)",
        None,
    ),
    ("MU311", "Muon's Adam-style path on a vector"): (
        "Muon (its Adam-style path, not orthogonalised): vectors' update entries ∝ width^+0.50, measured on step 2, lr ∝ width^0; the spectral condition needs width^0: vector parameters need lr ∝ width^-0.50 with Muon's Adam-style path (too large: it blows up as width grows)",
        None,
    ),
    ("MU311", "Muon's orthogonalised hidden update with a shape-dependent setting"): (
        "Muon (adjust_lr_fn='match_rms_adamw'): hidden weights' updates (RMS→RMS operator norm) ∝ width^+0.50, measured on step 2, lr ∝ width^0; the spectral condition needs width^0: hidden parameters need lr ∝ width^-0.50 with Muon (too large: it blows up as width grows)",
        None,
    ),
    ("MU311", "u-µP: an embedding update above the range aims at its high end"): (
        "Sophia: embedding update entries ∝ width^+0.50, measured on step 2, lr ∝ width^0; the spectral condition needs width^-0.50 to width^0: input parameters need lr ∝ width^-0.50 with Sophia (too large: it blows up as width grows)",
        None,
    ),
    ("MU311", "no learning rate read: no lr advice"): (
        "Sophia: hidden weights' updates (RMS→RMS operator norm) ∝ width^+0.50, measured on step 2; the spectral condition needs width^0 (too large: it blows up as width grows)",
        None,
    ),
    ("MU312", "u-µP: the embedding's accepted range is [-0.5, 0]: its low end is the aim"): (
        "Sophia: embedding update entries ∝ width^-1.00, measured on step 2, lr ∝ width^-1.00; the spectral condition needs width^-0.50 to width^0: input parameters need lr ∝ width^-0.50 with Sophia (too small: these weights stop learning as width grows)",
        None,
    ),
    ("MU312", "a hidden update shrinking like 1/sqrt(width)"): (
        "Sophia: hidden weights' updates (RMS→RMS operator norm) ∝ width^-0.50, measured on step 2, lr ∝ width^-1.00; the spectral condition needs width^0: hidden parameters need lr ∝ width^-0.50 with Sophia (too small: these weights stop learning as width grows)",
        None,
    ),
    ("MU312", "embedding entries shrinking"): (
        "Sophia: embedding update entries ∝ width^-1.00, measured on step 2, lr ∝ width^-1.00; the spectral condition needs width^0: input parameters need lr ∝ width^0 with Sophia (too small: these weights stop learning as width grows)",
        None,
    ),
    ("MU312", "just outside"): (
        "Sophia: hidden weights' updates (RMS→RMS operator norm) ∝ width^-0.25, measured on step 2, lr ∝ width^-0.50; the spectral condition needs width^0: hidden parameters need lr ∝ width^-0.25 with Sophia (too small: these weights stop learning as width grows)",
        None,
    ),
    ("MU313", "Muon orthogonalises an embedding table"): (
        "Muon steps an embedding table: Muon orthogonalises the update as for a hidden map (width × width), which an embedding is not; measured on step 2, its update ∝ width^0; give embeddings, the readout and vectors to AdamW beside Muon",
        None,
    ),
    ("MU313", "Muon on a readout whose update grows: an error"): (
        "Muon steps a readout matrix (width → a size that stays fixed as width grows): Muon orthogonalises the update as for a hidden map (width × width), which a readout is not; measured on step 2, its update ∝ width^+0.50 where the spectral condition needs width^0; give embeddings, the readout and vectors to AdamW beside Muon",
        None,
    ),
    ("MU313", "just outside once rounded to a quarter (0.5): an error"): (
        "Muon steps a readout matrix (width → a size that stays fixed as width grows): Muon orthogonalises the update as for a hidden map (width × width), which a readout is not; measured on step 2, its update ∝ width^+0.50 where the spectral condition needs width^0; give embeddings, the readout and vectors to AdamW beside Muon",
        None,
    ),
    ("MU313", "just inside once rounded to a quarter (0.25): a warning"): (
        "Muon steps a readout matrix (width → a size that stays fixed as width grows): Muon orthogonalises the update as for a hidden map (width × width), which a readout is not; measured on step 2, its update ∝ width^+0.25; give embeddings, the readout and vectors to AdamW beside Muon",
        None,
    ),
    ("MU313", "a readout update that shrinks: a warning that names the condition"): (
        "Muon steps a readout matrix (width → a size that stays fixed as width grows): Muon orthogonalises the update as for a hidden map (width × width), which a readout is not; measured on step 2, its update ∝ width^-0.50 where the spectral condition needs width^0; give embeddings, the readout and vectors to AdamW beside Muon",
        None,
    ),
    # test_rules_mup_coord.INVALID
    ("MU401", "MuReadout without set_base_shapes"): (
        "MuReadout `lm_head` is used but set_base_shapes(model, base, delta=...) was never called on the model; call it before building the optimizer",
        None,
    ),
    ("MU402", "hidden weights re-initialised with a constant std"): (
        "re-initialises parameters after set_base_shapes without mup.init, undoing µP's width scaling; use mup.init.normal_/uniform_ or initialise before set_base_shapes",
        None,
    ),
    ("MU402", "one re-init loop over the readout and hidden weights: one finding naming both"): (
        "re-initialises parameters after set_base_shapes without mup.init, undoing µP's width scaling; use mup.init.normal_/uniform_ or initialise before set_base_shapes",
        None,
    ),
    ("MU402", "a readout re-initialised like a hidden weight (beyond hidden weights)"): (
        "re-initialises parameters after set_base_shapes without mup.init, undoing µP's width scaling; use mup.init.normal_/uniform_ or initialise before set_base_shapes",
        None,
    ),
    ("MU402", "a vector whose late init grows"): (
        "re-initialises parameters after set_base_shapes without mup.init, undoing µP's width scaling; use mup.init.normal_/uniform_ or initialise before set_base_shapes",
        None,
    ),
    ("MU402", "an embedding just outside the tolerance"): (
        "re-initialises parameters after set_base_shapes without mup.init, undoing µP's width scaling; use mup.init.normal_/uniform_ or initialise before set_base_shapes",
        None,
    ),
    ("MU402", "a hidden weight just outside the tolerance"): (
        "re-initialises parameters after set_base_shapes without mup.init, undoing µP's width scaling; use mup.init.normal_/uniform_ or initialise before set_base_shapes",
        None,
    ),
    ("MU403", "MuSharedReadout's default bias=True"): (
        "MuSharedReadout `lm_head` has a bias shaped like the embedding width, not the vocabulary (mup's default bias=True); pass bias=False",
        "pass bias=False",
    ),
    ("MU901", "a nested block: the innermost layer is reported"): (
        "coordinate check: the change of `h.0.mlp.fc` (Linear) per training step grows with width; in µP it stays constant (slope +0.62 over widths 64, 128, 256)",
        None,
    ),
    ("MU901", "only the output blows up: reported"): (
        "coordinate check: the change of `output` (Linear) per training step grows with width; in µP it stays constant (slope +0.70 over widths 64, 128)",
        None,
    ),
    ("MU901", "the output follows a layer that blows up: the layer is reported"): (
        "coordinate check: the change of `h.3.attn` (Linear) per training step grows with width; in µP it stays constant (slope +0.50 over widths )",
        None,
    ),
    ("MU902", "a layer that stops learning"): (
        "coordinate check: the change of `h.0.mlp` (Linear) per training step shrinks with width: the layer stops learning in wide models (slope -0.80 over widths 64, 128, 256)",
        None,
    ),
}


CASES = [(code, case) for module in MODULES for code, cases in module.INVALID.items() for case in cases]


def test_every_invalid_case_has_its_message():
    assert sorted(MESSAGES) == sorted((code, case.why) for code, case in CASES)


@pytest.mark.parametrize(("code", "case"), [pytest.param(c, case, id=f"{c}-{case.why}") for c, case in CASES])
def test_message_and_fix_title(code, case):
    finding = run(code, case.facts)[0]
    message, fix = MESSAGES[(code, case.why)]
    assert finding.message == message
    assert (finding.fix.message if finding.fix else None) == fix
