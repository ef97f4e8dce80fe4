"""Which files of the user's tree an import statement runs, resolved as Python would.

Python looks an absolute import up on ``sys.path`` in order. When mulint imports ``model.py`` the
folders that come before the installed packages are the file's package root (mulint puts it first)
and, for ``python -c "import model"`` run beside the file, the file's folder. A module found there
is the user's code and its import-time code is judged like the file's own; anything else is an
installed package, trusted. A file named like a standard-library module (``profile.py``) shadows it
from those folders, so it is judged too; only modules built into the interpreter cannot be shadowed.
"""

from __future__ import annotations

import ast
import functools
import os
import site
import sys
from pathlib import Path

from mulint.sources import NotSource, read_source

_UNSHADOWABLE = frozenset(sys.builtin_module_names) | {"__future__"}


def package_root(path: Path) -> Path:
    """The folder mulint puts on sys.path to import `path` (above its outermost package)."""
    parent = path.resolve().parent
    while (parent / "__init__.py").exists():
        parent = parent.parent
    return parent


def package_inits(path: Path) -> list[Path]:
    """The ``__init__.py`` files Python runs before `path` when importing it as part of its packages."""
    inits: list[Path] = []
    parent = path.resolve().parent
    while (parent / "__init__.py").exists():
        if parent / "__init__.py" != path.resolve():
            inits.insert(0, parent / "__init__.py")
        parent = parent.parent
    return inits


def search_roots(path: Path) -> tuple[Path, ...]:
    """Folders searched, in order, for an absolute import made while mulint imports `path`.

    mulint imports a file of a package as ``pkg.module`` from its package root, and a lone file
    from its folder; after that come the entries of mulint's own ``sys.path`` that are not the
    interpreter's or its installed packages' (the working directory, ``PYTHONPATH``).
    """
    return tuple(dict.fromkeys([package_root(path), *_user_path_entries()]))


@functools.lru_cache(maxsize=1)
def _installed_folders() -> frozenset[Path]:
    folders = (sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), site.getusersitepackages())
    return frozenset(Path(p).resolve() for p in folders)


def _user_path_entries() -> list[Path]:
    return list(_user_entries(tuple(sys.path), os.getcwd()))


@functools.lru_cache(maxsize=8)
def _user_entries(path: tuple[str, ...], cwd: str) -> tuple[Path, ...]:
    """Once per sys.path, not once per file judged."""
    installed = _installed_folders()
    entries = []
    for entry in path:
        folder = Path(entry or cwd).resolve()
        if folder.is_dir() and not any(folder == p or p in folder.parents for p in installed):
            entries.append(folder)
    return tuple(entries)


_EXTENSIONS = (".so", ".pyd")
_LISTINGS: dict[Path, tuple[int, dict[str, list[str]]]] = {}


def _compiled_in(folder: Path, name: str) -> list[Path]:
    """The extension modules `name.<tag>.so` / `name.pyd` in `folder`. One listing per folder (until
    it changes), indexed by module name: globbing the folder for every import made the static pass
    quadratic in files per folder (3000 files: 12-30 s)."""
    try:
        stamp = folder.stat().st_mtime_ns
    except OSError:
        return []
    cached = _LISTINGS.get(folder)
    if cached is None or cached[0] != stamp:
        index: dict[str, list[str]] = {}
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        for entry in sorted(names):
            if entry.endswith(_EXTENSIONS):
                index.setdefault(entry.split(".", 1)[0], []).append(entry)
        cached = _LISTINGS[folder] = (stamp, index)
    return [folder / entry for entry in cached[1].get(name, [])]


@functools.lru_cache(maxsize=256)
def distributed_names(folder: Path) -> frozenset[str]:
    """Top-level modules that distributions installed in `folder` provide: a ``*.dist-info`` (or
    ``.egg-info``) beside them says so (``top_level.txt``, or the files its RECORD lists). Anything
    importable with its distribution's metadata is an installed package, even outside site-packages."""
    from importlib import metadata

    names: set[str] = set()
    try:
        if not any(folder.glob("*.dist-info")) and not any(folder.glob("*.egg-info")):
            return frozenset()
        for dist in metadata.distributions(path=[str(folder)]):
            top = dist.read_text("top_level.txt") or ""
            names |= {line.strip() for line in top.splitlines() if line.strip().isidentifier()}
            for file in dist.files or []:
                first = file.parts[0] if file.parts else ""
                if not first.endswith((".dist-info", ".egg-info", ".data")) and first != "..":
                    names.add(first.split(".")[0])
    except (OSError, ValueError):
        return frozenset(names)
    return frozenset(n for n in names if n.isidentifier())


class CompiledModule(Exception):
    """A module of the user's tree that is compiled code: mulint cannot read what it runs."""

    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path = path


