"""Profiles: the exponents each role is expected to have, as data (``mulint/profile_data/*.toml``).

``mup`` (Tensor Programs V) is the default; ``u-mup`` (unit scaling) and ``spectral`` (every optimizer
judged by its measured update) change entries on purpose. ``depth-mup`` (branches × L^-½) and
``completep`` (branches × L^-1) are ``mup`` (``extends = "mup"``) requiring one depth exponent α.
Rules read the profile named by ``ModelFacts.profile`` through ``load_profile``; none keeps a table of
its own.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from mulint.errors import MulintError
from mulint.optimizers import OPTIMIZERS

DEFAULT = "mup"
ROLES = ("input", "vector", "hidden", "output")
# The optimizer families a profile can give exact learning-rate tables for (mulint/profile_data/optimizers.toml).
FAMILIES = tuple(OPTIMIZERS.families)

COORD_KEYS = (
    "blow_up",
    "collapse",
    "collapse_output",
    "near",
    "unmoved",
    "extend_steps",
    "multiplier",
    "widest",
    "depth_blow_up",
    "depth_collapse",
    "depth_init",
    "depth_lazy",
    "depth_lazy_warning",
)

Range = tuple[float, float]  # accepted exponents, low to high; a single target is (t, t)

# The depth table (MUP_REFERENCE §8): exponents of the depth L for block parameters (on a residual
# branch) and non-block ones, per optimizer family, as functions of the branch exponent α.
DEPTH_ROLES = ("block", "non-block")
DEPTH_QUANTITIES = ("init", "lr", "eps")
Linear = tuple[float, float]  # (k, c): the exponent k·α + c


@dataclass(frozen=True)
class DepthTable:
    alpha: Range  # accepted branch multiplier exponents: each branch output × L^-α
    required: bool  # a model with no depth scaling is judged (MU501); else it gets a note
    exponents: dict[tuple[str, str, str], Linear]  # (depth role, family, quantity) -> k·α + c

    def expected(self, role: str, family: str, quantity: str, alpha: float) -> float | None:
        """The exponent of L ``quantity`` should have for a ``role`` parameter stepped by ``family`` on a
        model whose branches scale as L^-α; None when the table says nothing (an unknown family)."""
        k, c = self.exponents.get((role, family, quantity), (None, None))
        return None if k is None or c is None else k * alpha + c


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
    depth: DepthTable | None = None  # exponents of the depth L (the default's when the file gives none)
    source: str = field(default="", compare=False)  # the data file it was read from

    def target(self, table: str, role: str, family: str | None = None) -> Range | None:
        """The accepted range of ``table`` ("init", "multiplier", "update", "spectral") for ``role``."""
        values = self.update.get(family or "", {}) if table == "update" else getattr(self, table)
        return values.get(role)

    def judged_exactly(self, family: str) -> bool:
        return family in self.exact


# Data files beside the profiles that are not profiles (mulint.optimizers reads this one).
NOT_PROFILES = ("optimizers",)


def profile_names() -> list[str]:
    names = (p.name[: -len(".toml")] for p in _data().iterdir() if p.name.endswith(".toml"))
    return sorted(n for n in names if n not in NOT_PROFILES)


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
            raise MulintError(
                f"profile file '{name}' not found",
                step="config",
                hint=f"a .toml shaped like {_data() / 'mup.toml'}, or one of: {', '.join(profile_names())}",
            )
    else:
        path = _data() / f"{name}.toml"
        if not name or "/" in name or name in NOT_PROFILES or not path.is_file():
            raise MulintError(
                f"unknown profile '{name}'",
                step="config",
                hint=f"use one of: {', '.join(profile_names())}, or a path to a .toml file",
            )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MulintError(f"profile '{name}' cannot be read: {exc}", step="config", hint=str(path)) from exc
    try:
        return _parse(data, name, str(path))
    except ValueError as exc:
        raise MulintError(
            f"profile '{name}' is malformed: {exc}", step="config", hint=f"{path}: shape it like {_data() / 'mup.toml'}"
        ) from exc


def accepts(accepted: Range, exponent: float, tolerance: float) -> int:
    """0 when ``exponent`` is within ``tolerance`` of the range, +1 above it, -1 below it."""
    low, high = accepted
    return 1 if exponent > high + tolerance else -1 if exponent < low - tolerance else 0


def _coord(data: dict, name: str) -> dict[str, float]:
    """The [coord] table; a profile file without one (or without some keys) takes the default's."""
    table = data.get("coord", {})
    if not isinstance(table, dict):
        raise ValueError("[coord] must be a table of threshold = number")
    bad = next((k for k, v in table.items() if not _is_number(v)), None)
    if bad is not None:
        raise ValueError(f"[coord] {bad}: must be a number, not {table[bad]!r}")
    unknown = set(table) - set(COORD_KEYS)
    if unknown:
        raise ValueError(f"[coord]: unknown key(s) {', '.join(sorted(unknown))} (keys: {', '.join(COORD_KEYS)})")
    defaults = {} if name == DEFAULT else load_profile(DEFAULT).coord
    values = {**defaults, **{k: float(v) for k, v in table.items()}}
    missing = [k for k in COORD_KEYS if k not in values]
    if missing:
        raise ValueError(f"[coord]: missing {', '.join(missing)}")
    return values


