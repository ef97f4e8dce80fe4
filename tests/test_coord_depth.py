"""The depth coordinate check (`mulint coord --depths`): its slopes agree with an independent check written
here in plain torch, on pre-LN stacks scaled with depth in each way (tests/models/depth_residual.py); the
verdicts (SP blows up, CompleteP passes, α = ½ is lazy); a multiplier outside the branch modules is
judged after it; the stream is followed through the blocks however they add; output, plot and CLI."""

import functools
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import EXAMPLES, MODELS

from tests.models import depth_residual as stacks

DEPTHS = [4, 8, 16]
STEPS = 3
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@functools.cache
def trained(name: str):
    """The default run of a model, once per session (several tests read it)."""
    return run(name)


def run(name: str, **options):
    """`run_depth_coord` on a model of tests/models/depth_residual.py, one seed on the CPU."""
    from mulint.analysis.structure import analyse_structure
    from mulint.coordcheck.depth import run_depth_coord
    from mulint.reading.targets import parse_target, resolve

    [item] = resolve(parse_target(f"{MODELS / 'depth_residual.py'}:{name}"), allow_exec=True)[:1]
    options = {"seeds": 1, "device": "cpu", "find_optimizer": True, "depths": DEPTHS, **options}
    return run_depth_coord(item, analyse_structure(item), **options)


# --- the independent check: plain torch, written from MUP_REFERENCE §8 ------------------------------


def branches(model) -> list[tuple[nn.Module, float]]:
    """Each residual branch module and the multiplier its output is added with."""
    if isinstance(model, stacks.LayerLoop):
        return [(layer, model.scale) for layer in model.blocks]
    return [(block.mlp, block.scale) for block in model.blocks]


def branch_inputs(model, idx) -> list[torch.Tensor]:
    """The stream entering each block, by running the stack's loop by hand."""
    seen = []
    with torch.no_grad():
        x = model.wte(idx)
        for module, scale in branches(model):
            seen.append(x)
            x = x + scale * module(x)
    return seen


