"""Running one model target for `inspect` and `coord`: the job of the target named (or of the one
model a bare file defines), run in a worker, its failure raised as the MulintError it reported; and
inspect's options, completed from `[tool.mulint]` as `check` completes its own."""

from __future__ import annotations

import click

from mulint.errors import MulintError
from mulint.isolation import DEFAULT_TIMEOUT, Job, Limits, default_jobs, run_jobs
from mulint.report.summary import quoted_output


def one_model_job(kind: str, target: str, options: dict) -> Job:
    """The job of `inspect` or `coord`: a named target, or the one model a bare file defines."""
    from mulint.load.safety import summarize
    from mulint.load.targets import parse_target

    spec = parse_target(target)
    if spec.path is not None and not spec.path.exists():
        raise MulintError(f"no such file: {spec.path}", target=target, step="target",
                          hint="targets are path/to/file.py:NAME or package.module:NAME")
    if spec.name is None:
        if spec.path is None or spec.path.suffix != ".py":
            raise MulintError("name the model as PATH:NAME", target=target, step="target",
                              hint="e.g. model.py:GPT or package.module:make_model")
        summary = summarize(spec.path)
        if not summary.import_safe:
            raise MulintError(f"not imported: {summary.unsafe_message} at import time", target=target, step="import",
                              hint=f"name the model explicitly ({spec.path}:NAME) to import it anyway")
        if not summary.top_level_models:
            raise MulintError("no model class or factory found", target=target, step="target",
                              hint="name one explicitly as path/to/file.py:NAME")
        return Job(kind, f"{spec.path}:{summary.top_level_models[0]}", options, discovered=True)
    return Job(kind, target, options)


def run_one_job(job, limits, verbose: bool, on_progress=lambda job, n: None):
    """Run one job in a worker; its failure is raised as the MulintError it reported."""
    [outcome] = run_jobs([job], limits, on_progress=on_progress)
    if verbose and outcome.output.strip():
        echo_output(job.target, outcome.output)
    if outcome.error is not None:
        error = outcome.error
        raise MulintError(error["message"] + quoted_output(error), target=error["target"], step=error["step"],
                          hint=error["hint"])
    return outcome.value


def echo_output(label: str, output: str) -> None:
    click.echo(f"output of {label}:", err=True)
    for line in output.rstrip().splitlines():
        click.echo(f"  | {line}", err=True)


def limits_for(jobs, timeout, max_memory, config=None):
    return Limits(timeout=timeout or (config.timeout if config and config.timeout else DEFAULT_TIMEOUT),
                  max_memory=max_memory or (config.max_memory if config else None),
                  jobs=jobs or (config.jobs if config and config.jobs else default_jobs()))


def inspect_options(target: str, *, widths, width_arg, optimizer, profile):
    """(the inspect job's options, the config they were completed from): what is not given on the command
    line comes from the `[tool.mulint]` found above the target's file, so inspect shows the numbers
    `check` judges (the same optimizer, lr-scale keys, widths and profile)."""
    from pathlib import Path

    from mulint.config import find_config, load_config

    start = Path(target.split(":")[0])
    config_file = find_config(start if start.exists() else Path.cwd())
    config = load_config(config_file) if config_file else None
    options = {"widths": widths or (config.widths if config else None),
               "width_arg": width_arg or (config.width_arg if config else None),
               "optimizer": optimizer or (config.optimizer if config else None),
               "lr_scale_keys": config.lr_scale_keys if config else [],
               "lr_scale": config.lr_scale if config else "auto",
               "profile": chosen_profile(profile, config)}
    return options, config


def chosen_profile(profile: str | None, config) -> str:
    """As `check` chooses it: the profile named, else the config's (a file relative to its pyproject.toml),
    else mup; an unknown one is a usage error before anything runs."""
    from pathlib import Path

    from mulint.profiles import is_profile_file, load_profile

    if profile is None and config and config.profile:
        profile = config.profile if not is_profile_file(config.profile) else str(config.root / config.profile)
    profile = str(Path(profile).resolve()) if profile and is_profile_file(profile) else (profile or "mup")
    load_profile(profile)
    return profile
