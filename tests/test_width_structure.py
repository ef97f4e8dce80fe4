"""Widths are compared one architecture apart or not at all: a model whose layers change with width is
refused (step "width", naming the parameters one width has and the other lacks); a model torch.export
cannot trace is recorded from the same seeds on the same inputs at every width, gives one verdict on
every run, and is refused when its path through forward depends on width."""

import json
import random
import textwrap

import numpy as np
import pytest
import torch
import torch.nn as nn

from mulint.analysis.same_structure import layout, require_same_structure
from mulint.errors import MulintError
from mulint.trace.record import share_inputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GROWING = textwrap.dedent("""
    import torch.nn as nn


    class Stack(nn.Module):
        def __init__(self, width: int = 64, depth: int | None = None):
            super().__init__()
            depth = width // 64 if depth is None else depth  # deeper as it gets wider
            self.embed = nn.Linear(12, width)
            self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
            self.readout = nn.Linear(width, 3)

        def forward(self, x):
            h = self.embed(x)
            for block in self.blocks:
                h = h + block(h).tanh()
            return self.readout(h)


    def fixed_depth(width: int = 64):
        return Stack(width, depth=1)


    def as_sequential(width: int = 64):
        layers = [nn.Linear(12, width), nn.GELU()]
        for _ in range(width // 64):
            layers += [nn.Linear(width, width), nn.GELU()]
        return nn.Sequential(*layers, nn.Linear(width, 3))
""")


def test_a_layer_list_that_grows_with_width_is_named():
    def stack(width):
        return nn.Sequential(
            nn.Linear(4, width), *[nn.Linear(width, width) for _ in range(width // 8)], nn.Linear(width, 2)
        )

    layouts = {8: layout(stack(8)), 16: layout(stack(16))}
    with pytest.raises(MulintError) as info:
        require_same_structure(layouts, "m.py:stack")
    assert info.value.step == "width"
    assert "only at width 16: 3.bias, 3.weight" in info.value.message
    require_same_structure({8: layout(stack(8)), 9: layout(stack(9))}, "m.py:stack")  # same layers: silent


def test_a_layer_that_changes_kind_with_width_is_named():
    def model(width):
        return nn.Sequential(nn.Linear(4, width), nn.LayerNorm(width) if width < 16 else nn.BatchNorm1d(width))

    with pytest.raises(MulintError, match=r"different kind of layer .*1\.weight"):
        require_same_structure({8: layout(model(8)), 16: layout(model(16))}, "m.py:model")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["Stack", "as_sequential"])
def test_depth_growing_with_width_is_refused_not_passed(mulint, tmp_path, name):
    path = tmp_path / "growing.py"
    path.write_text(GROWING)
    code, out, err = mulint("check", f"{path}:{name}", "--format", "json", "--no-cache")
    report = json.loads(out)
    assert code == 2 and report["findings"] == []
    [error] = report["errors"]
    assert error["step"] == "width" and "only at width 128" in error["message"]


@pytest.mark.slow
def test_the_same_model_at_fixed_depth_is_analysed(mulint, tmp_path):
    path = tmp_path / "growing.py"
    path.write_text(GROWING)
    code, out, _ = mulint("check", f"{path}:fixed_depth", "--format", "json", "--no-cache")
    report = json.loads(out)
    assert report["errors"] == [] and "MU102" in {f["code"] for f in report["findings"]}  # PyTorch's SP readout


def test_inputs_that_do_not_depend_on_width_are_the_same_tensors():
    tokens, other_tokens = torch.randint(0, 50, (2, 8)), torch.randint(0, 50, (2, 8))
    wide = torch.randn(2, 16)
    args, kwargs = share_inputs(
        ((tokens, torch.randn(2, 8)), {"mask": torch.ones(8)}), ((other_tokens, wide), {"mask": torch.zeros(8)})
    )
    assert torch.equal(args[0], tokens) and args[1] is wide and torch.equal(kwargs["mask"], torch.ones(8))


BRANCHY = textwrap.dedent("""
    import math
    import random

    import torch
    import torch.nn as nn


    class CoinFlipMLP(nn.Module):
        # A µP output multiplier on one branch of a coin flip on its input and on a draw made while it
        # is built: which branch runs decides the readout's verdict.

        def __init__(self, width: int = 64):
            super().__init__()
            self.inp = nn.Linear(16, width)
            self.hidden = nn.Linear(width, width)
            self.out = nn.Linear(width, 10)
            self.jitter = random.random()  # Python's generator

        def forward(self, x):
            h = self.inp(x).relu()
            out = self.out(h)
            if (x.sum() + self.jitter - 0.5).item() > 0:
                out = out * (64 / h.shape[-1])
            return out


    class ParityMLP(CoinFlipMLP):
        \"\"\"Runs its hidden layer at every other power-of-two width: a path that depends on width.\"\"\"

        def forward(self, x):
            h = self.inp(x).relu()
            if int(math.log2(torch.ones_like(h).sum(-1).mean().item())) % 2 == 0:
                h = self.hidden(h).relu()
            return self.out(h)
""")


def analyse(spec: str) -> list | str:
    from mulint.analysis.model import analyse_model
    from mulint.reading.targets import parse_target, resolve
    from mulint.rules import model_rules

    [target] = resolve(parse_target(spec), allow_exec=True)
    try:
        facts = analyse_model(target).facts
    except MulintError as exc:
        return exc.message
    return sorted((f.code, f.parameter, f.message) for rule in model_rules() for f in rule().check(facts))


@pytest.mark.slow
def test_a_recorded_model_gives_one_verdict_on_every_run(tmp_path):
    path = tmp_path / "branchy.py"
    path.write_text(BRANCHY)
    verdicts = []
    for run in range(5):
        torch.manual_seed(1000 + run)  # whatever state the generators were left in
        random.seed(run)
        np.random.seed(run)
        verdicts.append(analyse(f"{path}:CoinFlipMLP"))
    assert all(v == verdicts[0] for v in verdicts)


@pytest.mark.slow
def test_a_path_that_depends_on_width_is_refused(tmp_path):
    path = tmp_path / "branchy.py"
    path.write_text(BRANCHY)
    message = analyse(f"{path}:ParityMLP")
    assert "different path at widths" in message and "hidden.weight" in message
