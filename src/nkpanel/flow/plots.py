"""Gating figures: one density plot per gate, its parent's events on the gate's axes, the gate
drawn on top. PNG for reports, SVG for print; data nkpanel generated carry a SYNTHETIC mark."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nkpanel._figures import save_figure
from nkpanel.flow.gates import Gate, PolygonGate, RangeGate
from nkpanel.flow.transforms import Linear

__all__ = ["figure_stem", "plot_gates"]

Array = NDArray[np.float64]
Scale = Callable[[Array], Array]

#: a 1-D gate is drawn against a companion axis a person would expect beside it
COMPANION = {
    "CD3": "CD56",
    "CD56": "CD3",
    "CD16": "CD56",
    "CD19": "CD3",
    "CD45": "SSC-A",
    "SSC-A": "CD45",
    "CD14": "CD45",
    "CD66": "CD45",
}
#: the axes a person expects for a gate, where the channels exist (else the gate's own dims)
PREFERRED_AXES = {
    "Leukocytes": ("CD45", "SSC-A"),
    "Lymphocyte scatter": ("CD45", "SSC-A"),
    "Lymphocytes": ("CD45", "SSC-A"),
    "CD3+": ("CD3", "CD56"),
    "NK-like T": ("CD3", "CD56"),
    "NK CD56bright": ("CD56", "CD16"),
    "NK CD56dim": ("CD56", "CD16"),
}
MAX_POINTS = 200_000
#: figure size (inches) and the axes' place in it
FIGSIZE = (4.2, 3.8)
MARGINS = {"left": 0.21, "right": 0.96, "bottom": 0.14, "top": 0.88}
#: a linear axis reaching this far is labelled in thousands
THOUSANDS_FROM = 10_000.0
#: minor tick marks' length and width (points), matplotlib's defaults
MINOR_TICK_POINTS = 2.0
MINOR_TICK_WIDTH = 0.6
BINS = 200
#: two tick labels closer than this share of the axis would overlap: the smaller one goes
MIN_LABEL_GAP = 0.07
#: minor ticks closer than this share of the axis (the squeezed linear part of a logicle) go
MIN_MINOR_GAP = 0.008
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def figure_stem(name: str) -> str:
    """The file name (without its suffix) of the figure of the gate ``name``."""
    name = name.replace("+", "pos").replace("-", "neg") if name[-1:] in "+-" else name
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name).strip("_") or "gate"


def plot_gates(
    *,
    sample_name: str,
    gates: tuple[Gate, ...],
    membership: Mapping[str, NDArray[np.bool_]],
    values: Callable[[str], Array],
    scale_for: Callable[[str], Scale],
    label_for: Callable[[str], str],
    channel_for_marker: Mapping[str, str],
    out_dir: Path,
    synthetic: bool = False,
    formats: tuple[str, ...] = ("png", "svg"),
    tick_scale_for: Callable[[str], Scale] | None = None,
) -> list[Path]:
    """Draw every gate; return the files written.

    Parameters
    ----------
    values
        $PnN → that channel's (compensated) events, on the linear scale.
    scale_for
        $PnN → the display transform (logicle, asinh, log or identity).
    label_for
        $PnN → axis label, e.g. ``"CD56 (APC-A)"``.
    channel_for_marker
        Marker → $PnN, used to pick the companion axis of one-dimensional gates.
    tick_scale_for
        $PnN → the transform that takes the channel's own values to the plotted ones, for
        labelling the axes in those values (:func:`decade_ticks`); ``scale_for`` when not
        given. For events already transformed elsewhere (a template's, by FlowKit).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ticks_for = tick_scale_for or scale_for
    marker_of = {ch: m for m, ch in channel_for_marker.items()}
    written: list[Path] = []
    n_all = len(next(iter(membership.values()))) if membership else 0
    rng = np.random.default_rng(0)
    for gate in gates:
        parent = membership[gate.parent] if gate.parent else np.ones(n_all, dtype=bool)
        idx = np.flatnonzero(parent)
        n_parent = idx.size
        if idx.size > MAX_POINTS:
            idx = np.sort(rng.choice(idx, MAX_POINTS, replace=False))
        x_ch = gate.dims[0].channel
        y_ch: str | None
        # a polygon is drawn on its own axes (the oblique lymphocyte gate on FSC and SSC)
        axes = () if isinstance(gate, PolygonGate) else PREFERRED_AXES.get(gate.name, ())
        preferred = [channel_for_marker.get(m) for m in axes]
        if len(preferred) == 2 and preferred[0] and preferred[1]:
            x_ch, y_ch = preferred[0], preferred[1]
        elif len(gate.dims) >= 2:
            y_ch = gate.dims[1].channel
        else:
            partner = COMPANION.get(marker_of.get(x_ch, x_ch))
            y_ch = channel_for_marker.get(partner, None) if partner else None
        fig, ax = plt.subplots(figsize=FIGSIZE, dpi=100)
        # fixed margins, wide enough for the longest labels: tight_layout measured every tick
        # label of every figure again (a third of a batch's figure time, audit 18)
        fig.subplots_adjust(**MARGINS)
        sx = scale_for(x_ch)
        x = sx(values(x_ch)[idx])
        # the title counts every event, not the points drawn (a sample of large parents)
        n_in = int(np.count_nonzero(membership[gate.name] & parent))
        pct = 100.0 * n_in / max(n_parent, 1)
        if y_ch is None:
            ax.hist(x, bins=BINS, color="0.35", histtype="stepfilled")
            ax.set_ylabel("events")
            _draw_range_1d(ax, gate, sx)
        else:
            sy = scale_for(y_ch)
            y = sy(values(y_ch)[idx])
            _density(ax, x, y)
            _draw_gate(ax, gate, x_ch, y_ch, sx, sy)
            ax.set_ylabel(label_for(y_ch))
            _data_ticks(ax.yaxis, ticks_for(y_ch), ax.get_ylim())
        _data_ticks(ax.xaxis, ticks_for(x_ch), ax.get_xlim())
        ax.set_xlabel(label_for(x_ch))
        title = f"{gate.name}: {n_in:,} of {gate.parent or 'all events'} ({pct:.1f}%)"
        ax.set_title(title, fontsize=9)
        fig.suptitle(sample_name + ("  SYNTHETIC DATA" if synthetic else ""), fontsize=8, y=0.995)
        for ext in formats:
            target = out_dir / f"{figure_stem(gate.name)}.{ext}"
            save_figure(fig, target, ext)
            written.append(target)
        plt.close(fig)
    return written


def _density(ax: object, x: Array, y: Array) -> None:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size == 0:
        return
    xl = np.percentile(x, [0.05, 99.95])
    yl = np.percentile(y, [0.05, 99.95])
    pad_x = (xl[1] - xl[0]) * 0.05 or 1.0
    pad_y = (yl[1] - yl[0]) * 0.05 or 1.0
    rx = (xl[0] - pad_x, xl[1] + pad_x)
    ry = (yl[0] - pad_y, yl[1] + pad_y)
    h, _, _ = np.histogram2d(x, y, bins=BINS, range=(rx, ry))
    img = np.log1p(h.T)
    img[img == 0] = np.nan
    ax.imshow(  # type: ignore[attr-defined]
        img,
        origin="lower",
        extent=(*rx, *ry),
        aspect="auto",
        cmap="viridis",
        interpolation="nearest",
    )
    ax.set_xlim(*rx)  # type: ignore[attr-defined]
    ax.set_ylim(*ry)  # type: ignore[attr-defined]


def _draw_range_1d(ax: object, gate: Gate, sx: Scale) -> None:
    if isinstance(gate, RangeGate):
        for v in (gate.lo[0], gate.hi[0]):
            if v is not None:
                ax.axvline(float(sx(np.array([v]))[0]), color="crimson", lw=1.5)  # type: ignore[attr-defined]


def _draw_gate(ax: object, gate: Gate, x_ch: str, y_ch: str, sx: Scale, sy: Scale) -> None:
    xlim = ax.get_xlim()  # type: ignore[attr-defined]
    ylim = ax.get_ylim()  # type: ignore[attr-defined]
    if isinstance(gate, PolygonGate):
        v = np.asarray(gate.vertices, dtype=np.float64)
        px = np.clip(sx(v[:, 0]), xlim[0] - 1, xlim[1] + 1)
        py = np.clip(sy(v[:, 1]), ylim[0] - 1, ylim[1] + 1)
        # shade the gated region too: an "outside the corner" gate (CD56+ or CD16+) has most of
        # its edges beyond the axes, and a lone outline would not say which side is inside
        ax.fill(px, py, facecolor=(0.86, 0.08, 0.24, 0.08), edgecolor="crimson", lw=1.5)  # type: ignore[attr-defined]
        ax.set_xlim(*xlim)  # type: ignore[attr-defined]
        ax.set_ylim(*ylim)  # type: ignore[attr-defined]
    else:
        dims = [d.channel for d in gate.dims]
        bounds = {ch: (lo, hi) for ch, lo, hi in zip(dims, gate.lo, gate.hi, strict=True)}
        x_lo, x_hi = bounds.get(x_ch, (None, None))
        y_lo, y_hi = bounds.get(y_ch, (None, None))
        x0 = float(sx(np.array([x_lo]))[0]) if x_lo is not None else xlim[0]
        x1 = float(sx(np.array([x_hi]))[0]) if x_hi is not None else xlim[1]
        y0 = float(sy(np.array([y_lo]))[0]) if y_lo is not None else ylim[0]
        y1 = float(sy(np.array([y_hi]))[0]) if y_hi is not None else ylim[1]
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="crimson", lw=1.5)  # type: ignore[attr-defined]
        ax.set_xlim(*xlim)  # type: ignore[attr-defined]
        ax.set_ylim(*ylim)  # type: ignore[attr-defined]


