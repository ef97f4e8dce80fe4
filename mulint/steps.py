"""Which step of a target's analysis is running (import, width, build, inputs, trace, optimizer, coord).

Worker processes listen, so that a target which hangs, exits or is killed mid-way is reported with
the step it was in. Outside a worker nothing listens and `enter` costs a function call.
"""

from __future__ import annotations

from collections.abc import Callable

_listener: Callable[[str], None] | None = None
current = ""


def enter(step: str) -> None:
    global current
    if step != current:
        current = step
        if _listener is not None:
            _listener(step)


def listen(listener: Callable[[str], None] | None) -> None:
    global _listener
    _listener = listener
