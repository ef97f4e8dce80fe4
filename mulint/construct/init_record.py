"""Record which source line last wrote each parameter while the model is built and initialised.

While recording, torch.Tensor's in-place fill methods are wrapped, so every write is seen
(``nn.init.normal_(p)`` ends in ``p.normal_()``; ``p.data.zero_()``, ``p.copy_(...)``, ``p[:] = ...``). Writes are matched to parameters by storage, so ``p.data``
views count. The last write from user code is the parameter's init site. Writes made after the
`mup` package attached ``infshape`` to a parameter (``set_base_shapes``), from outside `mup`,
are remembered too: they undo µP's rescaling, unless the base shapes leave nothing to undo
(``set_base_shapes(model, None)``, the SP baseline: no dimension is a width) or the write stores
zeros (a zero init is µP for every role). Zeros are not an init site either: a partly zeroed weight
(mutransformers' query zero-init of a fused qkv) keeps the values drawn before.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from types import FrameType

import torch
import torch.nn as nn
from torch.utils.hooks import RemovableHandle

from mulint.construct.provenance import MULINT_DIR, is_library_file, is_mup_package_file, source_loc
from mulint.facts import SourceLoc

# In-place methods that set values (not arithmetic rescaling like mul_, which keeps the init's source).
_WRITES = (
    "normal_",
    "uniform_",
    "zero_",
    "fill_",
    "copy_",
    "__setitem__",
    "bernoulli_",
    "exponential_",
    "geometric_",
    "log_normal_",
    "cauchy_",
    "random_",
    "fill_diagonal_",
    "masked_fill_",
    "index_fill_",
)
# In-place rescaling counts as a write only when mup does it: set_base_shapes' rescale_params (of
# MuReadout weights, biases, and the embedding a MuSharedReadout shares) is the line that set the init.
_RESCALES = ("mul_", "div_", "__imul__", "__itruediv__")


@dataclass
class Write:
    loc: SourceLoc | None  # innermost user frame; None when only library code was on the stack
    via_mup: bool  # the write came from the mup package (mup.init, set_base_shapes' rescaling)
    after_base_shapes: bool  # the parameter already carried mup's infshape, with a width dimension
    zeros: bool = False  # the write stores zeros (zero_, fill_(0), w[:n] = 0)


class InitRecorder:
    def __init__(self) -> None:
        self._saved: dict[str, object] = {}
        self.params: dict[int, nn.Parameter] = {}  # storage pointer -> parameter
        self.writes: dict[int, list[Write]] = {}  # storage pointer -> writes in order
        self._hook: RemovableHandle | None = None

    def __enter__(self):
        def on_param(module, name, param):
            if param is not None and param.device.type != "meta":
                self.params[param.untyped_storage().data_ptr()] = param

        self._hook = nn.modules.module.register_module_parameter_registration_hook(on_param)
        for name in _WRITES + _RESCALES:
            original = getattr(torch.Tensor, name)
            self._saved[name] = original
            setattr(torch.Tensor, name, self._wrap(original, name, mup_only=name in _RESCALES))
        self._deepcopy = nn.Parameter.__deepcopy__
        nn.Parameter.__deepcopy__ = self._wrap_deepcopy(self._deepcopy)  # type: ignore[method-assign]  # recording
        return self

    def __exit__(self, *exc):
        if self._hook is not None:
            self._hook.remove()
        nn.Parameter.__deepcopy__ = self._deepcopy  # type: ignore[method-assign]  # restored
        for name, original in self._saved.items():
            setattr(torch.Tensor, name, original)
        self._saved.clear()
        return False

    def _wrap(self, original, method: str, mup_only: bool = False):
        recorder = self

        def write(tensor, *args, **kwargs):
            if tensor.device.type != "meta":
                recorder._note(tensor, mup_only, zeros=_stores_zeros(method, args, kwargs))
            return original(tensor, *args, **kwargs)

        return write

    def _wrap_deepcopy(self, original):
        """A deep copy (nn.TransformerEncoder clones its layer) inherits the original's writes: its
        init is the one written on the original."""
        recorder = self

        def deepcopy(param, memo):
            copied = original(param, memo)
            if param.device.type != "meta":
                ptr = param.untyped_storage().data_ptr()
                if ptr in recorder.params:
                    new = copied.untyped_storage().data_ptr()
                    recorder.params[new] = copied
                    recorder.writes[new] = list(recorder.writes.get(ptr, []))
            return copied

        return deepcopy

    def _note(self, tensor: torch.Tensor, mup_only: bool = False, zeros: bool = False) -> None:
        try:
            ptr = tensor.untyped_storage().data_ptr()
        except RuntimeError:
            return
        param = self.params.get(ptr)
        if param is None and isinstance(tensor, nn.Parameter):
            # Parameters of deep-copied modules (nn.TransformerEncoder clones its layer) were never
            # registered through the hook: they are known from their first write.
            param = self.params[ptr] = tensor
        if param is None:
            return
        loc, via_mup = _user_frame()
        if mup_only and not via_mup:
            return
        self.writes.setdefault(ptr, []).append(
            Write(loc=loc, via_mup=via_mup, after_base_shapes=has_width_base_shapes(param), zeros=zeros)
        )

    def last_write(self, param: torch.Tensor) -> Write | None:
        """The write the parameter's values come from: the last one that does not store zeros."""
        writes = [w for w in self.writes.get(param.untyped_storage().data_ptr(), []) if w.loc is not None]
        drawn = [w for w in writes if not w.zeros]
        return (drawn or writes)[-1] if writes else None

    def writes_after_base_shapes(self, param: torch.Tensor) -> list[Write]:
        return [
            w
            for w in self.writes.get(param.untyped_storage().data_ptr(), [])
            if w.after_base_shapes and not w.via_mup and not w.zeros and w.loc is not None
        ]


