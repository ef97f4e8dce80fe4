"""Command line: `mulint check | inspect | coord | rule`. Exit codes: 0 clean, 1 findings, 2 errors.

torch is imported only inside the commands that analyse a model, so the static path starts fast.
"""

from __future__ import annotations

import sys
import traceback

import click

from mulint import __version__
from mulint.errors import MulintError

FORMATS_INSPECT = click.Choice(["text", "json"])


def parse_widths(ctx, param, value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        widths = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of integers, e.g. 64,128,256")
    if any(w <= 0 for w in widths) or len(set(widths)) < 2:
        raise click.BadParameter("give at least two different positive widths, e.g. 64,128,256")
    return sorted(set(widths))


widths_option = click.option("--widths", callback=parse_widths, metavar="W1,W2,...",
                             help="Widths to build the model at (default: its own width and twice it).")
width_arg_option = click.option("--width-arg", metavar="NAME",
                                help="Argument or config field that sets the width "
                                     "(default: width, d_model, n_embd, hidden_size, dim, embed_dim, hidden_dim).")
verbose_option = click.option("--verbose", "-v", is_flag=True, help="Show tracebacks of errors.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mulint", message="%(prog)s %(version)s")
def cli() -> None:
    """mulint: a linter for the Maximal Update Parametrization (µP) of PyTorch models."""


@cli.command()
@click.argument("target")
@widths_option
@width_arg_option
@click.option("--format", "fmt", type=FORMATS_INSPECT, default="text", show_default=True, help="Output format.")
@verbose_option
def inspect(target: str, widths, width_arg, fmt: str, verbose: bool) -> None:
    """Show every parameter of TARGET: shape, growing dims, fan-in/out, roles.

    TARGET is path/to/file.py:NAME, package.module:NAME, or a file whose models are discovered.
    """
    from mulint.analysis.structure import analyse_structure
    from mulint.load.targets import parse_target, resolve
    from mulint.report.inspect_view import as_json, as_text

    with _errors(verbose):
        try:
            resolved = resolve(parse_target(target), allow_exec=True)
        except MulintError as exc:
            raise exc.for_target(target)
        if not resolved:
            raise MulintError("no model class or factory found", target=target, step="target",
                              hint="name one explicitly as path/to/file.py:NAME")
        outputs = []
        for item in resolved:
            try:
                structure = analyse_structure(item, widths=widths, width_arg=width_arg)
            except MulintError as exc:
                raise exc.for_target(item.label)
            outputs.append(as_json(structure.facts) if fmt == "json" else as_text(structure.facts))
        click.echo("\n\n".join(outputs))


def _codes(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [c.strip().upper() for c in value.replace(" ", ",").split(",") if c.strip()]


@cli.command()
@click.argument("paths", nargs=-1)
@widths_option
@width_arg_option
@click.option("--optimizer", metavar="PATH:NAME",
              help="Function taking the model and returning its optimizer (default: configure_optimizers, "
                   "make_optimizer, build_optimizer or create_optimizer in the file, or the model's own "
                   "configure_optimizers).")
@click.option("--select", metavar="CODES", help="Only these rule codes or prefixes, e.g. MU1,MU201.")
@click.option("--ignore", metavar="CODES", help="Skip these rule codes or prefixes.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "github"]), default=None,
              help="Output format (default: text).")
@click.option("--statistics", is_flag=True, help="Count findings per rule instead of listing them.")
@click.option("--fix", "apply_fixes", is_flag=True, help="Apply the safe fixes to the source files.")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply (with --fix or --diff) or offer the unsafe fixes.")
@click.option("--diff", "show_diff", is_flag=True,
              help="Print the unified diff of what --fix would change and write nothing (exit 1 if it would).")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings (report-only adoption).")
@click.option("--no-exec", is_flag=True, help="Never import user code: static rules only.")
@click.option("--no-cache", is_flag=True, help="Analyse every model again instead of reusing results for "
                                               "unchanged code (cache: $MULINT_CACHE_DIR or ~/.cache/mulint).")
@click.option("--coord", "run_coord", is_flag=True,
              help="Also run the dynamic coordinate check on each model (MU9xx; seconds per model).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True),
              help="pyproject.toml to read [tool.mulint] from (default: found upwards from the first path).")
@verbose_option
def check(paths, widths, width_arg, optimizer, select, ignore, fmt, statistics, apply_fixes, unsafe_fixes, show_diff,
          exit_zero, no_exec, no_cache, run_coord, config_path, verbose):
    """Lint PATHS (files, directories, or PATH:NAME model targets) for µP violations.

    Exit codes: 0 clean, 1 findings, 2 usage/config errors or a target that cannot be analysed.
    """
    from pathlib import Path

    from mulint.check import CheckOptions, run_check
    from mulint.config import find_config, load_config

    with _errors(verbose):
        start = Path(paths[0].split(":")[0]) if paths else Path.cwd()
        config_file = Path(config_path) if config_path else find_config(start if start.exists() else Path.cwd())
        config = load_config(config_file) if config_file else None
        targets = list(paths) or (list(config.targets) if config and config.targets else [])
        if not targets:
            raise click.UsageError("give a file, a directory or a PATH:NAME target (or `targets` in [tool.mulint])")
        fixing = apply_fixes or show_diff
        if fixing and widths:
            raise click.UsageError("--fix and --diff take the base width from the model's default; drop --widths")
        if config and not paths:
            targets = [str(config.root / t) if not Path(t).is_absolute() and (config.root / t.split(":")[0]).exists()
                       else t for t in targets]
        options = CheckOptions(
            paths=targets,
            # A fix's base width is the model's default, which the analysis sees only at default widths.
            widths=widths or (config.widths if config and not fixing else None),
            width_arg=width_arg or (config.width_arg if config else None),
            select=_codes(select) if select else (config.select if config else None),
            ignore=_codes(ignore) if ignore else (config.ignore if config else None),
            per_file_ignores=config.per_file_ignores if config else {},
            exclude=config.exclude if config else [],
            no_exec=no_exec,
            coord=run_coord,
            cache=not no_cache,
            optimizer=optimizer or (config.optimizer if config else None),
            root=config.root if config else Path.cwd(),
        )
        fmt = fmt or (config.format if config and config.format else "text")
        # Model analysis takes seconds per target: say what is running, on a terminal or with --verbose.
        show = verbose or sys.stderr.isatty()
        progress = (lambda label: click.echo(f"checking {label} ...", err=True)) if show else (lambda label: None)
        result = run_check(options, progress=progress)
        fixes = _fix(result, options, apply_fixes, show_diff, unsafe_fixes)
        if show_diff:
            diff = fixes.diff()
            click.echo(diff, nl=False)
            click.echo(f"Would fix {len(fixes.fixed)} {'problem' if len(fixes.fixed) == 1 else 'problems'}.", err=True)
            for error in result.errors:
                click.echo(f"error: {error['target']}: [{error['step']}] {error['message']}", err=True)
            raise SystemExit(2 if result.errors else (1 if diff else 0))
        output = _render(result, fmt, statistics, unsafe_fixes, len(fixes.fixed))
        if fmt == "text" and result.errors and not result.findings:
            output = f"No problems found; {len(result.errors)} target(s) could not be analysed (see errors)."
        if output:
            click.echo(output)
        if fmt == "text":
            for target in result.targets:
                for note in target.get("notes") or []:
                    click.echo(f"note: {target['target']}: {note}", err=True)
        for error in result.errors:
            if fmt in ("text", "github"):
                hint = f"\n  hint: {error['hint']}" if error["hint"] else ""
                click.echo(f"error: {error['target']}: [{error['step']}] {error['message']}{hint}", err=True)
    if result.errors:
        raise SystemExit(2)
    if result.findings and not exit_zero:
        raise SystemExit(1)


@cli.command()
@click.argument("target")
@click.option("--optimizer", metavar="PATH:NAME", help="Function taking the model and returning its optimizer "
                                                       "(default: found as for check; else Adam at --lr).")
@widths_option
@width_arg_option
@click.option("--steps", type=click.IntRange(1, 50), default=3, show_default=True, help="Training steps per width.")
@click.option("--seeds", type=click.IntRange(1, 20), default=2, show_default=True, help="Seeds averaged per width.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Learning rate of the default Adam (when the target has no optimizer).")
@click.option("--batch", "batch_spec", metavar="PATH:NAME",
              help="Function returning the training batch (args, or (args, kwargs)), optionally taking the model "
                   "(default: synthesised from the first layer, or the file's example_inputs).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True), help="Write a PNG plot here.")
@click.option("--format", "fmt", type=FORMATS_INSPECT, default="text", show_default=True, help="Output format.")
@verbose_option
def coord(target, optimizer, widths, width_arg, steps, seeds, lr, batch_spec, plot_path, fmt, verbose):
    """Coordinate check: train TARGET a few steps at growing widths; fail if a layer's change grows or
    collapses with width. Exit 1 on fail."""
    from mulint.analysis.model import _resolve_function
    from mulint.analysis.structure import analyse_structure
    from mulint.coord import run_coord
    from mulint.load.targets import parse_target, resolve
    from mulint.report.coord_view import as_json, as_text

    with _errors(verbose):
        try:
            [item] = resolve(parse_target(target), allow_exec=True)[:1] or [None]
        except MulintError as exc:
            raise exc.for_target(target)
        if item is None:
            raise MulintError("no model class or factory found", target=target, step="target",
                              hint="name one explicitly as path/to/file.py:NAME")
        try:
            structure = analyse_structure(item, width_arg=width_arg)
            total = len(widths) * seeds if widths and len(widths) >= 3 else 4 * seeds
            show = sys.stderr.isatty() or verbose
            batch_fn = _resolve_function(batch_spec)[0] if batch_spec else None
            with click.progressbar(length=total, label="training", file=sys.stderr if show else None,
                                   hidden=not show) as bar:
                result = run_coord(item, structure, widths=widths, steps=steps, seeds=seeds, lr=lr,
                                   batch_fn=batch_fn, optimizer=optimizer, resolve_optimizer=_resolve_function,
                                   progress=bar.update)
        except MulintError as exc:
            raise exc.for_target(item.label)
        if plot_path:
            from mulint.coord.plot import save_plot

            save_plot(result, plot_path)
        click.echo(as_json(result) if fmt == "json" else as_text(result))
    if result.verdict == "fail":
        raise SystemExit(1)


@cli.command()
@click.argument("code", required=False)
def rule(code: str | None) -> None:
    """Explain rule CODE (e.g. MU201), or list every rule."""
    from mulint.rules import all_rules, by_code
    from mulint.rules.pages import pages_dir

    if code is None:
        for r in all_rules():
            kind = "static" if r.needs == "source" else "model"
            click.echo(f"{r.code}  {r.name:34s} {r.severity:8s} {kind:7s} {r.summary}")
        return
    found = by_code(code)
    if found is None:
        click.echo(f"error: unknown rule code '{code}'\n  hint: `mulint rule` lists them", err=True)
        raise SystemExit(2)
    page = pages_dir() / f"{found.code}.md"
    click.echo(page.read_text(encoding="utf-8") if page.exists() else f"{found.code}: {found.name}\n\n{found.summary}")


def _checked_files(options) -> set:
    """The files named or discovered: the only ones a fix may edit (not the installed packages a
    model's code may come from)."""
    from pathlib import Path

    from mulint.check import expand
    from mulint.load.targets import parse_target

    files = set()
    for text in expand(options.paths, options.exclude) + ([options.optimizer] if options.optimizer else []):
        try:
            spec = parse_target(text)
        except MulintError:
            continue
        if spec.path is not None:
            files.add(Path(spec.path))
    return files


def _fix(result, options, apply_fixes: bool, show_diff: bool, unsafe_fixes: bool):
    """Plan the fixes; with --fix write them and keep only the findings that remain; --fix and --diff
    say why a fix was not made."""
    from mulint.fix import FixResult, annotate, outside_checked_files, plan_fixes

    fixing = apply_fixes or show_diff
    if not fixing:
        # A plain check marks what has a fix without planning it: planning parses the files with
        # libcst, a second or more per run, too slow for a pre-commit hook on unchanged files.
        # Fixes that would edit an unchecked file (an installed package) are never offered.
        declined = outside_checked_files(result.findings, unsafe=True, allowed=_checked_files(options))
        annotate(result.findings, declined, notes=False)
        return FixResult(remaining=list(result.findings))
    fixes = plan_fixes(result.findings, unsafe=unsafe_fixes or not fixing, allowed=_checked_files(options))
    annotate(result.findings, fixes.declined, notes=fixing)
    if apply_fixes and not show_diff:
        try:
            fixes.write()
        except OSError as exc:
            raise MulintError(f"could not write the fixed file: {exc}", step="fix", hint="check the file's permissions")
        result.findings = fixes.remaining
    else:
        fixes.fixed = [] if not show_diff else fixes.fixed
    return fixes


def _render(result, fmt: str, statistics: bool, unsafe_fixes: bool = False, fixed: int = 0) -> str:
    from mulint.report import github, json_report, sarif, text

    if fmt == "json":
        return json_report.render(result.findings, result.targets, result.errors)
    if fmt == "sarif":
        from mulint.rules.pages import load_pages, pages_dir

        return sarif.render(result.findings, list(load_pages(pages_dir()).values()), __version__)
    if fmt == "github":
        return github.render(result.findings)
    return text.render(result.findings, statistics=statistics, unsafe_fixes=unsafe_fixes, fixed=fixed)


class _errors:
    """Turn a MulintError (or any crash) into one clear message and exit code 2."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, (click.exceptions.Exit, click.exceptions.ClickException, SystemExit)):
            return False
        if self.verbose:
            traceback.print_exception(kind, exc, tb)
        if isinstance(exc, MulintError):
            click.echo(f"error: {exc}", err=True)
        else:
            click.echo(f"error: internal error: {kind.__name__}: {exc}\n  hint: rerun with --verbose and report "
                       "it with the traceback", err=True)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="mulint", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)  # click exits 1 on usage errors; 1 means findings here
    sys.exit(0)


if __name__ == "__main__":
    main()
