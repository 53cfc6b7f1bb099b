"""Report figures: each result on its reference bar, each biomarker's trend, the lysis curve;
and the biomarkers' own figures (gating plots, uNK overlays) found beside the case summary.

Figures are drawn with matplotlib's object API (no global pyplot state) as SVG with text kept
as text, so they stay sharp in print and searchable; data nkpanel generated carry a SYNTHETIC
mark in the figure itself.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nkpanel._figures import save_figure
from nkpanel.interpret.flags import Interpretation
from nkpanel.interpret.intervals import ReferenceInterval, limit_text
from nkpanel.interpret.measurements import Measurement
from nkpanel.interpret.serial import Trend

__all__ = [
    "Figure",
    "biomarker_figures",
    "figure_path",
    "lysis_curve_svg",
    "reference_bar_svg",
    "trend_svg",
]

COLOURS = {
    "band": "#cfe8d5",
    "band_edge": "#4f9a62",
    "within": "#1b1b1b",
    "flag": "#b3261e",
    "near": "#c77700",
    "muted": "#8a8a8a",
}
#: Automated gating plots shown in the report, in the order a reader follows the gating.
GATING_PLOTS = (
    "Lymphocyte_scatter",
    "Lymphocytes",
    "CD3neg",
    "NK",
    "NK_CD56bright",
    "NK-like_T",
    "Beads",
)
#: At most this many gating plots of a lab template (every gate has one) per sample.
MAX_TEMPLATE_PLOTS = 8


@dataclass(frozen=True)
class Figure:
    """A figure for the report: a title, the image as a data URI, and where it came from."""

    title: str
    data_uri: str
    source: str = ""
    caption: str = ""


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    save_figure(fig, buf, "svg", rc={"svg.fonttype": "none"}, bbox_inches="tight")
    return buf.getvalue()


def svg_data_uri(svg: str) -> str:
    """An SVG document as a ``data:`` URI for an ``<img>``."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _new(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), dpi=100)
    fig.patch.set_alpha(0)
    ax = fig.add_subplot()
    ax.set_facecolor("none")
    return fig, ax


def _mark_synthetic(fig: Any, synthetic: bool, *, left: bool = False) -> None:
    """The SYNTHETIC mark in a top corner (the right one unless ``left``)."""
    if synthetic:
        x, ha = (0.005, "left") if left else (0.995, "right")
        fig.text(x, 0.98, "SYNTHETIC", ha=ha, va="top", fontsize=6, color="#b3261e")


def _span(iv: ReferenceInterval | None, value: float, unc: float) -> tuple[float, float]:
    lo = [value - unc, value]
    hi = [value + unc, value]
    if iv is not None:
        lo.append(iv.lower if iv.lower is not None else 0.0)
        hi.append(iv.upper if iv.upper is not None else (iv.lower or 0.0) * 2)
    a, b = min(lo), max(hi)
    if a >= 0:
        a = max(0.0, a - 0.12 * (b - a))
    else:
        a -= 0.12 * (b - a)
    b += 0.12 * (b - a) or 1.0
    return a, b


