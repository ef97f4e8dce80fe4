"""`mulint inspect` shows the numbers the rules judge: per parameter and width the init rms, lr, weight
decay, multiplier and the fitted, effective and expected exponents. Checked against the models built
here and read by hand, and against the findings `check` makes from the same numbers."""

import importlib.util
import json
import math
import re

import pytest
from conftest import MODELS

from mulint.engine import jobs
from mulint.engine.isolation import Job
from mulint.engine.options import JobOptions
from mulint.exponents import fmt_exp
from mulint.reading.functions import FunctionRef
from mulint.report.inspect_view import as_json, as_text

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WIDTHS = [32, 64, 128]
MUP = f"{MODELS / 'evidence_resmlp.py'}:ResMLP"
SP = f"{MODELS / 'evidence_resmlp_sp.py'}:ResMLPSP"
SP_OPTIMIZER = f"{MODELS / 'evidence_resmlp_sp.py'}:sp_optimizer"
# µP (Tensor Programs V), written out here rather than read from mulint: effective init a+b and Adam's a+c.
MUP_INIT = {"input": 0.0, "vector": 0.0, "hidden": -0.5, "output": -1.0}
MUP_ADAM = {"input": 0.0, "vector": 0.0, "hidden": -1.0, "output": -1.0}


def _module(name):
    spec = importlib.util.spec_from_file_location(f"evidence_{name}", MODELS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _facts(target, optimizer=None, **options):
    chosen = FunctionRef.parse(optimizer) if optimizer else None
    job = Job("inspect", target, JobOptions(widths=tuple(WIDTHS), optimizer=chosen, **options))
    return jobs.inspect(job, lambda message: None)["facts"]


def _slope(values: dict[int, float]) -> float:
    """Least-squares slope of log(value) against log(width), written out."""
    xs = [math.log(w) for w in values]
    ys = [math.log(v) for v in values.values()]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


@pytest.fixture(scope="module")
def mup_facts():
    return _facts(MUP)


@pytest.fixture(scope="module")
def mup_report(mup_facts):
    return json.loads(as_json(mup_facts))


def _by_hand():
    """Per parameter: rms at init, lr and weight decay at each width, from models built here."""
    source = _module("evidence_resmlp")
    rms, lr, wd, mult = {}, {}, {}, {}
    for width in WIDTHS:
        model = source.ResMLP(width)
        groups = {id(p): g for g in source.make_optimizer(model).param_groups for p in g["params"]}
        for name, p in model.named_parameters():
            rms.setdefault(name, {})[width] = float(p.detach().pow(2).mean().sqrt())
            lr.setdefault(name, {})[width] = groups[id(p)]["lr"]
            wd.setdefault(name, {})[width] = groups[id(p)]["weight_decay"]
        mult[width] = model.output_mult
    return rms, lr, wd, mult


@pytest.mark.slow
def test_json_keeps_the_structure_keys_and_adds_the_evidence_per_width(mup_report):
    assert mup_report["target"].endswith("evidence_resmlp.py:ResMLP") and mup_report["widths"]
    for p in mup_report["parameters"]:
        assert {"name", "shape", "infinite_dims", "fan_in", "fan_out", "roles"} <= set(p)
        assert set(p["evidence"]["init_rms"]) == set(p["evidence"]["lr"]) == {str(w) for w in WIDTHS}
    assert mup_report["evidence"]["widths"] == WIDTHS  # --widths honoured
    assert mup_report["evidence"]["optimizer"]["class"] == "AdamW"
    assert mup_report["evidence"]["profile"] == "mup"


@pytest.mark.slow
def test_lr_weight_decay_and_init_rms_match_the_models_built_by_hand(mup_report):
    rms, lr, wd, _ = _by_hand()
    params = {p["name"]: p["evidence"] for p in mup_report["parameters"]}
    assert set(params) == set(rms)
    for name, evidence in params.items():
        for width in WIDTHS:
            assert evidence["lr"][str(width)] == pytest.approx(lr[name][width], rel=1e-12)
            assert evidence["weight_decay"][str(width)] == pytest.approx(wd[name][width], rel=1e-12)
            # init draws are random: the same distribution, not the same sample
            assert evidence["init_rms"][str(width)] == pytest.approx(rms[name][width], rel=0.2)
        assert evidence["lr_exponent"] == pytest.approx(_slope(lr[name]), abs=1e-9)
        assert evidence["init_exponent"] == pytest.approx(_slope(rms[name]), abs=0.15)
    assert params["blocks.0.weight"]["lr"] == {"32": 0.02, "64": 0.01, "128": 0.005}
    assert params["blocks.0.weight"]["init_exponent"] == pytest.approx(-0.5, abs=0.15)


@pytest.mark.slow
def test_readout_multiplier_and_effective_exponents(mup_report):
    rms, lr, _, mult = _by_hand()
    evidence = mup_report["evidence"]
    at = evidence["multiplier_width"]
    assert at in WIDTHS
    params = {p["name"]: p["evidence"] for p in mup_report["parameters"]}
    [readout] = params["w_out"]["uses"]
    assert readout["role"] == "output"
    assert readout["multiplier"] == pytest.approx(mult[at])
    assert readout["multiplier_exponent"] == pytest.approx(_slope(mult), abs=0.01)
    assert readout["multiplier_at"].endswith("evidence_resmlp.py:38")
    for name, p in params.items():
        for use in p["uses"]:
            role, a = use["role"], use["multiplier_exponent"]
            assert use["init"]["expected"] == [MUP_INIT[role]] * 2
            assert use["update"]["expected"] == [MUP_ADAM[role]] * 2
            assert use["init"]["effective_exponent"] == pytest.approx(_slope(rms[name]) + a, abs=0.15)
            assert use["update"]["effective_exponent"] == pytest.approx(_slope(lr[name]) + a, abs=1e-9)
            assert use["init"]["verdict"] == use["update"]["verdict"] == "ok", (name, use)
    assert readout["init"]["effective_exponent"] == pytest.approx(-1.0, abs=0.15)
    assert readout["update"]["effective_exponent"] == pytest.approx(-1.0)


@pytest.mark.slow
def test_text_shows_the_evidence_in_the_documented_layout(mup_facts):
    text = as_text(mup_facts)
    assert "evidence (profile mup): init, lr and updates measured at widths 32, 64, 128" in text
    assert re.search(r"^optimizer: .*make_optimizer -> AdamW \(adam\)", text, re.M)
    assert re.search(r"^\s+32\s+64\s+128\s+∝ width\^\s+expected\s+verdict or source$", text, re.M)
    # the two residual blocks collapse into one, with their lr per width and its exponent
    assert "blocks.*.weight  [2 alike; numbers of blocks.0.weight]" in text
    block = text.split("blocks.*.weight  [2 alike")[1]
    assert re.search(r"^  lr \(AdamW\)\s+0\.02\s+0\.01\s+0\.005\s+-1\.00$", block, re.M)
    assert re.search(r"^  weight decay\s+0\.005\s+0\.01\s+0\.02$", block, re.M)
    assert re.search(r"^    update a\+c \(lr\)\s+-1\.00\s+-1\.00\s+ok$", block, re.M)
    readout = text.split("\nw_out\n")[1]
    assert re.search(r"as output: linear in the model at .*:38, multiplier 1 ∝ width\^-1\.00 at .*:38", readout)
    assert re.search(r"^    init a·W \(a\+b\)\s+-(0\.9\d|1\.[01]\d)\s+-1\.00\s+ok$", readout, re.M)


@pytest.mark.slow
def test_sp_numbers_are_the_ones_mu101_and_mu301_report():
    facts = _facts(SP, optimizer=SP_OPTIMIZER)
    params = {p["name"]: p["evidence"] for p in json.loads(as_json(facts))["parameters"]}
    hidden = params["hidden.0"]
    [use] = hidden["uses"]
    assert hidden["lr"] == {"32": 3e-4, "64": 3e-4, "128": 3e-4} and hidden["lr_exponent"] == 0
    assert use["init"]["verdict"] == "too large" and use["init"]["expected"] == [-0.5, -0.5]
    assert abs(use["init"]["effective_exponent"]) < 0.15  # a constant std 0.02
    assert use["update"]["verdict"] == "too large" and use["update"]["effective_exponent"] == 0
    findings = jobs.check(
        Job("check", SP, JobOptions(widths=tuple(WIDTHS), optimizer=FunctionRef.parse(SP_OPTIMIZER))), lambda m: None
    )["findings"]
    by_code = {f.code: f for f in findings}
    assert {"MU101", "MU102", "MU301"} <= set(by_code)
    assert by_code["MU101"].parameter == "hidden.0, hidden.1"
    # MU101 reports the largest effective exponent of its hidden weights: one of those inspect shows
    shown = {fmt_exp(params[n]["uses"][0]["init"]["effective_exponent"]) for n in ("hidden.0", "hidden.1")}
    assert re.search(r"init ∝ width\^(\S+) ", by_code["MU101"].message)[1] in shown
    assert "width^0 (lr ∝ width^0)" in by_code["MU301"].message


@pytest.mark.slow
def test_without_an_optimizer_inspect_says_so():
    facts = _facts(SP)
    report = json.loads(as_json(facts))
    assert report["evidence"]["optimizer"] is None
    for p in report["parameters"]:
        assert p["evidence"]["lr"] == {} and all(u["update"] is None for u in p["evidence"]["uses"])
        assert p["evidence"]["init_rms"]  # the init is still measured
    text = as_text(facts)
    assert "optimizer: none found, so no learning rates or updates below" in text
    assert "lr (" not in text and "no optimizer found" in text


@pytest.mark.slow
def test_cli_inspect_takes_optimizer_and_widths(inspect_json, mulint):
    report = inspect_json(SP, "--optimizer", SP_OPTIMIZER, "--widths", "32,64")
    assert report["evidence"]["widths"] == [32, 64]
    assert report["evidence"]["optimizer"]["factory"].endswith("sp_optimizer")
    w_out = next(p for p in report["parameters"] if p["name"] == "w_out")
    assert w_out["evidence"]["lr"] == {"32": 3e-4, "64": 3e-4}
    code, _, err = mulint("inspect", SP, "--profile", "no-such-profile")
    assert code == 2 and "unknown profile" in err


@pytest.mark.slow
def test_api_inspect_with_an_optimizer_fn():
    import mulint

    source = _module("evidence_resmlp")
    analysis = mulint.inspect(lambda width: source.ResMLP(width), optimizer_fn=source.make_optimizer, widths=WIDTHS)
    evidence = analysis.evidence()
    assert evidence["blocks.1.weight"]["lr"] == {"32": 0.02, "64": 0.01, "128": 0.005}
    assert evidence["w_out"]["uses"][0]["update"]["verdict"] == "ok"


@pytest.mark.slow
def test_a_branch_that_uses_a_parameter_differently_is_listed_with_its_own_numbers():
    target = f"{MODELS / 'targets_branch.py'}:LastTokenMultiplierLM"  # 1/width_mult on the training branch only
    facts = jobs.inspect(Job("inspect", target), lambda message: None)["facts"]
    params = {p["name"]: p["evidence"] for p in json.loads(as_json(facts))["parameters"]}
    head = params["lm_head.weight"]
    [generating] = head["uses"]
    [training] = head["branches"]
    assert "training" in training["branch"] and training["trains"]
    assert generating["multiplier_exponent"] == 0 and training["uses"][0]["multiplier_exponent"] == pytest.approx(-1)
    assert generating["init"]["verdict"] == "too large" and generating["update"]["verdict"].startswith("not judged")
    assert training["uses"][0]["init"]["verdict"] == training["uses"][0]["update"]["verdict"] == "ok"
    assert params["fc.weight"]["branches"] == [] and params["fc.weight"]["uses"][0]["update"]["verdict"] == "ok"
    findings = jobs.check(Job("check", target), lambda message: None)["findings"]
    assert [f.code for f in findings if f.parameter == "lm_head.weight"] == ["MU102"]  # init only, not MU301
    assert "on the training branch, `targets` given:" in as_text(facts)


@pytest.mark.slow
def test_measured_updates_with_the_spectral_profile():
    facts = _facts(MUP, profile="spectral")
    report = json.loads(as_json(facts))
    assert report["evidence"]["profile"] == "spectral"
    readout = next(p for p in report["parameters"] if p["name"] == "w_out")["evidence"]
    [use] = readout["uses"]
    assert use["update"] is None  # spectral judges Adam by its measured update, not the lr table
    measured = use["measured_update"]
    norms = {int(w): v for w, v in measured["norm"].items()}
    assert sorted(norms) == WIDTHS and all(v > 0 for v in norms.values())
    # the exponent judged is that of a·ΔW: the norms' slope plus the multiplier's
    assert measured["exponent"] == pytest.approx(_slope(norms) + use["multiplier_exponent"], abs=1e-9)
    assert measured["expected"] == [0.0, 0.0] and measured["verdict"] == "ok"
    assert re.search(r"measured ‖ΔW‖, step \d.*\(exponent of a·ΔW\)", as_text(facts))


@pytest.mark.slow
def test_lr_source_and_scale_key_are_shown_from_facts_alone():
    import subprocess
    import sys

    from mulint.facts import ModelFacts, OptimizerFacts, ParamFacts, ParamUse

    use = ParamUse(
        op="linear",
        kind="contraction",
        role="hidden",
        fan_in=64,
        fan_out=64,
        fan_in_infinite=True,
        fan_out_infinite=True,
        node="linear",
        module="fc",
    )
    lr = {64: 1e-3, 128: 1e-3}
    params = [
        ParamFacts(
            name="fc.weight",
            shape=(64, 64),
            shapes={64: (64, 64), 128: (128, 128)},
            infinite_dims=(0, 1),
            uses=[use],
            init_rms={64: 0.125, 128: 0.0884},
            init_exponent=-0.5,
            lr=lr,
            lr_exponent=0.0,
            weight_decay={64: 0.0, 128: 0.0},
            lr_scale_key="lr_scale",
            lr_source="after OneCycleLR's first step",
        )
    ]
    facts = ModelFacts(
        target="m.py:M",
        path="m.py",
        width_knob="width",
        base_width=64,
        widths=[64, 128],
        params=params,
        numeric_widths=[64, 128],
        optimizer=OptimizerFacts(label="m.py:opt", cls="AdamW", family="adam", loc=None),
    )
    text = as_text(facts)
    assert re.search(r"^  lr \(AdamW\)\s+0\.001\s+0\.001\s+0\s+after OneCycleLR's first step$", text, re.M)
    assert re.search(r"^    update a\+c \(lr\)\s+0\s+-1\.00\s+too large$", text, re.M)
    evidence = json.loads(as_json(facts))["parameters"][0]["evidence"]
    assert evidence["lr_source"] == "after OneCycleLR's first step" and evidence["lr_scale_key"] == "lr_scale"
    params[0].lr_source = ""
    assert re.search(r"^  lr \(AdamW\).*group lr × lr_scale$", as_text(facts), re.M)
    # the view runs without torch
    code = "import sys, mulint.report.inspect_view; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_a_model_that_was_not_measured_says_so():
    from mulint.facts import ModelFacts, ParamFacts

    facts = ModelFacts(
        target="m.py:M",
        path="m.py",
        width_knob="width",
        base_width=64,
        widths=[64, 128],
        params=[ParamFacts(name="w", shape=(64, 64), shapes={}, infinite_dims=(0, 1), role_source="shape")],
        traced=False,
        notes=["not traced: MuReadout `head` cannot run as built"],
    )
    assert "evidence: no numbers (the model was not measured; see the notes)" in as_text(facts)
    evidence = json.loads(as_json(facts))["parameters"][0]["evidence"]
    assert evidence["init_rms"] == {} and evidence["uses"] == [] and evidence["optimizer"] is None


def test_lr_times_weight_decay_is_the_product_mu304_judges():
    from mulint.facts import ModelFacts, OptimizerFacts, ParamFacts, ParamUse
    from mulint.rules.optimizer import DecoupledDecayScaling

    use = ParamUse(
        op="linear",
        kind="contraction",
        role="hidden",
        fan_in=64,
        fan_out=64,
        fan_in_infinite=True,
        fan_out_infinite=True,
        node="linear",
        module="fc",
    )
    # µP's hidden lr ∝ 1/width with a constant weight decay: AdamW's decay lr·wd fades with width
    p = ParamFacts(
        name="fc.weight",
        shape=(64, 64),
        shapes={},
        infinite_dims=(0, 1),
        uses=[use],
        lr={64: 1e-3, 128: 5e-4, 256: 2.5e-4},
        lr_exponent=-1.0,
        weight_decay={64: 0.1, 128: 0.1, 256: 0.1},
        optimizer="AdamW",
        optimizer_family="adam",
    )
    facts = ModelFacts(
        target="m.py:M",
        path="m.py",
        width_knob="width",
        base_width=64,
        widths=[64, 128],
        params=[p],
        numeric_widths=[64, 128, 256],
        optimizer=OptimizerFacts(label="m.py:opt", cls="AdamW", family="adam", loc=None),
    )
    decay = json.loads(as_json(facts))["parameters"][0]["evidence"]["decay"]
    assert decay["lr_times_weight_decay"] == pytest.approx({"64": 1e-4, "128": 5e-5, "256": 2.5e-5})
    assert decay["exponent"] == pytest.approx(-1.0) and decay["verdict"] == "too small"
    [finding] = DecoupledDecayScaling().check(facts)
    assert "width^-1.00" in finding.message
    assert re.search(r"^  lr·weight decay\s+0\.0001\s+5e-05\s+2\.5e-05\s+-1\.00\s+0\s+too small$", as_text(facts), re.M)
    p.weight_decay = {64: 0.1, 128: 0.2, 256: 0.4}  # scaled with width: constant decay, no finding
    assert json.loads(as_json(facts))["parameters"][0]["evidence"]["decay"]["verdict"] == "ok"
    assert list(DecoupledDecayScaling().check(facts)) == []


@pytest.mark.slow
def test_cli_inspect_reads_the_optimizer_widths_and_profile_from_the_config(inspect_json, tmp_path):
    model = tmp_path / "model.py"
    model.write_text((MODELS / "evidence_resmlp_sp.py").read_text())
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.mulint]\noptimizer = "{model}:sp_optimizer"\nwidths = [32, 64]\nprofile = "u-mup"\n'
    )
    report = inspect_json(f"{model}:ResMLPSP")
    assert report["evidence"]["optimizer"]["factory"].endswith("model.py:sp_optimizer")
    assert report["evidence"]["widths"] == [32, 64] and report["evidence"]["profile"] == "u-mup"


