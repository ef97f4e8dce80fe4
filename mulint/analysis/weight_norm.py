"""Weight normalisation (`w = g · v / ‖v‖`): the layer's weight is composed from a magnitude `g` (one
entry per output row: a vector-like parameter, whatever the graph multiplies it into) and a direction
`v`. The weight's init is that of the composed weight, not of `v` alone (a `v` of any scale gives rows
of norm `g`), and `g` is never a hidden matrix: judging it as one gives a false MU101 whose fix would
break µP. Both the parametrization (`parametrizations.weight.original0/1`) and the older hook
(`weight_g`/`weight_v`) are recognised by what the module holds, not by names alone."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class WeightNormed:
    magnitude: str  # full name of g
    direction: str  # full name of v
    module: nn.Module
    weight: str  # the attribute that gives the composed weight


def weight_normed(model: nn.Module) -> list[WeightNormed]:
    from torch.nn.utils.parametrizations import _WeightNorm
    from torch.nn.utils.weight_norm import WeightNorm

    found = []
    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        parametrizations = getattr(module, "parametrizations", None)
        if isinstance(parametrizations, nn.ModuleDict):
            for weight, plist in parametrizations.items():
                if isinstance(plist, nn.ModuleList) and len(plist) == 1 and isinstance(plist[0], _WeightNorm):
                    base = f"{prefix}parametrizations.{weight}."
                    found.append(WeightNormed(base + "original0", base + "original1", module, weight))
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm):
                found.append(WeightNormed(f"{prefix}{hook.name}_g", f"{prefix}{hook.name}_v", module, hook.name))
    return found


def composed_rms(item: WeightNormed) -> float | None:
    """RMS entry of the weight the layer computes with."""
    from torch.nn.utils.weight_norm import WeightNorm

    with torch.no_grad():
        hooks = [h for h in item.module._forward_pre_hooks.values() if isinstance(h, WeightNorm)]
        weight = hooks[0].compute_weight(item.module) if hooks else getattr(item.module, item.weight)
        value = weight.detach().float()
    return float(value.pow(2).mean().sqrt()) if value.numel() else None
