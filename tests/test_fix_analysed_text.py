"""`--fix` and `--diff` act only on the text that was analysed: a file saved again while it was checked
(its findings' lines may now hold other code) is refused with exit 2, and nothing is written."""

import pytest
from test_fix_files import ATTENTION

import mulint.engine.checker as checker

pytestmark = pytest.mark.slow  # every test analyses a model in a worker

EDITED = "import math  # a line added while mulint ran: every line below moved down\n" + ATTENTION


@pytest.fixture
def saved_during_analysis(monkeypatch):
    """Save `path` with new text after the model workers ran, before the fixes are planned."""

    def arm(path, text):
        run = checker._run_model_jobs

        def then_save(*args, **kwargs):
            run(*args, **kwargs)
            path.write_text(text)

        monkeypatch.setattr(checker, "_run_model_jobs", then_save)

    return arm


@pytest.mark.parametrize("mode", ["--fix", "--diff"])
def test_a_file_changed_while_it_was_checked_is_not_fixed(mulint, tmp_path, saved_during_analysis, mode):
    path = tmp_path / "attention.py"
    path.write_text(ATTENTION)
    saved_during_analysis(path, EDITED)
    code, out, err = mulint("check", f"{path}:Attention", "--select", "MU201", "--no-cache", mode)
    assert code == 2
    assert "changed while it was checked" in err and "nothing was written" in err
    assert path.read_text() == EDITED  # neither the old line 14 nor the new one was rewritten


def test_an_unchanged_file_is_fixed(mulint, tmp_path):
    path = tmp_path / "attention.py"
    path.write_text(ATTENTION)
    code, out, err = mulint("check", f"{path}:Attention", "--select", "MU201", "--no-cache", "--fix")
    assert code == 0, out + err
    assert path.read_text() != ATTENTION and "scale=" in path.read_text()


def test_a_plain_check_of_a_file_changed_meanwhile_still_reports(mulint, tmp_path, saved_during_analysis):
    path = tmp_path / "attention.py"
    path.write_text(ATTENTION)
    saved_during_analysis(path, EDITED)
    code, out, _ = mulint("check", f"{path}:Attention", "--select", "MU201", "--no-cache")
    assert code == 1 and "MU201" in out and path.read_text() == EDITED
