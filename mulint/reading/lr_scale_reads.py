"""Where the user's code applies an lr-scale key of its param groups (nanoGPT-mup's train.py:
``param_group['lr'] = lr * param_group.get('lr_scale', 1.0)``), read with libcst, never run.

torch ignores such a key: it changes the learning rate only if some code multiplies a group's lr by it.
mulint looks where the training runs (the model's file, the local files it imports, a training script
beside it) for a write to a group's ``lr`` whose value reads the key, directly or through a local name
(``scale = g.get('lr_scale', 1)``). A write that reads the group's own lr as well
(``g['lr'] *= g['lr_scale']``) compounds on what the optimizer factory set; one from an outside base
(``lr * g['lr_scale']``) replaces it."""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import libcst as cst
import libcst.matchers as m
from libcst.metadata import PositionProvider

from mulint.optimizers import OPTIMIZERS


@dataclass(frozen=True)
class ScaleRead:
    key: str
    path: str  # as the report prints it
    line: int
    compounds: bool  # the write reads the group's own lr too (``g['lr'] *= g['lr_scale']``)

    @property
    def where(self) -> str:
        return f"{Path(self.path).name}:{self.line}"


def _string(node: cst.CSTNode) -> str | None:
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _subscript_key(node: cst.CSTNode) -> tuple[str, str] | None:
    """``g['key']`` -> (g, key)."""
    if (
        isinstance(node, cst.Subscript)
        and isinstance(node.value, cst.Name)
        and len(node.slice) == 1
        and isinstance(node.slice[0].slice, cst.Index)
    ):
        key = _string(node.slice[0].slice.value)
        return (node.value.value, key) if key is not None else None
    return None


def _get_key(node: cst.CSTNode) -> tuple[str, str] | None:
    """``g.get('key', default)`` -> (g, key)."""
    if not m.matches(node, m.Call(func=m.Attribute(value=m.Name(), attr=m.Name("get")))):
        return None
    call = cst.ensure_type(node, cst.Call)
    if not call.args:
        return None
    key = _string(call.args[0].value)
    group = cst.ensure_type(cst.ensure_type(call.func, cst.Attribute).value, cst.Name).value
    return (group, key) if key is not None else None


def _reads(node: cst.CSTNode) -> tuple[set[tuple[str, str]], set[str]]:
    """Every (group, key) the expression reads, and every plain name in it."""
    keys: set[tuple[str, str]] = set()
    names: set[str] = set()

    class Reads(cst.CSTVisitor):
        def visit_Subscript(self, sub: cst.Subscript) -> None:
            if (read := _subscript_key(sub)) is not None:
                keys.add(read)

        def visit_Call(self, call: cst.Call) -> None:
            if (read := _get_key(call)) is not None:
                keys.add(read)

        def visit_Name(self, name: cst.Name) -> None:
            names.add(name.value)

    node.visit(Reads())
    return keys, names


class _Visitor(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, keys: tuple[str, ...], path: str) -> None:
        self.keys, self.path = keys, path
        self.aliases: dict[str, str] = {}  # local name -> the scale key it was read from
        self.found: list[ScaleRead] = []

    def _scale_keys(self, value: cst.CSTNode) -> tuple[set[str], set[tuple[str, str]]]:
        keys, names = _reads(value)
        scale = {k for _, k in keys if k in self.keys} | {self.aliases[n] for n in names if n in self.aliases}
        return scale, keys

    def _write(self, node: cst.CSTNode, group: str, value: cst.CSTNode, compounds: bool) -> None:
        scale, keys = self._scale_keys(value)
        compounds = compounds or any(g == group and k in OPTIMIZERS.own_lr_keys for g, k in keys)
        line = self.get_metadata(PositionProvider, node).start.line
        self.found.extend(ScaleRead(key, self.path, line, compounds) for key in sorted(scale))

    def visit_Assign(self, node: cst.Assign) -> None:
        scale, _ = self._scale_keys(node.value)
        for target in node.targets:
            if isinstance(target.target, cst.Name) and scale:
                self.aliases[target.target.value] = next(iter(sorted(scale)))
            written = _subscript_key(target.target)
            if written is not None and written[1] == "lr":
                self._write(node, written[0], node.value, compounds=False)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        written = _subscript_key(node.target)
        if written is not None and written[1] == "lr":
            self._write(node, written[0], node.value, compounds=True)

    def visit_Call(self, node: cst.Call) -> None:
        if m.matches(node, m.Call(func=m.Attribute(value=m.Name(), attr=m.Name("update")))):
            for arg in node.args:
                if arg.keyword is not None and arg.keyword.value == "lr":
                    group = cst.ensure_type(cst.ensure_type(node.func, cst.Attribute).value, cst.Name).value
                    self._write(node, group, arg.value, compounds=False)


