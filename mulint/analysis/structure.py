"""Structure of a target: build it on the meta device at two widths, trace both, and give every
parameter its shape, growing dimensions, uses, fan-in/out and roles."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn as nn

from mulint.analysis.attention import attention_sites
from mulint.analysis.uses import param_uses, role_from_shape
from mulint.build import build_at
from mulint.build import inputs as example
from mulint.build.provenance import Provenance
from mulint.build.repeats import ShortenedLists, shortened
from mulint.errors import MulintError
from mulint.facts import ModelFacts, MupModule, ParamFacts, ParamUse
from mulint.load.targets import ResolvedTarget
from mulint.load.width import WidthKnob, find_knob
from mulint.trace import Traced, export


@dataclass
class Structure:
    """The facts plus what later passes need: the knob, the meta models and both traces."""

    facts: ModelFacts
    knob: WidthKnob
    models: dict[int, nn.Module]
    traces: dict[int, Traced]
    inputs_index: int = 0
    provenance: Provenance | None = None  # construction sites of the reference model's modules
    shortened: ShortenedLists = field(default_factory=ShortenedLists)  # repeated blocks traced as two


def choose_widths(base: int, requested: list[int] | None) -> list[int]:
    if not requested:
        return [base, 2 * base]
    widths = sorted(set(requested))
    if len(widths) < 2:
        raise MulintError("--widths needs at least two different widths", step="width",
                          hint="e.g. --widths 64,128,256")
    return widths


def _reference_pair(base: int, widths: list[int]) -> tuple[int, int]:
    ref = base if base in widths else widths[0]
    other = next((w for w in widths if w > ref), None) or max(w for w in widths if w != ref)
    return ref, other


def _inputs_for(target: ResolvedTarget, model: nn.Module) -> list[example.Inputs]:
    user = getattr(target.module, "example_inputs", None)
    if callable(user):
        try:
            return [example.to_device(example.from_user_function(user, model), "meta")]
        except Exception as exc:
            raise MulintError(f"example_inputs() raised {type(exc).__name__}: {exc}", target=target.label,
                              step="inputs", hint="example_inputs(model) must return the forward's arguments") from exc
    candidates = example.synthesise(model, "meta")
    if not candidates:
        raise MulintError("cannot tell what input the model takes", target=target.label, step="inputs",
                          hint="define `example_inputs(model)` in the file returning the forward's arguments")
    return candidates


def _export_pair(target, models, ref, other) -> tuple[Traced, Traced, int]:
    candidates = _inputs_for(target, models[ref])
    error = None
    for i, inputs in enumerate(candidates):
        try:
            ref_trace = export(models[ref], inputs, target=target.label)
        except MulintError as exc:
            error = error or exc
            continue
        other_inputs = _inputs_for(target, models[other])[i]
        return ref_trace, export(models[other], other_inputs, target=target.label), i
    raise error


def _trace_pair(target, models, ref, other) -> tuple[Traced, Traced, int, ShortenedLists]:
    """Both widths traced with repeated blocks shortened, or in full when the forward needs them all."""
    with shortened(models[ref]) as lists, shortened(models[other]):
        if lists.lengths:
            try:
                return (*_export_pair(target, models, ref, other), lists)
            except MulintError:
                pass
    return (*_export_pair(target, models, ref, other), ShortenedLists())


def analyse_structure(target: ResolvedTarget, *, widths: list[int] | None = None,
                      width_arg: str | None = None) -> Structure:
    try:
        knob = find_knob(target.obj, target.label, width_arg)
    except MulintError:
        if not widths:
            raise
        knob = find_knob(target.obj, target.label, width_arg, base_override=min(widths))
    chosen = choose_widths(knob.base, widths)
    ref, other = _reference_pair(knob.base, chosen)
    provenance = Provenance()
    models = {w: build_at(knob, w, target=target.label, provenance=provenance if w == ref else None)
              for w in chosen}
    mup = mup_modules(models[ref], provenance)
    facts = ModelFacts(target=target.label, path=str(target.path or ""), width_knob=knob.name,
                       base_width=knob.base, widths=chosen, params=[], mup_modules=mup)
    broken = [m for m in mup if not (m.base_shapes and m.bias_ok)]
    if broken:
        # mup layers without base shapes (or with a misshaped bias) cannot run a forward pass.
        facts.traced = False
        facts.notes.append(f"not traced: {broken[0].cls} `{broken[0].name}` cannot run as built")
        facts.params = _param_facts(models, ref, other, None, None, provenance)
        return Structure(facts=facts, knob=knob, models=models, traces={}, provenance=provenance)
    ref_trace, other_trace, inputs_index, lists = _trace_pair(target, models, ref, other)
    facts.params = _param_facts(models, ref, other, ref_trace, other_trace, provenance, lists)
    facts.attention = attention_sites(ref_trace, other_trace, (ref, other), ref_trace.input_dependent())
    for site in facts.attention:
        site.count = lists.count(ref_trace.nodes[site.node].module_path)
    facts.repeated_blocks = dict(lists.lengths)
    return Structure(facts=facts, knob=knob, models=models, traces={ref: ref_trace, other: other_trace},
                     inputs_index=inputs_index, provenance=provenance, shortened=lists)


def mup_modules(model: nn.Module, provenance: Provenance) -> list[MupModule]:
    found = []
    for name, module in model.named_modules():
        if type(module).__module__.split(".")[0] != "mup":
            continue
        params = list(module.parameters(recurse=False))
        bias, weight = getattr(module, "bias", None), getattr(module, "weight", None)
        bias_ok = bias is None or weight is None or tuple(bias.shape) == tuple(weight.shape[:1])
        found.append(MupModule(name=name, cls=type(module).__name__, loc=provenance.module_sites.get(module),
                               base_shapes=all(hasattr(p, "infshape") for p in params), bias_ok=bias_ok))
    return found


def _owners(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    owners = {}
    for mod_name, module in model.named_modules(remove_duplicate=False):
        for p_name, _ in module.named_parameters(recurse=False):
            owners[f"{mod_name}.{p_name}" if mod_name else p_name] = (module, p_name)
    return owners


def _uses(name: str, ref_trace, other_trace, dependent, infinite, widths, lists) -> list[ParamUse]:
    """A parameter's uses, read from its traced counterpart when its block was not traced."""
    uses = param_uses(lists.representative(name), ref_trace, other_trace, dependent, infinite, widths)
    for use in uses:
        use.module = lists.localize(use.module, name)
    return uses


