"""Work done beside a worker (`mulint.parallel`): the caller gets the forked copy's result only when it is
the one the caller would have computed; anything else is done again in the caller.

Each case runs in a fresh interpreter, as a worker would: forking the test session itself (its threads,
its plugins) is not what mulint does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(code: str, tmp_path: Path) -> dict:
    script = tmp_path / "case.py"
    script.write_text(textwrap.dedent(code))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env()
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env() -> dict:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT)}


COMMON = """
import json, os, sys
from mulint import parallel
reads = set()
parent = os.getpid()

def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
"""


def test_the_copys_result_comes_from_another_process(tmp_path):
    out = run(
        COMMON
        + """
parallel.allow([lambda: frozenset(reads)])
pending = parallel.beside(lambda: (os.getpid(), [1, 2, 3]))
pid, value = pending.result()
print(json.dumps({"other": pid != parent, "value": value, "outcomes": parallel.outcomes}))
""",
        tmp_path,
    )
    assert out == {"other": True, "value": [1, 2, 3], "outcomes": ["beside"]}


def test_without_allow_the_work_runs_here_when_its_result_is_asked_for(tmp_path):
    out = run(
        COMMON
        + """
order = []
pending = parallel.beside(lambda: order.append("work") or os.getpid())
order.append("between")
print(json.dumps({"here": pending.result() == parent, "order": order, "outcomes": parallel.outcomes}))
""",
        tmp_path,
    )
    assert out == {"here": True, "order": ["between", "work"], "outcomes": ["here"]}


@pytest.mark.parametrize(
    "work, why",
    [
        ('lambda: (reads.add("config.json"), os.getpid())[1]', "it recorded a file the caller has not"),
        ("lambda: os.getpid() if os.getpid() == parent else 1 / 0", "it raised in the copy"),
        ("lambda: os.getpid() if os.getpid() == parent else (lambda: None)", "its value does not pickle"),
        ("lambda: os.getpid() if os.getpid() == parent else os._exit(0)", "it sent nothing"),
    ],
)
def test_work_the_copy_cannot_vouch_for_is_done_again_here(tmp_path, work, why):
    out = run(
        COMMON
        + f"""
parallel.allow([lambda: frozenset(reads)])
pid = parallel.beside({work}).result()
print(json.dumps({{"here": pid == parent, "reads": sorted(reads), "outcomes": parallel.outcomes}}))
""",
        tmp_path,
    )
    assert out["here"] and out["outcomes"] == ["here"], why
    # done here, it changes the caller's state as it would have without the copy
    assert out["reads"] == (["config.json"] if "reads" in work else [])


def test_what_the_copy_recorded_counts_when_the_caller_recorded_it_too(tmp_path):
    """(torch reads the same environment variables on its first trace, wherever that runs)"""
    out = run(
        COMMON
        + """
parallel.allow([lambda: frozenset(reads)])
pending = parallel.beside(lambda: (reads.add("FX_GRAPH_SHOW_STRIDE"), os.getpid())[1])
reads.add("FX_GRAPH_SHOW_STRIDE")
print(json.dumps({"other": pending.result() != parent, "outcomes": parallel.outcomes}))
""",
        tmp_path,
    )
    assert out == {"other": True, "outcomes": ["beside"]}


def test_a_guess_is_made_only_beside(tmp_path):
    out = run(
        COMMON
        + """
ran = []
alone = parallel.beside(lambda: ran.append(1) or 1, redo=False).result()
parallel.allow([lambda: frozenset(reads)])
failed = parallel.beside(lambda: 1 / 0, redo=False).result()
taken = parallel.beside(lambda: 2, redo=False).result()
print(json.dumps({"values": [alone, failed, taken], "ran here": ran, "outcomes": parallel.outcomes}))
""",
        tmp_path,
    )
    assert out == {"values": [None, None, 2], "ran here": [], "outcomes": ["none", "none", "beside"]}


def test_a_cancelled_copy_is_gone(tmp_path):
    out = run(
        COMMON
        + """
import time
parallel.allow([])
pending = parallel.beside(lambda: time.sleep(60), redo=False)
pid = pending._pid
pending.cancel()
print(json.dumps({"alive": alive(pid), "value": pending.result()}))
""",
        tmp_path,
    )
    assert out == {"alive": False, "value": None}


def test_what_a_refused_copy_printed_is_dropped_with_its_result(tmp_path):
    """Its work is done again in the caller, which prints it once: as without the copy."""
    script = tmp_path / "case.py"
    script.write_text(
        COMMON
        + """
parallel.allow([])
def work():
    print("building deeper", flush=True)
    if os.getpid() != parent:
        raise SystemExit(3)  # the model exits; the caller reports it when it does the work itself
    return 1
parallel.beside(work).result()
print("after")
"""
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("building deeper") == 1 and done.stdout.endswith("after\n")


def test_no_copy_is_made_while_a_thread_of_the_models_runs(tmp_path):
    out = run(
        COMMON
        + """
