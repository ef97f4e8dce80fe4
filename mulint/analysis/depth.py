"""How the model scales with its number of blocks: the residual branches, their multipliers and α̂.

The target is built on the meta device at its base depth L and at 2L and 4L, at
the reference width, with repeated blocks traced as two (mulint.construct.repeats): the structure costs
a few traces of two blocks each. The residual adds of each trace (mulint.analysis.residual) are lined up
by the branch's module pattern, and the branch's constant factor at each depth gives α̂
(multiplier ∝ L^-α̂, fitted as width exponents are). A learnable gate counts by its init, read from small
CPU builds at each depth. How the factor is set is told by what moves it: the depth knob ("depth"), a
parameter ("learned"), another float field of the config ("knob"), nothing ("constant"); "none" when
there is no factor.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from mulint.analysis.residual import ResidualAdd, residual_adds
from mulint.analysis.structure import Structure, TracedAs, inputs_for
from mulint.construct import build_at
from mulint.construct.depth import DepthKnob, find_depth_knob
from mulint.construct.knob import WidthKnob
from mulint.construct.repeats import ShortenedLists, shortened
from mulint.errors import MulintError
from mulint.exponents import TOLERANCE, fit_exponent
from mulint.facts import DepthFacts, ParamDepth, ResidualBranch
from mulint.parallel import Pending
from mulint.paths import layer_pattern
from mulint.reading.targets import ResolvedTarget
from mulint.trace import Traced, export
from mulint.trace.record import seed_all

NO_BRANCHES_NOTE = "depth: no residual adds in the trace: the depth rules judge residual networks only"
POST_LN_NOTE = "depth: post-LN blocks (the residual sum is normalised): the depth rules do not cover them"
MAX_KNOB_PROBES = 8  # float fields tried when a constant multiplier might be set by one
SAME = 1e-9  # relative difference below which a factor did not move


@dataclass
class BranchReading:
    """One branch lined up across depths: its adds in the base trace and its factor at each depth."""

    name: str
    kind: str
    adds: list[ResidualAdd]  # in the base depth's trace
    factors: dict[int, float] = field(default_factory=dict)  # depth -> constant factor in forward
    skip_factors: dict[int, float] = field(default_factory=dict)
    cancelled: dict[int, float] = field(default_factory=dict)  # depth -> a factor in front of the pre-norm


def depths_for(base: int) -> list[int]:
    """The depths built: L, 2L and 4L (each trace costs about a second on GPT-2 small; three depths fit
    an exponent and show a bend, and L/2 would add a fourth trace for little)."""
    return [base, 2 * base, 4 * base]


def analyse_depth(
    target: ResolvedTarget,
    structure: Structure,
    depth_arg: str | None = None,
    *,
    numeric_width: int | None = None,
    traced_beside: Pending[tuple[TracedAs, dict[int, Traced]]] | None = None,
) -> DepthFacts | None:
    """The depth facts when the target has a depth knob (None without one). Block/non-block flags and
    the branches' α̂; the per-parameter init, lr and ε numbers are filled by the numbers pass.
    ``traced_beside``: the traces at the other depths, started beside the width traces (`depth_traces`);
    taken when they were made the way the width traces went."""
    knob = find_depth_knob(structure.knob, depth_arg, target=target.label)
    if knob is None or not structure.traces:
        _cancel(traced_beside)
        return None
    width = next(iter(structure.traces))
    depths = depths_for(knob.base)
    facts = DepthFacts(knob=knob.name, base_depth=knob.base, depths=depths, named_by_user=knob.named_by_user)
    if width not in structure.facts.widths:
        _cancel(traced_beside)
        facts.notes.append("depth not analysed: the model was traced by running it, not with torch.export")
        return facts
    found = traced_beside.result() if traced_beside is not None else None
    made = found[1] if found is not None and found[0] == structure.traced_as else {}
    traces = {knob.base: structure.traces[width]}
    try:
        for depth in depths:
            if depth != knob.base:
                traces[depth] = made.get(depth) or trace_at(target, structure, knob.at(depth), width)
    except MulintError as exc:
        facts.notes.append(f"depth not analysed: building or tracing at another depth failed ({exc.message})")
        return facts
    try:
        _read_branches(facts, traces, target, structure, knob, width, numeric_width)
    except Exception as exc:  # depth is read beside the width analysis: its failure must not end a check
        facts.branches, facts.params = [], []
        facts.notes.append(f"depth not analysed: reading the residual branches failed ({type(exc).__name__}: {exc})")
    return facts


def depth_traces(
    target: ResolvedTarget, knob: WidthKnob, width: int, depth_arg: str | None, traced_as: TracedAs
) -> tuple[TracedAs, dict[int, Traced]]:
    """The traces at the depths other than the base, as `analyse_depth` makes them for a model whose
    width traces went ``traced_as``: started on another core as soon as the reference width traced."""
    depth_knob = find_depth_knob(knob, depth_arg, target=target.label)
    if depth_knob is None:
        return traced_as, {}
    depths = [d for d in depths_for(depth_knob.base) if d != depth_knob.base]
    return traced_as, {d: _trace_at(target, traced_as, depth_knob.at(d), width) for d in depths}


def _cancel(pending: Pending | None) -> None:
    if pending is not None:
        pending.cancel()


def _read_branches(facts: DepthFacts, traces, target, structure: Structure, knob: DepthKnob, width, numeric_width):
    """The branches lined up across the traces, how each multiplier is set, and every parameter's flag."""
    depths = facts.depths
    readings = line_up(traces, knob.base)
    gates = gate_values(knob, readings, depths, numeric_width, target.label) if numeric_width else {}
    lists = structure.shortened
    names = [p.name for p in structure.facts.params]
    for reading in readings:
        facts.branches.append(_branch(reading, gates, names, lists))
        _set_source(facts.branches[-1], reading, target, structure, knob, width)
    owner = {p: b.name for b in facts.branches for p in b.params}
    facts.params = [ParamDepth(name=n, block=n in owner, branch=owner.get(n, "")) for n in names]
    if not facts.branches:
        facts.notes.append(NO_BRANCHES_NOTE)
    if any(b.post_norm for b in facts.main_branches):
        facts.notes.append(POST_LN_NOTE)


