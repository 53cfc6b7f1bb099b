"""Gating figures label transformed axes in the channel's own units.

Truth is hand arithmetic: on a log10 axis the tick for 10⁴ sits at 4; on an asinh axis with
cofactor 5 the tick for 10³ sits at asinh(1000 / 5) and 0 at 0.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from numpy.typing import NDArray

from nkpanel.flow.plots import MIN_LABEL_GAP, decade_ticks
from nkpanel.flow.transforms import Asinh

matplotlib.use("Agg")


class _Log10:
    """log10, the scale scatter channels are gated on; inverse 10^y."""

    def __call__(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.log10(np.clip(x, 1.0, None))

    def inverse(self, y: float) -> float:
        return float(10.0**y)


def test_log_axis_decades_sit_at_their_logarithms() -> None:
    ticks = decade_ticks(_Log10(), math.log10(550.0), math.log10(2.5e5))
    assert ticks is not None
    major, minor = ticks
    assert major == [(3.0, "10³"), (4.0, "10⁴"), (5.0, "10⁵")]
    # 6..9 × 10², 2..9 × 10³, 2..9 × 10⁴, 2 × 10⁵: nothing crowded on a log axis
    assert len(minor) == 4 + 8 + 8 + 1
    assert minor[0] == pytest.approx(math.log10(600.0))
    assert minor[-1] == pytest.approx(math.log10(2e5))


def test_asinh_axis_has_zero_and_drops_labels_that_would_overlap() -> None:
    scale = Asinh(5.0)
    lo, hi = math.asinh(-2000.0 / 5.0), math.asinh(20000.0 / 5.0)
    ticks = decade_ticks(scale, lo, hi)
    assert ticks is not None
    major, _minor = ticks
    labels = dict((label, p) for p, label in major)
    assert labels["0"] == 0.0
    assert labels["10³"] == pytest.approx(math.asinh(200.0))
    assert labels["10⁴"] == pytest.approx(math.asinh(2000.0))
    assert labels["−10³"] == pytest.approx(-math.asinh(200.0))
    # 10⁰ sits at asinh(0.2) = 0.199, too close to 0 to carry its own label
    assert "10⁰" not in labels
    positions = sorted(p for p, _ in major)
    assert min(np.diff(positions)) >= MIN_LABEL_GAP * (hi - lo)


def test_less_than_a_decade_in_view_labels_two_and_five_times() -> None:
    ticks = decade_ticks(_Log10(), math.log10(6e3), math.log10(6e4))
    assert ticks is not None
    labels = {label: p for p, label in ticks[0]}
    assert labels["10⁴"] == pytest.approx(4.0)
    assert labels["2×10⁴"] == pytest.approx(math.log10(2e4))
    assert labels["5×10⁴"] == pytest.approx(math.log10(5e4))


def test_a_scale_without_inverse_keeps_matplotlib_ticks() -> None:
    def identity(v: NDArray[np.float64]) -> NDArray[np.float64]:
        return v

    assert decade_ticks(identity, 0.0, 100.0) is None


def test_figure_axes_carry_the_labels() -> None:
    import matplotlib.pyplot as plt

    from nkpanel.flow.plots import _data_ticks

    fig, ax = plt.subplots()
    try:
        ax.set_xlim(math.log10(550.0), math.log10(2.5e5))
        _data_ticks(ax.xaxis, _Log10(), ax.get_xlim())
        assert [t.get_text() for t in ax.get_xticklabels()] == ["10³", "10⁴", "10⁵"]
        assert list(ax.get_xticks()) == [3.0, 4.0, 5.0]
    finally:
        plt.close(fig)


def test_minor_ticks_are_drawn_at_the_decades_multiples() -> None:
    """The minor marks (drawn as one line of tick markers, not matplotlib ticks) stand at
    2–9 × 10ᵏ in the plotted coordinates: log10(600)…log10(2×10⁵) on this axis."""
    import matplotlib.pyplot as plt

    from nkpanel.flow.plots import _data_ticks

    fig, ax = plt.subplots()
    try:
        ax.set_xlim(math.log10(550.0), math.log10(2.5e5))
        _data_ticks(ax.xaxis, _Log10(), ax.get_xlim())
        (marks,) = ax.get_lines()
        x = np.asarray(marks.get_xdata(), dtype=np.float64)
        assert x[0] == pytest.approx(math.log10(600.0))
        assert x[-1] == pytest.approx(math.log10(2e5))
        assert len(x) == 4 + 8 + 8 + 1
        assert ax.get_xlim() == pytest.approx((math.log10(550.0), math.log10(2.5e5)))
    finally:
        plt.close(fig)


def test_a_linear_scatter_axis_is_labelled_in_thousands() -> None:
    """FSC and SSC run to 262,144 on a linear axis: labelled 50K, 100K… (six digits ran into
    each other under fixed margins), values under a thousand as they are."""
    import matplotlib.pyplot as plt

    from nkpanel.flow.plots import _data_ticks, _in_thousands

    assert [_in_thousands(v) for v in (0.0, 500.0, 50_000.0, 125_000.0, -2_500.0)] == [
        "0",
        "500",
        "50K",
        "125K",
        "−2.5K",
    ]
    fig, ax = plt.subplots()
    try:
        ax.set_xlim(0.0, 250_000.0)
        _data_ticks(ax.xaxis, lambda v: v, ax.get_xlim())
        fig.canvas.draw()
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert labels[:3] == ["0", "50K", "100K"]
    finally:
        plt.close(fig)


def test_a_gate_title_counts_every_event_not_the_points_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parent larger than the points drawn is sampled for the plot; the title still gives
    the gate's count and share of all its parent's events (counted here by hand)."""
    import nkpanel.flow.plots as plots
    from nkpanel.flow.gates import Dimension, RangeGate

    monkeypatch.setattr(plots, "MAX_POINTS", 500)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 100.0, 4000)
    gate = RangeGate("Low", None, (Dimension("A"),), (None,), (30.0,))
    member = {"Low": x < 30.0}
    written = plots.plot_gates(
        sample_name="synthetic",
        gates=(gate,),
        membership=member,
        values=lambda ch: x,
        scale_for=lambda ch: lambda v: np.asarray(v, dtype=np.float64),  # type: ignore[arg-type,return-value]
        label_for=lambda ch: ch,
        channel_for_marker={},
        out_dir=tmp_path,
        synthetic=True,
        formats=("svg",),
    )
    svg = written[0].read_text()
    n = int(np.count_nonzero(x < 30.0))
    assert f"Low: {n:,} of all events ({100 * n / 4000:.1f}%)" in svg


