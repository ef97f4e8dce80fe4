"""The one error type users see: which target, which step, what went wrong, what to do."""

from __future__ import annotations


class MulintError(Exception):
    """A failure that ends the analysis of one target with exit code 2.

    ``step`` is one of: target, parse, import, width, build, inputs, trace, optimizer, batch, coord,
    config, check. ``kind`` says what kind of failure it is when the caller must tell them apart
    (``no-width-knob``, ``needs-arguments``: the object is not a model mulint can build alone).
    """

    kind: str = ""

    def __init__(self, message: str, *, target: str = "", step: str = "", hint: str = "", kind: str = ""):
        super().__init__(message)
        self.message = message
        self.target = target
        self.step = step
        self.hint = hint
        if kind:
            self.kind = kind

    def for_target(self, target: str) -> "MulintError":
        if not self.target:
            self.target = target
        return self

    def __str__(self) -> str:
        head = f"{self.target}: " if self.target else ""
        step = f"[{self.step}] " if self.step else ""
        tail = f"\n  hint: {self.hint}" if self.hint else ""
        return f"{head}{step}{self.message}{tail}"


class Interrupted(KeyboardInterrupt):
    """mulint was asked to stop by a signal (SIGTERM, SIGHUP): unwinds like Ctrl-C, so workers are
    killed and temporary files removed; the CLI exits 128 + ``signum``."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