def decade_ticks(
    scale: Scale, lo: float, hi: float
) -> tuple[list[tuple[float, str]], list[float]] | None:
    """Where a transformed axis from ``lo`` to ``hi`` shows its channel's own values.

    Cytometry software labels a logicle, log or asinh axis in the instrument's units, not in
    the transform's: 0 and the decades ±10ᵏ as major ticks, 2–9 × 10ᵏ as minor ticks (Parks,
    Roederer & Moore, Cytometry A 2006;69:541-551). The positions come from the scale
    itself, so the ticks are right for whatever width the logicle was given. Labels that would
    overlap in the compressed linear part near zero are left off, 0 and the largest decades
    first; crowded minor ticks likewise.

    Returns
    -------
    tuple or None
        ``(position, label)`` of each major tick and the positions of the minor ticks, or None
        for a linear scale or one without an inverse (matplotlib's own ticks serve).
    """
    inverse = getattr(scale, "inverse", None)
    if inverse is None or isinstance(scale, Linear):  # a linear axis: matplotlib's ticks
        return None
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return None
    raw_lo, raw_hi = _raw_value(inverse, lo), _raw_value(inverse, hi)
    if not (math.isfinite(raw_lo) and math.isfinite(raw_hi)) or raw_hi <= raw_lo:
        return None
    biggest = max(abs(raw_lo), abs(raw_hi))
    if biggest < 1.0:
        return None
    decades = range(math.floor(math.log10(biggest)) + 1)
    majors = [0.0] if raw_lo <= 0.0 <= raw_hi else []
    # larger magnitudes first: they are the ones a reader looks for
    majors += [s * 10.0**k for k in reversed(decades) for s in (1.0, -1.0)]
    minors = [s * m * 10.0**k for k in decades for m in range(2, 10) for s in (1.0, -1.0)]
    span = hi - lo

    def place(values: list[float]) -> list[tuple[float, float]]:
        inside = [v for v in values if raw_lo <= v <= raw_hi]
        if not inside:
            return []
        pos = np.asarray(scale(np.asarray(inside, dtype=np.float64)), dtype=np.float64)
        return [(float(p), v) for p, v in zip(pos, inside, strict=True) if lo <= p <= hi]

    labelled: list[tuple[float, str]] = []
    for p, v in place(majors):
        if all(abs(p - q) >= MIN_LABEL_GAP * span for q, _ in labelled):
            labelled.append((p, _decade_label(v)))
    if len(labelled) < 2:
        # less than a decade in view (a zoomed CD45 or SSC axis): 2 and 5 × 10ᵏ get labels too
        halves = [s * m * 10.0**k for k in reversed(decades) for m in (5, 2) for s in (1.0, -1.0)]
        for p, v in place(halves):
            if all(abs(p - q) >= MIN_LABEL_GAP * span for q, _ in labelled):
                labelled.append((p, _decade_label(v)))
    kept: list[float] = []
    taken = [p for p, _ in labelled]
    for p, _v in sorted(place(minors)):
        if all(abs(p - q) >= MIN_MINOR_GAP * span for q in (*taken, *kept[-1:])):
            kept.append(p)
    return sorted(labelled), kept


