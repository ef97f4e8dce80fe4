"""What a value of a module is, as far as pure methods go: a string, a path, a container of its own.

``Path(__file__).parent / "data"`` is a path and ``HERE.joinpath("x")`` on it is pure; ``", ".join(...)``
on a string is pure; ``LAYERS.append(...)`` on a list the module built reaches nothing else.
"""

from __future__ import annotations

import ast

from mulint.reading.name_lookup import NameLookup
from mulint.reading.names import Ref
from mulint.reading.pure_calls import PATH_RETURNING, STR_METHODS

_PATH_TYPES = {"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath", "pathlib.PurePosixPath"}
_LOGGER_CALLS = {"logging.getLogger", "transformers.utils.logging.get_logger", "transformers.logging.get_logger"}
_CONTAINER_CALLS = {"list", "dict", "set", "collections.OrderedDict", "collections.defaultdict"}


class ValueKinds(NameLookup):
    """Mixed into the import walk: what a value is, found through the walk's name lookup."""

    def _kind(self, e: ast.AST, depth: int = 0) -> str | None:
        if depth > 8:
            return None
        if isinstance(e, ast.Constant):
            return "str" if isinstance(e.value, (str, bytes)) else None
        if isinstance(e, ast.JoinedStr):
            return "str"
        if isinstance(e, (ast.List, ast.Dict, ast.Set, ast.Tuple, ast.ListComp, ast.DictComp, ast.SetComp)):
            return "container"
        if isinstance(e, ast.BinOp):
            left = self._kind(e.left, depth + 1)
            if left == "path" and isinstance(e.op, ast.Div):
                return "path"
            return "str" if left == "str" and isinstance(e.op, (ast.Add, ast.Mod)) else None
        if isinstance(e, ast.Name):
            return "str" if e.id == "__file__" else self._kind_of_ref(self._lookup(e.id), depth + 1)
        if isinstance(e, ast.Attribute):
            return "path" if e.attr == "parent" and self._kind(e.value, depth + 1) == "path" else None
        if isinstance(e, ast.Subscript):
            value = e.value
            if isinstance(value, ast.Attribute) and value.attr == "parents":
                return "path" if self._kind(value.value, depth + 1) == "path" else None
            return None
        if isinstance(e, ast.Call):
            return self._kind_of_call(e, depth)
        return None

    def _kind_of_call(self, e: ast.Call, depth: int) -> str | None:
        func = e.func
        if isinstance(func, ast.Attribute):
            receiver = self._kind(func.value, depth + 1)
            if receiver == "path" and func.attr in PATH_RETURNING:
                return "path"
            if receiver == "str" and func.attr in STR_METHODS:
                return "str"
        resolved = self.resolve(func)
        if resolved is None:
            return None
        name = self.qualname(*resolved)
        if name in _PATH_TYPES:
            return "path"
        if name.startswith("os.path."):
            return "str"
        if name in _LOGGER_CALLS:
            return "logger"
        return "container" if name in _CONTAINER_CALLS else None

    def _kind_of_ref(self, ref: Ref, depth: int = 0) -> str | None:
        if ref.kind != "variable" or ref.node is None or ref.origin != self.info.path:
            return None
        return self._kind(ref.node, depth + 1)
