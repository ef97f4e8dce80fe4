"""Update rules judged by the update the optimizer measurably makes (MU311-MU313), for any optimizer.

The spectral condition (Yang, Simon & Bernstein, 2023): ‖ΔW‖₂ = Θ(sqrt(fan_out/fan_in)), i.e. Θ(1)
in the RMS→RMS operator norm, for input, hidden and output weights alike; Θ(1) entries for vectors.
The exponent judged is ``ParamUse.update_exponent`` (mulint.analysis.updates), against the profile's
``spectral`` table. Optimizer families the profile judges by exact learning-rate tables (Adam, SGD:
MU301/MU302) are left to those rules, so no problem is reported twice.

No finding rests on a class name alone: each needs the parameter's update measured (a step was
taken, and the optimizer's state read afterwards says which path stepped it). When the step could
not be measured, the rules stay silent for the parameters it steps (a step that raises fails the
target instead; any other failure of the measurement is named in the analysis notes).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from mulint.exponents import TOLERANCE, fmt_exp, to_quarter
from mulint.facts import ModelFacts, ParamFacts, ParamUse
from mulint.optimizers import OPTIMIZERS
from mulint.profiles import accepts, load_profile
from mulint.rules.base import Rule


def muon_misfit(use: ParamUse) -> bool:
    """An embedding table or a readout: Muon's orthogonalised update is a hidden map's. (A dense
    first layer is judged by its measured update like any weight.)"""
    return use.role == "output" or (use.role == "input" and use.kind == "lookup")


@dataclass
class Deviation:
    param: ParamFacts
    use: ParamUse
    exponent: float  # measured, with the use's multiplier
    accepted: tuple[float, float]
    direction: int  # +1 too large, -1 too small

    @property
    def needed_lr_exponent(self) -> float | None:
        """The lr exponent that brings the update into range, updates being proportional to lr."""
        if self.param.lr_exponent is None:
            return None
        bound = self.accepted[1] if self.direction > 0 else self.accepted[0]
        return self.param.lr_exponent - (self.exponent - bound)


def optimizer_of(p: ParamFacts, facts: ModelFacts) -> tuple[str, str]:
    """(class, family) of the optimizer stepping ``p``."""
    opt = facts.optimizer
    return p.optimizer or (opt.cls if opt else ""), p.optimizer_family or (opt.family if opt else "")


def is_muon(cls: str) -> bool:
    return OPTIMIZERS.is_muon(cls)


def measured(p: ParamFacts) -> bool:
    """Its update was measured at some width: its optimizer stepped it, and its state was read after."""
    return any(use.update_norm for use in p.uses)


def orthogonalised(p: ParamFacts, cls: str) -> bool:
    """Stepped by Muon's orthogonalised update: a Muon optimizer whose step was measured, whose group
    or state after that step does not put the parameter on its Adam-style path, and whose probe step
    mixed the parameter's entries (an Adam-style path leaves a zero-gradient entry where it was)."""
    return is_muon(cls) and measured(p) and not p.update_unorthogonalised and not p.update_per_coordinate


def deviations(facts: ModelFacts, *, include_exact: bool = False):
    """Every measured use whose update exponent is outside the profile's range. Parameters of an
    optimizer family judged exactly (MU301/MU302) only with ``include_exact``."""
    profile = load_profile(facts.profile)
    if facts.optimizer is None:
        return
    for p in facts.params:
        cls, family = optimizer_of(p, facts)
        if p.role_source != "use" or (profile.judged_exactly(family) and not include_exact):
            continue
        for use in p.uses:
            accepted = profile.spectral.get(use.role)
            if accepted is None or use.update_exponent is None:
                continue
            direction = accepts(accepted, use.update_exponent, TOLERANCE)
            if direction:
                yield Deviation(p, use, use.update_exponent, accepted, direction)


def adam_path(p: ParamFacts, cls: str) -> bool:
    """A Muon optimizer's Adam-style path stepped it, by its state or by the probe step."""
    return is_muon(cls) and (p.update_unorthogonalised or p.update_per_coordinate)


def _optimizer_words(p: ParamFacts, cls: str) -> str:
    if adam_path(p, cls):
        return f"{cls} (its Adam-style path, not orthogonalised)"
    return f"{cls} ({p.update_settings})" if p.update_settings else cls


