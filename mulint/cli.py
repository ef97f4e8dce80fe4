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
