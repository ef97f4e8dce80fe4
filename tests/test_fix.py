"""`check --fix / --unsafe-fixes / --diff`: fixed files parse, re-check clean, are unchanged by a second
run, and compute exactly what they computed before at the base width (same seed)."""

import importlib.util
import itertools
import json
import re
import shutil

import pytest
import torch
from conftest import EXAMPLES, MODELS, ROOT

NANOGPT = EXAMPLES / "nanogpt_sp.py"
TINY = MODELS / "gpt_explicit_sp.py"  # written differently: explicit attention, untied head, aliases
MINGPT = MODELS / "mingpt_sp.py"  # keeps no config on self: the fix stores the width itself
_names = itertools.count()


def copy(tmp_path, source, name=None):
    path = tmp_path / (name or source.name)
    shutil.copyfile(source, path)
    return path


def load(path):
    spec = importlib.util.spec_from_file_location(f"fixed_{next(_names)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(out):
    """The text report's lines without the closing count of what was analysed."""
    return [line for line in out.splitlines() if not re.match(r"\d+ models? analysed, ", line)]


def findings(mulint, path, *args):
    code, out, err = mulint("check", str(path), "--format", "json", *args)
    assert code in (0, 1), err
    return code, json.loads(out)["findings"]


def fix(mulint, path, *args):
    """Run --fix; the file must still parse (Python's own parser) and a second run must change nothing."""
    code, out, err = mulint("check", str(path), "--fix", *args)
    assert code in (0, 1), err
    text = path.read_bytes()
    compile(text, str(path), "exec")
    again, _, err = mulint("check", str(path), "--fix", *args)
    assert path.read_bytes() == text, "a second --fix changed the file again"
    return code, out


# --- same computation at the base width ----------------------------------------------------------


def _tokens(vocab):
    idx = torch.randint(0, vocab, (2, 17), generator=torch.Generator().manual_seed(1))
    return idx[:, :-1].contiguous(), idx[:, 1:].contiguous()


def gpt_config_run(module, vocab, *optimizer_args):
    """Init, both forward paths, the optimizer's per-parameter lr/wd, and two AdamW steps of a
    `GPT(GPTConfig())` whose forward returns (logits, loss)."""
    torch.manual_seed(0)
    model = module.GPT(module.GPTConfig())
    optimizer = model.configure_optimizers(*optimizer_args)
    x, y = _tokens(vocab)
    return _train(model, optimizer, lambda: model(x, y)[1], lambda: model(x)[0])


def nanogpt_run(module):
    return gpt_config_run(module, 256, 0.1, 1e-3, (0.9, 0.95), "cpu")


def mingpt_run(module):
    return gpt_config_run(module, 100)


def tiny_run(module):
    torch.manual_seed(0)
    model = module.TinyGPT()
    optimizer = module.make_optimizer(model)
    x, y = _tokens(128)
    return _train(model, optimizer, lambda: model(x, y), lambda: model(x))


def _train(model, optimizer, loss_fn, logits_fn):
    record = [p.detach().clone() for p in model.parameters()] + [logits_fn().detach()]
    settings = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            settings[id(p)] = (group["lr"], group.get("weight_decay"))
    record.append(torch.tensor([settings[id(p)][0] for p in model.parameters()]))
    record.append(torch.tensor([settings[id(p)][1] or 0.0 for p in model.parameters()]))
    for _ in range(2):
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        record.append(loss.detach())
    return record + [p.detach().clone() for p in model.parameters()] + [logits_fn().detach()]


def assert_same_at_base(before, after, run):
    old, new = run(load(before)), run(load(after))
    assert len(old) == len(new)
    for a, b in zip(old, new):
        assert torch.equal(a, b), (a - b).abs().max()


def assert_coord_passes(mulint, target, *args):
    code, out, err = mulint("coord", target, "--format", "json", *args)
    assert code == 0 and json.loads(out)["verdict"] == "pass", out


# --- the whole promise, on three differently written GPTs ------------------------------------------


@pytest.mark.slow
def test_nanogpt_fix_diff_recheck_and_coordinate_check(mulint, tmp_path):
    path = copy(tmp_path, NANOGPT)
    code, out, _ = mulint("check", str(path))
    assert code == 1 and out.count(" [*] ") == 1  # only MU201's fix is safe
    assert report(out)[-1] == (
        "[*] 1 fixable with the `--fix` option (5 hidden fixes can be enabled with the `--unsafe-fixes` option)."
    )
    _, found = findings(mulint, path)
    for finding in found:  # each fix's applicability is the one its rule page states
        header = (ROOT / "rules" / f"{finding['code']}.md").read_text().splitlines()[2]
        assert f"Fix: {finding['fix']['applicability']}" in header, (finding["code"], header)
        assert finding["fix"]["edits"] and all(e["path"] == str(path) for e in finding["fix"]["edits"])
    code, diff, err = mulint("check", str(path), "--diff", "--unsafe-fixes")
    assert code == 1 and path.read_bytes() == NANOGPT.read_bytes()  # --diff writes nothing
    assert diff.startswith(f"--- a/{path}\n+++ b/{path}\n") and "Would fix 6 problems." in err
    assert "+        logits = self.lm_head(x) * (128 / self.config.n_embd)\n" in diff

    code, out = fix(mulint, path, "--unsafe-fixes")
    assert code == 0 and report(out) == ["Found 6 problems (6 fixed, 0 remaining)."]
    assert diff == "".join(_unified(NANOGPT, path))  # --diff showed exactly what --fix wrote
    code, out, err = mulint("check", str(path))
    assert (code, report(out), err) == (0, ["All checks passed!"], "")
    assert mulint("check", str(path), "--diff", "--unsafe-fixes")[:2] == (0, "")
    assert_same_at_base(NANOGPT, path, nanogpt_run)
    assert_coord_passes(mulint, f"{path}:GPT", "--seeds", "1")


def _unified(before, after):
    import difflib

    return difflib.unified_diff(
        before.read_text().splitlines(keepends=True),
        after.read_text().splitlines(keepends=True),
        fromfile=f"a/{after}",
        tofile=f"b/{after}",
    )


@pytest.mark.slow
def test_second_gpt_style_is_fixed_too(mulint, tmp_path):
    path = copy(tmp_path, TINY)
    code, out = fix(mulint, path, "--unsafe-fixes")
    assert code == 0 and report(out) == ["Found 5 problems (5 fixed, 0 remaining)."], out
    assert findings(mulint, path) == (0, [])
    text = path.read_text()
    # Both readout calls (loss and generation) get the multiplier, not only the traced one.
    assert text.count("* (96 / self.d_model)") == 2
    assert "/ (self.head_dim / math.sqrt(32))" in text
    assert_same_at_base(TINY, path, tiny_run)
    assert_coord_passes(mulint, f"{path}:TinyGPT", "--seeds", "1")


@pytest.mark.slow
def test_mingpt_style_keeps_the_width_on_self(mulint, tmp_path):
    path = copy(tmp_path, MINGPT)
    code, out = fix(mulint, path, "--unsafe-fixes")
    assert code == 0 and report(out) == ["Found 6 problems (6 fixed, 0 remaining)."], out
    assert findings(mulint, path) == (0, [])
    text = path.read_text()
    assert text.count("self.mup_width = config.n_embd") == 1
    assert text.index("super().__init__()", text.index("class GPT")) < text.index("self.mup_width")
    assert "self.lm_head(x) * (96 / self.mup_width)" in text
    assert_same_at_base(MINGPT, path, mingpt_run)
    assert_coord_passes(mulint, f"{path}:GPT")


# --- each fix on its own -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "rule, expect",
    [
        ("MU201", "att = (q @ k.transpose(-2, -1)) / (self.head_dim / math.sqrt(32))"),
        ("MU102", "return self.head(x[:, -1:, :]) * (96 / self.d_model)"),
        ("MU101", "mup_std_scale = (96 / d_model) ** 0.5 if m.weight is not self.head.weight else 1.0"),
        ("MU301", "torch.optim.Adam(model.parameters(), lr=lr), model, model.d_model / 96)"),
    ],
)
def test_each_fix_alone(mulint, tmp_path, rule, expect):
    """`from torch.nn import functional as F`, `from torch.nn import init`, `import torch.nn as nn`."""
    path = copy(tmp_path, TINY)
    code, out = fix(mulint, path, "--unsafe-fixes", "--select", rule)
    assert "1 fixed" in out or "2 fixed" in out, out
    assert expect in path.read_text()
    assert findings(mulint, path, "--select", rule) == (0, [])
    assert_same_at_base(TINY, path, tiny_run)


