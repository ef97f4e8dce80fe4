"""Command line: `mulint check | inspect | coord | rule`. Exit codes: 0 clean, 1 findings, 2 errors.

torch is imported only inside the commands that analyse a model, so the static path starts fast.
"""

from __future__ import annotations

import dataclasses
import errno
import sys
import traceback

import click

from mulint.engine.isolation import DEFAULT_TIMEOUT
from mulint.engine.options import JobOptions
from mulint.engine.runner import echo_output, one_model_job, run_one_job
from mulint.errors import MulintError
from mulint.report.escape import keep_lines, one_line
from mulint.report.summary import counts_line, error_lines, not_a_pass, note_lines, render, unanalysed_lines
from mulint.version import __version__

FORMATS_INSPECT = click.Choice(["text", "json"])


def parse_widths(ctx, param, value: str | None) -> list[int] | None:
    if not value:
        return None
    try:  # only split here: the settings judge the list, as they judge `widths` in [tool.mulint]
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of integers, e.g. 64,128,256") from None


def parse_depths(ctx, param, value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        depths = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of integers, e.g. 4,8,16") from None
    if len(depths) < 2 or depths[0] < 2:
        raise click.BadParameter(f"'{value}': give two or more depths of at least 2 blocks, e.g. 4,8,16")
    return depths


widths_option = click.option(
    "--widths",
    callback=parse_widths,
    metavar="W1,W2,...",
    help="Widths to build the model at (default: its own width and twice it).",
)
width_arg_option = click.option(
    "--width-arg",
    metavar="NAME",
    help="Argument or config field that sets the width "
    "(default: width, d_model, n_embd, hidden_size, dim, embed_dim, hidden_dim).",
)
verbose_option = click.option("--verbose", "-v", is_flag=True, help="Show tracebacks of errors.")


def depth_options(command):
    """--depth-arg and --no-depth: which knob sets the number of blocks, or no depth analysis."""
    command = click.option(
        "--no-depth",
        "no_depth",
        is_flag=True,
        help="Leave depth out: no residual branches or depth exponents, even with a depth knob (config `depth = false`).",
    )(command)
    return click.option(
        "--depth-arg",
        metavar="NAME",
        help="Argument or config field that sets the number of blocks (default: n_layer, n_layers, "
        "num_layers, num_hidden_layers, depth, ...; config `depth-arg`).",
    )(command)


def _depth(no_depth: bool) -> bool | None:
    """--no-depth given turns depth off; not given leaves it to the config."""
    return False if no_depth else None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mulint", message="%(prog)s %(version)s")
def cli() -> None:
    """mulint: a linter for the Maximal Update Parametrization (µP) of PyTorch models."""


# --jobs, --timeout and --max-memory are validated by the settings (mulint.engine.settings) with the config's
# own parsers, so that a value is judged alike whether a flag or [tool.mulint] gives it.
jobs_option = click.option(
    "--jobs",
    "-j",
    type=int,
    metavar="N",
    help="Models analysed at once, each in its own worker process (default: the number of cores; config `jobs`).",
)
timeout_option = click.option(
    "--timeout",
    type=float,
    metavar="SECONDS",
    help=f"Stop a model target that runs longer (default: {DEFAULT_TIMEOUT:g}; config `timeout`).",
)
max_memory_option = click.option(
    "--max-memory",
    metavar="SIZE",
    help="Memory cap of each worker, e.g. 8G or 512M (default: three quarters of "
    "the machine shared by the workers; config `max-memory`).",
)


@cli.command()
@click.argument("target")
@widths_option
@width_arg_option
@click.option(
    "--optimizer",
    metavar="PATH:NAME",
    help="Function taking the model and returning its optimizer (default: found as for check), so "
    "learning rates and measured updates are shown.",
)
@click.option(
    "--profile",
    metavar="NAME|FILE.toml",
    help="Expected exponents per role: mup (default), u-mup, spectral, depth-mup, completep, or a .toml file (config `profile`).",
)
@depth_options
@click.option("--format", "fmt", type=FORMATS_INSPECT, default="text", show_default=True, help="Output format.")
@timeout_option
@max_memory_option
@verbose_option
def inspect(
    target: str,
    widths,
    width_arg,
    optimizer,
    profile,
    depth_arg,
    no_depth,
    fmt: str,
    timeout,
    max_memory,
    verbose: bool,
) -> None:
    """Show every parameter of TARGET: shape, growing dims, fan-in/out, roles, and the numbers the rules
    judge per width (init rms, lr, weight decay, multipliers, measured updates) with their exponents.

    TARGET is path/to/file.py:NAME, package.module:NAME, or a file whose model is discovered.
    """
    from mulint.report.inspect_view import as_json, as_text

    with _errors(verbose):
        from mulint.engine.settings import settings_for

        settings = settings_for(
            [target],
            one_model=True,
            widths=widths,
            width_arg=width_arg,
            optimizer=optimizer,
            profile=profile,
            depth_arg=depth_arg,
            depth=_depth(no_depth),
            timeout=timeout,
            max_memory=max_memory,
            jobs=1,  # one model: one worker
        )
        job = one_model_job("inspect", target, JobOptions.for_inspect(settings))
        value = run_one_job(job, settings.limits(), verbose)
        click.echo(as_json(value["facts"]) if fmt == "json" else as_text(value["facts"]))


def _codes(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [c.strip().upper() for c in value.replace(" ", ",").split(",") if c.strip()]


@cli.command()
@click.argument("paths", nargs=-1)
@widths_option
@width_arg_option
@click.option(
    "--optimizer",
    metavar="PATH:NAME",
    help="Function taking the model and returning its optimizer (default: configure_optimizers, "
    "make_optimizer, build_optimizer or create_optimizer in the file, or the model's own "
    "configure_optimizers).",
)
@click.option("--select", metavar="CODES", help="Only these rule codes or prefixes, e.g. MU1,MU201.")
@click.option("--ignore", metavar="CODES", help="Skip these rule codes or prefixes.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif", "github"]),
    default=None,
    help="Output format (default: text).",
)
@click.option("--statistics", is_flag=True, help="Count findings per rule instead of listing them.")
@click.option("--fix", "apply_fixes", is_flag=True, help="Apply the safe fixes to the source files.")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply (with --fix or --diff) or offer the unsafe fixes.")
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Print the unified diff of what --fix would change and write nothing (exit 1 if it would).",
)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings (report-only adoption).")
@click.option("--no-exec", is_flag=True, help="Never import user code: static rules only.")
@click.option(
    "--no-cache",
    is_flag=True,
    help="Analyse every model again instead of reusing results for "
    "unchanged code (cache: $MULINT_CACHE_DIR or ~/.cache/mulint).",
)
@click.option(
    "--coord",
    "run_coord",
    is_flag=True,
    help="Also run the dynamic coordinate check on each model (MU9xx; seconds per model).",
)
@click.option(
    "--profile",
    metavar="NAME|FILE.toml",
    help="Expected exponents per role: mup (default), u-mup (unit scaling), spectral, depth-mup or "
    "completep (mup requiring branch multipliers ∝ depth^-1/2 or ^-1), or a .toml file shaped like them "
    "(config `profile`).",
)
@depth_options
@click.option(
    "--require-models",
    is_flag=True,
    default=None,
    help="Exit 2 when a file defining a model was not analysed (config `require-models`).",
)
@jobs_option
@timeout_option
@max_memory_option
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True),
    help="pyproject.toml to read [tool.mulint] from (default: found upwards from the first path).",
)
@click.option(
    "--daemon/--no-daemon",
    default=None,
    help="Check through the warm server, started on first use (`mulint server`); --no-daemon never "
    "(config `daemon`; never started when CI is set).",
)
@verbose_option
def check(
    paths,
    widths,
    width_arg,
    optimizer,
    select,
    ignore,
    fmt,
    statistics,
    apply_fixes,
    unsafe_fixes,
    show_diff,
    exit_zero,
    no_exec,
    no_cache,
    run_coord,
    profile,
    depth_arg,
    no_depth,
    require_models,
    jobs,
    timeout,
    max_memory,
    config_path,
    daemon,
    verbose,
):
    """Lint PATHS (files, directories, or PATH:NAME model targets) for µP violations.

    Exit codes: 0 clean, 1 findings, 2 usage/config errors or a target that cannot be analysed.
    """
    from pathlib import Path

    from mulint.engine.checker import checked_files, run_check
    from mulint.engine.fix_marks import remembered_declines
    from mulint.engine.settings import settings_for
    from mulint.fix.run import declined_fixes, fix_findings

    with _errors(verbose):
        fixing = apply_fixes or show_diff
        settings = settings_for(
            paths,
            config_path=Path(config_path) if config_path else None,
            fixing=fixing,
            widths=widths,
            width_arg=width_arg,
            optimizer=optimizer,
            select=_codes(select),
            ignore=_codes(ignore),
            format=fmt,
            profile=profile,
            depth_arg=depth_arg,
            depth=_depth(no_depth),
            require_models=require_models,
            jobs=jobs,
            timeout=timeout,
            max_memory=max_memory,
            no_exec=no_exec,
            coord=run_coord,
            cache=not no_cache,
            daemon=daemon,  # the thin entry (mulint.entry) acted on it already; judged here as from the config
        )
        if not settings.paths:
            raise click.UsageError("give a file, a directory or a PATH:NAME target (or `targets` in [tool.mulint])")
        require, fmt = settings.require_models, settings.format
        # Model analysis takes seconds per target: say what is running, on a terminal or with --verbose.
        show = verbose or sys.stderr.isatty()
        progress = (lambda line: click.echo(one_line(line), err=True)) if show else (lambda line: None)
        if verbose:
            from mulint.engine.checker import expand

            skipped: list[str] = []
            expand(settings.paths, settings.exclude, skipped)
            for folder in skipped:
                click.echo(f"skipped folder {folder} (not source)", err=True)
        result = run_check(settings, progress=progress)
        if verbose:
            for label, output in result.outputs:
                echo_output(label, output)
        declined = remembered_declines if settings.cache else declined_fixes
        fixes = fix_findings(result, checked_files(settings), apply_fixes, show_diff, unsafe_fixes, declined)
        if show_diff:
            diff = fixes.diff()
            click.echo(diff, nl=False)
            click.echo(f"Would fix {len(fixes.fixed)} {'problem' if len(fixes.fixed) == 1 else 'problems'}.", err=True)
            _echo(error_lines(result.errors))
            if require and result.unanalysed:
                _echo(unanalysed_lines(result))
            unchecked = _require_models(result, require)  # a diff of nothing must not pass a file it never read
            raise SystemExit(2 if result.errors or unchecked else (1 if diff else 0))
        if fmt == "text":
            _echo(note_lines(result))
            if verbose:
                from mulint.report.summary import timing_lines

                _echo(timing_lines(result))
        output = render(result, fmt, statistics, unsafe_fixes, len(fixes.fixed), verbose=verbose)
        if fmt == "text" and not result.findings and (result.errors or result.unanalysed):
            output = not_a_pass(result)
        if output:
            click.echo(output)
        if fmt == "text":
            click.echo(counts_line(result, require))
        if fmt == "text":
            _echo(error_lines(result.errors))
        unchecked = _require_models(result, require)
    if result.errors or unchecked:
        raise SystemExit(2)
    if result.findings and not exit_zero:
        raise SystemExit(1)


