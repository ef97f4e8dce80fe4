"""Structure of a target: build it on the meta device at two widths, trace both, and give every
parameter its shape, growing dimensions, uses, fan-in/out and roles."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn as nn

from mulint.analysis.attention import attention_sites
from mulint.analysis.branches import first_tracing, train_mode, training_variants
from mulint.analysis.same_structure import layout, require_same_structure
from mulint.analysis.uses import param_uses, role_from_shape
from mulint.analysis.weight_norm import weight_normed
from mulint.construct import build_at
from mulint.construct import inputs as example
from mulint.construct.knob import WidthKnob
from mulint.construct.proportional import proportional_widths
from mulint.construct.provenance import Provenance, from_mup_package
from mulint.construct.repeats import ShortenedLists, shortened
from mulint.construct.shrink import constant_large_sizes
from mulint.construct.training_init import (
    as_trained,
    plan_training_init,
    with_training_init,
)
from mulint.construct.training_init import (
    notes as training_init_notes,
)
from mulint.construct.width import find_knob
from mulint.errors import MulintError
from mulint.facts import BranchFacts, ModelFacts, MupModule, ParamFacts, ParamUse
from mulint.parallel import Pending
from mulint.reading.targets import ResolvedTarget
from mulint.steps import phase
from mulint.trace import Traced, export
from mulint.trace.record import path_difference, record, seed_all, share_inputs

# Seeds tried, in order, for inputs on which the widths of a recorded model take the same path.
RECORD_SEEDS = (0, 1, 2, 3)


# torch.export first; the op record of a real run when it fails (tests turn export off to compare).
EXPORT = True


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
    started: Pending | None = None  # what `after_reference` started beside the traces

    @property
    def traced_as(self) -> TracedAs:
        return TracedAs(self.inputs_index, self.shortened.in_full)


@dataclass(frozen=True)
class TracedAs:
    """How the width traces went: which of the synthesised inputs traced, and whether the forward needed
    every block (traces at other depths follow both)."""

    inputs_index: int
    in_full: bool


StartBeside = Callable[[WidthKnob, int, TracedAs], "Pending"]


def choose_widths(base: int, requested: list[int] | None) -> list[int]:
    if not requested:
        return [base, 2 * base]
    widths = sorted(set(requested))
    if len(widths) < 2:
        raise MulintError("--widths needs at least two different widths", step="width", hint="e.g. --widths 64,128,256")
    return widths


def _reference_pair(base: int, widths: list[int]) -> tuple[int, int]:
    ref = base if base in widths else widths[0]
    other = next((w for w in widths if w > ref), None) or max(w for w in widths if w != ref)
    return ref, other


def inputs_for(target: ResolvedTarget, model: nn.Module, device: str = "meta") -> list[example.Inputs]:
    user = getattr(target.module, "example_inputs", None)
    if callable(user):
        try:
            return [example.to_device(example.from_user_function(user, model), device)]
        except Exception as exc:
            raise MulintError(
                f"example_inputs() raised {type(exc).__name__}: {exc}",
                target=target.label,
                step="inputs",
                hint="example_inputs(model) must return the forward's arguments",
            ) from exc
    candidates = example.synthesise(model, device)
    if not candidates:
        raise MulintError(
            "cannot tell what input the model takes: it has no embedding, linear or "
            "convolution layer and no matrix to size an input by",
            target=target.label,
            step="inputs",
            hint=example.example_inputs_hint(),
        )
    return candidates


def _export_pair(target, models, ref, other, traced: Callable[[int], None]) -> tuple[Traced, Traced, int]:
    """``traced(i)``: the reference width traced with the i-th inputs (the other width is traced next)."""
    candidates = inputs_for(target, models[ref])
    error: MulintError | None = None
    for i, inputs in enumerate(candidates):
        try:
            ref_trace = export(models[ref], inputs, target=target.label)
        except MulintError as exc:
            error = error or exc
            continue
        traced(i)
        other_inputs = inputs_for(target, models[other])[i]
        return ref_trace, export(models[other], other_inputs, target=target.label), i
    assert error is not None, "there is at least one candidate (inputs_for refuses none)"
    raise error


def _trace_pair(
    target, models, ref, other, on_reference: Callable[[TracedAs], None]
) -> tuple[Traced, Traced, int, ShortenedLists, tuple | None]:
    """Both widths traced with repeated blocks shortened, or in full when the forward needs them all;
    and the training branch of forward, when it has one. ``on_reference``: how the reference width
    traced, as soon as it did."""
    with shortened(models[ref]) as lists, shortened(models[other]):
        if lists.lengths:
            try:
                pair = _export_pair(target, models, ref, other, lambda i: on_reference(TracedAs(i, False)))
                return (*pair, lists, _trace_training_branch(target, models, ref, other, pair[2]))
            except MulintError:
                pass
    pair = _export_pair(target, models, ref, other, lambda i: on_reference(TracedAs(i, bool(lists.lengths))))
    full = ShortenedLists(in_full=bool(lists.lengths))
    return (*pair, full, _trace_training_branch(target, models, ref, other, pair[2]))


def _trace_training_branch(target, models, ref, other, index: int, tracer=export, device: str = "meta", seed: int = 0):
    """(default branch, training branch, its two traces), or None without one (or when it fails)."""
    seed_all(seed)
    ref_inputs = inputs_for(target, models[ref], device)[index]
    found = training_variants(models[ref], ref_inputs)
    if found is None:
        return None
    default, training, variants = found
    seed_all(seed)
    other_inputs = share_inputs(ref_inputs, inputs_for(target, models[other], device)[index])
    other_found = training_variants(models[other], other_inputs)
    if other_found is None:
        return None
    other_variants = other_found[2]

    def trace(pair):
        with train_mode(models[ref], models[other]):
            seed_all(seed)  # the same dropout masks at both widths (when run for real)
            ref_trace = tracer(models[ref], pair[0], target=target.label)
            seed_all(seed)
            return ref_trace, tracer(models[other], pair[1], target=target.label)

    traces = first_tracing(list(zip(variants, other_variants)), trace)
    return None if traces is None else (default, training, *traces)


def _branch_facts(facts: ModelFacts, branch, widths, lists: ShortenedLists) -> None:
    """Record the training branch where its uses or attention differ from the default branch."""
    default, training, ref_trace, other_trace = branch
    dependent = ref_trace.input_dependent()
    uses = {}
    for p in facts.params:
        found = [
            u
            for n in (p.name, *p.aliases)
            for u in _uses(n, ref_trace, other_trace, dependent, bool(p.infinite_dims), widths, lists)
        ]
        uses[p.name] = found or p.uses
    attention = attention_sites(ref_trace, other_trace, widths, dependent)
    for site in attention:
        site.count = lists.count(ref_trace.nodes[site.node].module_path)

    def summary(by_param, sites):
        return (
            {n: sorted((u.role, round(u.multiplier_exponent, 2)) for u in us) for n, us in by_param.items()},
            sorted((s.form, round(s.scale_exponent, 2), round(s.head_dim_exponent, 2)) for s in sites),
        )

    if summary(uses, attention) == summary({p.name: p.uses for p in facts.params}, facts.attention):
        return  # the same model either way: nothing to tell apart
    facts.branch, facts.branch_trains = default.description, default.trains
    facts.branches.append(
        BranchFacts(
            name=training.name, description=training.description, trains=training.trains, uses=uses, attention=attention
        )
    )


def analyse_structure(
    target: ResolvedTarget,
    *,
    widths: list[int] | None = None,
    width_arg: str | None = None,
    after_reference: StartBeside | None = None,
) -> Structure:
    """The target built on meta at two widths (or more) and traced at two: its parameters' facts and roles.
    ``after_reference(knob, reference width, how it traced)``: work to start beside the rest, once the
    reference width has traced (kept as `Structure.started`; a start for a way of tracing that did not
    hold is cancelled)."""
    with phase("roles"):  # what the builds and traces inside leave: reading shapes, uses and roles
        return _analyse_structure(target, widths, width_arg, after_reference)


def _analyse_structure(
    target: ResolvedTarget,
    widths: list[int] | None,
    width_arg: str | None,
    after_reference: StartBeside | None = None,
) -> Structure:
    built_as: list[str] = []  # how the training code constructs a model mulint cannot build alone
    with phase("width knob"):
        knob, init_plan = _knob(target, widths, width_arg, built_as)
    with phase("meta build"):
        chosen, moved = choose_widths(knob.base, widths), list[str]()
        if not widths:  # meta builds are free: move up past widths where a rounded size stands still
            chosen, moved = proportional_widths(
                knob, target.label, chosen, fits=lambda w: True, min_count=2, what="structure widths"
            )
        ref, other = _reference_pair(knob.base, chosen)
        provenance = Provenance()
        models = {}
        for w in chosen:
            seed_all(0)  # a model drawing its architecture at random builds the same way every run
            models[w] = build_at(knob, w, target=target.label, provenance=provenance if w == ref else None)
    require_same_structure({w: layout(m) for w, m in models.items()}, target.label)
    knob.shrink = constant_large_sizes(models, _short_size())  # the small CPU builds' later
    mup = mup_modules(models[ref], provenance)
    facts = ModelFacts(
        target=target.label,
        path=str(target.path or ""),
        width_knob=knob.name,
        base_width=knob.base,
        widths=chosen,
        params=[],
        mup_modules=mup,
    )
    facts.notes.extend(moved)
    factory = None if inspect.isclass(target.obj) else target.obj  # its own calls on the model count
    facts.notes += built_as + training_init_notes(init_plan, type(models[ref]), factory)
    broken = [m for m in mup if not (m.base_shapes and m.bias_ok)]
    if broken:
        # mup layers without base shapes (or with a misshaped bias) cannot run a forward pass.
        facts.traced = False
        facts.notes.append(f"not traced: {broken[0].cls} `{broken[0].name}` cannot run as built")
        facts.params = _param_facts(models, ref, other, None, None, provenance)
        return Structure(facts=facts, knob=knob, models=models, traces={}, provenance=provenance)
    started: list[Pending] = []

    def on_reference(traced_as: TracedAs) -> None:
        for pending in started:
            pending.cancel()  # started for a way of tracing the other width did not follow
        started[:] = [after_reference(knob, ref, traced_as)] if after_reference is not None else []

    try:
        if not EXPORT:
            raise MulintError("torch.export not used", target=target.label, step="trace")
        with phase("trace"):
            ref_trace, other_trace, inputs_index, lists, branch = _trace_pair(target, models, ref, other, on_reference)
        traced_at = (ref, other)
    except MulintError as exc:
        if exc.step != "trace":
            raise
        for pending in started:
            pending.cancel()
        started.clear()
        # Data-dependent forward code (token routing, .item()): run it on real inputs instead.
        with phase("trace"):
            ref_trace, other_trace, inputs_index, traced_at, branch = _record_pair(target, knob, exc)
        lists = ShortenedLists()
        facts.notes.append(
            f"traced by running the model on small CPU inputs at widths {traced_at[0]} and "
            f"{traced_at[1]}: torch.export failed ({exc.message})"
        )
    facts.params = _param_facts(models, ref, other, ref_trace, other_trace, provenance, lists, traced_at)
    facts.attention = attention_sites(ref_trace, other_trace, traced_at, ref_trace.input_dependent())
    if traced_at[0] != ref:
        _sizes_at(facts, ref / traced_at[0])
    for site in facts.attention:
        site.count = lists.count(ref_trace.nodes[site.node].module_path)
    facts.repeated_blocks = dict(lists.lengths)
    if branch is not None:
        _branch_facts(facts, branch, traced_at, lists)
    return Structure(
        facts=facts,
        knob=knob,
        models=models,
        traces=dict(zip(traced_at, (ref_trace, other_trace))),
        inputs_index=inputs_index,
        provenance=provenance,
        shortened=lists,
        started=started[0] if started else None,
    )


def _knob(target: ResolvedTarget, widths: list[int] | None, width_arg: str | None, built_as: list[str]):
    """The width knob, with the init the training code applies after building the model (part of the
    model mulint judges), and that plan."""
    knob: WidthKnob | None
    try:
        knob = find_knob(target.obj, target.label, width_arg)
    except MulintError as exc:
        knob = _knob_as_trained(target, width_arg, exc, built_as)
        if knob is None:
            if not widths:
                raise
            knob = find_knob(target.obj, target.label, width_arg, base_override=min(widths))
    init_plan = plan_training_init(target.path, target.name, target.module)
    return with_training_init(knob, init_plan), init_plan


def _knob_as_trained(
    target: ResolvedTarget, width_arg: str | None, failure: MulintError, notes: list[str]
) -> WidthKnob | None:
    """The knob of the model as the training code beside it constructs it, when the target alone has
    none (its constructor needs arguments the training script passes)."""
    found = as_trained(target.obj, target.path, target.name, target.module)
    if found is None:
        return None
    built, note = found
    try:
        knob = find_knob(built, target.label, width_arg)
    except Exception:  # still no knob (or the arguments break the search): the target's own error stands
        return None
    notes.append(f"{note}, since on its own {failure.message}")
    return knob


def _short_size() -> int:
    from mulint.analysis.numbers import NUMERIC_SEQ

    return NUMERIC_SEQ


def _sizes_at(facts: ModelFacts, ratio: float) -> None:
    """Fan-ins, fan-outs and head_dims read at the recorded width, told at the reference width (they
    grow in proportion to width, or not at all)."""
    for p in facts.params:
        for use in p.uses:
            if use.fan_in_infinite and use.fan_in:
                use.fan_in = round(use.fan_in * ratio)
            if use.fan_out_infinite and use.fan_out:
                use.fan_out = round(use.fan_out * ratio)
    for site in facts.attention:
        site.head_dim = round(site.head_dim * ratio**site.head_dim_exponent)


def _record_pair(target, knob: WidthKnob, failure: MulintError) -> tuple[Traced, Traced, int, tuple[int, int], tuple]:
    """The fallback for what torch.export cannot trace: the ops that run on real inputs, recorded at
    the two smallest widths small CPU models are built at."""
    from mulint.analysis.numbers import numeric_knob, numeric_widths

    cpu_knob = numeric_knob(knob)
    found = numeric_widths(cpu_knob, target.label)
    widths = (found[0], found[1])
    models = {}
    for w in widths:
        seed_all(0)  # the same init every run: a branch on a weight's value goes the same way
        models[w] = build_at(cpu_knob, w, target=target.label, device="cpu")
    require_same_structure({w: layout(m) for w, m in models.items()}, target.label)
    tried = []
    user = callable(getattr(target.module, "example_inputs", None))
    described = [("example_inputs(model)", None)] if user else example.described_candidates(models[widths[0]], "cpu")
    for i, (description, _) in enumerate(described):
        try:
            traces, seed = _record_same_path(target, models, widths, i)
        except MulintError as exc:
            if exc.kind == "paths-differ":
                raise
            tried.append(f"{description}: {exc.message.removeprefix('running the model on example inputs raised ')}")
            continue
        branch = _trace_training_branch(target, models, widths[0], widths[1], i, tracer=record, device="cpu", seed=seed)
        return traces[0], traces[1], i, widths, branch
    if len(tried) == 1 and user:
        raise MulintError(
            f"{failure.message}; running it raised {tried[0].split(': ', 1)[1]}",
            target=target.label,
            step="trace",
            hint=failure.hint,
        )
    raise MulintError(
        f"{failure.message}; running it failed on every input tried: " + "; ".join(tried),
        target=target.label,
        step="trace",
        hint=example.example_inputs_hint(models[widths[0]]),
    )


def _record_same_path(target, models, widths, index: int) -> tuple[list[Traced], int]:
    """Both widths recorded on the same inputs, from the same seeds; the first seed on which they run the
    same ops on the same parameters. A model whose path depends on width on every seed is refused: an
    exponent read across two different branches measures the branch, not the width."""
    difference: str | None = ""
    for seed in RECORD_SEEDS:
        seed_all(seed)
        ref_inputs = inputs_for(target, models[widths[0]], "cpu")[index]
        seed_all(seed)
        other_inputs = share_inputs(ref_inputs, inputs_for(target, models[widths[1]], "cpu")[index])
        traces = []
        for w, inputs in zip(widths, (ref_inputs, other_inputs)):
            seed_all(seed)  # the same random draws inside forward (dropout, sampling) at both widths
            traces.append(record(models[w], inputs, target=target.label))
        difference = path_difference(traces[0], traces[1], widths)
        if difference is None:
            return traces, seed
    error = MulintError(
        f"the model takes a different path at widths {widths[0]} and {widths[1]} on the same inputs "
        f"(data-dependent control flow in forward that torch.export could not trace): {difference}",
        target=target.label,
        step="trace",
        hint="mulint reads width exponents by comparing one computation at two widths: make the branch "
        "independent of width, or give `example_inputs(model)` on which every width takes the same path",
    )
    error.kind = "paths-differ"
    raise error


def mup_modules(model: nn.Module, provenance: Provenance) -> list[MupModule]:
    found = []
    for name, module in model.named_modules():
        if not from_mup_package(type(module)):
            continue
        params = list(module.parameters(recurse=False))
        bias, weight = getattr(module, "bias", None), getattr(module, "weight", None)
        bias_ok = bias is None or weight is None or tuple(bias.shape) == tuple(weight.shape[:1])
        found.append(
            MupModule(
                name=name,
                cls=type(module).__name__,
                loc=provenance.module_sites.get(module),
                base_shapes=all(hasattr(p, "infshape") for p in params),
                bias_ok=bias_ok,
            )
        )
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


def _param_facts(
    models,
    ref,
    other,
    ref_trace,
    other_trace,
    provenance,
    lists: ShortenedLists | None = None,
    traced_at: tuple[int, int] | None = None,
) -> list[ParamFacts]:
    lists = lists or ShortenedLists()
    model = models[ref]
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    all_shapes = {
        w: {n: tuple(p.shape) for n, p in m.named_parameters(remove_duplicate=False)} for w, m in models.items()
    }
    owners = _owners(model)
    dependent = ref_trace.input_dependent() if ref_trace is not None else set()
    magnitudes = {item.magnitude for item in weight_normed(model)}
    facts = []
    for names in groups.values():
        name = names[0]
        shapes = {w: s[name] for w, s in all_shapes.items() if name in s}
        shape = shapes[ref]
        infinite = tuple(
            d for d in range(len(shape)) if len({s[d] for s in shapes.values() if len(s) == len(shape)}) > 1
        )
        # A tied tensor may appear as several placeholders, only one of them used.
        uses = (
            [
                u
                for n in names
                for u in _uses(n, ref_trace, other_trace, dependent, bool(infinite), traced_at or (ref, other), lists)
            ]
            if ref_trace is not None
            else []
        )
        role_source = "use"
        if not uses:
            role_source = "shape"
            uses = [
                ParamUse(
                    op="",
                    kind="unused",
                    role=role_from_shape(shape, infinite),
                    fan_in=None,
                    fan_out=None,
                    fan_in_infinite=False,
                    fan_out_infinite=False,
                    node="",
                )
            ]
        if name in magnitudes:  # weight norm's g: one scale per row, whatever it is multiplied into
            for use in uses:
                use.role, use.fan_in, use.fan_out, use.fan_in_infinite, use.fan_out_infinite = (
                    "vector",
                    None,
                    None,
                    False,
                    False,
                )
        owner, local = owners[name]
        sites = [provenance.param_site(*owners[n]) for n in names]
        facts.append(
            ParamFacts(
                name=name,
                shape=shape,
                shapes=shapes,
                infinite_dims=infinite,
                uses=uses,
                aliases=tuple(names[1:]),
                module_type=type(owner).__name__,
                created_at=next((s for s in sites if s is not None), None),
                role_source=role_source,
            )
        )
    return facts
