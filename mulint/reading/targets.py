"""Targets: parse ``PATH[:NAME]`` / ``pkg.module:NAME``, import what may be imported, resolve NAME."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from mulint.errors import MulintError
from mulint.reading.safety import summarize


@dataclass
class TargetSpec:
    """What the user named: a file or module, and optionally one object in it."""

    text: str
    path: Path | None  # a file on disk, or None for an importable module name
    module: str  # dotted module name when path is None
    name: str | None

    @property
    def label(self) -> str:
        where = str(self.path) if self.path is not None else self.module
        return f"{where}:{self.name}" if self.name else where


def parse_target(text: str) -> TargetSpec:
    head, sep, written = text.rpartition(":")
    if not sep or "/" in written or "\\" in written or written.endswith(".py") or (len(head) == 1 and head.isalpha()):
        head, written = text, ""  # no NAME (a bare path, possibly a Windows drive letter)
    name = written or None
    if head.endswith(".py") or "/" in head or Path(head).exists():
        return TargetSpec(text=text, path=Path(head), module="", name=name)
    if not all(part.isidentifier() for part in head.split(".")):
        raise MulintError(
            f"'{text}' is neither a file nor a module name",
            step="target",
            hint="name a target as path/to/file.py:NAME or package.module:NAME",
        )
    return TargetSpec(text=text, path=None, module=head, name=name)


def _module_name_for(path: Path) -> tuple[Path, str]:
    """The sys.path root and dotted name under which a file imports as its package would."""
    path = path.resolve()
    parts = [path.stem]
    parent = path.parent
    while (parent / "__init__.py").exists():
        parts.insert(0, parent.name)
        parent = parent.parent
    return parent, ".".join(parts)


# resolved path -> (digest of its source, the module imported from it) in this process: a file that
# changed since (rewritten by `--fix`) is imported again instead of reusing the stale module.
_LOADED: dict[str, tuple[str, ModuleType]] = {}


def _digest(path: Path) -> str:
    from mulint.sources import read_source

    return hashlib.sha256(read_source(path)).hexdigest()


def import_file(path: Path, target: str) -> ModuleType:
    if not path.exists():
        raise MulintError(f"no such file: {path}", target=target, step="target")
    root, dotted = _module_name_for(path)
    key, digest = str(path.resolve()), _digest(path)
    if key in _LOADED and _LOADED[key][0] == digest:
        return _LOADED[key][1]
    existing = sys.modules.get(dotted)
    existing_file = getattr(existing, "__file__", None)
    if (
        key not in _LOADED
        and existing is not None
        and existing_file
        and Path(existing_file).resolve() == path.resolve()
    ):
        return existing
    from mulint.reading import guard

    with _folder_after_stdlib(str(root), dotted), guard.guarded(root, target, path):
        module = _import_new(path, dotted, existing, target, digest)
    _LOADED[key] = (digest, module)
    return module


@contextlib.contextmanager
def _folder_after_stdlib(folder: str, dotted: str):
    """The target's folder goes on sys.path after the standard library, ahead of installed packages:
    its siblings import as under `python -c "import model"`, but a sibling named like a standard
    module (`profile.py`, `shlex.py`) never shadows the one torch or mulint imports lazily, then or
    later. It stays there, so the model's own lazy imports still find their siblings."""
    if folder in sys.path:
        sys.path.remove(folder)
    # A package of the user's named like a standard module (`test/model.py`) can only import from the front.
    front = "." in dotted and dotted.split(".")[0] in sys.stdlib_module_names
    sys.path.insert(0 if front else after_stdlib(), folder)
    try:
        yield
    finally:
        if front and folder in sys.path:
            sys.path.remove(folder)
            sys.path.insert(after_stdlib(), folder)


def after_stdlib() -> int:
    import sysconfig

    paths = sysconfig.get_paths()
    stdlib = {os.path.realpath(paths[key]) for key in ("stdlib", "platstdlib") if key in paths}
    index = 0
    for i, entry in enumerate(sys.path):
        real = os.path.realpath(entry) if entry else ""
        if (
            real in stdlib
            or any(real.startswith(s + os.sep) for s in stdlib)
            and "site-packages" not in real
            or real.endswith(".zip")
        ):
            index = i + 1
    return index


