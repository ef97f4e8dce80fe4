"""`[tool.mulint]` in pyproject.toml, found upwards from the first target (a pyproject without the
table is skipped, as ruff does)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from mulint.errors import MulintError

_LISTS = ("targets", "select", "ignore", "exclude", "widths")
_STRINGS = ("width-arg", "optimizer", "format")
KEYS = set(_LISTS) | set(_STRINGS) | {"per-file-ignores"}


@dataclass
class Config:
    root: Path
    path: Path
    targets: list[str] = field(default_factory=list)
    select: list[str] | None = None
    ignore: list[str] | None = None
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    widths: list[int] | None = None
    width_arg: str | None = None
    optimizer: str | None = None
    exclude: list[str] = field(default_factory=list)
    format: str | None = None


def _read(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise MulintError(f"{path}: invalid TOML: {exc}", step="config", hint="fix the file's syntax") from exc
    except OSError as exc:
        raise MulintError(f"cannot read {path}: {exc.strerror}", step="config") from exc


def find_config(start: Path) -> Path | None:
    directory = start.resolve()
    if directory.is_file():
        directory = directory.parent
    for folder in (directory, *directory.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and "mulint" in _read(candidate).get("tool", {}):
            return candidate
    return None


def load_config(path: Path) -> Config:
    table = _read(path).get("tool", {}).get("mulint", {})
    config = Config(root=path.parent.resolve(), path=path)

    def bad(key: str, why: str) -> MulintError:
        return MulintError(f"{path}: [tool.mulint] {key}: {why}", step="config",
                           hint="see the README's Configuration section for the keys and their types")

    for key, value in table.items():
        norm = key.replace("_", "-")
        if norm not in KEYS:
            raise bad(key, f"unknown key (known: {', '.join(sorted(KEYS))})")
        if norm in _LISTS:
            if not isinstance(value, list):
                raise bad(key, "must be a list")
            kind = int if norm == "widths" else str
            if not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
                raise bad(key, f"must be a list of {kind.__name__}s")
            if norm == "widths" and (len(set(value)) < 2 or min(value) <= 0):
                raise bad(key, "needs at least two different positive widths")
            if norm in ("select", "ignore"):
                value = [v.upper() for v in value]
            setattr(config, norm, sorted(set(value)) if norm == "widths" else value)
        elif norm in _STRINGS:
            if not isinstance(value, str):
                raise bad(key, "must be a string")
            if norm == "format" and value not in ("text", "json", "sarif", "github"):
                raise bad(key, "must be one of text, json, sarif, github")
            setattr(config, norm.replace("-", "_"), value)
        else:  # per-file-ignores
            if not isinstance(value, dict) or not all(
                    isinstance(v, list) and all(isinstance(c, str) for c in v) for v in value.values()):
                raise bad(key, "must be a table of pattern = [codes]")
            config.per_file_ignores = {k: [c.upper() for c in v] for k, v in value.items()}
    return config
