"""Measured-update rules MU311-MU313 on facts: an optimizer without a learning-rate table (a custom one,
Muon) judged by the update it makes, the spectral profile judging Adam too, Muon's Adam-style path,
and the tolerance edges (0.25) of "too large" and "too small"; MU313 judges its median exponent rounded
to a quarter, so its severity's edge lies between 0.37 (0.25: inside) and 0.38 (0.5: outside)."""

import pytest

from .cases import Invalid, Valid, judge_invalid, judge_valid, params, run
from .facts_builder import adam, dense_input, embedding, hidden, model, other, output, vector

INSIDE, OUTSIDE = 0.24, 0.26


def custom(*ps):
    """A custom optimizer (no learning-rate table), stepping every parameter given."""
    return model(*ps, optimizer=other("Sophia"))


def muon(*ps):
    """Moonlight's Muon: orthogonalised updates for matrices, an AdamW backup for what it marks."""
    return model(*ps, optimizer=other("Muon"))


VALID = {
    "MU311": [
        Valid(custom(hidden("h.0.fc.weight", lr=-0.5, update=0.0)), "spectral: hidden update Θ(1)"),
        Valid(custom(hidden("h.0.fc.weight", lr=-0.5, update=INSIDE)), "just inside"),
        Valid(custom(hidden("h.0.fc.weight", lr=0.0, update=None)), "not measured (unstable): not judged"),
        Valid(model(hidden("h.0.fc.weight", lr=0.0, update=1.0), optimizer=adam()), "Adam under µP: MU301's"),
        Valid(
            model(hidden("h.0.fc.weight", lr=-1.0, update=0.0), optimizer=adam(), profile="spectral"),
            "spectral profile: Adam with lr ∝ 1/width",
        ),
        Valid(muon(output("head.weight", lr=0.0, update=1.0)), "Muon on a readout: MU313's"),
        Valid(model(hidden("h.0.fc.weight", lr=0.0, update=1.0)), "no optimizer"),
        Valid(
            model(embedding("wte.weight", lr=0.0, update=-0.5), optimizer=other("Sophia"), profile="u-mup"),
            "u-µP accepts an embedding update ∝ width^-½",
        ),
    ],
    "MU312": [
        Valid(custom(hidden("h.0.fc.weight", lr=-0.5, update=-INSIDE)), "just inside"),
        Valid(custom(vector("ln.weight", lr=0.0, update=0.0)), "vector entries Θ(1)"),
    ],
    "MU313": [
        Valid(muon(hidden("h.0.fc.weight", lr=0.0, update=0.0)), "Muon on hidden matrices"),
        Valid(
            muon(
                hidden("h.0.fc.weight", lr=0.0, update=0.0),
                embedding("wte.weight", lr=0.0, update=0.0, update_unorthogonalised=True),
                output("head.weight", lr=0.0, update=0.0, update_per_coordinate=True),
            ),
            "embedding and readout on Muon's Adam-style path",
        ),
        Valid(muon(dense_input("inp.weight", lr=0.0, update=0.0)), "a dense first layer is a matrix like any"),
        Valid(muon(embedding("wte.weight", lr=0.0)), "not measured: no finding rests on a class name"),
        Valid(custom(embedding("wte.weight", lr=0.0, update=0.0)), "not Muon"),
    ],
}

