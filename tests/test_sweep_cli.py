"""`mulint transfer` end to end, in mulint's isolated workers: SP's best lr falls with width and fails,
a µP model's stays and passes, a repeat reuses every stored trial, bad input is a usage error."""

import json

import pytest

from tests.conftest import EXAMPLES, MODELS

PAIR = MODELS / "transfer_pair.py"


@pytest.mark.slow
def test_sp_fails_and_a_repeat_reuses_every_trial(mulint, tmp_path, monkeypatch):
    monkeypatch.setenv("MULINT_CACHE_DIR", str(tmp_path / "cache"))
    args = (
        "transfer",
        f"{PAIR}:sp_net",
        "--optimizer",
        f"{PAIR}:sp_adam",
        "--widths",
        "64,128,256",
        "--steps",
        "100",
        "--seeds",
        "2",
        "--format",
        "json",
    )
    code, out, err = mulint(*args, "--plot", str(tmp_path / "t.png"))
    assert code == 1, err
    first = json.loads(out)
    assert first["verdict"]["status"] == "FAIL" and first["verdict"]["slope"] < -0.5
    assert first["reused"] == 0 and first["trials"] >= 30
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert "about" in err and "trials" in err  # the plan and its estimate, before the sweep
    code, out, err = mulint(*args)
    again = json.loads(out)
    assert code == 1 and again["reused"] == again["trials"] == first["trials"]
    assert again["verdict"] == first["verdict"]


@pytest.mark.slow
def test_mup_passes(mulint, tmp_path, monkeypatch):
    monkeypatch.setenv("MULINT_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = mulint("transfer", f"{EXAMPLES}/mlp_mup.py", "--widths", "64,128,256,512", "--steps", "150")
    assert code == 0, out + err
    assert "transfer PASS" in out and "PASS: the best lr moves" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (("--steps", "5"), "steps: must be an integer from 10"),
        (("--seeds", "0"), "seeds: must be an integer from 1"),
        (("--lr", "-1"), "lr: must be a positive"),
        (("--widths", "64"), "needs at least two different positive widths"),
    ],
)
def test_bad_runs_are_usage_errors_before_anything_trains(mulint, args, message):
    code, out, err = mulint("transfer", f"{EXAMPLES}/mlp_mup.py", *args)
    assert code == 2 and message in err and out == ""


HANGS_IN_TRAINING = """
import time

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        self.a, self.b = nn.Linear(8, width), nn.Linear(width, 4)

    def forward(self, x):
        if self.training:
            time.sleep(3600)
        return self.b(torch.relu(self.a(x)))
"""


@pytest.mark.slow
def test_a_model_that_hangs_while_training_times_out_in_the_training_step(mulint, tmp_path):
    model = tmp_path / "hangs.py"
    model.write_text(HANGS_IN_TRAINING)
    code, out, err = mulint("transfer", f"{model}:Net", "--widths", "32,64", "--steps", "10", "--timeout", "5")
    assert code == 2 and out == ""
    assert "[transfer] timed out after 5 s" in err  # not the build step the width's model came from
