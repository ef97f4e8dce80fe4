"""Running one model target for `inspect` and `coord`: the job of the target named (or of the one
model a bare file defines), run in a worker, its failure raised as the MulintError it reported."""

from __future__ import annotations

import click

from mulint.engine.isolation import Job, run_jobs
from mulint.engine.options import JobOptions
from mulint.errors import MulintError
from mulint.report.escape import keep_lines, one_line
from mulint.report.summary import quoted_output


def one_model_job(kind: str, target: str, options: JobOptions) -> Job:
    """The job of `inspect` or `coord`: a named target, or the one model a bare file defines."""
    from mulint.reading.safety import summarize
    from mulint.reading.targets import parse_target

    spec = parse_target(target)
    if spec.path is not None and not spec.path.exists():
        raise MulintError(
            f"no such file: {spec.path}",
            target=target,
            step="target",
            hint="targets are path/to/file.py:NAME or package.module:NAME",
        )
    if spec.name is None:
        if spec.path is None or spec.path.suffix != ".py":
            raise MulintError(
                "name the model as PATH:NAME",
                target=target,
                step="target",
                hint="e.g. model.py:GPT or package.module:make_model",
            )
        summary = summarize(spec.path)
        if not summary.import_safe:
            raise MulintError(
                f"not imported: {summary.unsafe_message} at import time",
                target=target,
                step="import",
                hint=f"name the model explicitly ({spec.path}:NAME) to import it anyway",
            )
        if not summary.top_level_models:
            raise MulintError(
                "no model class or factory found",
                target=target,
                step="target",
                hint="name one explicitly as path/to/file.py:NAME",
            )
        return Job(kind, f"{spec.path}:{summary.top_level_models[0]}", options, discovered=True)
    return Job(kind, target, options)


def run_one_job(job, limits, verbose: bool, on_progress=lambda job, n: None):
    """Run one job in a worker; its failure is raised as the MulintError it reported."""
    [outcome] = run_jobs([job], limits, on_progress=on_progress)
    if verbose and outcome.output.strip():
        echo_output(job.target, outcome.output)
    if outcome.error is not None:
        error = outcome.error
        raise MulintError(error.message + quoted_output(error), target=error.target, step=error.step, hint=error.hint)
    return outcome.value


def echo_output(label: str, output: str) -> None:
    click.echo(f"output of {one_line(label)}:", err=True)
    for line in output.rstrip().splitlines():
        click.echo(f"  | {keep_lines(line)}", err=True)
