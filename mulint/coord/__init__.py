"""The dynamic coordinate check (MUP_REFERENCE §6): train a few steps at growing widths with the
same data and hyperparameters, and fit how much each layer's output moves against width.

In µP every slope stays near 0. A slope above BLOW_UP means a layer's change grows with width;
below COLLAPSE, that it stops learning as width grows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from mulint.analysis.numbers import numeric_widths
from mulint.analysis.optimizer import find_factory
from mulint.analysis.structure import Structure
from mulint.build import build_at
from mulint.build import inputs as example
from mulint.build.provenance import quiet
from mulint.errors import MulintError
from mulint.exponents import fit_exponent

BLOW_UP = 0.3
COLLAPSE = -0.5
# An output with no width dimension (the logits, attention probabilities) is a sum over width: with
# a non-zero init its change carries a term decaying like width^-½, which small widths show as a
# mildly negative slope in a correct µP model; a real collapse is ≈ -1.
COLLAPSE_OUTPUT = -0.75
BATCH, SEQ = 16, 16


@dataclass
class LayerCurve:
    name: str  # module path, or "output" for the model's output
    module_type: str
    judged: bool
    reason: str = ""  # why a layer is not judged
    change: dict[int, dict[int, float]] = field(default_factory=dict)  # step -> width -> mean |h_t - h_0|
    size: dict[int, dict[int, float]] = field(default_factory=dict)  # step -> width -> mean |h_t|
    slopes: dict[int, float | None] = field(default_factory=dict)  # step -> slope of change vs width
    status: str = "ok"  # "ok", "blow-up" or "collapse"
    shapes: dict[int, tuple[int, ...]] = field(default_factory=dict)  # width -> output shape

    @property
    def finite(self) -> bool:
        """No dimension of the output grows with width (logits, attention probabilities)."""
        return len(set(self.shapes.values())) == 1

    @property
    def slope(self) -> float | None:
        return self.slopes[max(self.slopes)] if self.slopes else None


@dataclass
class CoordResult:
    target: str
    widths: list[int]
    steps: int
    seeds: int
    optimizer: str
    layers: list[LayerCurve]

    @property
    def verdict(self) -> str:
        return "fail" if any(l.status != "ok" for l in self.layers if l.judged) else "pass"


def _first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for v in value:
            found = _first_tensor(v)
            if found is not None:
                return found
    return None


def _loss(output: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Cross-entropy against fixed random labels for logits; mean square otherwise."""
    if output.dim() >= 2 and output.shape[-1] >= 2:
        logits = output.reshape(-1, output.shape[-1]).float()
        labels = torch.randint(0, output.shape[-1], (logits.shape[0],), generator=generator)
        return F.cross_entropy(logits, labels)
    target = torch.randn(output.shape, generator=generator)
    return (output.float() - target).pow(2).mean()


def _inputs(target, structure: Structure, model: nn.Module, batch_fn) -> example.Inputs:
    torch.manual_seed(0)  # identical data at every width
    if batch_fn is not None:
        return example.from_user_function(batch_fn, model)
    user = getattr(target.module, "example_inputs", None)
    if callable(user):
        return example.from_user_function(user, model)
    return example.synthesise(model, "cpu", batch=BATCH, seq=SEQ)[structure.inputs_index]


def _judged(structure: Structure) -> dict[str, str]:
    """Modules not judged on their own output, with the reason: a multiplier outside them."""
    skip = {}
    for p in structure.facts.params:
        for use in p.uses:
            if abs(use.multiplier_exponent) > 0.25:
                skip[use.module or "output"] = "a width-dependent multiplier follows it: judged downstream"
    skip.pop("output", None)  # the model output is always judged
    return skip


