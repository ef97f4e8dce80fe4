"""Rules read their accepted exponents from the facts' profile: a profile file that accepts a range
(low to high) is judged at both ends, just inside and just outside each, and the messages say the range."""

import pytest

from mulint.profiles import load_profile

from .cases import run
from .facts_builder import adam, embedding, hidden, model, output

RANGES = """\
name = "ranges"
exact = ["adam"]

[init]
input = [-0.5, 0.0]
vector = 0.0
hidden = [-1.0, -0.5]
output = -1.0

[update.adam]
input = 0.0
vector = 0.0
hidden = [-1.5, -1.0]
output = -1.0

[spectral]
input = 0.0
vector = 0.0
hidden = 0.0
output = 0.0
"""


@pytest.fixture(scope="module")
def ranges(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("profile") / "ranges.toml"
    path.write_text(RANGES, encoding="utf-8")
    load_profile(str(path))  # parsed once, as the settings merge does before a run
    return str(path)


@pytest.mark.parametrize(
    ("code", "init", "flagged"),
    [
        ("MU101", -0.5 + 0.24, False),  # just inside the high end
        ("MU101", -0.5 + 0.26, True),  # just outside it
        ("MU101", -1.0, False),  # the low end is no reason to flag as too large
        ("MU104", -1.0 - 0.24, False),
        ("MU104", -1.0 - 0.26, True),
        ("MU104", -0.5, False),  # the high end is no reason to flag as too small
    ],
)
def test_init_ranges_are_judged_at_each_end(ranges, code, init, flagged):
    found = run(code, model(hidden("h.0.fc.weight", init=init), profile=ranges))
    assert len(found) == flagged
    if flagged:
        words = "std ∝ fan_in^-½" if code == "MU101" else "std ∝ 1/fan_in"  # the end the weight is beyond
        assert found[0].message.endswith(f"; the ranges profile needs {words} (width^-1.00 to width^-0.50)")


@pytest.mark.parametrize(
    ("init", "flagged"),
    [(-0.5, None), (-0.74, None), (-0.76, "warning"), (0.24, None), (0.26, "error")],
)
def test_an_input_range(ranges, init, flagged):
    found = run("MU103", model(embedding("wte.weight", init=init), profile=ranges))
    assert [f.severity for f in found] == ([flagged] if flagged else [])
    if flagged == "warning":  # below the range: the low end is what the profile keeps
        assert "; the ranges profile needs width^-0.5, or the signal fades in wide models" in found[0].message
    if flagged == "error":
        assert found[0].message.endswith("; the ranges profile keeps it constant (width^0)")


@pytest.mark.parametrize(
    ("lr", "too"),
    [(-1.0, None), (-1.5, None), (-0.74, "large"), (-0.76, None), (-1.74, None), (-1.76, "small")],
)
def test_update_ranges_and_the_nearest_end_in_the_message_and_fix(ranges, lr, too):
    facts = model(
        hidden("h.0.fc.weight", lr=lr), output("head.weight", init=None, lr=-1.0), optimizer=adam(), profile=ranges
    )
    found = run("MU301", facts)
    if too is None:
        assert found == []
        return
    (finding,) = found
    nearest = -1.0 if too == "large" else -1.5
    assert f"µP needs width^{nearest:+.2f}" in finding.message and f"too {too}" in finding.message
    entry = next(e for e in finding.fix.edits[0].to_dict()["params"] if e["names"] == ["h.*.fc.weight"])
    assert entry["uses"][0]["target"] == nearest