def has_width_base_shapes(param: torch.Tensor) -> bool:
    """mup's base shapes are attached and make some dimension a width. ``set_base_shapes(model, None)``
    takes the model as its own base: every dimension finite, mup.init equals torch's, nothing to undo."""
    infshape = getattr(param, "infshape", None)
    if infshape is None:
        return False
    try:
        return infshape.ninf() > 0
    except (AttributeError, TypeError):
        return True


def _is_zero(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.device.type != "meta" and not bool(value.any())
    return isinstance(value, (int, float)) and value == 0


def _stores_zeros(method: str, args: tuple, kwargs: dict) -> bool:
    """Whether an in-place write stores zeros: the value argument of each write method."""
    if method == "zero_":
        return True
    value = {"fill_": 0, "fill_diagonal_": 0, "copy_": 0, "__setitem__": 1, "masked_fill_": 1, "index_fill_": 2}.get(
        method
    )
    if value is None:
        return False
    name = {
        "fill_": "value",
        "fill_diagonal_": "fill_value",
        "copy_": "src",
        "masked_fill_": "value",
        "index_fill_": "value",
    }.get(method)
    if len(args) > value:
        return _is_zero(args[value])
    return name in kwargs and _is_zero(kwargs[name])


def _user_frame() -> tuple[SourceLoc | None, bool]:
    return user_frame_from(3)  # start at the caller of the write wrapper (above _note)


def user_frame_from(depth: int, *, outside_packages: bool = False) -> tuple[SourceLoc | None, bool]:
    """The innermost user frame at or above ``sys._getframe(depth)`` of the caller, and whether the
    call went through the mup package on the way. ``outside_packages``: prefer a frame outside any
    installed package (an optimizer from pytorch-optimizer is constructed at the user's line, not in
    its base class), falling back to the innermost non-library frame."""
    frame: FrameType | None = sys._getframe(depth + 1)
    via_mup = False
    found = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(MULINT_DIR):
            break
        if is_mup_package_file(filename):
            via_mup = True
        elif not is_library_file(filename):
            installed = "-packages" + os.sep in filename
            if not (outside_packages and installed):
                return source_loc(filename, frame.f_lineno), via_mup
            found = found or source_loc(filename, frame.f_lineno)
        frame = frame.f_back
    return found, via_mup