def _find_in(folder: Path, name: str) -> tuple[Path | None, Path | None]:
    """(file to run, package folder) for module `name` in `folder`; (None, None) when absent.

    A regular package gives its ``__init__.py`` and folder, a module its file and no folder, a
    namespace package (a folder without ``__init__.py``) no file and its folder.
    """
    package = folder / name
    if (package / "__init__.py").is_file():
        return package / "__init__.py", package
    for candidate in _compiled_in(folder, name):  # Python tries extension modules before sources
        if candidate.is_file():
            raise CompiledModule(candidate)
    if (folder / f"{name}.py").is_file():
        return folder / f"{name}.py", None
    if (folder / f"{name}.pyc").is_file():
        raise CompiledModule(folder / f"{name}.pyc")
    if package.is_dir() and name.isidentifier():
        return None, package
    return None, None


def _walk_parts(start: Path, parts: list[str]) -> tuple[list[Path], Path | None, bool]:
    """Files run importing `parts` below folder `start`, the last package folder, and whether all parts were found."""
    files: list[Path] = []
    folder: Path | None = start
    for part in parts:
        if folder is None:
            return files, None, False  # a module is no package: `a.b` with a.py fails to import
        found, package = _find_in(folder, part)
        if found is None and package is None:
            return files, None, False
        if found is not None:
            files.append(found)
        folder = package
    return files, folder, True


class LocalImports:
    """Resolves import statements of files in one tree, with a fixed set of search roots."""

    def __init__(self, roots: tuple[Path, ...]):
        self.roots = roots

    def absolute(self, dotted: str) -> tuple[list[Path], Path | None, bool]:
        """(files run, package folder, found) for an absolute import of `dotted` from the user's tree."""
        found_in = self._every_root(dotted)
        return found_in[0] if found_in else ([], None, False)

    def _every_root(self, dotted: str) -> list[tuple[list[Path], Path | None, bool]]:
        """The resolution of `dotted` under each root that holds it.

        The first is the one Python takes with these roots first on sys.path; the others are
        judged too, since a root mulint put on sys.path for an earlier target may come first.
        """
        parts = dotted.split(".")
        if parts[0] in _UNSHADOWABLE:
            return []
        found_in = []
        for root in self.roots:
            if parts[0] in distributed_names(root):
                continue  # an installed package (`pip install --target`), wherever its folder is
            files, folder, found = _walk_parts(root, parts)
            if files or (found and folder is not None):
                found_in.append((files, folder, found))
        return found_in

    def relative(self, importer: Path, level: int, dotted: str) -> tuple[list[Path], Path | None, bool]:
        base = importer.resolve().parent
        for _ in range(level - 1):
            base = base.parent
        return _walk_parts(base, dotted.split(".")) if dotted else ([], base, True)

    def module(self, importer: Path, level: int, dotted: str) -> tuple[list[Path], Path | None, bool]:
        return self.relative(importer, level, dotted) if level else self.absolute(dotted)

    def files_run_by(self, stmt: ast.Import | ast.ImportFrom, importer: Path) -> list[Path]:
        """Every file of the user's tree that executing `stmt` in `importer` runs, in order."""
        files: list[Path] = []
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                files += [f for run, _, _ in self._every_root(alias.name) for f in run]
            return _unique(files)
        if stmt.level:
            resolutions = [self.relative(importer, stmt.level, stmt.module or "")]
        else:
            resolutions = self._every_root(stmt.module or "")
        for run, folder, found in resolutions:
            files += run
            if folder is not None and found:
                names = [a.name for a in stmt.names]
                if "*" in names:
                    names = _all_names(run[-1]) if run and run[-1].name == "__init__.py" else []
                for name in names:
                    if name.isidentifier():
                        files += _walk_parts(folder, [name])[0]  # `from pkg import sub` runs pkg/sub.py
        return _unique(files)

    def module_file(self, importer: Path, level: int, dotted: str) -> Path | None:
        """The file whose namespace `from <dotted> import X` reads X from, when it is local."""
        run, folder, found = self.module(importer, level, dotted)
        if not found or not run:
            return None
        last = run[-1]
        expected = (folder / "__init__.py") if folder is not None else None
        return last if expected is None or last == expected else None


def _all_names(init: Path) -> list[str]:
    """The literal ``__all__`` of a package's ``__init__.py`` (a star import runs those submodules)."""
    try:
        tree = ast.parse(read_source(init))
    except (SyntaxError, ValueError, OSError, RecursionError, MemoryError, NotSource):
        return []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets):
            if isinstance(stmt.value, (ast.List, ast.Tuple)):
                return [e.value for e in stmt.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def _unique(files: list[Path]) -> list[Path]:
    return list(dict.fromkeys(f.resolve() for f in files))
