"""What a worker process runs for one target: import it, analyse it, and return plain data.

Only `mulint.engine.worker` calls this, inside a worker. Every failure becomes an error record naming the
target and the step, including what user code does that an exception handler normally never sees
(`sys.exit`, `KeyboardInterrupt`, running out of the worker's memory).

User code runs eagerly here: ``torch.compile`` directives (a compiled model, a compiled Newton-Schulz
step in a Muon optimizer) only change speed, and on the small CPU models compiling them costs far
more than running them (tens of seconds, recompile limits on every new width) and can fail outright.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from mulint import steps
from mulint.engine.options import JobOptions
from mulint.errors import ErrorRecord, MulintError


def run(job, max_memory: int, send: Callable[[tuple], None]) -> tuple[str, Any]:
    from mulint import parallel
    from mulint.engine.deps import DependencyRecorder, gathered

    handler = {
        "check": check,
        "inspect": inspect,
        "coord": coord,
        "transfer_describe": transfer_describe,
        "transfer_trials": transfer_trials,
    }[job.kind]
    if job.kind in SMALL_MODEL_JOBS:
        _one_thread()
        # one torch thread, in mulint's own process: a forked copy may do part of the work on another core
        parallel.allow([gathered])
    recorder = DependencyRecorder()
    steps.start_timing()
    try:
        with steps.phase(OTHER):
            with eager(), recorder:
                value = handler(job, send)
            if isinstance(value, dict):
                with steps.phase("dependencies"):
                    value["deps"] = [str(p) for p in recorder.files()]
                    value["deps_since_ns"] = recorder.started_ns  # a file changed after this may have been read old
                    value["observed"] = recorder.observed()  # directories, environment, distributions, the unobservable
        if isinstance(value, dict):
            value["timings"] = phase_times()
        return "done", value
    except MulintError as exc:
        return "error", _as_record(exc, job, max_memory)
    except SystemExit as exc:
        return "error", _record(
            job,
            f"the model's code called sys.exit({exc.code!r})",
            "mulint runs the target with sys.argv = [its file]: move argument parsing "
            'and exits under `if __name__ == "__main__":`',
            kind="exited",
        )
    except KeyboardInterrupt:
        return "error", _record(job, "the model's code raised KeyboardInterrupt", "", kind="interrupted")
    except Exception as exc:
        if _out_of_memory(exc):
            return "error", _record(job, _memory_message(max_memory), _memory_hint(), kind="memory")
        raise


OTHER = "other"  # the job's time outside every named phase
# Jobs whose analysis builds only small CPU models (their widths are chosen to stay small). Their ops
# are tiny, and torch's intra-op threads only add synchronisation, and threads spinning for work beside
# the one that has it: on the 2-core machine mulint is developed on, one thread ran the nanogpt_sp
# check's CPU phases 2-8x faster (init numbers 0.21 -> 0.13 s, the gradient 0.34 -> 0.04 s, depth
# numbers 0.42 -> 0.07 s), GPT-2 small's init numbers 1.16 -> 0.78 s. Training (`check --coord`, and
# the `coord` and `transfer` jobs) keeps torch's thread count: it runs at widths around the model's own.
SMALL_MODEL_JOBS = ("check", "inspect")
training_threads: int | None = None  # torch's thread count before `_one_thread`


def _one_thread() -> None:
    global training_threads
    import torch

    training_threads = torch.get_num_threads()
    torch.set_num_threads(1)


@contextlib.contextmanager
def threads_to_train():
    """Within: torch's thread count as it was before `_one_thread` (the training of `check --coord`)."""
    if training_threads is None:
        yield
        return
    import torch

    torch.set_num_threads(training_threads)
    try:
        yield
    finally:
        torch.set_num_threads(1)


def phase_times() -> dict[str, float]:
    """The job's seconds per phase (`mulint.steps.phase`), in the order they ran, what no phase covers
    last as "other"."""
    spent = steps.timings()
    rest = spent.pop(OTHER, 0.0)
    return {**spent, OTHER: rest}


def eager():
    """Every ``torch.compile`` directive ignored while it is active (torch's supported switch: the
    compiler's "force_eager" stance), restored afterwards: the analysis judges what the code computes."""
    import torch

    return torch.compiler.set_stance("force_eager")


def _record(job, message: str, hint: str, *, step: str = "", kind: str = "") -> ErrorRecord:
    return ErrorRecord(target=job.target, step=step or steps.current or "import", message=message, hint=hint, kind=kind)