def independent(cls, depth: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = cls(n_layer=depth)
    (idx,) = stacks.example_inputs(model)
    labels = torch.randint(0, model.head.out_features, (idx.numel(),), generator=torch.Generator().manual_seed(1))
    optimizer = model.configure_optimizers()
    model.eval()
    with torch.no_grad():
        start = model.stream(idx)
    for step in range(STEPS):
        if step == 0:  # the first step moves every block: its change with its input held where it was
            held = branch_inputs(model, idx)
            before = [{n: p.detach().clone() for n, p in m.named_parameters()} for m, _ in branches(model)]
        optimizer.zero_grad()
        F.cross_entropy(model(idx).flatten(0, 1), labels).backward()
        optimizer.step()
    with torch.no_grad():
        end = model.stream(idx)
    changes, updates = [], []
    with torch.no_grad():
        for (module, scale), x, theta0 in zip(branches(model), held, before):
            theta1 = dict(module.named_parameters())
            out0 = scale * torch.func.functional_call(module, theta0, (x,))
            changes.append(float((scale * module(x) - out0).abs().mean()))
            # the step's change of each weight matrix against its size at init (the first step: θ0 is init)
            updates += [
                float((theta1[n] - w).norm() / w.norm()) for n, w in theta0.items() if w.dim() >= 2 and w.norm() > 0
            ]
    return {
        "stream_change": float((end - start).abs().mean()),
        "block_change": sum(changes) / len(changes),
        "stream_init": float(start.abs().mean()),
        "block_update": sum(updates) / len(updates),
    }


def slope(values: dict[int, float]) -> float:
    xs, ys = zip(*sorted(values.items()))
    logx, logy = torch.tensor(xs, dtype=torch.float64).log(), torch.tensor(ys, dtype=torch.float64).log()
    x0, y0 = logx - logx.mean(), logy - logy.mean()
    return float((x0 * y0).sum() / (x0 * x0).sum())


def independent_slopes(cls) -> dict[str, float]:
    by_depth = [independent(cls, d) for d in DEPTHS]
    # the change over the stream's size at init where that falls below the first depth's (MUP_REFERENCE §8)
    for m in by_depth:
        m["stream_change"] /= min(m["stream_init"], by_depth[0]["stream_init"])
    return {key: slope({d: m[key] for d, m in zip(DEPTHS, by_depth)}) for key in by_depth[0]}


# --- mulint against it ---------------------------------------------------------------------------

EXPECTED = {  # verdict, the statuses that are not ok
    "Standard": ("fail", {"stream_change": "blow-up", "block_change": "blow-up"}),
    "DepthMupOneLr": ("fail", {"stream_change": "blow-up", "block_change": "blow-up"}),
    "DepthMup": ("pass", {"block_update": "lazy"}),
    "CompleteP": ("pass", {}),
    "CompletePHalfLr": (
        "fail",
        {"stream_change": "collapse", "block_change": "collapse", "block_update": "lazy"},
    ),
    "LayerLoop": ("pass", {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPECTED))
def test_slopes_agree_with_an_independent_check_and_the_verdicts_follow(name):
    result = trained(name)
    ours = {m.key: m.slope for m in result.measures}
    theirs = independent_slopes(getattr(stacks, name))
    for key, value in theirs.items():
        assert abs(ours[key] - value) <= 0.2, (key, ours[key], value)
        if abs(value) > 0.25:
            assert (ours[key] > 0) == (value > 0), (key, ours[key], value)
    verdict, statuses = EXPECTED[name]
    assert result.verdict == verdict
    assert {m.key: m.status for m in result.measures if m.status != "ok"} == statuses
    assert result.blocks == "blocks" and result.depths == DEPTHS and result.width == 64


@pytest.mark.slow
def test_a_multiplier_outside_the_branch_modules_is_judged_after_it():
    """The layers' loop multiplies: the same numbers as the multiplier inside each block."""
    inside, outside = trained("CompleteP"), trained("LayerLoop")
    for a, b in zip(inside.measures, outside.measures):
        assert a.values == pytest.approx(b.values, rel=1e-4), a.key
    assert outside.measure("block_change").slope == pytest.approx(-1.0, abs=0.1)


@pytest.mark.slow
def test_lazy_blocks_are_a_note_by_default_and_fail_under_a_profile_that_warns(mulint, tmp_path):
    from mulint.profiles import load_profile

    by_default = trained("DepthMup")
    assert by_default.verdict == "pass" and any("lazy blocks" in n and "MU953" in n for n in by_default.notes)
    text = (
        open(load_profile().source, encoding="utf-8").read().replace("depth_lazy_warning = 0", "depth_lazy_warning = 1")
    )
    (tmp_path / "warn.toml").write_text(text, encoding="utf-8")
    target = f"{MODELS / 'depth_residual.py'}:DepthMup"
    code, out, err = mulint(
        "coord", target, "--depths", "4,16", "--seeds", "1", "--profile", str(tmp_path / "warn.toml")
    )
    assert code == 1 and "depth coordinate check FAIL" in out, err
    assert out.splitlines()[-1].startswith("a block's relative update in one step falls with depth") and "MU953" in out
    assert "note: lazy blocks" not in out


# --- the parts, fast -------------------------------------------------------------------------------


class Sandwich(nn.Module):
    """Blocks returning their branch alone (the loop adds, times 0.5), then a norm and a readout."""

    def __init__(self, n_layer=3, width=8):
        super().__init__()
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(n_layer))
        self.inner = nn.ModuleList(nn.Linear(width, width) for _ in range(2))  # a fixed list: not the blocks
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 2)

    def forward(self, x):
        for layer in self.layers:
            x = x + 0.5 * layer(x)
        return self.head(self.norm(x))


def test_the_block_list_is_the_one_that_follows_the_depth():
    from mulint.coordcheck.stream import block_lists

    assert block_lists({2: Sandwich(2), 4: Sandwich(4)}) == ["layers"]


