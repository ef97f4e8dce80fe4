"""What crosses the pipe from a worker to mulint: JSON text, decoded into mulint's own plain records.

A worker runs user code, so anything it sends is untrusted. Unpickling it would let that code run in
mulint's process (a user's `IntEnum` in a result made the parent import the user's module) and let a
model forge any object. So a worker encodes its result as JSON (dicts, lists, str, int, float, bool,
None; tuples, non-string keys and mulint's dataclasses as small tagged objects), and the parent
decodes it against the dataclasses' declared field types: anything else is a `WireError`, which the
parent reports as an internal error of that target.

No torch here, and no import of anything the worker names: the classes that may arrive are listed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import types
import typing
from typing import Any

from mulint import coordcheck, errors, facts, findings
from mulint.coordcheck import CoordResult, DepthCoordResult
from mulint.edits import Edit, EditError, edit_from_dict
from mulint.errors import ErrorRecord
from mulint.facts import ModelFacts
from mulint.findings import Finding
from mulint.sweep import result as transfer_result
from mulint.sweep import store as transfer_store
from mulint.sweep import verdict as transfer_verdict

MAX_MESSAGE = 256 << 20  # bytes: a result larger than this is not a result
# The records that may arrive: the dataclasses of mulint's plain-data modules (no torch, no behaviour
# beyond properties), found rather than listed, so a record added there travels without a change here.
_CLASSES = {
    value.__name__: value
    for module in (facts, findings, coordcheck, errors, transfer_result, transfer_store, transfer_verdict)
    for value in vars(module).values()
    if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == module.__name__
}
_TAGS = ("~obj", "~tuple", "~map", "~edit")


class WireError(ValueError):
    """A message from a worker that is not what a worker sends."""


# --- in the worker -------------------------------------------------------------------------------


def encode(message: Any) -> bytes:
    return json.dumps(_plain(message), allow_nan=True, separators=(",", ":")).encode("utf-8")


def _plain(value: Any, depth: int = 0) -> Any:
    if depth > 60:
        raise WireError("nested too deeply")
    if value is None or type(value) in (bool, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):  # a str subclass (a user's StrEnum) goes as the text it holds
        return str.__str__(value)
    if isinstance(value, numbers.Integral):  # IntEnum, numpy integers: their number, not their class
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Edit):  # a fix edit: its own dict, with its kind
        return {"~edit": _plain(value.to_dict(), depth + 1)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if _CLASSES.get(name) is not type(value):
            raise WireError(f"{type(value).__module__}.{name} is not a result record")
        return {
            "~obj": name,
            "fields": {f.name: _plain(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)},
        }
    if isinstance(value, tuple):
        return {"~tuple": [_plain(v, depth + 1) for v in value]}
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if all(type(k) is str and k not in _TAGS for k in value):
            return {k: _plain(v, depth + 1) for k, v in value.items()}
        return {"~map": [[_plain(k, depth + 1), _plain(v, depth + 1)] for k, v in value.items()]}
    raise WireError(f"{type(value).__name__} cannot be sent")


# --- in mulint -----------------------------------------------------------------------------------


def decode(data: bytes) -> Any:
    """The JSON of a worker's message, with tagged objects rebuilt and their fields type-checked."""
    if len(data) > MAX_MESSAGE:
        raise WireError(f"a message of {len(data)} bytes")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WireError(f"not JSON: {exc}") from None
    return _rebuild(raw)


