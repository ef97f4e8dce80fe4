"""`mulint check`: find the targets, run the static rules here and each model in a worker, keep what is
not suppressed.

One direction: targets -> (static analysis | model jobs in workers) -> findings. No output here. This
process never imports user code (`mulint.engine.isolation` runs it elsewhere) and never imports torch.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mulint.engine.isolation import Job, Outcome, run_jobs, warm_up
from mulint.engine.options import JobOptions
from mulint.engine.settings import Settings
from mulint.errors import ErrorRecord, MulintError
from mulint.findings import Finding
from mulint.sources import is_regular, kind_of

# Folders that never hold the user's source. `build` and `dist` are skipped only when they are not
# a Python package themselves (`mymodels/build/` with an `__init__.py` is source).
SKIP_DIRS = {
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".venv",
    "venv",
    "env",
    ".env",
    "node_modules",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "site-packages",
}
OUTPUT_DIRS = {"build", "dist"}
# Worker errors of a discovered model that mean "not a model mulint can build alone", not a failure;
# and "refused": its import did what the static walk forbids (mulint.reading.guard), the same note as the walk's.
NOT_A_MODEL = {"no-width-knob", "needs-arguments", "refused"}


@dataclass
class CheckResult:
    findings: list[Finding] = field(default_factory=list)
    targets: list[dict] = field(default_factory=list)  # what was analysed, and how
    errors: list[ErrorRecord] = field(default_factory=list)
    unanalysed: list[dict] = field(default_factory=list)  # {"path", "reason", "hint"}: model files not analysed
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (target, what its code printed)
    skipped_dirs: list[str] = field(default_factory=list)
    # resolved path -> sha256 of each checked file before anything read it: a fix is made only on that text
    sources: dict[str, str | None] = field(default_factory=dict)
    # target -> where its time went (`add_time`): shown only under --verbose, since times vary run to run
    timings: dict[str, dict] = field(default_factory=dict)

    def add_time(self, target: str, phases: dict[str, float], **about) -> None:
        """Seconds per phase for one target (mulint's own, and the worker's from `mulint.steps`), added to
        what it has; ``about``: facts of the run such as ``cached=True``."""
        entry = self.timings.setdefault(target, {"phases": {}})
        for name, seconds in phases.items():
            entry["phases"][name] = entry["phases"].get(name, 0.0) + seconds
        entry.update(about)

    @property
    def models_analysed(self) -> int:
        return sum(t.get("mode") == "model" for t in self.targets)

    @property
    def files_static(self) -> int:
        return sum(t.get("mode") == "static" for t in self.targets)


def _is_package(path: Path) -> bool:
    return (path / "__init__.py").is_file()


def _python_files(directory: Path, exclude, skipped: list[str]) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(directory):
        kept = []
        for d in sorted(dirs):
            path = Path(root) / d
            hidden = d in SKIP_DIRS or d.startswith(".") or d.endswith(".egg-info")
            if hidden or (d in OUTPUT_DIRS and not _is_package(path)) or any(path.match(p) for p in exclude):
                skipped.append(str(path))
            else:
                kept.append(d)
        dirs[:] = kept
        for name in sorted(names):
            path = Path(root) / name
            if not name.endswith(".py") or name.startswith(".#") or any(path.match(p) for p in exclude):
                continue  # `.#model.py`: an editor's lock file, never source
            if os.path.lexists(path) and not os.path.exists(path):
                continue  # a dangling symlink: nothing to read
            files.append(path)
    return files


def expand(paths, exclude, skipped: list[str] | None = None) -> list[str]:
    """Directories become their Python files; files and PATH:NAME targets stay as given. A file named
    twice, or again through a symlink or a folder holding it, is kept once (its first spelling)."""
    out, seen = [], set()
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = [str(p) for p in _python_files(path, exclude, skipped if skipped is not None else [])]
        else:
            found = [text]
        for item in found:
            key = _identity(item)
            if key not in seen:
                seen.add(key)
                out.append(item)
    return out


def _identity(text: str) -> tuple:
    """What a target names, however it is spelled: the real file (and object), or the text itself."""
    from mulint.reading.targets import parse_target

    try:
        spec = parse_target(text)
    except MulintError:
        return ("text", text)
    if spec.path is None or not spec.path.exists():
        return ("text", text)
    return ("file", os.path.realpath(spec.path), spec.name)


def run_check(options: Settings, *, progress: Callable[[str], None] = lambda s: None) -> CheckResult:
    from mulint.fix.files import source_digest
    from mulint.reading.targets import parse_target

    result = CheckResult()
    jobs: list[Job] = []
    texts = expand(options.paths, options.exclude, result.skipped_dirs)
    heads = [text.rsplit(":", 1)[0] if not text.endswith(".py") else text for text in texts]
    if options.optimizer is not None and options.optimizer.path is not None:
        heads.append(options.optimizer.path)
    for head in heads:
        try:
            path = Path(head).resolve() if head.endswith(".py") else None
        except (OSError, RuntimeError):  # a symlink loop: reported as the target's own error below
            continue
        if path is not None:
            result.sources[str(path)] = source_digest(path)
    for text in texts:
        try:
            spec = parse_target(text)
            _check_exists(spec, text)
        except MulintError as exc:
            result.errors.append(ErrorRecord.of(exc, target=text))
            continue
        summary = _check_static(spec, options, result) if spec.path is not None else None
        for job in _model_jobs(spec, summary, options, result):
            if not _cached(job, options, result):
                if not jobs:
                    warm_up()  # the worker server imports torch while the other files are read
                jobs.append(job)
    _empty_directories(options, result)
    _run_model_jobs(jobs, options, result, progress)
    result.findings = _filter(result.findings, options)
    result.findings.sort(key=lambda f: f.sort_key)
    result.errors = merge_repeated(result.errors)
    return result


def _check_exists(spec, text: str) -> None:
    if spec.path is None:
        return
    if not spec.path.exists():
        raise MulintError(
            f"no such file or directory: {spec.path}",
            target=text,
            step="target",
            hint="check the path; targets are files, directories, path/to/file.py:NAME or package.module:NAME",
        )
    if spec.path.is_dir():
        raise MulintError(
            f"{spec.path} is a directory",
            target=text,
            step="target",
            hint="name a directory alone to check every file in it, or file.py:NAME for one model",
        )
    if spec.path.suffix != ".py":
        raise MulintError(
            f"{spec.path} is not a Python file",
            target=text,
            step="target",
            hint="mulint checks .py files; name them, or a directory holding them",
        )
    if not is_regular(spec.path):
        kind = kind_of(os.stat(spec.path).st_mode)
        raise MulintError(
            f"{spec.path} is {kind}, not a regular file: not read",
            target=text,
            step="target",
            hint="mulint reads only regular .py files; exclude it or name the real file",
        )


def _empty_directories(options: Settings, result: CheckResult) -> None:
    for text in options.paths:
        path = Path(text)
        if path.is_dir() and not _python_files(path, options.exclude, []):
            result.errors.append(
                ErrorRecord(
                    target=text,
                    step="target",
                    message=f"no Python files under {text}",
                    hint="check the path and the `exclude` setting",
                )
            )


def _check_static(spec, options: Settings, result: CheckResult):
    """Rules that read the source only (no import, no torch): safe on training scripts. Returns the
    file's summary, or None when the file cannot be read or parsed (then reported as an error)."""
    from mulint.engine.suppress import selected
    from mulint.reading.safety import summarize
    from mulint.reading.source_rules import check_source
    from mulint.rules import source_rules

    start = time.perf_counter()
    try:
        summary = summarize(spec.path)
        rules = [r for r in source_rules() if selected(r.code, options.select, options.ignore)]
        result.findings.extend(check_source(spec.path, rules))
        result.add_time(str(spec.path), {"static rules": time.perf_counter() - start})
    except MulintError as exc:
        result.errors.append(ErrorRecord.of(exc, target=str(spec.path)))
        return None
    except (RecursionError, MemoryError, ValueError, OSError, UnicodeError) as exc:
        result.errors.append(
            ErrorRecord(
                target=str(spec.path),
                step="parse",
                message=f"cannot read or parse {spec.path}: {type(exc).__name__}: {exc}",
                hint="the file must be valid Python source",
            )
        )
        return None
    result.targets.append(
        {
            "target": str(spec.path),
            "mode": "static",
            "import_safe": summary.import_safe,
            "models": summary.top_level_models,
        }
    )
    return summary


