"""The coordinate-check plot in the style of the mup package: one panel per step, log-log, width
on x, one line per layer; failing layers in colour, the rest grey. The depth check's: one panel, depth
on x, one line per measure."""

from __future__ import annotations

import os
import tempfile

from mulint.coordcheck import CoordResult, DepthCoordResult


def save_plot(result: CoordResult | DepthCoordResult, path: str) -> None:
    if isinstance(result, DepthCoordResult):
        save_depth_plot(result, path)
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted({s for layer in result.layers for s in layer.change})
    fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 4), squeeze=False, sharey=True)
    # Colour the worst failing layers (at most ten, so the legend stays readable); grey the rest.
    failing = sorted((l for l in result.layers if l.judged and l.status != "ok"), key=lambda l: -abs(l.slope or 0.0))[
        :10
    ]
    colours = matplotlib.color_sequences["tab10"]
    for ax, step in zip(axes[0], steps):
        for layer in result.layers:
            points = sorted((w, v) for w, v in layer.change.get(step, {}).items() if v > 0)
            if not points:
                continue
            xs, ys = zip(*points)
            if layer in failing:
                colour = colours[failing.index(layer) % len(colours)]
                ax.plot(xs, ys, "o-", color=colour, lw=2, label=f"{layer.name} ({layer.slope:+.2f})", zorder=3)
            else:
                ax.plot(xs, ys, "-", color="0.75" if layer.judged else "0.88", lw=1, zorder=1)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"step {step}")
        ax.set_xlabel("width")
        ax.grid(True, which="both", alpha=0.2)
    axes[0][0].set_ylabel("mean |h_t - h_0|")
    if failing:
        handles, labels = axes[0][-1].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), title="failing (slope)")
    verdict = result.verdict.upper()
    fig.suptitle(f"{result.target}: coordinate check {verdict} ({result.optimizer}, {result.seeds} seeds)")
    fig.tight_layout()
    write_figure(fig, path)


def save_depth_plot(result: DepthCoordResult, path: str) -> None:
    """The depth check: log-log against depth, one line per measure relative to its value at the first
    depth (so they share an axis), its slope in the legend, and dashed the slope depth-scaled branches
    have; failing measures in colour and bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = matplotlib.color_sequences["tab10"]
    for i, m in enumerate(result.measures):
        points = sorted((d, v) for d, v in m.values.items() if v > 0)
        if len(points) < 2:
            continue
        (d0, v0), colour = points[0], colours[i % len(colours)]
        xs, ys = zip(*((d, v / v0) for d, v in points))
        bad = m.status != "ok"
        slope = "-" if m.slope is None else f"{m.slope:+.2f}"
        ax.plot(xs, ys, "o-", color=colour, lw=2.4 if bad else 1.4, label=f"{m.description} ({slope}, {m.status})")
        ax.plot(xs, [(d / d0) ** m.expected for d in xs], "--", color=colour, lw=0.9, alpha=0.7)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(result.depths, [str(d) for d in result.depths])
    ax.minorticks_off()
    ax.set_xlabel(f"depth ({result.depth_knob})")
    ax.set_ylabel(f"relative to depth {min(result.depths)}")
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7, loc="best", title="measure (slope, status); dashed: scaled branches", title_fontsize=7)
    fig.suptitle(
        f"{result.target}: depth coordinate check {result.verdict.upper()} "
        f"(width {result.width}, {result.optimizer}, {result.seeds} seeds)",
        fontsize=9,
    )
    fig.tight_layout()
    write_figure(fig, path)


def write_figure(fig, path: str) -> None:
    """The figure as a PNG at ``path``, written beside it and renamed: never a half-written file."""
    import matplotlib.pyplot as plt

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=directory)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
