"""How measured update norms become facts and notes (mulint.analysis.update_facts), on plain numbers:
the cases the mutation run of the fast tier left alive. Milliseconds each; outside tests/unit only
because the module imports torch through the batch it measures on."""

import pytest

from mulint.analysis.update_facts import update_facts
from mulint.analysis.update_numbers import UpdateNumbers, fitted
from mulint.facts import ParamFacts, ParamUse

WIDTHS = [32, 64, 128]


def use(role: str, multiplier_exponent: float = 0.0) -> ParamUse:
    return ParamUse(
        op="linear",
        kind="contraction",
        role=role,
        fan_in=64,
        fan_out=64,
        fan_in_infinite=True,
        fan_out_infinite=True,
        node="linear",
        multiplier_exponent=multiplier_exponent,
    )


def param(name: str, *uses: ParamUse) -> ParamFacts:
    return ParamFacts(name=name, shape=(64, 64), shapes={}, infinite_dims=(0, 1), uses=list(uses))


def power(exponent: float, widths=WIDTHS) -> dict[int, float]:
    return {w: 0.01 * (w / 32) ** exponent for w in widths}


def numbers(**kw) -> UpdateNumbers:
    return UpdateNumbers(widths=list(WIDTHS), **kw)


def run(n: UpdateNumbers, params: list[ParamFacts], optimizer: str = "AdamW") -> list[str]:
    notes: list[str] = []
    update_facts(n, params, notes, optimizer)
    return notes


def test_the_exponent_is_the_fit_plus_the_uses_multiplier_and_the_norms_are_kept():
    p = param("h.weight", use("hidden"), use("output", multiplier_exponent=-1.0))
    n = numbers(norms={"h.weight": {0: power(0.5), 1: power(0.25)}}, settings={"h.weight": "adjust_lr_fn='original'"})
    assert run(n, [p]) == []
    assert p.uses[0].update_exponent == pytest.approx(0.5) and p.uses[1].update_exponent == pytest.approx(-0.75)
    assert p.uses[0].update_norm == power(0.5) and p.uses[0].update_norm is not n.norms["h.weight"][0]
    assert p.update_step == n.step and p.update_settings == "adjust_lr_fn='original'"
    assert not (p.update_no_grad or p.update_self_tuned or p.update_unorthogonalised or p.update_per_coordinate)


def test_a_parameter_measured_nowhere_keeps_no_step_and_the_flags_come_from_their_own_sets():
    quiet, silent = param("q.weight", use("hidden")), param("s.weight", use("hidden"))
    n = numbers(
        norms={"q.weight": {0: power(0.0)}},
        no_grad={"s.weight"},
        unorthogonalised={"q.weight"},
        per_coordinate={"s.weight"},
        self_tuned_params=set(),
    )
    untouched = param("u.weight", use("hidden"))
    run(n, [quiet, silent, untouched])
    assert quiet.update_step == n.step and silent.update_step == n.step and untouched.update_step is None
    assert silent.update_no_grad and not quiet.update_no_grad
    assert quiet.update_unorthogonalised and not silent.update_unorthogonalised
    assert silent.update_per_coordinate and not quiet.update_per_coordinate
    assert untouched.uses[0].update_exponent is None and untouched.uses[0].update_norm == {}


@pytest.mark.parametrize(
    "by_width",
    [power(0.0, widths=[32, 64]), {32: 0.01, 64: 0.0, 128: 0.01}, {32: 0.01, 64: 0.01, 128: -0.01}],
    ids=["a width missing", "a zero norm", "a negative norm"],
)
def test_norms_missing_a_width_or_not_positive_are_kept_but_not_fitted(by_width):
    n = numbers(norms={"h.weight": {0: by_width}})
    assert fitted(n, by_width) is None
    p = param("h.weight", use("hidden"))
    run(n, [p])
    assert p.uses[0].update_norm == by_width and p.uses[0].update_exponent is None


def test_fitted_needs_every_width_and_fits_the_slope():
    n = numbers()
    assert fitted(n, power(-0.5)) == pytest.approx(-0.5)
    assert fitted(n, {32: 1.0, 64: 1.0, 128: 1.0, 256: 1.0}) is None  # a width the run did not measure


@pytest.mark.parametrize("again, judged", [(0.15, True), (0.16, False), (-0.15, True), (-0.16, False)])
def test_a_use_measured_again_is_judged_only_when_the_larger_batch_agrees(again, judged):
    p = param("h.weight", use("hidden"))
    n = numbers(norms={"h.weight": {0: power(0.5)}}, confirmed={("h.weight", 0): (0.0, again)}, batch="1024 tokens")
    run(n, [p])
    assert (p.uses[0].update_exponent is not None) is judged
    assert p.uses[0].update_norm == power(0.5)


