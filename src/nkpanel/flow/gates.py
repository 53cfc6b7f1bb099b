"""Gates as plain records and their evaluation on NumPy arrays.

A gate's coordinates live in the transformed space of its dimensions (as in Gating-ML 2.0, where
each dimension names a compensation and a transformation). Automated gating builds these records;
:mod:`nkpanel.flow.gatingml` writes them as Gating-ML 2.0 so a person can open, adjust and re-run
them as a template.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from nkpanel.flow.compensation import BLOCK_ROWS
from nkpanel.flow.transforms import Transform

__all__ = [
    "Dimension",
    "Gate",
    "GateTree",
    "PolygonGate",
    "RangeGate",
    "dimension_values",
    "gate_events",
    "points_in_polygon",
]

BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class Dimension:
    """A gate axis: the channel ($PnN), whether it is compensated, and its transform."""

    channel: str
    transform: Transform | None = None
    compensated: bool = True


@dataclass(frozen=True)
class RangeGate:
    """A rectangle in one or more dimensions; ``None`` leaves a side open.

    Events on the lower bound are inside and on the upper bound outside, as in Gating-ML 2.0.
    """

    name: str
    parent: str | None
    dims: tuple[Dimension, ...]
    lo: tuple[float | None, ...]
    hi: tuple[float | None, ...]

    def contains(
        self, values: Sequence[NDArray[np.float64]], within: BoolArray | None = None
    ) -> BoolArray:
        """Which points lie inside; with ``within``, only those of its points."""
        return _range_members(self, values, within)


@dataclass(frozen=True)
class PolygonGate:
    """A polygon in two dimensions (vertices in order, closed implicitly)."""

    name: str
    parent: str | None
    dims: tuple[Dimension, Dimension]
    vertices: tuple[tuple[float, float], ...]

    def contains(
        self, values: Sequence[NDArray[np.float64]], within: BoolArray | None = None
    ) -> BoolArray:
        """Which points lie inside; with ``within``, only those of its points (the rest are
        outside, untested)."""
        vertices = np.asarray(self.vertices, dtype=np.float64)
        return points_in_polygon(values[0], values[1], vertices, within=within)


Gate = RangeGate | PolygonGate


#: points tested per block by :func:`points_in_polygon` and :func:`_range_members` (half a
#: megabyte of each temporary float array): the rows compensation works on per block
_BLOCK = BLOCK_ROWS


def points_in_polygon(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    vertices: NDArray[np.float64],
    *,
    within: BoolArray | None = None,
) -> BoolArray:
    """Which points lie inside a closed polygon, by flowutils' C kernel.

    The kernel is the one FlowKit evaluates Gating-ML polygons with, so exported gates give
    the same membership in both, points on an edge included (the kernel's own rule decides
    them). Points outside the bounding box are never tested, nor, for a band polygon (see
    :func:`_ratio_band`) or the region under a chain (:func:`_under_chain`), points clearly
    inside or outside it. A million points are worked on in row blocks by a few threads
    (:func:`~nkpanel._threads.for_row_blocks`). With ``within``, only its points are
    looked at (a gate's parent): the others are outside.
    """
    from nkpanel._threads import for_row_blocks

    if within is not None and within.shape != x.shape:  # a block's slice would cut it short
        raise ValueError(f"within holds {within.shape[0]} events for {x.shape[0]} points")
    shape = _Shape.of(np.ascontiguousarray(vertices, dtype=np.float64))
    out = np.empty(x.shape[0], dtype=bool)

    def work(start: int, stop: int) -> None:
        # in blocks whose temporaries stay in the cache (and are reused by the allocator
        # rather than mapped afresh): a third of the time of one pass over a thread's range
        for i in range(start, stop, _BLOCK):
            j = min(i + _BLOCK, stop)
            out[i:j] = shape.contains(x[i:j], y[i:j], None if within is None else within[i:j])

    for_row_blocks(x.shape[0], work)
    return out


@dataclass(frozen=True)
class _Shape:
    """A polygon with what its shortcuts need, worked out once for every block of points."""

    vertices: NDArray[np.float64]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]
    band: tuple[tuple[float, float], tuple[float, float]] | None
    #: for the region under a chain: its strips' tables (:func:`_chain_strips`)
    strips: tuple[NDArray[np.float64], NDArray[np.float64], float, float] | None

    @classmethod
    def of(cls, vertices: NDArray[np.float64]) -> _Shape:
        band = _ratio_band(vertices)
        chain = None if band is not None else _under_chain(vertices)
        strips = None if chain is None else _chain_strips(chain)
        return cls(vertices, vertices.min(axis=0), vertices.max(axis=0), band, strips)

    def contains(
        self, x: NDArray[np.float64], y: NDArray[np.float64], within: BoolArray | None = None
    ) -> BoolArray:
        from flowutils.gating import points_in_polygon as _kernel

        lo, hi = self.lo, self.hi
        if self.band is not None:
            # inside the band's x range, y/x decides all but the points near an edge (the y
            # range of the bounding box is implied by the ratio bounds)
            # points on or within rounding of an edge go to the kernel, whose own rule decides
            # them (it is not "edges inclusive" everywhere): only clear cases are decided here
            (low_min, low_max), (high_min, high_max) = self.band
            eps = _ROUNDING_MARGIN
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = y / x
            in_box = x >= lo[0]
            in_box &= x <= hi[0]
            in_box &= ratio >= low_min * (1 - eps)
            in_box &= ratio <= high_max * (1 + eps)
            inside: BoolArray = x > lo[0]
            inside &= x < hi[0]
            inside &= ratio > low_max * (1 + eps)
            inside &= ratio < high_min * (1 - eps)
            if within is not None:
                in_box &= within
                inside &= within
            # the points clearly inside are in the box too (narrower bounds on both sides):
            # the box less them
            in_box ^= inside
            cand = np.flatnonzero(in_box)
        else:
            inside = np.zeros(x.shape[0], dtype=bool)
            box = x >= lo[0]
            box &= x <= hi[0]
            box &= y >= lo[1]
            box &= y <= hi[1]
            if within is not None:
                box &= within
            cand = np.flatnonzero(box)
            if self.strips is not None and cand.size:
                cand = _decide_under_chain(x, y, cand, float(lo[1]), self.strips, inside)
        if cand.size:
            pts = np.column_stack((np.take(x, cand), np.take(y, cand)))
            inside[cand] = np.asarray(_kernel(self.vertices, pts), dtype=bool)
        return inside


def _decide_under_chain(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    cand: NDArray[np.intp],
    bottom: float,
    strips: tuple[NDArray[np.float64], NDArray[np.float64], float, float],
    inside: BoolArray,
) -> NDArray[np.intp]:
    """Mark ``inside`` the points ``cand`` (in the bounding box; ``inside`` is False at each)
    that lie clearly under the chain whose ``strips`` (:func:`_chain_strips`) are given and
    above ``bottom``; return the ones it cannot decide (within rounding of an edge, or in the
    strips at the ends), for the kernel."""
    cx, cy = np.take(x, cand), np.take(y, cand)
    edge_lo, edge_hi, x0, per_strip = strips
    strip = ((cx - x0) * per_strip).astype(np.intp)
    np.clip(strip, 0, edge_lo.size - 1, out=strip)
    clear = cy < np.take(edge_lo, strip)
    clear &= cy > bottom + _ROUNDING_MARGIN * (abs(bottom) + 1.0)
    # ``inside`` is False at every candidate: writing the whole mask there marks the clear
    # ones (boolean indexing by an unpatterned mask costs several times a gather)
    inside[cand] = clear
    undecided = cy <= np.take(edge_hi, strip)
    undecided &= ~clear
    return np.take(cand, np.flatnonzero(undecided))


#: relative margin around a band's ratio bounds, or a chain's height, within which the kernel
#: decides (far above the rounding of y/x, of the chain's interpolation and of the kernel's
#: own arithmetic)
_ROUNDING_MARGIN = 1e-9


def _ratio_band(
    vertices: NDArray[np.float64],
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The y/x ranges of a band polygon's lower and upper edges, or ``None`` for any other shape.

    A band is a lower chain of vertices with x strictly increasing, then an upper chain back
    over the same x values, above the lower one, all at x > 0 and y > 0 (a singlet gate drawn
    along the FSC-A/FSC-H diagonal). Along a straight edge y/x moves monotonically between its
    end values, so every point of the lower edge has a ratio within the lower vertices' range,
    and likewise the upper edge. A point inside the x range whose y/x is at least the largest
    lower ratio and at most the smallest upper ratio is inside; one whose ratio is below every
    lower or above every upper ratio is outside. Only the points between need the kernel, which
    for a narrow diagonal band is a small fraction.
    """
    n = vertices.shape[0]
    if n < 4 or n % 2:
        return None
    lower, upper = vertices[: n // 2], vertices[n // 2 :][::-1]
    xs = lower[:, 0]
    if (
        not np.array_equal(upper[:, 0], xs)
        or not np.all(np.diff(xs) > 0)
        or xs[0] <= 0
        or not np.all(lower[:, 1] > 0)
        or not np.all(upper[:, 1] >= lower[:, 1])
    ):
        return None
    low, high = lower[:, 1] / xs, upper[:, 1] / xs
    return (float(low.min()), float(low.max())), (float(high.min()), float(high.max()))


def _under_chain(vertices: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """The upper edge of a polygon that is the region under an x-monotone chain, or ``None``
    for any other shape.

    Such a polygon starts at its bottom-left corner, rises straight up, runs along a chain
    of vertices with x strictly increasing, drops straight down at the right and closes
    along a flat bottom below every chain vertex (the oblique lymphocyte gate). A point
    strictly inside its x range and above the bottom is inside exactly when it lies below
    the chain at its x: the chain's height there is a linear interpolation.
    """
    n = vertices.shape[0]
    if n < 4:
        return None
    bottom = vertices[0, 1]
    chain = vertices[1:-1]
    if (
        vertices[-1, 1] != bottom
        or vertices[0, 0] != chain[0, 0]
        or vertices[-1, 0] != chain[-1, 0]
        or not np.all(np.diff(chain[:, 0]) > 0)
        or not np.all(chain[:, 1] > bottom)
    ):
        return None
    return chain


#: strips of x over which an x-monotone chain's height is tabulated (its lowest and highest
#: point in each): a point is then placed by arithmetic, not by a search
_CHAIN_STRIPS = 4096


def _chain_strips(
    chain: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], float, float]:
    """The lowest and highest point of ``chain`` (vertices with x increasing) over each of
    :data:`_CHAIN_STRIPS` equal strips of its x range, each widened to its two neighbours'
    (a point within rounding of a boundary may be placed beside its strip) and by the rounding
    margin; the strips at both ends are left open (``-inf``, ``inf``) so that points on the
    polygon's vertical sides go to the kernel. Returns the two tables, the range's start and
    the strips per unit of x."""
    xs, ys = chain[:, 0], chain[:, 1]
    edges = np.linspace(xs[0], xs[-1], _CHAIN_STRIPS + 1)
    at_edges = np.interp(edges, xs, ys)
    low = np.minimum(at_edges[:-1], at_edges[1:])
    high = np.maximum(at_edges[:-1], at_edges[1:])
    # a vertex inside a strip can be its lowest or highest point
    per_strip = _CHAIN_STRIPS / float(xs[-1] - xs[0])
    which = np.clip(((xs - xs[0]) * per_strip).astype(np.intp), 0, _CHAIN_STRIPS - 1)
    np.minimum.at(low, which, ys)
    np.maximum.at(high, which, ys)
    # a point within rounding of a strip's boundary can be placed in the strip beside it: each
    # strip's range takes in its neighbours' (the chain is continuous, so this covers the
    # chain's height wherever the point really lies, however steep the chain is there)
    low[1:] = np.minimum(low[1:], low[:-1].copy())
    low[:-1] = np.minimum(low[:-1], low[1:].copy())
    high[1:] = np.maximum(high[1:], high[:-1].copy())
    high[:-1] = np.maximum(high[:-1], high[1:].copy())
    margin = _ROUNDING_MARGIN * (np.abs(low) + np.abs(high) + 1.0)
    low -= margin
    high += margin
    low[[0, -1]] = -np.inf
    high[[0, -1]] = np.inf
    return low, high, float(xs[0]), per_strip


def gate_events(
    gate: Gate,
    n: int,
    parent: BoolArray | None,
    parent_events: Callable[[], NDArray[np.intp]],
    values: Callable[[Dimension, NDArray[np.intp] | None], NDArray[np.float64]],
) -> tuple[BoolArray, BoolArray | None]:
    """One gate's members among ``n`` events, within its ``parent`` mask (``None``: all).

    ``values(dim, idx)`` gives a dimension's values at the events ``idx`` (every event for
    ``None``); ``parent_events()`` the parent's event indices. A parent holding more than a
    quarter of the events is gated by testing every event and keeping the parent's (cheaper
    than gathering its events); a smaller one by testing its events alone, and then the
    second result says which of them are inside (else it is ``None``).
    """
    held = n if parent is None else int(np.count_nonzero(parent))
    if parent is None or 4 * held > n:  # a root gate, or most of its parent's events
        every = [values(d, None) for d in gate.dims]
        # a new array, the gate's own: the parent's points alone are tested (a parent that
        # holds every event, such as a Time gate that trimmed nothing, is no test)
        return gate.contains(every, within=None if held == n else parent), None
    idx = parent_events()
    contained = gate.contains([values(d, idx) for d in gate.dims])
    inside = np.zeros(n, dtype=bool)
    inside[idx] = contained
    return inside, contained


def _range_members(
    gate: RangeGate, values: Sequence[NDArray[np.float64]], parent: BoolArray | None
) -> BoolArray:
    """Which ``values`` lie in ``gate`` (on a lower bound inside, on an upper bound outside,
    as in Gating-ML 2.0), among ``parent`` (every event for ``None``): block by block (each
    test's mask stays in the cache) and by a few threads for a million events."""
    from nkpanel._threads import for_row_blocks

    n = values[0].shape[0]
    out = np.empty(n, dtype=bool)
    tests = list(zip(values, gate.lo, gate.hi, strict=True))

    def work(start: int, stop: int) -> None:
        for i in range(start, stop, _BLOCK):
            j = min(i + _BLOCK, stop)
            inside = out[i:j]
            if parent is None:
                inside.fill(True)
            else:
                inside[...] = parent[i:j]
            for v, lo, hi in tests:
                if lo is not None:
                    inside &= v[i:j] >= lo
                if hi is not None:
                    inside &= v[i:j] < hi

    for_row_blocks(n, work)
    return out


def dimension_values(
    dim: Dimension,
    compensated: NDArray[np.float64] | ColumnSource,
    raw: NDArray[np.float64],
    column: Mapping[str, int],
    idx: NDArray[np.intp] | None = None,
) -> NDArray[np.float64]:
    """A gate dimension's values at events ``idx`` (every event for ``None``): the compensated
    or the raw column, as the dimension says, through its transform."""
    j = column[dim.channel]
    if not dim.compensated:
        col = raw[:, j]
    elif isinstance(compensated, np.ndarray):
        col = compensated[:, j]
    else:
        col = compensated.column(j)
    v = col if idx is None else col[idx]
    return dim.transform(v) if dim.transform is not None else v


class ColumnSource(Protocol):
    """Compensated events one channel at a time."""

    def column(self, j: int) -> NDArray[np.float64]: ...


@dataclass(frozen=True)
class GateTree:
    """Gates in the order they are applied; each gate's parent comes before it."""

    gates: tuple[Gate, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for g in self.gates:
            if g.parent is not None and g.parent not in seen:
                raise ValueError(f"gate {g.name!r} comes before its parent {g.parent!r}")
            if g.name in seen:
                raise ValueError(f"two gates are named {g.name!r}")
            seen.add(g.name)

    def __getitem__(self, name: str) -> Gate:
        for g in self.gates:
            if g.name == name:
                return g
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.gates)

    def evaluate(
        self,
        compensated: NDArray[np.float64] | ColumnSource,
        raw: NDArray[np.float64],
        column: Mapping[str, int],
    ) -> dict[str, BoolArray]:
        """Membership of every event in every gate (each within its parent).

        Parameters
        ----------
        compensated, raw
            Events × channels, compensated and not; ``column`` maps $PnN to the column. The
            compensated events may also be anything with a ``column(j)`` method (such as
            :class:`~nkpanel.flow.compensation.CompensatedColumns`).
        """
        out: dict[str, BoolArray] = {}
        n = raw.shape[0]
        indices: dict[str, NDArray[np.intp]] = {}
        for g in self.gates:

            def values(dim: Dimension, idx: NDArray[np.intp] | None) -> NDArray[np.float64]:
                return dimension_values(dim, compensated, raw, column, idx)

            def parent_events(name: str | None = g.parent) -> NDArray[np.intp]:
                key = str(name)
                if key not in indices:
                    indices[key] = np.flatnonzero(out[key])
                return indices[key]

            parent = None if g.parent is None else out[g.parent]
            out[g.name], _ = gate_events(g, n, parent, parent_events, values)
        return out
