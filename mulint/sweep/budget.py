"""Which widths a transfer sweep trains by default, so that it finishes in about ``--budget`` minutes.

The model's own width b and 2b, 4b when they fit the budget (Tensor Programs V: the base width and
wider); otherwise the same three doublings moved down (b/2..2b, b/4..b, b/8..b/2): a slope over three
doublings needs the widest to be 4× the narrowest, and a model of width 768 trained at 3072 for a few
hundred steps does not fit a CPU's minutes.

The choice must not depend on how busy the machine is (the same command gives the same verdict), so
it is made from the work, not from timed steps: a training step costs about 6 × parameters ×
positions floating-point operations, at a nominal ``FLOPS`` per worker (what a CPU core reaches on
these small matrices, with room for attention and overhead). The estimate printed before the sweep
uses the measured step times instead. Pure arithmetic (no torch).
"""

from __future__ import annotations

from mulint.sweep.grid import coarse

DEFAULT_MINUTES = 6.0  # of estimated training: with set-up and later rounds, a default sweep ends within ten
TRIPLES = ((1, 2, 4), (0.5, 1, 2), (0.25, 0.5, 1), (0.125, 0.25, 0.5))
REFINE = 2  # points the second round adds per width (the optimum's neighbours)
FLOPS = 4e10  # per worker: measured about 5e10 on a 2-core machine's small-GPT steps


def trials_per_width(seeds: int) -> int:
    """The trials the first two rounds train at each width: the coarse grid and its refinement."""
    return (len(coarse(0.0)) + REFINE) * seeds


def estimate_seconds(step_seconds: dict[int, float], widths, steps: int, seeds: int, parallel: int) -> float:
    """The first two rounds' training time from each width's step time, ``parallel`` trials at once."""
    return trials_per_width(seeds) * steps * sum(step_seconds[w] for w in widths) / max(1, parallel)


def work_minutes(sizes: dict[int, int], widths, positions: int, steps: int, seeds: int, parallel: int) -> float:
    """The first two rounds' training time at the nominal ``FLOPS``, from each width's parameter count."""
    flops = 6 * positions * sum(sizes[w] for w in widths)
    return trials_per_width(seeds) * steps * flops / (FLOPS * max(1, parallel)) / 60


def pick_widths(
    sizes: dict[int, int],
    base: int,
    *,
    positions: int,
    steps: int,
    seeds: int,
    parallel: int,
    minutes: float,
) -> tuple[list[int], str | None]:
    """The first triple of widths (see TRIPLES) that builds and fits ``minutes``, else the cheapest
    triple there is; ``sizes``: parameters per width that builds. With a note when the widths are not
    the model's own and 2× and 4× it."""
    options: list[list[int]] = []
    for factors in TRIPLES:
        scaled = [base * f for f in factors]
        if all(float(w).is_integer() and int(w) in sizes for w in scaled):
            options.append([int(w) for w in scaled])
    if not options:  # no three doublings build: the narrowest widths that do
        return sorted(sizes)[:3], None

    def cost(widths: list[int]) -> float:
        return work_minutes(sizes, widths, positions, steps, seeds, parallel)

    fitting = [w for w in options if cost(w) <= minutes]
    chosen = fitting[0] if fitting else options[-1]
    own = [base, 2 * base, 4 * base]
    if chosen == own and fitting:
        return chosen, None
    if chosen == own:
        return chosen, (
            f"about {cost(chosen):.0f} min of training at widths {', '.join(map(str, own))}, over the {minutes:g} "
            "min budget: no narrower three doublings build (--widths chooses them)"
        )
    why = f"within the {minutes:g} min budget" if fitting else f"the nearest to the {minutes:g} min budget"
    return chosen, (
        f"widths {', '.join(map(str, chosen))} instead of {', '.join(map(str, own))}: about {cost(chosen):.0f} "
        f"min of training at this size, {why} (--widths chooses them, --budget allows more time)"
    )
