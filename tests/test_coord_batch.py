"""The coordinate check trains an optimizer that mixes a matrix's entries (Muon) on enough tokens for
the widest width, as the measured updates do; a per-coordinate one keeps the small batch."""

import json

import pytest
from conftest import MODELS

pytestmark = pytest.mark.slow  # coordinate checks in a worker

MODEL = MODELS / "muon_linear_mlp.py"


def coord(mulint, optimizer):
    code, out, err = mulint(
        "coord", f"{MODEL}:Net", "--optimizer", f"{MODEL}:{optimizer}", "--widths", "32,64,128", "--format", "json"
    )
    assert code in (0, 1), err
    return code, json.loads(out)


def test_muon_trains_on_tokens_for_the_widest_width_and_passes(mulint):
    code, report = coord(mulint, "make_optimizer")
    [note] = [n for n in report["notes"] if "mixes a matrix's entries" in n]
    # 2 tokens per unit of the widest width (128), at least 256: batch x 16-token sequences
    batch = int(note.split("trained on ")[1].split(" x ")[0])
    assert batch * 16 >= 256
    assert report["verdict"] == "pass" and code == 0, report["layers"]


def test_adam_keeps_the_small_batch_and_sp_still_fails(mulint):
    code, report = coord(mulint, "make_sp_optimizer")
    assert not any("mixes a matrix's entries" in n for n in report["notes"])
    assert report["verdict"] == "fail" and code == 1
