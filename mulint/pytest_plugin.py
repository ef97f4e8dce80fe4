"""mulint in a pytest run.

- The `mup_check` fixture: `assert mup_check(lambda w: build(cfg, width=w), optimizer_fn=make_opt).ok`;
  a failing assertion shows the findings as the command line prints them.
- `pytest --mulint`: every `targets` entry of `[tool.mulint]` becomes a test item, checked as
  `mulint check TARGET` checks it (each model in a worker process, results cached), so CI needs no
  separate step.

Loaded through the `pytest11` entry point; importing it imports neither torch nor the analysis.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser) -> None:
    group = parser.getgroup("mulint", "µP checks with mulint")
    group.addoption("--mulint", action="store_true", default=False,
                    help="check the [tool.mulint] targets of pyproject.toml as test items")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "mulint: a µP check of a [tool.mulint] target (pytest --mulint)")


@pytest.fixture
def mup_check():
    """`mulint.check`, for tests. A report with findings is also printed: pytest shows a failed test's
    output in full, where it cuts the report's repr in the assertion message."""
    from mulint.api import check

    def run(*args, **kwargs):
        report = check(*args, **kwargs)
        if not report.ok:
            print(report)
        return report

    return run


def pytest_collection_modifyitems(session, config, items) -> None:
    if not config.getoption("mulint"):
        return
    from mulint.config import find_config, load_config

    found = find_config(Path(str(config.rootpath)))
    if found is None:
        raise pytest.UsageError("--mulint: no pyproject.toml with a [tool.mulint] table above the rootdir")
    settings = load_config(found)
    if not settings.targets:
        raise pytest.UsageError(f"--mulint: {found} has no `targets` in [tool.mulint]")
    config_node = MulintConfigFile.from_parent(session, path=found)
    for target in settings.targets:
        items.append(MulintItem.from_parent(config_node, name=f"mulint[{target}]", target=target, settings=settings))


class MulintConfigFile(pytest.File):
    """The pyproject.toml the targets come from: the items' parent, so their ids read
    `pyproject.toml::mulint[model.py:GPT]`."""

    def collect(self):
        return []


class MulintFindings(Exception):
    """A target that has findings or could not be analysed; the message is the command line's output."""


class MulintItem(pytest.Item):
    def __init__(self, *, target: str, settings, **kwargs) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.settings = settings
        self.add_marker("mulint")

    def runtest(self) -> None:
        from mulint.checker import CheckOptions, run_check
        from mulint.report import text

        settings = self.settings
        head = self.target.split(":")[0]
        path = settings.root / self.target if not Path(head).is_absolute() and (settings.root / head).exists() \
            else Path(self.target)
        options = CheckOptions(paths=[str(path)], widths=settings.widths, width_arg=settings.width_arg,
                               select=settings.select, ignore=settings.ignore,
                               per_file_ignores=settings.per_file_ignores, exclude=settings.exclude,
                               optimizer=settings.optimizer, root=settings.root,
                               lr_scale_keys=settings.lr_scale_keys, lr_scale=settings.lr_scale)
        if settings.timeout:
            options.timeout = settings.timeout
        if settings.max_memory:
            options.max_memory = settings.max_memory
        result = run_check(options)
        lines = []
        if result.findings:
            lines.append(text.render(result.findings, fix_available=False))
        for error in result.errors:
            hint = f"\n  hint: {error['hint']}" if error.get("hint") else ""
            lines.append(f"error: {error['target']}: [{error['step']}] {error['message']}{hint}")
        if settings.require_models:
            lines += [f"not analysed: {item['path']}: {item['reason']}" for item in result.unanalysed]
        if lines:
            raise MulintFindings("\n".join(lines))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, MulintFindings):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.settings.root / "pyproject.toml", None, f"mulint {self.target}"