@cli.command()
@click.argument("target")
@click.option(
    "--optimizer",
    metavar="PATH:NAME",
    help="Function taking the model and returning its optimizer (default: found as for check; else Adam at --lr).",
)
@widths_option
@width_arg_option
@click.option("--steps", type=int, default=3, show_default=True, help="Training steps per width (1 to 50).")
@click.option("--seeds", type=int, default=2, show_default=True, help="Seeds averaged per width (1 to 20).")
@click.option(
    "--lr",
    type=float,
    default=1e-3,
    show_default=True,
    help="Learning rate of the default Adam (when the target has no optimizer).",
)
@click.option(
    "--batch",
    "batch_spec",
    metavar="PATH:NAME",
    help="Function returning the training batch (args, or (args, kwargs)), optionally taking the model "
    "(default: synthesised from the first layer, or the file's example_inputs).",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda", "mps"]),
    default=None,
    help="Where to train (default: cuda when available, else cpu).",
)
@click.option(
    "--depths",
    callback=parse_depths,
    metavar="L1,L2,...",
    help="Depth coordinate check instead: train at these numbers of blocks, the width fixed, and judge how the "
    "residual stream and the blocks move with depth (MU951-MU954).",
)
@click.option(
    "--depth-arg",
    metavar="NAME",
    help="With --depths: the argument or config field that sets the number of blocks (default: n_layer, "
    "n_layers, num_layers, num_hidden_layers, depth, ...; config `depth-arg`).",
)
@click.option(
    "--profile",
    metavar="NAME|FILE.toml",
    help="Profile whose [coord] thresholds judge the run: mup (default), completep (lazy blocks fail), ... "
    "(config `profile`).",
)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG plot here.")
@click.option("--format", "fmt", type=FORMATS_INSPECT, default="text", show_default=True, help="Output format.")
@timeout_option
@max_memory_option
@verbose_option
def coord(
    target,
    optimizer,
    widths,
    width_arg,
    depths,
    depth_arg,
    profile,
    steps,
    seeds,
    lr,
    batch_spec,
    device,
    plot_path,
    fmt,
    timeout,
    max_memory,
    verbose,
):
    """Coordinate check: train TARGET a few steps at growing widths; fail if a layer's change grows or
    collapses with width (with --depths: at growing depths, the width fixed). Exit 1 on fail."""
    from mulint.report.coord_view import as_json, as_text

    with _errors(verbose):
        if depths and widths:
            raise click.UsageError("--depths trains at one width (the model's own): drop --widths")
        if plot_path:
            _check_writable(plot_path)
        from mulint.engine.settings import check_coord_run, parse_function, settings_for

        check_coord_run(steps, seeds, lr)
        # `[tool.mulint]` as for check, under the flags; its `widths` are check's (coord trains at its own
        # widths, as `check --coord` does), so only --widths sets them here.
        settings = settings_for(
            [target],
            one_model=True,
            widths=widths,
            width_arg=width_arg,
            optimizer=optimizer,
            profile=profile,
            depth_arg=depth_arg,
            timeout=timeout,
            max_memory=max_memory,
            jobs=1,  # one model: one worker
        )
        options = JobOptions.for_coord(
            settings,
            widths=settings.widths if widths else None,
            steps=steps,
            seeds=seeds,
            lr=lr,
            batch=parse_function(batch_spec, "--batch", "--batch") if batch_spec else None,
            device=device,
            depths=depths,
        )
        job = one_model_job("coord", target, options)
        from mulint.coordcheck import FACTORS

        chosen = options.widths or ()
        total = (len(depths) if depths else len(chosen) if len(chosen) >= 3 else len(FACTORS)) * seeds
        show = sys.stderr.isatty() or verbose
        with click.progressbar(
            length=total, label="training", file=sys.stderr if show else None, hidden=not show
        ) as bar:
            value = run_one_job(job, settings.limits(), verbose, on_progress=lambda job, n: bar.update(n))
        result = value["coord"]
        if plot_path:
            from mulint.coordcheck.plot import save_plot

            save_plot(result, plot_path)
        click.echo(as_json(result) if fmt == "json" else as_text(result))
    if result.verdict == "fail":
        raise SystemExit(1)


