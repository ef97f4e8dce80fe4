"""The whole model analysis: structure from the meta device, then numbers from small CPU models
(init sizes, and the optimizer's per-parameter learning rates when there is an optimizer)."""

from __future__ import annotations

import inspect

from mulint.analysis.depth import analyse_depth, depth_traces, finish_depth
from mulint.analysis.depth_numbers import analyse_depth_numbers
from mulint.analysis.lr_reads import LrPolicy
from mulint.analysis.numbers import choose_numeric_widths, measure_init, numeric_knob, shrink_note
from mulint.analysis.optimizer import OptimizerNumbers, find_factory, optimizer_facts, read_optimizer
from mulint.analysis.structure import Structure, analyse_structure
from mulint.analysis.update_facts import update_facts
from mulint.analysis.update_numbers import UpdateNumbers
from mulint.analysis.updates import batch_for, measure_again, measure_updates
from mulint.construct.depth import find_depth_knob
from mulint.construct.provenance import quiet
from mulint.exponents import fit_exponent
from mulint.parallel import beside
from mulint.profiles import load_profile
from mulint.reading.functions import Function
from mulint.reading.targets import ResolvedTarget
from mulint.steps import phase

NO_OPTIMIZER = "optimizer rules skipped: no optimizer found"  # the API words its own hint


def hidden_gradient_rms(target: ResolvedTarget, structure: Structure, model) -> list[float]:
    """Rms gradient entry of the hidden weights after one backward pass on synthetic data."""
    import torch

    from mulint.construct import inputs as example

    user = getattr(target.module, "example_inputs", None)
    try:
        with quiet():
            torch.manual_seed(0)
            if callable(user):
                args, kwargs = example.from_user_function(user, model)
            else:
                args, kwargs = example.synthesise(model, "cpu")[structure.inputs_index]
            model.train()
            out = model(*args, **kwargs)
            first = (
                out
                if isinstance(out, torch.Tensor)
                else next(
                    (v for v in (out.values() if isinstance(out, dict) else out) if isinstance(v, torch.Tensor)), None
                )
            )
            if first is None or not first.is_floating_point():
                return []
            first.float().pow(2).mean().backward()
    except Exception:
        return []  # the eps check is a heuristic: never fail the analysis for it
    hidden = {p.name for p in structure.facts.params if "hidden" in p.roles}
    grads = [g.grad.float() for n, g in model.named_parameters() if n in hidden and g.grad is not None]
    if not grads or not any(bool(g.any()) for g in grads):
        return []  # e.g. a zero-initialised readout: no gradient reaches the hidden weights at step 0
    total = sum(float((g * g).sum()) for g in grads)
    count = sum(g.numel() for g in grads)
    return [(total / count) ** 0.5]


def _seeded_build(knob, width: int, label: str):
    """A small CPU model as the init numbers built it (same seed), for a second update measurement."""
    import torch

    from mulint.construct import build_at

    torch.manual_seed(0)
    return build_at(knob, width, target=label, device="cpu")