def _as_record(exc: MulintError, job, max_memory: int) -> ErrorRecord:
    if _out_of_memory(exc):
        return _record(job, _memory_message(max_memory), _memory_hint(), step=exc.step, kind="memory")
    return ErrorRecord.of(exc, target=job.target, step=steps.current or "")


def _out_of_memory(exc: BaseException) -> bool:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        text = str(current)
        if isinstance(current, MemoryError) or "can't allocate memory" in text or "Cannot allocate memory" in text:
            return True
        current, seen = current.__cause__ or current.__context__, seen + 1
    return False


def _memory_message(max_memory: int) -> str:
    return f"ran out of memory: the worker may use {max_memory / (1 << 30):.1f} GB (--max-memory)"


def _memory_hint() -> str:
    return (
        "a buffer or layer sized by a field that is not the width (a mask of block_size², a huge "
        "vocabulary)? Give a factory with smaller such fields, or raise --max-memory"
    )


# --- the jobs ------------------------------------------------------------------------------------


def _resolve_one(job):
    from mulint.reading.targets import parse_target, resolve

    steps.enter("import")
    try:
        with steps.phase("import"):
            resolved = resolve(parse_target(job.target), allow_exec=True)
    except MulintError as exc:
        exc.for_target(job.target)
        raise
    if not resolved:
        raise MulintError(
            "no model class or factory found",
            target=job.target,
            step="target",
            hint="name one explicitly as path/to/file.py:NAME",
        )
    return resolved[0]


def check(job, send) -> dict:
    """The model rules on one target: its findings and what was analysed."""
    findings, entry = analyse_target(_resolve_one(job), job.options)
    return {"findings": findings, "target": entry}


def analyse_target(target, options: JobOptions):
    """Analyse one resolved target and run the model rules: (findings, what was analysed). The CLI's
    workers and the Python API both come here."""
    with eager():  # the Python API comes here without a worker
        return _analyse(target, options)


def _analyse(target, options: JobOptions):
    from mulint.engine.suppress import selected
    from mulint.rules import check_model_rules, model_rules

    structure = analyse_numbers(target, options)
    facts = structure.facts
    if options.coord and facts.traced:
        from mulint.coordcheck.run import coord_facts, run_coord

        steps.enter("coord")
        with steps.phase("coord"), threads_to_train():
            result = run_coord(
                target,
                structure,
                optimizer=options.optimizer,
                find_optimizer=True,
                profile=options.profile,
                lr_scale_keys=options.lr_scale_keys,
                lr_scale=options.lr_scale,
            )
        facts.coord, facts.coord_widths = coord_facts(result, structure), result.widths
        with steps.phase("depth coord"), threads_to_train():
            _depth_coord(target, structure, options)
    entry = {
        "target": target.label,
        "mode": "model",
        "width_knob": facts.width_knob,
        "widths": facts.widths,
        "numeric_widths": facts.numeric_widths,
        "parameters": len(facts.params),
        "notes": facts.notes,
        "optimizer": facts.optimizer.label if facts.optimizer else None,
    }
    with steps.phase("rules"):
        rules = [r for r in model_rules() if selected(r.code, options.select, options.ignore)]
        return check_model_rules(facts, rules), entry  # on every traced branch of forward


def _depth_coord(target, structure, options: JobOptions) -> None:
    """`check --coord` on a model whose depth is judged: the depth coordinate check too (MU951-MU954), at
    depths bracketing the model's own. Judged: a depth knob and residual branches were found (and depth
    is not turned off), and the model shows depth intent or the profile is not the default one (a model
    without depth scaling gets the default profile's note instead). A model the check cannot follow keeps
    its width results, with a note."""
    from mulint.analysis.depth import DEFAULT_PROFILE, has_depth_intent
    from mulint.coordcheck.depth import depth_coord_facts, run_depth_coord

    facts = structure.facts
    depth = facts.depth
    if depth is None or not depth.branches or (options.profile == DEFAULT_PROFILE and not has_depth_intent(depth)):
        return
    try:
        result = run_depth_coord(
            target,
            structure,
            depth_arg=options.depth_arg,
            optimizer=options.optimizer,
            find_optimizer=True,
            profile=options.profile,
            lr_scale_keys=options.lr_scale_keys,
            lr_scale=options.lr_scale,
        )
    except MulintError as exc:
        facts.notes.append(f"depth coordinate check not run: {exc.message}")
        return
    facts.coord_depth, facts.coord_depths = depth_coord_facts(result, structure), result.depths
    facts.notes.extend(f"depth coordinate check: {note}" for note in result.notes)


