"""Small pre-LN transformers, one per way of scaling residual branches with depth, for the depth
structure tests (tests/test_depth_structure.py). Each takes `width` and `n_layer`; the comment on each
class says what its code implies: α (branch multiplier ∝ n_layer^-α) and how the factor is set.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BASE_DEPTH = 4


class Attention(nn.Module):
    def __init__(self, width, heads=2):
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.heads = heads

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in self.qkv(x).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """α = ½ in the block's forward (Depth-µP): `x + (L0/L)^½ · F(norm(x))`."""

    def __init__(self, width, n_layer, **kw):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(width), Attention(width)
        self.ln_2, self.mlp = nn.LayerNorm(width), MLP(width)
        self.scale = (BASE_DEPTH / n_layer) ** 0.5

    def forward(self, x, x0=None):
        x = x + self.scale * self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x)) * self.scale


class LM(nn.Module):
    """The shell every style shares: embedding, blocks, final norm, readout."""

    block = Block

    def __init__(self, width: int = 32, n_layer: int = BASE_DEPTH, vocab: int = 64, **kw):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(self.block(width, n_layer, **kw) for _ in range(n_layer))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, idx):
        x = x0 = self.embed(idx)
        for block in self.blocks:
            x = block(x, x0)
        return self.head(self.norm(x))


class BlockForward(LM):
    """α = ½, set by the depth (in Block.forward)."""


class DecoderLayer(nn.Module):
    """MiniCPM's form, the multiplier in the layer outside the branch modules: scale_depth / sqrt(L)."""

    def __init__(self, width, n_layer, scale_depth=1.4, **kw):
        super().__init__()
        self.input_layernorm, self.self_attn = nn.LayerNorm(width), Attention(width)
        self.post_attention_layernorm, self.mlp = nn.LayerNorm(width), MLP(width)
        self.residual_scale = scale_depth / math.sqrt(n_layer)

    def forward(self, hidden, x0=None):
        residual = hidden
        hidden = self.self_attn(self.input_layernorm(hidden))
        hidden = residual + hidden * self.residual_scale
        residual = hidden
        hidden = self.mlp(self.post_attention_layernorm(hidden))
        return residual + hidden * self.residual_scale


class DecoderOutside(LM):
    """α = ½, set by the depth (outside the branch modules)."""

    block = DecoderLayer


class PlainBlock(Block):
    """No factor in forward: `x + F(norm(x))`."""

    def forward(self, x, x0=None):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class FoldedInit(LM):
    """α = 1 folded into the branches' last weights: their init std and their Adam lr both × L0/L."""

    block = PlainBlock

    def __init__(self, width: int = 32, n_layer: int = BASE_DEPTH, vocab: int = 64):
        super().__init__(width, n_layer, vocab)
        self.depth_mult = n_layer / BASE_DEPTH
        for block in self.blocks:
            for last in (block.attn.proj, block.mlp.down):
                nn.init.normal_(last.weight, std=0.02 / self.depth_mult)

    def configure_optimizers(self, lr=1e-3):
        last = [b.attn.proj.weight for b in self.blocks] + [b.mlp.down.weight for b in self.blocks]
        rest = [p for p in self.parameters() if all(p is not w for w in last)]
        return torch.optim.Adam([{"params": last, "lr": lr / self.depth_mult}, {"params": rest}], lr=lr)


class GatedBlock(PlainBlock):
    """A learnable scalar gate per branch, initialised to L0/L (α = 1)."""

    def __init__(self, width, n_layer, **kw):
        super().__init__(width, n_layer)
        self.attn_gate = nn.Parameter(torch.full((), BASE_DEPTH / n_layer))
        self.mlp_gate = nn.Parameter(torch.full((), BASE_DEPTH / n_layer))

    def forward(self, x, x0=None):
        x = x + self.attn_gate * self.attn(self.ln_1(x))
        return x + self.mlp_gate * self.mlp(self.ln_2(x))


class Gated(LM):
    """α = 1, learned (a gate initialised ∝ 1/L)."""

    block = GatedBlock


class ParallelBlock(PlainBlock):
    """GPT-J / PaLM's parallel block: both branches read the same normalised stream, each × L0/L."""

    def forward(self, x, x0=None):
        h = self.ln_1(x)
        m = BASE_DEPTH / self.n_layer
        return x + self.attn(h) * m + self.mlp(h) * m

    def __init__(self, width, n_layer, **kw):
        super().__init__(width, n_layer)
        self.n_layer = n_layer
        del self.ln_2  # one norm for both branches


class Parallel(LM):
    """α = 1 on both parallel branches, set by the depth."""

    block = ParallelBlock


class PostNormBlock(PlainBlock):
    """Post-LN (the original transformer): the sum is normalised."""

    def forward(self, x, x0=None):
        x = self.ln_1(x + self.attn(x))
        return self.ln_2(x + self.mlp(x))


class PostNorm(LM):
    """Post-LN blocks, no factor: not covered by the depth rules."""

    block = PostNormBlock


class StoredBlock(PlainBlock):
    """A multiplier stored as a number, tuned once at one depth."""

    def forward(self, x, x0=None):
        x = x + 0.22 * self.attn(self.ln_1(x))
        return x + 0.22 * self.mlp(self.ln_2(x))


class Stored(LM):
    """α = 0 in effect: a constant in the code."""

    block = StoredBlock


