"""The one error type users see: which target, which step, what went wrong, what to do."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


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

    def in_api_words(self) -> MulintError:
        """The same error with its message and hint in the Python API's words (see `in_api_words`)."""
        self.message, self.hint = in_api_words(self.message), in_api_words(self.hint)
        self.args = (self.message,)
        return self

    def for_target(self, target: str) -> MulintError:
        if not self.target:
            self.target = target
        return self

    def __str__(self) -> str:
        head = f"{self.target}: " if self.target else ""
        step = f"[{self.step}] " if self.step else ""
        tail = f"\n  hint: {self.hint}" if self.hint else ""
        return f"{head}{step}{self.message}{tail}"


@dataclass(frozen=True)
class ErrorRecord:
    """A target that could not be analysed, as it travels from a worker (or mulint's own checks) to the
    reporters: plain data, so it crosses the worker's pipe as JSON (mulint.engine.wire)."""

    target: str  # what failed; repeats merged name every target, comma-separated
    step: str  # the step it failed in (see MulintError)
    message: str
    hint: str = ""
    kind: str = ""  # what kind of failure, when the caller must tell them apart (see MulintError)
    output: str = ""  # the end of what the target's code printed, when it printed anything

    @classmethod
    def of(cls, exc: MulintError, *, target: str = "", step: str = "") -> ErrorRecord:
        """The record of an error, with `target` and `step` where the error names none."""
        return cls(
            target=exc.target or target,
            step=exc.step or step,
            message=exc.message,
            hint=exc.hint,
            kind=getattr(exc, "kind", ""),
        )

    def with_target(self, target: str) -> ErrorRecord:
        return dataclasses.replace(self, target=target)

    def as_json(self) -> dict[str, str]:
        """The record in the JSON output: no kind; the output only when there is some."""
        record = {"target": self.target, "step": self.step, "message": self.message, "hint": self.hint}
        if self.output:
            record["output"] = self.output
        return record


class Interrupted(KeyboardInterrupt):
    """mulint was asked to stop by a signal (SIGTERM, SIGHUP): unwinds like Ctrl-C, so workers are
    killed and temporary files removed; the CLI exits 128 + ``signum``."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# The CLI's options as the Python API (mulint.check / inspect / coord) spells them. Hints and notes are
# written once, in the CLI's words; a caller of the API gets them in its own.
_API_WORDS = (
    (r"--optimizer (?:\S+?):(\w+)", r"optimizer_fn=\1"),
    (r"--batch (?:\S+?):(\w+)", r"batch_fn=\1"),
    (r"put a factory in \S+ and check \S+:(\w+):", r"pass model_fn=\1, defined as:"),
    (r"name a factory( [^()]*?)? \((?:path/to/)?file\.py:\w+\)", r"pass a model_fn\1"),
    (r"in a factory \((?:path/to/)?file\.py:\w+\)", "in model_fn"),
    (r"--width-arg ([A-Za-z_][\w.]*)", r'width_arg="\1"'),
    (r"--depth-arg ([A-Za-z_][\w.]*)", r'depth_arg="\1"'),
    (r"--no-depth\b", "depth=False"),
    (r"--widths (?:\(e\.g\. )?(\d+(?:,\d+)+)\)?", lambda m: f"widths=[{', '.join(m[1].split(','))}]"),
    (
        r"--(width-arg|depth-arg|widths|optimizer|batch|steps|seeds|lr|device|select|ignore|profile)\b",
        lambda m: {"optimizer": "optimizer_fn", "batch": "batch_fn"}.get(m[1], m[1].replace("-", "_")) + "=",
    ),
)


def in_api_words(text: str) -> str:
    """`--width-arg n_embd` -> `width_arg="n_embd"`, `--optimizer f.py:make_opt` -> `optimizer_fn=make_opt`,
    a factory file to check -> the model_fn to pass."""
    import re

    for pattern, replacement in _API_WORDS:
        text = re.sub(pattern, replacement, text)
    return text
