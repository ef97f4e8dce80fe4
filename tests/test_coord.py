"""The dynamic coordinate check: SP fails naming the layers that blow up, µP passes in every formulation;
widths around the base width, the trained model shrunk where width does not matter, outputs recorded
when produced."""

import json

import pytest
import torch
import torch.nn as nn
from conftest import EXAMPLES, MODELS, parent_modules


def run(target, **options):
    """`run_coord` on a PATH:NAME target, one seed on the CPU unless told otherwise."""
    from mulint.analysis.structure import analyse_structure
    from mulint.coordcheck.run import run_coord
    from mulint.reading.functions import FunctionRef
    from mulint.reading.targets import parse_target, resolve

    [item] = resolve(parse_target(str(target)), allow_exec=True)[:1]
    if isinstance(options.get("optimizer"), str):
        options["optimizer"] = FunctionRef.parse(options["optimizer"])
    options = {"seeds": 1, "device": "cpu", "find_optimizer": True, **options}
    return run_coord(item, analyse_structure(item), **options)


def failing(result):
    return {l.name for l in result.layers if l.judged and l.status != "ok"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_sp_mlp_fails_naming_hidden_layers_and_output():
    result = run(EXAMPLES / "mlp_sp.py")
    # Around the base width 256 (base/2 to 2x base), not below it.
    assert result.verdict == "fail" and result.widths == [128, 256, 512] and result.steps == 3
    assert {"hidden.0", "hidden.1", "readout", "output"} <= failing(result)
    assert "inp" not in failing(result)  # the input layer is fine in SP with Adam
    assert all(l.slope > 0.3 for l in result.layers if l.name in failing(result))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp_mup.py", "nanogpt_mup.py", "gpt_mup_package.py", "inout_mlp_mup.py"])
def test_mup_models_pass(name):
    result = run(EXAMPLES / name)
    assert result.verdict == "pass", failing(result)
    if name == "nanogpt_mup.py":  # the readout's logits are multiplied outside it: judged downstream
        layers = {l.name: l for l in result.layers}
        assert not layers["lm_head"].judged and "multiplier" in layers["lm_head"].reason
        assert layers["output"].judged


@pytest.mark.slow
def test_planted_optimizer_bug_fails(tmp_path):
    source = (EXAMPLES / "nanogpt_mup.py").read_text()
    path = tmp_path / "planted_lr.py"
    path.write_text(source.replace('"lr": learning_rate / self.width_mult}', '"lr": learning_rate}'))
    result = run(path)
    assert result.verdict == "fail"
    assert any(".attn" in n or ".mlp" in n for n in failing(result))


@pytest.mark.slow
def test_user_batch_function():
    result = run(EXAMPLES / "mlp_mup.py", batch_fn=lambda model: (torch.randn(32, 32),))
    assert result.verdict == "pass"


DEEP_GPT = '''
from dataclasses import dataclass
import torch, torch.nn as nn

@dataclass
class Config:
    n_embd: int = 64
    n_layer: int = 6
    vocab_size: int = 1000
    block_size: int = 128

class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln = nn.LayerNorm(c.n_embd)
        self.fc = nn.Linear(c.n_embd, c.n_embd)
    def forward(self, x):
        return x + self.fc(self.ln(x))

class GPT(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.head = nn.Linear(config.n_embd, config.vocab_size)
    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        return self.head(x)

def make(n_embd: int = 64):
    return GPT(Config(n_embd=n_embd))

class Fixed(nn.Module):
    """Six blocks the constructor cannot be asked for fewer of."""
    def __init__(self, width=64):
        super().__init__()
        self.inp = nn.Linear(8, width)
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(6)])
        self.out = nn.Linear(width, 4)
    def forward(self, x):
        return self.out(self.blocks(self.inp(x)))
'''


@pytest.mark.slow
def test_widths_bracket_the_base_width_and_what_does_not_grow_is_shrunk(tmp_path):
    from mulint.report.coord_view import as_json, as_text

    path = tmp_path / "deep_gpt.py"
    path.write_text(DEEP_GPT)
    result = run(f"{path}:GPT", steps=2)
    assert result.widths == [32, 64, 128]
    assert {l.name.split(".")[1] for l in result.layers if l.name.startswith("h.")} == {"0", "1"}
    assert {"n_layer 6 -> 2", "vocab_size 1000 -> 256", "block_size 128 -> 16", "batch 8 x 16"} <= set(result.shrunk)
    assert {l.shapes[128][-1] for l in result.layers if l.name == "output"} == {256}
    assert "n_layer 6 -> 2" in as_text(result).splitlines()[1]
    report = json.loads(as_json(result))
    assert report["device"] == "cpu" and "vocab_size 1000 -> 256" in report["shrunk"]

    fixed = run(f"{path}:Fixed", steps=2)  # no depth field: the built blocks are cut to two
    assert "blocks: 6 blocks -> 2" in fixed.shrunk
    assert {l.name for l in fixed.layers if l.name.startswith("blocks.")} >= {"blocks.0", "blocks.1"}
    assert not any(l.name.startswith("blocks.2") for l in fixed.layers)


def test_output_is_recorded_when_produced_not_after_an_in_place_update():
    from mulint.coordcheck.record import recording

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(4)

        def forward(self, x):
            x = self.norm(x)
            x *= 0.0  # a multiplier written in place after the module
            return x + 1

    model = Scaled()
    x = torch.randn(3, 4)
    with recording(model) as recorder:
        outputs = recorder.record((x,), {})
    assert torch.allclose(outputs["norm"], nn.functional.layer_norm(x, (4,)), atol=1e-6)
    assert torch.equal(outputs["output"], torch.ones(3, 4))


def test_device_defaults_to_cuda_when_available_else_cpu(monkeypatch):
    from mulint.coordcheck import run as coord

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert coord.default_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert coord.default_device() == "cuda"


@pytest.mark.slow
def test_cli_exit_code_default_adam_and_plot(mulint, tmp_path):
    plot = tmp_path / "coord.png"
    code, out, err = mulint(
        "coord", f"{MODELS / 'layouts.py'}:InOut", "--seeds", "1", "--lr", "0.01", "--plot", str(plot)
    )
    assert code in (0, 1) and "Adam(lr=0.01)" in out and out.startswith(f"{MODELS / 'layouts.py'}:InOut")
    assert ("FAIL" in out.splitlines()[0]) == (code == 1)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["coord.png"]  # nothing half-written left beside it


@pytest.mark.slow
def test_the_coord_parent_never_imports_torch(tmp_path):
    """The worker trains; the parent only reads its plain result and draws the plot."""
    args = [
        "coord",
        f"{MODELS / 'layouts.py'}:InOut",
        "--seeds",
        "1",
        "--steps",
        "2",
        "--plot",
        str(tmp_path / "c.png"),
    ]
    run, modules = parent_modules(args)
    assert run.returncode in (0, 1), run.stderr
    assert "torch" not in modules and (tmp_path / "c.png").exists()


@pytest.mark.slow
def test_check_coord_findings_point_at_layer_construction(mulint):
    code, out, err = mulint("check", str(EXAMPLES / "mlp_sp.py"), "--coord", "--select", "MU9", "--format", "json")
    findings = json.loads(out)["findings"]
    source = (EXAMPLES / "mlp_sp.py").read_text().splitlines()
    assert {f["code"] for f in findings} == {"MU901"}
    assert {source[f["line"] - 1].strip().split(" =")[0] for f in findings} == {"self.hidden", "self.readout"}


@pytest.mark.parametrize(
    "shapes, slope, status",
    [
        ({64: (2, 4, 8, 8), 128: (2, 4, 8, 8)}, -0.6, "ok"),  # attention probabilities: no width dimension
        ({64: (2, 4, 8, 8), 128: (2, 4, 8, 8)}, -0.9, "collapse"),
        ({64: (2, 8, 64), 128: (2, 8, 128)}, -0.6, "collapse"),  # a width-indexed activation
        ({64: (2, 8, 64), 128: (2, 8, 128)}, 0.5, "blow-up"),
    ],
)
def test_collapse_floor_depends_on_a_width_dimension(shapes, slope, status):
    from mulint.coordcheck import LayerCurve
    from mulint.coordcheck.run import judge

    curve = LayerCurve(name="h.0.attn.drop", module_type="Dropout", judged=True, shapes=shapes, slopes={3: slope})
    assert judge(curve) == status


def test_widths_fall_below_the_base_only_when_too_large_and_say_so(monkeypatch):
    from mulint.construct.width import find_knob
    from mulint.coordcheck import plan
    from mulint.reading.targets import parse_target, resolve

    [item] = resolve(parse_target(str(EXAMPLES / "mlp_sp.py")), allow_exec=True)[:1]
    knob = find_knob(item.obj, item.label)
    assert plan.choose_widths(knob, item.label, None) == ([128, 256, 512], [])
    assert plan.choose_widths(knob, item.label, [16, 32, 64, 128]) == ([16, 32, 64, 128], [])  # as asked
    monkeypatch.setattr(plan, "MAX_ELEMENTS", 100_000)  # the MLP at width 256 holds ~140k parameters
    widths, notes = plan.choose_widths(knob, item.label, None)
    assert widths == [32, 64, 128] and "below the base width 256" in notes[0]
