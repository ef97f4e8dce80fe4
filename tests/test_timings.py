"""Where a check's time goes: phases timed inside the worker (`mulint.steps.phase`), sent back with the
result, checked on arrival, and shown under `check --verbose` only (text: one line per target; JSON: a
top-level "timings" object), so that the default output stays the same from run to run."""

import json
import math
import types

import pytest

from mulint import steps
from mulint.engine.jobs import OTHER, phase_times
from mulint.engine.wire import MAX_PHASES, WireError, check_result, decode, encode
from mulint.report import json_report
from mulint.report.summary import timing_lines

MODEL = """
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        self.inp = nn.Linear(8, width)
        self.out = nn.Linear(width, 3)

    def forward(self, x):
        return self.out(self.inp(x).relu())
"""
# Phases every check of a traced model with no optimizer goes through, as the worker names them.
WORKER_PHASES = {"import", "width knob", "meta build", "trace", "roles", "small widths", "init numbers", "rules"}


@pytest.fixture
def clock(monkeypatch):
    """steps' clock, moved by hand."""
    now = [0.0]
    monkeypatch.setattr(steps, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    steps.start_timing()
    yield now
    steps.start_timing()


def test_a_phase_counts_its_own_time_without_the_phases_nested_in_it(clock):
    with steps.phase("outer"):
        clock[0] += 1.0
        with steps.phase("inner"):
            clock[0] += 2.0
        clock[0] += 0.5
        with steps.phase("inner"):
            clock[0] += 0.25
    with steps.phase("after"):
        clock[0] += 4.0
    assert steps.timings() == {"inner": 2.25, "outer": 1.5, "after": 4.0}  # in the order they first ended
    steps.start_timing()
    assert steps.timings() == {}


def test_a_phase_left_by_an_exception_is_still_counted(clock):
    with pytest.raises(ValueError), steps.phase("build"):
        clock[0] += 3.0
        raise ValueError
    with steps.phase("trace"):
        clock[0] += 1.0
    assert steps.timings() == {"build": 3.0, "trace": 1.0}


def test_the_jobs_time_outside_every_named_phase_comes_last(clock):
    with steps.phase(OTHER):
        clock[0] += 0.5
        with steps.phase("trace"):
            clock[0] += 2.0
    assert list(phase_times().items()) == [("trace", 2.0), (OTHER, 0.5)]


def _check_result(timings) -> dict:
    return {"findings": [], "target": {"target": "m.py:Net", "mode": "model"}, "timings": timings}


def test_the_timings_of_a_result_cross_the_pipe():
    payload = check_result("check", decode(encode(("done", _check_result({"trace": 0.25, "rules": 0}))))[1])
    assert payload["timings"] == {"trace": 0.25, "rules": 0}


@pytest.mark.parametrize(
    "timings",
    [
        {"trace": -1.0},
        {"trace": math.nan},
        {"trace": math.inf},
        {"trace": "1.0"},
        {"trace": True},
        {"": 1.0},
        {"x" * 41: 1.0},
        {"line\nbreak": 1.0},
        {f"phase {i}": 0.0 for i in range(MAX_PHASES + 1)},
        [["trace", 1.0]],
        {1: 1.0},
    ],
)
def test_malformed_timings_are_refused(timings):
    with pytest.raises(WireError):
        check_result("check", decode(encode(("done", _check_result(timings))))[1])


def test_the_text_line_names_each_phase_and_says_when_the_result_was_cached():
    result = types.SimpleNamespace(
        timings={
            "m.py": {"phases": {"static rules": 0.014}},
            "m.py:Net": {"phases": {"worker start": 0.1, "trace": 0.5, "rules": 0.02}, "cached": False},
            "n.py:Net": {"phases": {"cache lookup": 0.003}, "cached": True},
            "o.py:Net": {"phases": {"worker": 2.0}, "cached": False, "failed": True},
        }
    )
    assert timing_lines(result) == [
        "m.py: timings: static rules 0.01 s (total 0.01 s)",
        "m.py:Net: timings: worker start 0.10 s, trace 0.50 s, rules 0.02 s (total 0.62 s)",
        "n.py:Net: timings: cached, cache lookup 0.00 s (total 0.00 s)",
        "o.py:Net: timings: failed, worker 2.00 s (total 2.00 s)",
    ]


def test_the_json_timings_are_rounded_to_milliseconds_with_their_sum():
    text = json_report.render([], [], [], timings={"m.py:Net": {"phases": {"trace": 0.12345, "rules": 0.0011}}})
    assert json.loads(text)["timings"] == {"m.py:Net": {"seconds": 0.125, "phases": {"trace": 0.123, "rules": 0.001}}}
    assert "timings" not in json.loads(json_report.render([], [], []))


def test_check_times_its_phases_under_verbose_only(mulint, tmp_path, monkeypatch):
    (tmp_path / "net.py").write_text(MODEL)
    monkeypatch.chdir(tmp_path)
    code, out, err = mulint("check", "--format", "json", "--verbose", "net.py")  # analysed, then cached
    assert code in (0, 1), err
    timings = json.loads(out)["timings"]
    assert list(timings) == ["net.py", "net.py:Net"]
    assert list(timings["net.py"]["phases"]) == ["static rules"]
    model = timings["net.py:Net"]
    assert model["cached"] is False
    phases = model["phases"]
    assert WORKER_PHASES <= set(phases), phases
    assert list(phases)[:2] == ["cache lookup", "worker start"] and list(phases)[-2:] == [OTHER, "cache store"]
    assert all(type(v) is float and v >= 0 for v in phases.values())
    assert model["seconds"] == pytest.approx(sum(phases.values()), abs=0.01)

    code, out, err = mulint("check", "--format", "json", "net.py")  # the default output: no times
    assert "timings" not in json.loads(out)
    code, out, err = mulint("check", "--verbose", "net.py")
    assert "net.py:Net: timings: cached, cache lookup " in err
    assert "timings" not in out


def test_the_worker_server_preloads_every_module_it_names_and_starts_no_thread():
    """A module name torch dropped would silently cost every job its import again; a thread in the
    server would make forking it unsafe."""
    import os

    import torch  # noqa: F401  (its own threads are counted before)

    tasks = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None
    from mulint.engine.preload import preload

    assert preload() == []
    if tasks is not None:
        assert len(os.listdir("/proc/self/task")) == tasks


def test_a_check_runs_its_small_models_on_one_torch_thread(mulint, tmp_path, monkeypatch):
    """Intra-op threads only add synchronisation to the small CPU models a check builds."""
    model = MODEL.replace(
        "super().__init__()",
        "super().__init__()\n        import torch\n        print('@@threads', torch.get_num_threads())",
    )
    (tmp_path / "net.py").write_text(model)
    monkeypatch.chdir(tmp_path)
    code, out, err = mulint("check", "--no-cache", "--verbose", "net.py:Net")
    assert code in (0, 1), err
    printed = {line.strip() for line in (out + err).splitlines() if "@@threads" in line}
    assert printed and all(line.endswith("@@threads 1") for line in printed), printed


def test_the_training_of_check_coord_gets_torchs_thread_count_back(monkeypatch):
    import torch

    from mulint.engine import jobs

    before = torch.get_num_threads()
    monkeypatch.setattr(jobs, "training_threads", 3)
    try:
        torch.set_num_threads(1)
        with jobs.threads_to_train():
            assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_small_widths_are_chosen_with_one_meta_build_per_width(monkeypatch):
    """Sizing the candidate widths and checking that they grow in proportion read the same meta builds."""
    import torch.nn as nn

    from mulint.analysis import numbers
    from mulint.construct import proportional
    from mulint.construct.width import find_knob

    class Net(nn.Module):
        def __init__(self, width: int = 64):
            super().__init__()
            self.inp, self.out = nn.Linear(8, width), nn.Linear(width, 3)

    built = []

    def counted(original):
        def build_at(knob, width, **kwargs):
            built.append((width, kwargs.get("device")))
            return original(knob, width, **kwargs)

        return build_at

    monkeypatch.setattr(numbers, "build_at", counted(numbers.build_at))
    monkeypatch.setattr(proportional, "build_at", counted(proportional.build_at))
    widths, notes = numbers.choose_numeric_widths(numbers.numeric_knob(find_knob(Net, "net.py:Net")), "net.py:Net")
    assert len(widths) == 3 and notes == []
    assert set(widths) <= {width for width, _ in built}
    assert len(built) == len(set(built)), built
