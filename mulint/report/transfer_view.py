"""`mulint transfer` output: the loss table with each width's best lr (or other swept knob) marked and the verdict (text), or
everything (JSON). No torch."""

from __future__ import annotations

import json
import math

from mulint.report.escape import keep_lines, one_line
from mulint.sweep.knobs import knob_named


def as_json(result, baseline=None) -> str:
    """The result as JSON; with a baseline, the result's fields and the baseline's under "baseline"."""
    data = result.as_dict()
    if baseline is not None:
        data["baseline"] = baseline.as_dict()
    return json.dumps(_finite(data), indent=2, allow_nan=False)


def _finite(value):
    """Strict JSON: a non-finite number (a loss that was NaN from the start) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _power(x: float) -> str:
    return f"2^{x:.1f}" if abs(x - round(x)) > 0.05 else f"2^{round(x)}"


def table(result) -> list[str]:
    xs = sorted({x for c in result.curves for x in c.log2_values})
    knob = knob_named(result.knob)
    head = ["log2 lr" if knob.name == "lr" else f"log2 {knob.noun}"] + [f"{x:g}" for x in xs]
    rows = [head]
    for curve, best in zip(result.curves, result.verdict.optima):
        means = dict(zip(curve.log2_values, curve.mean()))
        nearest = min(curve.log2_values, key=lambda x: abs(x - best.log2_value))
        cells = []
        for x in xs:
            if x not in means:
                cells.append("")
            elif not math.isfinite(means[x]):
                cells.append("nan")
            else:
                cells.append(f"{means[x]:.3f}" + ("*" if x == nearest else ""))
        rows.append([f"width {curve.width}"] + cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows
    ]


def as_text(result) -> str:
    v = result.verdict
    knob = knob_named(result.knob)
    noun = knob.noun + (" (× the model's own)" if knob.relative else "")
    head = (
        f"{one_line(result.target)}: transfer {v.status} (widths {', '.join(map(str, result.widths))}; "
        f"{result.steps} steps; {result.seeds} seeds; {one_line(result.optimizer)}; {result.device})"
    )
    lines = [head, f"task: {one_line(result.task)}"]
    if result.shrunk:
        lines.append(f"trained smaller where width does not matter: {one_line('; '.join(result.shrunk))}")
    lines += [f"note: {keep_lines(n)}" for n in result.notes]
    if knob.name != "lr":
        lines.append(f"swept: the {noun}, every param group at the optimizer's own lr")
    lines += [
        "",
        f"final loss, mean over seeds (* = the grid point nearest each width's best {knob.noun}):",
        *table(result),
        "",
    ]
    optima = "; ".join(
        f"{w}: {_power(o.log2_value)}"
        + (f" [{_power(o.interval[0])}, {_power(o.interval[1])}]" if result.seeds > 1 else "")
        for w, o in zip(v.widths, v.optima)
    )
    lines.append(f"best {noun} per width: {optima}")
    lo, hi = v.slope_interval
    lines.append(
        f"drift: {v.drift:+.2f} octaves from width {v.widths[0]} to {v.widths[-1]} "
        f"({v.slope:+.2f} per doubling of width, interval [{lo:+.2f}, {hi:+.2f}])"
    )
    if v.regret is not None:
        share = f" ({v.regret_share:.0%} of what widening gained)" if v.regret_share is not None else ""
        lines.append(
            f"regret: width {v.widths[-1]} trained at width {v.widths[0]}'s best {knob.noun} loses {v.regret:.3f} nats{share}"
        )
    if v.wider_is_better is not None:
        lines.append(
            f"wider is better at width {v.widths[0]}'s best {knob.noun}: {'yes' if v.wider_is_better else 'no'}"
        )
    trials = f"{result.trials} trials ({result.reused} from earlier runs, {result.diverged} diverged), {result.rounds} rounds"
    lines += [trials, "", f"{v.status}: {v.reason}"]
    lines += [f"  try: {a}" for a in v.advice if v.status != "PASS"]
    return "\n".join(lines)
