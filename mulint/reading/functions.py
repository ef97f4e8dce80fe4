"""A function of the user's that mulint calls: `--optimizer` / config `optimizer` and coord's `--batch`,
named as path/to/file.py:NAME or package.module:NAME, or given as a callable from Python.

The name is parsed once, where the settings are read (`FunctionRef.parse`), into a record that
travels with the job to the worker; there `resolve` imports the function. A callable given from
Python (`optimizer_fn=`) is a `GivenFunction`, resolved the same way, never imported again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mulint.errors import MulintError


@dataclass(frozen=True)
class FunctionRef:
    """A function named in a file or a module: where it is and what it is called."""

    path: str | None  # the file defining it, or None for a module
    module: str  # the dotted module name when path is None
    name: str

    @property
    def label(self) -> str:
        """How messages name it: `path/to/file.py:NAME` or `package.module:NAME`."""
        return f"{self.path if self.path is not None else self.module}:{self.name}"

    @classmethod
    def parse(cls, text: str, *, flag: str = "--optimizer") -> FunctionRef:
        """`text` as the user wrote it; a MulintError when it names no function (`flag`: its option)."""
        from mulint.reading.targets import parse_target

        spec = parse_target(text)
        if spec.name is None:
            raise MulintError(
                f"'{text}' does not name a function",
                step="config",
                hint=f"use {flag} path/to/file.py:NAME",
            )
        return cls(path=str(spec.path) if spec.path is not None else None, module=spec.module, name=spec.name)

    def resolve(self) -> tuple[Callable[..., Any], str]:
        """The function itself (its file or module imported: in a worker only) and its label."""
        from pathlib import Path

        from mulint.reading.targets import TargetSpec, resolve

        spec = TargetSpec(
            text=self.label, path=Path(self.path) if self.path is not None else None, module=self.module, name=self.name
        )
        [found] = resolve(spec, allow_exec=True)  # refuses a name that is not a class or a function
        return found.obj, found.label


@dataclass(frozen=True)
class GivenFunction:
    """A function handed over from Python: nothing to import."""

    function: Callable[..., Any]
    label: str

    def resolve(self) -> tuple[Callable[..., Any], str]:
        return self.function, self.label


# What `resolve_function` takes: a named function, or one given from Python.
Function = FunctionRef | GivenFunction


def resolve_function(function: Function) -> tuple[Callable[..., Any], str]:
    """The one way from a function's record to the function and its label."""
    return function.resolve()
