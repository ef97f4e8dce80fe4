"""`mulint coord` output: the verdict and the worst layers (text), or everything (JSON); under `--depths`, the
verdict and every measure at every depth. No torch."""

from __future__ import annotations

import json

from mulint.report.escape import keep_lines, one_line


def _by_depth(result) -> bool:
    """A depth check's result (mulint.coordcheck.DepthCoordResult: this module reads results by their fields)."""
    return hasattr(result, "depths")


def as_json(result) -> str:
    if _by_depth(result):
        return depth_as_json(result)
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
    if _by_depth(result):
        return depth_as_text(result)
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


# --- the depth coordinate check (`mulint coord --depths`) ------------------------------------------

# What a failing measure means, and the rule that reports it under `check --coord`.
DEPTH_VERDICTS = {
    ("stream_change", "blow-up"): ("grows with depth", "MU951"),
    ("block_change", "blow-up"): ("falls slower than 1/depth", "MU951"),
    ("stream_change", "collapse"): ("shrinks with depth", "MU952"),
    ("block_change", "collapse"): ("falls faster than 1/depth", "MU952"),
    ("block_update", "lazy"): ("falls with depth: lazy blocks, the α = ½ signature", "MU953"),
    ("stream_init", "growing"): ("grows with depth", "MU954"),
}


def depth_as_json(result) -> str:
    return json.dumps(
        {
            "target": result.target,
            "verdict": result.verdict,
            "depths": result.depths,
            "width": result.width,
            "depth_knob": result.depth_knob,
            "blocks": result.blocks,
            "steps": result.steps,
            "seeds": result.seeds,
            "optimizer": result.optimizer,
            "device": result.device,
            "shrunk": result.shrunk,
            "notes": result.notes,
            "limits": result.limits,
            "measures": [
                {
                    "name": m.key,
                    "description": m.description,
                    "slope": m.slope,
                    "expected": m.expected,
                    "status": m.status,
                    "values": {str(d): v for d, v in m.values.items()},
                }
                for m in result.measures
            ],
        },
        indent=2,
    )


def depth_as_text(result) -> str:
    depths = result.depths
    rows = [("measure", *(f"L={d}" for d in depths), "slope", "scaled", "status")]
    for m in result.measures:
        slope = "-" if m.slope is None else f"{m.slope:+.2f}"
        values = (f"{m.values[d]:.3g}" if d in m.values else "-" for d in depths)
        rows.append((m.description, *values, slope, f"{m.expected:+g}", m.status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    table.insert(1, "  ".join("-" * w for w in widths))
    head = (
        f"{one_line(result.target)}: depth coordinate check {result.verdict.upper()} "
        f"(depths {', '.join(map(str, depths))} of {one_line(result.depth_knob)}; width {result.width}; "
        f"{result.steps} steps; {result.seeds} seeds; {one_line(result.optimizer)}; {result.device})"
    )
    blocks = [f"blocks: {one_line(result.blocks)} (the residual stream is read where each block takes it)"]
    shrunk = (
        [f"trained smaller where depth does not matter: {one_line('; '.join(result.shrunk))}"] if result.shrunk else []
    )
    notes = [f"note: {keep_lines(n)}" for n in result.notes]
    failing = {"blow-up", "collapse", "growing", *(("lazy",) if result.lazy_fails else ())}
    bad = [m for m in result.measures if m.status in failing]
    summary = (
        "; ".join(
            f"{m.description} {DEPTH_VERDICTS[m.key, m.status][0]} ({DEPTH_VERDICTS[m.key, m.status][1]})" for m in bad
        )
        if bad
        else "the residual stream and the blocks scale with depth as depth-scaled branches do "
        "(the `scaled` column: the slope they have)"
    )
    return "\n".join([head, *blocks, *shrunk, *notes, "", *table, "", summary])