@pytest.mark.slow
def test_safe_fix_keeps_crlf_encoding_and_comments(mulint, tmp_path):
    source = NANOGPT.read_text(encoding="utf-8").replace('"""A nanoGPT', '"""µP-less: a nanoGPT', 1)
    path = tmp_path / "crlf_gpt.py"
    path.write_bytes(source.replace("\n", "\r\n").encode("utf-8"))
    code, out = fix(mulint, path)  # safe fixes only: MU201
    assert "(1 fixed, 5 remaining)" in out
    data = path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") and "µP-less".encode() in data
    lines = data.decode("utf-8").split("\r\n")
    assert all(line in lines for line in source.splitlines() if line.strip().startswith("#"))
    assert any("scale=math.sqrt(32) / q.size(-1)" in line for line in lines)
    assert [f["code"] for f in findings(mulint, path)[1]].count("MU201") == 0
    assert_same_at_base(NANOGPT, path, nanogpt_run)


@pytest.mark.slow
def test_sgd_learning_rates_per_role(mulint, tmp_path):
    path = tmp_path / "sgd_mlp.py"
    path.write_text(SGD_MLP)
    assert {f["code"] for f in findings(mulint, path)[1]} == {"MU302"}
    code, out = fix(mulint, path, "--unsafe-fixes")
    assert code == 0 and "(3 fixed, 0 remaining)" in out
    assert findings(mulint, path) == (0, [])
    module = load(path)
    for width, ratio in ((64, 1.0), (256, 4.0)):
        model = module.MLP(width)
        lrs = {
            n: g["lr"]
            for g in module.make_optimizer(model).param_groups
            for n, p in model.named_parameters()
            if any(p is q for q in g["params"])
        }
        assert lrs == {
            "inp.weight": 0.1 * ratio,
            "inp.bias": 0.1 * ratio,
            "hidden.weight": 0.1,
            "hidden.bias": 0.1 * ratio,
            "out.weight": 0.1 / ratio,
            "out.bias": 0.1,
        }


