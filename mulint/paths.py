"""Paths as users read them."""

from __future__ import annotations

import os


def display_path(path: str) -> str:
    """Relative to the working directory when the file is below it, as ruff prints paths."""
    if not path:
        return path
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel
