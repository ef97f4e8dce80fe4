"""mulint from Python: check, inspect and coordinate-check a model that your own code builds.

    import mulint
    report = mulint.check(lambda width: build(cfg, width=width), optimizer_fn=make_optimizer)
    assert report.ok, report

`model_fn(width) -> nn.Module` builds the model at a width (or pass a model class and `width_arg=`).
The analysis runs in your process, on your objects: the same analysis and rules as `mulint check`
(whose workers call the same `analyse_target`), with the same records as its JSON output.
"""

from __future__ import annotations

import dataclasses
import inspect as _inspect
import json
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mulint.errors import MulintError, in_api_words
from mulint.findings import Finding

DEFAULT_BASE_WIDTH = 128  # the width a `model_fn` without a default is analysed around


@dataclass
class Report:
    """The result of `mulint.check`: `findings` are the JSON output's records."""

    target: str
    findings: list[dict]
    analysed: dict  # what was analysed: width knob, widths, optimizer, notes
    raw: list[Finding] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not self.findings

    def raise_for_findings(self) -> None:
        if not self.ok:
            raise MulintError(
                f"{len(self.findings)} µP finding(s):\n{self}",
                target=self.target,
                step="check",
                hint="`mulint rule CODE` explains each rule and its fix",
            )

    def __str__(self) -> str:
        from mulint.report import text

        return text.render(self.raw, fix_available=False)  # fixes are the command line's (`--fix`)

    def __repr__(self) -> str:  # what pytest shows under a failed `assert report.ok`
        return f"<mulint.Report {self.target}: {len(self.findings)} finding(s)>\n{self}"

    def to_json(self) -> str:
        from mulint.report import json_report

        return json_report.render(self.raw, [self.analysed], [])

    def to_sarif(self) -> str:
        from mulint.report import sarif
        from mulint.rules.pages import load_pages, pages_dir
        from mulint.version import __version__

        return sarif.render(self.raw, list(load_pages(pages_dir()).values()), __version__)


@dataclass
class Analysis:
    """The result of `mulint.inspect`: every parameter's shape, growing dimensions, fans and roles, and
    its evidence (init rms, lr, weight decay, multipliers, measured updates per width)."""

    target: str
    facts: Any  # mulint.facts.ModelFacts

    @property
    def parameters(self) -> list[dict]:
        return json.loads(self.to_json())["parameters"]

    def roles(self) -> dict[str, list[str]]:
        return {p["name"]: p["roles"] for p in self.parameters}

    def evidence(self) -> dict[str, dict]:
        """Parameter name -> the numbers the rules judge (the JSON's `evidence`; widths as strings)."""
        return {p["name"]: p["evidence"] for p in self.parameters}

    def to_json(self) -> str:
        from mulint.report.inspect_view import as_json

        return as_json(self.facts)

    def __str__(self) -> str:
        from mulint.report.inspect_view import as_text

        return as_text(self.facts)


@dataclass
class CoordReport:
    """The result of `mulint.coord`: the verdict, and per layer its slope against width (with `depths`,
    per measure its slope against depth)."""

    result: Any  # mulint.coordcheck.CoordResult, or DepthCoordResult with `depths`

    @property
    def verdict(self) -> str:
        return self.result.verdict

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"

    @property
    def slopes(self) -> dict[str, float | None]:
        if hasattr(self.result, "measures"):  # the depth check: "stream_change", "block_change", ...
            return {m.key: m.slope for m in self.result.measures}
        return {layer.name: layer.slope for layer in self.result.layers if layer.judged}

    def plot(self, path: str | Path) -> None:
        """Write the plot (PNG) to `path`."""
        from mulint.coordcheck.plot import save_plot

        save_plot(self.result, str(path))

    def __str__(self) -> str:
        from mulint.report.coord_view import as_text

        return as_text(self.result)

    def to_json(self) -> str:
        from mulint.report.coord_view import as_json

        return as_json(self.result)


@dataclass
class TransferReport:
    """The result of `mulint.transfer`: the verdict, each width's best lr, the curves."""

    result: Any  # mulint.sweep.result.TransferResult

    @property
    def verdict(self) -> str:
        """ "PASS", "FAIL" or "INCONCLUSIVE"."""
        return self.result.verdict.status

    @property
    def ok(self) -> bool:
        return self.verdict == "PASS"

    @property
    def optima(self) -> dict[int, float]:
        """Per width, the best learning rate found."""
        return {w: 2.0**o.log2_value for w, o in zip(self.result.widths, self.result.verdict.optima)}

    @property
    def curves(self) -> dict[int, dict[float, float]]:
        """Per width, the final loss (mean over seeds) at each learning rate trained."""
        return {c.width: {2.0**x: y for x, y in zip(c.log2_values, c.mean())} for c in self.result.curves}

    def plot(self, path: str | Path) -> None:
        """Write the plot (PNG) to `path`."""
        from mulint.sweep.plot import save_plot

        save_plot([self.result], str(path))

    def __str__(self) -> str:
        from mulint.report.transfer_view import as_text

        return as_text(self.result)

    def to_json(self) -> str:
        from mulint.report.transfer_view import as_json

        return as_json(self.result)


def check(
    model_fn: Callable[..., Any] | type,
    *,
    optimizer_fn: Callable[[Any], Any] | None = None,
    widths: list[int] | None = None,
    select: list[str] | None = None,
    ignore: list[str] | None = None,
    profile: str | None = None,
    coord: bool = False,
    width_arg: str | None = None,
    depth_arg: str | None = None,
    depth: bool | None = None,
) -> Report:
    """Run mulint's model rules on the model `model_fn(width)` builds, with its optimizer
    `optimizer_fn(model)` when given (else one found as the CLI finds it). `depth_arg` names the argument
    that sets the number of blocks (found when None); `depth=False` leaves depth out."""
    from mulint.engine.jobs import analyse_target
    from mulint.engine.options import JobOptions
    from mulint.engine.settings import build_settings
    from mulint.engine.suppress import filter_findings

    # The same merge and validation as the CLI's: defaults < these arguments (no [tool.mulint]: a
    # call from Python says what it wants).
    settings = build_settings(
        None,
        source="api",
        select=_listed(select),
        ignore=_listed(ignore),
        widths=widths,
        width_arg=width_arg,
        profile=profile,
        coord=coord,
        depth_arg=depth_arg,
        depth=depth,
    )
    target = _target(model_fn, widths, settings.width_arg)
    options = dataclasses.replace(JobOptions.for_check(settings), optimizer=_given(optimizer_fn))
    findings, entry = _guarded(target.label, lambda: analyse_target(target, options))
    entry = {**entry, "notes": [_api_words(note) for note in entry.get("notes") or []]}
    kept = filter_findings(
        findings, select=settings.select, ignore=settings.ignore, per_file_ignores={}, root=settings.root
    )
    kept.sort(key=lambda f: f.sort_key)
    from mulint.report.json_report import finding_dict

    return Report(target=target.label, findings=[finding_dict(f) for f in kept], analysed=entry, raw=kept)


def _api_words(note: str) -> str:
    """The analysis words its notes for the CLI; from Python the optimizer is `optimizer_fn=`."""
    from mulint.analysis.model import NO_OPTIMIZER

    if note.startswith(NO_OPTIMIZER):
        return f"{NO_OPTIMIZER}; pass optimizer_fn=make_optimizer (a function taking the model)"
    return in_api_words(note)


def inspect(
    model_fn: Callable[..., Any] | type,
    *,
    optimizer_fn: Callable[[Any], Any] | None = None,
    widths: list[int] | None = None,
    width_arg: str | None = None,
    profile: str | None = None,
    depth_arg: str | None = None,
    depth: bool | None = None,
) -> Analysis:
    """Every parameter of the model: shape, which dimensions grow with width, fan-in/out, roles, and the
    numbers `check` judges per width (init rms, lr, weight decay, multipliers, measured updates), with
    the optimizer `optimizer_fn(model)` when given (else one found as the CLI finds it)."""
    from mulint.engine.jobs import analyse_numbers
    from mulint.engine.options import JobOptions
    from mulint.engine.settings import build_settings

    settings = build_settings(
        None, source="api", widths=widths, width_arg=width_arg, profile=profile, depth_arg=depth_arg, depth=depth
    )
    target = _target(model_fn, widths, settings.width_arg)
    options = dataclasses.replace(JobOptions.for_inspect(settings), optimizer=_given(optimizer_fn))
    structure = _guarded(target.label, lambda: analyse_numbers(target, options))
    facts = structure.facts
    facts.notes = [_api_words(note) for note in facts.notes]
    return Analysis(target=target.label, facts=facts)


