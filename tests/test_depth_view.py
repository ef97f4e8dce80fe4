"""inspect's depth section, from facts alone: the knob, a row per branch with α̂, its multiplier at each
depth and what sets it, the flags that need a word, and the block / non-block split."""

from __future__ import annotations

from mulint.facts import DepthFacts, ParamDepth, ResidualBranch, SourceLoc
from mulint.report.depth_view import depth_lines


def facts() -> DepthFacts:
    at = SourceLoc("model.py", 12, 9, "x = x + self.scale * self.attn(self.ln_1(x))")
    return DepthFacts(
        knob="config.n_layer",
        base_depth=4,
        depths=[4, 8, 16],
        branches=[
            ResidualBranch(
                "h.*.attn", "main", ("h.0.attn.w",), at, {4: 1.0, 8: 0.5, 16: 0.25}, 1.0, at, "depth", "config.n_layer"
            ),
            ResidualBranch(
                "h.*.mlp",
                "main",
                ("h.0.mlp.w",),
                at,
                {4: 1.0, 8: 1.0, 16: 1.0},
                0.0,
                None,
                skip_exponent=-1.0,
                post_norm=True,
            ),
        ],
        params=[
            ParamDepth("h.0.attn.w", True, "h.*.attn"),
            ParamDepth("h.0.mlp.w", True, "h.*.mlp"),
            ParamDepth("wte.weight", False),
            ParamDepth("h.3.ln.weight", False),
        ],
        notes=["depth: post-LN blocks"],
    )


def test_no_depth_facts_no_section():
    assert depth_lines(None) == []


def test_the_section_reads_each_branch_and_the_block_split():
    lines = depth_lines(facts())
    assert lines[1] == "depth: config.n_layer = 4; built at 4, 8, 16 blocks on the meta device"
    attn = next(line for line in lines if line.lstrip().startswith("h.*.attn "))
    assert attn.split()[:6] == ["h.*.attn", "main", "1.00", "1,", "0.5,", "0.25"]
    assert "depth (config.n_layer)" in attn and attn.endswith("model.py:12")
    assert "  h.*.mlp: the skip path is scaled (∝ L^-1.00), not the branch" in lines
    assert "  h.*.mlp: post-LN: the sum is normalised" in lines
    assert "  2 block parameters (on a branch), 2 non-block: h.*.ln.weight, wte.weight" in lines
    assert lines[-1] == "note: depth: post-LN blocks"
