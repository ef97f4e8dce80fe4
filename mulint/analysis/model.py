"""The whole model analysis: structure from the meta device, then init numbers from small CPU models."""

from __future__ import annotations

from mulint.analysis.numbers import fit_exponent, measure_init, numeric_widths
from mulint.analysis.structure import Structure, analyse_structure
from mulint.load.targets import ResolvedTarget


def analyse_model(target: ResolvedTarget, *, widths: list[int] | None = None, width_arg: str | None = None,
                  measure: bool = True) -> Structure:
    structure = analyse_structure(target, widths=widths, width_arg=width_arg)
    facts = structure.facts
    if not measure or not facts.traced:
        return structure
    chosen = numeric_widths(structure.knob, target.label, widths)
    numbers = measure_init(structure.knob, chosen, target.label)
    facts.numeric_widths = chosen
    for p in facts.params:
        rms = numbers.rms.get(p.name, {})
        p.init_rms = rms
        p.init_exponent = fit_exponent(rms)
        write = numbers.last_write.get(p.name)
        p.init_at = write.loc if write is not None else p.created_at
        p.late_init_at = [w.loc for w in numbers.late_writes.get(p.name, [])]
        p.mup_infshape = numbers.has_infshape.get(p.name, False)
    return structure
