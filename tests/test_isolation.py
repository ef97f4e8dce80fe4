"""Every model target runs in a worker process: what the model's code does there (print, exit, crash,
hang, eat memory, read argv) never reaches mulint's output or takes it down, and two targets never
share the modules they import."""

import json
import re
import textwrap

import pytest

MODEL = """
import os, sys
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        print("@@building Net with", width, "units")
        print("@@a warning on stderr", file=sys.stderr)
        self.inp = nn.Linear(8, width)
        self.out = nn.Linear(width, 3)
        {extra}

    def forward(self, x):
        print("@@forward pass")
        return self.out(self.inp(x).relu())
"""


def write_model(tmp_path, extra: str = "pass", name: str = "net.py"):
    path = tmp_path / name
    path.write_text(MODEL.replace("{extra}", textwrap.indent(textwrap.dedent(extra), " " * 8).strip()))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["json", "sarif", "github"])
def test_prints_of_the_model_never_reach_the_report(mulint, tmp_path, fmt):
    path = write_model(tmp_path)
    code, out, err = mulint("check", f"{path}:Net", "--format", fmt, "--no-cache")
    assert code == 1  # the SP readout
    assert "@@" not in out
    if fmt == "github":
        assert all(line.startswith("::") for line in out.splitlines())
    else:
        json.loads(out)


@pytest.mark.slow
def test_verbose_shows_what_the_model_printed(mulint, tmp_path):
    path = write_model(tmp_path)
    code, out, err = mulint("check", f"{path}:Net", "--verbose", "--no-cache")
    assert "@@building Net with" in err and "@@forward pass" in err
    assert "@@" not in out


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra, expected",
    [
        ("sys.exit(3)", "called sys.exit(3)"),
        ("os._exit(4)", "exit code 4"),
        ("raise KeyboardInterrupt", "raised KeyboardInterrupt"),
        ("import ctypes; ctypes.string_at(0)", "crashed the worker (SIGSEGV)"),
    ],
)
def test_a_model_that_ends_the_process_is_an_error_of_its_target(mulint, tmp_path, extra, expected):
    path = write_model(tmp_path, extra)
    code, out, err = mulint("check", f"{path}:Net", "--format", "json", "--no-cache")
    assert code == 2
    [error] = json.loads(out)["errors"]
    assert error["target"] == f"{path}:Net" and error["step"] == "build"
    assert expected in error["message"]
    assert "building Net with" in error["output"]  # the last lines it printed are quoted


@pytest.mark.slow
def test_argparse_in_the_model_sees_its_own_file_not_mulints_options(mulint, tmp_path):
    path = write_model(
        tmp_path,
        """
        import argparse
        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float, default=0.1)
        self.lr = parser.parse_args().lr""",
    )
    # mulint's own options (--no-cache, --format) would make the model's parser exit 2.
    code, out, err = mulint("check", f"{path}:Net", "--format", "json", "--no-cache")
    assert code == 1 and json.loads(out)["errors"] == []


@pytest.mark.slow
def test_a_hang_is_stopped_at_the_timeout(mulint, tmp_path):
    path = write_model(tmp_path, "while True:\n    pass")
    code, out, err = mulint("check", f"{path}:Net", "--timeout", "2", "--no-cache")
    assert code == 2
    assert f"{path}:Net: [build] timed out after 2 s" in err
    assert "--timeout" in err


@pytest.mark.slow
def test_memory_past_the_cap_is_a_clear_error(mulint, tmp_path):
    # a buffer that grows with width (a constant-size one is built short): 2 GB of floats at width 32
    path = write_model(tmp_path, 'self.register_buffer("table", torch.zeros(width, 1 << 24))')
    code, out, err = mulint("check", f"{path}:Net", "--max-memory", "1G", "--no-cache")
    assert code == 2
    assert "[build] ran out of memory: the worker may use 1.0 GB (--max-memory)" in err


def test_a_bad_memory_size_is_a_usage_error(mulint, tmp_path):
    code, out, err = mulint("check", str(write_model(tmp_path)), "--max-memory", "lots")
    assert code == 2 and "not a size" in err


@pytest.mark.slow
def test_two_targets_never_share_their_local_modules(mulint, tmp_path):
    """`a/model.py` and `b/model.py` each import their own `layers.py`: each is analysed with its own."""
    for folder, scale in (("a", "1 / q.size(-1)"), ("b", "1 / math.sqrt(q.size(-1))")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "layers.py").write_text(
            textwrap.dedent(f"""
            import math
            import torch.nn as nn
            import torch.nn.functional as F

            class Attention(nn.Module):
                def __init__(self, width, heads=2):
                    super().__init__()
                    self.heads = heads
                    self.qkv = nn.Linear(width, 3 * width)

                def forward(self, x):
                    b, t, c = x.shape
                    q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
                    return F.scaled_dot_product_attention(q, k, v, scale={scale}).transpose(1, 2).reshape(b, t, c)
        """)
        )
        (tmp_path / folder / "model.py").write_text(
            textwrap.dedent("""
            import torch.nn as nn
            from layers import Attention

            class Model(nn.Module):
                def __init__(self, width: int = 32):
                    super().__init__()
                    self.embed = nn.Embedding(50, width)
                    self.attn = Attention(width)

                def forward(self, ids):
                    return self.attn(self.embed(ids))
        """)
        )
    args = ("--select", "MU201", "--format", "json", "--no-cache")
    code, out, err = mulint("check", f"{tmp_path}/b/model.py:Model", f"{tmp_path}/a/model.py:Model", *args)
    findings = json.loads(out)["findings"]
    assert [f["target"] for f in findings] == [f"{tmp_path}/b/model.py:Model"]
    assert findings[0]["path"].endswith("b/layers.py")


@pytest.mark.slow
def test_jobs_give_the_same_report_as_one_worker(mulint, tmp_path):
    for i in range(2):
        write_model(tmp_path, name=f"net{i}.py")
    runs = [mulint("check", str(tmp_path), "--jobs", jobs, "--format", "json", "--no-cache") for jobs in ("1", "2")]
    reports = [json.loads(out) for _, out, _ in runs]
    assert [code for code, _, _ in runs] == [1, 1]
    assert reports[0]["findings"] == reports[1]["findings"] and len(reports[0]["findings"]) == 2
    assert reports[0]["summary"]["models_analysed"] == 2


@pytest.mark.slow
def test_workers_side_by_side_share_the_cores(mulint, tmp_path):
    """Two workers each with torch's pool sized for the whole machine oversubscribe it (3× slower);
    side by side each gets its share of the cores, alone a worker keeps torch's default. (That count is
    what a worker trains with; a check's analysis builds its small models on one thread.)"""
    import os

    import torch

    shown = "import mulint.engine.jobs as jobs; print('@@threads', jobs.training_threads, torch.get_num_threads())"
    for i in range(2):
        write_model(tmp_path, name=f"net{i}.py", extra=shown)
    code, out, err = mulint("check", str(tmp_path), "--jobs", "2", "--verbose", "--no-cache")
    assert code == 1, err
    assert set(re.findall(r"@@threads (\d+) 1", err)) == {str(max(1, (os.cpu_count() or 1) // 2))}, err
    code, out, err = mulint("check", str(tmp_path / "net0.py"), "--jobs", "2", "--verbose", "--no-cache")
    assert set(re.findall(r"@@threads (\d+) 1", err)) == {str(torch.get_num_threads())}, err
