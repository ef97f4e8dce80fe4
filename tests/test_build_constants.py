"""A large buffer sized by a module constant (not a config field) is built short on the small CPU
models: a 32768² causal mask must not need gigabytes, and the findings are those of the model."""

import json
import textwrap

import pytest

from mulint.analysis.structure import analyse_structure
from mulint.construct import build_at
from mulint.reading.targets import parse_target, resolve

pytestmark = pytest.mark.slow  # every test analyses a model in a worker

BIG_MASK = textwrap.dedent("""
    import math

    import torch
    import torch.nn as nn

    CONTEXT = 32768  # a module constant: no config field to cap


    class CausalLM(nn.Module):
        def __init__(self, width: int = 64, n_head: int = 2, vocab: int = 64):
            super().__init__()
            self.n_head = n_head
            self.embed = nn.Embedding(vocab, width)
            self.qkv = nn.Linear(width, 3 * width, bias=False)
            self.proj = nn.Linear(width, width, bias=False)
            self.head = nn.Linear(width, vocab, bias=False)
            causal = torch.tril(torch.ones(CONTEXT, CONTEXT, dtype=torch.bool))
            self.register_buffer("mask", causal.view(1, 1, CONTEXT, CONTEXT), persistent=False)

        def forward(self, idx):
            x = self.embed(idx)
            b, t, c = x.shape
            q, k, v = (z.view(b, t, self.n_head, -1).transpose(1, 2) for z in self.qkv(x).chunk(3, dim=-1))
            att = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            att = att.masked_fill(~self.mask[:, :, :t, :t], float("-inf")).softmax(-1)
            x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, c))
            return self.head(x)


    def configure_optimizers(model):
        return torch.optim.AdamW(model.parameters(), lr=1e-3)
""")


@pytest.fixture
def big_mask(tmp_path):
    path = tmp_path / "big_mask.py"
    path.write_text(BIG_MASK)
    return path


def test_the_constant_size_is_found_on_meta_and_built_short_on_the_cpu(big_mask):
    [target] = resolve(parse_target(f"{big_mask}:CausalLM"), allow_exec=True)
    structure = analyse_structure(target)
    assert structure.knob.shrink == {32768: 256}
    assert structure.models[64].mask.shape == (1, 1, 32768, 32768)  # meta: the declared size, for free
    small = build_at(structure.knob, 32, target="t", device="cpu")
    assert tuple(small.mask.shape) == (1, 1, 256, 256) and bool(small.mask[0, 0, 3, 2])
    assert tuple(small.qkv.weight.shape) == (96, 32)  # width-dependent sizes untouched


def test_a_huge_constant_mask_is_analysed_within_a_small_memory_cap(mulint, big_mask):
    code, out, err = mulint("check", f"{big_mask}:CausalLM", "--no-cache", "--max-memory", "1G", "--format", "json")
    report = json.loads(out)
    assert report["errors"] == [], report["errors"]  # the full mask alone is 1 GiB
    codes = {f["code"] for f in report["findings"]}
    assert {"MU102", "MU201", "MU301"} <= codes
