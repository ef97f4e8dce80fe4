"""One architecture at every width, or no analysis: parameters are compared across widths by name, so a
model whose depth or layer list changes with width (`width // 64` blocks) would pair its readout with a
hidden layer of the wider model and give a confident, wrong verdict. Such a model is refused with the
parameters that exist at one width and not the other."""

from __future__ import annotations

import torch.nn as nn

from mulint.errors import MulintError

_SHOWN = 4


def layout(model: nn.Module) -> dict[str, tuple]:
    """Every parameter by name: its rank and the type of the module holding it."""
    owners = {}
    for mod_name, module in model.named_modules(remove_duplicate=False):
        for p_name, param in module.named_parameters(recurse=False):
            owners[f"{mod_name}.{p_name}" if mod_name else p_name] = (param.dim(), type(module).__name__)
    return owners


def require_same_structure(layouts: dict[int, dict[str, tuple]], target: str) -> None:
    """Raise when two widths' models do not hold the same parameters in the same kinds of modules."""
    widths = sorted(layouts)
    first = widths[0]
    for width in widths[1:]:
        a, b = layouts[first], layouts[width]
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        changed = sorted(n for n in set(a) & set(b) if a[n] != b[n])
        if not (only_a or only_b or changed):
            continue
        parts = []
        if only_a:
            parts.append(f"only at width {first}: {_names(only_a)}")
        if only_b:
            parts.append(f"only at width {width}: {_names(only_b)}")
        if changed:
            parts.append(f"a different kind of layer at widths {first} and {width}: {_names(changed)}")
        raise MulintError(
            f"the model's architecture changes with width ({len(a)} parameters at width {first}, {len(b)} at "
            f"width {width}); " + "; ".join(parts),
            target=target,
            step="width",
            hint="µP compares one architecture at several widths: keep the depth and the list of layers "
            "independent of the width argument (take depth as its own argument), or name the widths "
            "to compare with --widths so that they build the same layers",
        )


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
