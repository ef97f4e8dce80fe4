"""Where in the source each module and parameter was created, recorded while the model is built.

While active, every nn.Module construction and every parameter registration notes the innermost
stack frame outside torch (and outside mulint): the line a user would edit.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import sys
import weakref
from types import FrameType

import torch
import torch.nn as nn

from mulint.facts import SourceLoc

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
MULINT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_STDLIB_DIR = os.path.dirname(os.__file__) + os.sep


def _package_dir(name: str) -> str:
    """An installed package's directory without importing it ("\0" when it is not installed: matches
    nothing). Found through its distribution, never through sys.path: a user's own `mup.py` beside the
    model would otherwise make every file of the model's folder library code."""
    import importlib.metadata

    try:
        directory = importlib.metadata.distribution(name).locate_file(name)
    except importlib.metadata.PackageNotFoundError:
        return "\0"
    return os.path.join(str(directory), "") if os.path.isdir(str(directory)) else "\0"


# mup's layers are library code too: a MuSharedReadout's logits are the user's `self.readout(x)` line.
_MUP_DIR = _package_dir("mup")


def is_mup_package_file(filename: str) -> bool:
    """A file of the installed `mup` package: not one of a project whose folder is named `mup`."""
    return os.path.abspath(filename).startswith(_MUP_DIR)


def from_mup_package(cls: type) -> bool:
    """The class is the installed `mup` package's (MuReadout, MuSharedReadout...): not a class of the same
    name in a project's own `mup.py`, which follows its own rules (no base shapes, no infshape)."""
    return is_mup_package_file(getattr(sys.modules.get(cls.__module__), "__file__", None) or "")


# Init helpers of model libraries that only pass a tensor on to torch.nn.init: the line to edit is the
# one calling them (every HF `_init_weights` goes through transformers' `initialization.normal_`).
_INIT_WRAPPERS = frozenset(
    os.path.join(directory, name)
    for directory, name in (
        (_package_dir("transformers"), "initialization.py"),
        (_package_dir("timm"), os.path.join("layers", "weight_init.py")),
    )
    if directory != "\0"
)


def is_library_file(filename: str) -> bool:
    """torch's, mup's, mulint's and the standard library's own files, and the init helpers of model
    libraries: never the line a user edits."""
    if filename.startswith((_TORCH_DIR, MULINT_DIR, _MUP_DIR, "<")) or filename in _INIT_WRAPPERS:
        return True
    return filename.startswith(_STDLIB_DIR) and "-packages" + os.sep not in filename


def source_loc(filename: str, line: int) -> SourceLoc:
    """A location whose column is the first character of the statement (as an editor shows it)."""
    text = linecache.getline(filename, line)
    return SourceLoc(
        path=filename, line=line, column=len(text) - len(text.lstrip()) + 1 if text.strip() else 1, code=text.strip()
    )


def _loc(frame) -> SourceLoc:
    return source_loc(frame.f_code.co_filename, frame.f_lineno)


def _caller(skip_self: object | None = None):
    """The innermost frame outside torch/mulint, skipping frames of ``skip_self``'s own methods."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith(MULINT_DIR):
            return None  # built by mulint itself: the target's root, with no line in user code
        if not is_library_file(frame.f_code.co_filename) and (
            skip_self is None or frame.f_locals.get("self") is not skip_self
        ):
            return frame
        frame = frame.f_back
    return None


class Provenance:
    """Construction sites of modules and registration sites of parameters."""

    def __init__(self) -> None:
        self.module_sites: weakref.WeakKeyDictionary[nn.Module, SourceLoc] = weakref.WeakKeyDictionary()
        # (module, name) -> (site, registered inside that module's own __init__)
        self.param_sites: dict[tuple[int, str], tuple[SourceLoc, bool]] = {}

    @contextlib.contextmanager
    def recording(self):
        original_init = nn.Module.__init__
        sites = self.module_sites

        def init(module, *args, **kwargs):
            original_init(module, *args, **kwargs)
            if module not in sites:
                frame = _caller(skip_self=module)
                if frame is not None:
                    sites[module] = _loc(frame)

        def on_param(module, name, param):
            frame = _caller()
            if frame is not None:
                own = frame.f_locals.get("self") is module and frame.f_code.co_name == "__init__"
                self.param_sites[(id(module), name)] = (_loc(frame), own)

        handle = nn.modules.module.register_module_parameter_registration_hook(on_param)
        nn.Module.__init__ = init  # type: ignore[method-assign,assignment]  # where each module is built, while recording
        try:
            yield self
        finally:
            nn.Module.__init__ = original_init  # type: ignore[method-assign]
            handle.remove()

    def param_site(self, owner: nn.Module, name: str) -> SourceLoc | None:
        """The line that made this parameter: its layer's construction, or its own assignment."""
        site = self.param_sites.get((id(owner), name))
        module_site = self.module_sites.get(owner)
        if site is None:
            return module_site
        loc, inside_own_init = site
        if inside_own_init and module_site is not None:
            return module_site
        return loc


@contextlib.contextmanager
def quiet():
    """Silence the warnings and log lines torch and transformers print while building and tracing."""
    import logging
    import warnings

    loggers = [
        logging.getLogger(name)
        for name in ("torch", "transformers", "torch._subclasses.fake_tensor", "torch.export", "torch._dynamo")
    ]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.CRITICAL + 1)
            lg.disabled = True
        try:
            yield
        finally:
            for lg, level, disabled in saved:
                lg.setLevel(level)
                lg.disabled = disabled
