"""The dynamic coordinate check: SP fails naming the layers that blow up, µP passes in every formulation."""

import json

import pytest

from conftest import EXAMPLES


def coord(mulint, target, *args):
    code, out, err = mulint("coord", target, "--format", "json", *args)
    assert code in (0, 1), err
    report = json.loads(out)
    assert (code == 1) == (report["verdict"] == "fail")
    return report


def failing(report):
    return {l["name"] for l in report["layers"] if l["judged"] and l["status"] != "ok"}


def test_sp_mlp_fails_naming_hidden_layers_and_output(mulint):
    report = coord(mulint, str(EXAMPLES / "mlp_sp.py"), "--seeds", "1")
    assert report["verdict"] == "fail" and report["widths"] == [64, 128, 256, 512] and report["steps"] == 3
    assert {"hidden.0", "hidden.1", "readout", "output"} <= failing(report)
    assert "inp" not in failing(report)  # the input layer is fine in SP with Adam
    assert all(l["slope"] > 0.3 for l in report["layers"] if l["name"] in failing(report))


@pytest.mark.parametrize("name", ["mlp_mup.py", "nanogpt_mup.py", "gpt_mup_package.py", "inout_mlp_mup.py"])
def test_mup_models_pass(mulint, name):
    report = coord(mulint, str(EXAMPLES / name), "--seeds", "1")
    assert report["verdict"] == "pass", failing(report)


def test_multiplied_layer_is_judged_downstream(mulint):
    report = coord(mulint, str(EXAMPLES / "nanogpt_mup.py"), "--seeds", "1")
    layers = {l["name"]: l for l in report["layers"]}
    assert not layers["lm_head"]["judged"] and "multiplier" in layers["lm_head"]["reason"]
    assert layers["output"]["judged"]


def test_planted_optimizer_bug_fails(mulint, tmp_path):
    source = (EXAMPLES / "nanogpt_mup.py").read_text()
    path = tmp_path / "planted_lr.py"
    path.write_text(source.replace('"lr": learning_rate / self.width_mult}', '"lr": learning_rate}'))
    report = coord(mulint, str(path), "--seeds", "1")
    assert report["verdict"] == "fail"
    assert any(".attn" in n or ".mlp" in n for n in failing(report))


def test_default_adam_and_plot(mulint, tmp_path):
    from conftest import MODELS

    plot = tmp_path / "coord.png"
    code, out, err = mulint("coord", f"{MODELS / 'layouts.py'}:InOut", "--seeds", "1", "--lr", "0.01",
                            "--plot", str(plot))
    assert "Adam(lr=0.01)" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["coord.png"]  # nothing half-written left beside it


def test_check_coord_findings_point_at_layer_construction(mulint):
    code, out, err = mulint("check", str(EXAMPLES / "mlp_sp.py"), "--coord", "--select", "MU9", "--format", "json")
    findings = json.loads(out)["findings"]
    source = (EXAMPLES / "mlp_sp.py").read_text().splitlines()
    assert {f["code"] for f in findings} == {"MU901"}
    assert {source[f["line"] - 1].strip().split(" =")[0] for f in findings} == {"self.hidden", "self.readout"}


def test_user_batch_function(mulint, tmp_path):
    batch = tmp_path / "batches.py"
    batch.write_text("import torch\n\ndef batch(model):\n    return (torch.randn(32, 32),)\n")
    report = coord(mulint, str(EXAMPLES / "mlp_mup.py"), "--seeds", "1", "--batch", f"{batch}:batch")
    assert report["verdict"] == "pass"


@pytest.mark.parametrize("shapes, slope, status", [
    ({64: (2, 4, 8, 8), 128: (2, 4, 8, 8)}, -0.6, "ok"),  # attention probabilities: no width dimension
    ({64: (2, 4, 8, 8), 128: (2, 4, 8, 8)}, -0.9, "collapse"),
    ({64: (2, 8, 64), 128: (2, 8, 128)}, -0.6, "collapse"),  # a width-indexed activation
    ({64: (2, 8, 64), 128: (2, 8, 128)}, 0.5, "blow-up"),
])
def test_collapse_floor_depends_on_a_width_dimension(shapes, slope, status):
    from mulint.coord import LayerCurve, judge

    curve = LayerCurve(name="h.0.attn.drop", module_type="Dropout", judged=True, shapes=shapes, slopes={3: slope})
    assert judge(curve) == status
