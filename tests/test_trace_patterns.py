"""Forward code that asks about values (meta tensors have none) and in-place ops are still traced
and read: `torch.equal(q, k)` branches, nn.TransformerEncoder with a mask, `w += mask`, `q *= s`."""

import json
import textwrap

import pytest

pytestmark = pytest.mark.slow  # every test traces a model in a worker

MODEL = textwrap.dedent("""
    import math
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Attention(nn.Module):
        def __init__(self, width, heads):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(width, 3 * width)
            self.out = nn.Linear(width, width)
            self.batch_first = False  # read by nn.TransformerEncoder

        def forward(self, query, key, value, attn_mask=None):
            if torch.equal(query, key) and torch.equal(key, value):  # self-attention
                q, k, v = self.qkv(query).chunk(3, dim=-1)
            else:
                raise NotImplementedError
            T, B, C = q.shape
            d = C // self.heads
            q = q.clone()
            q *= SCALE
            q, k, v = (t.reshape(T, B * self.heads, d).transpose(0, 1) for t in (q, k, v))
            w = torch.bmm(q, k.transpose(1, 2))
            w += attn_mask
            y = torch.bmm(F.softmax(w, dim=-1), v).transpose(0, 1).reshape(T, B, C)
            return self.out(y), None


    class Layer(nn.Module):
        def __init__(self, width, heads):
            super().__init__()
            self.self_attn = Attention(width, heads)
            self.fc = nn.Linear(width, width)

        def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
            src = src + self.self_attn(src, src, src, attn_mask=src_mask)[0]
            return src + self.fc(src)


    class Net(nn.Module):
        def __init__(self, width: int = 64):
            super().__init__()
            self.embed = nn.Embedding(50, width)
            self.body = nn.TransformerEncoder(Layer(width, 4), 2, enable_nested_tensor=False)
            self.head = nn.Linear(width, 50)

        def forward(self, src):
            mask = torch.triu(torch.full((src.size(0), src.size(0)), float("-inf")), diagonal=1)
            return self.head(self.body(self.embed(src), mask))


    def example_inputs(model):
        return (torch.randint(0, 50, (8, 2)),)
""")


@pytest.mark.parametrize("scale, exponent", [("1 / math.sqrt(d)", -0.5), ("1 / d", -1.0)])
def test_value_checks_and_in_place_ops(tmp_path, inspect_json, scale, exponent):
    path = tmp_path / "net.py"
    path.write_text(MODEL.replace("SCALE", scale))
    report = inspect_json(f"{path}:Net")
    sites = report["attention"]
    assert len(sites) == 2 and all(s["scale_exponent"] == pytest.approx(exponent) for s in sites)
    roles = {p["name"]: p["roles"] for p in report["parameters"]}
    assert roles["body.layers.0.self_attn.qkv.weight"] == ["hidden"] and roles["head.weight"] == ["output"]


def test_a_failed_trace_prints_no_graph(tmp_path, mulint):
    path = tmp_path / "net.py"
    path.write_text(
        MODEL.replace("SCALE", "1 / d").replace(
            "if torch.equal(query, key)", "if query.abs().sum() < 0 and torch.equal(query, key)"
        )
    )
    # A value branch whose outcome does not depend on the random inputs: with `query.sum() > 0`
    # the recording fallback analysed the model or failed by chance (exit 1 or 2).
    code, out, err = mulint("check", f"{path}:Net")
    assert code == 2 and "[trace]" in err and "branches on tensor values" in err
    assert "def forward" not in err + out  # torch's partial graph is not printed


CLONED = textwrap.dedent("""
    import copy
    import torch.nn as nn
    from mup import MuReadout, set_base_shapes


    class Block(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.fc = nn.Linear(width, width)
            nn.init.normal_(self.fc.weight, std=INIT_STD)  # the init line

        def forward(self, x):
            return x + self.fc(x).relu()


    class Net(nn.Module):
        def __init__(self, width: int = 64):
            super().__init__()
            self.inp = nn.Linear(8, width)
            block = Block(width)
            self.blocks = nn.ModuleList([copy.deepcopy(block) for _ in range(2)])  # as nn.TransformerEncoder does
            self.out = MuReadout(width, 4)
            self.out.weight.data.zero_()

        def forward(self, x):
            x = self.inp(x)
            for b in self.blocks:
                x = b(x)
            return self.out(x)


    def make_model(width: int = 64):
        model = Net(width)
        set_base_shapes(model, Net(32), delta=Net(48))
        LATE
        return model
""")


def _cloned(tmp_path, std, late=""):
    path = tmp_path / "cloned.py"
    path.write_text(CLONED.replace("INIT_STD", std).replace("LATE", late or "pass"))
    return path


def _lines(mulint, path):
    code, out, err = mulint("check", f"{path}:make_model", "--format", "json", "--no-cache")
    assert code in (0, 1), err
    return {(f["code"], f["line"]) for f in json.loads(out)["findings"]}


def test_deep_copied_layers_keep_their_init_site(tmp_path, mulint):
    path = _cloned(tmp_path, "0.02")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "# the init line" in text)
    assert _lines(mulint, path) == {("MU101", line)}
    assert _lines(mulint, _cloned(tmp_path, "width ** -0.5")) == set()


def test_writes_to_deep_copied_parameters_after_set_base_shapes(tmp_path, mulint):
    path = _cloned(tmp_path, "width ** -0.5", "nn.init.normal_(model.blocks[0].fc.weight, std=0.02)")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "model.blocks[0].fc.weight" in text)
    assert _lines(mulint, path) == {("MU402", line)}