def _param_facts(models, ref, other, ref_trace, other_trace, provenance,
                 lists: ShortenedLists | None = None) -> list[ParamFacts]:
    lists = lists or ShortenedLists()
    model = models[ref]
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    all_shapes = {w: {n: tuple(p.shape) for n, p in m.named_parameters(remove_duplicate=False)}
                  for w, m in models.items()}
    owners = _owners(model)
    dependent = ref_trace.input_dependent() if ref_trace is not None else set()
    facts = []
    for names in groups.values():
        name = names[0]
        shapes = {w: s[name] for w, s in all_shapes.items() if name in s}
        shape = shapes[ref]
        infinite = tuple(d for d in range(len(shape)) if len({s[d] for s in shapes.values() if len(s) == len(shape)}) > 1)
        # A tied tensor may appear as several placeholders, only one of them used.
        uses = [u for n in names for u in _uses(n, ref_trace, other_trace, dependent, bool(infinite),
                                                (ref, other), lists)] if ref_trace is not None else []
        role_source = "use"
        if not uses:
            role_source = "shape"
            uses = [ParamUse(op="", kind="unused", role=role_from_shape(shape, infinite), fan_in=None,
                             fan_out=None, fan_in_infinite=False, fan_out_infinite=False, node="")]
        owner, local = owners[name]
        sites = [provenance.param_site(*owners[n]) for n in names]
        facts.append(ParamFacts(
            name=name, shape=shape, shapes=shapes, infinite_dims=infinite, uses=uses,
            aliases=tuple(names[1:]), module_type=type(owner).__name__,
            created_at=next((s for s in sites if s is not None), None), role_source=role_source,
        ))
    return facts
