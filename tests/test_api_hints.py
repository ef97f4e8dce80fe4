"""Errors and notes met through the Python API speak its arguments (width_arg=, widths=,
optimizer_fn=, model_fn), never the CLI's flags or a factory file to check."""

import re

import pytest
import torch.nn as nn

import mulint
from mulint.errors import MulintError, in_api_words

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLI_WORDS = re.compile(r"--[a-z]|file\.py:")


class SizedNet(nn.Module):
    """Its width is called `size`, a name mulint does not guess."""

    def __init__(self, size: int = 32):
        super().__init__()
        self.inp = nn.Linear(4, size)
        self.out = nn.Linear(size, 1)

    def forward(self, x):
        return self.out(self.inp(x).relu())


class Headed(nn.Module):
    """Builds only at widths divisible by 48."""

    def __init__(self, width: int = 96):
        super().__init__()
        assert width % 48 == 0, "width must be a multiple of 48"
        self.inp = nn.Linear(4, width)
        self.out = nn.Linear(width, 1)

    def forward(self, x):
        return self.out(self.inp(x))


class LateInit(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        self.inp = nn.Linear(4, width)
        self.out = nn.Linear(width, 1)

    def init_weights(self):
        nn.init.zeros_(self.out.weight)

    def forward(self, x):
        return self.out(self.inp(x))


def test_no_width_knob_hint_names_width_arg():
    with pytest.raises(MulintError) as info:
        mulint.inspect(SizedNet)
    assert 'width_arg="' in info.value.hint and "model_fn=" in info.value.hint, info.value.hint
    assert not CLI_WORDS.search(info.value.hint + info.value.message), info.value.hint


def test_widths_it_cannot_build_hint_names_widths():
    with pytest.raises(MulintError) as info:
        mulint.inspect(Headed, widths=[32, 64])
    assert "widths=" in info.value.hint and not CLI_WORDS.search(info.value.hint), info.value.hint


@pytest.mark.slow
def test_notes_speak_the_api():
    report = mulint.check(LateInit)
    notes = report.analysed["notes"]
    assert any("LateInit.init_weights()" in n and "model_fn" in n for n in notes), notes
    assert any("optimizer_fn=" in n for n in notes), notes
    assert not any(CLI_WORDS.search(n) for n in notes), notes


def test_the_cli_words_each_have_an_api_word():
    assert in_api_words("pass --width-arg config.n_embd") == 'pass width_arg="config.n_embd"'
    assert in_api_words("e.g. --widths 64,128,256") == "e.g. widths=[64, 128, 256]"
    assert in_api_words("use --optimizer path/to/file.py:make_optimizer") == "use optimizer_fn=make_optimizer"
    assert in_api_words("give a --batch path/to/file.py:NAME") == "give a batch_fn=NAME"
    assert not CLI_WORDS.search(in_api_words("try a smaller --lr, more --steps, or --seeds"))