SGD_MLP = """import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.width = width
        self.inp = nn.Linear(8, width)
        self.hidden = nn.Linear(width, width)
        self.out = nn.Linear(width, 4)
        nn.init.zeros_(self.out.weight)

    def forward(self, x):
        return self.out(self.hidden(self.inp(x).relu()).relu())


def make_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.1)
"""


# --- what cannot be fixed stays, with a reason -----------------------------------------------------

QUERY_EXPRESSION = """import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d_model=64, n_head=4):
        super().__init__()
        self.n_head = n_head
        self.emb = nn.Embedding(32, d_model)
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, 32)
        nn.init.zeros_(self.out.weight)

    def heads(self, x):
        b, t, c = x.shape
        return x.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)

    def forward(self, idx):
        x = self.emb(idx)
        k, v = self.kv(x).chunk(2, dim=-1)
        y = F.scaled_dot_product_attention(self.heads(self.q(x)), self.heads(k), self.heads(v), is_causal=True)
        return self.out(y.transpose(1, 2).flatten(2))
"""


@pytest.mark.slow
def test_unfixable_attention_keeps_its_finding_with_a_reason(mulint, tmp_path):
    path = tmp_path / "query_expression.py"
    path.write_text(QUERY_EXPRESSION)
    code, out, err = mulint("check", str(path), "--fix")
    assert code == 1 and path.read_text() == QUERY_EXPRESSION
    assert (
        "MU201 attention logits" in out
        and "(not fixed: the query passed to scaled_dot_product_attention is an expression; bind it to a name first"
        in out
    )
    assert report(out)[-1] == "Found 1 problem."  # no `[*]`: this fix cannot be made
    assert mulint("check", str(path), "--diff")[:2] == (0, "")