def scale_reads_in(source: bytes, keys: tuple[str, ...], path: str) -> list[ScaleRead]:
    """Writes of a group's lr in ``source`` that multiply it by one of ``keys``."""
    text = source.decode("utf-8", errors="replace")
    if not any(k in text for k in keys):
        return []  # parsing is the slow part: only files that mention a key
    try:
        wrapper = cst.MetadataWrapper(cst.parse_module(source))
    except cst.ParserSyntaxError:
        return []  # a broken training script applies nothing; the file's own check reports it
    visitor = _Visitor(keys, path)
    wrapper.visit(visitor)
    return visitor.found


def training_files(model_file: Path, imported: list[Path], class_file: Path | None = None) -> list[Path]:
    """Where the training runs: the model's file, the local files it imports, and the training scripts
    beside it that import the model's module (a `train_other.py` beside it trains another model); with
    ``class_file`` (the file defining the model's class, when a factory elsewhere builds it), the
    scripts beside that file that import its module too: they train the model the factory builds."""
    beside: list[Path] = []
    for anchor in dict.fromkeys(f.resolve() for f in (model_file, class_file) if f is not None):  # once each
        found = sorted(p for pattern in OPTIMIZERS.training_scripts for p in anchor.parent.glob(pattern))
        beside += [p for p in found if p.resolve() == anchor.resolve() or imports_module(p, anchor.stem)]
    return list(dict.fromkeys(p.resolve() for p in (model_file, *imported, *beside) if p.suffix == ".py"))


def imports_module(script: Path, stem: str) -> bool:
    """Whether ``script`` imports a module named ``stem`` (``import gpt``, ``from models.gpt import GPT``,
    ``from models import gpt``), read without running it."""
    try:
        tree = ast.parse(script.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        if any(stem in name.split(".") for name in names):
            return True
    return False


def absolute_writes_in(source: bytes, path: str) -> list[int]:
    """Lines that write one absolute lr into every param group (MU303's pattern), e.g. a hand-written
    schedule in the training script: the per-group lrs the factory set do not survive training."""
    if b"param_groups" not in source:
        return []
    from mulint.reading.lr_writes import absolute_lr_writes

    try:
        wrapper = cst.MetadataWrapper(cst.parse_module(source))
    except cst.ParserSyntaxError:
        return []
    positions = wrapper.resolve(PositionProvider)
    return [positions[node].start.line for node in absolute_lr_writes(wrapper)]


@functools.lru_cache(maxsize=64)
def _absolute_cached(path: Path, stamp: tuple[int, int]) -> tuple[int, ...]:
    return tuple(absolute_writes_in(path.read_bytes(), str(path)))


def absolute_writes(files: list[Path]) -> list[str]:
    """``file.py:line`` of every write of one absolute lr into every group in ``files``."""
    found: list[str] = []
    for path in files:
        try:
            info = path.stat()
        except OSError:
            continue
        found.extend(f"{path.name}:{line}" for line in _absolute_cached(path, (info.st_mtime_ns, info.st_size)))
    return found


@functools.lru_cache(maxsize=64)
def _cached(path: Path, stamp: tuple[int, int], keys: tuple[str, ...], shown: str) -> tuple[ScaleRead, ...]:
    return tuple(scale_reads_in(path.read_bytes(), keys, shown))


def scale_reads(files: list[Path], keys: tuple[str, ...], show=str) -> list[ScaleRead]:
    """Every write applying one of ``keys`` in ``files`` (``show`` prints a path as the report does)."""
    found: list[ScaleRead] = []
    for path in files:
        try:
            info = path.stat()
        except OSError:
            continue
        found.extend(_cached(path, (info.st_mtime_ns, info.st_size), keys, show(str(path))))
    return found
