"""The fixers on source text: facts built like the analysis builds them for examples/nanogpt_sp.py give
the findings `mulint check` reports there (codes, lines, parameters, edits), and their fixes rewrite
a copy of that file as `mulint check --diff` does. libcst only: no model is built.

On a small attention layer: safe fixes only by default, writing, and the fixer's refusals (text changed
since the analysis, a fixer that finds nothing to change). MU303's schedule fix and MU403's
`bias=False` on their own sources.
"""

import ast
import shutil
import textwrap
from pathlib import Path

import pytest

from mulint.fix import plan_fixes
from mulint.fix.files import CHANGED, digest
from mulint.reading.source_rules import check_source
from mulint.rules import by_code, check_model_rules

from .cases import edit_field
from .facts_builder import adam, embedding, hidden, model, mup_module, sdpa, tied, vector

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nanogpt_sp.py"


def nanogpt_sp():
    """The facts of examples/nanogpt_sp.py:GPT (2 blocks, n_embd 128, one AdamW lr), at its lines:
    Linear and Embedding inits at 89 and 93, c_proj re-initialised at 85, biases zeroed at 91."""
    params = [
        tied("transformer.wte.weight", "lm_head.weight", init=0.0, line=81, init_line=89, out_line=102, lr=0.0, wd=0.1),
        embedding("transformer.wpe.weight", init=0.0, std=0.02, line=76, init_line=93, lr=0.0, wd=0.1),
    ]
    for i in range(2):
        h = f"transformer.h.{i}"
        params += [
            vector(f"{h}.ln_1.weight", line=60, lr=0.0),
            vector(f"{h}.ln_1.bias", init=None, line=60, lr=0.0),
            hidden(f"{h}.attn.c_attn.weight", init=0.0, out=3, line=31, init_line=89, lr=0.0, wd=0.1),
            vector(f"{h}.attn.c_attn.bias", init=None, op="linear", line=31, init_line=91, lr=0.0),
            hidden(f"{h}.attn.c_proj.weight", init=0.0, std=0.01, line=32, init_line=85, lr=0.0, wd=0.1),
            vector(f"{h}.attn.c_proj.bias", init=None, op="linear", line=32, init_line=91, lr=0.0),
            vector(f"{h}.ln_2.weight", line=62, lr=0.0),
            vector(f"{h}.ln_2.bias", init=None, line=62, lr=0.0),
            hidden(f"{h}.mlp.c_fc.weight", init=0.0, out=4, line=50, init_line=89, lr=0.0, wd=0.1),
            vector(f"{h}.mlp.c_fc.bias", init=None, op="linear", line=50, init_line=91, lr=0.0),
            hidden(f"{h}.mlp.c_proj.weight", init=0.0, std=0.01, line=51, init_line=85, lr=0.0, wd=0.1),
            vector(f"{h}.mlp.c_proj.bias", init=None, op="linear", line=51, init_line=91, lr=0.0),
        ]
    params += [
        vector("transformer.ln_f.weight", line=78, lr=0.0),
        vector("transformer.ln_f.bias", init=None, line=78, lr=0.0),
    ]
    return model(
        *params,
        optimizer=adam(line=116, eps=1e-8, hidden_grad_rms=2e-3, label="GPT.configure_optimizers"),
        attention=[sdpa(line=42), sdpa(line=42, node="scaled_dot_product_attention_1")],
        target="net.py:GPT",
        width_knob="config.n_embd",
    )


# What `mulint check examples/nanogpt_sp.py --format json` reports: (code, line, parameter, fix edit fields).
REPORTED = [
    ("MU201", 42, None, {"kind": "attention-scale", "form": "sdpa-default", "base_head_dim": 32}),
    (
        "MU101",
        85,
        "transformer.h.*.attn.c_proj.weight, transformer.h.*.mlp.c_proj.weight",
        {"kind": "init-std", "power": 0.5, "exclude": []},
    ),
    (
        "MU101",
        89,
        "transformer.h.*.attn.c_attn.weight, transformer.h.*.mlp.c_fc.weight",
        {"kind": "init-std", "power": 0.5, "exclude": ["lm_head.weight"]},
    ),
    (
        "MU102",
        102,
        "transformer.wte.weight",
        {
            "kind": "readout-multiplier",
            "lines": [102],
            "module": "lm_head",
            "params": ["transformer.wte.weight", "lm_head.weight"],
        },
    ),
    (
        "MU301",
        116,
        "transformer.h.*.attn.c_attn.weight, transformer.h.*.attn.c_proj.weight, transformer.h.*.mlp.c_fc.weight, "
        "transformer.h.*.mlp.c_proj.weight",
        {"kind": "optimizer-lr", "role": "hidden", "cls": "AdamW", "family": "adam"},
    ),
    ("MU301", 116, "transformer.wte.weight", {"kind": "optimizer-lr", "role": "output"}),
]