def _finding(path, code, edit, applicability="unsafe", parameter=None):
    """A finding whose fix is the typed edit of ``edit`` (a dict with its kind), in the file at ``path``;
    the fields of a model's edit the test leaves out get placeholder values."""
    from mulint.edits import KINDS, edit_from_dict
    from mulint.findings import Finding, Fix

    defaults = {"path": str(path), "base_width": 32, "width_knob": "width", "target": f"{path}:M"}
    fields = {f for f in KINDS[edit["kind"]].__dataclass_fields__}
    typed = edit_from_dict({"kind": edit["kind"], **{k: v for k, v in {**defaults, **edit}.items() if k in fields}})
    return Finding(
        code=code,
        name="x",
        severity="error",
        message="m",
        path=str(path),
        line=edit["line"],
        column=1,
        parameter=parameter,
        fix=Fix(applicability, "fix it", [typed]),
    )


TIED = """import torch


class LM(torch.nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.width = width
        self.wte = torch.nn.Embedding(10, width)
        self.mid = torch.nn.Linear(width, width)


def make_optimizer(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3)
"""


def test_tied_readout_without_multiplier_is_left_with_a_reason(tmp_path):
    """Fixing MU301 alone: a tied embedding/readout needs lr ∝ 1 as an embedding and ∝ 1/width as a
    readout; only the hidden weights get their learning rate, the tied one keeps its finding."""
    from mulint.fix import plan_fixes

    path = tmp_path / "tied.py"
    path.write_text(TIED)
    params = [
        {
            "names": ["wte.weight"],
            "lr_exponent": 0.0,
            "uses": [
                {"role": "input", "multiplier": 0.0, "target": 0.0, "k": 1},
                {"role": "output", "multiplier": 0.0, "target": -1.0, "k": 1},
            ],
        },
        {
            "names": ["mid.weight"],
            "lr_exponent": 0.0,
            "uses": [{"role": "hidden", "multiplier": 0.0, "target": -1.0, "k": 1}],
        },
    ]
    edit = {
        "kind": "optimizer-lr",
        "line": 13,
        "family": "adam",
        "cls": "Adam",
        "base_width": 32,
        "width_knob": "width",
        "target": f"{path}:LM",
        "params": params,
    }
    hidden = _finding(path, "MU301", {**edit, "role": "hidden"})
    output = _finding(path, "MU301", {**edit, "role": "output"})
    result = plan_fixes([hidden, output], unsafe=True)
    assert result.fixed == [hidden] and result.remaining == [output]
    assert "fix MU102 too" in result.declined[id(output)]
    result.write()
    text = path.read_text()
    assert '"mid.weight": -1,' in text and "wte.weight" not in text.split("MUP_LR_EXPONENTS = {")[1].split("}")[0]
    assert "torch.optim.Adam(model.parameters(), lr=1e-3), model, model.width / 32)" in text