def analyse_model(
    target: ResolvedTarget,
    *,
    widths: list[int] | None = None,
    width_arg: str | None = None,
    optimizer: Function | None = None,
    measure: bool = True,
    lr_scale_keys: tuple[str, ...] = (),
    profile: str = "mup",
    lr_scale: str = "auto",
    depth_arg: str | None = None,
    depth: bool = True,
) -> Structure:
    """``lr_scale_keys``: param-group keys a training loop multiplies the lr by, beyond the usual
    names (mulint/profile_data/optimizers.toml); the config's `lr-scale-key`. ``lr_scale``: the config's `lr-scale`, whether
    those keys are applied ("auto": read from the code, see mulint.analysis.lr_reads). ``depth_arg``
    (--depth-arg) names the depth knob; ``depth`` False (--no-depth) leaves depth out."""

    def depth_beside(knob, ref, traced_as):  # on another core from the reference trace on (a worker's only)
        return beside(lambda: depth_traces(target, knob, ref, depth_arg, traced_as), redo=False)

    start = depth_beside if depth and measure else None
    structure = analyse_structure(target, widths=widths, width_arg=width_arg, after_reference=start)
    facts = structure.facts
    if not measure or not facts.traced:
        if structure.started is not None:
            structure.started.cancel()
        return structure
    model_cls = target.obj if inspect.isclass(target.obj) else type(next(iter(structure.models.values())))
    factory = find_factory(target.module, model_cls, optimizer)
    opt_numbers = OptimizerNumbers(label=factory.label) if factory else None
    with phase("lr reads"):
        policy = LrPolicy.for_training(target.module, factory, model_cls, lr_scale_keys, lr_scale)
    if factory is not None and policy is not None:
        facts.notes.extend(policy.overwrite_note(factory.label))

    knob = numeric_knob(structure.knob)  # the small CPU models never hold a full-length causal mask
    with phase("small widths"):
        chosen, moved = choose_numeric_widths(knob, target.label, widths)
    facts.notes.extend(moved)
    grad_rms: list[float] = []
    # each optimizer step's size; the profile says which families its exact tables judge instead
    updates, batch = UpdateNumbers(exact_families=load_profile(profile).exact), batch_for(target, structure, chosen)
    facts.profile = profile

    def visit(width, model):
        if factory is not None and opt_numbers is not None:
            with phase("optimizer"):
                read_optimizer(factory, model, width, opt_numbers, target.label, policy)
            with phase("updates"):
                measure_updates(factory.make, model, width, facts.params, batch, updates, lr_policy=policy)
            if width == max(chosen):
                with phase("gradient"):
                    grad_rms.extend(hidden_gradient_rms(target, structure, model))

    with phase("init numbers"):
        numbers = measure_init(knob, chosen, target.label, visit=visit)
    facts.numeric_widths = chosen
    facts.notes += [n for n in (shrink_note(knob),) if n]
    if factory is not None:
        with phase("updates"):
            measure_again(
                updates,
                facts.params,
                load_profile(profile).spectral,
                factory.make,
                lambda width: _seeded_build(knob, width, target.label),
                batch_for(target, structure, chosen, 2),
                lr_policy=policy,
            )
            update_facts(updates, facts.params, facts.notes, factory.label)
    if depth:
        with phase("depth structure"):
            facts.depth = analyse_depth(
                target, structure, depth_arg, numeric_width=min(chosen), traced_beside=structure.started
            )
        depth_knob = find_depth_knob(knob, depth_arg, target=target.label) if facts.depth is not None else None
        if facts.depth is not None and depth_knob is not None and facts.depth.branches:
            # the same small width and seed as the width numbers, the optimizer as the training makes it
            make = factory.make if factory is not None else None
            with phase("depth numbers"):
                analyse_depth_numbers(
                    facts.depth,
                    depth_knob,
                    min(chosen),
                    target=target.label,
                    make_optimizer=make,
                    policy=policy,
                    profile=profile,
                )
        if facts.depth is not None:
            # After the per-parameter depth numbers (init, lr, ε at each depth), which the fold of a
            # last weight's init into its branch's multiplier and the no-depth-scaling note read.
            finish_depth(facts.depth, profile)
    for p in facts.params:
        rms = numbers.rms.get(p.name, {})
        p.init_rms = rms
        p.init_exponent = fit_exponent(rms)
        write = numbers.last_write.get(p.name)
        p.init_at = write.loc if write is not None else p.created_at
        p.late_init_at = [w.loc for w in numbers.late_writes.get(p.name, []) if w.loc is not None]  # all have one
        p.mup_infshape = numbers.has_infshape.get(p.name, False)
    if opt_numbers is not None:
        facts.optimizer = optimizer_facts(opt_numbers, facts.params, grad_rms[0] if grad_rms else None, facts.notes)
    else:
        facts.notes.append(
            f"{NO_OPTIMIZER}; name one with --optimizer path/to/file.py:make_optimizer (a function taking the model)"
        )
    return structure
