"""When no made-up input runs the model, the hint shows example_inputs with the input mulint tried first:
an image batch for an image model, tokens within the vocabulary for a language model."""

from __future__ import annotations

import textwrap

import pytest
import torch.nn as nn

from mulint.analysis.structure import analyse_structure
from mulint.construct.inputs import example_inputs_hint
from mulint.errors import MulintError
from mulint.reading.targets import parse_target, resolve

NEEDS_BIG_IMAGES = """
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = self.body(F.relu(self.stem(x)))
        x = F.avg_pool2d(x, 16)  # 32x32 images only: what mulint makes up is smaller
        return self.head(x.flatten(1))
"""


def test_an_image_model_that_no_made_up_input_runs_is_shown_an_image_example(tmp_path):
    path = tmp_path / "pooled_convnet.py"
    path.write_text(textwrap.dedent(NEEDS_BIG_IMAGES))
    [target] = resolve(parse_target(f"{path}:Net"), allow_exec=True)
    with pytest.raises(MulintError) as caught:
        analyse_structure(target)
    assert caught.value.step == "trace"
    assert "def example_inputs(model):" in caught.value.hint
    assert "return (torch.randn(2, 3, " in caught.value.hint and "randint" not in caught.value.hint


def test_tokens_stay_within_the_vocabulary():
    model = nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 8))
    assert "torch.randint(0, 50, (2, 8))" in example_inputs_hint(model)


def test_without_a_model_the_example_is_tokens():
    hint = example_inputs_hint()
    assert "torch.randint(0, 100, (2, 8))" in hint and "the sizes mulint tried" not in hint