class KnobBlock(PlainBlock):
    def __init__(self, width, n_layer, residual_scale=0.5, **kw):
        super().__init__(width, n_layer)
        self.residual_scale = residual_scale

    def forward(self, x, x0=None):
        x = x + self.residual_scale * self.attn(self.ln_1(x))
        return x + self.residual_scale * self.mlp(self.ln_2(x))


class StaleKnob(LM):
    """α = 0 in effect: `residual_scale` is an argument of its own, not derived from n_layer."""

    block = KnobBlock

    def __init__(self, width: int = 32, n_layer: int = BASE_DEPTH, vocab: int = 64, residual_scale: float = 0.5):
        super().__init__(width, n_layer, vocab, residual_scale=residual_scale)


class InjectionBlock(Block):
    """α = ½ on the main branches, and x0 (the embedding output) added back in every block times a
    learnable per-block gate: an extra path into the stream."""

    def __init__(self, width, n_layer, **kw):
        super().__init__(width, n_layer)
        self.x0_gate = nn.Parameter(torch.full((), 0.1))

    def forward(self, x, x0=None):
        x = x + self.x0_gate * x0
        return super().forward(x)


class X0Injection(LM):
    """Main branches α = ½ (depth); an extra path from x0 with a gate that does not follow depth."""

    block = InjectionBlock


class SkipScaledBlock(PlainBlock):
    """The factor on the skip path instead of the branch: `(1 - 1/L)·x + F(x)`."""

    def __init__(self, width, n_layer, **kw):
        super().__init__(width, n_layer)
        self.keep = 1.0 / n_layer

    def forward(self, x, x0=None):
        x = x * self.keep + self.attn(self.ln_1(x))
        return x * self.keep + self.mlp(self.ln_2(x))


class SkipScaled(LM):
    """The skip path ∝ 1/L (skip exponent -1), the branches unscaled (α = 0)."""

    block = SkipScaledBlock


class CancelledBlock(PlainBlock):
    """The factor in front of the branch's own pre-norm, which divides it out: `x + F(norm(x / L))`."""

    def __init__(self, width, n_layer, **kw):
        super().__init__(width, n_layer)
        self.m = BASE_DEPTH / n_layer

    def forward(self, x, x0=None):
        x = x + self.attn(self.ln_1(x * self.m))
        return x + self.mlp(self.ln_2(x * self.m))


class Cancelled(LM):
    """A 1/L factor cancelled by the pre-norm: flagged, α̂ read from it (1)."""

    block = CancelledBlock


class UNetSkips(LM):
    """modded-nanogpt's U-Net: the first half's outputs are added back into the second half, each times a
    learnable weight: extra paths into the stream; the main branches are unscaled (α = 0)."""

    block = PlainBlock

    def __init__(self, width: int = 32, n_layer: int = BASE_DEPTH, vocab: int = 64):
        super().__init__(width, n_layer, vocab)
        self.skip_weights = nn.Parameter(torch.ones(n_layer // 2))

    def forward(self, idx):
        x = self.embed(idx)
        half, skips = len(self.blocks) // 2, []
        for i, block in enumerate(self.blocks):
            if i >= half:
                x = x + self.skip_weights[i - half] * skips.pop()
            x = block(x)
            if i < half:
                skips.append(x)
        return self.head(self.norm(x))


class SummedParallelBlock(ParallelBlock):
    """GPT-NeoX's order: the two branches summed first, then the stream added, one factor on the sum."""

    def forward(self, x, x0=None):
        h = self.ln_1(x)
        return (self.mlp(h) + self.attn(h)) * (BASE_DEPTH / self.n_layer) + x


class SummedParallel(LM):
    """α = 1 on both branches, through the factor on their sum."""

    block = SummedParallelBlock


class CrossAttention(nn.Module):
    def __init__(self, width, heads=2):
        super().__init__()
        self.q, self.kv, self.proj = nn.Linear(width, width), nn.Linear(width, 2 * width), nn.Linear(width, width)
        self.heads = heads

    def forward(self, x, memory):
        B, T, C = x.shape
        k, v = self.kv(memory).split(C, dim=2)
        q, k, v = (t.view(B, -1, self.heads, C // self.heads).transpose(1, 2) for t in (self.q(x), k, v))
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, C))


class DecoderBlock(Block):
    """Self-attention, cross-attention on the encoder's output, MLP: three branches, each × (L0/L)^½."""

    def __init__(self, width, n_layer, **kw):
        super().__init__(width, n_layer)
        self.ln_x, self.cross = nn.LayerNorm(width), CrossAttention(width)

    def forward(self, x, memory):
        x = x + self.scale * self.attn(self.ln_1(x))
        x = x + self.scale * self.cross(self.ln_x(x), memory)
        return x + self.scale * self.mlp(self.ln_2(x))


class EncoderDecoder(LM):
    """An encoder of Blocks and a decoder of DecoderBlocks, α = ½ everywhere: the decoder's
    cross-attention branch reads the encoder's output, whose blocks are not on that branch."""

    def __init__(self, width: int = 32, n_layer: int = BASE_DEPTH, vocab: int = 64):
        super().__init__(width, n_layer, vocab)
        self.decoder = nn.ModuleList(DecoderBlock(width, n_layer) for _ in range(n_layer))
        self.enc_norm = nn.LayerNorm(width)

    def forward(self, idx):
        memory = self.embed(idx)
        for block in self.blocks:
            memory = block(memory)
        memory = self.enc_norm(memory)
        x = self.embed(idx)
        for block in self.decoder:
            x = block(x, memory)
        return self.head(self.norm(x))