def test_repeated_blocks_collapse_only_where_they_agree():
    from mulint.facts import ModelFacts, ParamFacts, ParamUse

    def block(i, lr):
        use = ParamUse(
            op="linear",
            kind="contraction",
            role="hidden",
            fan_in=64,
            fan_out=64,
            fan_in_infinite=True,
            fan_out_infinite=True,
            node=f"linear_{i}",
            module=f"h.{i}.fc",
        )
        return ParamFacts(
            name=f"h.{i}.fc.weight",
            shape=(64, 64),
            shapes={},
            infinite_dims=(0, 1),
            uses=[use],
            init_rms={64: 0.125 + i / 1000, 128: 0.088},
            init_exponent=-0.5,
            lr={64: lr, 128: lr / 2},
            lr_exponent=-1.0,
            weight_decay={64: 0.0, 128: 0.0},
        )

    # the third block's lr is set apart (a layer-wise lr decay, say): it keeps its own rows
    params = [block(0, 1e-3), block(1, 1e-3), block(2, 5e-4), block(3, 1e-3)]
    facts = ModelFacts(
        target="m.py:M",
        path="m.py",
        width_knob="width",
        base_width=64,
        widths=[64, 128],
        params=params,
        numeric_widths=[64, 128],
    )
    text = as_text(facts)
    assert "h.*.fc.weight  [3 alike: h.0.fc.weight, h.1.fc.weight, h.3.fc.weight; numbers of h.0.fc.weight]" in text
    assert "\nh.2.fc.weight\n" in text and "as hidden: linear in h.*.fc," in text
    assert re.search(r"^  init rms\s+0\.125\s+0\.088\s+-0\.50", text, re.M)  # the first block's numbers