def test_a_self_tuned_optimizers_parameters_are_measured_not_judged_and_their_roles_compared():
    emb, mid, out = param("e.weight", use("input")), param("h.weight", use("hidden")), param("o.weight", use("output"))
    n = numbers(
        norms={"e.weight": {0: power(0.0)}, "h.weight": {0: power(1.0)}, "o.weight": {0: power(0.5)}},
        self_tuned=["Prodigy (d = 1e-06)"],
        self_tuned_params={"e.weight", "h.weight", "o.weight"},
    )
    [note] = run(n, [emb, mid, out], "Prodigy")
    assert all(p.update_self_tuned and p.uses[0].update_exponent is None for p in (emb, mid, out))
    assert "Prodigy (d = 1e-06) sets its own step size d" in note
    assert "input width^0, hidden width^+1.00, output width^+0.50" in note and f"on step {n.step}" in note


def test_a_failed_step_says_so_and_touches_no_parameter():
    p = param("h.weight", use("hidden"))
    n = numbers(norms={"h.weight": {0: power(0.5)}}, failure="ValueError: no")
    assert run(n, [p], "Lion") == [
        "update sizes not measured: stepping Lion raised ValueError: no; MU311-MU313 do not judge the "
        "parameters it steps (nothing was measured to judge them by)"
    ]
    assert p.update_step is None and p.uses[0].update_norm == {} and p.uses[0].update_exponent is None


def test_parameters_without_gradient_are_counted_and_the_first_six_named():
    names = [f"p{i}" for i in range(7)]
    [note] = run(numbers(no_grad=set(names)), [param(n, use("hidden")) for n in names])
    assert note == (
        f"update sizes: 7 parameters got no gradient at step {UpdateNumbers().step} (not judged by MU31x): "
        "p0, p1, p2, p3, p4, p5, ..."
    )
    [six] = run(numbers(no_grad=set(names[:6])), [param(n, use("hidden")) for n in names[:6]])
    assert six.endswith("p0, p1, p2, p3, p4, p5")


def test_non_finite_updates_name_the_optimizer_and_at_most_six_parameters():
    names = [f"p{i}" for i in range(7)]
    [note] = run(numbers(not_finite=set(names)), [], "SGD")
    assert (
        note
        == f"update sizes: SGD made non-finite updates (inf or nan) at step {UpdateNumbers().step} for p0, p1, p2, p3, p4, p5, ..."
    )
    [few] = run(numbers(not_finite={"b", "a"}), [], "SGD")
    assert few.endswith("for a, b")


def test_the_notes_of_a_measurement_need_something_measured():
    n = numbers(zero_started=["h.weight"], skipped="SOAP", schedulers=["CosineAnnealingLR"], batch="1024 tokens")
    assert run(n, []) == [
        f"update sizes measured on step {n.step}, with CosineAnnealingLR stepped after each step: the lr of that step, not of later ones"
    ]
    n.norms = {"h.weight": {0: power(0.0)}}
    n.widths = [32, 64]
    n.step = 3
    notes = run(n, [param("h.weight", use("hidden"))])
    assert notes == [
        "update sizes measured on step 3 of a batch of 1024 tokens (optimizers that mix a matrix's entries: "
        "enough tokens that the gradient's rank is not capped by them)",
        "update sizes measured on step 3: h.weight started at exactly zero and left it only on the step named "
        "(no gradient reached it before), so more warm steps were taken",
        "update sizes fitted on 2 widths only ([32, 64]): rough",
        "update sizes measured on step 3, after 2 warm steps: SOAP moved no parameter at step 1 (it sets up "
        "its state first)",
        "update sizes measured on step 3, with CosineAnnealingLR stepped after each step: the lr of that step, "
        "not of later ones",
    ]


def test_the_batch_note_names_both_batches_and_the_uses_that_moved_with_the_larger_one():
    mid, out = param("h.weight", use("hidden")), param("o.weight", use("output"))
    n = numbers(
        norms={"h.weight": {0: power(0.5)}, "o.weight": {0: power(0.0)}},
        small_batch="16 tokens",
        batch="1024 tokens",
        larger_batch="2048 tokens",
        confirmed={("h.weight", 0): (0.5, 0.0), ("o.weight", 0): (0.0, 0.1), ("gone", 0): (0.25, float("nan"))},
    )
    [note] = run(n, [mid, out])
    assert note.startswith(
        f"update sizes measured on step {n.step} of a batch of 16 tokens (per-coordinate optimizers) and of "
        "1024 tokens (optimizers that mix a matrix's entries"
    )
    assert note.endswith(
        "; 3 near a verdict's edge measured again on 2048 tokens: 1 stable (judged on the larger batch), "
        "2 changed with the batch, so MU311/MU312 do not judge them: h.weight (hidden: width^+0.50, then width^0), "
        "gone (?: width^+0.25, then not measured)"
    )
    assert mid.uses[0].update_exponent is None and out.uses[0].update_exponent == pytest.approx(0.0)
