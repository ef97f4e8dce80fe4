"""Which small widths the init is measured at: within memory, preferring cheap models."""

import pytest
import torch.nn as nn

from mulint.analysis import numbers
from mulint.construct.width import find_knob


class BigVocab(nn.Module):
    """A 70B-like shape in miniature: many fixed heads (width >= 64) and a vocab that dominates."""

    def __init__(self, width: int = 8192, vocab: int = 100_000, heads: int = 64):
        super().__init__()
        assert width % heads == 0 and width >= heads
        self.embed = nn.Embedding(vocab, width)
        self.hidden = nn.Linear(width, width)
        self.head = nn.Linear(width, vocab, bias=False)


def _numel(width):
    return sum(p.numel() for p in BigVocab(width, vocab=100_000).to("meta").parameters())


@pytest.mark.slow
def test_widths_fit_the_budget_and_prefer_small_models():
    knob = find_knob(BigVocab, "BigVocab")
    widths = numbers.numeric_widths(knob, "BigVocab")
    assert len(widths) >= 2 and min(widths) >= 64
    assert all(_numel(w) <= numbers.MAX_ELEMENTS for w in widths)
    # 200k vocab entries per width unit: only 64 would fit the preferred size, so the hard cap is used.
    assert _numel(max(widths)) > numbers.PREFERRED_ELEMENTS


def test_small_models_use_the_largest_preferred_widths():
    class MLP(nn.Module):
        def __init__(self, width: int = 128):
            super().__init__()
            self.a, self.b = nn.Linear(16, width), nn.Linear(width, width)

    widths = numbers.numeric_widths(find_knob(MLP, "MLP"), "MLP")
    assert widths == [128, 256, 512]