def test_the_facts_give_the_findings_mulint_check_reports():
    found = sorted(check_model_rules(nanogpt_sp()), key=lambda f: f.sort_key)
    assert [(f.code, f.line, f.parameter) for f in found] == [(c, line, p) for c, line, p, _ in REPORTED]
    for finding, (_, _, _, expected) in zip(found, REPORTED):
        edit = finding.fix.edits[0]
        assert {k: edit_field(edit, k) for k in expected} == expected
        assert (edit_field(edit, "path"), edit_field(edit, "base_width"), edit_field(edit, "width_knob")) == (
            "net.py",
            128,
            "config.n_embd",
        )


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """Every fix of the facts planned once on a copy of the example: (folder, plan, fixed text)."""
    folder = tmp_path_factory.mktemp("nanogpt")
    shutil.copy(EXAMPLE, folder / "net.py")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        result = plan_fixes(check_model_rules(nanogpt_sp()), unsafe=True)
        return folder, result, result.files["net.py"].render().code


def test_the_fixes_rewrite_the_source_as_check_diff_does(planned):
    folder, result, fixed = planned
    assert len(result.fixed) == 6 and result.remaining == [] and result.declined == {}
    ast.parse(fixed)
    for line in (
        "        # µP: attention logits scale like 1/head_dim; sqrt(32) / head_dim equals 1/sqrt(head_dim) at head_dim 32",
        "                                           scale=math.sqrt(32) / q.size(-1))",
        "                                      std=0.02 / math.sqrt(2 * config.n_layer) * (128 / config.n_embd) ** 0.5)",
        "            mup_std_scale = (128 / self.config.n_embd) ** 0.5 if module.weight is not self.lm_head.weight else 1.0",
        "            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02 * mup_std_scale)",
        "        logits = self.lm_head(x) * (128 / self.config.n_embd)",
        '    "transformer.h.*.attn.c_attn.weight": -1,',
        "            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)",  # the Embedding branch keeps its init
        "            torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **extra), self, self.config.n_embd / 128)",
    ):
        assert line + "\n" in fixed, line
    table = fixed.split("MUP_LR_EXPONENTS = {")[1].split("}")[0]
    assert table.count(": -1,") == 4 and "wte" not in table  # the tied table keeps the embedding's lr
    assert result.diff().startswith("--- a/net.py\n+++ b/net.py\n")
    assert (folder / "net.py").read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")  # nothing written


ATTENTION = """\
import math

import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, width=128, n_head=4):
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        nn.init.normal_(self.qkv.weight, std=0.02)
        self.n_head = n_head

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return y
"""


@pytest.fixture
def attention(tmp_path, monkeypatch):
    """A small SP attention layer as net.py, and its findings: MU101 (unsafe fix) at 11, MU201 (safe) at 17."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(ATTENTION, encoding="utf-8")
    facts = model(
        hidden("qkv.weight", init=0.0, out=3, line=10, init_line=11),
        attention=[sdpa(line=17)],
        target="net.py:Attention",
    )
    findings = sorted(check_model_rules(facts), key=lambda f: f.line)
    assert [(f.code, f.line) for f in findings] == [("MU101", 11), ("MU201", 17)]
    return tmp_path / "net.py", findings


def test_safe_fixes_only_by_default_and_the_unsafe_on_request(attention):
    path, findings = attention
    safe = plan_fixes(findings, unsafe=False)
    assert [f.code for f in safe.fixed] == ["MU201"] and [f.code for f in safe.remaining] == ["MU101"]
    assert safe.declined == {}  # not declined: only not enabled
    text = safe.files["net.py"].render().code
    assert (
        "        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=math.sqrt(32) / q.size(-1))\n"
        in text
    )
    assert "        nn.init.normal_(self.qkv.weight, std=0.02)\n" in text
    both = plan_fixes(findings, unsafe=True)
    assert len(both.fixed) == 2
    text = both.files["net.py"].render().code
    assert (
        "        # µP: hidden init std × (128 / width) ** 0.5, which is 1 at the base width 128\n"
        "        nn.init.normal_(self.qkv.weight, std=0.02 * (128 / width) ** 0.5)\n"
    ) in text
    assert path.read_text(encoding="utf-8") == ATTENTION  # planning writes nothing
    assert both.write() == ["net.py"] and path.read_text(encoding="utf-8") == text
    assert both.write() == []  # the file holds the fixed text already


def test_the_init_fix_takes_the_power_the_exponent_needs(tmp_path, monkeypatch):
    """An init ∝ width^-0.25 needs (base / width) ** 0.25 more, not the usual square root."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(ATTENTION.replace("std=0.02)", "std=0.02 * width ** -0.25)"), encoding="utf-8")
    facts = model(hidden("qkv.weight", init=-0.25, out=3, line=10, init_line=11), target="net.py:Attention")
    (finding,) = check_model_rules(facts)
    result = plan_fixes([finding], unsafe=True)
    assert (
        "        nn.init.normal_(self.qkv.weight, std=0.02 * width ** -0.25 * (128 / width) ** 0.25)\n"
        in result.files["net.py"].render().code
    )