def test_figures_are_the_same_bytes_on_every_run(tmp_path: Path) -> None:
    """A re-run that changes nothing changes no figure: every SVG differed on every run (its
    creation date and random element ids; audit 18)."""
    from nkpanel.flow.analyze import FlowSettings, analyze_sample
    from nkpanel.flow.output import write_sample_outputs
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube

    tube = simulate_tube(SimulationSpec(n_events=20_000, seed=4))
    analysis = analyze_sample(tube.to_sample(), FlowSettings())
    first = write_sample_outputs(analysis, tmp_path / "a", plots=True).paths
    second = write_sample_outputs(analysis, tmp_path / "b", plots=True).paths
    figures = [p for p in first if p.suffix in (".svg", ".png")]
    assert len(figures) >= 8
    for p, q in zip(first, second, strict=True):
        if p.suffix in (".svg", ".png"):
            assert p.read_bytes() == q.read_bytes(), p.name


def test_a_pdf_figure_is_the_same_bytes_a_second_later(tmp_path: Path) -> None:
    """PDF keeps its date under another key than SVG ("CreationDate"; review 19)."""
    import time

    import matplotlib.pyplot as plt

    from nkpanel._figures import save_figure

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    save_figure(fig, tmp_path / "a.pdf", "pdf")
    time.sleep(1.1)
    save_figure(fig, tmp_path / "b.pdf", "pdf")
    plt.close(fig)
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