def test_a_fix_that_would_not_parse_leaves_the_file_alone(tmp_path, monkeypatch):
    import libcst as cst

    from mulint import fix as fixes
    from mulint.edits import AttentionScale
    from mulint.fix import apply

    path = tmp_path / "model.py"
    source = "x = 1\r\ny = 2  # keep\r\n"
    path.write_bytes(source.encode())

    def broken(ctx, edit, state):  # libcst prints `1 = 1`, which Python's parser rejects
        statement = ctx.statement_at(edit.line)
        ctx.rewrite(
            statement.body[0], lambda updated: updated.with_changes(targets=[cst.AssignTarget(cst.Integer("1"))])
        )

    monkeypatch.setitem(apply.FIXERS, AttentionScale, broken)
    edit = {"kind": "attention-scale", "line": 1, "form": "explicit", "base_head_dim": 16}
    finding = _finding(path, "MU201", edit, "safe")
    result = fixes.plan_fixes([finding], unsafe=False)
    assert result.remaining == [finding] and "would not parse" in result.declined[id(finding)]
    assert result.write() == [] and path.read_bytes() == source.encode()
    assert result.diff() == ""


# --- MU303: the training script's schedule -------------------------------------------------------

SCHEDULE = """import torch

learning_rate, min_lr = 1e-3, 1e-4


def get_lr(it):
    return learning_rate if it < 2 else min_lr + (learning_rate - min_lr) / it


def run(groups):
    optimizer = torch.optim.SGD(groups, lr=learning_rate)
    seen = []
    for it in range(5):
        lr = get_lr(it)
        for param_group in optimizer.param_groups:
            param_group['lr'] = lr
        seen.append([g["lr"] for g in optimizer.param_groups])
    return seen
"""


def test_schedule_scales_each_groups_own_lr(mulint, tmp_path):
    path = tmp_path / "train.py"
    path.write_text(SCHEDULE)
    code, out = fix(mulint, path, "--unsafe-fixes")
    assert code == 0 and "(1 fixed, 0 remaining)" in out
    assert (
        "param_group['lr'] = lr * (param_group.setdefault('initial_lr', param_group['lr']) / learning_rate)"
        in path.read_text()
    )
    assert findings(mulint, path) == (0, [])
    old, new = load_source(SCHEDULE), load(path)
    one = lambda: [{"params": [torch.nn.Parameter(torch.zeros(2))]}]  # noqa: E731
    assert new.run(one()) == old.run(one())  # SP: exactly the old schedule
    two = [
        {"params": [torch.nn.Parameter(torch.zeros(2))]},
        {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": learning_rate_half()},
    ]
    assert all(b == pytest.approx(a / 2) for a, b in new.run(two))  # µP: the second group keeps its ratio


def learning_rate_half():
    return 1e-3 / 2


def load_source(text):
    namespace = {}
    exec(compile(text, "<schedule>", "exec"), namespace)
    return type("Module", (), namespace)


def test_fix_refuses_explicit_widths(mulint):
    code, out, err = mulint("check", str(NANOGPT), "--fix", "--widths", "64,128")
    assert code == 2 and "drop --widths" in err


MU403_MODEL = """import torch.nn as nn
from mup import MuSharedReadout, set_base_shapes


class LM(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.emb = nn.Embedding(32, width)
        self.readout = MuSharedReadout(self.emb.weight{bias})  # the tied readout

    def forward(self, idx):
        return self.readout(self.emb(idx))


def make_model(width: int = 64) -> LM:
    model = LM(width)
    set_base_shapes(model, LM(64), delta=LM(128))
    return model
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "bias, fixed", [("", ", bias=False)"), (", True", ", False)"), (", bias=True", ", bias=False)")]
)
def test_mushared_readout_bias_fix(tmp_path, mulint, bias, fixed):
    path = tmp_path / "lm.py"
    path.write_text(MU403_MODEL.format(bias=bias))
    code, out, _ = mulint("check", str(path), "--select", "MU403")
    assert code == 1 and "MU403 [*]" in out  # a safe fix: offered without --unsafe-fixes
    code, out, _ = mulint("check", str(path), "--select", "MU403", "--fix")
    text = path.read_text()
    assert code == 0 and f"MuSharedReadout(self.emb.weight{fixed}  # the tied readout" in text
    assert mulint("check", str(path), "--select", "MU403", "--fix")[0] == 0 and path.read_text() == text