def analyse_numbers(target, options: JobOptions):
    """The analysis `check` judges and `inspect` shows: structure, init sizes, learning rates and
    measured updates, with the same options, so inspect's evidence is the rules' own numbers."""
    from mulint.analysis.model import analyse_model

    with eager():  # torch.compile ignored here too: inspect through the API comes without a worker
        return analyse_model(
            target,
            widths=_listed(options.widths),
            width_arg=options.width_arg,
            optimizer=options.optimizer,
            lr_scale_keys=options.lr_scale_keys,
            lr_scale=options.lr_scale,
            profile=options.profile,
            depth_arg=options.depth_arg,
            depth=options.depth,
        )


def _listed(widths):
    return None if widths is None else list(widths)


def inspect(job, send) -> dict:
    """What the analysis sees of one target, with the numbers the rules judge."""
    return {"facts": analyse_numbers(_resolve_one(job), job.options).facts}


def coord(job, send) -> dict:
    from mulint.analysis.structure import analyse_structure
    from mulint.coordcheck.run import run_coord
    from mulint.reading.functions import resolve_function

    options: JobOptions = job.options
    target = _resolve_one(job)
    structure = analyse_structure(target, width_arg=options.width_arg)
    batch_fn = None
    if options.batch is not None:
        steps.enter("batch")
        batch_fn = _checked_batch(*resolve_function(options.batch))
    steps.enter("coord")
    run: dict[str, Any] = {  # what the width and the depth check both take
        "steps": options.steps,
        "seeds": options.seeds,
        "lr": options.lr,
        "batch_fn": batch_fn,
        "optimizer": options.optimizer,
        "find_optimizer": True,
        "lr_scale_keys": options.lr_scale_keys,
        "lr_scale": options.lr_scale,
        "profile": options.profile,
        "progress": lambda n: send(("progress", n)),
        "device": options.device,
    }
    if options.depths is not None:
        from mulint.coordcheck.depth import run_depth_coord

        depths = list(options.depths)
        return {"coord": run_depth_coord(target, structure, depths=depths, depth_arg=options.depth_arg, **run)}
    return {"coord": run_coord(target, structure, widths=_listed(options.widths), **run)}


def _checked_batch(batch_fn, label: str):
    """The user's --batch function, with its failures and wrong return types named as such."""

    @functools.wraps(batch_fn)  # keeps its signature: it may take the model
    def checked(*args, **kwargs):
        try:
            batch = batch_fn(*args, **kwargs)
        except Exception as exc:
            raise MulintError(
                f"the --batch function {label} raised {type(exc).__name__}: {exc}",
                step="batch",
                hint="it is called as NAME(model) or NAME() and returns the forward's arguments",
            ) from exc
        import torch

        ok = isinstance(batch, (torch.Tensor, tuple, list, dict))
        if not ok:
            raise MulintError(
                f"the --batch function {label} returned {type(batch).__name__}",
                step="batch",
                hint="return a tensor, a tuple of the forward's arguments, or (args, kwargs)",
            )
        return batch

    return checked


def _trial_runner(job):
    """The transfer sweep's set-up in this worker (mulint.sweep.runner), from the job's options: the
    target imported, built and traced in their own steps, so that a failure after is the training's."""
    from mulint.sweep.runner import TrialRunner

    options: JobOptions = job.options
    runner = TrialRunner(options.sweep_spec(job.target), target=_resolve_one(job))
    runner.sweep  # noqa: B018  (the set-up happens on first use)
    steps.enter("transfer")
    return runner


def transfer_describe(job, send) -> dict:
    """What a transfer sweep of this target trains: widths, the lr to centre on, a step's time."""
    options: JobOptions = job.options
    return {"describe": _trial_runner(job).describe(_listed(options.widths))}


def transfer_trials(job, send) -> dict:
    """Train the job's trials one after the other, each sent to mulint as it finishes."""
    from dataclasses import asdict

    from mulint.sweep.store import TrialResult

    runner = _trial_runner(job)
    done = []
    for key in job.options.trials:
        result = TrialResult.from_dict(runner.run(asdict(key)))
        send(("trial", (key, result)))
        done.append((key, result))
    return {"trials": done}