def trace_at(target: ResolvedTarget, structure: Structure, knob: WidthKnob, width: int) -> Traced:
    return _trace_at(target, structure.traced_as, knob, width)


def _trace_at(target: ResolvedTarget, traced_as: TracedAs, knob: WidthKnob, width: int) -> Traced:
    """The model built by ``knob`` at ``width`` on the meta device, traced with repeated blocks as two.
    A base depth too short to shorten (2 blocks) does not make 4L traced in full: only the first blocks'
    adds are read; a forward that needed every block at the base depth is traced in full."""
    seed_all(0)
    model = build_at(knob, width, target=target.label)
    if not traced_as.in_full:
        with shortened(model) as lists:
            try:
                if lists.lengths:
                    return export(model, inputs_for(target, model)[traced_as.inputs_index], target=target.label)
            except MulintError:
                pass  # the forward needs every block at this depth: traced in full below
    return export(model, inputs_for(target, model)[traced_as.inputs_index], target=target.label)


def branch_name(traced: Traced, add: ResidualAdd, *, pattern: bool = True) -> str:
    """The branch's module pattern: the deepest module holding its parameters other than its pre-norm's
    and its gate (`h.*.attn`, though the block holds `ln_1`); a gated path of no weights, by its gate."""
    root = traced.nodes[add.branch.root].module_path
    if add.params and set(add.params) <= set(add.branch.gates):
        name = add.params[0]  # a gated path without weights of its own (x0 · g): named by its gate
    else:
        name = add.module or root or add.node
    return layer_pattern(f"{name}.")[:-1] if pattern else name


def named_adds(traced: Traced) -> list[tuple[ResidualAdd, str]]:
    """The trace's residual adds with their branch names; two branches of one block that the modules do
    not tell apart (a functional block: both in `layers.0`) are named by their last weights instead."""
    adds = residual_adds(traced)
    raw = [branch_name(traced, add, pattern=False) for add in adds]
    named = []
    for add, name in zip(adds, raw):
        if raw.count(name) > 1 and add.last_weight:
            name = add.last_weight.removesuffix(".weight")
        named.append((add, layer_pattern(f"{name}.")[:-1]))
    return named