def test_a_file_changed_since_the_analysis_is_not_fixed(attention):
    """check records each file's digest before anything reads it: --fix on a file that changed since is
    refused and writes nothing; one that changes between planning and writing keeps its findings."""
    from types import SimpleNamespace

    from mulint.errors import MulintError
    from mulint.fix.run import fix_findings

    path, findings = attention
    analysed = SimpleNamespace(findings=findings, sources={str(path.resolve()): digest(path.read_bytes())})
    path.write_text(ATTENTION + "# edited\n", encoding="utf-8")
    with pytest.raises(MulintError, match="changed while it was checked"):
        fix_findings(analysed, {path}, apply_fixes=True, show_diff=False, unsafe_fixes=True)
    assert path.read_text(encoding="utf-8") == ATTENTION + "# edited\n"
    result = plan_fixes(findings, unsafe=True)
    path.write_text(ATTENTION + "# edited again\n", encoding="utf-8")
    assert result.write() == [] and result.fixed == [] and len(result.remaining) == 2
    assert set(result.declined.values()) == {CHANGED}


def test_a_fixer_that_finds_nothing_declines(attention):
    """The attention already given a scale (the finding is stale): no call left to rewrite, the finding stays."""
    path, findings = attention
    path.write_text(ATTENTION.replace("is_causal=True)", "is_causal=True, scale=0.1)"), encoding="utf-8")
    result = plan_fixes(findings[1:], unsafe=False)
    assert result.fixed == [] and result.remaining == findings[1:]
    assert (
        result.declined[id(findings[1])]
        == "could not tell which scaled_dot_product_attention call the finding is about"
    )


def test_the_schedule_fix_scales_each_group_s_own_lr(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train = tmp_path / "train.py"
    train.write_text(
        textwrap.dedent(
            """\
            learning_rate = 6e-4

            def get_lr(it):
                return learning_rate * 0.5

            for it in range(10):
                lr = get_lr(it)
                for param_group in optimizer.param_groups:
                    param_group['lr'] = lr
            """
        ),
        encoding="utf-8",
    )
    (finding,) = check_source(train, [by_code("MU303")])
    assert (finding.line, finding.path) == (9, "train.py")
    result = plan_fixes([finding], unsafe=True)
    fixed = result.files["train.py"].render().code
    assert (
        "        # µP: the schedule scales each param group's own initial lr\n"
        "        param_group['lr'] = lr * (param_group.setdefault('initial_lr', param_group['lr']) / learning_rate)\n"
    ) in fixed
    assert plan_fixes([finding], unsafe=False).fixed == []  # an unsafe fix


def test_the_shared_readout_gets_bias_false(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "net.py"
    source.write_text(
        textwrap.dedent(
            """\
            import torch.nn as nn
            from mup import MuSharedReadout


            class Net(nn.Module):
                def __init__(self, width=128, vocab=256):
                    super().__init__()
                    self.wte = nn.Embedding(vocab, width)
                    self.lm_head = MuSharedReadout(self.wte.weight)
            """
        ),
        encoding="utf-8",
    )
    facts = model(mup_modules=[mup_module("lm_head", "MuSharedReadout", bias_ok=False, line=9)])
    (finding,) = check_model_rules(facts)
    assert finding.fix.applicability == "safe"
    result = plan_fixes([finding], unsafe=False)
    assert (
        "        self.lm_head = MuSharedReadout(self.wte.weight, bias=False)\n" in result.files["net.py"].render().code
    )
