"""`[tool.mulint]` in pyproject.toml: found upwards from the first target, each key parsed and validated.

The parsers here judge a value whichever layer gives it: `mulint.engine.settings` merges this table with the
command line's flags or the API's arguments through the same parsers. As in ruff, a pyproject.toml
without a `[tool.mulint]` table is skipped during discovery, so a sub-package's own pyproject does
not hide the project's configuration.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from mulint import project_files
from mulint.errors import MulintError
from mulint.facts import LR_SCALE_MODES

FORMATS = ("text", "json", "sarif", "github")
MIN_MEMORY = 512 << 20  # bytes per worker
MAX_MEMORY_CAP = 1 << 50  # bytes; a larger cap is a typo, and would overflow the kernel's limit
HINT = "see the Configuration section of the README for the keys of [tool.mulint] and their types"


@dataclass
class Config:
    root: Path  # the directory of the pyproject.toml: targets and per-file-ignores are relative to it
    targets: list[str] = field(default_factory=list)
    select: list[str] | None = None
    ignore: list[str] | None = None
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    widths: list[int] | None = None
    width_arg: str | None = None
    optimizer: str | None = None
    exclude: list[str] = field(default_factory=list)
    format: str | None = None
    timeout: float | None = None
    max_memory: int | None = None  # bytes
    jobs: int | None = None
    require_models: bool = False
    lr_scale_keys: list[str] = field(default_factory=list)  # param-group keys the training loop multiplies lr by
    lr_scale: str = "auto"  # whether those keys are applied: read from the code, or "applied" / "ignored"
    profile: str | None = None
    depth_arg: str | None = None  # the argument or config field that sets the number of blocks
    depth: bool = True  # `depth = false`: no depth analysis even when a depth knob is found
    daemon: bool = False  # `mulint check` runs through the warm server, started on first use
    preload: list[str] = field(default_factory=list)  # modules the warm server imports in advance
    idle_timeout: float | None = None  # minutes an idle warm server waits before it exits
    path: Path | None = None  # the pyproject.toml itself, for messages


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:  # its message carries "(at line L, column C)"
        raise MulintError(f"{path}: invalid TOML: {exc}", step="config", hint="fix the syntax at that line") from exc
    except OSError as exc:
        raise MulintError(f"cannot read {path}: {exc.strerror or exc}", step="config") from exc


def find_config(start: Path) -> Path | None:
    """The first pyproject.toml with a [tool.mulint] table in `start` (a file's directory) or above it."""
    return project_files.find_config(start, _read)


# Each key's parser takes (value, complain) and returns the Config value; complain(why) raises.


def _strings(value, bad):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        bad("must be a list of strings" if isinstance(value, list) else "must be a list")
    return list(value)


def _codes(value, bad):
    from mulint.engine.suppress import first_unknown_selector

    codes = [c.strip().upper() for c in _strings(value, bad)]
    problem = first_unknown_selector(codes)
    if problem:
        bad(problem)
    return codes


def _widths(value, bad):
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        bad("must be a list of integers, e.g. [64, 128, 256]")
    if any(v <= 0 for v in value) or len(set(value)) < 2:
        bad("needs at least two different positive widths, e.g. [64, 128, 256]")
    return sorted(set(value))


def _string(value, bad):
    if not isinstance(value, str):
        bad("must be a string")
    return value


def _name(value, bad):
    """A name (of an argument, a function, a profile): an empty one would be dropped in silence."""
    if not _string(value, bad).strip():
        bad("must not be empty")
    return value.strip()


def _format(value, bad):
    if _string(value, bad) not in FORMATS:
        bad(f"must be one of {', '.join(FORMATS)}")
    return value


def _per_file_ignores(value, bad):
    if not isinstance(value, dict):
        bad('must be a table of "glob" = [codes], e.g. {"tests/*" = ["MU3"]}')
    out = {}
    for pattern, codes in value.items():
        out[pattern] = _codes(codes, lambda why, pattern=pattern: bad(f'"{pattern}": {why}'))
    return out


def _positive_number(value, bad):
    # `not value > 0` also refuses NaN; an infinite timeout would let a hanging model run forever.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        bad("must be a positive, finite number of seconds, e.g. 300")
    return float(value)


def _positive_int(value, bad):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        bad("must be a positive integer, e.g. 2")
    return value


def _minutes(value, bad):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        bad("must be a positive, finite number of minutes, e.g. 30")
    return float(value)


def _bool(value, bad):
    if not isinstance(value, bool):
        bad("must be true or false")
    return value


def parse_size(text: str) -> int:
    """`8G`, `512M`, `1.5GB`, `4096M` -> bytes; a plain number is in gigabytes. ValueError if malformed."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)I?B?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"'{text}' is not a size, e.g. 8G or 512M")
    number, unit = float(match[1]), (match[2] or "G").upper()
    size = int(number * (1 << {"K": 10, "M": 20, "G": 30, "T": 40}[unit]))
    if size < MIN_MEMORY:
        # Measured: with torch loaded a worker fails below ~400M in ways that read as the model's fault.
        raise ValueError(f"'{text}' is below 512M: a worker with torch loaded needs more than that alone")
    if size > MAX_MEMORY_CAP:
        raise ValueError(f"'{text}' is above 1024T, more than any machine has (the limit is per worker)")
    return size


def _size(value, bad):
    try:
        return parse_size(value)
    except ValueError as exc:
        bad(str(exc))


# `lr-scale`: whether param groups' lr-scale keys are applied: read from the code, or always / never


def _lr_scale(value, bad):
    if _string(value, bad) not in LR_SCALE_MODES:
        bad(f"must be one of {', '.join(repr(m) for m in LR_SCALE_MODES)}")
    return value


KEYS = {  # TOML key -> (Config field, parser)
    "targets": ("targets", _strings),
    "select": ("select", _codes),
    "ignore": ("ignore", _codes),
    "per-file-ignores": ("per_file_ignores", _per_file_ignores),
    "widths": ("widths", _widths),
    "width-arg": ("width_arg", _name),
    "optimizer": ("optimizer", _name),
    "exclude": ("exclude", _strings),
    "format": ("format", _format),
    "timeout": ("timeout", _positive_number),
    "max-memory": ("max_memory", _size),
    "jobs": ("jobs", _positive_int),
    "require-models": ("require_models", _bool),
    "profile": ("profile", _name),
    "lr-scale-key": ("lr_scale_keys", lambda value, bad: [value] if isinstance(value, str) else _strings(value, bad)),
    "lr-scale": ("lr_scale", _lr_scale),
    "depth-arg": ("depth_arg", _name),
    "depth": ("depth", _bool),
    "daemon": ("daemon", _bool),
    "preload": ("preload", _strings),
    "idle-timeout": ("idle_timeout", _minutes),
}


def load_config(path: Path) -> Config:
    path = Path(path)
    table = _read(path).get("tool", {}).get("mulint", {})
    if not isinstance(table, dict):
        raise MulintError(f"{path}: tool.mulint must be a table ([tool.mulint])", step="config", hint=HINT)
    config = Config(root=path.parent.resolve(), path=path)
    seen: dict[str, str] = {}
    for key, value in table.items():
        canonical = key.replace("_", "-")  # per_file_ignores and per-file-ignores are the same key

        def bad(why: str, key: str = key) -> None:
            raise MulintError(f"{path}: [tool.mulint] {key}: {why}", step="config", hint=HINT)

        if canonical not in KEYS:
            close = difflib.get_close_matches(canonical, KEYS, n=1)
            bad("unknown key" + (f" (did you mean {close[0]}?)" if close else "") + f"; known keys: {', '.join(KEYS)}")
        if canonical in seen:
            bad(f"given twice (also as {seen[canonical]})")
        seen[canonical] = key
        name, parse = KEYS[canonical]
        setattr(config, name, parse(value, bad))
    return config