def _model_jobs(spec, summary, options: Settings, result: CheckResult) -> list[Job]:
    """The model targets of one CLI target: the named object, or the models a bare file defines."""
    job_options = JobOptions.for_check(options)
    if spec.name is not None:
        if options.no_exec:
            result.errors.append(
                ErrorRecord(
                    target=spec.label,
                    step="import",
                    message="--no-exec forbids importing model code",
                    hint="drop --no-exec to analyse the model",
                )
            )
            return []
        return [Job("check", spec.text, job_options)]
    if spec.path is None:
        result.errors.append(
            ErrorRecord(
                target=spec.label,
                step="target",
                message="a module target needs a NAME",
                hint=f"use {spec.module}:ClassName or {spec.module}:factory",
            )
        )
        return []
    if summary is None:
        return []  # could not be parsed: already an error
    for name, line, reason, hint in getattr(summary, "unanalysable", []):
        _not_analysed(result, spec.path, f"{name} (line {line}): {reason}", hint)
    defines_models = bool(summary.module_classes or summary.top_level_models)
    if not defines_models:
        return []
    if options.no_exec:
        _not_analysed(
            result,
            spec.path,
            "--no-exec: model files are not imported",
            "drop --no-exec to analyse the models it defines",
        )
        return []
    if not summary.import_safe:
        _not_analysed(
            result,
            spec.path,
            f"not imported: {summary.unsafe_message} at import time",
            f"name the model to import it anyway ({_named(spec.path, summary)}), or move that "
            f'code under `if __name__ == "__main__":`',
        )
        return []
    if not summary.top_level_models:
        _not_analysed(
            result,
            spec.path,
            "its nn.Module classes are components of no model it defines",
            f"name the model class or a factory as {spec.path}:NAME",
        )
        return []
    # Checked in the file's order (factories first): the ranking of top_level_models, most model-like
    # first, is for picking one model (inspect, coord, hints), not for the order of a report.
    in_file = {name: i for i, name in enumerate(summary.module_classes)}
    names = sorted(summary.top_level_models, key=lambda name: in_file.get(name, -1))
    return [Job("check", f"{spec.path}:{name}", job_options, discovered=True) for name in names]


