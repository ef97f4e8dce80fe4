"""The init the training code applies after building the model: a GPT whose `train.py` calls
`model.init_weights()` is judged with that init (no factory file), findings point into the init
method, and an init method nothing calls is named in a note."""

import json
import math
import sys
import textwrap

import pytest
import torch

from mulint.reading.training_init import find_training_init, is_init_name, methods_called, uncalled_init_methods

# A GPT configured by keyword-only dataclass, blocks in a ModuleDict, and its init chosen by parameter
# name in a separate method: the constructor leaves PyTorch's default init (an SP readout).
MODEL = """
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(kw_only=True)
class Shape:
    d_model: int = 64
    n_head: int = 4
    n_block: int = 2
    vocab: int = 97
    ctx: int = 16


class Block(nn.Module):
    def __init__(self, s: Shape):
        super().__init__()
        self.n_head = s.n_head
        self.ln_a = nn.LayerNorm(s.d_model)
        self.qkv = nn.Linear(s.d_model, 3 * s.d_model, bias=False)
        self.out = nn.Linear(s.d_model, s.d_model, bias=False)
        self.ln_m = nn.LayerNorm(s.d_model)
        self.up = nn.Linear(s.d_model, 4 * s.d_model, bias=False)
        self.down = nn.Linear(4 * s.d_model, s.d_model, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln_a(x)).view(b, t, 3, self.n_head, d // self.n_head).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.n_head / d)
        x = x + self.out(y.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.ln_m(x))))


class TinyLM(nn.Module):
    def __init__(self, shape: Shape):
        super().__init__()
        self.shape = shape
        self.tok = nn.Embedding(shape.vocab, shape.d_model)
        self.pos = nn.Parameter(torch.zeros(shape.ctx, shape.d_model))
        self.blocks = nn.ModuleDict({f"b{i}": Block(shape) for i in range(shape.n_block)})
        self.ln_f = nn.LayerNorm(shape.d_model)
        self.lm_head = nn.Linear(shape.d_model, shape.vocab, bias=False)

    def init_weights(self):
        for name, p in self.named_parameters():
            if name.startswith("blocks.") and p.dim() == 2:
                nn.init.normal_(p, std=HIDDEN_STD)  # hidden init
            elif name == "lm_head.weight":
                READOUT_INIT  # readout init
            elif name == "tok.weight":
                nn.init.normal_(p, std=1.0)

    def forward(self, idx):
        x = self.tok(idx) + self.pos[: idx.shape[1]]
        for block in self.blocks.values():
            x = block(x)
        return self.lm_head(self.ln_f(x))
"""

MUP = {"HIDDEN_STD": "p.shape[1] ** -0.5", "READOUT_INIT": "nn.init.zeros_(p)"}
SP = {"HIDDEN_STD": "0.02", "READOUT_INIT": "nn.init.normal_(p, std=0.02)"}

TRAIN = """
import torch
from model import Shape, TinyLM


def main():
    model = TinyLM(Shape(d_model=256)).to("cpu")
    model.init_weights()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(100):
        idx = torch.randint(0, 97, (8, 16))
        loss = model(idx).logsumexp(-1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()


if __name__ == "__main__":
    main()
"""


def model_source(values: dict) -> str:
    source = MODEL
    for key, value in values.items():
        source = source.replace(key, value)
    return source


def write_repo(folder, values, train=TRAIN):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(model_source(values))
    if train is not None:
        (folder / "train.py").write_text(textwrap.dedent(train))
    return folder


def codes_at(report: dict) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for f in report["findings"]:
        out.setdefault(f["code"], set()).add(f["line"])
    return out


def model_entry(report: dict) -> dict:
    return next(t for t in report["targets"] if t["mode"] == "model")


