"""Polygon membership: nkpanel's shortcuts against flowutils' kernel (the one FlowKit uses)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nkpanel.flow.gates as gates_module
from nkpanel.flow.autogate import _oblique_polygon
from nkpanel.flow.gates import (
    Dimension,
    GateTree,
    PolygonGate,
    RangeGate,
    _chain_strips,
    _ratio_band,
    _under_chain,
    gate_events,
    points_in_polygon,
)


def _kernel(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    from flowutils.gating import points_in_polygon as kernel

    return np.asarray(kernel(vertices, np.column_stack((x, y))), dtype=bool)


def _band(rng: np.random.Generator, n: int) -> np.ndarray:
    xs = np.sort(rng.uniform(1.0, 3e5, n))
    trend = np.cumsum(rng.normal(0.0, 0.08, n))
    lower = xs * np.exp(trend - rng.uniform(0.05, 0.5))
    upper = xs * np.exp(trend + rng.uniform(0.0, 0.3))
    return np.r_[np.c_[xs, lower], np.c_[xs[::-1], upper[::-1]]]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 16))
def test_band_polygons_match_the_kernel(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    vertices = _band(rng, n)
    assert _ratio_band(vertices) is not None
    x = rng.uniform(-1e4, 3.3e5, 20_000)
    y = x * np.exp(rng.normal(0.0, 0.6, x.size)) + rng.normal(0.0, 2e3, x.size)
    # and points exactly on every edge, at the vertices, and within rounding of them, where
    # the kernel's own rule must decide
    ends = np.roll(vertices, -1, axis=0)
    t = rng.random((vertices.shape[0], 50))
    on_edges = vertices[:, None, :] + t[..., None] * (ends - vertices)[:, None, :]
    near = vertices[:, None, :] * (1 + rng.choice([-1, 0, 1], (vertices.shape[0], 5, 2)) * 1e-15)
    extra = np.concatenate((on_edges.reshape(-1, 2), near.reshape(-1, 2), vertices))
    x, y = np.r_[x, extra[:, 0]], np.r_[y, extra[:, 1]]
    assert np.array_equal(points_in_polygon(x, y, vertices), _kernel(x, y, vertices))


def _edge_points(rng: np.random.Generator, vertices: np.ndarray) -> np.ndarray:
    """Points exactly on every edge, at the vertices, and within rounding of them."""
    ends = np.roll(vertices, -1, axis=0)
    t = rng.random((vertices.shape[0], 50))
    on_edges = vertices[:, None, :] + t[..., None] * (ends - vertices)[:, None, :]
    near = vertices[:, None, :] * (1 + rng.choice([-1, 0, 1], (vertices.shape[0], 5, 2)) * 1e-15)
    return np.concatenate((on_edges.reshape(-1, 2), near.reshape(-1, 2), vertices))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.floats(0.2, 3.0),
    debris=st.booleans(),
)
def test_oblique_gates_match_the_kernel(seed: int, k: float, debris: bool) -> None:
    """The oblique lymphocyte gate (the region under a curve in FSC/SSC): the chain shortcut
    gives the kernel's answer for every point, on and near every edge included."""
    rng = np.random.default_rng(seed)
    c = np.log10(rng.uniform(1e4, 4e4)) + k * np.log10(rng.uniform(3e4, 9e4))
    left = float(rng.uniform(5e3, 3e4)) if debris else None
    vertices = np.asarray(
        _oblique_polygon(c, k, ceiling=3.6e4, left=left, right=2.65e5, bottom=-2.62e5)
    )
    assert _under_chain(vertices) is not None
    x = rng.uniform(-2e4, 2.8e5, 20_000)
    y = rng.lognormal(np.log(2e4), 0.8, x.size) + rng.normal(0.0, 2e3, x.size)
    extra = _edge_points(rng, vertices)
    x, y = np.r_[x, extra[:, 0]], np.r_[y, extra[:, 1]]
    assert np.array_equal(points_in_polygon(x, y, vertices), _kernel(x, y, vertices))