def _raw_value(inverse: Callable[[Any], Any], y: float) -> float:
    return float(np.asarray(inverse(y), dtype=np.float64).reshape(-1)[0])


def _decade_label(v: float) -> str:
    """``0``, ``10³``, ``−10²`` or ``5×10⁴``."""
    if v == 0.0:
        return "0"
    exponent = math.floor(math.log10(abs(v)) + 1e-9)
    mantissa = round(abs(v) / 10.0**exponent)
    power = "10" + str(exponent).translate(_SUPERSCRIPT)
    text = power if mantissa == 1 else f"{mantissa}×{power}"
    return f"−{text}" if v < 0 else text


def _data_ticks(axis: Any, scale: Scale, limits: tuple[float, float]) -> None:
    if getattr(scale, "linear", False):  # a linear rescaling (FlowJo's scatter, to 0–1)
        _rescaled_ticks(axis, scale, limits)
        return
    ticks = decade_ticks(scale, float(limits[0]), float(limits[1]))
    if ticks is None or len(ticks[0]) < 2:
        # the transform's own ticks say more; on a linear scatter axis in thousands, as
        # cytometry software writes them ("50K"), where six digits would run into each other
        if max(abs(limits[0]), abs(limits[1])) >= THOUSANDS_FROM:
            from matplotlib.ticker import FuncFormatter

            axis.set_major_formatter(FuncFormatter(_in_thousands))
        return
    major, minor = ticks
    axis.set_ticks([p for p, _ in major], [label for _, label in major])
    _minor_marks(axis, minor)