def line_of(path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def independent_hidden_exponent(values: dict, tmp_path) -> float:
    """The fitted width exponent of a hidden weight's std after the init the script applies, computed
    here by building the model and calling its init directly."""
    folder = tmp_path / "independent"
    folder.mkdir()
    (folder / "indep_model.py").write_text(model_source(values))
    sys.path.insert(0, str(folder))
    try:
        import indep_model as module
    finally:
        sys.path.remove(str(folder))
    stds = {}
    for width in (64, 256):
        torch.manual_seed(0)
        model = module.TinyLM(module.Shape(d_model=width))
        model.init_weights()
        stds[width] = model.blocks["b0"].up.weight.std().item()
    sys.modules.pop("indep_model", None)
    return math.log(stds[256] / stds[64]) / math.log(4)


@pytest.mark.slow
@pytest.mark.parametrize("twin", ["mup", "sp"])
def test_init_from_the_training_script_decides_the_verdict(twin, tmp_path, mulint):
    values = MUP if twin == "mup" else SP
    exponent = independent_hidden_exponent(values, tmp_path)
    repo = write_repo(tmp_path / twin, values)
    code, out, err = mulint("check", str(repo / "model.py"), "--format", "json", "--no-cache")
    report = json.loads(out)
    assert not report["errors"], report["errors"]
    target = model_entry(report)
    assert any(
        "init applied as the training code does" in n and "model.init_weights()" in n for n in target["notes"]
    ), target["notes"]
    found = codes_at(report)
    hidden_line = line_of(repo / "model.py", "# hidden init")
    if twin == "mup":
        assert abs(exponent + 0.5) < 0.1  # the independent check: std ∝ width^-½
        assert "MU101" not in found and "MU102" not in found, report["findings"]
    else:
        assert abs(exponent) < 0.1  # constant std
        assert found.get("MU101") == {hidden_line}, found
        readout_line = line_of(repo / "model.py", "# readout init")
        assert readout_line in found.get("MU102", set()), found


@pytest.mark.slow
def test_without_the_training_script_the_init_is_judged_as_constructed(tmp_path, mulint):
    repo = write_repo(tmp_path / "alone", MUP, train=None)
    code, out, err = mulint("check", str(repo / "model.py"), "--format", "json", "--no-cache")
    report = json.loads(out)
    notes = model_entry(report)["notes"]
    assert any("init judged as constructed" in n and "TinyLM.init_weights()" in n for n in notes), notes
    # PyTorch's default Linear init is an SP readout: the constructed model really has MU102.
    assert "MU102" in codes_at(report)


def write(folder, name, source):
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def test_reads_each_way_of_initialising_after_construction(tmp_path):
    model = write(
        tmp_path,
        "net.py",
        """
        import torch.nn as nn
        def reset_all(m):
            pass
        class Net(nn.Module):
            def _init_weights(self, m):
                pass
    """,
    )
    write(
        tmp_path,
        "train_lm.py",
        """
        from net import Net as Model, reset_all
        def weights_init(m):
            pass
        def run(cfg):
            net = Model().cuda()
            net.apply(net._init_weights)
            reset_all(net)
            net.apply(weights_init)
            net.reset_parameters(std=0.01)
            net.init_weights(cfg.std)
            net = DDP(net)
            net.init_weights()
    """,
    )
    calls = find_training_init(model, "Net").calls
    assert [(c.kind, c.name) for c in calls] == [
        ("apply", "_init_weights"),
        ("function", "reset_all"),
        ("apply-function", "weights_init"),
        ("method", "reset_parameters"),
        ("method", "init_weights"),
    ]
    assert calls[1].defined_in == str(model.resolve())
    assert calls[2].defined_in.endswith("train_lm.py")
    assert calls[3].kwargs == {"std": 0.01} and calls[3].readable
    assert not calls[4].readable  # cfg.std is only known when the script runs
    assert all(c.line > 6 for c in calls) and calls[0].path.endswith("train_lm.py")


def test_a_script_that_builds_another_model_applies_nothing(tmp_path):
    model = write(tmp_path, "net.py", "import torch.nn as nn\nclass Net(nn.Module):\n    pass\n")
    write(
        tmp_path,
        "train.py",
        """
        from net import Net
        other = Teacher()
        other.init_weights()
        print(Net)
    """,
    )
    assert find_training_init(model, "Net").calls == []


def test_init_methods_reached_from_the_constructor_are_called():
    source = textwrap.dedent("""
        class A:
            def __init__(self):
                self.apply(self._init_weights)
                self._setup()
            def _setup(self):
                self.reset_parameters()
            def reset_parameters(self): self.w.zero_()
            def _init_weights(self, m): self.w.zero_()
            def init_weights(self): self.w.zero_()
            def initialize_cache(self): self.w.zero_()
        class H(PreTrainedModel):
            def __init__(self, config):
                self.post_init()
            def _init_weights(self, module): self.w.zero_()
    """)
    assert uncalled_init_methods(source, "A", set()) == ["init_weights", "initialize_cache"]
    assert uncalled_init_methods(source, "A", {"init_weights"}) == ["initialize_cache"]
    assert uncalled_init_methods(source, "H", set()) == []
    assert is_init_name("weights_init") and is_init_name("resetParameters") and not is_init_name("__init__")
    assert not is_init_name("forward") and not is_init_name("configure_optimizers")


def test_an_inherited_init_method_reaches_the_subclasses_own():
    """lingua's LMTransformer: the base class's init_weights() calls self.reset_parameters(), which the
    subclass defines; calling init_weights() calls it."""
    base = textwrap.dedent("""
        class Base:
            def init_weights(self):
                self.reset_parameters()
                for layer in self.layers:
                    layer.init_weights()
    """)
    sub = textwrap.dedent("""
        class LM(Base):
            def __init__(self):
                self.layers = []
            def reset_parameters(self): self.w.zero_()
            def init_cache(self): self.w.zero_()
    """)
    assert uncalled_init_methods(sub, "LM", {"init_weights"}, [(base, "Base")]) == ["init_cache"]
    assert uncalled_init_methods(sub, "LM", {"init_weights"}) == ["reset_parameters", "init_cache"]
    assert uncalled_init_methods(sub, "LM", set(), [(base, "Base")]) == ["reset_parameters", "init_cache"]
    own = sub.replace(
        "def reset_parameters(self): self.w.zero_()",
        "def init_weights(self): self.w.zero_()\n    def reset_parameters(self): self.w.zero_()",
    )
    assert uncalled_init_methods(own, "LM", {"init_weights"}, [(base, "Base")]) == ["reset_parameters", "init_cache"]


def test_a_factory_calling_the_init_method_is_not_told_nothing_calls_it(tmp_path, mulint):
    """The init the factory runs on the model it builds counts, through the base class's method."""
    (tmp_path / "lm.py").write_text(
        textwrap.dedent("""
        import torch.nn as nn


        class Base(nn.Module):
            def init_weights(self):
                self.reset_parameters()


        class LM(Base):
            def __init__(self, dim=64):
                super().__init__()
                self.inp = nn.Linear(8, dim)
                self.hidden = nn.Linear(dim, dim)
                self.out = nn.Linear(dim, 4)

            def reset_parameters(self):
                nn.init.normal_(self.hidden.weight, std=self.hidden.in_features ** -0.5)

            def forward(self, x):
                return self.out(self.hidden(self.inp(x).relu()).relu())
    """)
    )
    (tmp_path / "build.py").write_text(
        textwrap.dedent("""
        from lm import LM


        def make(dim=64):
            model = LM(dim)
            model.init_weights()
            return model
    """)
    )
    notes = {}
    for target in ("build.py:make", "lm.py:LM"):  # the class alone: nothing beside it calls init_weights()
        code, out, err = mulint("inspect", f"{tmp_path / target}", "--format", "json")
        assert code == 0, err
        notes[target] = [n for n in json.loads(out)["notes"] if "init judged as constructed" in n]
    assert notes["build.py:make"] == []
    assert len(notes["lm.py:LM"]) == 1 and "LM.reset_parameters()" in notes["lm.py:LM"][0]
    assert methods_called("def make():\n    m = LM()\n    m.init_weights()\n    return m.to('cpu')\n") == {
        "init_weights",
        "to",
    }


def test_an_init_after_set_base_shapes_or_a_checkpoint_is_not_repeated(tmp_path):
    model = write(tmp_path, "net.py", "import torch.nn as nn\nclass Net(nn.Module):\n    pass\n")
    write(
        tmp_path,
        "train.py",
        """
        from mup import set_base_shapes
        from net import Net
        net = Net()
        print(net)
        net.init_weights()
        set_base_shapes(net, "base.bsh")
        net.apply(net._init_weights)
    """,
    )
    first, second = find_training_init(model, "Net").calls
    assert first.after == "" and second.after.startswith("set_base_shapes(net")


def test_an_init_that_raises_is_judged_as_constructed(tmp_path):
    from mulint.construct.training_init import notes, plan_training_init, with_training_init
    from mulint.construct.width import find_knob

    model = write(
        tmp_path,
        "raising_net.py",
        """
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, width=16):
                super().__init__()
                self.a = nn.Linear(4, width)
                self.b = nn.Linear(width, 1)

            def init_weights(self):
                nn.init.zeros_(self.a.weight)
                raise RuntimeError("needs mup's infshape")
    """,
    )
    write(tmp_path, "train.py", "from raising_net import Net\nm = Net()\nm.init_weights()\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import raising_net
    finally:
        sys.path.remove(str(tmp_path))
    plan = plan_training_init(model, "Net", raising_net)
    knob = with_training_init(find_knob(raising_net.Net, "raising_net.py:Net"), plan)
    torch.manual_seed(0)
    built = knob.build(16)
    torch.manual_seed(0)
    assert torch.equal(built.a.weight, raising_net.Net(16).a.weight)  # restored as constructed
    told = notes(plan, raising_net.Net)
    assert any("judged as constructed" in n and "RuntimeError" in n for n in told), told
    sys.modules.pop("raising_net", None)


@pytest.mark.slow
def test_an_edited_training_script_is_analysed_again(tmp_path, mulint):
    repo = write_repo(tmp_path / "cached", SP)
    first = json.loads(mulint("check", str(repo / "model.py"), "--format", "json")[1])
    assert "MU101" in codes_at(first)
    train = repo / "train.py"
    train.write_text(train.read_text().replace("    model.init_weights()\n", ""))
    second = json.loads(mulint("check", str(repo / "model.py"), "--format", "json")[1])
    assert not any(t.get("cached") for t in second["targets"])
    assert "MU101" not in codes_at(second)  # PyTorch's default hidden init is µP's fan_in^-½


def test_a_script_above_the_models_package_is_read(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("")
    model = write(tmp_path / "models", "gpt.py", "import torch.nn as nn\nclass GPT(nn.Module):\n    pass\n")
    write(
        tmp_path,
        "train_gpt.py",
        """
        from models.gpt import GPT
        gpt = GPT()
        gpt.reset_parameters()
    """,
    )
    [call] = find_training_init(model, "GPT").calls
    assert (call.kind, call.name, call.where) == ("method", "reset_parameters", "train_gpt.py:4")


def test_an_init_written_in_the_script_is_named_not_run(tmp_path):
    from mulint.construct.training_init import notes, plan_training_init

    model = write(
        tmp_path,
        "inline_net.py",
        """
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, width=8):
                super().__init__()
                self.head = nn.Linear(width, 2)
    """,
    )
    write(
        tmp_path,
        "train.py",
        """
        import torch.nn as nn
        from inline_net import Net
        net = Net()
        for name, p in net.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        nn.init.zeros_(net.head.weight)
        net.head.bias.data.fill_(0.0)
        print(sum(p.numel() for p in net.parameters()))
    """,
    )
    calls = find_training_init(model, "Net").calls
    assert [(c.kind, c.line) for c in calls] == [("inline", 5), ("inline", 8), ("inline", 9)]
    plan = plan_training_init(model, "Net", None)
    assert not plan.apply and len(plan.skipped) == 3
    told = notes(plan, type("Net", (), {}))
    assert "for name, p in net.named_parameters()" in told[0] and "judged as constructed" in told[0], told


def test_a_placeholder_init_method_is_not_told_nothing_calls_it():
    """`def init_weights(self): pass` (a hand-written transformer whose layers initialise themselves)
    changes nothing whether or not it is called."""
    source = textwrap.dedent('''
        class M:
            def __init__(self):
                self.w = 1
            def init_weights(self):
                pass
            def reset_parameters(self):
                """Left to the layers."""
            def _init_cache(self):
                raise NotImplementedError
            def init_buffers(self):
                """Zeroed."""
                self.w.zero_()
    ''')
    assert uncalled_init_methods(source, "M", set()) == ["init_buffers"]
