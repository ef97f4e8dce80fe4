"""Numbers against depth: init rms, the lr a group trains at (lr-scale keys applied) and Adam's ε, at
several depths with the width fixed, and their fitted exponents of L, on small models of each style."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from mulint.analysis.depth_numbers import analyse_depth_numbers, depth_params, measure_depths
from mulint.analysis.lr_reads import LrPolicy
from mulint.construct.depth import find_depth_knob
from mulint.construct.width import find_knob
from mulint.depth_scaling import GPT2_INIT_NOTE, NO_SCALING_NOTE
from mulint.facts import DepthFacts, ResidualBranch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE_DEPTH = 4


class Block(nn.Module):
    def __init__(self, width: int, mult: float, out_std: float):
        super().__init__()
        self.ln = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(2 * width, width)
        nn.init.normal_(self.proj.weight, std=out_std)
        self.mult = mult

    def forward(self, x):
        return x + self.mult * self.proj(torch.relu(self.fc(self.ln(x))))


class Tower(nn.Module):
    """A pre-LN residual tower: `alpha` the branch multiplier's exponent, `gpt2_init` GPT-2's std/sqrt(2L)."""

    def __init__(self, width: int = 32, n_layer: int = 4, alpha: float = 0.0, gpt2_init: bool = False):
        super().__init__()
        self.n_layer, self.alpha = n_layer, alpha
        out_std = 0.02 / (2 * n_layer) ** 0.5 if gpt2_init else 0.02
        self.wte = nn.Embedding(64, width)
        self.h = nn.ModuleList(Block(width, (BASE_DEPTH / n_layer) ** alpha, out_std) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, 64, bias=False)

    def forward(self, idx):
        x = self.wte(idx)
        for block in self.h:
            x = block(x)
        return self.head(self.ln_f(x))


def depth_lr_groups(model: Tower):
    """Adam with block lr ∝ L^(α-1) and block ε ∝ L^-α (CompleteP's table), as a `lr_scale` key on the block group."""
    ratio = model.n_layer / BASE_DEPTH
    blocks = [p for n, p in model.named_parameters() if n.startswith("h.")]
    others = [p for n, p in model.named_parameters() if not n.startswith("h.")]
    return torch.optim.AdamW(
        [
            {"params": blocks, "lr_scale": ratio ** (model.alpha - 1), "eps": 1e-8 * ratio**-model.alpha},
            {"params": others},
        ],
        lr=1e-3,
        eps=1e-8,
    )


def knob_of(cls):
    return find_depth_knob(find_knob(cls, "tower.py:Tower"))


def branches(names: list[str]) -> list[ResidualBranch]:
    return [ResidualBranch("h.*.mlp", "main", tuple(names), None, source="depth", alpha=1.0)]


def test_block_lr_and_eps_exponents_with_the_lr_scale_key_applied():
    class CompleteP(Tower):
        def __init__(self, width: int = 32, n_layer: int = 4):
            super().__init__(width, n_layer, alpha=1.0)

    numbers = measure_depths(
        knob_of(CompleteP), [2, 4, 8], 32, target="t", make_optimizer=depth_lr_groups, policy=LrPolicy(mode="applied")
    )
    assert numbers.depths == [2, 4, 8]
    assert "h.3.fc.weight" not in numbers.init_rms  # block 3 does not exist at depth 2
    facts = DepthFacts("n_layer", 4, [2, 4, 8], branches=branches(["h.0.fc.weight", "h.0.proj.weight"]))
    analyse_depth_numbers(
        facts, knob_of(CompleteP), 32, target="t", make_optimizer=depth_lr_groups, policy=LrPolicy(mode="applied")
    )
    fc, wte = facts.param("h.1.fc.weight"), facts.param("wte.weight")
    assert fc.block and fc.branch == "h.*.mlp" and not wte.block
    assert fc.lr == pytest.approx({2: 1e-3, 4: 1e-3, 8: 1e-3})  # α = 1: lr × L^0
    assert fc.eps_exponent == pytest.approx(-1.0) and wte.eps_exponent == pytest.approx(0.0)
    assert abs(fc.init_exponent) < 0.1 and abs(wte.init_exponent) < 0.1
    assert facts.notes == []  # depth scaling shown: judged, no note


def test_alpha_half_lr_rule_and_an_ignored_scale_key():
    class Half(Tower):
        def __init__(self, width: int = 32, n_layer: int = 4):
            super().__init__(width, n_layer, alpha=0.5)

    applied = measure_depths(
        knob_of(Half), [2, 8], 32, target="t", make_optimizer=depth_lr_groups, policy=LrPolicy(mode="applied")
    )
    facts = DepthFacts("n_layer", 4, [2, 8], branches=branches(["h.0.fc.weight"]))
    facts.params = depth_params(facts, applied)
    assert facts.param("h.0.fc.weight").lr_exponent == pytest.approx(-0.5)
    assert facts.param("head.weight").lr_exponent == pytest.approx(0.0)
    ignored = measure_depths(
        knob_of(Half), [2, 8], 32, target="t", make_optimizer=depth_lr_groups, policy=LrPolicy(mode="ignored")
    )
    assert ignored.lr["h.0.fc.weight"] == {2: 1e-3, 8: 1e-3}  # the key is not applied: the lr is the group's


def test_gpt2_init_shrinks_the_projection_and_earns_a_note_without_a_multiplier():
    class Gpt2(Tower):
        def __init__(self, width: int = 32, n_layer: int = 4):
            super().__init__(width, n_layer, gpt2_init=True)

    facts = DepthFacts(
        "n_layer", 4, [2, 4, 8], branches=[ResidualBranch("h.*.mlp", "main", ("h.0.proj.weight",), None)]
    )
    analyse_depth_numbers(facts, knob_of(Gpt2), 32, target="t")
    proj = facts.param("h.0.proj.weight")
    assert proj.init_exponent == pytest.approx(-0.5, abs=0.05) and proj.lr == {} and proj.lr_exponent is None
    assert facts.notes == [GPT2_INIT_NOTE, NO_SCALING_NOTE]
    judged = DepthFacts("n_layer", 4, [2, 4, 8], branches=[ResidualBranch("h.*.mlp", "main", (), None)])
    analyse_depth_numbers(judged, knob_of(Gpt2), 32, target="t", profile="completep")
    assert judged.notes == []  # the depth profiles judge it instead


def test_a_depth_the_model_refuses_is_left_out_with_a_note():
    class Even(Tower):
        def __init__(self, width: int = 32, n_layer: int = 4):
            if n_layer % 2:
                raise ValueError("n_layer must be even")
            super().__init__(width, n_layer)

    numbers = measure_depths(knob_of(Even), [3, 4, 8], 32, target="t")
    assert numbers.depths == [4, 8] and "n_layer=3" in numbers.notes[0]


def test_sampling_noise_of_a_small_random_init_is_no_exponent():
    from mulint.analysis.depth_numbers import init_exponent

    noisy = {4: 0.30, 8: 0.41, 16: 0.45}  # a 4-entry bias drawn at three points of the stream
    assert init_exponent(noisy, 4) == 0.0
    assert init_exponent(noisy, None) == pytest.approx(0.29, abs=0.01)  # a constant init: read as it is
    shrinking = {4: 0.02, 8: 0.02 / 2**0.5, 16: 0.01}  # std/sqrt(2L) on 4096 entries
    assert init_exponent(shrinking, 4096) == pytest.approx(-0.5)
    assert init_exponent(shrinking, 4) == 0.0  # within a 4-entry tensor's noise: not believed


def test_the_structure_pass_says_which_parameters_are_block_ones():
    from mulint.analysis.depth_numbers import DepthNumbers
    from mulint.facts import ParamDepth

    numbers = DepthNumbers(
        [4, 8], init_rms={"h.0.w": {4: 1.0, 8: 1.0}, "h.1.w": {4: 1.0, 8: 1.0}, "g": {4: 1.0, 8: 0.5}}
    )
    facts = DepthFacts("n_layer", 4, [4, 8], branches=branches(["h.0.w"]))
    facts.params = [
        ParamDepth("h.0.w", True, "h.*.mlp"),
        ParamDepth("g", True, "x0"),
    ]  # as the structure pass listed them
    by_name = {p.name: p for p in depth_params(facts, numbers)}
    assert (by_name["g"].block, by_name["g"].branch) == (True, "x0")  # a gate no branch lists by pattern
    assert by_name["h.1.w"].branch == "h.*.mlp"  # not listed: its layer pattern's branch
    assert by_name["g"].init_exponent == pytest.approx(-1.0)