# Every key of a profile file and the type it must have: a misspelled table ([update.adma]) or key
# would otherwise leave its exponents unjudged in silence.
_TOP_KEYS = {
    "name": "a string",
    "description": "a string",
    "exact": "a list of optimizer families",
    "init": "a table",
    "multiplier": "a table",
    "update": "a table of families",
    "spectral": "a table",
    "coord": "a table",
    "depth": "a table",
    "extends": "the name of a shipped profile",
}


def _parse(data: dict, name: str, source: str) -> Profile:
    """The profile in ``data``; ValueError naming the first key that is missing, unknown or of the wrong type."""
    if "extends" in data:
        data = _extended(data)
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise ValueError(f"unknown key '{unknown[0]}' (keys: {', '.join(_TOP_KEYS)})")
    for key in ("name", "init", "spectral"):
        if key not in data:
            raise ValueError(f"'{key}' is missing")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise ValueError(f"'{key}' must be {_TOP_KEYS[key]}")
    exact = data.get("exact", [])
    if not isinstance(exact, list) or not all(isinstance(f, str) for f in exact):
        raise ValueError('\'exact\' must be a list of optimizer families, e.g. ["adam", "sgd"]')
    for family in exact:
        _check_family(family, "exact")
    update = data.get("update", {})
    if not isinstance(update, dict):
        raise ValueError("'update' must be a table of families: [update.adam], [update.sgd]")
    for family in update:
        _check_family(family, "update")
    missing = [f for f in exact if f not in update]
    if missing:
        raise ValueError(f"'exact' lists {missing[0]} but there is no [update.{missing[0]}] table to judge it by")
    return Profile(
        name=data["name"],
        description=data.get("description", ""),
        exact=tuple(exact),
        init=_roles(data["init"], "init", complete=True),
        multiplier=_roles(data.get("multiplier", {}), "multiplier", complete=False),
        update={family: _roles(table, f"update.{family}", complete=True) for family, table in update.items()},
        spectral=_roles(data["spectral"], "spectral", complete=True),
        coord=_coord(data, name),
        depth=_depth(data.get("depth"), name),
        source=source,
    )


