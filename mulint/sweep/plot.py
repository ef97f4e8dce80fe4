"""The transfer plot users know from Tensor Programs V (Figure 1) and nanoGPT-mup: x = log2 lr, one line
per width with a ±SEM band over seeds, a dot at each width's best lr; one panel per target, so a
baseline (``--baseline``, usually the SP twin) stands beside the model."""

from __future__ import annotations

from mulint.coordcheck.plot import write_figure
from mulint.sweep.knobs import knob_named


def save_plot(results: list, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.2), squeeze=False, sharey=True)
    for ax, result in zip(axes[0], results):
        colours = plt.cm.viridis([i / max(1, len(result.curves) - 1) for i in range(len(result.curves))])
        for colour, curve, best in zip(colours, result.curves, result.verdict.optima):
            xs, mean, sem = list(curve.log2_values), curve.mean(), curve.sem()
            ax.plot(xs, mean, "-", color=colour, lw=1.8, label=f"width {curve.width}")
            ax.fill_between(
                xs, [m - s for m, s in zip(mean, sem)], [m + s for m, s in zip(mean, sem)], color=colour, alpha=0.2
            )
            y = min(mean)
            ax.plot([best.log2_value], [y], "o", color="red", ms=6, zorder=4)
        v = result.verdict
        ax.set_title(
            f"{result.target}\n{v.status}: drift {v.drift:+.2f} octaves ({v.slope:+.2f} per doubling)", fontsize=9
        )
        ax.set_xlabel(knob_named(result.knob).axis)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"train loss (last quarter of {results[0].steps} steps)")
    fig.tight_layout()
    write_figure(fig, path)
