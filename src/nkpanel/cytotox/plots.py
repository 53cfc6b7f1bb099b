"""The NK-activity figure: % specific lysis against E:T ratio for each condition of a sample.

Replicate wells are drawn as points (outliers as open red-edged markers, kept), the fitted
exponential model as a curve, and the lab's reference band where one is configured. PNG for
reports, SVG for print; data nkpanel generated carry a SYNTHETIC mark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nkpanel._figures import save_figure
from nkpanel.cytotox.results import SampleResult, ratio_label

__all__ = ["plot_sample"]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name).strip("_") or "sample"


def plot_sample(
    sample: SampleResult,
    out_dir: Path,
    *,
    assay: str = "release",
    reference: object | None = None,
    synthetic: bool = False,
    formats: tuple[str, ...] = ("png", "svg"),
) -> list[Path]:
    """Draw one sample's lysis curves; return the files written (``<sample>.png`` / ``.svg``).

    Parameters
    ----------
    reference
        A :class:`~nkpanel.cytotox.analyze.ReferenceBand` to shade, or ``None``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nkpanel.cytotox.analyze import ReferenceBand

    fig, ax = plt.subplots(figsize=(5.6, 4.2), dpi=100)
    colours = [f"C{i}" for i in range(10)]
    all_ratios: set[float] = set()
    jitter = np.array([-0.04, 0.0, 0.04, -0.02, 0.02, -0.06, 0.06])
    for i, c in enumerate(sample.conditions):
        colour = colours[i % len(colours)]
        label = c.treatment
        if c.lytic_units is not None and c.lytic_units.lu_per_1e7_effectors is not None:
            label += (
                f" (LU{c.lytic_units.lysis_level_percent:g} "
                f"{c.lytic_units.lu_per_1e7_effectors:.1f}/10⁷)"
            )
        if not c.reportable:
            label += " [not reportable]"
        plotted = False
        for r in c.ratios:
            all_ratios.add(r.ratio)
            ys = [w.lysis_percent for w in r.wells]
            for k, (w, y) in enumerate(zip(r.wells, ys, strict=True)):
                if y is None:
                    continue
                x = r.ratio * 2 ** jitter[k % jitter.size]
                if w.outlier:
                    ax.scatter(
                        [x],
                        [y],
                        s=28,
                        facecolors="none",
                        edgecolors="crimson",
                        linewidths=1.2,
                        zorder=3,
                    )
                else:
                    ax.scatter(
                        [x], [y], s=22, color=colour, zorder=3, label=None if plotted else label
                    )
                    plotted = True
        if c.fit is not None:
            lo = min(c.fit.ratio_min, c.standard_ratio.ratio) / 1.3
            hi = max(c.fit.ratio_max, c.standard_ratio.ratio) * 1.3
            xs = np.geomspace(lo, hi, 200)
            ax.plot(xs, c.fit.predict(xs), color=colour, lw=1.4, alpha=0.85)
        elif not plotted:
            ax.plot([], [], color=colour, label=label + " (no lysis computed)")
    if isinstance(reference, ReferenceBand):
        src = f" ({reference.source})" if reference.source else ""
        # the band belongs to one ratio: shade it there only, a quarter-octave either side
        ax.fill_between(
            [reference.ratio / 2**0.25, reference.ratio * 2**0.25],
            reference.low_percent,
            reference.high_percent,
            color="0.6",
            alpha=0.35,
            zorder=0,
            label=f"reference at {ratio_label(reference.ratio)}{src}",
        )
    ax.axhline(0.0, color="0.3", lw=0.6)
    ax.set_xscale("log", base=2)
    if all_ratios:
        ticks = sorted(all_ratios)
        ax.set_xticks(ticks)
        ax.set_xticklabels([ratio_label(t) for t in ticks])
        ax.minorticks_off()
    ax.set_xlabel("effector : target ratio")
    ax.set_ylabel("% specific killing" if assay == "flow" else "% specific lysis")
    ax.set_title(f"{sample.sample}: NK activity ({assay})", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    if synthetic:
        fig.suptitle("SYNTHETIC DATA", fontsize=8, color="crimson", y=0.995)
    fig.tight_layout()
    written: list[Path] = []
    for ext in formats:
        target = out_dir / f"{_safe(sample.sample)}.{ext}"
        save_figure(fig, target, ext)
        written.append(target)
    plt.close(fig)
    return written
