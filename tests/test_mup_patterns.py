"""The `mup` package's own patterns: every correct use checks clean, every documented misuse is flagged
at the line to edit (MUP_REFERENCE §5; rules/MU401-403.md)."""

import json

import pytest
from conftest import EXAMPLES

pytestmark = pytest.mark.slow  # every test analyses a model in a worker

MLP = """
import mup
import torch
import torch.nn as nn
from mup import MuAdam, MuAdamW, MuReadout, MuSGD, set_base_shapes


class Net(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.inp = nn.Linear(8, width)
        self.hidden = nn.Linear(width, width)
        self.out = MuReadout(width, 4, readout_zero_init=True)

    def forward(self, x):
        return self.out(self.hidden(self.inp(x).relu()).relu())


def make_model(width: int = 64) -> Net:
    model = Net(width)
    set_base_shapes(model, Net(64), delta=Net(128))
    mup.init.normal_(model.hidden.weight, std=0.02 * 8)
    return model


def make_optimizer(model):
    return MuAdam(model.parameters(), lr=1e-3)
"""

TIED = """
import torch
import torch.nn as nn
from mup import MuAdam, MuSharedReadout, set_base_shapes


class LM(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.emb = nn.Embedding(32, width)
        self.hidden = nn.Linear(width, width)
        self.readout = MuSharedReadout(self.emb.weight, bias=False)

    def forward(self, idx):
        return self.readout(self.hidden(self.emb(idx)).relu())


def make_model(width: int = 64) -> LM:
    model = LM(width)
    set_base_shapes(model, LM(64), delta=LM(128))
    # set_base_shapes rescaled the shared weight by sqrt(width_mult) as a readout (mup issue #55):
    # give the embedding back its width-independent init.
    nn.init.normal_(model.emb.weight, std=1.0)
    return model


def make_optimizer(model):
    return MuAdam(model.parameters(), lr=1e-3)
"""


@pytest.fixture
def check(mulint, tmp_path):
    """Write a variant of a template to its own module (each is imported once) and check it."""
    count = [0]

    def run(source, *replacements, name="model"):
        for old, new in replacements:
            assert old in source, old
            source = source.replace(old, new)
        count[0] += 1
        path = tmp_path / f"{name}_{count[0]}.py"
        path.write_text(source)
        code, out, err = mulint("check", str(path), "--format", "json", "--no-cache")
        report = json.loads(out)
        lines = source.splitlines()
        found = sorted(
            (f["code"], lines[f["line"] - 1].strip()) for f in report["findings"] if f["path"].endswith(path.name)
        )
        elsewhere = [f for f in report["findings"] if not f["path"].endswith(path.name)]
        assert not elsewhere, f"findings must point at the user's file: {elsewhere}"
        return code, found, report

    return run


# Correct use: clean ---------------------------------------------------------------------------

CORRECT = {
    "base and delta models, mup.init, MuAdam": (MLP,),
    "MuAdamW with weight decay": (
        MLP,
        ("return MuAdam(model.parameters(), lr=1e-3)", "return MuAdamW(model.parameters(), lr=1e-3, weight_decay=0.1)"),
    ),
    "MuSGD": (
        MLP,
        ("return MuAdam(model.parameters(), lr=1e-3)", "return MuSGD(model.parameters(), lr=0.1, momentum=0.9)"),
    ),
    "readout with output_mult, not zero-initialised": (
        MLP,
        ("MuReadout(width, 4, readout_zero_init=True)", "MuReadout(width, 4, output_mult=2.0)"),
    ),
    "MuSharedReadout without bias, embedding re-initialised": (TIED,),
}


@pytest.mark.parametrize("case", CORRECT)
def test_correct_mup_use_checks_clean(check, case):
    source, *replacements = CORRECT[case]
    code, found, report = check(source, *replacements)
    assert found == [] and code == 0 and not report["errors"]
    [model] = [t for t in report["targets"] if t["mode"] == "model"]
    assert model["optimizer"] and model["parameters"] >= 3


