"""The hyperparameters a transfer sweep can sweep (``--knob``), one at a time as Tensor Programs V's
Figure 4 sweeps them, the others held at the user's values:

- ``lr``: every param group's learning rate times one factor (the user's ratios between groups stay);
  the grid is in absolute learning rates, centred on the optimizer's own.
- ``output-multiplier``: the readout's output times a factor (α_output), on top of whatever multiplier
  the model already applies; the grid is the factor, centred on 1 (the model as written).
- ``init-scale``: every weight matrix's (and embedding's) initial values times a factor (σ_init, a
  global multiplier of the init std); norm gains and biases keep theirs. Centred on 1.

Both multipliers are applied from outside the model, so any model has them, whether or not it exposes
an argument for them; µP says their best values do not move with width either.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Knob:
    name: str  # as on the command line
    noun: str  # in sentences: "the best {noun}"
    axis: str  # the plot's x label and the table's head
    relative: bool  # its values are factors of the model's own (the grid centres on 1), not absolute


KNOBS = {
    k.name: k
    for k in (
        Knob("lr", "lr", "log2 learning rate", relative=False),
        Knob("output-multiplier", "output multiplier", "log2 output multiplier (× the model's own)", relative=True),
        Knob("init-scale", "init scale", "log2 init scale (× the model's own init)", relative=True),
    )
}
DEFAULT = "lr"


def knob_named(name: str) -> Knob:
    try:
        return KNOBS[name]
    except KeyError:
        raise ValueError(f"no knob {name!r}: one of {', '.join(KNOBS)}") from None