def reference_bar_svg(r: Interpretation, *, synthetic: bool) -> str | None:
    """The result as a marker on its interval's bar, with its expanded uncertainty.

    Returns ``None`` unless the result was read against an interval (no value, no interval
    applied, or no verdict allowed: a bar would suggest a scale that does not exist).
    """
    if r.reported_value is None or r.interval is None or r.flag not in ("below", "within", "above"):
        return None
    value = r.reported_value
    unc = r.uncertainty.expanded if r.uncertainty else 0.0
    iv = r.interval
    a, b = _span(iv, value, unc)
    fig, ax = _new(2.3, 0.55)
    ax.axhspan(0.35, 0.65, color="#eeeeee", lw=0)
    if iv is not None:
        lo = iv.lower if iv.lower is not None else a
        hi = iv.upper if iv.upper is not None else b
        ax.axvspan(lo, hi, ymin=0.35, ymax=0.65, color=COLOURS["band"], lw=0)
        for lim in (iv.lower, iv.upper):
            if lim is not None:
                ax.axvline(lim, ymin=0.25, ymax=0.75, color=COLOURS["band_edge"], lw=1.2)
    colour = (
        COLOURS["near"]
        if r.near_limit is not None
        else COLOURS["flag"]
        if r.flag in ("above", "below")
        else COLOURS["within"]
    )
    if unc > 0:
        ax.errorbar([value], [0.5], xerr=[[unc], [unc]], fmt="none", ecolor=colour, capsize=3)
    ax.plot([value], [0.5], marker="D", ms=7, color=colour, mec="white", mew=0.8)
    ticks = sorted(
        {x for x in (iv.lower if iv else None, iv.upper if iv else None) if x is not None}
    )
    d = r.measurand.decimals
    ax.set_xticks(ticks, [limit_text(t, d) for t in ticks])
    ax.tick_params(axis="x", labelsize=7.5, length=2, pad=1)
    ax.set_xlim(a, b)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color(COLOURS["muted"])
    ax.text(
        value,
        0.93,
        f"{value:.{d}f} {r.measurand.unit}",
        ha="center",
        va="top",
        fontsize=7.5,
        color=colour,
    )
    # the mark in the corner away from the value's label (audit 19: "92.3 %" ran into it)
    _mark_synthetic(fig, synthetic, left=(value - a) / (b - a) > 0.5)
    return _svg(fig)


def trend_svg(t: Trend, interval: ReferenceInterval | None, *, synthetic: bool) -> str:
    """A measurand's results across episodes, on the interval's band."""
    fig, ax = _new(3.4, 1.9)
    d = t.measurand.decimals
    measured = {p.episode_id for p in t.points if p.value is not None}
    # an unreportable sample beside a reportable one of the same episode adds nothing here
    points = [p for p in t.points if p.value is not None or p.episode_id not in measured]
    xs = list(range(len(points)))
    if interval is not None:
        lo = interval.lower if interval.lower is not None else 0.0
        hi = interval.upper if interval.upper is not None else lo * 2
        ax.axhspan(lo, hi, color=COLOURS["band"], lw=0, label=f"interval {interval.describe(d)}")
    usable = [(x, p) for x, p in zip(xs, points, strict=True) if p.value is not None]
    if usable:
        ax.plot([x for x, _ in usable], [p.value for _, p in usable], color=COLOURS["muted"], lw=1)
    for x, p in usable:
        err = p.expanded_uncertainty or 0.0
        style = dict(marker="s", mfc="white") if p.on_treatment else dict(marker="o")
        ax.errorbar(
            [x],
            [p.value],
            yerr=[[err], [err]],
            color=COLOURS["within"],
            capsize=3,
            ms=6,
            **style,
        )
    for x, p in zip(xs, points, strict=True):
        if p.value is None:
            ax.annotate(
                "not reportable",
                (x, 0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                fontsize=6,
                color=COLOURS["flag"],
            )
    ax.set_xticks(xs, [p.label.replace(" (on treatment)", "\n(on treatment)") for p in points])
    ax.tick_params(axis="both", labelsize=7)
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_ylabel(t.measurand.unit, fontsize=7)
    values = [p.value for p in points if p.value is not None]
    if values:
        top = max(values + ([interval.upper] if interval and interval.upper else []))
        ax.set_ylim(0, top * 1.25 if top > 0 else 1)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if interval is not None:
        ax.legend(fontsize=6, loc="upper left", frameon=False)
    _mark_synthetic(fig, synthetic)
    return _svg(fig)


def lysis_curve_svg(m: Measurement, *, synthetic: bool) -> str | None:
    """% specific lysis against effector:target ratio, as the NK-activity biomarker measured it."""
    if len(m.curve) < 2:
        return None
    fig, ax = _new(3.2, 2.1)
    ets = [p[0] for p in m.curve]
    ax.plot(ets, [p[1] for p in m.curve], marker="o", color=COLOURS["within"], lw=1.2)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ets, [f"{e:g}:1" for e in ets])
    ax.minorticks_off()
    ax.set_xlabel("effector : target", fontsize=7)
    ax.set_ylabel("% specific lysis", fontsize=7)
    ax.tick_params(labelsize=7)
    top = max(p[1] for p in m.curve)
    ax.set_ylim(min(0.0, min(p[1] for p in m.curve)), max(10.0, math.ceil(top * 1.2)))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    _mark_synthetic(fig, synthetic)
    return _svg(fig)