@cli.command()
@click.argument("target")
@click.option(
    "--optimizer",
    metavar="PATH:NAME",
    help="Function taking the model and returning its optimizer (default: found as for check; else Adam at --lr). "
    "Every param group's lr is scaled together; the user's ratios between groups stay.",
)
@click.option(
    "--data",
    "data_spec",
    metavar="PATH:NAME",
    help="Function NAME(seed) yielding (inputs, targets) batches of your own data (default: a synthetic task: "
    "a random sparse Markov language for language models, a fixed random teacher otherwise).",
)
@click.option(
    "--widths",
    callback=parse_widths,
    metavar="W1,W2,...",
    help="Widths to train at (default: the model's own width, 2x and 4x it when their training fits --budget, "
    "else the same doublings moved down).",
)
@width_arg_option
@click.option("--steps", type=int, default=200, show_default=True, help="Training steps per trial (10 to 100000).")
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds per width and lr (1 to 20).")
@click.option(
    "--lr",
    type=float,
    default=1e-3,
    show_default=True,
    help="Learning rate of the default Adam (when the target has no optimizer); the grid centres on the "
    "optimizer's own lr otherwise.",
)
@click.option(
    "--knob",
    type=click.Choice(["lr", "output-multiplier", "init-scale"]),
    default="lr",
    show_default=True,
    help="What to sweep, the others held at your values: every param group's lr; the readout's output times a "
    "factor; or every weight matrix's init times a factor. Factors are powers of two around 1 (your model as "
    "written).",
)
@click.option(
    "--budget",
    "budget_minutes",
    type=float,
    default=6.0,
    show_default=True,
    metavar="MINUTES",
    help="Without --widths: the model's own width, 2x and 4x it when their training is estimated to fit "
    "this many minutes, else the same doublings moved down (half, quarter, eighth) until it does.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where trials run: mulint's isolated workers (--jobs at once), or Ray tasks (pip install 'mulint[ray]').",
)
@click.option(
    "--ray-address",
    metavar="ADDRESS",
    help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray instance started for the sweep).",
)
@click.option("--gpus-per-trial", type=float, default=0.0, show_default=True, help="GPUs each Ray trial asks for.")
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda", "mps"]),
    default=None,
    help="Where to train (default: cpu).",
)
@click.option(
    "--baseline",
    metavar="PATH:NAME",
    help="A second model (usually the SP twin) swept the same way and shown beside TARGET, as in Tensor "
    "Programs V's Figure 1; the exit code is TARGET's.",
)
@click.option("--no-store", is_flag=True, help="Train every trial again instead of reusing stored ones.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG plot here.")
@click.option("--format", "fmt", type=FORMATS_INSPECT, default="text", show_default=True, help="Output format.")
@jobs_option
@timeout_option
@max_memory_option
@verbose_option
def transfer(
    target,
    optimizer,
    data_spec,
    widths,
    width_arg,
    steps,
    seeds,
    lr,
    knob,
    budget_minutes,
    executor,
    ray_address,
    gpus_per_trial,
    device,
    baseline,
    no_store,
    plot_path,
    fmt,
    jobs,
    timeout,
    max_memory,
    verbose,
):
    """Does the best learning rate stay put? Train TARGET at several widths and learning rates (or values
    of another --knob) and judge whether the optimum moves with width. Exit 0 PASS, 1 FAIL or
    INCONCLUSIVE, 2 on errors."""
    from mulint.report.transfer_view import as_json, as_text

    with _errors(verbose):
        if plot_path:
            _check_writable(plot_path)
        from mulint.engine.settings import check_transfer_run, parse_function, settings_for
        from mulint.engine.transfer import sweep_target

        check_transfer_run(steps, seeds, lr, gpus_per_trial, minutes=budget_minutes)
        settings = settings_for(
            [target],
            one_model=True,
            widths=widths,
            width_arg=width_arg,
            optimizer=optimizer,
            timeout=timeout,
            max_memory=max_memory,
            jobs=jobs,
        )
        options = JobOptions.for_transfer(
            settings,
            widths=list(settings.widths) if widths and settings.widths else None,
            lr=lr,
            data=parse_function(data_spec, "--data", "--data") if data_spec else None,
            device=device,
            knob=knob,
        )
        job = one_model_job("transfer_describe", target, options)
        show = sys.stderr.isatty() or verbose
        bar: list = []

        def on_plan(info: dict) -> None:
            plan = info["plan"]
            from mulint.sweep.budget import REFINE, estimate_seconds
            from mulint.sweep.grid import coarse

            first = len(plan.widths) * len(coarse(plan.centre)) * plan.seeds
            later = len(plan.widths) * REFINE * plan.seeds
            share = max(1, min(settings.limits().jobs, first)) if executor == "local" else 1
            estimate = estimate_seconds(info["step_seconds"], plan.widths, plan.steps, plan.seeds, share)
            grid = "lr grid" if knob == "lr" else f"{knob} grid (× the model's own)"
            click.echo(
                f"transfer: {job.target} at widths {', '.join(map(str, plan.widths))}; {plan.steps} steps, "
                f"{plan.seeds} seeds; {grid} around 2^{plan.centre:g}; about {first + later} trials "
                f"({first} in the first round), about {_duration(estimate)}",
                err=True,
            )

        def on_round(n: int, todo: int) -> None:
            if bar:
                bar.pop().render_finish()
            if todo:
                b = click.progressbar(
                    length=todo, label=f"round {n}", file=sys.stderr if show else None, hidden=not show, show_eta=True
                )
                b.render_progress()
                bar.append(b)

        def on_trial(key, trial, reused) -> None:
            if bar and not reused:
                bar[0].update(1)

        def sweep(label: str, widths: list[int] | None):
            return sweep_target(
                label,
                dataclasses.replace(options, widths=None if widths is None else tuple(widths)),
                settings.limits(),
                steps=steps,
                seeds=seeds,
                executor=executor,
                ray_address=ray_address,
                gpus_per_trial=gpus_per_trial,
                use_store=not no_store,
                minutes=budget_minutes,
                on_plan=on_plan,
                on_round=on_round,
                on_trial=on_trial,
            )

        result = sweep(job.target, None if options.widths is None else list(options.widths))
        if bar:
            bar.pop().render_finish()
        other = None
        if baseline:
            # The baseline at the widths the target was swept at, so both panels compare like with like.
            other = sweep(one_model_job("transfer_describe", baseline, options).target, result.widths)
            if bar:
                bar.pop().render_finish()
        if plot_path:
            from mulint.sweep.plot import save_plot

            save_plot([result] + ([other] if other else []), plot_path)
        if fmt == "json":
            click.echo(as_json(result, baseline=other))
        else:
            click.echo(as_text(result) + (f"\n\nbaseline {as_text(other)}" if other else ""))
    if result.verdict.status != "PASS":
        raise SystemExit(1)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _check_writable(path: str) -> None:
    """Before any training: a plot that cannot be written must not cost the run."""
    import os
    from pathlib import Path

    target = Path(path)
    existed = target.exists()
    try:
        with open(target, "ab"):
            pass
    except OSError as exc:
        raise MulintError(
            f"cannot write the plot to {path}: {exc.strerror or exc}",
            step="plot",
            hint="give --plot a path in a folder that exists and is writable",
        ) from exc
    if not existed:
        os.unlink(target)