def _named(path, summary) -> str:
    names = summary.top_level_models or summary.module_classes or ["NAME"]
    return " or ".join(f"{path}:{name}" for name in names[:2])


def _not_analysed(result: CheckResult, path, reason: str, hint: str) -> None:
    result.unanalysed.append({"path": str(path), "reason": reason, "hint": hint})


def _cached(job: Job, options: Settings, result: CheckResult) -> bool:
    """Take the cached result of an unchanged target: then no worker, no torch."""
    start = time.perf_counter()
    hit = _cache_lookup(job, options)
    lookup = {"cache lookup": time.perf_counter() - start} if options.cache else {}
    result.add_time(job.target, lookup, cached=hit is not None)
    if hit is None:
        return False
    findings, entry = hit
    result.findings.extend(findings)
    result.targets.append({**entry, "cached": True})
    return True


def _run_model_jobs(jobs: list[Job], options: Settings, result: CheckResult, progress) -> None:
    if not jobs:
        return
    from mulint.fix.context import prepare

    # While the first worker analyses its model, its file is parsed for the fixes planned after it (one
    # file: a folder's worth of parsed trees would be held in memory until the end).
    first = jobs[0].target.rsplit(":", 1)[0]
    started = functools.partial(prepare, [Path(first)] if first.endswith(".py") else [])
    for outcome in run_jobs(jobs, options.limits(), on_done=lambda o: progress(_done_line(o)), on_started=started):
        _take(outcome, options, result, progress)