def test_a_steep_step_at_a_strip_boundary_matches_the_kernel() -> None:
    """A near-vertical step in a chain (two vertices 10^-2 to 10^-6 apart, as a hand-drawn
    "vertical" part of a template gives) right at a boundary of the shortcut's strips: points
    within a few ulps of that boundary, just under a strip's tabulated floor, may be placed in
    the strip beside theirs; they must still get the kernel's answer (the review's
    reproducer: up to 4,764 of 36,855 such points differed)."""
    rng = np.random.default_rng(3)
    mismatched = tested = 0
    for top in (262_144.0, 4_194_304.0):
        span = 1.01 * top
        edges = np.linspace(-span, span, 4097)
        for k in rng.choice(np.arange(1, 4096), 40, replace=False):
            b = edges[k]
            for dx, (y_lo, y_hi) in ((1e-2, (1.0, 2.0)), (1e-6, (1_000.0, 50_000.0))):
                xs = np.array([-span, b - dx / 2, b + dx / 2, span])
                ys = np.array([y_lo, y_lo, y_hi, y_hi])
                v = np.vstack(([xs[0], -top], np.column_stack((xs, ys)), [xs[-1], -top]))
                chain = _under_chain(v)
                assert chain is not None
                floor, _, x0, per = _chain_strips(chain)
                px = b + np.arange(-4, 5) * np.spacing(abs(b))
                strip = np.clip(((px - x0) * per).astype(np.intp), 0, floor.size - 1)
                py = np.nextafter(floor[strip], -np.inf)
                ok = np.isfinite(py)
                px, py = px[ok], py[ok]
                ours, theirs = points_in_polygon(px, py, v), _kernel(px, py, v)
                mismatched += int(np.count_nonzero(ours != theirs))
                tested += px.size
    assert tested > 1000
    assert mismatched == 0


def test_oblique_gate_by_hand() -> None:
    """log10 SSC + log10 FSC < 9 under a ceiling of SSC 10^4 (hand-placed points): the curve
    meets the ceiling at FSC 10^5; at FSC 2·10^5 the edge is at SSC 5,000."""
    edge = _oblique_polygon(9.0, 1.0, ceiling=1e4, left=None, right=3e5, bottom=-1.0)
    vertices = np.asarray(edge)
    x = np.array([5e4, 5e4, 2e5, 2e5, 1e5, 2.9e5, 3.1e5])
    y = np.array([9e3, 1.1e4, 4.9e3, 5.2e3, 9.8e3, 100.0, 100.0])
    inside = [True, False, True, False, True, True, False]
    assert points_in_polygon(x, y, vertices).tolist() == inside


def test_shapes_that_are_not_bands_take_the_kernel_alone() -> None:
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    assert _ratio_band(square) is None  # a vertex at x = 0
    bowtie = np.array([[1.0, 1.0], [2.0, 3.0], [2.0, 1.0], [1.0, 3.0]])
    assert _ratio_band(bowtie) is None  # upper chain below the lower one
    rng = np.random.default_rng(1)
    triangle = np.array([[1.0, 1.0], [5.0, 2.0], [3.0, 6.0]])
    x, y = rng.uniform(0, 6, 5000), rng.uniform(0, 7, 5000)
    assert _ratio_band(triangle) is None
    assert np.array_equal(points_in_polygon(x, y, triangle), _kernel(x, y, triangle))


def test_integer_events_on_a_rectangle_drawn_as_polygon() -> None:
    """A rectangle drawn as a 4-vertex polygon is a band too; integer events on its edges get
    the kernel's answer (it leaves most of the right edge out)."""
    v = np.array([[200.0, 100.0], [600.0, 100.0], [600.0, 400.0], [200.0, 400.0]])
    g = np.mgrid[150:651:1, 50:451:1].reshape(2, -1).T.astype(float)
    assert _ratio_band(v) is not None
    assert np.array_equal(points_in_polygon(g[:, 0], g[:, 1], v), _kernel(g[:, 0], g[:, 1], v))


def test_band_of_a_hand_drawn_singlet_gate() -> None:
    """A point on the diagonal is inside, points far above or below are not (hand-placed)."""
    vertices = np.array([[10.0, 8.0], [100.0, 80.0], [100.0, 110.0], [10.0, 11.0]])
    x = np.array([50.0, 50.0, 50.0, 5.0, 150.0])
    y = np.array([50.0, 20.0, 90.0, 5.0, 150.0])
    assert points_in_polygon(x, y, vertices).tolist() == [True, False, False, False, False]


# ---- block-by-block evaluation: the same membership as one pass over all events ----------


