"""`mulint coord` output: the verdict and the worst layers (text), or everything (JSON). No torch."""

from __future__ import annotations

import json

from mulint.report.escape import keep_lines, one_line


def as_json(result) -> str:
    layers = []
    for l in result.layers:
        layers.append(
            {
                "name": l.name,
                "module_type": l.module_type,
                "slope": l.slope,
                "status": l.status,
                "judged": l.judged,
                "reason": l.reason,
                "slopes": {str(k): v for k, v in l.slopes.items()},
                "change": {str(t): {str(w): v for w, v in by.items()} for t, by in l.change.items()},
                "size": {str(t): {str(w): v for w, v in by.items()} for t, by in l.size.items()},
            }
        )
    return json.dumps(
        {
            "target": result.target,
            "verdict": result.verdict,
            "widths": result.widths,
            "steps": result.steps,
            "seeds": result.seeds,
            "optimizer": result.optimizer,
            "device": result.device,
            "shrunk": result.shrunk,
            "notes": result.notes,
            "extended": result.extended.as_dict() if result.extended else None,
            "layers": layers,
        },
        indent=2,
    )


def as_text(result, worst: int = 10) -> str:
    judged = [l for l in result.layers if l.judged and l.slope is not None]
    ranked = sorted(judged, key=lambda l: -abs(l.slope))[:worst]
    rows = [("layer", "type", "slope", "status")] + [
        (one_line(l.name), one_line(l.module_type), f"{l.slope:+.2f}", l.status) for l in ranked
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    table = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    table.insert(1, "  ".join("-" * w for w in widths))
    bad = [l for l in judged if l.status != "ok"]
    head = (
        f"{one_line(result.target)}: coordinate check {result.verdict.upper()} "
        f"(widths {', '.join(map(str, result.widths))}; {result.steps} steps; {result.seeds} seeds; "
        f"{one_line(result.optimizer)}; {result.device})"
    )
    shrunk = (
        [f"trained smaller where width does not matter: {one_line('; '.join(result.shrunk))}"] if result.shrunk else []
    )
    notes = [f"note: {keep_lines(n)}" for n in result.notes]
    low, high = result.limits
    summary = (
        (
            f"{len(bad)} of {len(judged)} layers change with width: slope of mean |h_t - h_0| against width "
            f"outside [{low:+g}, {high:+g}] at step {result.steps}"
        )
        if bad
        else f"all {len(judged)} layers keep their change per step constant across widths (slope within [{low:+g}, {high:+g}])"
    )
    return "\n".join([head, *shrunk, *notes, "", *table, "", summary])