def _message(items: list[Deviation], cls: str, role: str) -> str:
    first = items[0]
    exponent = to_quarter(statistics.median(d.exponent for d in items))
    low, high = first.accepted
    wanted = f"width^{fmt_exp(low)}" if low == high else f"width^{fmt_exp(low)} to width^{fmt_exp(high)}"
    lr = f", lr ∝ width^{fmt_exp(first.param.lr_exponent)}" if first.param.lr_exponent is not None else ""
    what = (
        "vectors' update entries"
        if role == "vector"
        else "embedding update entries"
        if first.use.kind == "lookup"
        else f"{role} weights' updates (RMS→RMS operator norm)"
    )
    text = (
        f"{_optimizer_words(first.param, cls)}: {what} ∝ width^{fmt_exp(exponent)}, measured on step "
        f"{first.param.update_step}{lr}; the spectral condition needs {wanted}"
    )
    needed = [d.needed_lr_exponent for d in items if d.needed_lr_exponent is not None]
    if needed:
        path = f"{cls}'s Adam-style path" if adam_path(first.param, cls) else cls
        text += f": {role} parameters need lr ∝ width^{fmt_exp(to_quarter(statistics.median(needed)))} with {path}"
    why = (
        "too large: it blows up as width grows"
        if first.direction > 0
        else "too small: these weights stop learning as width grows"
    )
    return f"{text} ({why})"


class _MeasuredRule(Rule):
    direction: int
    judged_on = "measured"

    def check(self, facts):
        groups: dict[tuple, list[Deviation]] = {}
        for d in deviations(facts):
            cls, _ = optimizer_of(d.param, facts)
            if d.direction != self.direction or (orthogonalised(d.param, cls) and muon_misfit(d.use)):
                continue  # Muon on an embedding or readout is MU313's
            loc = d.param.optimizer_at or facts.optimizer.loc
            key = (d.use.role, cls, d.param.update_settings, adam_path(d.param, cls), loc)
            groups.setdefault(key, []).append(d)
        for (role, cls, _, _, loc), items in groups.items():
            names = list(dict.fromkeys(d.param.name for d in items))
            yield self.finding(facts, loc, _message(items, cls, role), names)


class MeasuredUpdateTooLarge(_MeasuredRule):
    code = "MU311"
    name = "measured-update-too-large"
    summary = "any optimizer: a weight's measured update grows with width (spectral condition)"
    direction = 1


class MeasuredUpdateTooSmall(_MeasuredRule):
    code = "MU312"
    name = "measured-update-too-small"
    severity = "warning"
    summary = "any optimizer: a weight's measured update shrinks with width: it stops learning"
    direction = -1


class MuonOnEmbeddingOrReadout(Rule):
    code = "MU313"
    name = "muon-on-embedding-or-readout"
    severity = "warning"
    summary = "Muon steps an embedding or readout matrix; its orthogonalised update is a hidden map's"
    severity_note = "error when the measured update grows"
    judged_on = "measured"

    def check(self, facts):
        if facts.optimizer is None:
            return
        profile = load_profile(facts.profile)
        groups: dict[tuple, list[tuple[ParamFacts, ParamUse]]] = {}
        for p in facts.params:
            cls, _ = optimizer_of(p, facts)
            if not orthogonalised(p, cls) or p.role_source != "use":
                continue
            for use in p.uses:
                if muon_misfit(use):
                    groups.setdefault((use.role, cls, p.optimizer_at or facts.optimizer.loc), []).append((p, use))
        for (role, cls, loc), items in groups.items():
            measured = [u.update_exponent for _, u in items if u.update_exponent is not None]
            accepted = profile.spectral.get(role, (0.0, 0.0))
            kind = (
                "an embedding table"
                if role == "input"
                else "a readout matrix (width → a size that stays fixed as width grows)"
            )
            text = (
                f"{_optimizer_words(items[0][0], cls)} steps {kind}: Muon orthogonalises the update as for a "
                f"hidden map (width × width), which {'an embedding' if role == 'input' else 'a readout'} is not"
            )
            severity = None
            if measured:
                exponent = to_quarter(statistics.median(measured))
                off = accepts(accepted, exponent, TOLERANCE)
                text += f"; measured on step {items[0][0].update_step}, its update ∝ width^{fmt_exp(exponent)}" + (
                    f" where the spectral condition needs width^{fmt_exp(accepted[0])}" if off else ""
                )
                severity = "error" if off > 0 else None
            text += "; give embeddings, the readout and vectors to AdamW beside Muon"
            yield self.finding(facts, loc, text, list(dict.fromkeys(p.name for p, _ in items)), severity=severity)
