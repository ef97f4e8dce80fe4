"""MU311/MU312 messages in full (mulint.rules.spectral): the mutation run of the fast tier changed a
word of them, or the Adam-style path, or dropped the lr clause, unnoticed by tests that look for parts."""

from .cases import run
from .facts_builder import hidden, model, other


def message(code, *params, optimizer="Sophia"):
    [finding] = run(code, model(*params, optimizer=other(optimizer)))
    return finding.message


def test_an_orthogonalised_update_names_the_optimizer_not_its_adam_path():
    assert message("MU311", hidden("h.0.fc.weight", lr=0.0, update=0.5), optimizer="Muon") == (
        "Muon: hidden weights' updates (RMS→RMS operator norm) ∝ width^+0.50, measured on step 2, lr ∝ width^0; "
        "the spectral condition needs width^0: hidden parameters need lr ∝ width^-0.50 with Muon "
        "(too large: it blows up as width grows)"
    )


def test_without_a_learning_rate_read_the_message_has_no_lr_clause():
    assert message("MU311", hidden("h.0.fc.weight", update=0.5)) == (
        "Sophia: hidden weights' updates (RMS→RMS operator norm) ∝ width^+0.50, measured on step 2; "
        "the spectral condition needs width^0 (too large: it blows up as width grows)"
    )


def test_a_shrinking_update_says_too_small_in_full():
    assert message("MU312", hidden("h.0.fc.weight", lr=-1.0, update=-0.5)) == (
        "Sophia: hidden weights' updates (RMS→RMS operator norm) ∝ width^-0.50, measured on step 2, "
        "lr ∝ width^-1.00; the spectral condition needs width^0: hidden parameters need lr ∝ width^-0.50 "
        "with Sophia (too small: these weights stop learning as width grows)"
    )