def coord(
    model_fn: Callable[..., Any] | type,
    *,
    optimizer_fn: Callable[[Any], Any] | None = None,
    widths: list[int] | None = None,
    steps: int = 3,
    seeds: int = 2,
    lr: float = 1e-3,
    batch_fn: Callable[..., Any] | None = None,
    device: str | None = None,
    width_arg: str | None = None,
    depths: list[int] | None = None,
    depth_arg: str | None = None,
) -> CoordReport:
    """Train the model a few steps at growing widths; a layer whose change grows or collapses with
    width fails the check. With `depths` (e.g. [4, 8, 16]): the depth coordinate check instead, at
    those numbers of blocks, the width fixed (`widths` not taken); `depth_arg` names the argument that
    sets the number of blocks (default: n_layer, num_hidden_layers, ...)."""
    from mulint.engine.settings import build_settings, check_coord_run

    check_coord_run(steps, seeds, lr, source="api")  # before torch is imported: a bad call fails at once
    build_settings(None, source="api", widths=widths, width_arg=width_arg)
    from mulint.analysis.structure import analyse_structure
    from mulint.coordcheck.run import run_coord

    target = _target(model_fn, widths, width_arg)

    def run():
        structure = analyse_structure(target, width_arg=width_arg)
        if depths is not None:
            from mulint.coordcheck.depth import run_depth_coord

            return run_depth_coord(
                target,
                structure,
                depths=list(depths),
                depth_arg=depth_arg,
                steps=steps,
                seeds=seeds,
                lr=lr,
                batch_fn=batch_fn,
                optimizer=_given(optimizer_fn),
                device=device,
            )
        return run_coord(
            target,
            structure,
            widths=widths,
            steps=steps,
            seeds=seeds,
            lr=lr,
            batch_fn=batch_fn,
            optimizer=_given(optimizer_fn),  # none given: Adam at `lr`
            device=device,  # None: cuda when available, else cpu
        )

    return CoordReport(result=_guarded(target.label, run))


def transfer(
    model_fn: Callable[..., Any] | type,
    *,
    optimizer_fn: Callable[[Any], Any] | None = None,
    data_fn: Callable[[int], Any] | None = None,
    widths: list[int] | None = None,
    steps: int = 200,
    seeds: int = 3,
    lr: float = 1e-3,
    device: str | None = None,
    width_arg: str | None = None,
    knob: str = "lr",
    budget: float = 6.0,
) -> TransferReport:
    """Train the model at several widths and learning rates (here, one trial after another) and judge
    whether the best learning rate moves with width. `data_fn(seed)` yields (inputs, targets) batches;
    without it a synthetic task is trained. `knob` sweeps "output-multiplier" or "init-scale" instead
    of the learning rate (as `--knob`); without `widths`, `budget` (minutes) picks them (as `--budget`)."""
    from mulint.engine.settings import build_settings, check_transfer_run

    check_transfer_run(steps, seeds, lr, source="api", knob=knob, minutes=budget)
    build_settings(None, source="api", widths=widths, width_arg=width_arg)
    from mulint.reading.functions import GivenFunction
    from mulint.sweep.executors import InProcess
    from mulint.sweep.run import run_transfer
    from mulint.sweep.runner import SweepSpec, TrialRunner

    target = _target(model_fn, widths, width_arg)
    spec = SweepSpec(
        target=target.label,
        optimizer=_given(optimizer_fn),
        lr=lr,
        width_arg=width_arg,
        device=device or "cpu",
        data=GivenFunction(data_fn, _label(data_fn)) if data_fn is not None else None,
        knob=knob,
    )

    def run():
        return run_transfer(
            spec,
            InProcess(TrialRunner(spec, target=target)),
            code_digest="",
            widths=widths,
            steps=steps,
            seeds=seeds,
            minutes=budget,
        )

    return TransferReport(result=_guarded(target.label, run))


