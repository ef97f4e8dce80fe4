"""Build the target at a width: on the meta device for structure, small on the CPU for numbers."""

from __future__ import annotations

import contextlib
import traceback

import torch
import torch.nn as nn

from mulint import steps
from mulint.construct.knob import WidthKnob
from mulint.construct.meta_values import SkipMetaValueWrites
from mulint.construct.provenance import Provenance, quiet
from mulint.construct.scalars import ScalarsOnCpu
from mulint.errors import MulintError


def _build(knob: WidthKnob, width: int, device: str, provenance: Provenance | None, scalars_on_cpu: bool):
    from mulint.construct.shrink import ShrinkSizes

    recording = provenance.recording() if provenance is not None else contextlib.nullcontext()
    scalars = ScalarsOnCpu() if scalars_on_cpu else contextlib.nullcontext()
    # real tensors: large constants (a mask sized by a module constant) are built short
    short = ShrinkSizes(knob.shrink) if device != "meta" and knob.shrink else contextlib.nullcontext()
    values = SkipMetaValueWrites() if device == "meta" else contextlib.nullcontext()
    with recording, quiet(), torch.device(device), scalars, short, values:
        return knob.build(width)


def build_at(
    knob: WidthKnob, width: int, *, target: str, device: str = "meta", provenance: Provenance | None = None
) -> nn.Module:
    steps.enter("build")
    try:
        try:
            model = _build(knob, width, device, provenance, scalars_on_cpu=device == "meta")
        except Exception as exc:
            if device != "meta" or isinstance(exc, MulintError):
                raise
            model = _build(knob, width, device, provenance, scalars_on_cpu=False)  # a CPU scalar was refused
    except MulintError:
        raise
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        changed = ", ".join(f"{k}={v}" for k, v in knob.describe_scaling(width).items())
        other_knob = (
            "" if knob.named_by_user else f", or if {knob.name} is not the width, name the one with --width-arg"
        )
        raise MulintError(
            f"building at width {width} ({changed}) raised {type(exc).__name__}: {exc}{where}",
            target=target,
            step="build",
            hint=f"choose widths the model accepts with --widths (e.g. multiples of the head count){other_knob}",
        ) from exc
    if not isinstance(model, nn.Module):
        raise MulintError(
            f"calling it returned {type(model).__name__}, not an nn.Module",
            target=target,
            step="build",
            hint="name a model class or a function that returns a model",
        )
    model.eval()  # dropout off: the trace should hold the deterministic path
    return model
