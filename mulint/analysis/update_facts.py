"""The measured updates into the facts: each use's norms and width exponent (with its multiplier), and
the notes that say how they were measured (step, batch, stability) and what was not judged."""

from __future__ import annotations

import math
import statistics

from mulint.analysis.update_batch import stable
from mulint.analysis.update_numbers import UpdateNumbers, fitted
from mulint.exponents import fmt_exp, to_quarter
from mulint.facts import ParamFacts


def update_facts(numbers: UpdateNumbers, params: list[ParamFacts], notes: list[str], optimizer: str) -> None:
    """Each use's measured norms and their width exponent (with the use's multiplier) into the facts."""
    if numbers.failure:
        notes.append(
            f"update sizes not measured: stepping {optimizer} raised {numbers.failure}; MU311-MU313 do "
            f"not judge the parameters it steps (nothing was measured to judge them by)"
        )
        return
    tuned: dict[str, list[float]] = {}  # role -> exponents measured for a self-tuned optimizer's parameters
    for p in params:
        if p.name in numbers.norms or p.name in numbers.no_grad:
            p.update_step = numbers.step
        p.update_settings = numbers.settings.get(p.name, "")
        p.update_no_grad = p.name in numbers.no_grad
        p.update_self_tuned = p.name in numbers.self_tuned_params
        p.update_unorthogonalised = p.name in numbers.unorthogonalised
        p.update_per_coordinate = p.name in (numbers.per_coordinate or ())
        for index, by_width in numbers.norms.get(p.name, {}).items():
            use = p.uses[index]
            use.update_norm = dict(by_width)
            exponent = fitted(numbers, by_width)
            checked = numbers.confirmed.get((p.name, index))
            if exponent is None or (checked is not None and not stable(*checked)):
                continue  # a size that changes with the measurement batch is not judged
            if p.name in numbers.self_tuned_params:
                tuned.setdefault(use.role, []).append(exponent + use.multiplier_exponent)
                continue  # its step size d is not the one of later steps: not judged
            use.update_exponent = exponent + use.multiplier_exponent
    if numbers.norms and (numbers.batch or numbers.small_batch):
        notes.append(_batch_note(numbers, params))
    if numbers.zero_started and numbers.norms:
        notes.append(
            f"update sizes measured on step {numbers.step}: {', '.join(numbers.zero_started[:4])} started "
            f"at exactly zero and left it only on the step named (no gradient reached it before), so "
            f"more warm steps were taken"
        )
    silent = sorted(numbers.no_grad)
    if silent:
        notes.append(
            f"update sizes: {len(silent)} parameters got no gradient at step {numbers.step} "
            f"(not judged by MU31x): {', '.join(silent[:6])}{', ...' if len(silent) > 6 else ''}"
        )
    if numbers.not_finite:
        broken = sorted(numbers.not_finite)
        notes.append(
            f"update sizes: {optimizer} made non-finite updates (inf or nan) at step {numbers.step} for "
            f"{', '.join(broken[:6])}{', ...' if len(broken) > 6 else ''}"
        )
    if numbers.norms and len(numbers.widths) < 3:
        notes.append(f"update sizes fitted on {len(numbers.widths)} widths only ({numbers.widths}): rough")
    if numbers.skipped and numbers.norms:
        notes.append(
            f"update sizes measured on step {numbers.step}, after {numbers.step - 1} warm steps: "
            f"{numbers.skipped} moved no parameter at step 1 (it sets up its state first)"
        )
    if numbers.self_tuned and tuned:
        roles = ", ".join(
            f"{role} width^{fmt_exp(to_quarter(statistics.median(values)))}"
            for role in ("input", "hidden", "output", "vector")
            if (values := tuned.get(role))
        )
        notes.append(
            f"update sizes: {' + '.join(numbers.self_tuned)} sets its own step size d as it trains, one "
            f"number for the parameters it steps, so MU311/MU312 do not judge them: on step "
            f"{numbers.step} their updates scale as {roles}; this compares the roles with each other "
            f"only, as d will grow and may scale with width, which shifts every role alike"
        )
    if numbers.schedulers:
        notes.append(
            f"update sizes measured on step {numbers.step}, with {', '.join(numbers.schedulers)} "
            f"stepped after each step: the lr of that step, not of later ones"
        )


def _batch_note(numbers: UpdateNumbers, params: list[ParamFacts]) -> str:
    """Which batch the updates were measured on, and what a second, larger one said."""
    small = f"{numbers.small_batch} (per-coordinate optimizers)" if numbers.small_batch else ""
    large = (
        (
            f"{numbers.batch} (optimizers that mix a matrix's entries: enough tokens that the gradient's rank "
            f"is not capped by them)"
        )
        if numbers.batch
        else ""
    )
    text = (
        f"update sizes measured on step {numbers.step} of a batch of {' and of '.join(b for b in (small, large) if b)}"
    )
    if not numbers.confirmed:
        return text
    uses = {p.name: p.uses for p in params}

    def label(key):
        name, index = key
        first, second = numbers.confirmed[key]
        again = "not measured" if math.isnan(second) else f"width^{fmt_exp(to_quarter(second))}"
        role = uses[name][index].role if name in uses and index < len(uses[name]) else "?"
        return f"{name} ({role}: width^{fmt_exp(to_quarter(first))}, then {again})"

    moved = [key for key, pair in numbers.confirmed.items() if not stable(*pair)]
    held = len(numbers.confirmed) - len(moved)
    text += f"; {len(numbers.confirmed)} near a verdict's edge measured again on {numbers.larger_batch}: "
    text += f"{held} stable" + (" (judged on the larger batch)" if held else "")
    if moved:
        text += (
            f", {len(moved)} changed with the batch, so MU311/MU312 do not judge them: "
            f"{', '.join(label(k) for k in moved[:4])}{', ...' if len(moved) > 4 else ''}"
        )
    return text