def line_up(traces: dict[int, Traced], base: int) -> list[BranchReading]:
    """The branches of the base trace, each with its factor at every depth where it is found."""
    readings: dict[tuple[str, str], BranchReading] = {}
    for depth, traced in sorted(traces.items(), key=lambda kv: kv[0] != base):
        for add, name in named_adds(traced):
            key = (add.kind, name)
            if depth == base:
                reading = readings.setdefault(key, BranchReading(key[1], add.kind, []))
                reading.adds.append(add)
            elif key not in readings:
                continue
            reading = readings[key]
            reading.factors.setdefault(depth, add.branch.factor)
            reading.skip_factors.setdefault(depth, add.skip.factor)
            reading.cancelled.setdefault(depth, add.cancelled_factor)
    return list(readings.values())


def gate_values(
    knob: DepthKnob, readings: list[BranchReading], depths: list[int], width: int, label: str
) -> dict[str, dict[int, float]]:
    """Each gate parameter's rms entry at init at every depth, from small CPU builds (same seed)."""
    import torch

    from mulint.analysis.numbers import numeric_knob

    wanted = {g for r in readings for a in r.adds for g in a.branch.gates}
    values: dict[str, dict[int, float]] = {g: {} for g in wanted}
    if not wanted:
        return values
    for depth in depths:
        torch.manual_seed(0)
        model = build_at(numeric_knob(knob.at(depth)), width, target=label, device="cpu")
        params = dict(model.named_parameters())
        for gate in wanted:
            if gate in params:
                values[gate][depth] = float(params[gate].detach().float().pow(2).mean().sqrt())
    return values


def _branch(
    reading: BranchReading, gates: dict[str, dict[int, float]], names: list[str], lists: ShortenedLists
) -> ResidualBranch:
    """The branch's facts: its multiplier at each depth (times its gate's init; a factor its pre-norm
    cancels when it has no other), α̂, the skip path's exponent, every parameter of the model on it."""
    first = reading.adds[0]
    multiplier = dict(sorted(reading.factors.items()))
    gate = next(iter(first.branch.gates), "")
    for depth in multiplier:
        multiplier[depth] *= gates.get(gate, {}).get(depth, 1.0) if gate else 1.0
    cancelled = False
    unscaled = all(abs(m - 1.0) < SAME for m in multiplier.values())
    if unscaled and any(abs(c - 1.0) > SAME for c in reading.cancelled.values()):
        multiplier, cancelled = dict(sorted(reading.cancelled.items())), True
    traced = {p for a in reading.adds for p in a.params}
    alpha = fit_exponent({d: abs(m) for d, m in multiplier.items()})
    skip = fit_exponent({d: abs(s) for d, s in reading.skip_factors.items()})
    return ResidualBranch(
        name=reading.name,
        kind=reading.kind,
        params=tuple(n for n in names if lists.representative(n) in traced),
        loc=first.loc,
        multiplier=multiplier,
        alpha=None if alpha is None else _clean(-alpha),
        multiplier_at=first.cancelled_at if cancelled else next(iter(first.branch.locs), None),
        skip_exponent=_clean(skip or 0.0),
        cancelled_by_norm=cancelled,
        post_norm=any(a.post_norm for a in reading.adds),
        last_weight=_model_name(first.last_weight, names),
        gate=_model_name(gate, names),
    )


def _model_name(traced_name: str | None, names: list[str]) -> str:
    """A traced parameter's name when the model lists it under that name (a tied one is listed once)."""
    return traced_name if traced_name and traced_name in names else ""


def _clean(value: float) -> float:
    """Exponents read from exact factors: drop float noise (-0.0, 0.9999999)."""
    return round(value, 6) + 0.0


def _set_source(
    branch: ResidualBranch,
    reading: BranchReading,
    target: ResolvedTarget,
    structure: Structure,
    knob: DepthKnob,
    width: int,
) -> None:
    """How the branch's factor is set: by a gate, by the depth knob (it moves with depth), by another
    float field (it moves when that field does), or by a number in the code."""
    values = list(branch.multiplier.values())
    if branch.gate:
        branch.source = "learned"
    elif values and max(values) - min(values) > SAME * max(abs(v) for v in values):
        branch.source, branch.knob = "depth", knob.name
    elif values and abs(values[0] - 1.0) > SAME:
        field_name = _knob_setting(reading, target, structure, knob, width)
        branch.source, branch.knob = ("knob", field_name) if field_name else ("constant", "")


