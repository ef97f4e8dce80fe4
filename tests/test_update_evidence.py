"""Measured updates that do not depend on the measurement batch, and no MU311-MU313 finding without a
measurement behind it.

The model (tests/models/rms_matched_muon.py) is µP with a Muon that rescales its orthogonalised
update to a fixed RMS measured from the update itself: flat on a batch of many tokens, as in
training, but growing like width^+½ on a handful of tokens, whose gradients have the same small rank
at every width. Its Newton-Schulz step is torch.compile'd at import, as speedrun code does.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import MODELS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODEL = MODELS / "rms_matched_muon.py"
WIDTHS = [32, 64, 128]


# --- an independent measurement: ΔW's RMS→RMS norm, computed here on a batch of our own ----------


def _rms_to_rms_slope(tokens: int, widths=(32, 128)) -> float:
    """Slope in log-log of ‖ΔW‖₂·sqrt(fan_in/fan_out) of the first up-projection on the third step of
    the µP setup, trained on ``tokens`` random token ids with a cross-entropy against random labels."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rms_matched_muon_direct", MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    norms = []
    with torch.compiler.set_stance("force_eager"):
        for width in widths:
            torch.manual_seed(1)
            model = module.make_model(width)
            optimizers = module.make_optimizer(model)
            ids = torch.randint(0, 512, (tokens // 8, 8), generator=torch.Generator().manual_seed(2))
            labels = torch.randint(0, 512, (tokens // 8, 8), generator=torch.Generator().manual_seed(3))
            for _ in range(3):
                before = model.ups[0].detach().clone()
                loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), labels.flatten())
                for opt in optimizers:
                    opt.zero_grad()
                loss.backward()
                for opt in optimizers:
                    opt.step()
            delta = model.ups[0].detach() - before  # stored (in, out): fan_in rows, fan_out columns
            fan_in, fan_out = delta.shape
            norms.append(float(torch.linalg.matrix_norm(delta, ord=2)) * math.sqrt(fan_in / fan_out))
    return math.log(norms[1] / norms[0]) / math.log(widths[1] / widths[0])


@pytest.mark.slow
def test_the_independent_measurement_is_flat_on_many_tokens_and_grows_on_few():
    assert abs(_rms_to_rms_slope(256)) < 0.15
    assert _rms_to_rms_slope(16) > 0.3  # the batch dependence the analysis must not fall for


# --- the analysis -----------------------------------------------------------------------------------

_RUNS: dict = {}


def analysed(model: str = "make_model", optimizer: str = "make_optimizer"):
    """(findings, target entry, resolved target) of the worker's analysis, run in this process."""
    key = (model, optimizer)
    if key not in _RUNS:
        from mulint.engine.jobs import analyse_target
        from mulint.engine.options import JobOptions
        from mulint.reading.functions import FunctionRef
        from mulint.reading.targets import parse_target, resolve

        [target] = resolve(parse_target(f"{MODEL}:{model}"), allow_exec=True)
        options = JobOptions(widths=tuple(WIDTHS), optimizer=FunctionRef.parse(f"{MODEL}:{optimizer}"))
        findings, entry = analyse_target(target, options)
        _RUNS[key] = findings, entry, target
    return _RUNS[key]


@pytest.mark.slow
def test_globally_normalised_muon_in_mup_is_flat_and_clean():
    from mulint.analysis.model import analyse_model
    from mulint.engine.jobs import eager
    from mulint.reading.functions import FunctionRef
    from mulint.reading.targets import parse_target, resolve

    [target] = resolve(parse_target(f"{MODEL}:make_model"), allow_exec=True)
    with eager():
        facts = analyse_model(target, widths=WIDTHS, optimizer=FunctionRef.parse(f"{MODEL}:make_optimizer")).facts
    hidden = [u.update_exponent for p in facts.params for u in p.uses if u.role == "hidden"]
    assert len(hidden) == 4 and all(e is not None and abs(e) < 0.15 for e in hidden), hidden
    note = next(n for n in facts.notes if n.startswith("update sizes measured on step"))
    assert "256 tokens (optimizers that mix" in note, note
    findings, _, _ = analysed()
    assert not [f for f in findings if f.code.startswith("MU3")], [f.message for f in findings]


@pytest.mark.slow
def test_the_same_muon_at_one_lr_is_still_too_large_and_confirmed_on_more_tokens():
    findings, entry, _ = analysed(optimizer="make_optimizer_constant_lr")
    [finding] = [f for f in findings if f.code == "MU311"]
    assert finding.parameter == "ups.0, ups.1, downs.0, downs.1"
    assert "∝ width^+0.50" in finding.message and "need lr ∝ width^-0.50" in finding.message
    note = next(n for n in entry["notes"] if n.startswith("update sizes measured on step"))
    assert "measured again on 512 tokens: 4 stable" in note, note


@pytest.mark.slow
def test_the_compiled_newton_schulz_step_runs_eagerly():
    _, _, target = analysed()
    assert target.module.COMPILED == []  # the analysis never compiled it
    target.module.newton_schulz(torch.randn(8, 16))  # outside the analysis torch.compile does compile it
    assert len(target.module.COMPILED) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, expected",
    [
        ("make_model", set()),  # zero-initialised readout
        ("make_scaled_readout", set()),  # readout init 1/width
        ("make_sp_readout", {("MU102", "unembed"), ("MU301", "unembed")}),
    ],
)
def test_readouts_beside_muon(model, expected):
    findings, entry, _ = analysed(model=model)
    assert {(f.code, f.parameter) for f in findings} == expected


# --- pieces -------------------------------------------------------------------------------------------


def test_per_coordinate_optimizers_are_told_apart_by_a_step_not_by_a_name():
    from mulint.analysis.updates import per_coordinate

    class Sign(torch.optim.Optimizer):  # a name that says nothing
        def __init__(self, params):
            super().__init__(params, dict(lr=0.1))

        def step(self):
            for g in self.param_groups:
                for p in g["params"]:
                    p.data.add_(p.grad.sign(), alpha=-g["lr"])

    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 16), torch.nn.Linear(16, 4))

    def make(m):
        return [
            torch.optim.Muon([m[1].weight], lr=0.02),
            Sign([m[0].weight, m[2].weight]),
            torch.optim.AdamW([m[0].bias, m[1].bias, m[2].bias]),
        ]

    assert per_coordinate(make, model, (), ("adam", "sgd")) == {"0.weight", "2.weight"}


