"""`mulint inspect`'s depth section: the depth knob, each residual branch with its measured α̂ and how
its multiplier is set, and which parameters are block parameters (on a branch) and which are not."""

from __future__ import annotations

from mulint.exponents import fmt_exp
from mulint.facts import DepthFacts, ResidualBranch
from mulint.paths import display_path, layer_pattern
from mulint.report.escape import keep_lines, one_line


def depth_lines(depth: DepthFacts | None) -> list[str]:
    """The section's lines; none without depth facts (no depth knob, or --no-depth)."""
    if depth is None:
        return []
    named = " (--depth-arg)" if depth.named_by_user else ""
    lines = [
        "",
        f"depth: {depth.knob} = {depth.base_depth}{named}; built at {', '.join(map(str, depth.depths))} blocks "
        "on the meta device",
    ]
    if depth.branches:
        rows: list[tuple[str, ...]] = [("branch", "kind", "α̂", "multiplier by depth", "set by", "at")]
        rows += [_row(b, depth.depths) for b in depth.branches]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        table = ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        table.insert(1, "  " + "  ".join("-" * w for w in widths))
        lines += table
        lines += [f"  {one_line(b.name)}: {flag}" for b in depth.branches for flag in _flags(b)]
    block = [p for p in depth.params if p.block]
    others = sorted({layer_pattern(p.name) for p in depth.params if not p.block})
    lines.append(
        f"  {len(block)} block parameters (on a branch), {len(depth.params) - len(block)} non-block: "
        + (one_line(", ".join(others)) if others else "none")
    )
    lines += [f"note: {keep_lines(n)}" for n in depth.notes]
    return lines


def _row(branch: ResidualBranch, depths: list[int]) -> tuple[str, ...]:
    multiplier = ", ".join(f"{branch.multiplier[d]:.4g}" for d in depths if d in branch.multiplier) or "-"
    alpha = "-" if branch.alpha is None else fmt_exp(branch.alpha).lstrip("+")
    set_by = branch.source + (f" ({branch.knob})" if branch.knob else "")
    if branch.gate:
        set_by += f" ({branch.gate})"
    at = branch.multiplier_at or branch.loc
    where = f"{display_path(at.path)}:{at.line}" if at else ""
    return tuple(one_line(cell) for cell in (branch.name, branch.kind, alpha, multiplier, set_by, where))


def _flags(branch: ResidualBranch) -> list[str]:
    flags = []
    if branch.skip_exponent:
        flags.append(f"the skip path is scaled (∝ L^{fmt_exp(branch.skip_exponent)}), not the branch")
    if branch.cancelled_by_norm:
        flags.append("the factor is in front of the branch's own norm, which cancels it")
    if branch.post_norm:
        flags.append("post-LN: the sum is normalised")
    return flags
