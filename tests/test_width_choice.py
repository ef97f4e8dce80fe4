"""Widths where the model really scales: a LLaMA-style FFN rounded up to a multiple of 256 does not
grow with width at small widths, so the analysis and the coordinate check move their widths up until
every width-derived dimension grows in proportion, and say so."""

import json

import pytest
from conftest import EXAMPLES, MODELS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LLAMA = MODELS / "rounded_ffn_llama.py"


def knob_of(target):
    from mulint.construct.width import find_knob
    from mulint.reading.targets import parse_target, resolve

    [item] = resolve(parse_target(str(target)), allow_exec=True)
    return find_knob(item.obj, item.label), item.label


def ffn(dim):  # written here, not imported: the test's own reading of the rounding rule
    return 256 * ((int(8 * dim / 3) + 255) // 256)


@pytest.mark.slow
def test_numeric_widths_move_up_until_the_ffn_grows_in_proportion():
    from mulint.analysis.numbers import choose_numeric_widths, numeric_knob

    knob, label = knob_of(f"{LLAMA}:make_llama")
    widths, notes = choose_numeric_widths(numeric_knob(knob), label)
    # Independently: at the chosen widths the FFN size doubles with the width, within rounding.
    sizes = [ffn(w) for w in widths]
    assert len(widths) >= 2 and all(
        abs(b / a / (wb / wa) - 1) <= 0.15 for (wa, a), (wb, b) in zip(zip(widths, sizes), zip(widths[1:], sizes[1:]))
    )
    assert min(widths) >= 256  # below 256 the rounding keeps the FFN at 256 or jumps it by 1.5x
    [note] = notes
    assert note.startswith("numeric widths moved up from 32, 64, 128 to ") and "256 -> 256 -> 512" in note


@pytest.mark.slow
def test_a_model_without_rounding_keeps_its_widths():
    from mulint.analysis.numbers import choose_numeric_widths, numeric_knob

    knob, label = knob_of(f"{EXAMPLES / 'nanogpt_mup.py'}:GPT")
    widths, notes = choose_numeric_widths(numeric_knob(knob), label)
    assert notes == [] and widths


def test_a_dimension_held_still_at_every_chosen_width_is_found():
    from mulint.construct.proportional import ShapeProbe

    knob, label = knob_of(f"{LLAMA}:make_llama")
    probe = ShapeProbe(knob, label)
    # At widths 32 and 64 the FFN is 256 at both, as if it did not depend on the width; further up
    # (4 x 64 = 256) it is 768: a width-derived size held still by the rounding.
    assert ffn(32) == ffn(64) == 256 and ffn(256) == 768
    problem = probe.off_proportion([32, 64])
    assert problem is not None and ("w_gate" in problem or "w_up" in problem or "w_down" in problem)
    assert probe.off_proportion([512, 1024]) is None


@pytest.mark.slow
def test_coord_widths_use_the_same_choice():
    from mulint.coordcheck.plan import choose_widths, limited

    knob, label = knob_of(f"{LLAMA}:make_llama")
    widths, notes = choose_widths(limited(knob), label, None)
    # base/2 .. 2x base is 128, 256, 512 (FFN 512, 768, 1536); three proportional widths above need
    # 1024, whose 32000-token table does not fit the coordinate check's budget: kept, and said.
    assert widths == [128, 256, 512]
    [note] = notes
    assert note.startswith("coordinate-check widths 128, 256, 512 kept though") and "768 -> 1536" in note


@pytest.mark.slow
@pytest.mark.parametrize(
    "optimizer, codes",
    [("make_optimizer", set()), ("make_sp_optimizer", {"MU301"}), ("make_planted_optimizer", {"MU301"})],
)
def test_rounded_ffn_mup_is_clean_and_its_sp_twin_is_flagged(mulint, optimizer, codes):
    code, out, err = mulint(
        "check", f"{LLAMA}:make_llama", "--optimizer", f"{LLAMA}:{optimizer}", "--no-cache", "--format", "json"
    )
    report = json.loads(out)
    found = {f["code"] for f in report["findings"]}
    assert found == codes, [f["message"] for f in report["findings"]]
    if codes:  # SP: every hidden matrix; planted: the down-projections alone
        [hidden] = [f for f in report["findings"] if "hidden" in f["message"]]
        expected = "layers.*.w_down.weight" if optimizer == "make_planted_optimizer" else "layers.*.wqkv.weight, "
        assert (
            hidden["parameter"] == expected
            if optimizer == "make_planted_optimizer"
            else hidden["parameter"].startswith(expected) and "w_down" in hidden["parameter"]
        )
    notes = [n for t in report["targets"] for n in t.get("notes") or []]
    assert any(n.startswith("numeric widths moved up") for n in notes)


@pytest.mark.slow  # torch.export at two widths: about 10 s on a shared CPU
def test_structure_widths_move_up_where_the_rounding_hides_a_growing_dimension(tmp_path):
    """Built at base width 32, the FFN is 256 at widths 32 and 64: on those two meta models the
    down-projection would look like an input layer (its fan-in fixed). The structure widths move up."""
    from mulint.analysis.structure import analyse_structure
    from mulint.reading.targets import parse_target, resolve

    small = tmp_path / "llama_base32.py"
    small.write_text(
        LLAMA.read_text()
        .replace("BASE = 256", "BASE = 32")
        .replace("= 32000, 4, 256", "= 128, 4, 256")
        .replace("n_layers: int = 4", "n_layers: int = 1")
    )
    [item] = resolve(parse_target(f"{small}:make_llama"), allow_exec=True)
    facts = analyse_structure(item).facts
    assert facts.base_width == 32 and facts.widths == [64, 128]
    assert [ffn(w) for w in facts.widths] == [256, 512]  # doubles with the width: in proportion
    roles = {p.name: p.roles for p in facts.params}
    assert roles["layers.0.w_down.weight"] == roles["layers.0.w_gate.weight"] == ("hidden",)
    assert any(n.startswith("structure widths moved up from 32, 64 to 64, 128") for n in facts.notes)
