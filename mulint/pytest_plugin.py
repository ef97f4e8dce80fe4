"""mulint in a pytest run.

- The `mup_check` fixture: `assert mup_check(lambda w: build(cfg, width=w), optimizer_fn=make_opt).ok`;
  a failing assertion shows the findings as the command line prints them.
- `pytest --mulint`: every `targets` entry of `[tool.mulint]` becomes a test item, checked as
  `mulint check TARGET` checks it, with the same settings (mulint.engine.settings: one merge for every
  front-end; each model in a worker process, results cached), so CI needs no separate step. An item
  passes only when its models were analysed and found clean: a model file left unanalysed fails it,
  and a bad setting is a usage error.

Loaded through the `pytest11` entry point; importing it imports neither torch nor the analysis.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser) -> None:
    group = parser.getgroup("mulint", "µP checks with mulint")
    group.addoption(
        "--mulint",
        action="store_true",
        default=False,
        help="check the [tool.mulint] targets of pyproject.toml as test items",
    )


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
    from mulint.engine.config import find_config, load_config
    from mulint.engine.settings import settings_for
    from mulint.errors import MulintError

    try:  # a bad setting is a usage error, as under `mulint check`, never an INTERNALERROR traceback
        found = find_config(Path(str(config.rootpath)))
        if found is None:
            raise pytest.UsageError("--mulint: no pyproject.toml with a [tool.mulint] table above the rootdir")
        named = load_config(found).targets
        if not named:
            raise pytest.UsageError(f"--mulint: {found} has no `targets` in [tool.mulint]")
        settings = settings_for(config_path=found)  # the one merge `mulint check` makes, with no flags
    except MulintError as exc:
        raise pytest.UsageError(f"--mulint: {exc}") from None
    config_node = MulintConfigFile.from_parent(session, path=found)
    for name, target in zip(named, settings.paths):  # the settings hold each resolved against the config's folder
        items.append(
            MulintItem.from_parent(
                config_node, name=f"mulint[{name}]", target=target, settings=settings.with_paths([target])
            )
        )


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
        # No fixtures, as for a test function: plugins that read every item's funcargs in their hooks
        # (pytest-lsp's pytest_runtest_call) otherwise fail on mulint's items.
        self.funcargs: dict = {}
        self.add_marker("mulint")

    def runtest(self) -> None:
        from mulint.engine.checker import run_check
        from mulint.report import text
        from mulint.report.summary import error_lines, unanalysed_lines

        result = run_check(self.settings)
        lines = []
        if result.findings:
            lines.append(text.render(result.findings, fix_available=False))
        lines += error_lines(result.errors)
        # A model the run did not analyse is not a pass: a green item must mean it was checked.
        if result.unanalysed:
            lines += unanalysed_lines(result)
        if lines:
            raise MulintFindings("\n".join(lines))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, MulintFindings):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.settings.config_path or self.settings.root / "pyproject.toml", None, f"mulint {self.target}"
