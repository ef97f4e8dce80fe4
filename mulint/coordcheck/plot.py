"""The coordinate-check plot in the style of the mup package: one panel per step, log-log, width
on x, one line per layer; failing layers in colour, the rest grey."""

from __future__ import annotations

import os
import tempfile

from mulint.coordcheck import CoordResult


def save_plot(result: CoordResult, path: str) -> None:
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