def _extended(data: dict) -> dict:
    """``extends = "mup"``: the shipped profile's tables with this file's entries over them, table by table."""
    base_name = data["extends"]
    if not isinstance(base_name, str) or not (_data() / f"{base_name}.toml").is_file() or base_name in NOT_PROFILES:
        raise ValueError(f"'extends' must name a shipped profile ({', '.join(profile_names())}), not {base_name!r}")
    base = tomllib.loads((_data() / f"{base_name}.toml").read_text(encoding="utf-8"))
    if "extends" in base:
        base = _extended(base)
    return _merged(base, {k: v for k, v in data.items() if k != "extends"})


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _depth(table, name: str) -> DepthTable | None:
    """The [depth] table; a profile without one takes the default's."""
    if table is None:
        return None if name == DEFAULT else load_profile(DEFAULT).depth
    if not isinstance(table, dict):
        raise ValueError("[depth] must be a table: alpha, required, [depth.block.adam], ...")
    unknown = sorted(set(table) - {"alpha", "required", *DEPTH_ROLES})
    if unknown:
        raise ValueError(f"[depth]: unknown key '{unknown[0]}' (keys: alpha, required, {', '.join(DEPTH_ROLES)})")
    alpha = _range(table.get("alpha", [0.5, 1.0]), "[depth] alpha")
    required = table.get("required", False)
    if not isinstance(required, bool):
        raise ValueError("[depth] required: must be true or false")
    exponents: dict[tuple[str, str, str], Linear] = {}
    for role in DEPTH_ROLES:
        families = table.get(role, {})
        if not isinstance(families, dict):
            raise ValueError(f"[depth.{role}] must be a table of families")
        for family, quantities in families.items():
            _check_family(family, f"depth.{role}")
            if not isinstance(quantities, dict) or set(quantities) - set(DEPTH_QUANTITIES):
                raise ValueError(f"[depth.{role}.{family}]: keys are {', '.join(DEPTH_QUANTITIES)}")
            for quantity, value in quantities.items():
                exponents[(role, family, quantity)] = _linear(value, f"depth.{role}.{family}.{quantity}")
    return DepthTable(alpha=alpha, required=required, exponents=exponents)


def _linear(value, where: str) -> Linear:
    """A number c (the exponent c whatever α is) or {alpha = k, const = c} (the exponent k·α + c)."""
    if _is_number(value):
        return (0.0, float(value))
    if isinstance(value, dict) and set(value) <= {"alpha", "const"} and all(_is_number(v) for v in value.values()):
        return (float(value.get("alpha", 0.0)), float(value.get("const", 0.0)))
    raise ValueError(f"[{where}]: must be a number or {{alpha = k, const = c}} (the exponent k·α + c), not {value!r}")


def _check_family(family: str, where: str) -> None:
    if family not in FAMILIES:
        close = difflib.get_close_matches(family, FAMILIES, n=1)
        raise ValueError(
            f"{where}: unknown optimizer family '{family}'"
            + (f" (did you mean {close[0]}?)" if close else "")
            + f"; families: {', '.join(FAMILIES)}"
        )


def _roles(table, where: str, complete: bool) -> dict[str, Range]:
    """Role -> accepted range. A `complete` table must give every role (a role left out would go unjudged)."""
    if not isinstance(table, dict):
        raise ValueError(f"[{where}] must be a table of role = exponent")
    out = {}
    for role, value in table.items():
        if role not in ROLES:
            close = difflib.get_close_matches(role, ROLES, n=1)
            raise ValueError(
                f"[{where}]: unknown role '{role}'"
                + (f" (did you mean {close[0]}?)" if close else "")
                + f" (roles: {', '.join(ROLES)})"
            )
        out[role] = _range(value, f"[{where}] {role}")
    missing = [role for role in ROLES if role not in out]
    if complete and missing:
        raise ValueError(f"[{where}] gives no exponent for {', '.join(missing)}: every role needs one")
    return out


def _range(value, where: str) -> Range:
    pair = value if isinstance(value, list) else [value, value]
    if len(pair) != 2 or not all(_is_number(v) for v in pair):
        raise ValueError(f"{where}: must be a number or a [low, high] pair of numbers, not {value!r}")
    low, high = float(pair[0]), float(pair[1])
    if not low <= high:
        raise ValueError(f"{where}: range [{low}, {high}] is empty")
    return (low, high)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _data():
    return resources.files("mulint") / "profile_data"