def run_coord(target, structure: Structure, *, widths: list[int] | None = None, steps: int = 3, seeds: int = 2,
              lr: float = 1e-3, optimizer: str | None = None, batch_fn: Callable | None = None,
              resolve_optimizer=None, progress: Callable[[int], None] = lambda n: None) -> CoordResult:
    knob = structure.knob
    widths = widths if widths and len(widths) >= 3 else numeric_widths(knob, target.label, widths, count=4)
    model_cls = type(next(iter(structure.models.values())))
    factory = find_factory(target.module, model_cls, optimizer, resolve_optimizer) if resolve_optimizer else None
    label = factory.label if factory else f"Adam(lr={lr:g})"
    skip = _judged(structure)
    curves: dict[str, LayerCurve] = {}
    for width in widths:
        for seed in range(seeds):
            torch.manual_seed(1000 + seed)
            with quiet():
                model = build_at(knob, width, target=target.label, device="cpu")
            opt = factory.make(model) if factory else torch.optim.Adam(model.parameters(), lr=lr)
            _train_and_record(model, opt, _inputs(target, structure, model, batch_fn), steps, width, seed,
                              seeds, curves, skip, target.label)
            progress(1)
    for curve in curves.values():
        curve.slopes = {t: fit_exponent(by_width) for t, by_width in curve.change.items()}
        curve.status = judge(curve)
    return CoordResult(target=target.label, widths=widths, steps=steps, seeds=seeds, optimizer=label,
                       layers=list(curves.values()))


def judge(curve: LayerCurve) -> str:
    slope = curve.slope
    if not curve.judged or slope is None:
        return curve.status
    floor = COLLAPSE_OUTPUT if curve.name == "output" or curve.finite else COLLAPSE
    return "blow-up" if slope > BLOW_UP else "collapse" if slope < floor else "ok"


def _train_and_record(model, opt, inputs, steps, width, seed, seeds, curves, skip, label):
    args, kwargs = inputs
    outputs: dict[str, torch.Tensor] = {}
    names = {}
    for name, module in model.named_modules():
        names[module] = name or "output"
        module.register_forward_hook(lambda m, i, o: outputs.__setitem__(names[m], _first_tensor(o)))

    def record() -> dict[str, torch.Tensor]:
        outputs.clear()
        model.eval()
        with torch.no_grad(), quiet():
            model(*args, **kwargs)
        return {k: v.detach().float().clone() for k, v in outputs.items()
                if v is not None and v.is_floating_point()}

    first = record()
    for step in range(1, steps + 1):
        model.train()
        try:
            with quiet():
                out = _first_tensor(model(*args, **kwargs))
                loss = _loss(out, torch.Generator().manual_seed(0))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        except Exception as exc:
            raise MulintError(f"training step at width {width} raised {type(exc).__name__}: {exc}", target=label,
                              step="coord", hint="give a batch function with --batch path/to/file.py:NAME") from exc
        now = record()
        for name, h in now.items():
            if name not in first or first[name].shape != h.shape:
                continue
            curve = curves.get(name)
            if curve is None:
                module = dict(model.named_modules()).get("" if name == "output" else name)
                curve = curves[name] = LayerCurve(name=name, module_type=type(module).__name__,
                                                  judged=name not in skip, reason=skip.get(name, ""))
            curve.shapes[width] = tuple(h.shape)
            change = float((h - first[name]).abs().mean()) / seeds
            size = float(h.abs().mean()) / seeds
            curve.change.setdefault(step, {}).setdefault(width, 0.0)
            curve.change[step][width] += change
            curve.size.setdefault(step, {}).setdefault(width, 0.0)
            curve.size[step][width] += size


def coord_facts(result: CoordResult, structure: Structure):
    """The judged layers as facts, each with the line that constructs it (for MU9xx findings)."""
    from mulint.facts import CoordLayer

    reference = structure.models[structure.facts.widths[0]] if structure.facts.widths[0] in structure.models \
        else next(iter(structure.models.values()))
    modules = dict(reference.named_modules())
    sites = structure.provenance.module_sites if structure.provenance else {}
    out = []
    for layer in result.layers:
        if not layer.judged or layer.slope is None:
            continue
        module = modules.get("" if layer.name == "output" else layer.name)
        out.append(CoordLayer(name=layer.name, module_type=layer.module_type, slope=layer.slope,
                              status=layer.status, loc=sites.get(module) if module is not None else None))
    return out