def test_the_stream_is_read_where_blocks_and_the_final_norm_take_it_and_holding_inputs_gives_contributions():
    from mulint.coordcheck.stream import StreamRecorder, contributions

    torch.manual_seed(0)
    model, x = Sandwich(), torch.randn(4, 8)
    recorder = StreamRecorder(model, list(model.layers), label="t")
    stream = recorder.run((x,), {})
    expected, h = [x], x
    for layer in model.layers:
        h = h + 0.5 * layer(h)
        expected.append(h)
    assert all(torch.allclose(a, b) for a, b in zip(stream, expected))
    assert not recorder.adds_inside(stream)  # the loop adds: a block returns its branch alone
    held = [torch.randn(4, 8) for _ in model.layers]
    added = contributions(recorder.run((x,), {}, frozen=held), held, adds_inside=False)
    for layer, given, got in zip(model.layers, held, added):
        assert torch.allclose(got, 0.5 * layer(given).detach(), atol=1e-6)
    recorder.close()
    assert not model.layers[0]._forward_pre_hooks


def test_statuses_follow_the_profile_thresholds():
    from mulint.coordcheck import DepthMeasure
    from mulint.coordcheck.depth import judge_depth
    from mulint.profiles import load_profile

    limits = load_profile().coord

    def status(key, slope):
        return judge_depth(DepthMeasure(key=key, slope=slope), limits)

    assert [status("stream_change", s) for s in (1.0, 0.29, -0.29, -0.5)] == ["blow-up", "ok", "ok", "collapse"]
    assert [status("block_change", s) for s in (0.0, -1.0, -1.5)] == ["blow-up", "ok", "collapse"]
    assert [status("stream_init", s) for s in (0.5, 0.2, -0.5)] == ["growing", "ok", "ok"]
    assert [status("block_update", s) for s in (-0.5, 0.0, 0.5)] == ["lazy", "ok", "ok"]


def test_default_depths_bracket_the_base_depth():
    from mulint.coordcheck.depth import choose_depths

    assert choose_depths(12, None) == [6, 12, 24] and choose_depths(2, None) == [2, 4, 8]
    assert choose_depths(12, [16, 4, 8, 8]) == [4, 8, 16]


def depth_result(**changes):
    from mulint.coordcheck import DepthCoordResult, DepthMeasure

    values = {
        "stream_change": ({2: 0.05, 4: 0.07, 8: 0.11}, 0.57, "blow-up"),
        "block_change": ({2: 0.018, 4: 0.019, 8: 0.016}, -0.07, "blow-up"),
        "stream_init": ({2: 0.04, 4: 0.04, 8: 0.04}, 0.03, "ok"),
        "block_update": ({2: 0.1, 4: 0.1, 8: 0.1}, 0.0, "ok"),
    }
    measures = [DepthMeasure(key=k, values=v, slope=s, status=st) for k, (v, s, st) in values.items()]
    fields = dict(
        target="gpt.py:GPT",
        depths=[2, 4, 8],
        width=128,
        steps=3,
        seeds=2,
        optimizer="GPT.configure_optimizers",
        depth_knob="config.n_layer",
        blocks="transformer.h",
        measures=measures,
    )
    return DepthCoordResult(**{**fields, **changes})


def test_text_and_json_output():
    from mulint.report.coord_view import as_json, as_text

    result = depth_result(notes=["a note"])
    text = as_text(result)
    assert text.startswith("gpt.py:GPT: depth coordinate check FAIL (depths 2, 4, 8 of config.n_layer; width 128")
    assert "note: a note" in text and "blocks: transformer.h" in text
    row = next(line for line in text.splitlines() if line.startswith("residual stream's change"))
    assert row.split()[-5:] == ["0.07", "0.11", "+0.57", "+0", "blow-up"]
    assert text.splitlines()[-1] == (
        "residual stream's change grows with depth (MU951); a block's change in one step falls slower than "
        "1/depth (MU951)"
    )
    data = json.loads(as_json(result))
    assert data["verdict"] == "fail" and data["depths"] == [2, 4, 8] and data["blocks"] == "transformer.h"
    assert data["measures"][1] == {
        "name": "block_change",
        "description": "a block's change in one step",
        "slope": -0.07,
        "expected": -1.0,
        "status": "blow-up",
        "values": {"2": 0.018, "4": 0.019, "8": 0.016},
    }


def test_a_lazy_result_passes_unless_the_profile_fails_it():
    from mulint.coordcheck import DepthMeasure

    lazy = [DepthMeasure(key="block_update", values={4: 1.0, 8: 0.7}, slope=-0.5, status="lazy")]
    assert depth_result(measures=lazy).verdict == "pass"
    assert depth_result(measures=lazy, lazy_fails=True).verdict == "fail"