INVALID = {
    "MU311": [
        Invalid(
            custom(hidden("h.0.fc.weight", lr=0.0, update=0.5)),
            "a per-coordinate update with a constant lr",
            "h.*.fc.weight",
            60,
            says=(
                "Sophia: hidden weights' updates (RMS→RMS operator norm) ∝ width^+0.50, measured on step 2, lr ∝ width^0",
                "the spectral condition needs width^0: hidden parameters need lr ∝ width^-0.50 with Sophia",
                "(too large: it blows up as width grows)",
            ),
        ),
        Invalid(
            custom(hidden("h.0.fc.weight", lr=0.0, update=OUTSIDE)),
            "just outside",
            "h.*.fc.weight",
            60,
            says=("∝ width^+0.25", "need lr ∝ width^-0.25"),
        ),
        Invalid(
            model(hidden("h.0.fc.weight", lr=0.0, update=1.0), optimizer=adam(), profile="spectral"),
            "spectral profile: Adam with one lr",
            "h.*.fc.weight",
            60,
            says=("AdamW: hidden weights' updates", "need lr ∝ width^-1.00 with AdamW"),
        ),
        Invalid(
            muon(vector("ln.weight", lr=0.0, update=0.5, update_unorthogonalised=True)),
            "Muon's Adam-style path on a vector",
            "ln.weight",
            60,
            says=(
                "Muon (its Adam-style path, not orthogonalised): vectors' update entries ∝ width^+0.50",
                "with Muon's Adam-style path",
            ),
        ),
        Invalid(
            muon(hidden("h.0.fc.weight", lr=0.0, update=0.5, update_settings="adjust_lr_fn='match_rms_adamw'")),
            "Muon's orthogonalised hidden update with a shape-dependent setting",
            "h.*.fc.weight",
            60,
            says=("Muon (adjust_lr_fn='match_rms_adamw'): hidden weights' updates",),
        ),
        Invalid(
            model(embedding("wte.weight", lr=0.0, update=0.5), optimizer=other("Sophia"), profile="u-mup"),
            "u-µP: an embedding update above the range aims at its high end",
            "wte.weight",
            60,
            says=("input parameters need lr ∝ width^-0.50 with Sophia",),
        ),
        Invalid(
            custom(hidden("h.0.fc.weight", update=0.5)),
            "no learning rate read: no lr advice",
            "h.*.fc.weight",
            60,
            says_not=("lr ∝", "need lr"),
        ),
    ],
    "MU312": [
        Invalid(
            model(embedding("wte.weight", lr=-1.0, update=-1.0), optimizer=other("Sophia"), profile="u-mup"),
            "u-µP: the embedding's accepted range is [-0.5, 0]: its low end is the aim",
            "wte.weight",
            60,
            severity="warning",
            says=("the spectral condition needs width^-0.50 to width^0", "input parameters need lr ∝ width^-0.50"),
        ),
        Invalid(
            custom(hidden("h.0.fc.weight", lr=-1.0, update=-0.5)),
            "a hidden update shrinking like 1/sqrt(width)",
            "h.*.fc.weight",
            60,
            severity="warning",
            says=("∝ width^-0.50", "need lr ∝ width^-0.50", "too small: these weights stop learning"),
        ),
        Invalid(
            custom(embedding("wte.weight", lr=-1.0, update=-1.0)),
            "embedding entries shrinking",
            "wte.weight",
            60,
            severity="warning",
            says=("Sophia: embedding update entries ∝ width^-1.00", "input parameters need lr ∝ width^0 with Sophia"),
        ),
        Invalid(
            custom(hidden("h.0.fc.weight", lr=-0.5, update=-OUTSIDE)),
            "just outside",
            "h.*.fc.weight",
            60,
            severity="warning",
        ),
    ],
    "MU313": [
        Invalid(
            muon(embedding("wte.weight", lr=0.0, update=0.0), hidden("h.0.fc.weight", lr=0.0, update=0.0)),
            "Muon orthogonalises an embedding table",
            "wte.weight",
            60,
            severity="warning",
            says=(
                "Muon steps an embedding table: Muon orthogonalises the update as for a hidden map",
                "measured on step 2, its update ∝ width^0; give embeddings",
            ),
            says_not=("where the spectral condition needs",),
        ),
        Invalid(
            muon(output("head.weight", lr=0.0, update=0.5)),
            "Muon on a readout whose update grows: an error",
            "head.weight",
            60,
            says=("a readout matrix", "its update ∝ width^+0.50 where the spectral condition needs width^0"),
        ),
        Invalid(
            muon(output("head.weight", lr=0.0, update=0.38)),
            "just outside once rounded to a quarter (0.5): an error",
            "head.weight",
            60,
        ),
        Invalid(
            muon(output("head.weight", lr=0.0, update=0.37)),
            "just inside once rounded to a quarter (0.25): a warning",
            "head.weight",
            60,
            severity="warning",
            says_not=("where the spectral condition needs",),
        ),
        Invalid(
            muon(output("head.weight", lr=0.0, update=-0.5)),
            "a readout update that shrinks: a warning that names the condition",
            "head.weight",
            60,
            severity="warning",
            says=("where the spectral condition needs width^0",),
        ),
    ],
}


@pytest.mark.parametrize(("code", "case"), params(VALID))
def test_valid(code, case):
    judge_valid(code, case)


@pytest.mark.parametrize(("code", "case"), params(INVALID))
def test_invalid(code, case):
    judge_invalid(code, case)


def test_grouped_by_role_and_by_the_optimizer_line():
    facts = custom(
        hidden("h.0.fc.weight", lr=0.0, update=0.5),
        hidden("h.11.fc.weight", lr=0.0, update=0.5),
        output("head.weight", lr=0.0, update=0.5),
    )
    found = {f.parameter: f for f in run("MU311", facts)}
    assert sorted(found) == ["h.*.fc.weight", "head.weight"]
    assert "output weights' updates" in found["head.weight"].message


def test_the_message_takes_the_median_of_a_group():
    facts = custom(*(hidden(f"h.{i}.fc.weight", lr=0.0, update=u) for i, u in enumerate((0.5, 0.5, 1.0))))
    (finding,) = run("MU311", facts)
    assert "∝ width^+0.50" in finding.message and "need lr ∝ width^-0.50" in finding.message