def test_base_shapes_from_a_bsh_file(check, tmp_path):
    import mup

    namespace = {}
    exec(MLP, namespace)  # the model class, to write its base shapes the way users do
    bsh = tmp_path / "net.bsh"
    mup.make_base_shapes(namespace["Net"](64), namespace["Net"](128), savefile=str(bsh))
    assert "hidden.weight" in bsh.read_text()
    code, found, report = check(
        MLP, ("set_base_shapes(model, Net(64), delta=Net(128))", f"set_base_shapes(model, {str(bsh)!r})")
    )
    assert found == [] and code == 0 and not report["errors"]
    # the same file with the optimizer left as plain Adam: still judged
    code, found, _ = check(
        MLP,
        ("set_base_shapes(model, Net(64), delta=Net(128))", f"set_base_shapes(model, {str(bsh)!r})"),
        ("return MuAdam(model.parameters(), lr=1e-3)", "return torch.optim.Adam(model.parameters(), lr=1e-3)"),
    )
    assert found == [("MU301", "return torch.optim.Adam(model.parameters(), lr=1e-3)")]


def test_the_mup_package_gpt_example_is_clean(check):
    code, found, _ = check((EXAMPLES / "gpt_mup_package.py").read_text())
    assert found == [] and code == 0


# Misuse: flagged where it is made ------------------------------------------------------------


def test_missing_set_base_shapes(check):
    code, found, report = check(
        MLP,
        ("    set_base_shapes(model, Net(64), delta=Net(128))\n", ""),
        ("    mup.init.normal_(model.hidden.weight, std=0.02 * 8)\n", ""),
    )
    assert found == [("MU401", "self.out = MuReadout(width, 4, readout_zero_init=True)")] and code == 1


def test_torch_init_after_set_base_shapes(check):
    code, found, _ = check(
        MLP, ("mup.init.normal_(model.hidden.weight, std=0.02 * 8)", "nn.init.normal_(model.hidden.weight, std=0.02)")
    )
    assert found == [("MU402", "nn.init.normal_(model.hidden.weight, std=0.02)")]


def test_torch_init_before_set_base_shapes_is_rescaled_by_nothing_and_flagged_as_hidden_init(check):
    # set_base_shapes does not rescale matrices: a constant std set before it stays SP.
    code, found, _ = check(
        MLP,
        ("    model = Net(width)\n", "    model = Net(width)\n    nn.init.normal_(model.hidden.weight, std=0.02)\n"),
        ("    mup.init.normal_(model.hidden.weight, std=0.02 * 8)\n", ""),
    )
    assert found == [("MU101", "nn.init.normal_(model.hidden.weight, std=0.02)")]


def test_plain_adam_instead_of_muadam(check):
    code, found, report = check(
        MLP, ("return MuAdam(model.parameters(), lr=1e-3)", "return torch.optim.Adam(model.parameters(), lr=1e-3)")
    )
    assert found == [("MU301", "return torch.optim.Adam(model.parameters(), lr=1e-3)")]
    assert "hidden" in report["findings"][0]["message"]


def test_plain_sgd_instead_of_musgd(check):
    # MuSGD is judged by the learning rates it produces (the "MuSGD" correct case): plain SGD's are SP.
    code, found, _ = check(
        MLP,
        (
            "return MuAdam(model.parameters(), lr=1e-3)",
            "return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)",
        ),
    )
    assert set(found) == {("MU302", "return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)")}


def test_nn_linear_readout_is_stopped_by_mups_own_assertion(mulint, tmp_path):
    path = tmp_path / "linear_readout.py"
    path.write_text(MLP.replace("MuReadout(width, 4, readout_zero_init=True)", "nn.Linear(width, 4)"))
    code, out, err = mulint("check", str(path))
    assert code == 2 and "[build]" in err and "MuReadout" in err