def _awkward_values(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """Values with NaN, ±inf, exact zeros and repeats sprinkled in."""
    v = rng.normal(0.0, scale, n)
    if n:
        k = max(1, n // 50)
        v[rng.integers(0, n, k)] = np.nan
        v[rng.integers(0, n, k)] = np.inf
        v[rng.integers(0, n, k)] = -np.inf
        v[rng.integers(0, n, k)] = 0.0
    return v


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("n", [0, 1, 5, 65_536, 300_001])
def test_range_gates_in_blocks_match_one_pass(
    n: int, threads: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gate_events' block-by-block range test (threaded for large inputs) gives
    ``RangeGate.contains(values) & parent`` exactly, with NaN and ±inf among the values,
    open sides, and with and without a parent (a parent of one event or none is gated on its
    own events)."""
    monkeypatch.setenv("NKPANEL_THREADS", threads)
    rng = np.random.default_rng(n)
    dims = (Dimension("A"), Dimension("B"), Dimension("C"))
    values = {d.channel: _awkward_values(rng, n, 1e3) for d in dims}
    gates = [
        RangeGate("one side", None, dims[:1], (-10.0,), (None,)),
        RangeGate("box", None, dims[:2], (-500.0, None), (500.0, 0.0)),
        RangeGate("three", None, dims, (None, -1e3, 0.0), (1e3, None, None)),
        RangeGate("open", None, dims[:1], (None,), (None,)),
    ]
    for parent in (None, rng.random(n) < 0.8):
        for gate in gates:
            expected = gate.contains([values[d.channel] for d in gate.dims])
            if parent is not None:
                expected = expected & parent
            got, _ = gate_events(
                gate,
                n,
                parent,
                lambda p=parent: np.flatnonzero(p),
                lambda d, i: values[d.channel] if i is None else values[d.channel][i],
            )
            assert got.dtype == np.bool_
            assert np.array_equal(got, expected)


def _three_shapes(rng: np.random.Generator) -> list[np.ndarray]:
    """A band, the region under a chain (an automated lymphocyte gate's shape) and a triangle."""
    chain = _oblique_polygon(9.3, 1.2, ceiling=3.6e4, left=1e4, right=2.65e5, bottom=-2.62e5)
    triangle = np.array([[1e4, 1e4], [2.5e5, 2e4], [1e5, 2.5e5]])
    return [_band(rng, 8), np.asarray(chain), triangle]


@pytest.mark.parametrize("threads", ["1", "2"])
def test_polygons_in_blocks_match_one_pass(threads: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """points_in_polygon over many blocks and threads gives what one block over every point
    gives (NaN and ±inf among the points), and the kernel's answer for finite points, for a
    band, the region under a chain, and another shape."""
    monkeypatch.setenv("NKPANEL_THREADS", threads)
    rng = np.random.default_rng(11)
    n = 300_007
    for vertices in _three_shapes(rng):
        x = np.abs(_awkward_values(rng, n, 1e5))
        y = np.abs(_awkward_values(rng, n, 1e5))
        got = points_in_polygon(x, y, vertices)
        monkeypatch.setattr(gates_module, "_BLOCK", 10**9)
        monkeypatch.setenv("NKPANEL_THREADS", "1")
        whole = points_in_polygon(x, y, vertices)
        monkeypatch.undo()
        monkeypatch.setenv("NKPANEL_THREADS", threads)
        assert np.array_equal(got, whole)
        finite = np.isfinite(x) & np.isfinite(y)
        assert not got[~finite].any()
        assert np.array_equal(got[finite], _kernel(x[finite], y[finite], vertices))


@pytest.mark.parametrize("threads", ["1", "2"])
def test_polygons_within_a_parent_are_the_polygon_and_the_parent(
    threads: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tested within a parent mask (only its points looked at), a band, the region under a
    chain and another shape give the kernel's answer there and nothing elsewhere."""
    monkeypatch.setenv("NKPANEL_THREADS", threads)
    rng = np.random.default_rng(12)
    n = 300_007
    for vertices in _three_shapes(rng):
        x = rng.uniform(-1e4, 3e5, n)
        y = x * np.exp(rng.normal(0.0, 0.6, n)) + rng.normal(0.0, 2e3, n)
        parent = rng.random(n) < 0.6
        got = points_in_polygon(x, y, vertices, within=parent)
        assert np.array_equal(got, _kernel(x, y, vertices) & parent)


def test_root_gates_on_no_events_hold_none() -> None:
    """A gate tree evaluated on zero events gives empty memberships; a root gate looked up
    the events of a parent named 'None' (KeyError) once gates began testing only a small
    parent's events (review 17)."""
    raw = np.zeros((0, 2))
    cols = {"Time": 0, "FSC-A": 0, "SSC-A": 1}
    for gate in (
        RangeGate("Time", None, (Dimension("Time", compensated=False),), (0.0,), (None,)),
        PolygonGate(
            "Cells",
            None,
            (Dimension("FSC-A", compensated=False), Dimension("SSC-A", compensated=False)),
            ((1.0, 1.0), (5.0, 1.0), (3.0, 5.0)),
        ),
    ):
        (members,) = GateTree((gate,)).evaluate(raw, raw, cols).values()
        assert members.shape == (0,) and members.dtype == np.bool_