def _done_line(outcome: Outcome) -> str:
    state = "failed" if outcome.error else "done"
    return f"{outcome.job.target}: {state} in {outcome.seconds:.1f} s"


def _take(outcome: Outcome, options: Settings, result: CheckResult, progress=lambda s: None) -> None:
    job = outcome.job
    if outcome.error is not None:  # the worker's time, not broken down: its phases come with a result
        result.add_time(job.target, {"worker": outcome.seconds}, failed=True)
    if outcome.output.strip():
        result.outputs.append((job.target, outcome.output))
    if outcome.error is not None:
        error = outcome.error
        if job.discovered and error.kind in NOT_A_MODEL:
            path = job.target.rsplit(":", 1)[0]
            _not_analysed(result, path, f"{job.target.rsplit(':', 1)[1]}: {error.message}", error.hint)
        else:
            result.errors.append(error)
        return
    value = outcome.value
    result.findings.extend(value["findings"])
    result.targets.append(value["target"])
    worker = value.get("timings") or {}
    # the fork (the first check: the worker server's start), the worker's set-up, the result's way back
    result.add_time(job.target, {"worker start": max(0.0, outcome.seconds - sum(worker.values())), **worker})
    start = time.perf_counter()
    _cache_store(job, options, value, progress)
    if options.cache:
        result.add_time(job.target, {"cache store": time.perf_counter() - start})


# --- cache -------------------------------------------------------------------------------------


def _cache_options(job: Job) -> dict:
    from mulint.profiles import profile_digest

    return {**job.options.as_key(), "cwd": os.getcwd(), "profile_digest": profile_digest(job.options.profile)}


def _target_path(job: Job) -> Path | None:
    head = job.target.rsplit(":", 1)[0]
    return Path(head) if head.endswith(".py") or "/" in head else None


def _cache_lookup(job: Job, options: Settings):
    if not options.cache:
        return None
    from mulint.engine import cache

    return cache.lookup(job.target, _target_path(job), _cache_options(job))


def _cache_store(job: Job, options: Settings, value: dict, progress=lambda s: None) -> None:
    if not options.cache:
        return
    from mulint.engine import cache

    why = cache.uncacheable(value.get("observed"))
    if why:  # shown under --verbose: a later run analyses this target again
        progress(f"{job.target}: not cached: its code {'; '.join(why)}")
        return
    deps = [Path(p) for p in value.get("deps", [])]
    cache.store_result(
        job.target,
        _target_path(job),
        _cache_options(job),
        value["findings"],
        value["target"],
        deps,
        started_ns=value.get("deps_since_ns"),
        observed=value["observed"],  # its shape checked by `uncacheable` above
    )


# --- findings and errors --------------------------------------------------------------------------


def _filter(findings: list[Finding], options: Settings) -> list[Finding]:
    from mulint.engine.suppress import filter_findings

    return filter_findings(
        findings,
        select=options.select,
        ignore=options.ignore,
        per_file_ignores=options.per_file_ignores,
        root=options.root or Path.cwd(),
    )


def merge_repeated(errors: list[ErrorRecord]) -> list[ErrorRecord]:
    """One record per distinct failure: two models of a file that fail to import alike are one error
    naming both."""
    merged: dict[tuple, ErrorRecord] = {}
    for error in errors:
        key = (error.step, error.message, error.hint)
        if key in merged:
            first = merged[key]
            if error.target not in first.target.split(", "):
                merged[key] = first.with_target(f"{first.target}, {error.target}")
        else:
            merged[key] = error
    return list(merged.values())


def checked_files(options: Settings) -> set[Path]:
    """The files named or discovered: the only ones a fix may edit (not the installed packages a
    model's code may come from)."""
    from mulint.reading.targets import parse_target

    files = set()
    for text in expand(options.paths, options.exclude):
        try:
            spec = parse_target(text)
        except MulintError:
            continue
        if spec.path is not None and spec.path.is_file():  # not a missing file or a symlink loop
            files.add(Path(spec.path))
    if options.optimizer is not None and options.optimizer.path is not None and Path(options.optimizer.path).is_file():
        files.add(Path(options.optimizer.path))
    return files