def test_nn_linear_readout_without_mups_assertion(check):
    code, found, _ = check(
        MLP,
        ("MuReadout(width, 4, readout_zero_init=True)", "nn.Linear(width, 4)"),
        ("delta=Net(128))", "delta=Net(128), do_assert=False)"),
    )
    assert found == [
        ("MU102", "self.out = nn.Linear(width, 4)"),
        ("MU301", "return MuAdam(model.parameters(), lr=1e-3)"),
    ]


def test_in_out_readout_parameter_that_mup_takes_for_an_input(check):
    """mup reads fan_in from shape[1]: a (width, classes) readout used as h @ W looks input-like to it."""
    code, found, report = check(
        MLP,
        (
            "self.out = MuReadout(width, 4, readout_zero_init=True)",
            "self.w_out = nn.Parameter(torch.randn(width, 4) / width ** 0.5)",
        ),
        (
            "return self.out(self.hidden(self.inp(x).relu()).relu())",
            "return self.hidden(self.inp(x).relu()).relu() @ self.w_out",
        ),
    )
    assert [c for c, _ in found] == ["MU102", "MU301"]
    by_code = {f["code"]: f for f in report["findings"]}
    assert by_code["MU102"]["parameter"] == "w_out"
    assert "output parameters" in by_code["MU301"]["message"] and "w_out" in by_code["MU301"]["parameter"]


def test_sqrt_attention_left_in_a_mup_model(check):
    source = (EXAMPLES / "gpt_mup_package.py").read_text()
    code, found, _ = check(source, ("scale=math.sqrt(BASE_N_EMBD // self.n_head) / head_dim)", "scale=None)"))
    assert [c for c, _ in found] == ["MU201"]


def test_mushared_readout_with_default_bias(check):
    code, found, _ = check(TIED, ("MuSharedReadout(self.emb.weight, bias=False)", "MuSharedReadout(self.emb.weight)"))
    assert found == [("MU403", "self.readout = MuSharedReadout(self.emb.weight)")]


def test_mushared_readout_rescaled_by_set_base_shapes_is_flagged_there(check):
    """mup's rescale_params multiplies the shared embedding by sqrt(width_mult): as an input it then
    grows with width, and as a readout it is SP-sized (mup issue #55)."""
    code, found, report = check(TIED, ("    nn.init.normal_(model.emb.weight, std=1.0)\n", ""))
    assert found == [
        ("MU102", "return self.readout(self.hidden(self.emb(idx)).relu())"),
        ("MU103", "set_base_shapes(model, LM(64), delta=LM(128))"),
    ]
    assert all(f["parameter"] == "emb.weight" for f in report["findings"])
    # rescale_params=False keeps the embedding's own init: clean
    code, found, _ = check(
        TIED,
        ("    nn.init.normal_(model.emb.weight, std=1.0)\n", ""),
        ("delta=LM(128))", "delta=LM(128), rescale_params=False)"),
    )
    assert found == []


# The SP baseline and zero inits ----------------------------------------------------------------

SP_BASELINE = ("set_base_shapes(model, Net(64), delta=Net(128))", "set_base_shapes(model, None)")
TORCH_INIT = ("mup.init.normal_(model.hidden.weight, std=0.02 * 8)", "nn.init.normal_(model.hidden.weight, std=0.02)")
QUERY_ZERO = (
    "    return model\n\n\ndef make_optimizer",
    "    model.hidden.weight.data[: width // 4] = 0  # zero query\n    return model\n\n\ndef make_optimizer",
)


