"""The Python API: the CLI's analysis on objects the caller builds, with the CLI's findings."""

import importlib.util
import json

import pytest
import torch
import torch.nn as nn

import mulint
from tests.conftest import EXAMPLES
from tests.test_report import validate_sarif

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def load(path):
    spec = importlib.util.spec_from_file_location(f"api_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A model built from a nested, Hydra-style config (plain dicts here, as OmegaConf's DictConfig reads
# the same): no width argument anywhere mulint could find it, so only a model_fn can say what width is.
CONFIG = {"model": {"encoder": {"d_in": 12, "hidden": 64, "layers": 2}, "head": {"classes": 5}}, "optim": {"lr": 3e-3}}


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        hidden = cfg["model"]["encoder"]["hidden"]
        self.stem = nn.Linear(cfg["model"]["encoder"]["d_in"], hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(cfg["model"]["encoder"]["layers"]))
        self.head = nn.Linear(hidden, cfg["model"]["head"]["classes"])

    def forward(self, x):
        h = self.stem(x)
        for block in self.blocks:
            h = h + torch.tanh(block(h))
        return self.head(h)


def with_width(cfg, width):
    return {**cfg, "model": {**cfg["model"], "encoder": {**cfg["model"]["encoder"], "hidden": width}}}


def one_lr_adam(model):
    return torch.optim.Adam(model.parameters(), lr=CONFIG["optim"]["lr"])


@pytest.mark.slow
def test_check_gives_the_clis_findings_on_an_example(mulint):
    module = load(EXAMPLES / "mlp_sp.py")
    report = mulint_api_check(module.MLP, optimizer_fn=module.make_optimizer)
    code, out, err = mulint("check", f"{EXAMPLES / 'mlp_sp.py'}:MLP", "--format", "json", "--no-cache")
    cli = json.loads(out)["findings"]
    strip = lambda rows: sorted((r["code"], r["line"], r["message"], r["parameter"]) for r in rows)  # noqa: E731
    assert strip(report.findings) == strip(cli) and {r["code"] for r in cli} == {"MU102", "MU301"}
    assert not report.ok


def mulint_api_check(*args, **kwargs):
    return mulint.check(*args, **kwargs)


@pytest.mark.slow
def test_a_model_fn_over_a_nested_config():
    report = mulint.check(lambda width: Encoder(with_width(CONFIG, width)), optimizer_fn=one_lr_adam)
    codes = sorted({f["code"] for f in report.findings})
    assert codes == ["MU102", "MU301"]  # default readout init, one Adam LR for every role
    assert "MU301" in str(report) and "Found" in str(report)
    assert "MU301" in repr(report)  # what a failed `assert report.ok` shows


@pytest.mark.slow
def test_raise_for_findings_and_the_output_formats():
    report = mulint.check(lambda width: Encoder(with_width(CONFIG, width)), select=["MU102"])
    assert [f["code"] for f in report.findings] == ["MU102"]
    [note] = [n for n in report.analysed["notes"] if "no optimizer found" in n]
    assert "optimizer_fn=" in note and "--optimizer" not in note  # the hint speaks Python, not the CLI
    with pytest.raises(mulint.MulintError) as caught:
        report.raise_for_findings()
    assert caught.value.step == "check" and "MU102" in str(caught.value)
    assert json.loads(report.to_json())["findings"][0]["code"] == "MU102"
    validate_sarif(json.loads(report.to_sarif()))


@pytest.mark.slow
def test_a_clean_model_is_ok():
    module = load(EXAMPLES / "mlp_mup.py")
    report = mulint.check(lambda width: module.MLP(width=width), optimizer_fn=module.make_optimizer, widths=[64, 128])
    assert report.ok, report
    report.raise_for_findings()


def test_errors_are_one_exception_type_naming_target_and_step():
    def broken(width):
        raise ValueError("no such checkpoint")

    with pytest.raises(mulint.MulintError) as caught:
        mulint.check(broken)
    assert caught.value.step == "build" and "broken" in caught.value.target and caught.value.hint
    with pytest.raises(mulint.MulintError, match="did you mean MU201"):
        mulint.check(broken, select=["MU2O1"])


@pytest.mark.slow
def test_inspect_gives_roles():
    analysis = mulint.inspect(lambda width: Encoder(with_width(CONFIG, width)))
    roles = analysis.roles()
    assert roles["stem.weight"] == ["input"] and roles["blocks.0.weight"] == ["hidden"]
    assert roles["head.weight"] == ["output"] and roles["stem.bias"] == ["vector"]
    assert "blocks.0.weight" in str(analysis)


@pytest.mark.slow
def test_coord_gives_a_verdict_and_a_plot(tmp_path):
    result = mulint.coord(lambda width: Encoder(with_width(CONFIG, width)), widths=[32, 64, 128], steps=2, seeds=1)
    assert result.verdict in ("pass", "fail") and result.slopes
    result.plot(tmp_path / "coord.png")
    assert (tmp_path / "coord.png").read_bytes()[:4] == b"\x89PNG"


def test_only_the_api_is_exported():
    assert set(mulint.__all__) == {
        "check",
        "inspect",
        "coord",
        "transfer",
        "Report",
        "Analysis",
        "CoordReport",
        "TransferReport",
        "MulintError",
        "__version__",
    }
