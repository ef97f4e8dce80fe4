"""MU501's fix on source text: the branch output × (BASE_DEPTH / depth) ** α on a plain residual add, the
base depth a module constant and the depth reached as the width is (kept on self when the block has
only its config), and the refusals: an add that is not plain, a BASE_DEPTH that says another depth."""

import ast
import textwrap

import pytest

from mulint.fix import plan_fixes
from mulint.rules import by_code, check_model_rules

from .depth_builder import gpt
from .facts_builder import at

SOURCE = textwrap.dedent(
    """\
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.ln_1 = nn.LayerNorm(config.n_embd)
            self.attn = nn.Linear(config.n_embd, config.n_embd)
            self.ln_2 = nn.LayerNorm(config.n_embd)
            self.mlp = nn.Linear(config.n_embd, config.n_embd)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            x += self.mlp(self.ln_2(x))
            return x


    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
    """
)


def line_of(text: str, code: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if code in line)


def findings_for(text: str, profile: str = "completep", **kw):
    facts = gpt(None, profile=profile, **kw)
    facts.target, facts.width_knob = "net.py:GPT", "config.n_embd"
    facts.depth.knob, facts.depth.base_depth = "config.n_layer", 12
    attn, mlp = facts.depth.branches
    attn.loc = at(line_of(text, "self.attn(self.ln_1"))
    mlp.loc = at(line_of(text, "self.mlp(self.ln_2"))
    return check_model_rules(facts, [by_code("MU501")])


@pytest.fixture
def net(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(SOURCE, encoding="utf-8")
    return tmp_path / "net.py"


def test_the_branches_get_one_over_l_with_the_base_depth_as_a_constant(net):
    findings = findings_for(SOURCE)
    assert [f.fix.applicability for f in findings] == ["unsafe", "unsafe"]
    result = plan_fixes(findings, unsafe=True)
    assert len(result.fixed) == 2, result.declined
    text = result.files["net.py"].render().code
    assert "BASE_DEPTH = 12  # the depth (config.n_layer) the hyperparameters are tuned at\n" in text
    assert "        self.mup_depth = config.n_layer\n" in text  # the block keeps no config: stored once
    assert "        x = x + self.attn(self.ln_1(x)) * (BASE_DEPTH / self.mup_depth)\n" in text
    assert "        x += self.mlp(self.ln_2(x)) * (BASE_DEPTH / self.mup_depth)\n" in text
    assert "# depth: the branch × (BASE_DEPTH / depth), 1 at the base depth 12" in text
    ast.parse(text)
    assert text.count("BASE_DEPTH = 12") == 1 and text.count("self.mup_depth = config.n_layer") == 1


def test_the_alpha_the_lrs_follow_is_written_as_a_power(net):
    findings = findings_for(SOURCE, "mup", block_lr=-0.5)  # Adam lr ∝ L^-½ on every block: α = ½
    assert findings_for(SOURCE, block_lr=-0.5)[0].fix is None  # completep requires α = 1: not this model's
    text = plan_fixes(findings[:1], unsafe=True).files["net.py"].render().code
    assert "x = x + self.attn(self.ln_1(x)) * (BASE_DEPTH / self.mup_depth) ** 0.5\n" in text


def test_an_add_that_is_not_plain_and_another_base_depth_are_refused(net):
    fused = SOURCE.replace("x = x + self.attn(self.ln_1(x))", "x = x + self.attn(self.ln_1(x)) + 0.0")
    net.write_text(fused, encoding="utf-8")
    result = plan_fixes(findings_for(fused)[:1], unsafe=True)
    assert result.fixed == [] and "not a plain" in next(iter(result.declined.values()))
    other = "BASE_DEPTH = 6\n" + SOURCE
    net.write_text(other, encoding="utf-8")
    result = plan_fixes(findings_for(other)[:1], unsafe=True)
    assert result.fixed == [] and "not the base depth 12" in next(iter(result.declined.values()))


def test_a_block_that_returns_the_sum_is_plain_too(net):
    returned = SOURCE.replace("            x += self.mlp(self.ln_2(x))\n            return x\n", "")
    returned = returned.replace("x += self.mlp(self.ln_2(x))\n        return x", "return x + self.mlp(self.ln_2(x))")
    net.write_text(returned, encoding="utf-8")
    result = plan_fixes(findings_for(returned), unsafe=True)
    assert len(result.fixed) == 2, result.declined
    assert "        return x + self.mlp(self.ln_2(x)) * (BASE_DEPTH / self.mup_depth)\n" in (
        result.files["net.py"].render().code
    )