@cli.command()
@click.argument("code", required=False)
def rule(code: str | None) -> None:
    """Explain rule CODE (e.g. MU201), or list every rule."""
    from mulint.rules import all_rules, by_code
    from mulint.rules.pages import explanation

    with _errors(False):
        if code is None:
            for r in all_rules():
                kind = "static" if r.judged_on == "static" else "model"
                click.echo(f"{r.code}  {r.name:34s} {r.severity:8s} {kind:7s} {r.summary}")
            return
        found = by_code(code)
        if found is None:
            click.echo(f"error: unknown rule code '{one_line(code)}'\n  hint: `mulint rule` lists them", err=True)
            raise SystemExit(2)
        click.echo(explanation(found))


@cli.command()
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the server's log here (the editor shows it too, as the server's output).",
)
def lsp(log_file: str | None) -> None:
    """Run the language server on stdin/stdout, for an editor to start (needs `pip install 'mulint[lsp]'`)."""
    from pathlib import Path

    try:
        import pygls  # noqa: F401
    except ImportError:
        raise click.UsageError("mulint lsp needs pygls: pip install 'mulint[lsp]'") from None
    from mulint.lsp import serve

    # Model checks go through the warm server when `check` can use one.
    serve(daemon=any(p.name == "daemon" for p in check.params), log_file=Path(log_file) if log_file else None)


