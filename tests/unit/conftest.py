"""The fast tier runs on plain data: rules, reporters, settings and fixers without torch. A run of this
folder alone that ends with torch imported fails, so a slow import cannot creep in unnoticed."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def pytest_sessionfinish(session, exitstatus):
    items = getattr(session, "items", [])
    alone = items and all(Path(str(item.fspath)).resolve().is_relative_to(HERE) for item in items)
    if alone and "torch" in sys.modules and exitstatus == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.ensure_newline()
        reporter.write_line("tests/unit imported torch: the fast tier must run without it", red=True)
        session.exitstatus = 1
