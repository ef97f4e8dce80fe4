"""Optimizers from pytorch-optimizer and heavyball, judged through the CLI on a µP pre-norm
transformer kept in ParameterDicts and run through functional calls (tests/models/prenorm_functional.py:
zero-initialised readout, so the readout's lr ∝ 1/width under Adam's rule).

Theory, for an optimizer that normalises each entry of its update (a sign, or an Adam-like ratio in
some basis): a batch gradient has rank at most the number of tokens, so the normalised update of a
hidden n×n weight has spectral norm ∝ n·lr, and so has the readout's in the RMS→RMS norm; the
entries of an embedding row or of a vector stay ±lr. The spectral condition then wants Adam's rule:
hidden and readout lr ∝ 1/width, embedding and vectors constant.

Exponents measured at widths 32, 64, 128 (RMS→RMS norm of the update; RMS of the entries for the
embedding and vectors), with one lr for every parameter / with Adam's rule:

    optimizer                              step  hidden          readout   embedding, vectors
    pytorch-optimizer Lion                 2     +0.88..+1.12    +1.00     0 (±0.01) both
                                                 / -0.12..+0.13  / 0
    pytorch-optimizer ScheduleFreeAdamW    2     +0.88..+1.13    +0.99     0 (±0.01) both
                                                 / -0.12..+0.12  / 0
    heavyball SOAP                         3     +0.84..+1.06    +1.14     0 (±0.01) both
                                                 / -0.16..+0.06  / +0.13

Schedule-free's y iterate (the weights the gradient is taken at) moves by lerp(y, z, c) plus
lr·(β1(1-c) - 1) times the Adam ratio: Θ(lr) per entry like Adam's, so its measured step is judged
like any other. Prodigy's step size d is estimated as it trains, one number for all parameters: the
step measured uses d ≈ d0, so its parameters are measured but not judged, and a note gives the
roles' exponents relative to each other.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import torch
from conftest import MODELS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODEL = MODELS / "prenorm_functional.py"
TARGET = f"{MODEL}:PreNormLM"
HIDDEN = {f"layers.*.{w}" for w in ("wq", "wk", "wv", "wo", "w_up", "w_down")}
EXPONENT = re.compile(r"∝ width\^([+-]\d+\.\d+|0)")


def check(mulint, factory: str, *args: str, widths: str = "32,64,128"):
    """(exit code, findings, notes) of `mulint check` with the model file's optimizer ``factory``."""
    code, out, err = mulint(
        "check",
        TARGET,
        "--optimizer",
        f"{MODEL}:{factory}",
        "--widths",
        widths,
        "--no-cache",
        "--format",
        "json",
        *args,
    )
    assert code in (0, 1), err
    report = json.loads(out)
    assert report["errors"] == [], report["errors"]
    [target] = [t for t in report["targets"] if t["target"] == TARGET]
    return code, report["findings"], target["notes"]


def by_code(findings) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for f in findings:
        found.setdefault(f["code"], set()).update(f["parameter"].split(", "))
    return found


def exponent_of(finding) -> float:
    """The measured exponent a finding states (the first `∝ width^x` of its message)."""
    return float(EXPONENT.search(finding["message"])[1])


def constructor_lines(factory: str, cls: str) -> range:
    """The lines of the call that builds ``cls`` in the model file's ``factory``."""
    tree = ast.parse(MODEL.read_text())
    [function] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == factory]
    [call] = [
        n
        for n in ast.walk(function)
        if isinstance(n, ast.Call) and (getattr(n.func, "id", None) == cls or getattr(n.func, "attr", None) == cls)
    ]
    return range(call.lineno, call.end_lineno + 1)


def assert_at_the_users_line(findings, factory: str, cls: str) -> None:
    lines = constructor_lines(factory, cls)
    for f in findings:
        assert Path(f["path"]).resolve() == MODEL.resolve() and f["line"] in lines, (f["path"], f["line"], lines)


def assert_too_large_like_adam(findings, cls: str) -> None:
    """MU311 on the hidden weights and the readout, each ∝ width^+1; nothing on the embedding or vectors."""
    assert by_code(findings) == {"MU311": HIDDEN | {"readout"}}, by_code(findings)
    for f in findings:
        assert f["message"].startswith(f"{cls}:") and f["severity"] == "error"
        assert 0.75 <= exponent_of(f) <= 1.25, f["message"]
        assert "need lr ∝ width^-1" in f["message"], f["message"]


# pytorch-optimizer's Lion is in the Adam family: the exact lr table (MU301) judges it under µP,
# its measured update (MU311) under the spectral profile. Both must say the same.


