"""The transfer report: text table with each width's best lr marked, JSON round trip, the plot file."""

import json
import math

import pytest

from mulint.report.transfer_view import as_json, as_text
from mulint.sweep.result import TransferResult
from mulint.sweep.verdict import Curve, judge

GRID = (-12.0, -10.0, -9.0, -8.0, -6.0)


def result(best_of) -> TransferResult:
    curves = [
        Curve(w, GRID, tuple(tuple(2.0 + 0.1 * (x - best_of(w)) ** 2 + 0.01 * s for x in GRID) for s in range(3)))
        for w in (64, 128, 256)
    ]
    return TransferResult(
        target="m.py:Net",
        optimizer="AdamW",
        widths=[64, 128, 256],
        steps=100,
        seeds=3,
        device="cpu",
        task="a random sparse Markov language",
        curves=curves,
        verdict=judge(curves),
        trials=45,
        reused=5,
        diverged=2,
        rounds=2,
        shrunk=["blocks: 12 blocks -> 2"],
        notes=["a note"],
    )


def test_the_text_marks_each_widths_best_grid_point_and_says_the_verdict():
    text = as_text(result(lambda w: -6.0 - math.log2(w / 64)))
    lines = text.splitlines()
    assert lines[0].startswith("m.py:Net: transfer FAIL (widths 64, 128, 256; 100 steps; 3 seeds; AdamW; cpu)")
    rows = {l.split("  ")[0]: l for l in lines if l.startswith("width ")}
    assert "2.010*" in rows["width 64"].split()[-1]  # best at -6, the last column
    cells = rows["width 256"].split()[2:]
    assert cells[3].endswith("*") and sum(c.endswith("*") for c in cells) == 1  # -8: the fourth lr column
    assert "45 trials (5 from earlier runs, 2 diverged), 2 rounds" in text
    assert lines[-1].startswith("  try:") or "FAIL:" in lines[-1]
    assert "note: a note" in text and "blocks: 12 blocks -> 2" in text


def test_a_pass_gives_no_advice_and_json_round_trips():
    r = result(lambda w: -9.0)
    text = as_text(r)
    assert "PASS:" in text and "try:" not in text
    data = json.loads(as_json(r))
    assert data["verdict"]["status"] == "PASS"
    again = TransferResult.from_dict(data)
    assert again.verdict.optima == r.verdict.optima and again.curves == r.curves


def test_the_plot_is_written_whole(tmp_path):
    pytest.importorskip("matplotlib")
    from mulint.sweep.plot import save_plot

    path = tmp_path / "transfer.png"
    save_plot([result(lambda w: -6.0 - math.log2(w / 64)), result(lambda w: -9.0)], str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["transfer.png"]


def test_another_knob_is_named_in_every_sentence_and_the_json():
    from dataclasses import replace

    from mulint.sweep.verdict import judge

    base = result(lambda w: -6.0 - math.log2(w / 64))
    swept = replace(base, knob="output-multiplier", verdict=judge(base.curves, noun="output multiplier"))
    text = as_text(swept)
    assert "log2 output multiplier" in text and "best output multiplier (× the model's own) per width" in text
    assert "FAIL: the best output multiplier falls with width" in text
    assert " lr" not in text.replace("optimizer's own lr", "")  # no sentence still speaks of the lr
    data = json.loads(as_json(swept))
    assert data["knob"] == "output-multiplier"
    assert TransferResult.from_dict(data).knob == "output-multiplier"