def _rescaled_ticks(axis: Any, scale: Any, limits: tuple[float, float]) -> None:
    """Ticks at round values of the channel's own units on an axis ``scale`` rescales
    linearly, labelled as cytometry software labels such an axis ("50K", not 0.19)."""
    from matplotlib.ticker import MaxNLocator

    lo, hi = sorted(float(scale.inverse(v)) for v in limits)
    raw = [v for v in MaxNLocator(nbins=6).tick_values(lo, hi) if lo <= v <= hi]
    positions = np.asarray(scale(np.asarray(raw, dtype=np.float64)), dtype=np.float64)
    big = max(abs(lo), abs(hi)) >= THOUSANDS_FROM
    axis.set_ticks(
        [float(p) for p in positions], [_in_thousands(v) if big else f"{v:g}" for v in raw]
    )


def _in_thousands(value: float, _position: object = None) -> str:
    """``50K`` for 50,000; values under a thousand as they are."""
    if abs(value) < 1000.0:
        return f"{value:g}"
    return f"{value / 1000.0:g}K".replace("-", "−")


def _minor_marks(axis: Any, positions: list[float]) -> None:
    """Minor tick marks drawn as one line of tick markers: matplotlib builds a whole tick (two
    marks, two labels, a grid line) for each minor tick, and a logicle axis has dozens, which
    took a third of the figures' time. The marks are matplotlib's own tick marker, outward,
    at its default minor size and width."""
    from matplotlib.markers import TICKDOWN, TICKLEFT
    from matplotlib.transforms import blended_transform_factory

    if not positions:
        return
    ax = axis.axes
    zeros = [0.0] * len(positions)
    if axis.axis_name == "x":
        xy, marker = (positions, zeros), TICKDOWN
        transform = blended_transform_factory(ax.transData, ax.transAxes)
    else:
        xy, marker = (zeros, positions), TICKLEFT
        transform = blended_transform_factory(ax.transAxes, ax.transData)
    ax.plot(
        *xy,
        linestyle="none",
        marker=marker,
        markersize=MINOR_TICK_POINTS,
        markeredgewidth=MINOR_TICK_WIDTH,
        color="black",
        transform=transform,
        clip_on=False,
        scalex=False,
        scaley=False,
    )