def _import_new(path: Path, dotted: str, existing: ModuleType | None, target: str, digest: str) -> ModuleType:
    if existing is not None or "." not in dotted:
        # Load under a private name when a different module (or an older version of this file, e.g.
        # before `--fix` rewrote it) already owns the plain name.
        if existing is not None:
            dotted = f"_mulint_target_{abs(hash((str(path.resolve()), digest)))}_{path.stem}"
        spec = importlib.util.spec_from_file_location(dotted, path)
        assert spec is not None and spec.loader is not None, "targets are .py files (resolve refuses others)"
        module = importlib.util.module_from_spec(spec)
        sys.modules[dotted] = module  # dataclasses look their module up while the file runs
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(dotted, None)
            raise _import_error(target, exc) from exc
        return module
    try:
        return importlib.import_module(dotted)
    except BaseException as exc:
        raise _import_error(target, exc) from exc


def import_module(name: str, target: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except BaseException as exc:
        raise _import_error(target, exc) from exc


def _import_error(target: str, exc: BaseException) -> MulintError:
    if isinstance(exc, SystemExit):
        return MulintError(
            f"importing it called sys.exit({exc.code})",
            target=target,
            step="import",
            hint='move the script part under `if __name__ == "__main__":`',
        )
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return MulintError(
        f"importing it raised {type(exc).__name__}: {exc}{where}",
        target=target,
        step="import",
        hint="the file must import cleanly in this environment; run `python -c 'import ...'` to see why",
    )


@dataclass
class ResolvedTarget:
    spec: TargetSpec
    name: str
    obj: Callable[..., Any]  # class or factory function
    module: ModuleType
    path: Path | None  # the file defining it

    @property
    def label(self) -> str:
        where = str(self.spec.path) if self.spec.path is not None else self.spec.module
        return f"{where}:{self.name}"


def resolve(spec: TargetSpec, *, allow_exec: bool) -> list[ResolvedTarget]:
    """Import the target's module and return the model objects to analyse.

    A bare file is imported only when it is import-safe; an explicitly named object always is,
    unless ``allow_exec`` is false.
    """
    if not allow_exec:
        raise MulintError(
            "--no-exec forbids importing model code",
            target=spec.label,
            step="import",
            hint="drop --no-exec to analyse models; static rules still run without it",
        )
    path: Path | None
    if spec.path is not None:
        if not spec.path.exists():
            raise MulintError(
                f"no such file: {spec.path}",
                target=spec.label,
                step="target",
                hint="check the path; targets are path/to/file.py[:NAME] or package.module:NAME",
            )
        try:
            summary = summarize(spec.path) if spec.path.suffix == ".py" else None
        except MulintError as exc:
            exc.for_target(spec.label)
            raise
        if spec.name is None:
            if summary is None:
                raise MulintError(f"{spec.path} is not a Python file", target=spec.label, step="target")
            if not summary.import_safe:
                raise MulintError(
                    f"not imported: line {summary.unsafe_line} runs {summary.unsafe_reason} at import time",
                    target=spec.label,
                    step="import",
                    hint=f"name the model explicitly ({spec.path}:NAME) to import it anyway",
                )
            names = summary.top_level_models
            if not names:
                return []
        else:
            names = [spec.name]
        module = import_file(spec.path, spec.label)
        path = spec.path
    else:
        module = import_module(spec.module, spec.label)
        file = getattr(module, "__file__", None)
        path = Path(file) if file else None
        if spec.name is None:
            raise MulintError(
                "a module target needs a NAME",
                target=spec.label,
                step="target",
                hint=f"use {spec.module}:ClassName or {spec.module}:factory_function",
            )
        names = [spec.name]
    resolved = []
    for name in names:
        obj: Any = module
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                available = ", ".join(_candidates(module)) or "none"
                raise MulintError(
                    f"'{name}' not found in {spec.path or spec.module}",
                    target=spec.label,
                    step="target",
                    hint=f"model classes/factories there: {available}",
                )
        if not callable(obj):
            raise MulintError(f"'{name}' is not a class or a function", target=spec.label, step="target")
        resolved.append(ResolvedTarget(spec=spec, name=name, obj=obj, module=module, path=path))
    return resolved


def _candidates(module: ModuleType) -> list[str]:
    import torch.nn as nn

    names = []
    for key, value in vars(module).items():
        if isinstance(value, type) and issubclass(value, nn.Module) and value.__module__ == module.__name__:
            names.append(key)
    return names