def _rebuild(value: Any) -> Any:
    if isinstance(value, list):
        return [_rebuild(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "~tuple" in value and len(value) == 1:
        return tuple(_rebuild(v) for v in _list(value["~tuple"]))
    if "~map" in value and len(value) == 1:
        pairs = [_list(p) for p in _list(value["~map"])]
        if any(len(p) != 2 for p in pairs):
            raise WireError("a map entry is not a pair")
        return {_hashable(_rebuild(k)): _rebuild(v) for k, v in pairs}
    if "~obj" in value and set(value) == {"~obj", "fields"}:
        return _record(value["~obj"], value["fields"])
    if "~edit" in value and len(value) == 1:
        try:
            return edit_from_dict(value["~edit"])
        except EditError as exc:
            raise WireError(str(exc)) from None
    return {k: _rebuild(v) for k, v in value.items()}


def _list(value) -> list:
    if not isinstance(value, list):
        raise WireError(f"expected a list, got {type(value).__name__}")
    return value


def _hashable(key):
    if isinstance(key, (list, dict)):
        raise WireError("a map key is not hashable")
    return key


def _record(name, fields) -> Any:
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    if cls is None or not isinstance(fields, dict):
        raise WireError(f"unknown record {name!r}")
    declared = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = set(fields) - set(declared)
    if unknown:
        raise WireError(f"{name} has no field {sorted(unknown)[0]!r}")
    values = {}
    for key, raw in fields.items():
        value = _rebuild(raw)
        check(value, hints[key], f"{name}.{key}")
        values[key] = value
    missing = [
        k
        for k, f in declared.items()
        if k not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise WireError(f"{name} lacks {missing[0]!r}")
    return cls(**values)


def check(value: Any, hint: Any, where: str) -> None:
    """Raise WireError unless ``value`` has the declared type ``hint`` (the field annotations used in
    mulint's records: builtins, unions, list/tuple/dict of them, and the records themselves)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return
    if hint is type(None) or hint is None:
        ok = value is None
    elif origin in (typing.Union, types.UnionType):
        if not any(_fits(value, a, where) for a in args):
            raise WireError(f"{where}: {type(value).__name__} is none of {hint}")
        return
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint in (str, bool):
        ok = type(value) is hint
    elif origin is list:
        ok = isinstance(value, list)
        if ok:
            for item in value:
                check(item, args[0] if args else Any, where)
    elif origin is tuple:
        ok = isinstance(value, tuple)
        if ok and args:
            items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
            ok = len(items) == len(value)
            for item, arg in zip(value, items):
                check(item, arg, where)
    elif origin is dict or hint is dict:
        ok = isinstance(value, dict)
        if ok and args:
            for k, v in value.items():
                check(k, args[0], where)
                check(v, args[1], where)
    elif hint is Edit:
        ok = isinstance(value, Edit)  # its fields were checked when it was read
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        ok = type(value) is hint
    else:
        ok = isinstance(hint, type) and isinstance(value, hint)
    if not ok:
        raise WireError(f"{where}: {type(value).__name__} where {getattr(hint, '__name__', hint)} belongs")


def _fits(value, hint, where) -> bool:
    try:
        check(value, hint, where)
    except WireError:
        return False
    return True


# The records a worker sends back, by the job's kind: what `mulint.engine.jobs` returns (plus the files it
# read, for the cache); an error is an `ErrorRecord`, checked as every record is.
_ENTRY = {
    "target": str,
    "mode": str,
    "width_knob": str | None,
    "widths": list[int] | None,
    "numeric_widths": list[int] | None,
    "parameters": int,
    "notes": list[str],
    "optimizer": str | None,
}
_DEPS: dict[str, Any] = {"deps": list[str], "deps_since_ns": int}
_RESULTS: dict[str, dict[str, Any]] = {
    "check": {"findings": list[Finding], "target": dict},
    "inspect": {"facts": ModelFacts},
    "coord": {"coord": CoordResult | DepthCoordResult},  # DepthCoordResult under --depths
    "transfer_describe": {"describe": dict},
    "transfer_trials": {"trials": list},
}


def check_trial(payload) -> tuple:
    """A finished transfer trial: (TrialKey, TrialResult)."""
    from mulint.sweep.store import TrialKey, TrialResult

    if not (
        isinstance(payload, tuple)
        and len(payload) == 2
        and isinstance(payload[0], TrialKey)
        and isinstance(payload[1], TrialResult)
    ):
        raise WireError("trial: not a (TrialKey, TrialResult) pair")
    return payload


def check_error(payload) -> ErrorRecord:
    if not isinstance(payload, ErrorRecord):
        raise WireError(f"error: {type(payload).__name__}, not an error record")
    return payload


def check_result(kind: str, payload) -> dict:
    expected = _RESULTS.get(kind)
    if expected is None:
        raise WireError(f"no result for a {kind!r} job")
    _fields(payload, {**expected, **_DEPS}, "result", required=tuple(expected))
    if kind == "check":
        _fields(payload["target"], _ENTRY, "result.target", required=("target", "mode"))
    if "timings" in payload:
        check_timings(payload["timings"], "result.timings")
    return payload


MAX_PHASES = 64  # a job times a dozen phases; more is not a job's timing
MAX_PHASE_NAME = 40


def check_timings(timings, where: str = "timings") -> dict[str, float]:
    """Seconds per phase (`mulint.steps.timings`): short names, finite non-negative numbers."""
    check(timings, dict[str, float], where)
    if len(timings) > MAX_PHASES:
        raise WireError(f"{where}: {len(timings)} phases")
    for name, seconds in timings.items():
        if not name or len(name) > MAX_PHASE_NAME or not name.isprintable():
            raise WireError(f"{where}: a phase named {name[:MAX_PHASE_NAME]!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise WireError(f"{where}.{name}: {seconds} seconds")
    return timings


def _fields(payload, schema: dict, where: str, required: tuple[str, ...]) -> None:
    if not isinstance(payload, dict):
        raise WireError(f"{where}: {type(payload).__name__}, not a record")
    for key in required:
        if key not in payload:
            raise WireError(f"{where} lacks {key!r}")
    for key, value in payload.items():  # fields added later are plain JSON: harmless, kept
        if key in schema:
            check(value, schema[key], f"{where}.{key}")