def test_the_result_crosses_from_a_worker():
    from mulint.engine.wire import check_result, decode, encode

    result = depth_result()
    back = check_result("coord", decode(encode({"coord": result, "deps": [], "deps_since_ns": 0})))["coord"]
    assert back == result and back.verdict == "fail"


def test_the_plot_is_written(tmp_path):
    from mulint.coordcheck.plot import save_plot

    path = tmp_path / "depth.png"
    save_plot(depth_result(), str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--depths", "4"], "two or more depths"),
        (["--depths", "1,4"], "at least 2 blocks"),
        (["--depths", "4,x"], "not a comma-separated list"),
        (["--depths", "4,8", "--widths", "32,64,128"], "drop --widths"),
    ],
)
def test_bad_depths_are_usage_errors(mulint, args, says):
    code, _, err = mulint("coord", f"{MODELS / 'depth_residual.py'}:CompleteP", *args)
    assert code == 2 and says in err


@pytest.mark.slow
def test_the_command_line_exits_1_on_a_failing_depth_check_and_writes_json_and_a_plot(mulint, tmp_path):
    plot = tmp_path / "sp.png"
    code, out, err = mulint(
        "coord", f"{MODELS / 'depth_residual.py'}:Standard", "--depths", "4,8", "--seeds", "1", "--format", "json",
        "--plot", str(plot),
    )  # fmt: skip
    data = json.loads(out)
    assert code == 1 and data["verdict"] == "fail" and data["depth_knob"] == "n_layer", err
    assert {m["name"]: m["status"] for m in data["measures"]}["stream_change"] == "blow-up"
    assert plot.stat().st_size > 0


@pytest.mark.slow
def test_the_python_api_runs_the_depth_check():
    import mulint

    report = mulint.coord(stacks.CompleteP, depths=[4, 8], steps=2, seeds=1, device="cpu")
    assert report.ok and set(report.slopes) == {"stream_change", "block_change", "stream_init", "block_update"}
    assert report.slopes["block_change"] == pytest.approx(-1.0, abs=0.15)
    assert json.loads(report.to_json())["depths"] == [4, 8] and "depth coordinate check PASS" in str(report)


@pytest.mark.slow
def test_check_coord_leaves_depth_to_the_note_on_a_model_without_depth_scaling(mulint):
    """nanoGPT with no branch multiplier under the default profile: width results only, no MU95x."""
    code, out, err = mulint("check", str(EXAMPLES / "nanogpt_sp.py"), "--coord", "--select", "MU9", "--format", "json")
    codes = {f["code"] for f in json.loads(out)["findings"]}
    assert code == 1 and "MU901" in codes and not {c for c in codes if c.startswith("MU95")}, err


def test_the_streams_change_is_taken_against_a_shrinking_stream_at_init_only():
    from mulint.coordcheck import DepthMeasure
    from mulint.coordcheck.depth import against_init, transient_growth
    from mulint.profiles import load_profile

    # shrinking at init: divided by it; growing at init (MU954's finding): divided by the first depth's only
    assert against_init({2: 1.0, 4: 1.0, 8: 1.0}, {2: 2.0, 4: 1.0, 8: 0.5}) == {2: 0.5, 4: 1.0, 8: 2.0}
    assert against_init({2: 1.0, 4: 2.0}, {2: 1.0, 4: 4.0}) == {2: 1.0, 4: 2.0}
    limits = load_profile("mup").coord
    grows = DepthMeasure(key="stream_change", values={2: 0.5, 4: 1.0, 8: 2.0}, slope=1.0, status="blow-up")
    [note] = transient_growth(grows, 0.0, limits)  # flat by itself: the growth came from the stream at init
    assert grows.status == "ok" and "+1.00" in note and "+0.00" in note
    really = DepthMeasure(key="stream_change", values={2: 0.5, 4: 1.0, 8: 2.0}, slope=1.0, status="blow-up")
    assert transient_growth(really, 0.8, limits) == [] and really.status == "blow-up"


def test_blocks_the_model_never_calls_are_a_clear_error():
    from mulint.errors import MulintError

    with pytest.raises(MulintError, match="never calls a block") as caught:
        run("PartsLoop", depths=[2, 4], steps=1)
    assert "x = block(x)" in caught.value.hint