import threading
parallel.allow([lambda: frozenset(reads)])
stop = threading.Event()
threading.Thread(target=stop.wait, daemon=True).start()  # started by the model's code, after allow
pid = parallel.beside(os.getpid).result()
stop.set()
print(json.dumps({"here": pid == parent, "outcomes": parallel.outcomes}))
""",
        tmp_path,
    )
    assert out == {"here": True, "outcomes": ["here"]}


def test_a_copy_that_never_answers_is_killed_and_its_work_done_here(tmp_path):
    out = run(
        COMMON
        + """
import time
parallel.MIN_WAIT, parallel.WAIT_FACTOR = 0.5, 1.0
parallel.allow([lambda: frozenset(reads)])
pending = parallel.beside(lambda: os.getpid() if os.getpid() == parent else time.sleep(600))
copy = pending._pid
start = time.monotonic()
pid = pending.result()
waited = time.monotonic() - start
print(json.dumps({"here": pid == parent, "quick": waited < 5, "alive": alive(copy), "outcomes": parallel.outcomes}))
""",
        tmp_path,
    )
    assert out == {"here": True, "quick": True, "alive": False, "outcomes": ["here"]}


def test_what_the_copy_prints_appears_once_and_the_callers_buffer_is_not_repeated(tmp_path):
    script = tmp_path / "case.py"
    script.write_text(
        COMMON
        + """
parallel.allow([])
sys.stdout.write("before ")  # buffered (a pipe): a copy that flushed it would print it twice
pending = parallel.beside(lambda: print("from the copy") or 1)
pending.result()
print("after")
"""
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("before") == 1 and done.stdout.count("from the copy") == 1
    assert done.stdout.index("before") < done.stdout.index("from the copy") < done.stdout.index("after")


ANALYSE = """
import dataclasses, json, sys
from mulint import parallel
from mulint.engine import jobs
from mulint.engine.deps import DependencyRecorder, gathered
from mulint.engine.options import JobOptions
from mulint.reading.targets import parse_target, resolve

jobs._one_thread()
if sys.argv[1] == "beside":
    parallel.allow([gathered])
found = {}
for text in sys.argv[2:]:  # in one process, as a worker analyses its target; each its own recording
    target = resolve(parse_target(text), allow_exec=True)[0]
    before = len(parallel.outcomes)
    with DependencyRecorder() as recorder:
        facts = jobs.analyse_numbers(target, JobOptions()).facts
    found[text] = {
        "facts": json.dumps(dataclasses.asdict(facts), sort_keys=True, default=repr),
        "depth": facts.depth is not None and bool(facts.depth.branches),
        "outcomes": parallel.outcomes[before:],
        "files": [str(p) for p in recorder.files()],
    }
print(json.dumps(found))
"""

LAZY = """
import json, os
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x):
        return x + self.fc(x)


class Net(nn.Module):
    def __init__(self, d_model: int = 32, n_layer: int = 2):
        super().__init__()
        if n_layer > 2:  # read only when built deeper than its default: by the depth structure alone
            with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "deep.json")) as f:
                json.load(f)
        self.inp = nn.Linear(8, d_model)
        self.blocks = nn.ModuleList(Block(d_model) for _ in range(n_layer))
        self.out = nn.Linear(d_model, 4)

    def forward(self, x):
        h = self.inp(x)
        for b in self.blocks:
            h = b(h)
        return self.out(h)
"""
LAZY_TARGET = "lazy_net.py:Net"  # analysed first: nothing before it has read deep.json
EXAMPLES = [str(ROOT / "examples" / name) for name in ("nanogpt_sp.py", "completep_gpt.py")]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory) -> dict:
    """Each target analysed by a worker that does everything in turn, and by one that forks."""
    folder = tmp_path_factory.mktemp("beside")
    (folder / "deep.json").write_text("{}")
    (folder / "lazy_net.py").write_text(LAZY)
    (folder / "analyse.py").write_text(ANALYSE)
    found = {}
    for how in ("alone", "beside"):
        done = subprocess.run(
            [sys.executable, "analyse.py", how, LAZY_TARGET, *EXAMPLES],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=600,
            env=_env(),
        )
        assert done.returncode == 0, done.stderr
        found[how] = json.loads(done.stdout.strip().splitlines()[-1])
    found["folder"] = folder
    return found


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: Path(path).name)
def test_a_models_facts_are_the_same_with_the_depth_traces_made_beside(analysed, example):
    alone, beside = analysed["alone"][example], analysed["beside"][example]
    assert alone["outcomes"] == ["none"] and beside["outcomes"] == ["beside"]  # a guess runs only beside
    assert alone["depth"] and alone["facts"] == beside["facts"] and alone["files"] == beside["files"]


@pytest.mark.slow
def test_a_file_read_only_by_the_depth_builds_is_still_a_dependency(analysed):
    """Read in the copy, it would be lost with it: the depths are traced again in the worker, and the file
    is recorded as without the copy."""
    alone, beside = analysed["alone"][LAZY_TARGET], analysed["beside"][LAZY_TARGET]
    assert beside["outcomes"] == ["none"]  # the guess is dropped; the worker traces the depths itself
    assert alone["depth"] and alone["facts"] == beside["facts"] and alone["files"] == beside["files"]
    assert str((analysed["folder"] / "deep.json").resolve()) in beside["files"]
