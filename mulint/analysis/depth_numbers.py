"""Numbers against depth: each parameter's init size, learning rate and Adam ε at several depths, the
width fixed, and their exponents of L (``ParamDepth``, MUP_REFERENCE §8).

The model is built on the CPU at one small width, seeded, at each depth; its optimizer is made the way
the training makes it (``Training.of``: the lr-scale keys applied as ``check`` applies them), so the
learning rate read here is the one a block trains at. Only parameters present at every depth are
compared (by name: the first blocks exist at every depth; embeddings, final norm and readout too).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from mulint.analysis.lr_reads import LrPolicy
from mulint.analysis.optimizer import family_of
from mulint.analysis.training import Training
from mulint.construct import build_at
from mulint.construct.depth import DepthKnob
from mulint.construct.provenance import quiet
from mulint.depth_scaling import depth_notes
from mulint.errors import MulintError
from mulint.exponents import fit_exponent
from mulint.facts import DepthFacts, ParamDepth
from mulint.paths import layer_pattern

# A random init's rms over n entries is itself random (relative spread about 1/sqrt(2n)), and each depth
# draws it from another point of the seeded stream: a change within this many spreads is no exponent.
NOISE_SPREADS = 4.0


@dataclass
class DepthNumbers:
    depths: list[int]  # the depths that built
    init_rms: dict[str, dict[int, float]] = field(default_factory=dict)  # param -> depth -> rms entry
    drawn: dict[str, int] = field(default_factory=dict)  # param -> entries, for a random (not constant) init
    lr: dict[str, dict[int, float]] = field(default_factory=dict)  # param -> depth -> its group's lr
    eps: dict[str, dict[int, float]] = field(default_factory=dict)  # param -> depth -> its group's Adam ε
    notes: list[str] = field(default_factory=list)


def measure_depths(
    knob: DepthKnob,
    depths: list[int],
    width: int,
    *,
    target: str,
    make_optimizer: Callable[[nn.Module], object] | None = None,
    policy: LrPolicy | None = None,
) -> DepthNumbers:
    """Init rms, lr and ε of every parameter present at every depth of ``depths`` that builds; the lr
    and ε only with ``make_optimizer``. A depth the model refuses is left out, with a note."""
    numbers = DepthNumbers(depths=[])
    seen: list[set[str]] = []
    for depth in sorted(set(depths)):
        try:
            model = _seeded(knob, depth, width, target)
        except MulintError as exc:
            numbers.notes.append(f"depth: not built with {knob.name}={depth}: {exc}")
            continue
        numbers.depths.append(depth)
        named = dict(model.named_parameters())
        seen.append(set(named))
        for name, p in named.items():
            numbers.init_rms.setdefault(name, {})[depth] = _rms(p)
            if p.numel() > 1 and not bool((p == p.flatten()[0]).all()):
                numbers.drawn[name] = p.numel()
        if make_optimizer is not None:
            _read_groups(model, make_optimizer, policy, depth, numbers, target)
    common = set.intersection(*seen) if seen else set()
    for table in (numbers.init_rms, numbers.lr, numbers.eps):
        for name in set(table) - common:
            del table[name]
    return numbers


def depth_params(depth: DepthFacts, numbers: DepthNumbers) -> list[ParamDepth]:
    """Each parameter's depth numbers and exponents; block or not as the structure pass said (the
    parameters ``depth`` already lists), else by the branches of ``depth`` holding its layer pattern."""
    owner: dict[str, str] = {}
    for residual in depth.branches:
        for name in residual.params:
            owner.setdefault(layer_pattern(name), residual.name)
    said = {p.name: p.branch for p in depth.params if p.block}
    known = {p.name for p in depth.params}
    out = []
    for name, rms in numbers.init_rms.items():
        branch = said.get(name, "") if name in known else owner.get(layer_pattern(name), "")
        lr, eps = numbers.lr.get(name, {}), numbers.eps.get(name, {})
        out.append(
            ParamDepth(
                name=name,
                block=bool(branch),
                branch=branch,
                init_rms=rms,
                init_exponent=init_exponent(rms, numbers.drawn.get(name)),
                lr=lr,
                lr_exponent=fit_exponent(lr) if lr else None,
                eps=eps,
                eps_exponent=fit_exponent(eps) if eps else None,
            )
        )
    return out


def analyse_depth_numbers(
    depth: DepthFacts,
    knob: DepthKnob,
    width: int,
    *,
    target: str,
    make_optimizer: Callable[[nn.Module], object] | None = None,
    policy: LrPolicy | None = None,
    profile: str = "mup",
) -> None:
    """Fill ``depth.params`` from builds at ``depth.depths`` and add the notes the model earns under
    ``profile``; call it once ``depth.branches`` are known (they say which parameters are block ones)."""
    numbers = measure_depths(knob, depth.depths, width, target=target, make_optimizer=make_optimizer, policy=policy)
    depth.params = depth_params(depth, numbers) if len(numbers.depths) >= 2 else []
    depth.notes.extend(n for n in numbers.notes + depth_notes(depth, profile) if n not in depth.notes)


def init_exponent(rms: dict[int, float], drawn: int | None) -> float | None:
    """The exponent of L of a parameter's init rms; 0 for a random init whose rms moves no more than its
    sampling noise allows (a readout bias of 4 entries), so that noise is never read as depth scaling."""
    exponent = fit_exponent(rms)
    if exponent is None or drawn is None:
        return exponent
    values = [v for v in rms.values() if v > 0]
    spread = max(abs(math.log(v / values[0])) for v in values)
    return 0.0 if spread <= NOISE_SPREADS / math.sqrt(2 * drawn) else exponent


def _seeded(knob: DepthKnob, depth: int, width: int, target: str) -> nn.Module:
    torch.manual_seed(0)
    with quiet():
        return build_at(knob.at(depth), width, target=target, device="cpu")


def _read_groups(model, make_optimizer, policy, depth: int, numbers: DepthNumbers, target: str) -> None:
    """Every group's lr as the training sets it, and its Adam ε (the Adam family only)."""
    training = Training.of(model, make_optimizer, policy, target=target)
    groups = [(opt, group) for opt in training.optimizers for group in opt.param_groups]
    for (names, lr), (opt, group) in zip(training.group_lrs(), groups):
        given = group.get("eps")
        given = given[0] if isinstance(given, (tuple, list)) else given
        eps = float(given) if isinstance(given, (int, float)) and not isinstance(given, bool) else None
        for name in names:
            numbers.lr.setdefault(name, {})[depth] = lr
            if eps is not None and family_of(opt) == "adam":
                numbers.eps.setdefault(name, {})[depth] = eps


def _rms(p: torch.Tensor) -> float:
    return float(p.detach().float().pow(2).mean().sqrt()) if p.numel() else 0.0
