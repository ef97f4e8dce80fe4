"""Settings: ONE merge of defaults < `[tool.mulint]` < the CLI's flags or the API's / pytest plugin's
arguments, validated in one place, into a frozen `Settings` that `mulint check`, `mulint.check` and
`pytest --mulint` all run by (before, three merges had drifted apart).

Every value passes the same parser (mulint.engine.config's) whichever layer gives it, and an error names it
as the user wrote it (`--timeout`, `[tool.mulint] timeout`, `timeout=`). A setting that would switch
the analysis off in silence (a selection that leaves no rule the run can apply, a non-finite
timeout, a coordinate check of zero steps) is an error, never a pass.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mulint.engine.config import HINT, KEYS, Config, find_config, load_config
from mulint.engine.isolation import DEFAULT_TIMEOUT, Limits, default_jobs
from mulint.errors import MulintError
from mulint.reading.functions import FunctionRef

DEFAULT_IDLE_MINUTES = 30.0


@dataclass(frozen=True)
class Settings:
    """Everything a run is told, after the merge; build it with `build_settings`. Lists are tuples so that
    no front-end can change a setting after it was validated."""

    paths: tuple[str, ...] = ()  # the targets: files, directories, PATH:NAME
    root: Path = field(default_factory=Path.cwd)  # the config's directory: per-file-ignores are relative to it
    config_path: Path | None = None  # the pyproject.toml read, if any
    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] | None = None
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    widths: tuple[int, ...] | None = None
    width_arg: str | None = None
    optimizer: FunctionRef | None = None  # a function taking the model and returning its optimizer
    exclude: tuple[str, ...] = ()
    format: str = "text"
    timeout: float = DEFAULT_TIMEOUT  # seconds per model target
    max_memory: int | None = None  # bytes per worker (None: a share of the machine)
    jobs: int = field(default_factory=default_jobs)  # model workers at once
    require_models: bool = False
    lr_scale_keys: tuple[str, ...] = ()  # param-group keys the training loop multiplies lr by
    lr_scale: str = "auto"  # whether they are applied: read from the code, or "applied" / "ignored"
    profile: str = "mup"  # a shipped profile's name, or the absolute path of a .toml
    depth_arg: str | None = None  # the depth knob's name (found as the width knob is when None)
    depth: bool = True  # judge how the model scales with depth when it has a depth knob
    daemon: bool = False  # check through the warm server (the thin entry acts on it: mulint.entry)
    preload: tuple[str, ...] = ()  # modules the warm server imports in advance
    idle_timeout: float = DEFAULT_IDLE_MINUTES  # minutes before an idle warm server exits
    no_exec: bool = False
    coord: bool = False  # also run the dynamic coordinate check (MU9xx)
    cache: bool = True  # reuse results for unchanged model code

    def limits(self) -> Limits:
        return Limits(timeout=self.timeout, max_memory=self.max_memory, jobs=self.jobs)

    def with_paths(self, paths) -> Settings:
        """The same settings for other targets (a pytest item checks one target of the config's)."""
        return dataclasses.replace(self, paths=tuple(paths))


def _flag(value, bad):
    if not isinstance(value, bool):
        bad("must be True or False")
    return value


# Values that only the CLI and the API give (no [tool.mulint] key): how each is parsed.
_RUN_ONLY = {"no_exec": _flag, "coord": _flag, "cache": _flag}


def _label(source: str, name: str) -> str:
    if source == "api":
        return f"{name}="
    return "--" + {"lr_scale_keys": "lr-scale-key"}.get(name, name.replace("_", "-"))


def build_settings(
    config: Config | None = None,
    *,
    source: str = "cli",
    paths=(),
    fixing: bool = False,
    one_model: bool = False,
    **given,
) -> Settings:
    """THE merge: defaults < `config` (the parsed `[tool.mulint]`) < `given` (the CLI's flags or the
    API's / plugin's arguments; None means not given). `source` ("cli" or "api") says how an error
    names a given value. `paths` given replace the config's `targets`. `fixing` (--fix, --diff):
    the base width is the model's default, so no widths are taken. `one_model` (inspect, coord): no
    rules run, so the rule selection is not judged."""
    values: dict = {}
    where: dict[str, str] = {}  # field -> how the user wrote the setting, for messages
    if config is not None:
        unset = Config(root=config.root)
        for key, (name, _) in KEYS.items():
            value = getattr(config, name)
            if value != getattr(unset, name):  # `select = []` is set (to nothing), not unset
                values[name] = value
                where[name] = f"[tool.mulint] {key}" + (f" (in {config.path})" if config.path else "")
    parsers = {**{name: parse for name, parse in KEYS.values()}, **_RUN_ONLY}
    for name, value in given.items():
        if name not in parsers or name == "targets":
            raise TypeError(f"build_settings() got an unknown setting: {name}")
        if value is None:
            continue
        label = _label(source, name)

        def bad(why: str, label: str = label) -> None:
            raise MulintError(
                f"{label}: {why}",
                step="config",
                hint="the command's --help lists its options" if source == "cli" else HINT,
            )

        values[name] = parsers[name](value, bad)
        where[name] = label
    if fixing:
        if where.get("widths", "").startswith("--"):
            raise MulintError(
                "--fix and --diff take the base width from the model's default; drop --widths", step="config"
            )
        values.pop("widths", None)
    root = config.root if config is not None else Path.cwd()
    targets = tuple(paths) or tuple(_from_root(root, t) for t in values.pop("targets", []))
    values.pop("targets", None)
    if not one_model:
        _check_selection(values, where)
        _check_per_file_ignores(values, where, root)
    values["profile"] = _profile(values.get("profile"), where.get("profile", ""), root)
    if values.get("optimizer") is not None:
        values["optimizer"] = parse_function(values["optimizer"], where["optimizer"], "--optimizer")
    frozen: dict[str, Any] = {name: tuple(v) if isinstance(v, list) else v for name, v in values.items()}
    if "per_file_ignores" in frozen:
        frozen["per_file_ignores"] = {glob: tuple(codes) for glob, codes in frozen["per_file_ignores"].items()}
    return Settings(paths=targets, root=root, config_path=config.path if config else None, **frozen)


def parse_function(text: str, where: str, flag: str) -> FunctionRef:
    """A function named as path/to/file.py:NAME or package.module:NAME, parsed once here; a usage error
    naming the setting (`where`) when it names none."""
    try:
        return FunctionRef.parse(text, flag=flag)
    except MulintError as exc:
        raise MulintError(f"{where}: {exc.message}", step="config", hint=exc.hint) from exc


def _from_root(root: Path, target: str) -> str:
    """A config target is relative to the config's directory when it names something there."""
    head = target.split(":")[0]
    return str(root / target) if not Path(head).is_absolute() and (root / head).exists() else target


def _check_selection(values: dict, where: dict[str, str]) -> None:
    """A selection that leaves no rule that this run can apply switches the analysis off: an error,
    never "All checks passed!". The coordinate check's rules run only with --coord, and --no-exec
    runs the static rules only."""
    from mulint.engine.suppress import selected
    from mulint.rules import all_rules

    select, ignore = values.get("select"), values.get("ignore")
    chosen = [rule for rule in all_rules() if selected(rule.code, select, ignore)]
    runnable = [
        rule
        for rule in chosen
        if (values.get("coord") or rule.judged_on != "coord")
        and (not values.get("no_exec") or rule.judged_on == "static")
    ]
    if runnable:
        return
    named = (
        " with ".join(
            f"{where[name]} = {','.join(values[name]) or '(empty)'}" for name in ("select", "ignore") if name in where
        )
        or "the default selection"
    )
    if not chosen:
        raise MulintError(
            f"{named}: no rule is left to check",
            step="config",
            hint="name rule codes or prefixes, e.g. MU1,MU201 (`mulint rule` lists them)",
        )
    codes = ", ".join(rule.code for rule in chosen)
    if values.get("no_exec"):
        why = f"{where.get('no_exec', 'no_exec')} runs the static rules only, and none of {codes} is one"
        hint = "drop --no-exec, or select a static rule (`mulint rule` lists them as static)"
    else:
        why = f"{codes} run only with the coordinate check"
        hint = "add --coord (coord=True from Python), or select other rules"
    raise MulintError(f"{named}: nothing would be checked: {why}", step="config", hint=hint)


def _check_per_file_ignores(values: dict, where: dict[str, str], root: Path) -> None:
    """A per-file-ignores pattern that matches any file (`*`, `**/*.py`) and ignores every selected rule
    switches the analysis off as `ignore = ["ALL"]` does."""
    from mulint.engine.suppress import per_file_ignored, selected
    from mulint.rules import all_rules

    codes = [rule.code for rule in all_rules() if selected(rule.code, values.get("select"), values.get("ignore"))]
    probes = [str(root / "mulint_probe.py"), str(root / "a" / "b" / "mulint_probe.py")]
    for glob, ignored in (values.get("per_file_ignores") or {}).items():
        if glob.startswith("!"):
            continue  # spares the files it names: "!models/*" = ["ALL"] checks the models only
        if all(per_file_ignored(code, probe, {glob: ignored}, root) for code in codes for probe in probes):
            raise MulintError(
                f'{where["per_file_ignores"]}: "{glob}" = {list(ignored)} ignores every rule in every '
                "file: nothing would be checked",
                step="config",
                hint="narrow the pattern (e.g. tests/*) or the codes; `ignore` switches rules off",
            )


def _profile(name: str | None, where: str, root: Path) -> str:
    """The profile by its name, or a .toml's absolute path (relative to the config's directory when the
    config names it); loaded here, so a bad profile is a usage error before anything runs."""
    from mulint.profiles import DEFAULT, is_profile_file, load_profile

    if not name:
        return DEFAULT
    if is_profile_file(name):
        base = root if where.startswith("[tool.mulint]") else Path.cwd()
        name = str((base / name).resolve())
    try:
        load_profile(name)
    except MulintError as exc:
        raise MulintError(f"{where}: {exc.message}", step="config", hint=exc.hint) from exc
    return name


def settings_for(paths=(), *, config_path: Path | None = None, **given) -> Settings:
    """The settings of a run: the `[tool.mulint]` of `config_path`, or the one found upwards from the
    first path (else the working directory), merged with `given`."""
    if config_path is None:
        first = Path(str(paths[0]).split(":")[0]) if paths else None
        config_path = find_config(first if first is not None and first.exists() else Path.cwd())
    config = load_config(config_path) if config_path else None
    return build_settings(config, paths=paths, **given)


# `mulint transfer` / `mulint.transfer`: steps per trial, seeds per width and lr.
TRANSFER_STEPS = (10, 100_000)
TRANSFER_SEEDS = (1, 20)


def check_transfer_run(
    steps, seeds, lr, gpus_per_trial=0.0, *, source: str = "cli", knob: str = "lr", minutes: float = 6.0
) -> None:
    """Each value in range, or a MulintError naming it, before anything is imported or trained."""
    from mulint.sweep.knobs import KNOBS

    if knob not in KNOBS:
        raise MulintError(f"{_label(source, 'knob')}: must be one of {', '.join(KNOBS)}, not {knob!r}", step="config")
    for name, value, (low, high) in (("steps", steps, TRANSFER_STEPS), ("seeds", seeds, TRANSFER_SEEDS)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise MulintError(
                f"{_label(source, name)}: must be an integer from {low} to {high}, not {value!r}", step="config"
            )
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0 or not math.isfinite(lr):
        raise MulintError(f"{_label(source, 'lr')}: must be a positive, finite number, not {lr!r}", step="config")
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 < minutes < math.inf:
        raise MulintError(
            f"{_label(source, 'budget')}: must be a positive number of minutes, not {minutes!r}", step="config"
        )
    if not (isinstance(gpus_per_trial, (int, float)) and 0 <= gpus_per_trial < math.inf):
        raise MulintError(
            f"{_label(source, 'gpus-per-trial')}: must be 0 or more, not {gpus_per_trial!r}", step="config"
        )


# `mulint coord` / `mulint.coord`: steps and seeds per width, and the default optimizer's lr.
COORD_STEPS = (1, 50)
COORD_SEEDS = (1, 20)


def check_coord_run(steps, seeds, lr, *, source: str = "cli") -> None:
    """Zero steps would train nothing and pass every layer: each value in range, or a MulintError naming it."""
    for name, value, (low, high) in (("steps", steps, COORD_STEPS), ("seeds", seeds, COORD_SEEDS)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise MulintError(
                f"{_label(source, name)}: must be an integer from {low} to {high}, not {value!r}", step="config"
            )
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0 or not math.isfinite(lr):
        raise MulintError(f"{_label(source, 'lr')}: must be a positive, finite number, not {lr!r}", step="config")