@cli.group()
def server() -> None:
    """The warm server that keeps torch and mulint loaded for fast checks (`check --daemon`).

    One per project (the folder of its [tool.mulint]) and interpreter; it restarts when mulint, torch,
    transformers, mup, the interpreter or its settings change, and exits after `idle-timeout` minutes idle.
    """


def _server_project():
    """The project of the working directory: its root and the key its server has."""
    from mulint.server import client

    try:
        return client.settings(client.config_table([]))
    except client.Unavailable as exc:
        raise click.UsageError(str(exc)) from None


@server.command("start")
def server_start() -> None:
    """Start the project's server (if none runs) and wait until it answers."""
    from mulint.server import client, protocol

    root, key = _server_project()
    try:
        running = client.ask(root, "status")
        why = running and protocol.mismatch(key, running["key"])
        if why:  # started with another mulint, torch, interpreter or settings
            click.echo(f"Restarting: {why}", err=True)
            client.stop(root)
            running = None
        if running is None:
            client.start(root, key)
            running = client.ask(root, "status")
    except client.Unavailable as exc:
        raise click.ClickException(str(exc)) from None
    if running is None:
        raise click.ClickException("the server did not start")
    click.echo(f"mulint server running: pid {running['pid']}, socket {running['socket']}")


@server.command("stop")
def server_stop() -> None:
    """Stop the project's server; checks running in it finish first."""
    from mulint.server import client

    root, _ = _server_project()
    try:
        pid = client.stop(root)
    except client.Unavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"stopped the mulint server (pid {pid})" if pid else "no mulint server runs for this project")


