"""The package's layers as a checked contract: the import contracts of pyproject.toml hold, the parent
process of `mulint check` stays free of torch, and no module reaches into another's private names."""

import ast
import os
import subprocess
import sys

import pytest
from conftest import EXAMPLES, ROOT, parent_modules

from mulint.engine.fix_marks import FOLDER

HEAVY = {"torch", "numpy"}  # seconds of import each: only workers may pay for them


@pytest.mark.slow
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
    [entry] = [p for p in cache.rglob("*.json") if p.parent.name != FOLDER]  # the result (not its fix marks)
    written = entry.stat().st_ino, entry.stat().st_mtime_ns
    warm, warm_modules = parent_modules(["check", target], env=env)
    assert (warm.returncode, warm.stdout) == (cold.returncode, cold.stdout)
    assert (entry.stat().st_ino, entry.stat().st_mtime_ns) == written  # a hit: no worker wrote it again
    assert not HEAVY & cold_modules
    assert not HEAVY & warm_modules


PACKAGE = ROOT / "mulint"


def _module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imported_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_module(dotted: str) -> bool:
    where = ROOT.joinpath(*dotted.split("."))
    return where.with_suffix(".py").exists() or (where / "__init__.py").exists()


def private_crossings(source: str, module: str, is_package: bool = False) -> list[str]:
    """Lines where `module` reaches a private name of another mulint module: ``from mulint.x import _y``,
    ``import mulint.x as m`` then ``m._y``, or ``mulint.x._y``."""
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name -> the mulint module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            origin = _imported_from(node, module, is_package)
            if origin.split(".")[0] != "mulint":
                continue
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{node.lineno}: imports {alias.name} from {origin}")
                elif _is_module(f"{origin}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{origin}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mulint":
                    modules[alias.asname or "mulint"] = alias.name if alias.asname else "mulint"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            dotted, value = [], node.value
            while isinstance(value, ast.Attribute):
                dotted.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in modules:
                owner = ".".join([modules[value.id], *dotted])
                if owner != module:
                    found.append(f"{node.lineno}: reads {owner}.{node.attr}")
    return found


def test_private_crossings_are_found_in_every_spelling():
    source = (
        "import mulint.reading.targets\n"
        "import mulint.trace as t\n"
        "from mulint.construct import width as w\n"
        "from . import _sibling, public\n"
        "from mulint.construct.width import _tokens, WIDTH_NAMES\n"
        "from mulint.version import __version__\n"
        "mulint.reading.targets._after_stdlib, t._short_op, w._is_int, w.WIDTH_NAMES, t.__name__\n"
        "import os\nos._exit, _own\n"
    )
    assert private_crossings(source, "mulint.engine.worker") == [
        "4: imports _sibling from mulint.engine",
        "5: imports _tokens from mulint.construct.width",
        "7: reads mulint.reading.targets._after_stdlib",
        "7: reads mulint.trace._short_op",
        "7: reads mulint.construct.width._is_int",
    ]
    assert private_crossings("from mulint.trace import _short_op\n", "mulint.trace") == [
        "1: imports _short_op from mulint.trace"  # a package's own __init__ is another module to record.py
    ]
    assert private_crossings("from . import _helper\n", "mulint.trace", is_package=True) == [
        "1: imports _helper from mulint.trace"
    ]


def test_no_module_reaches_into_another_modules_private_names():
    """A `_name` is its module's own: another module that needs it gets a public name instead."""
    crossings = [
        f"{path.relative_to(ROOT)}:{crossing}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for crossing in private_crossings(
            path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py"
        )
    ]
    assert not crossings, "\n".join(crossings)
