"""`mulint check`: find the targets, analyse each, run the rules, keep what is not suppressed.

One direction: targets -> (model analysis | static analysis) -> rules -> findings. No output here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mulint.errors import MulintError
from mulint.findings import Finding

SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "env", ".env", "node_modules", ".tox",
             ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist", "site-packages"}


@dataclass
class CheckOptions:
    paths: list[str]
    widths: list[int] | None = None
    width_arg: str | None = None
    select: list[str] | None = None
    ignore: list[str] | None = None
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    no_exec: bool = False
    optimizer: str | None = None  # PATH:NAME of a function taking the model and returning its optimizer
    coord: bool = False  # also run the dynamic coordinate check (MU9xx)
    cache: bool = True  # reuse results for unchanged model code
    root: Path | None = None  # the config's directory, for per-file-ignores


@dataclass
class CheckResult:
    findings: list[Finding] = field(default_factory=list)
    targets: list[dict] = field(default_factory=list)  # what was analysed, and how
    errors: list[dict] = field(default_factory=list)


def _python_files(directory: Path, exclude: list[str]) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(".") and not d.endswith(".egg-info"))
        for name in sorted(names):
            path = Path(root) / name
            if name.endswith(".py") and not any(path.match(p) for p in exclude):
                files.append(path)
    return files


def expand(paths: list[str], exclude: list[str]) -> list[str]:
    """Directories become their Python files; files and PATH:NAME targets stay as given."""
    out = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            out.extend(str(p) for p in _python_files(path, exclude))
        else:
            out.append(text)
    return out


def run_check(options: CheckOptions, *, progress: Callable[[str], None] = lambda s: None) -> CheckResult:
    from mulint.load.targets import parse_target

    result = CheckResult()
    for text in expand(options.paths, options.exclude):
        try:
            spec = parse_target(text)
        except MulintError as exc:
            result.errors.append(_error(exc.for_target(text)))
            continue
        if spec.path is not None and spec.path.suffix == ".py" and spec.path.exists():
            _check_static(spec, options, result)
        if spec.name is None and spec.path is not None and options.no_exec:
            continue
        _check_models(spec, options, result, progress)
    result.findings = _filter(result.findings, options)
    result.findings.sort(key=lambda f: f.sort_key)
    return result


def _check_static(spec, options: CheckOptions, result: CheckResult) -> None:
    """Rules that read the source only (no import, no torch): safe on training scripts."""
    from mulint.load.safety import summarize
    from mulint.rules import SOURCE_RULES
    from mulint.static import check_source
    from mulint.suppress import selected

    try:
        summary = summarize(spec.path)
        rules = [r for r in SOURCE_RULES if selected(r.code, options.select, options.ignore)]
        result.findings.extend(check_source(spec.path, rules))
    except MulintError as exc:
        result.errors.append(_error(exc.for_target(spec.label)))
        return
    result.targets.append({"target": str(spec.path), "mode": "static",
                           "import_safe": summary.import_safe, "models": summary.top_level_models})


def _check_models(spec, options: CheckOptions, result: CheckResult, progress) -> None:
    from mulint.load.safety import summarize
    from mulint.load.targets import resolve

    names = [spec.name] if spec.name else []
    if spec.name is None and spec.path is not None:
        try:
            summary = summarize(spec.path)
        except MulintError:
            return  # already reported by the static pass
        if not summary.import_safe or not summary.top_level_models:
            return  # static rules only: importing it could run a training script
        names = summary.top_level_models
    if spec.path is not None and names and _all_cached(spec, names, options, result):
        return  # unchanged model code: no import of torch or of the model
    if options.no_exec:
        result.errors.append(_error(MulintError("--no-exec forbids importing model code", target=spec.label,
                                                step="import", hint="drop --no-exec to analyse the model")))
        return
    try:
        resolved = resolve(spec, allow_exec=True)
    except MulintError as exc:
        result.errors.append(_error(exc.for_target(spec.label)))
        return
    for target in resolved:
        progress(target.label)
        try:
            result.findings.extend(check_model(target, options, result))
        except MulintError as exc:
            result.errors.append(_error(exc.for_target(target.label)))


def _cache_key(label: str, path: Path | None, options: CheckOptions) -> str:
    from mulint import cache

    files = cache.source_files(path)
    if options.optimizer:
        files += cache.source_files(Path(options.optimizer.rsplit(":", 1)[0]))
    return cache.key_for(label, files, {
        "widths": options.widths, "width_arg": options.width_arg, "optimizer": options.optimizer,
        "coord": options.coord, "select": options.select, "ignore": options.ignore, "cwd": os.getcwd()})


def _all_cached(spec, names: list[str], options: CheckOptions, result: CheckResult) -> bool:
    from mulint import cache

    if not options.cache:
        return False
    hits = [cache.load(_cache_key(f"{spec.path}:{name}", spec.path, options)) for name in names]
    if any(hit is None for hit in hits):
        return False
    for findings, entry in hits:
        result.findings.extend(findings)
        result.targets.append({**entry, "cached": True})
    return True


def check_model(target, options: CheckOptions, result: CheckResult) -> list[Finding]:
    """Analyse one model and run the model rules, or reuse the cached result for unchanged code."""
    from mulint import cache

    key = None
    if options.cache:
        key = _cache_key(target.label, target.path, options)
        hit = cache.load(key)
        if hit is not None:
            findings, entry = hit
            result.targets.append({**entry, "cached": True})
            return findings
    findings = _analyse_and_check(target, options, result)
    if key is not None:
        cache.store(key, findings, result.targets[-1])
    return findings


def _analyse_and_check(target, options: CheckOptions, result: CheckResult) -> list[Finding]:
    from mulint.analysis.model import analyse_model
    from mulint.rules import MODEL_RULES
    from mulint.suppress import selected

    structure = analyse_model(target, widths=options.widths, width_arg=options.width_arg,
                              optimizer=options.optimizer)
    facts = structure.facts
    if options.coord and facts.traced:
        from mulint.analysis.model import _resolve_function
        from mulint.coord import coord_facts, run_coord

        coord = run_coord(target, structure, optimizer=options.optimizer, resolve_optimizer=_resolve_function)
        facts.coord, facts.coord_widths = coord_facts(coord, structure), coord.widths
    result.targets.append({"target": target.label, "mode": "model", "width_knob": facts.width_knob,
                           "widths": facts.widths, "numeric_widths": facts.numeric_widths,
                           "parameters": len(facts.params), "notes": facts.notes,
                           "optimizer": facts.optimizer.label if facts.optimizer else None})
    findings = []
    for rule in MODEL_RULES:
        if selected(rule.code, options.select, options.ignore):
            findings.extend(rule().check(facts))
    return findings


def _filter(findings: list[Finding], options: CheckOptions) -> list[Finding]:
    from mulint.suppress import filter_findings

    return filter_findings(findings, select=options.select, ignore=options.ignore,
                           per_file_ignores=options.per_file_ignores, root=options.root or Path.cwd(),
                           read_lines=_read_lines)


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _error(exc: MulintError) -> dict:
    return {"target": exc.target, "step": exc.step, "message": exc.message, "hint": exc.hint}