# --- targets from Python objects --------------------------------------------------------------------


def _label(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or "?"
    return f"{module}:{getattr(obj, '__qualname__', type(obj).__name__)}"


def _given(optimizer_fn):
    """The caller's optimizer factory, labelled as findings name it; None when not given."""
    from mulint.reading.functions import GivenFunction

    return GivenFunction(optimizer_fn, _label(optimizer_fn)) if optimizer_fn is not None else None


def _target(model_fn, widths: list[int] | None, width_arg: str | None):
    from mulint.reading.targets import ResolvedTarget, TargetSpec

    if not callable(model_fn):
        raise MulintError(
            f"{model_fn!r} is not callable",
            step="target",
            hint="pass model_fn(width) -> nn.Module, or a model class with width_arg=",
        )
    module = (
        _inspect.getmodule(model_fn)
        or sys.modules.get(getattr(model_fn, "__module__", ""), None)
        or types.ModuleType("mulint_api_target")
    )
    try:
        source = _inspect.getsourcefile(model_fn)
    except TypeError:
        source = None
    name = getattr(model_fn, "__qualname__", None) or type(model_fn).__name__
    obj = model_fn if width_arg or _has_width_default(model_fn) else _with_default_width(model_fn, widths, name)
    path = Path(source) if source else None
    spec = TargetSpec(text=name, path=path, module=module.__name__, name=name)
    return ResolvedTarget(spec=spec, name=name, obj=obj, module=module, path=path)


def _has_width_default(model_fn) -> bool:
    from mulint.reading.width_names import WIDTH_NAMES

    if _inspect.isclass(model_fn):
        return True  # a class: its width argument or config is found as for `file.py:Class`
    try:
        params = _inspect.signature(model_fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name in WIDTH_NAMES and isinstance(p.default, int) for p in params)


def _with_default_width(model_fn, widths: list[int] | None, name: str):
    """`lambda w: build(cfg, width=w)` has no default width: give it one, the smallest width asked
    for, so the analysis builds it around that width."""
    try:
        required = sum(
            p.default is _inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            for p in _inspect.signature(model_fn).parameters.values()
        )
    except (TypeError, ValueError):
        required = 1  # no signature to read: called with the width alone
    if required != 1:
        raise MulintError(
            f"{name} must take exactly one argument, the width",
            target=name,
            step="width",
            hint="pass model_fn(width) -> nn.Module, e.g. lambda width: Model(Config(d_model=width)); "
            "or a model class with width_arg=",
        )
    base = min(widths) if widths else DEFAULT_BASE_WIDTH

    def model(width: int = base):
        return model_fn(width)

    model.__name__ = getattr(model_fn, "__name__", "model_fn")
    model.__qualname__ = name
    model.__module__ = getattr(model_fn, "__module__", None)  # type: ignore[assignment]  # None where it has none
    return model


def _guarded(label: str, run: Callable[[], Any]) -> Any:
    """Every failure is a MulintError naming the target and the step; user code's own exceptions too."""
    from mulint import steps

    try:
        return run()
    except MulintError as exc:
        exc.for_target(label).in_api_words()
        raise  # the same error, its cause and traceback kept
    except SystemExit as exc:  # the model's code exiting must not end the caller's program
        raise MulintError(
            f"the model's code called sys.exit({exc.code!r})",
            target=label,
            step=steps.current or "build",
            hint="mulint calls model_fn(width) to build the model; exit in the script, not there",
        ) from exc
    except Exception as exc:
        raise MulintError(
            f"{type(exc).__name__}: {exc}",
            target=label,
            step=steps.current or "build",
            hint="the model's own code raised this; run model_fn(width) alone to see it",
        ) from exc


def _listed(values):
    """A sequence given from Python as a list (a bare string stays a string: the settings refuse it)."""
    return list(values) if isinstance(values, (tuple, list)) else values
