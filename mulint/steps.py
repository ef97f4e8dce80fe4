"""Which step of a target's analysis is running (import, width, build, inputs, trace, optimizer, coord),
and how long each phase of it took.

Worker processes listen, so that a target which hangs, exits or is killed mid-way is reported with
the step it was in. Outside a worker nothing listens and `enter` costs a function call.

Phases time the analysis for `check --verbose` (and `benchmarks/check_speed.py`): `with phase("trace"):`
around a piece of work charges its wall time to that name. Phases nest, and a phase's time excludes the
phases inside it, so the times of one job add up to the job's time without counting anything twice.
They are kept apart from the steps: a step names where a failure happened (and error records carry it),
a phase names where the time went, at the grain a user reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_listener: Callable[[str], None] | None = None
current = ""

_open: list[list] = []  # the phases running now, innermost last: [name, when its stretch began, seconds so far]
_spent: dict[str, float] = {}  # name -> seconds, in the order the phases first ended


def enter(step: str) -> None:
    global current
    if step != current:
        current = step
        if _listener is not None:
            _listener(step)


def listen(listener: Callable[[str], None] | None) -> None:
    global _listener
    _listener = listener


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Charge the time spent inside to ``name`` (minus the phases nested inside it)."""
    now = time.perf_counter()
    if _open:
        outer = _open[-1]
        outer[2] += now - outer[1]  # the outer phase pauses
    _open.append([name, now, 0.0])
    try:
        yield
    finally:
        now = time.perf_counter()
        inner = _open.pop()
        _spent[name] = _spent.get(name, 0.0) + inner[2] + now - inner[1]
        if _open:
            _open[-1][1] = now  # the outer phase resumes


def start_timing() -> None:
    """Forget the phases timed so far: a new job starts."""
    _open.clear()
    _spent.clear()


def timings() -> dict[str, float]:
    """Seconds per phase since `start_timing`, in the order the phases first ended (a phase after those
    nested in it)."""
    return dict(_spent)