#: a PNG larger than this is embedded smaller (a uNK overlay is ~1.3 MB at full resolution)
EMBED_MAX_BYTES = 400_000
#: ... as a JPEG of at most this many pixels on its long side; the full file stays on disk
EMBED_MAX_SIDE = 1000


def _png_uri(path: Path) -> str:
    """A PNG as a data URI: as it is, or when large (an overlay photograph of tissue) as a
    JPEG of at most :data:`EMBED_MAX_SIDE` pixels, so a report with several overlays stays a
    few hundred kB; the full-resolution file is the figure's source."""
    data = path.read_bytes()
    if len(data) <= EMBED_MAX_BYTES:
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        small = im.convert("RGB")
        small.thumbnail((EMBED_MAX_SIDE, EMBED_MAX_SIDE))
        buf = io.BytesIO()
        small.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _image_uri(path: Path) -> str | None:
    if path.suffix.lower() == ".png":
        return _png_uri(path)
    if path.suffix.lower() == ".svg":
        return svg_data_uri(path.read_text("utf-8"))
    return None


def figure_path(listed: str | Path, results_dir: Path) -> Path:
    """Where a figure a case summary lists is: relative paths are relative to the summary's
    folder."""
    p = Path(listed)
    return p if p.is_absolute() else results_dir / p


def biomarker_figures(
    measurements: Sequence[Measurement], results_dir: Path | None
) -> list[Figure]:
    """The biomarkers' own figures, as each measurement's entry in the case summary lists them:
    gating plots of each flow sample, lysis curves of a plate, overlay thumbnails of a biopsy.

    Of a flow sample's gating plots, the automated gates' are shown in the order of
    :data:`GATING_PLOTS` (looked up where the pipeline writes them for a summary that lists
    none, written before figures were listed); a lab template's (named by the lab) in gate
    order, at most :data:`MAX_TEMPLATE_PLOTS`. Relative paths are relative to
    ``results_dir``. Files that do not exist are skipped; nothing is drawn again.
    """
    if results_dir is None:
        return []
    out: list[Figure] = []
    seen: set[Path] = set()
    # a figure every result of which is withheld says so (audit 19: a failed tube's gating
    # plots were embedded unlabelled, their titles giving the withheld counts)
    reportable: dict[Path, bool] = {}
    for m in measurements:
        for f in m.figures:
            key = figure_path(Path(f), results_dir).resolve()
            reportable[key] = reportable.get(key, False) or m.reportable
    for m in measurements:
        paths: list[tuple[str, Path]] = []
        listed = [Path(f) for f in m.figures]
        if m.biomarker == "flow":
            if m.gating == "template":  # the lab's gates, named by the lab
                listed = listed[:MAX_TEMPLATE_PLOTS]
            else:
                if not listed:  # a summary from before figures were listed: where they were
                    plots = Path("flow") / m.specimen_id / "samples" / m.sample / "plots"
                    listed = [plots / f"{g}.png" for g in GATING_PLOTS]
                by_gate = {p.stem: p for p in listed}
                listed = [by_gate[g] for g in GATING_PLOTS if g in by_gate]
        what = {"cytotoxicity": "lysis curves", "endometrial": "CD56 overlay"}.get(m.biomarker, "")
        for p in listed:
            who = m.specimen_id if m.sample == m.specimen_id else f"{m.specimen_id} ({m.sample})"
            if m.biomarker == "flow":
                title = f"{m.sample}: {p.stem} gate"
            else:
                title = f"{who}: {what or p.stem.replace('_', ' ')}"
            if what == "CD56 overlay":  # which image (and which ×400 field of a slide)
                title += f", {p.parent.name}" + ("" if p.stem == "overlay" else f" {p.stem}")
            paths.append((title, figure_path(p, results_dir)))
        for title, path in paths:
            resolved = path.resolve()
            if resolved in seen or not path.is_file():
                continue
            uri = _image_uri(path)
            if uri is None:
                continue
            seen.add(resolved)
            if not reportable.get(resolved, m.reportable):
                title += " (NOT REPORTABLE: for review only; its counts are withheld)"
            out.append(Figure(title=title, data_uri=uri, source=str(path)))
    return out
