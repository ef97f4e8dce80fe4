"""Profiles: the exponents each role is expected to have, as data (``mulint/profile_data/*.toml``).

``mup`` (Tensor Programs V) is the default; ``u-mup`` (unit scaling) and ``spectral`` (every optimizer
judged by its measured update) change entries on purpose. Rules read the profile named by
``ModelFacts.profile`` through ``load_profile``; none keeps a table of its own.
"""

from __future__ import annotations

import functools
import hashlib
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mulint.errors import MulintError

DEFAULT = "mup"
ROLES = ("input", "vector", "hidden", "output")

COORD_KEYS = ("blow_up", "collapse", "collapse_output", "near", "unmoved", "extend_steps")

Range = tuple[float, float]  # accepted exponents, low to high; a single target is (t, t)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    exact: tuple[str, ...]  # optimizer families judged by the exact lr tables (MU301/MU302)
    init: dict[str, Range]  # role -> effective init exponent a+b
    multiplier: dict[str, Range]  # role -> exponent of the forward multiplier a (empty: any)
    update: dict[str, dict[str, Range]]  # family -> role -> effective update exponent (a+c, 2a+c for SGD)
    spectral: dict[str, Range]  # role -> exponent of the measured RMS→RMS update norm (MU31x)
    coord: dict[str, float] = field(default_factory=dict)  # coordinate-check thresholds (COORD_KEYS)
    source: str = field(default="", compare=False)  # the data file it was read from

    def target(self, table: str, role: str, family: str | None = None) -> Range | None:
        """The accepted range of ``table`` ("init", "multiplier", "update", "spectral") for ``role``."""
        values = self.update.get(family or "", {}) if table == "update" else getattr(self, table)
        return values.get(role)

    def judged_exactly(self, family: str) -> bool:
        return family in self.exact


def profile_names() -> list[str]:
    return sorted(p.name[:-len(".toml")] for p in _data().iterdir() if p.name.endswith(".toml"))


def is_profile_file(name: str) -> bool:
    """A profile given as a path to a TOML file of the same shape as ``mulint/profile_data/mup.toml``."""
    return name.endswith(".toml")


def profile_digest(name: str) -> str | None:
    """The bytes' hash of a profile file (a cached result must not outlive an edit of it); None for a shipped one."""
    if not is_profile_file(name):
        return None
    try:
        return hashlib.sha256(Path(name).read_bytes()).hexdigest()
    except OSError:
        return None


@functools.cache
def load_profile(name: str = DEFAULT) -> Profile:
    """The profile ``name`` (``mup``, ``u-mup``, ``spectral``, or a path to a ``.toml`` of the same shape);
    a MulintError naming the known ones otherwise."""
    if is_profile_file(name):
        path = Path(name)
        if not path.is_file():
            raise MulintError(f"profile file '{name}' not found", step="config",
                              hint=f"a .toml shaped like {_data() / 'mup.toml'}, or one of: {', '.join(profile_names())}")
    else:
        path = _data() / f"{name}.toml"
        if not name or "/" in name or not path.is_file():
            raise MulintError(f"unknown profile '{name}'", step="config",
                              hint=f"use one of: {', '.join(profile_names())}, or a path to a .toml file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MulintError(f"profile '{name}' cannot be read: {exc}", step="config", hint=str(path)) from exc
    try:
        return Profile(name=str(data["name"]), description=data.get("description", ""),
                       exact=tuple(data.get("exact", ())), init=_roles(data["init"]),
                       multiplier=_roles(data.get("multiplier", {})),
                       update={family: _roles(table) for family, table in data.get("update", {}).items()},
                       spectral=_roles(data["spectral"]), coord=_coord(data, name), source=str(path))
    except (KeyError, TypeError, ValueError) as exc:
        raise MulintError(f"profile '{name}' is malformed: {exc}", step="config", hint=str(path)) from exc


def accepts(accepted: Range, exponent: float, tolerance: float) -> int:
    """0 when ``exponent`` is within ``tolerance`` of the range, +1 above it, -1 below it."""
    low, high = accepted
    return 1 if exponent > high + tolerance else -1 if exponent < low - tolerance else 0


def _coord(data: dict, name: str) -> dict[str, float]:
    """The [coord] table; a profile file without one (or without some keys) takes the default's."""
    table = data.get("coord", {})
    unknown = set(table) - set(COORD_KEYS)
    if unknown:
        raise ValueError(f"[coord]: unknown key(s) {', '.join(sorted(unknown))} (keys: {', '.join(COORD_KEYS)})")
    defaults = {} if name == DEFAULT else load_profile(DEFAULT).coord
    values = {**defaults, **{k: float(v) for k, v in table.items()}}
    missing = [k for k in COORD_KEYS if k not in values]
    if missing:
        raise ValueError(f"[coord]: missing {', '.join(missing)}")
    return values


def _roles(table: dict) -> dict[str, Range]:
    out = {}
    for role, value in table.items():
        if role not in ROLES:
            raise ValueError(f"unknown role '{role}' (roles: {', '.join(ROLES)})")
        low, high = (value, value) if isinstance(value, (int, float)) else value
        if not low <= high:
            raise ValueError(f"{role}: range [{low}, {high}] is empty")
        out[role] = (float(low), float(high))
    return out


def _data():
    return resources.files("mulint") / "profile_data"