@pytest.mark.slow
def test_lion_with_one_lr_grows_with_width_by_its_lr_table_and_by_its_measured_update(mulint):
    pytest.importorskip("pytorch_optimizer")
    code, findings, _ = check(mulint, "lion_one_lr", "--select", "MU3", "--profile", "spectral")
    assert code == 1
    assert_too_large_like_adam(findings, "Lion")
    assert all("measured on step 2" in f["message"] for f in findings)
    assert_at_the_users_line(findings, "lion_one_lr", "Lion")

    code, findings, _ = check(mulint, "lion_one_lr", "--select", "MU3")
    assert code == 1 and by_code(findings) == {"MU301": HIDDEN | {"readout"}}, by_code(findings)
    assert_at_the_users_line(findings, "lion_one_lr", "Lion")


@pytest.mark.slow
def test_lion_with_adams_rule_is_clean_by_its_measured_update(mulint):
    pytest.importorskip("pytorch_optimizer")
    # every rule, not only the optimizer's: the model is µP by hand
    code, findings, notes = check(mulint, "lion_mup", "--profile", "spectral")
    assert (code, findings) == (0, []), findings
    # the key bias, whose gradient softmax cancels, is named, not judged
    assert any("no gradient at step 2" in n and "layers.0.bk" in n for n in notes), notes


@pytest.mark.slow
def test_schedule_free_adamw_is_judged_by_its_measured_update(mulint):
    pytest.importorskip("pytorch_optimizer")
    code, findings, _ = check(mulint, "schedule_free_one_lr", "--select", "MU3")
    assert code == 1
    assert_too_large_like_adam(findings, "ScheduleFreeAdamW")
    assert_at_the_users_line(findings, "schedule_free_one_lr", "ScheduleFreeAdamW")

    # every rule under the default profile, which measures ScheduleFreeAdamW (no lr table)
    code, findings, notes = check(mulint, "schedule_free_mup")
    assert (code, findings) == (0, []), findings
    assert any("optimizer ScheduleFreeAdamW" in n and "judged by the update it measurably makes" in n for n in notes), (
        notes
    )


def roles_in_note(notes, cls: str) -> dict[str, float]:
    """role -> exponent, from the note on an optimizer that sets its own step size."""
    [note] = [n for n in notes if n.startswith(f"update sizes: {cls} (d = ")]
    assert "MU311/MU312 do not judge them" in note, note
    return {role: float(value) for role, value in re.findall(r"(\w+) width\^([+-]\d+\.\d+|0)", note)}


@pytest.mark.slow
@pytest.mark.parametrize(
    "factory, expected",
    [
        # lr 1 for everything, as Prodigy is used: hidden and readout grow against embedding and vectors
        ("prodigy", {"input": 0.0, "hidden": 1.0, "output": 1.0, "vector": 0.0}),
        # per-group lrs written for µP, hidden group first: pytorch-optimizer steps every group with the
        # first group's lr, so the embedding and the vectors shrink with the hidden weights' 1/width
        ("prodigy_groups", {"input": -1.0, "hidden": 0.0, "output": 0.0, "vector": -1.0}),
    ],
)
def test_prodigy_is_measured_but_not_judged_and_the_note_says_why(mulint, factory, expected):
    pytest.importorskip("pytorch_optimizer")
    code, findings, notes = check(mulint, factory, "--select", "MU3")
    # at the measured step d is still about d0: no verdict on the updates of later steps
    assert not [f for f in findings if f["code"] in ("MU311", "MU312")], findings
    roles = roles_in_note(notes, "Prodigy")
    assert roles.keys() == expected.keys() and all(abs(roles[r] - e) <= 0.25 for r, e in expected.items()), roles
    assert any("optimizer Prodigy" in n and "are measured, not judged" in n for n in notes), notes


# heavyball's SOAP sets up its preconditioner on step 1 and moves no parameter; so does
# pytorch-optimizer's SOAP. Measured on step 2, its first real step, this model (zero readout) had a
# gradient on its readout only, every other parameter "got no gradient"; the same model with a
# readout multiplier instead had hidden exponents spread over -0.72..+0.85 at one lr, from a
# preconditioner made from that very gradient. mulint now takes warm steps until the optimizer has
# moved, and measures step 3, where the update is an Adam ratio in a rotated basis and scales as
# Adam's. Trained with cross-entropy on a fresh batch each step at widths 32-256, its hidden
# exponents over steps 3-16 stay +0.5..+0.9 at one lr and -0.1..-0.45 with Adam's rule (torch's
# AdamW: +0.75..+1.1 and -0.3..+0.1).
#
# Its vectors, biases included, are stepped per entry (precondition_1d off): exponent 0 (±0.01), as
# Adam's. The MU312 once seen on a bias came from a key bias, whose gradient softmax cancels
# (rounding only): heavyball sets .grad to None in its step, so the gradient was not read and the
# update of normalised rounding (∝ width^-1.79 on step 2 above) was judged. The gradient is now read
# before the step: the key bias is named in the no-gradient note, not judged.


