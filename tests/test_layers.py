"""The package's layers as a checked contract: the import contracts of pyproject.toml hold, the parent
process of `mulint check` stays free of torch, and no module reaches into another's private names."""

import os
import subprocess
import sys

import pytest
from conftest import EXAMPLES, ROOT, parent_modules

HEAVY = {"torch", "numpy"}  # seconds of import each: only workers may pay for them


def test_the_import_contracts_hold():
    """Layers top to bottom, rules/reporters/fixers without torch, no cycles (pyproject.toml)."""
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(
        [lint, "--no-cache", "--no-logo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.mark.slow
def test_the_check_parent_never_imports_torch_with_the_cache_cold_or_warm(tmp_path):
    """Cold, the worker builds and traces the model; warm, the cached result is read. The parent
    imports neither torch nor numpy in either case."""
    cache = tmp_path / "cache"
    env = {**os.environ, "MULINT_CACHE_DIR": str(cache)}
    target = str(EXAMPLES / "mlp_sp.py")
    cold, cold_modules = parent_modules(["check", target], env=env)
    assert cold.returncode == 1, cold.stderr  # the example's findings
    [entry] = cache.rglob("*.json")
    written = entry.stat().st_ino, entry.stat().st_mtime_ns
    warm, warm_modules = parent_modules(["check", target], env=env)
    assert (warm.returncode, warm.stdout) == (cold.returncode, cold.stdout)
    assert (entry.stat().st_ino, entry.stat().st_mtime_ns) == written  # a hit: no worker wrote it again
    assert not HEAVY & cold_modules
    assert not HEAVY & warm_modules
