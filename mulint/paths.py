"""Paths as users read them: files relative to the working directory, and parameter or module
names with their layer index as a pattern (every block of a repeated stack reads alike)."""

from __future__ import annotations

import os
import re

# A block's index between two dots: `h.10.attn` has one, a leading `0.weight` or trailing `h.10` not.
_LAYER_INDEX = re.compile(r"(?<=\.)\d+(?=\.)")


def display_path(path: str) -> str:
    """Relative to the working directory when the file is below it, as ruff prints paths."""
    if not path:
        return path
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def layer_pattern(name: str) -> str:
    """`transformer.h.10.attn.weight` -> `transformer.h.*.attn.weight`: the same for every layer."""
    return _LAYER_INDEX.sub("*", name)