def test_the_large_batch_holds_enough_tokens_and_repeats_the_users_inputs(tmp_path):
    from types import SimpleNamespace

    from mulint.analysis.update_batch import MeasurementBatch, positions, tokens_for

    assert tokens_for([32, 64, 128], widest_output=512) == 256
    assert tokens_for([256, 512], widest_output=50_000) == 640  # 2 x 512 would hold too many logits
    assert tokens_for([4096], widest_output=128_000) == 250  # the logits' memory caps it

    model = torch.nn.Sequential(torch.nn.Embedding(100, 16), torch.nn.Linear(16, 16))
    synthesised = MeasurementBatch(SimpleNamespace(module=SimpleNamespace()), 0, tokens=300)
    (ids,), _ = synthesised(model)
    assert ids.shape[1] == 8 and ids.numel() >= 300 and ids.dtype == torch.long
    (small,), _ = synthesised(model, large=False)
    assert small.numel() == 16

    def example_inputs():
        return torch.randint(0, 100, (2, 5)), torch.randn(2, 5, 3)

    user = MeasurementBatch(SimpleNamespace(module=SimpleNamespace(example_inputs=example_inputs)), 0, tokens=40)
    (ids, feats), _ = user(model)
    assert ids.shape == (8, 5) and feats.shape == (8, 5, 3) and positions(((ids, feats), {})) == 40
    assert not torch.equal(ids[:2], ids[2:4])  # four draws, not one repeated
    assert user.describe() == "40 tokens (the file's example_inputs, repeated)"