@server.command("kill")
def server_kill() -> None:
    """Kill the project's server at once (one that hangs)."""
    from mulint.server import client

    root, _ = _server_project()
    pid = client.kill(root)
    click.echo(f"killed the mulint server (pid {pid})" if pid else "no mulint server runs for this project")


@server.command("status")
@click.option("--format", "fmt", type=FORMATS_INSPECT, default="text", show_default=True, help="Output format.")
def server_status(fmt: str) -> None:
    """Show the project's server: pid, uptime, versions, socket, checks served, warm-up. Exit 1 when none
    runs."""
    import json

    from mulint.server import client

    root, _ = _server_project()
    try:
        status = client.ask(root, "status")
    except client.Unavailable as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(status, indent=2, sort_keys=True))
    elif status is None:
        click.echo(f"no mulint server runs for {root}")
    else:
        key = status["key"]
        click.echo(f"mulint server for {status['root']}")
        click.echo(f"  pid: {status['pid']}, up {_uptime(status['uptime'])}")
        click.echo(f"  socket: {status['socket']}")
        click.echo(f"  checks served: {status['checks served']} ({status['checks running']} running)")
        click.echo(f"  idle timeout: {status['idle-timeout']:g} min")
        click.echo(f"  warmed up: {'yes' if status.get('warmed up') else 'not yet (it warms up once idle)'}")
        click.echo(f"  interpreter: {key['interpreter']}")
        versions = ", ".join(f"{name.split()[0]} {value}" for name, value in key.items() if name.endswith(" version"))
        click.echo(f"  versions: {versions} (mulint source {key['mulint source']})")
        if key.get("preload"):
            click.echo(f"  preloaded: {', '.join(key['preload'])}")
    if status is None:
        raise SystemExit(1)


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _require_models(result, require: bool) -> bool:
    """With --require-models, a file whose models were not analysed is an error: say so, and say it failed."""
    if not (require and result.unanalysed):
        return False
    click.echo(
        f"error: --require-models: {len(result.unanalysed)} file(s) defining models were not analysed (see the notes)",
        err=True,
    )
    return True