@pytest.mark.slow
def test_heavyball_soap_with_one_lr_grows_like_adam_once_its_preconditioner_is_set_up(mulint):
    pytest.importorskip("heavyball")
    code, findings, notes = check(mulint, "soap_one_lr", "--select", "MU3")
    assert code == 1
    assert_too_large_like_adam(findings, "SOAP")
    assert all("measured on step 3" in f["message"] for f in findings)
    assert_at_the_users_line(findings, "soap_one_lr", "SOAP")
    assert any("measured on step 3, after 2 warm steps: SOAP moved no parameter at step 1" in n for n in notes)
    assert any("no gradient at step 3" in n and "layers.0.bk" in n and "layers.1.bk" in n for n in notes), notes


@pytest.mark.slow
def test_heavyball_soap_with_adams_rule_is_clean(mulint):
    pytest.importorskip("heavyball")
    code, findings, _ = check(mulint, "soap_mup", "--select", "MU3")
    assert (code, findings) == (0, []), findings


# The measurement's handling of such optimizers, on toy ones (no package needed).


class _SignAfterSetUp(torch.optim.Optimizer):
    """Moves nothing on its first step (it sets up its state, as SOAP does), then a sign update;
    clears .grad in its step, as heavyball does."""

    def __init__(self, params, lr=1e-3):
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if self.state[p].setdefault("seen", False):
                    p.add_(p.grad.sign(), alpha=-group["lr"])
                self.state[p]["seen"] = True
                p.grad = None


def _warmed(make, widths=(8, 16)):
    from mulint.analysis.training import Training
    from mulint.analysis.update_numbers import UpdateNumbers
    from mulint.analysis.updates import warm

    numbers = UpdateNumbers(exact_families=())
    for width in widths:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.Linear(width, 2))
        optimizer = make(model)
        judged = {id(p) for p in model.parameters()}
        training = Training(model, [optimizer], loss=lambda out: out.square().mean(), dropout=False)
        warm(training, (torch.randn(3, 4),), {}, judged, numbers)
    return numbers


@pytest.mark.slow
def test_an_optimizer_that_sets_up_its_state_on_step_1_is_warmed_until_it_moves():
    numbers = _warmed(lambda m: _SignAfterSetUp(m.parameters()))
    assert (numbers.warm_steps, numbers.skipped) == (2, "_SignAfterSetUp")
    numbers = _warmed(lambda m: torch.optim.SGD(m.parameters(), lr=0.1))
    assert (numbers.warm_steps, numbers.skipped) == (1, "")
    # one that never moves stops at the cap
    from mulint.analysis.update_numbers import MAX_WARM_STEPS

    assert _warmed(lambda m: torch.optim.SGD(m.parameters(), lr=0.0)).warm_steps == MAX_WARM_STEPS


@pytest.mark.slow
def test_the_gradient_is_the_one_the_optimizer_was_given_though_it_clears_grad():
    from mulint.analysis.training import Training

    model = torch.nn.Linear(4, 3)
    training = Training(model, [_SignAfterSetUp(model.parameters())], loss=lambda out: out.sum(), dropout=False)
    grads = training.step((torch.randn(2, 4),), {}, grads=True)
    assert all(p.grad is None for p in model.parameters())
    assert grads[id(model.weight)] > 0 and grads[id(model.bias)] == pytest.approx(2.0)  # d(sum)/d(bias): 2 rows


def test_a_self_tuned_optimizers_parameters_are_measured_not_judged():
    from mulint.analysis.update_facts import update_facts
    from mulint.analysis.update_numbers import UpdateNumbers
    from mulint.facts import ParamFacts, ParamUse

    def param(name, role):
        use = ParamUse(
            op="linear",
            kind="contraction",
            role=role,
            fan_in=64,
            fan_out=64,
            fan_in_infinite=True,
            fan_out_infinite=True,
            node="n",
        )
        return ParamFacts(name=name, shape=(64, 64), shapes={}, infinite_dims=(0, 1), uses=[use])

    params = [param("h", "hidden"), param("v", "vector")]
    numbers = UpdateNumbers(
        exact_families=(),
        widths=[32, 64, 128],
        step=2,
        norms={"h": {0: {32: 1.0, 64: 2.0, 128: 4.0}}, "v": {0: {32: 1.0, 64: 1.0, 128: 1.0}}},
        self_tuned=["Prodigy (d = 1e-06 after step 2, from d0 = 1e-06)"],
        self_tuned_params={"h", "v"},
    )
    notes: list[str] = []
    update_facts(numbers, params, notes, "f")
    assert all(u.update_exponent is None for p in params for u in p.uses)
    assert all(p.update_self_tuned and p.update_step == 2 for p in params)
    [note] = notes
    assert note.startswith("update sizes: Prodigy (d = 1e-06") and "hidden width^+1.00, vector width^0" in note
