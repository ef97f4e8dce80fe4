"""Repeated blocks: a deep model's identical layers are traced as two.

Roles and width exponents do not depend on depth, and every block of a list of identical blocks
is used the same way, so tracing the first two (the second stands for all later ones) tells as
much as tracing eighty, at a fraction of the cost. Only lists whose blocks after the first have
exactly the same structure (module types, parameter and buffer names and shapes) are shortened; a model whose
forward needs every block (indexing ``layers[i]`` by a configured count) is traced in full.
"""

from __future__ import annotations

import contextlib
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TypeGuard

import torch.nn as nn

MIN_BLOCKS = 4  # shorter lists are traced as they are
KEEP = 2


@dataclass
class ShortenedLists:
    """Which lists were shortened: module path -> original number of blocks."""

    lengths: dict[str, int] = field(default_factory=dict)
    in_full: bool = False  # lists were found, but the forward needed every block: traced in full

    def representative(self, name: str) -> str:
        """The name of the traced counterpart of a parameter or module in block ``i >= KEEP``."""
        for prefix in sorted(self.lengths, key=len, reverse=True):
            head = f"{prefix}." if prefix else ""
            match = re.match(re.escape(head) + r"(\d+)(\.|$)", name)
            if match and int(match[1]) >= KEEP:
                return f"{head}{KEEP - 1}{name[match.end(1) :]}"
        return name

    def localize(self, traced_path: str, name: str) -> str:
        """A traced module path inside the representative block, moved to ``name``'s own block."""
        representative = self.representative(name)
        if representative == name:
            return traced_path
        a, b, path = representative.split("."), name.split("."), traced_path.split(".")
        block = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y) + 1  # segments up to the block index
        return ".".join(b[:block] + path[block:]) if path[:block] == a[:block] else traced_path

    def count(self, module_path: str) -> int:
        """How many blocks of the full model the traced module at ``module_path`` stands for."""
        total = 1
        for prefix, length in self.lengths.items():
            head = f"{prefix}." if prefix else ""
            if module_path.startswith(f"{head}{KEEP - 1}.") or module_path == f"{head}{KEEP - 1}":
                total *= length - KEEP + 1
        return total


def _signature(module: nn.Module) -> tuple:
    return (
        tuple((n, type(m).__name__) for n, m in module.named_modules()),
        tuple((n, tuple(p.shape), p.dtype) for n, p in module.named_parameters(remove_duplicate=False)),
        tuple((n, tuple(b.shape)) for n, b in module.named_buffers(remove_duplicate=False)),
    )


def _repeated(module: nn.Module) -> TypeGuard[nn.ModuleList | nn.Sequential]:
    if not isinstance(module, (nn.ModuleList, nn.Sequential)) or len(module) < MIN_BLOCKS:
        return False
    blocks = list(module._modules.values())
    if any(b is None for b in blocks) or list(module._modules) != [str(i) for i in range(len(blocks))]:
        return False
    # Block 0 may differ (T5's first block alone holds the relative position bias): it is kept anyway.
    second = _signature(blocks[1])
    return all(_signature(b) == second for b in blocks[2:])


@contextlib.contextmanager
def shortened(model: nn.Module):
    """Within the block, identical repeated blocks of ``model`` are cut to the first ``KEEP``."""
    saved: list[tuple[nn.ModuleList | nn.Sequential, dict[str, nn.Module]]] = []
    lists = ShortenedLists()

    def visit(module: nn.Module, path: str) -> None:
        if _repeated(module):
            saved.append((module, module._modules))
            lists.lengths[path] = len(module)
            module._modules = OrderedDict(list(module._modules.items())[:KEEP])
        for name, child in module._modules.items():
            if child is not None:
                visit(child, f"{path}.{name}" if path else name)

    visit(model, "")
    try:
        yield lists
    finally:
        for module, modules in reversed(saved):
            module._modules = modules