def float_fields(knob: DepthKnob) -> dict[str, float]:
    """The float fields of the target's constructor or config, other than those that grow with width."""
    plain = knob.width.unlimited or knob.width
    grows = set(plain.describe_scaling(plain.base)) if plain.make is not None else set()
    return {
        k: v
        for k, v in plain.defaults.items()
        if isinstance(v, float) and math.isfinite(v) and v != 0.0 and k not in grows
    }


def _knob_setting(
    reading: BranchReading, target: ResolvedTarget, structure: Structure, knob: DepthKnob, width: int
) -> str:
    """The float field that moves a branch's constant factor: each is changed in turn and the model
    traced again at its base depth; "" when none moves it (a number in the code)."""
    base = knob.at(knob.base)
    make = base.make
    if make is None:
        return ""
    prefix = knob.name[: -len(knob.field)]
    for name, value in list(float_fields(knob).items())[:MAX_KNOB_PROBES]:

        def build(w: int, name=name, value=value):
            return make({**base.describe_scaling(w), name: value * 1.5})

        try:
            traced = trace_at(target, structure, dataclasses.replace(base, build=build), width)
        except MulintError:
            continue
        for add, branch in named_adds(traced):
            if (add.kind, branch) == (reading.kind, reading.name):
                if abs(add.branch.factor - reading.factors[knob.base]) > SAME * abs(reading.factors[knob.base]):
                    return prefix + name
                break
    return ""


NOT_SCALED_NOTE = (
    "depth: branches are not scaled with depth (α = 0); hyperparameters tuned at one depth will not transfer "
    "to another; --profile completep or depth-mup requires it"
)
DEFAULT_PROFILE = "mup"  # the profile that judges depth only where the model shows depth intent


def finish_depth(depth: DepthFacts, profile: str) -> None:
    """Once the per-parameter numbers are in (init, lr, ε at each depth): a factor folded into a branch's
    last weight (its init and its Adam lr scaled alike) joins the branch's multiplier, and a model with no
    depth scaling anywhere gets the default profile's note instead of findings."""
    for branch in depth.branches:
        fold_last_weight(depth, branch)
    unscaled = depth.branches and not has_depth_intent(depth)
    if profile == DEFAULT_PROFILE and unscaled and NOT_SCALED_NOTE not in depth.notes:
        depth.notes.append(NOT_SCALED_NOTE)


def fold_last_weight(depth: DepthFacts, branch: ResidualBranch) -> None:
    """``W_last`` initialised ∝ L^-a and stepped with lr ∝ L^-a (Adam) is the same model as ``L^-a · W_last``
    with neither: the factor counts as the branch's multiplier (MUP_REFERENCE §8)."""
    if not branch.last_weight or branch.source in ("knob", "constant"):
        return
    try:
        param = depth.param(branch.last_weight)
    except KeyError:
        return
    init, lr = param.init_exponent, param.lr_exponent
    if init is None or lr is None or abs(init) < TOLERANCE or abs(init - lr) >= TOLERANCE:
        return
    base = param.init_rms.get(depth.base_depth)
    if not base:
        return
    for d in branch.multiplier:
        if d in param.init_rms:
            branch.multiplier[d] *= param.init_rms[d] / base
    alpha = fit_exponent({d: abs(m) for d, m in branch.multiplier.items()})
    branch.alpha = None if alpha is None else _clean(-alpha)
    if branch.source == "none":
        branch.source, branch.knob = "depth", depth.knob


def has_depth_intent(depth: DepthFacts) -> bool:
    """A branch multiplier (stored, derived or learned), or a depth factor on any block lr or ε."""
    if any(b.source != "none" or b.cancelled_by_norm or abs(b.skip_exponent) >= TOLERANCE for b in depth.branches):
        return True
    return any(
        p.block and any(e is not None and abs(e) >= TOLERANCE for e in (p.lr_exponent, p.eps_exponent))
        for p in depth.params
    )
