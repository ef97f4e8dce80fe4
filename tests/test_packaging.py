"""An installed mulint (a wheel, as pre-commit installs it) carries every package and the rule pages."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_package_list_names_every_package():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mulint").rglob("__init__.py")}
    assert found | {"mulint.rule_pages"} == listed


@pytest.mark.slow
def test_wheel_carries_the_rule_pages(tmp_path):
    pytest.importorskip("setuptools")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("mulint-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    pages = {p.name for p in (ROOT / "rules").glob("MU*.md")}
    assert pages and {f"mulint/rule_pages/{p}" for p in pages} <= names
    assert "mulint/fix/__init__.py" in names and "mulint/cli.py" in names