@pytest.mark.slow
def test_a_matrix_still_zero_after_the_warm_step_gets_more_warm_steps():
    from mulint.analysis.training import Training
    from mulint.analysis.update_numbers import UpdateNumbers
    from mulint.analysis.updates import warm

    # a zero readout behind a zero hidden matrix: the readout leaves zero on step 1 (the bias feeds
    # it), the hidden matrix only on step 2, once the readout passes it a gradient
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 4, bias=False),
    )
    torch.nn.init.zeros_(model[2].weight)
    torch.nn.init.constant_(model[2].bias, 0.1)
    torch.nn.init.zeros_(model[4].weight)
    muon = torch.optim.Muon([model[0].weight], lr=0.02)
    adam = torch.optim.AdamW([model[2].weight, model[4].weight], lr=1e-3)
    numbers = UpdateNumbers(exact_families=())
    x = torch.randn(64, 8)
    training = Training(model, [muon, adam], loss=lambda out: out.pow(2).mean() + out.sum(), dropout=False)
    warm(training, (x,), {}, {id(model[0].weight)}, numbers)
    assert numbers.warm_steps == 2 and numbers.zero_started == ["2.weight (step 2)"]

    torch.nn.init.constant_(model[2].weight, 0.1)  # only the readout starts at zero: it leaves on step 1
    torch.nn.init.zeros_(model[4].weight)
    numbers = UpdateNumbers(exact_families=())
    muon, adam = torch.optim.Muon([model[0].weight], lr=0.02), torch.optim.AdamW([model[4].weight], lr=1e-3)
    training = Training(model, [muon, adam], loss=lambda out: out.pow(2).mean() + out.sum(), dropout=False)
    warm(training, (x,), {}, {id(model[0].weight)}, numbers)
    assert numbers.warm_steps == 1 and numbers.zero_started == []


UNMEASURABLE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width=64, vocab=64):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.hidden = nn.Linear(width, width, bias=False)
        self.head = nn.Linear(width, vocab, bias=False)
        nn.init.zeros_(self.head.weight)
        self.mult = 64 / width

    def forward(self, ids):
        return self.head(torch.relu(self.hidden(self.embed(ids)))) * self.mult


class MuonWithAdam(torch.optim.Optimizer):
    """Its step fails on this machine, as a compiled step past its recompile limit does."""

    def __init__(self, groups):
        super().__init__(groups, dict(lr=0.02))

    def step(self):
        raise RuntimeError("recompile limit reached")


def make_optimizer(model):
    return MuonWithAdam([dict(params=[model.hidden.weight], use_muon=True),
                         dict(params=[model.embed.weight, model.head.weight], use_muon=False, lr=1e-3)])
'''


@pytest.mark.slow
def test_an_optimizer_whose_step_cannot_be_measured_gets_no_finding_and_fails_its_target(mulint, tmp_path):
    """No MU313 from the class name (its embedding and readout take its Adam path), and never a silent
    pass: the step's failure is the target's error, naming the step."""
    path = tmp_path / "unmeasurable.py"
    path.write_text(UNMEASURABLE)
    code, out, err = mulint(
        "check",
        f"{path}:Net",
        "--optimizer",
        f"{path}:make_optimizer",
        "--widths",
        "32,64,128",
        "--format",
        "json",
        "--no-cache",
    )
    report = json.loads(out)
    assert code == 2, err
    assert not [f for f in report["findings"] if f["code"].startswith("MU31")], report["findings"]
    [error] = report["errors"]
    assert error["step"] == "optimizer" and "RuntimeError: recompile limit reached" in error["message"], error


def test_muon_on_a_readout_needs_a_measured_step():
    from tests.test_updates import facts_with, run_rules

    facts = facts_with(("head", "output", None), ("wte", "input", None, "lookup"))
    assert run_rules(facts) == []  # stepped by a class named Muon, but nothing was measured