def test_torch_init_after_the_sp_baseline_is_an_sp_init_not_undone_mup(check):
    """set_base_shapes(model, None) takes the model as its own base: nothing to undo, the init is SP."""
    code, found, _ = check(MLP, SP_BASELINE, TORCH_INIT)
    # SP learning rates too: hidden and output updates both too large
    assert found == [
        ("MU101", "nn.init.normal_(model.hidden.weight, std=0.02)"),
        ("MU301", "return MuAdam(model.parameters(), lr=1e-3)"),
        ("MU301", "return MuAdam(model.parameters(), lr=1e-3)"),
    ]


def test_zeroing_part_of_a_weight_after_set_base_shapes_is_not_mu402(check):
    # after mup.init: clean; after a torch init: MU402 stays at the line that drew the values
    assert check(MLP, QUERY_ZERO)[1] == []
    assert check(MLP, TORCH_INIT, QUERY_ZERO)[1] == [("MU402", "nn.init.normal_(model.hidden.weight, std=0.02)")]


def test_query_zero_init_of_the_sp_baseline_keeps_its_constant_std_finding(check):
    """mutransformers' coord-check recipe: SP baseline, constant-std init, then the query rows zeroed."""
    code, found, _ = check(MLP, SP_BASELINE, TORCH_INIT, QUERY_ZERO)
    # SP learning rates too: hidden and output updates both too large
    assert found == [
        ("MU101", "nn.init.normal_(model.hidden.weight, std=0.02)"),
        ("MU301", "return MuAdam(model.parameters(), lr=1e-3)"),
        ("MU301", "return MuAdam(model.parameters(), lr=1e-3)"),
    ]
    # and a full zero init is never a finding
    zero = ("mup.init.normal_(model.hidden.weight, std=0.02 * 8)", "model.hidden.weight.data.zero_()")
    assert check(MLP, zero)[1] == []


# A project's own `mup.py` is not the package ----------------------------------------------------------

OWN_MUP = '''
"""This project's own µP helpers: the same names as the package's, none of its machinery."""
import torch.nn as nn


class MuReadout(nn.Linear):
    """Readout with a base/width multiplier; its init is rescaled so that the product is µP's."""

    def __init__(self, d_in, d_out, base_width):
        super().__init__(d_in, d_out, bias=False)
        self.mult = base_width / d_in
        self.weight.data *= (d_in / base_width) ** 0.5

    def forward(self, x):
        return super().forward(x) * self.mult


def param_groups(model, base_width, width, lr):
    hidden = [p for n, p in model.named_parameters() if n == "hidden.weight"]  # the one matrix of two widths
    rest = [p for n, p in model.named_parameters() if n != "hidden.weight"]
    return [{"params": hidden, "lr": lr * base_width / width}, {"params": rest, "lr": lr}]
'''

USES_OWN_MUP = """
import torch
import torch.nn as nn
from mup import MuReadout, param_groups

BASE = 32


class Net(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.width = width
        self.inp = nn.Linear(8, width)
        self.hidden = nn.Linear(width, width)
        self.out = MuReadout(width, 4, BASE)

    def forward(self, x):
        return self.out(self.hidden(self.inp(x).relu()).relu())


def make_optimizer(model):
    return torch.optim.Adam(param_groups(model, BASE, model.width, 1e-3))
"""


def test_a_projects_own_mup_module_is_judged_by_what_it_does(check, tmp_path):
    """A `mup.py` beside the model, defining its own MuReadout, is not the package: no set_base_shapes
    is asked for (MU401), the model is traced, and its readout is judged by its multiplier and init."""
    (tmp_path / "mup.py").write_text(OWN_MUP)
    code, found, report = check(USES_OWN_MUP)
    assert found == [] and code == 0 and not report["errors"], found
    [model] = [t for t in report["targets"] if t["mode"] == "model"]
    assert model["optimizer"] and model["parameters"] == 5 and not any("not traced" in n for n in model["notes"])
    code, found, report = check(
        USES_OWN_MUP, ("self.out = MuReadout(width, 4, BASE)", "self.out = nn.Linear(width, 4)")
    )
    assert [c for c, _ in found] == ["MU102", "MU301"]