def _echo(lines: list[str]) -> None:
    for line in lines:
        click.echo(line, err=True)


class _errors:
    """Turn a MulintError (or any crash) into one clear message and exit code 2."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, BrokenPipeError):
            _quiet_broken_pipe()  # here: click would turn it into exit 1, which means findings
        if exc is None or isinstance(
            exc, (click.exceptions.Exit, click.exceptions.ClickException, SystemExit, KeyboardInterrupt)
        ):
            return False
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return False  # main() says the disk is full
        if self.verbose:
            click.echo(keep_lines("".join(traceback.format_exception(kind, exc, tb))), err=True, nl=False)
        if isinstance(exc, MulintError):
            click.echo(f"error: {keep_lines(exc)}", err=True)
        else:
            click.echo(
                f"error: internal error: {kind.__name__}: {keep_lines(exc)}\n  hint: rerun with --verbose and report "
                "it with the traceback",
                err=True,
            )
        raise SystemExit(2)


# A write that fails because the disk (or quota, or file size limit) is full: the user's environment,
# not a bug of mulint's; said plainly, exit 2.
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def main(argv: list[str] | None = None) -> None:
    if sys.stdout is None:  # started with stdout closed (`>&-`): every result would vanish in silence
        click.echo("error: cannot write the output: standard output is closed", err=True)
        sys.exit(2)
    from mulint.engine.isolation import handle_signals

    handle_signals()  # SIGTERM/SIGHUP unwind as Ctrl-C does: workers killed, temporary files removed
    code: str | int | None
    try:
        try:
            cli.main(args=argv, prog_name="mulint", standalone_mode=False)
            code = 0
        except SystemExit as exc:
            code = exc.code
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except (click.exceptions.Abort, KeyboardInterrupt) as exc:
            interrupt = exc if isinstance(exc, KeyboardInterrupt) else exc.__cause__ or exc.__context__
            if isinstance(interrupt, KeyboardInterrupt):
                click.echo("interrupted", err=True)
                code = 128 + getattr(interrupt, "signum", 2)  # 130 for Ctrl-C, 143 for SIGTERM
            else:
                click.echo("Aborted.", err=True)
                code = 2
        except click.ClickException as exc:
            exc.show()
            code = 2  # click exits 1 on usage errors; 1 means findings here
        sys.stdout.flush()  # output redirected to a file is buffered: a full disk shows here, not at exit
    except BrokenPipeError:
        _quiet_broken_pipe()
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        _cannot_write(exc)
    sys.exit(code)


def _cannot_write(exc: OSError) -> None:
    where = f" {exc.filename}" if exc.filename else ""
    try:
        click.echo(
            f"error: cannot write{where}: {exc.strerror or exc}\n  hint: free some space, or write the "
            "output elsewhere",
            err=True,
        )
    except OSError:
        pass  # stderr is on the full disk too: the exit code is all that is left
    _drop_stdout()
    sys.exit(2)


def _quiet_broken_pipe() -> None:
    """`mulint check . | head`: the reader left; stop without a traceback and exit as a process that
    SIGPIPE ended (128 + 13, what `yes | head` shows), never with a verdict's 0, 1 or 2."""
    _drop_stdout()
    sys.exit(128 + 13)


def _drop_stdout() -> None:
    """Point stdout at devnull, so that the interpreter's final flush of what is left does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    main()
