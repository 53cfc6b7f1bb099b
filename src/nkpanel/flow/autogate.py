"""Automated NK gating of the standard panel, with cut points taken from each sample's own data.

The sequence follows clinical TBNK practice (domain.md §1):

    Time (stable flow) ─┬─ Beads (counting beads, when present)
                        └─ Singlets (FSC-A vs FSC-H) ─ Leukocytes (CD45+, not beads)
                             └─ Lymphocytes (below the monocytes on FSC and SSC)
                                  ├─ CD3- (and CD19- where stained) ─ NK (CD56+ and/or CD16+)
                                  │     ├─ NK CD56bright            └─ NK CD56dim CD16+
                                  ├─ CD3+ ─ NK-like T (CD3+ CD56+)
                                  └─ B cells (CD3- CD19+)

Every cut is found on the parent population by :func:`nkpanel.flow.density.find_cut`, then
written as a plain gate record on the compensated linear scale, so the gates evaluate exactly the
same way here, in the exported Gating-ML, and in FlowKit.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypeVar

import numpy as np
from numpy.typing import NDArray

from nkpanel.errors import QCError
from nkpanel.flow.compensation import CompensatedColumns
from nkpanel.flow.density import TAIL_SDS, Cut, _above, density_1d, find_cut
from nkpanel.flow.gates import Dimension, Gate, GateTree, PolygonGate, RangeGate, gate_events
from nkpanel.flow.markers import MarkerMap
from nkpanel.flow.qc import SATURATED
from nkpanel.flow.sample import Channel, FlowSample, timestep

__all__ = [
    "LYMPHOCYTE_SCATTER",
    "POPULATIONS",
    "AutoGateResult",
    "AutoGateSettings",
    "auto_gate",
    "detect_cytometry",
    "flow_rate",
    "logicle_width",
    "side_scatter_missing",
]

Array = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
#: a set of events: a mask over all events, or their indices in ascending order
Events = NDArray[np.bool_] | NDArray[np.intp]
T = TypeVar("T", bound=np.generic)


def _count(events: Events) -> int:
    return int(np.count_nonzero(events)) if events.dtype == np.bool_ else int(events.size)


def _pick(values: NDArray[T], mask: BoolArray) -> NDArray[T]:
    """``values[mask]``, the same elements in the same order, by the indices of ``mask``:
    boolean indexing of a mask without a pattern costs about four times as much."""
    return values[np.flatnonzero(mask)]


def _same_colours(
    scaled: NDArray[np.float64], at_top: BoolArray, beads: BoolArray, others: BoolArray
) -> bool:
    """Whether the events ``others`` have the colours of the events ``beads``: each event's
    profile is its values on the (log-like) scale less their mean, the same for a bead however
    bright; ``others`` have the beads' colours where their profiles lie as near the beads'
    median profile as the beads' own do (the median distance within twice the beads').
    Channels where either holds events at the top (``at_top``: no measurable value) are left
    out; with fewer than two left, nothing tells them apart and they are taken as alike."""
    usable = [
        j
        for j in range(scaled.shape[1])
        if at_top[beads, j].mean() < 0.05 and at_top[others, j].mean() < 0.05
    ]
    if len(usable) < 2:
        return True
    values = scaled[:, usable]
    profile = values - values.mean(axis=1, keepdims=True)
    centre = np.median(profile[beads], axis=0)
    distance = np.sqrt(np.mean((profile - centre) ** 2, axis=1))
    return bool(np.median(distance[others]) <= BEAD_COLOUR_SPREAD * np.median(distance[beads]))


def _pick_columns(values: NDArray[np.float64], mask: BoolArray) -> NDArray[np.float64]:
    """``values[mask]`` of a 2-D array, in column order: one gather down each column (rows
    gathered whole from a column-ordered array, then reordered, cost about three times as
    much)."""
    idx = np.flatnonzero(mask)
    out = np.empty((idx.size, values.shape[1]), dtype=values.dtype, order="F")
    for j in range(values.shape[1]):
        np.take(values[:, j], idx, out=out[:, j])
    return out


#: fewest CD56+ NK events on which the CD56bright cut is placed (a density needs them)
MIN_SUBSET_EVENTS = 20
#: a peak of the CD56+ NK cells holding this share of them, or standing apart from the NK cut,
#: is the CD56dim one, the CD56bright cut's reference (a bump beside the NK cut holds ~2%)
SUBSET_REFERENCE_MASS = 0.05
#: a mass-cytometry channel's lowest value is its zero count where at least this many events,
#: and this share of them, sit on it exactly (a normalisation's floor; one event on the lowest
#: value of randomised counts is no pile)
ZERO_PILE_EVENTS = 10
ZERO_PILE_FRACTION = 0.01
#: the lymphocyte gate on scatter, where CD45-dim events in it are then left out
LYMPHOCYTE_SCATTER = "Lymphocyte scatter"
#: the least share of the lymphocyte scatter gate a CD45-dim population must hold to be
#: looked for: basophils, 0.5-1% of leukocytes, are at least that share of it
CD45_DIM_MIN_MASS = 0.005
#: the most T cells a CD45 cut below the lymphocytes may leave out: T cells are lymphocytes
#: whatever their CD45; a cut through them is not below the lymphocytes (a lognormal CD45
#: leaves about 2% of its events more than 2 SD below its median)
CD45_MAX_T_CELLS_LEFT = 0.02

#: names of the populations automated gating can produce, parent first
POPULATIONS = (
    "Time",
    "Beads",
    "Singlets",
    "Leukocytes",
    "Lymphocyte scatter",
    "Lymphocytes",
    "CD3-",
    "NK",
    "NK CD56bright",
    "NK CD56dim",
    "CD3+",
    "NK-like T",
    "B cells",
)

#: $CYT of mass cytometers: CyTOF (2, XT), Helios, by maker. "CytoFLEX" (Beckman) and
#: "Attune NxT" (Thermo) are flow cytometers
_MASS_CYTOMETERS = re.compile(
    r"\bcytof(?![a-z])|\bhelios\b|fluidigm|standard biotools", re.IGNORECASE
)


@dataclass(frozen=True)
class AutoGateSettings:
    """Tunable parts of automated gating; the defaults are the method, not a fit to one file.

    Attributes
    ----------
    cytometry
        ``"flow"`` (logicle display scale), ``"mass"`` (asinh, cofactor 5, no scatter) or
        ``"auto"`` (from $CYT and the channels).
    singlet_sds
        Singlets lie within this many robust SDs of the FSC-H expected for their FSC-A.
    time_bins
        Acquisition time is cut into this many bins to follow the flow rate.
    rate_tolerance
        A bin whose event rate departs from the median by more than this fraction (and by more
        than Poisson noise allows) is unstable.
    asinh_cofactor
        Cofactor for mass cytometry (5 is the convention for CyTOF data).
    density_events
        Cut points are placed on at most this many events of the parent (evenly spaced through
        the acquisition); gates are then applied to every event. 30,000 is the size of a
        typical clinical tube, the data flowDensity and openCyto are used on. Measured on 27
        simulated 10⁶-event tubes (9 designs × 3 seeds): NK % error mean 0.11 points (max 0.24)
        and NK F1 0.979–0.995 with 30,000, against 0.11 (max 0.21) and 0.981–0.995 with
        100,000.
    cd45_dim_out
        Leave CD45-dim events under the lymphocytes' side scatter (basophils) out of the
        lymphocytes where they form a population of their own (:meth:`_Gater.cd45_bright`);
        ``False`` keeps the lymphocyte gate on scatter (and CD14/CD66) alone.
    """

    cytometry: Literal["auto", "flow", "mass"] = "auto"
    #: the tube holds counting beads (the lab gave beads per test): beads dim on one channel
    #: are then looked for on the others
    beads_expected: bool = False
    singlet_sds: float = 4.0
    time_bins: int = 100
    rate_tolerance: float = 0.25
    asinh_cofactor: float = 5.0
    logicle_m: float = 4.5
    density_events: int = 30_000
    cd45_dim_out: bool = True


@dataclass(frozen=True)
class AutoGateResult:
    """The gates found for one sample, each event's membership, and how each cut was found."""

    tree: GateTree
    membership: Mapping[str, BoolArray]
    cuts: Mapping[str, Cut]
    notes: tuple[str, ...]
    cytometry: Literal["flow", "mass"]
    #: None when the flow rate could not be checked (no Time channel, times out of order)
    unstable_time_fraction: float | None = 0.0
    #: the share of the acquisition time trimmed at the start and end as unstable
    trimmed_time_fraction: float = 0.0
    scales: Mapping[str, Callable[[Array], Array]] = field(default_factory=dict)
    #: False when no SSC, CD45 or CD14 could tell the lymphocytes from other leukocytes: the
    #: "Lymphocytes" gate then holds every leukocyte and no % of lymphocytes can be given
    lymphocytes_separated: bool = True
    #: why the side-scatter channel was taken for none (:func:`side_scatter_missing`)
    dead_side_scatter: str | None = None
    #: why the bead events cannot be counted with confidence (a population between the cells
    #: and the beads in other colours than the beads), or None
    bead_doubt: str | None = None
    #: whether those events stay among the cells too (every percentage then in doubt)
    bead_doubt_in_cells: bool = False


#: a linear side-scatter channel whose leukocytes' median lies under this fraction of its range
#: recorded no side scatter: a cytometer's set-up puts the lymphocytes, the leukocytes of least
#: side scatter, well clear of the detector's noise (on an 18-bit scale, 0.5% is 1,311), and
#: one that left them in the noise could not part them from anything either
DEAD_SCATTER_LEVEL = 0.005


def side_scatter_missing(channel: Channel, values: Array) -> str | None:
    """Why ``channel`` (side scatter; ``values``: the leukocytes') carries no side scatter, or
    ``None`` when it does: a detector switched off or not connected reads noise about zero, a
    constant, or a narrow band at the bottom of its range (audit 27: such a channel read NK
    65% of lymphocytes for 17%, reportable, with the granulocytes in the lymphocyte gate)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    q05, q25, q50, q95 = np.percentile(finite, [5, 25, 50, 95])
    name = channel.pnn
    if q25 <= 0.0:
        return f"{name} reads 0 or less for a quarter of the events (no side scatter recorded)"
    if q05 == q95:
        return f"{name} reads {q05:.6g} for 90% of the events (no side scatter recorded)"
    # a log amplifier's lowest channels decode to its lowest values: judged on the above alone
    if not channel.is_log_amplified and q50 < DEAD_SCATTER_LEVEL * channel.top:
        high = float(finite.max())
        # the range keyword may be what is wrong ($PnR 2^32 over float data: audit 33) where
        # the values spread as leukocytes' side scatter does (granulocytes ~10x lymphocytes),
        # not in a detector's narrow band of noise
        wrong_range = (
            f"; or its $PnR is wrong: the largest value, {high:.4g}, is "
            f"{high / channel.top:.2g} of it"
            if high < 0.01 * channel.top and q95 >= 3.0 * q05
            else ""
        )
        return (
            f"{name}: the events' median {q50:.4g} lies under {DEAD_SCATTER_LEVEL:.1%} of its "
            f"range {channel.top:.6g}, in the detector's noise (no side scatter recorded)"
            f"{wrong_range}"
        )
    return None


def detect_cytometry(sample: FlowSample) -> Literal["flow", "mass"]:
    """``"mass"`` for CyTOF/Helios files (by $CYT, or no scatter and metal channel names)."""
    cyt = sample.metadata.get("cyt", "")
    if _MASS_CYTOMETERS.search(cyt):
        return "mass"
    names = " ".join(sample.pnn).upper()
    has_scatter = "FSC" in names or "SSC" in names or re.search(r"\bFS\b|\bSS\b", names)
    metals = sum(bool(re.fullmatch(r"[A-Z][a-z]?\d{2,3}D[id]", n)) for n in sample.pnn)
    return "mass" if not has_scatter and metals >= 3 else "flow"


def mass_cytometry_note(sample: FlowSample) -> str:
    """Why :func:`detect_cytometry` took ``sample`` for mass cytometry, and the way out."""
    cyt = sample.metadata.get("cyt", "")
    why = f"$CYT {cyt!r}" if _MASS_CYTOMETERS.search(cyt) else "metal channels, no scatter"
    return (
        f"analysed as mass cytometry ({why}): asinh scale, no scatter gates; "
        "--cytometry flow if it is a flow cytometer"
    )


#: what a marker's negative cut takes out of the lymphocyte gate
_LEFT_OUT = {"CD14": "monocytes", "CD66": "granulocytes"}


class _Scale:
    """The display/density scale of one channel: logicle (estimated W) or asinh."""

    def __init__(self, kind: str, *, t: float, m: float, w: float, cofactor: float) -> None:
        self.kind, self.t, self.m, self.w, self.cofactor = kind, t, m, w, cofactor

    def __call__(self, x: Array) -> Array:
        if self.kind == "asinh":
            return np.arcsinh(np.asarray(x, dtype=np.float64) / self.cofactor)
        if self.kind == "log":
            return np.log10(np.clip(np.asarray(x, dtype=np.float64), 1.0, None))
        return self._logicle(np.asarray(x, dtype=np.float64))

    def _logicle(self, x: Array) -> Array:
        """Logicle by linear interpolation in a table that is even in u = asinh(x / c).

        The logicle scale is itself close to an asinh, so in u it is nearly a straight line and
        4,097 even steps interpolate it to within about 1e-6 of the display range; finding a
        value's place in an even table is arithmetic, not a search, which makes this some ten
        times faster than a searched table. The table is computed with flowutils' exact
        transform, which also serves values beyond it. Used for densities and display only:
        gates compare linear values, so this never decides membership."""
        from flowutils import transforms

        if not hasattr(self, "_table"):
            # the inverse is closed-form: tabulate it densely, even in y, and read the even
            # u grid off that (linear interpolation on an 8,193-point table: error < 1e-6)
            y_dense = np.linspace(-0.5, 1.2, 8193)
            x_dense = transforms.logicle_inverse(
                y_dense.reshape(-1, 1), [0], t=self.t, m=self.m, w=self.w, a=0.0
            ).reshape(-1)
            # c: where the scale turns from linear to logarithmic (10^(M−W) below the top)
            self._c = self.t * 10.0 ** (self.w - self.m)
            u_dense = np.arcsinh(np.asarray(x_dense, dtype=np.float64) / self._c)
            u = np.linspace(u_dense[0], u_dense[-1], 4097)
            ys = np.interp(u, u_dense, y_dense)
            self._table = (float(u[0]), float(u[1] - u[0]), ys)
        u_lo, step, ys = self._table
        shape = np.shape(x)
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        # (asinh(x / c) − u_lo) / step, one operation at a time in one array
        with np.errstate(invalid="ignore"):
            pos = np.divide(x, self._c)
            np.arcsinh(pos, out=pos)
            pos -= u_lo
            pos /= step
        # beyond the table, or not a number: flowutils' exact transform
        within = pos >= 0.0
        within &= pos <= ys.size - 1
        outside = ~within
        some_outside = bool(outside.any())
        if some_outside:
            pos[outside] = 0.0
            np.clip(pos, 0.0, ys.size - 1.000001, out=pos)
        else:  # every position is at least 0 already
            np.minimum(pos, ys.size - 1.000001, out=pos)
        i = pos.astype(np.intp)
        frac = pos - i
        # ys[i] · (1 − frac) + ys[i + 1] · frac
        out: Array = np.take(ys, i)
        out *= 1.0 - frac
        frac *= np.take(ys[1:], i)
        out += frac
        if some_outside:
            exact = transforms.logicle(
                np.ascontiguousarray(x[outside]).reshape(-1, 1),
                [0],
                t=self.t,
                m=self.m,
                w=self.w,
                a=0.0,
            )
            out[outside] = np.asarray(exact, dtype=np.float64).reshape(-1)
            out[np.isnan(x)] = np.nan  # not a number stays so (flowutils would give -1)
        return out.reshape(shape)

    def inverse(self, y: float) -> float:
        if self.kind == "asinh":
            return float(np.sinh(y) * self.cofactor)
        if self.kind == "log":
            return float(10.0**y)
        from flowutils import transforms

        arr = np.array([[y]], dtype=np.float64)
        out = transforms.logicle_inverse(arr, [0], t=self.t, m=self.m, w=self.w, a=0.0)
        return float(out[0, 0])


#: values of a channel looked at first for a fraction: one there answers for the whole
_WHOLE_HEAD = 64


def _whole_numbers(x: Array, gain: float) -> bool:
    """Whether every ``x × gain`` is a whole number (a channel stored as channel numbers).

    Floats of a measured signal fail on their first values: those are checked first, and
    the rest only when they pass (the same answer as checking every value at once)."""
    head = x[:_WHOLE_HEAD] * gain
    if not bool(np.all(head == np.round(head))):
        return False
    channels = x * gain
    return bool(np.all(channels == np.round(channels)))


def logicle_width(values: Array, t: float, m: float) -> float:
    """Logicle linearisation width from the data's negative tail (Parks et al. 2006, eq. 9).

    W = (M − log10(T / |r|)) / 2 with r the 5th percentile of the negative values, bounded to
    [0, M/2 − 0.1] (0 when there are no meaningful negatives).
    """
    neg = _pick(values, values < 0)
    if neg.size < 50:
        return 0.5
    r = abs(float(np.percentile(neg, 5)))
    if r <= 0:
        return 0.5
    w = (m - np.log10(t / r)) / 2.0
    return float(np.clip(w, 0.0, m / 2.0 - 0.1))


class FlowRate(NamedTuple):
    """The acquisition's event rate over time, binned (:func:`flow_rate`)."""

    #: bin edges, in the Time channel's units
    edges: Array
    #: the first and last stable bins (a time gate keeps what lies between them)
    first: int
    last: int
    #: fraction of the bins that hold events, between ``first`` and ``last``, that are unstable
    interior_unstable: float
    #: the same over every bin that holds events (a template run has no time gate)
    unstable: float
    #: fraction of the bins with no event at all: the acquisition paused, or the line was
    #: blocked outright
    empty: float

    @property
    def pause(self) -> str | None:
        """What a stretch of time with no events means, for a note; ``None`` without one."""
        if self.empty <= 0:
            return None
        return (
            f"no events over {self.empty:.0%} of the acquisition time (acquisition paused, or "
            "the line blocked outright): the flow rate is judged where events were acquired"
        )


def flow_rate(t: Array, settings: AutoGateSettings) -> FlowRate | None:
    """The acquisition's event rate over time, binned; ``None`` when the times are not usable
    (fewer than 100 events, not sorted, or no time passing).

    A bin is unstable when its count departs from the median by more than
    ``settings.rate_tolerance`` of it and by more than 4 Poisson SDs (a clog or a bubble).
    A bin with no event at all is a pause (the operator paused acquisition) or a blockage that
    stopped the stream outright: no events were acquired in it to be wrong, so it is counted
    apart (``empty``) and the rate is judged on the bins that hold events, the median too. The
    bins at the edges of a pause hold fewer events and count as unstable.
    """
    n = t.shape[0]
    if n < 100 or not np.all(t[1:] >= t[:-1]) or t[-1] <= t[0]:
        return None
    edges = _time_bins(t, max(10, min(settings.time_bins, n // 50)))
    bins = edges.size - 1
    # events per bin [edge, next edge): the times are sorted, so a search per edge counts
    counts = np.diff(np.searchsorted(t, edges, side="left")).astype(np.float64)
    widths = np.diff(edges)
    held = counts > 0  # the first and the last bin always hold an event
    per_width = float(np.median(counts[held] / widths[held]))
    expected = per_width * widths  # a shorter last bin expects fewer events
    tol = np.maximum(settings.rate_tolerance * expected, 4.0 * np.sqrt(np.maximum(expected, 1.0)))
    bad = (np.abs(counts - expected) > tol) & held
    ok = held & ~bad
    first = int(np.argmax(ok)) if ok.any() else 0
    last = bins - 1 - int(np.argmax(ok[::-1])) if ok.any() else bins - 1
    inner = held[first : last + 1]
    interior_bad = float(bad[first : last + 1][inner].mean()) if inner.any() else 1.0
    return FlowRate(
        edges,
        first,
        last,
        interior_bad,
        float(bad[held].mean()),
        float(1.0 - held.mean()),
    )


def _time_bins(t: Array, bins: int) -> Array:
    """Edges of about ``bins`` bins over sorted times ``t``. Where the counter ticks coarsely
    (fewer than 20 ticks per bin: an older instrument's 0.1 s or 1,024-step clock), each bin
    spans a whole number of ticks, the last one what is left: bins of 2 and 3 ticks in turn
    would read as a rate jumping by half."""
    span = float(t[-1] - t[0])
    head = np.diff(t[: min(t.size, 20_001)])  # the clock's step, from consecutive events
    steps = head[head > 0]
    tick = float(steps.min()) if steps.size else span
    if span / bins >= 20 * tick:
        edges = np.linspace(t[0], t[-1], bins + 1)
        edges[-1] = np.nextafter(edges[-1], np.inf)
        return edges
    per_bin = max(1, round(span / bins / tick))
    start = float(t[0]) - tick / 2
    full = int((span + tick) // (per_bin * tick))
    edges = start + per_bin * tick * np.arange(full + 1)
    end = float(t[-1]) + tick / 2
    return np.append(edges, end) if end - edges[-1] > tick / 2 else np.append(edges[:-1], end)


def _unwrapped(t: Array) -> tuple[Array, float] | None:
    """Times of a counter that wraps (older instruments count time in 10 or 12 bits and start
    again at 0), made monotonic by adding its period at each wrap, and the period (the largest
    fall at a wrap plus the usual step between events); None when the times fall back by less
    than half their range somewhere (not a wrap: shuffled, or restarted)."""
    if t.size < 3 or not np.isfinite(t).all():
        return None
    d = np.diff(t.astype(np.float64))
    span = float(t.max() - t.min())
    wraps = d < -0.5 * span
    if span <= 0 or not wraps.any() or bool(np.any(d[~wraps] < 0)):
        return None
    forward = d[d > 0]
    # at least every fall, so that no wrap leaves the times out of order
    period = float(np.max(-d[wraps])) + (float(np.median(forward)) if forward.size else 0.0)
    return t + period * np.concatenate(([0.0], np.cumsum(wraps))), period


class BeadCut(NamedTuple):
    """The counting-bead gate's channel and cut (linear)."""

    channel: str
    value: float


class _Gater:
    def __init__(
        self, sample: FlowSample, comp: CompensatedColumns, markers: MarkerMap, s: AutoGateSettings
    ):
        self.sample, self.comp, self.markers, self.settings = sample, comp, markers, s
        self.col = {c.pnn: c.index for c in sample.channels}
        self.kind: Literal["flow", "mass"] = (
            detect_cytometry(sample) if s.cytometry == "auto" else s.cytometry
        )
        self.notes: list[str] = []
        self.gates: list[Gate] = []
        self.member: dict[str, BoolArray] = {}
        self.cuts: dict[str, Cut] = {}
        self.lymphocytes_separated = True
        self.trimmed_time = 0.0
        self.dead_side_scatter: str | None = None
        self.bead_doubt: str | None = None
        self.bead_doubt_in_cells = False
        self.scales: dict[str, _Scale] = {}
        self.n = sample.n_events
        self._indices: dict[str, NDArray[np.intp]] = {}
        self._values: dict[tuple[str, str], Array] = {}
        self._zeros: dict[str, float] = {}
        #: population → (its parent, which of the parent's events it holds), where known
        self._inside: dict[str, tuple[str, NDArray[np.intp]]] = {}
        #: the scatter channels, by the marker map ("Side Scatter" as well as "SSC-A")
        self.scatters = {
            markers.channel_for(m) for m in ("FSC-A", "FSC-H", "SSC-A", "SSC-H") if markers.has(m)
        }

    # -- helpers ---------------------------------------------------------------------------
    def channel(self, pnn: str) -> Channel:
        """The channel ``pnn`` as the file describes it (range, amplification)."""
        return self.sample.channels[self.col[pnn]]

    def raw(self, pnn: str) -> Array:
        """A channel's (compensated) linear values, every event."""
        return self.comp.column(self.col[pnn])

    def scale(self, pnn: str) -> _Scale:
        if pnn not in self.scales:
            if self.kind == "mass":
                self.scales[pnn] = _Scale(
                    "asinh", t=0, m=0, w=0, cofactor=self.settings.asinh_cofactor
                )
            elif pnn.upper().startswith(("FSC", "SSC", "FS", "SS")) or pnn in self.scatters:
                self.scales[pnn] = _Scale("log", t=0, m=0, w=0, cofactor=1)
            else:
                ch = self.channel(pnn)
                t = ch.top if ch.top > 1 else 262144.0
                m = self.settings.logicle_m
                w = logicle_width(self.raw(pnn)[self.sample_of_all], t, m)
                self.scales[pnn] = _Scale("logicle", t=t, m=m, w=w, cofactor=1)
        return self.scales[pnn]

    def separation(self, pnn: str) -> float:
        """The scale's width of an e-fold (≈2.7×) change in bright signal: the smallest distance
        at which two peaks count as two populations."""
        sc = self.scale(pnn)
        if sc.kind == "asinh":
            return 1.0
        if sc.kind == "log":
            return float(np.log10(np.e)) / 2.0
        # logicle: M decades over the unit interval
        return float(np.log10(np.e)) / sc.m

    def subsample(self, within: Events) -> NDArray[np.intp]:
        """Indices of ``within`` (a mask or ascending indices), at most ``density_events``.

        Cut points need a density, not every event (see ``AutoGateSettings.density_events``);
        gates are then evaluated on every event. Events arrive in random order, so events
        evenly spaced through the acquisition are a random sample, deterministic and cheap.
        """
        n = self.settings.density_events
        if within.dtype != np.bool_:
            idx = within.astype(np.intp, copy=False)
        else:
            # every stride-th event of the acquisition, of those inside: a large parent's mask
            # is only read at every stride-th event
            stride = max(1, _count(within) // n)
            idx = np.flatnonzero(within[::stride]) * stride
        if idx.size > n:
            idx = idx[np.linspace(0, idx.size - 1, n).astype(np.intp)]
        return idx

    def scaled(self, pnn: str, within: Events) -> Array:
        return self.scale(pnn)(self.for_density(pnn, self.subsample(within)))

    def for_density(self, pnn: str, idx: NDArray[np.intp]) -> Array:
        """Linear values of events ``idx`` for a density: as recorded, except that a channel
        stored as whole channel numbers (integer data, or floats that all hold whole numbers;
        not compensated) is spread over each number's width.

        A 10-bit log amplifier records 1,024 numbers: dim events stand on a ladder of discrete
        values, and a density of tied values resolves each rung as a peak. Spreading each value
        evenly over its channel (a seeded uniform offset of ±½ channel, FCS 3.1 $PnE for log
        channels) gives the density of what was measured. Only cut placement sees this; gates
        compare the recorded values.
        """
        x = self.raw(pnn)[idx]
        ch = self.channel(pnn)
        if x.size == 0 or self.dim(pnn).compensated:
            return x
        # integer data, or whole channel numbers stored as floats (an FCS 2.0 export of a
        # 10-bit instrument)
        integer = self.sample.metadata.get("datatype", "").strip().upper() == "I"
        if not (integer or _whole_numbers(x, ch.png)):
            return x
        rng = np.random.default_rng(ch.index)
        u = rng.uniform(-0.5, 0.5, x.size)
        # channel 0 stays as it is: it holds every event below the scale, a pile at the axis
        # that find_cut leaves out of the density (axis_pile=True)
        f1, f2 = ch.pne
        u[x == (f2 if ch.is_log_amplified else 0.0) / ch.png] = 0.0
        if ch.is_log_amplified:  # one channel is a factor of 10^(f1/R)
            return np.asarray(x * np.power(10.0, f1 * u / ch.pnr), dtype=np.float64)
        return np.asarray(x + u / ch.png, dtype=np.float64)

    def dim(self, pnn: str) -> Dimension:
        # compensated when the matrix the gating used (a supplied one, else the file's) covers it
        spill = self.comp.spillover if self.comp.spillover is not None else self.sample.spillover
        fluor = spill is not None and pnn in spill.channels
        return Dimension(pnn, None, compensated=fluor)

    def cut(
        self,
        label: str,
        pnn: str,
        within: Events,
        side: Literal["above", "below"] = "above",
        brightest: bool = False,
        bright_only: bool = False,
        reference: float | None = None,
    ) -> float:
        """Find a cut on ``pnn`` inside ``within`` (a mask or indices); record it; return it
        on the linear scale. ``bright_only``: where three or more peaks stand, the positive
        population is the brightest of them, whatever stands below it (B cells on CD19)."""
        if (n := _count(within)) < 10:
            raise QCError(f"{self.sample.source}: too few events ({n}) to place the {label} cut")
        if self.kind == "mass":
            # zero counts are unambiguously negative but pile into a spike that a density would
            # take for a population of its own: place the cut on the non-zero events
            zero = self.zero_count(pnn)
            if within.dtype == np.bool_:
                nonzero = within & (self.raw(pnn) != zero)
            else:
                nonzero = within[self.raw(pnn)[within] != zero]
            if _count(nonzero) >= 10:
                within = nonzero
        c = find_cut(
            self.scaled(pnn, within),
            side=side,
            brightest=brightest,
            min_separation=self.separation(pnn),
            axis_pile=self.kind == "flow",
            brightest_of_many=bright_only,
            reference=reference,
        )
        self.cuts[label] = c
        self.note_tail(label, pnn, c)
        return self.scale(pnn).inverse(c.value)

    def zero_count(self, pnn: str) -> float:
        """The value a mass-cytometry channel gives a zero count: 0, or the channel's lowest
        value where a pile of events sits on it exactly (normalisation, CytoNorm's say, moves
        the zeros to a small constant; left in, that pile stood as the negative peak and the
        CD3- gate held 2 of 310 lymphocytes: audit 31)."""
        if pnn not in self._zeros:
            x = self.raw(pnn)
            low = float(x.min()) if x.size else 0.0
            on = int(np.count_nonzero(x == low)) if low != 0 else 0
            self._zeros[pnn] = (
                low if on >= max(ZERO_PILE_EVENTS, ZERO_PILE_FRACTION * x.size) else 0.0
            )
            if self._zeros[pnn] != 0:
                self.notes.append(
                    f"{pnn}: {on} events sit on its lowest value {low:.3g}, taken as zero counts "
                    "(moved there by a normalisation)"
                )
        return self._zeros[pnn]

    def note_tail(self, label: str, pnn: str, c: Cut) -> None:
        """Say that the cut ``label`` is at a population's tail, or that it no longer is: a cut
        placed again (the SSC cut without CD45-dim events; an NK cut taken from all
        lymphocytes) says only what its last placement did."""
        text = f"{label}: no clear valley on {pnn}; cut at the population's tail"
        if text in self.notes:
            self.notes.remove(text)
        if c.method != "valley":
            self.notes.append(text)

    def indices(self, population: str) -> NDArray[np.intp]:
        """The events of a population (kept: several gates share a parent)."""
        if population not in self._indices:
            self._indices[population] = np.flatnonzero(self.member[population])
        return self._indices[population]

    def values_in(self, population: str, pnn: str) -> Array:
        """A channel's (compensated) values of a population's events, kept likewise."""
        key = (population, pnn)
        if key not in self._values:
            inside = self._inside.get(population)
            if inside is not None and (inside[0], pnn) in self._values:
                # the parent's values of the same events, already at hand
                self._values[key] = self._values[(inside[0], pnn)][inside[1]]
            else:
                self._values[key] = self.raw(pnn)[self.indices(population)]
        return self._values[key]

    def add(self, gate: Gate, known: BoolArray | None = None) -> BoolArray:
        """Record ``gate`` and its members: ``known`` where they were already worked out (the
        gate's own comparisons, on the same values, within its parent), else evaluated."""
        name = gate.parent

        def values(dim: Dimension, idx: NDArray[np.intp] | None) -> Array:
            if idx is None or name is None:
                return self.raw(dim.channel)
            return self.values_in(name, dim.channel)  # the parent's events, kept

        parent = None if name is None else self.member[name]
        contained: BoolArray | None = None
        if known is not None:
            inside = known
        else:
            inside, contained = gate_events(
                gate, self.n, parent, lambda: self.indices(str(name)), values
            )
        if name is not None and contained is not None:
            # the gate's events and which of its parent's they are, for its own children
            which = np.flatnonzero(contained)
            self._indices[gate.name] = self.indices(name)[which]
            self._inside[gate.name] = (name, which)
        self.gates.append(gate)
        self.member[gate.name] = inside
        return inside

    def scatter(self, kind: Literal["FSC", "SSC"]) -> str | None:
        """The area channel of a scatter, or its height channel where the instrument records
        no area (older analogue instruments write FSC-H/SSC-H only)."""
        for name in (f"{kind}-A", f"{kind}-H"):
            if self.markers.has(name):
                return self.markers.channel_for(name)
        return None

    def everything(self) -> BoolArray:
        return np.ones(self.n, dtype=bool)

    @functools.cached_property
    def sample_of_all(self) -> NDArray[np.intp]:
        """The density subsample of every event (each channel's logicle width is set on it)."""
        return self.subsample(self.everything())

    # -- steps -----------------------------------------------------------------------------
    def time_gate(self) -> tuple[str | None, float | None]:
        """The Time gate (unstable ends trimmed) and the unstable fraction of the time between
        them; ``None`` for the fraction when the flow rate could not be checked (said in a
        note and by the flow-rate QC check)."""
        if not self.markers.has("Time"):
            self.notes.append("no Time channel: flow-rate stability not checked")
            return None, None
        tch = self.markers.channel_for("Time")
        t = self.sample.events[:, self.col[tch]]
        rate = flow_rate(t, self.settings)
        wraps = rate is None
        if rate is None:
            unwrapped = _unwrapped(t)
            rate = flow_rate(unwrapped[0], self.settings) if unwrapped is not None else None
            if rate is None or unwrapped is None:
                self.notes.append("Time channel is not monotonic: flow-rate stability not checked")
                return None, None
            # Time is read in seconds where $TIMESTEP gives its tick (audit 33: no unit given)
            in_s = tch.lower() == "time" and timestep(self.sample.metadata) is not None
            unit = " s" if in_s else " ticks (no $TIMESTEP)"
            self.notes.append(
                f"Time counter wraps every {unwrapped[1]:.4g}{unit}: flow rate checked on the "
                "unwrapped times (unstable ends not trimmed)"
            )
        if rate.pause:
            self.notes.append(rate.pause)
        if wraps:
            # checked on the unwrapped times; a gate on the stored (wrapping) values could not
            # trim the ends, so none is placed
            return None, rate.interior_unstable
        edges, first, last = rate.edges, rate.first, rate.last
        bins = edges.size - 1
        # an untrimmed end still gets a bound (the acquisition's own start or end), so that
        # the gate is a real range wherever it is exported
        lo = float(edges[first])
        hi = float(edges[last + 1])
        gate = RangeGate("Time", None, (Dimension(tch, None, False),), (lo,), (hi,))
        trimmed = first + (bins - 1 - last)
        if trimmed:
            self.add(gate)
        else:
            # from the first event's time to just past the last one, over sorted times: every
            # event is inside, no need to test each
            self.gates.append(gate)
            self.member["Time"] = np.ones(self.n, dtype=bool)
        if trimmed:
            self.trimmed_time = trimmed / bins
            self.notes.append(f"Time: {trimmed} unstable bin(s) trimmed at the start/end")
        return "Time", rate.interior_unstable

    def bead_gate(self, parent: str | None) -> BeadCut | None:
        """Counting beads are bright on every fluorescence channel at once; no cell is (a lot
        dim on one channel is found on the others, with a note). Events on the top of the side
        scatter (clumps, which can be bright in every colour too) are kept out, unless beads
        themselves reach it (:meth:`beads_reach_top`)."""
        fluor = [
            self.markers.markers[m]
            for m in ("CD3", "CD19", "CD56", "CD16", "CD45")
            if m in self.markers.markers
        ]
        fluor = list(dict.fromkeys(fluor))
        if len(fluor) < 2:
            return None
        nk_channels = {self.markers.markers.get(m) for m in ("CD56", "CD16")}
        base = self.member[parent] if parent else self.everything()
        drawn = self.subsample(base)
        # clumps pin the side scatter at its top and can be bright in every colour too; beads
        # do not reach it. Pinned events are left out of the sample (the same sample as
        # without them otherwise) and, below, out of the gate
        scatter = self.scatter("SSC")
        top = self.pinned_at(scatter) if scatter is not None else np.inf
        pinned = self.raw(scatter)[drawn] >= top if scatter is not None else None
        idx = drawn if pinned is None else drawn[~pinned]
        # one column per channel (column order: the reductions below run down columns)
        scaled = np.empty((idx.size, len(fluor)), dtype=np.float64, order="F")
        for j, p in enumerate(fluor):
            scaled[:, j] = self.scale(p)(self.for_density(p, idx))
        # values recorded at the top of a channel have no measurable colour (bead doublets
        # pin it; compensated, a pinned value no longer reads as the top)
        recorded = self.sample.events
        at_top = np.column_stack([recorded[idx, self.col[p]] >= self.pinned_at(p) for p in fluor])
        # bright on every channel; else, for a bead lot dim on one channel (its dye excited
        # poorly there), bright on every other channel, the dim one left out
        every = list(range(len(fluor)))
        options = [every]
        if self.settings.beads_expected and len(fluor) >= 4:
            # only where the lab says the tube holds beads, and with three channels left:
            # cells bright on all but one of three (granulocytes, NK cells on CD16+56 and CD45)
            # would pass for beads in a tube without them
            options += [[j for j in every if j != dim] for dim in every]
        # the cuts to try, found only as far as needed: below all events bright on every
        # channel, option by option, then just below the beads (review 38: that fallback, tried
        # before the next option, had left clumps among the cells where old had found the
        # clumps and beads together on the channels but one)
        found: dict[tuple[int, ...], list[tuple[Cut, BoolArray, float]]] = {}

        def cuts(cols: list[int]) -> list[tuple[Cut, BoolArray, float]]:
            if tuple(cols) not in found:
                found[tuple(cols)] = self._bright_everywhere(scaled, at_top, cols)
            return found[tuple(cols)]

        attempts = (
            (cols, k, cuts(cols)[k]) for k in (0, 1) for cols in options if len(cuts(cols)) > k
        )
        for attempt in attempts:
            used, fallback, (c, candidates, odd) = attempt
            # the one channel that separates beads from every cell best carries the gate; a
            # CD56 or CD16 channel must do so twice as well: CD56bright NK cells are too few to
            # show in the sample where lymphocytes are scarce (3% of leukocytes: about 9 of
            # 30,000 events), and a cut on CD56 midway to the beads took half of them
            # (CD56bright 8.2% of NK read 4.6, audit 9)
            bead_lows = np.percentile(_pick_columns(scaled, candidates), 0.5, axis=0)
            cell_highs = np.percentile(_pick_columns(scaled, ~candidates), 99.95, axis=0)
            gaps = [
                (
                    float(bead_lo - cell_hi) * (0.5 if p in nk_channels else 1.0),
                    float(bead_lo - cell_hi),
                    p,
                    float(0.5 * (bead_lo + cell_hi)),
                )
                for p, bead_lo, cell_hi in zip(fluor, bead_lows, cell_highs, strict=True)
            ]
            _, best_gap, best, best_cut = max(gaps)
            if best_gap > 0:
                break
        else:
            return None
        if used != every:
            (dim,) = set(every) - set(used)
            self.notes.append(
                f"counting beads are dim on {fluor[dim]}: found on the other channels"
            )
        self.cuts["Beads"] = Cut(best_cut, "valley", c.peaks)
        lin = self.scale(best).inverse(best_cut)
        if pinned is not None and self.beads_reach_top(drawn, pinned, best, lin):
            self.notes.append(f"beads reach the top of {scatter}: saturated events not kept out")
            scatter = None
        if scatter is None:
            self.add(RangeGate("Beads", parent, (self.dim(best),), (lin,), (None,)))
        else:
            dims = (self.dim(best), self.dim(scatter))
            self.add(RangeGate("Beads", parent, dims, (lin, None), (None, top)))
        if odd:
            self.bead_doubt = (
                f"about {odd:.0%} as many events as the beads stand between the cells and the "
                "beads, bright on every bead channel in other colours than the beads: beads "
                "dimmed unevenly by a clog, or clumps binding every antibody, which cannot be "
                "told apart; no bead-method count"
            )
            if fallback:
                # no channel parted them from the cells: left among them, they read NK-like T
                # 6-10% for 4, where old had lost the bead gate (review 38)
                self.bead_doubt_in_cells = True
                self.bead_doubt += (
                    "; no channel parts them from every cell, so they stay among the cells and "
                    "every percentage is in doubt"
                )
        return BeadCut(best, lin)

    @staticmethod
    def _bright_everywhere(
        scaled: NDArray[np.float64], at_top: BoolArray, columns: Iterable[int]
    ) -> list[tuple[Cut, BoolArray, float]]:
        """Cuts below the events bright on every one of ``columns`` (a valley below the
        brightest population of their minimum), to try in turn, each with the events above it
        and how many events stand between the cells and the beads in other colours than the
        beads, as a share of the beads (0 where none do); none where there is no such valley.

        Beads dimmed by a partial clog keep the beads' colours, the same dyes in the same
        proportions, and are beads (audit 32). Events in other colours may be beads a clog
        dimmed more on one laser than another, or clumps and dead cells binding every
        antibody: counted as beads, clumps read NK/µL 14% low (review 34); left out, such beads
        read it 40% high (review 37), and neither their arrival in a spell of the run nor
        throughout it told them apart (review 38). No cell is bright on every channel: the
        gate keeps them all out of the cells, and their share withholds the count. Where no
        channel then parts the beads from every cell, the valley just below the beads is
        tried (at 0.15x the beads' level such events had lost the bead gate: review 34)."""
        cols = list(columns)
        low = np.minimum.reduce([scaled[:, j] for j in cols])
        # beads are the brightest population of this minimum: the cut is the valley below
        # them, whatever dim structure (debris, a pile at the axis) lies further down
        c = find_cut(
            low,
            side="below",
            brightest=True,
            axis_pile=True,
            min_mass=BEAD_MIN_MASS,
            from_lowest=True,
        )
        if c.method != "valley" or np.count_nonzero(low >= c.value) < 20:
            return []
        if len(c.peaks) <= 2:
            return [(c, low >= c.value, 0.0)]
        # the beads are the heaviest population above the cut, not the brightest: bead doublets
        # (twice the dye, a few percent of a lot) stand above the singlets, which were then
        # taken for events in other colours (a right count withheld in 34 of 108 tubes: review
        # 40). Events below it and above it are compared with its colours alike: beads a long
        # clog dimmed are the heaviest, and clumps can outnumber the beads (review 41)
        above = [x for x in c.peaks if x > c.value]
        edges = [c.value, *((a + b) / 2 for a, b in itertools.pairwise(above)), np.inf]
        held = [np.count_nonzero((low >= lo) & (low < hi)) for lo, hi in itertools.pairwise(edges)]
        k = int(np.argmax(held))
        near = find_cut(
            low,
            side="below",
            reference=above[k],
            axis_pile=True,
            min_mass=BEAD_MIN_MASS,
        )
        core = (low >= max(near.value, edges[k])) & (low < edges[k + 1])
        odd_events = 0
        for others in ((low >= c.value) & (low < near.value), low >= edges[k + 1]):
            if np.count_nonzero(others) >= 20 and not _same_colours(
                scaled[:, cols], at_top[:, cols], core, others
            ):
                odd_events += int(np.count_nonzero(others))
        if not odd_events:
            return [(c, low >= c.value, 0.0)]
        odd = odd_events / max(1, int(np.count_nonzero(core)))
        return [(c, low >= c.value, odd), (near, low >= near.value, odd)]

    def beads_reach_top(
        self, idx: NDArray[np.intp], on_top: NDArray[np.bool_], best: str, lin: float
    ) -> bool:
        """Whether more than 1% of the events ``idx`` above the bead cut sit on the top of the
        side scatter (``on_top``) without also pinning the forward scatter, as clumps do: beads
        there, which an upper bound on the side scatter would lose."""
        above = self.raw(best)[idx] >= lin
        on_top = on_top.copy()
        fsc = self.scatter("FSC")
        if fsc is not None:
            on_top &= self.raw(fsc)[idx] < self.pinned_at(fsc)
        return int(np.count_nonzero(above & on_top)) > 0.01 * int(np.count_nonzero(above))

    def pinned_at(self, pnn: str) -> float:
        """The value at and above which ``pnn`` is saturated (:data:`~nkpanel.flow.qc.SATURATED`
        of its top)."""
        return SATURATED * self.channel(pnn).top

    def singlet_gate(self, parent: str | None) -> str | None:
        if not (self.markers.has("FSC-A") and self.markers.has("FSC-H")):
            self.notes.append(
                "mass cytometry: doublets not excluded (nkpanel places no DNA or event-length "
                "singlet gate)"
                if self.kind == "mass"
                else "no FSC-A/FSC-H pair: doublets not excluded"
            )
            return parent
        a_ch, h_ch = self.markers.channel_for("FSC-A"), self.markers.channel_for("FSC-H")
        base = self.member[parent] if parent else self.everything()
        idx = self.subsample(base)
        # integer scatter (a 10-bit FSC of an older instrument) spread over each channel's
        # width: ratios of small whole numbers stand on a lattice whose rungs the mode and the
        # residuals' spread below would follow (20-40% of lymphocytes lost, no bead)
        a, h = self.for_density(a_ch, idx), self.for_density(h_ch, idx)
        # events at the top of either scale (clumps, bubbles: the saturation check counts them)
        # have no measurable ratio; left in, their H/A of exactly 1 is a spike the cut lands on.
        # Judged on the values recorded: spread, half of a top channel's events fall under it
        ra, rh = self.raw(a_ch)[idx], self.raw(h_ch)[idx]
        ok = (ra > 0) & (rh > 0) & (ra < self.pinned_at(a_ch)) & (rh < self.pinned_at(h_ch))
        a, h = _pick(a, ok), _pick(h, ok)
        if a.size < 200:
            self.notes.append("too few events for a singlet gate")
            return parent
        # singlets keep FSC-H in proportion to FSC-A; doublets have a larger FSC-A for their
        # FSC-H. Follow the singlets' most common log(H/A) along FSC-A (the mode in quantile
        # bins, so that doublets do not drag it), then cut the residual below the singlet peak
        # (valley to the doublets, or the peak's tail) and above it (its tail).
        log_a, r = np.log(a), np.log(h / a)
        qs = np.quantile(log_a, np.linspace(0.0, 1.0, 13))
        xs, modes = [], []
        for lo_q, hi_q in itertools.pairwise(qs):
            sel = (log_a >= lo_q) & (log_a <= hi_q)
            if np.count_nonzero(sel) < 20:
                continue
            which = np.flatnonzero(sel)
            d = density_1d(r[which], bandwidth="silverman")
            xs.append(float(np.median(log_a[which])))
            modes.append(float(d.grid[int(np.argmax(d.density))]))
        if len(xs) < 2:
            self.notes.append("too few events for a singlet gate")
            return parent
        trend = np.interp(log_a, xs, modes)
        resid = r - trend
        k = self.settings.singlet_sds
        low_cut = find_cut(resid, side="below", tail_sds=k)
        self.cuts["Singlets"] = low_cut
        up = _pick(resid, resid > 0)
        hi_off = k * float(np.sqrt(np.mean(up**2))) if up.size >= 5 else 0.1
        lo_off = low_cut.value
        top = self.pinned_at(a_ch)  # events pinned on FSC-A are no singlets one can count
        bottom = max(float(np.min(a)) * 0.5, 1.0)
        xs_lin = np.array([bottom, *np.exp(xs), top])
        modes_arr = np.array([modes[0], *modes, modes[-1]])
        vertices = [
            (float(x), float(x * np.exp(m + lo_off)))
            for x, m in zip(xs_lin, modes_arr, strict=True)
        ]
        vertices += [
            (float(x), float(x * np.exp(m + hi_off)))
            for x, m in zip(xs_lin[::-1], modes_arr[::-1], strict=True)
        ]
        dims = (Dimension(a_ch, None, False), Dimension(h_ch, None, False))
        self.add(PolygonGate("Singlets", parent, dims, tuple(vertices)))
        return "Singlets"

    def leukocyte_gate(self, parent: str | None, bead: BeadCut | None) -> str | None:
        base = self.member[parent] if parent else self.everything()
        dims: list[Dimension] = []
        lo: list[float | None] = []
        hi: list[float | None] = []
        if self.markers.has("CD45"):
            ch = self.markers.channel_for("CD45")
            notbead = base if bead is None else base & (self.raw(bead.channel) < bead.value)
            dims.append(self.dim(ch))
            lo.append(self.cut("CD45+", ch, notbead, side="below"))
            hi.append(None)
        else:
            self.notes.append(
                "no CD45: leukocytes taken from scatter alone (no percentage of CD45+ "
                "leukocytes is given), and basophils (about 0.5-1% of leukocytes, a "
                "lymphocyte's scatter) counted among the lymphocytes"
            )
        if bead is not None and dims and dims[0].channel == bead.channel:
            hi[0] = bead.value  # beads on CD45 itself: below them
        elif bead is not None:
            dims.append(self.dim(bead.channel))
            lo.append(None)
            hi.append(bead.value)
        if not dims:
            return parent
        self.add(RangeGate("Leukocytes", parent, tuple(dims), tuple(lo), tuple(hi)))
        return "Leukocytes"

    def lymphocyte_gate(self, parent: str | None) -> str:
        base = self.member[parent] if parent else self.everything()
        dims: list[Dimension] = []
        lo: list[float | None] = []
        hi: list[float | None] = []
        ssc = self.scatter("SSC")
        fsc = self.scatter("FSC")
        bright: float | None = None  # the CD45 cut below the lymphocytes, where placed
        bright_events: BoolArray | None = None  # the events at or above it
        if ssc is not None and self.kind == "flow":
            # judged on the events a density is drawn from (percentiles of all cost 10 ms)
            values = self.raw(ssc)[self.subsample(base)]
            self.dead_side_scatter = side_scatter_missing(self.channel(ssc), values)
            if self.dead_side_scatter is not None:  # as no side-scatter channel at all
                ssc = None
        # flow data without side scatter: CD45 alone does not part lymphocytes from monocytes
        # (both CD45 bright) nor, reliably, from granulocytes, whose CD16 would be counted as
        # NK; withheld by the blocking "lymphocyte gate" QC check
        if ssc is None and self.kind == "flow":
            return self.every_leukocyte(parent)
        if ssc is not None:
            if not self.markers.has("CD45") and fsc is not None:
                # without CD45, debris (low FSC, low SSC) must go before the low-SSC cluster is
                # looked for, or it would be taken for the lymphocytes
                fch = fsc
                c = find_cut(
                    self.scaled(fch, base & (self.raw(fch) > 0)),
                    min_separation=self.separation(fch),
                    axis_pile=True,  # no CD45 and a scatter channel: flow cytometry
                )
                if c.method == "valley":
                    self.cuts["FSC debris"] = c
                    fsc_lo = self.scale(fch).inverse(c.value)
                    dims.append(self.dim(fch))
                    lo.append(fsc_lo)
                    hi.append(None)
                    base = base & (self.raw(fch) >= fsc_lo)
            ch = ssc
            dims.append(self.dim(ch))
            lo.append(None)
            top, bright, bright_events = self.ssc_low(ch, base & (self.raw(ch) > 0))
            if bright_events is not None:
                base = base & bright_events
            hi.append(top)
        elif self.markers.has("CD45"):
            # no side scatter (mass cytometry): lymphocytes are the CD45-brightest leukocytes
            ch = self.markers.channel_for("CD45")
            dims.append(self.dim(ch))
            # placed on all events, where the CD45-dim granulocytes still stand as their own peak
            everyone = self.member.get("Time", self.everything())
            cd45_lo = self.cut("CD45 bright", ch, everyone, side="below", brightest=True)
            lo.append(cd45_lo)
            hi.append(None)
            base = base & (self.raw(ch) >= cd45_lo)
        for marker in ("CD14", "CD66"):  # monocytes, granulocytes
            if self.markers.has(marker):
                ch = self.markers.channel_for(marker)
                shared = self.markers.sharing(marker)
                dump = [m for m in ("CD3", "CD19", "CD56", "CD16") if m in shared]
                if dump:
                    # a dump channel ("CD14/CD19"): cutting it out would take the B (or T)
                    # cells out of the lymphocytes, and NK % of lymphocytes up with them
                    self.notes.append(
                        f"{marker} shares channel {ch} with {', '.join(dump)} (a dump channel): "
                        f"not used to gate {_LEFT_OUT[marker]} out of the lymphocytes"
                    )
                    continue
                dims.append(self.dim(ch))
                lo.append(None)
                hi.append(self.cut(f"{marker}-", ch, base))
                base = base & (self.raw(ch) < hi[-1])  # type: ignore[operator]
        name = "Lymphocytes" if bright is None else LYMPHOCYTE_SCATTER
        scatter_only = ssc is not None and bool(dims) and dims[-1].channel == ssc
        if scatter_only and fsc is not None and self.kind == "flow":
            left = lo[0] if len(dims) == 2 else None  # the debris cut on FSC, where placed
            vertices = self.oblique_scatter(fsc, str(ssc), base, left)
            if vertices is not None:
                dims_2d = (self.dim(fsc), self.dim(str(ssc)))
                self.add(PolygonGate(name, parent, dims_2d, vertices))
                return self.cd45_bright_gate(bright, bright_events)
        if not dims:
            return self.every_leukocyte(parent)
        self.add(RangeGate(name, parent, tuple(dims), tuple(lo), tuple(hi)))
        return self.cd45_bright_gate(bright, bright_events)

    def cd45_bright_gate(self, bright: float | None, events: BoolArray | None) -> str:
        """The lymphocyte gate: the CD45-bright events of :data:`LYMPHOCYTE_SCATTER` where a
        CD45 cut was placed (:meth:`cd45_bright`; ``events``: every event at or above it),
        else the scatter gate itself."""
        if bright is not None and events is not None:
            dim = (self.dim(self.markers.channel_for("CD45")),)
            gate = RangeGate("Lymphocytes", LYMPHOCYTE_SCATTER, dim, (bright,), (None,))
            self.add(gate, self.member[LYMPHOCYTE_SCATTER] & events)
        return "Lymphocytes"

    def cd45_bright(self, ssc: str, within: BoolArray, first: float) -> float | None:
        """The CD45 cut below the lymphocytes (linear), where CD45-dim events share their
        side scatter; ``None`` where none form a population of their own.

        Lymphocytes are the CD45-bright, low side-scatter cluster (Nicholson JK, Hubbard M,
        Jones BM. Cytometry 1996;26:16-21; CDC guidelines for CD4+ T-cell determinations,
        MMWR 1997;46(RR-2)). Basophils have about
        the scatter of lymphocytes, dimmer CD45 and none of the panel's lineage markers: in a
        scatter gate they are counted among the lymphocytes and lower NK % of lymphocytes,
        by a fifth when lymphocytes are 3% and basophils 1% of the leukocytes (simulated),
        and lying between lymphocytes and monocytes they fill the valley the scatter gate is
        drawn at. The cut is a valley below the lymphocytes' CD45 peak among the events
        under the first side-scatter valley ``first``, never a tail: without a second population
        nothing is cut. The lymphocytes' peak is the one where the T cells (CD3+, most of
        the lymphocytes) stand, not the brightest: monocytes under the cut may be brighter.
        No cut is placed where it would leave out more than :data:`CD45_MAX_T_CELLS_LEFT`
        of the T cells.
        """
        if not self.markers.has("CD45"):
            return None
        ch, cd3 = self.markers.channel_for("CD45"), self.markers.channel_for("CD3")
        idx = self.subsample(within)
        idx = idx[self.raw(ssc)[idx] < first]
        if idx.size < 10:
            return None
        x3 = self.scaled(cd3, idx)
        c3 = find_cut(x3, min_separation=self.separation(cd3), axis_pile=True)
        t_cells = x3 >= c3.value
        if c3.method != "valley" or np.count_nonzero(t_cells) < MIN_SUBSET_EVENTS:
            return None
        x = self.scaled(ch, idx)
        c = find_cut(
            x,
            side="below",
            reference=float(np.median(x[t_cells])),
            min_separation=self.separation(ch),
            axis_pile=True,
            min_mass=CD45_DIM_MIN_MASS,
        )
        if c.method != "valley":
            return None
        lost = float(np.mean(x[t_cells] < c.value))
        if lost > CD45_MAX_T_CELLS_LEFT:
            self.notes.append(
                f"CD45-dim events under the lymphocytes' side scatter not left out: the CD45 "
                f"valley would leave out {lost:.1%} of the T cells"
            )
            return None
        self.cuts["Lymphocytes CD45 bright"] = c
        return self.scale(ch).inverse(c.value)

    def every_leukocyte(self, parent: str | None) -> str:
        """A "Lymphocytes" gate that every leukocyte passes, where nothing parts lymphocytes
        from the others (said by the blocking "lymphocyte gate" QC check)."""
        self.lymphocytes_separated = False
        whole = (self.dim(self.sample.pnn[0]),)
        self.add(RangeGate("Lymphocytes", parent, whole, (None,), (None,)))
        return "Lymphocytes"

    def ssc_low(self, ssc: str, within: BoolArray) -> tuple[float, float | None, BoolArray | None]:
        """The side-scatter cut above the lymphocytes (linear), recorded as "SSC low"; and the
        CD45 cut below them with every event at or above it, where one was placed
        (:meth:`cd45_bright`).

        The first valley above the lowest peak is found among all ``within`` (leukocytes),
        where few monocytes (2% of leukocytes is normal) are too light a peak beside the
        granulocytes and the valley falls between lymphocytes and granulocytes, monocytes
        and all. So the events below that valley are looked at again: where they hold two
        populations, the cut is the valley between the lowest two (the first valley is kept
        as "SSC low (first)"). NK cells, whose side scatter is higher than T cells', are a
        shoulder of the lymphocytes' peak, closer than two populations stand
        (:meth:`separation`). CD45-dim events under the first valley, where they form a
        population, are left out before the cuts are placed (basophils, between
        lymphocytes and monocytes, fill the valleys): the first valley is found again
        without them.
        """
        first = self.cut("SSC low", ssc, within)
        looked = self.kind == "flow" and self.settings.cd45_dim_out
        bright = self.cd45_bright(ssc, within, first) if looked else None
        events: BoolArray | None = None
        if bright is not None:
            events = self.raw(self.markers.channel_for("CD45")) >= bright
            within = within & events
            first = self.cut("SSC low", ssc, within)
        return self._ssc_low_inner(ssc, within, first), bright, events

    def _ssc_low_inner(self, ssc: str, within: BoolArray, first: float) -> float:
        c = self.cuts["SSC low"]
        if c.method == "tail" and c.peaks:
            return self.lone_lymphocytes(ssc, within, first)
        if c.method != "valley":
            return first
        below = within & (self.raw(ssc) < first)
        inner = find_cut(
            self.scaled(ssc, below), min_separation=self.separation(ssc), axis_pile=True
        )
        if inner.method != "valley":
            return first
        self.cuts["SSC low (first)"] = c
        self.cuts["SSC low"] = inner
        return self.scale(ssc).inverse(inner.value)

    def lone_lymphocytes(self, ssc: str, within: BoolArray, first: float) -> float:
        """The side-scatter cut above lymphocytes that stand alone (no monocyte or granulocyte
        peak above them: separated cells): their peak plus :data:`TAIL_SDS` SDs of their own
        upper half, where the cut for a lone peak reads the lower half.

        A lone negative population's upper tail is placed from its lower half, clean of what
        lies above it. The lymphocytes' upper half is wider than their lower: NK cells
        scatter more side light than T cells, and the cut from the lower half dropped 5–11%
        of NK cells in simulated tubes of lymphocytes alone (NK/µL up to 11% low, no check
        failed). Nothing else stands above them to be kept out, so their own upper spread
        sets the cut; never below the first one.
        """
        c = self.cuts["SSC low"]
        centre = min(c.peaks)
        x = self.scaled(ssc, within)
        upper = _above(x, centre)  # find_cut's gather, here for the upper half
        if upper.size < 5:
            return first
        tail = centre + TAIL_SDS * float(np.sqrt(np.mean(upper**2)))
        if tail <= c.value:
            return first
        self.cuts["SSC low (lower half)"] = c
        self.cuts["SSC low"] = Cut(tail, "tail", c.peaks, tail)
        return self.scale(ssc).inverse(tail)

    def oblique_scatter(
        self, fsc: str, ssc: str, base: BoolArray, left: float | None
    ) -> tuple[tuple[float, float], ...] | None:
        """The lymphocyte gate's edge against the monocytes drawn across forward and side
        scatter together, as a polygon on the linear scale; ``None`` where side scatter alone
        parts them as well.

        NK cells, large granular lymphocytes, scatter more side light than T and B cells, and
        the upper end of their spread reaches the valley between lymphocytes and monocytes on
        side scatter. A cut there drops the NK cells' bright tail, and when monocytes
        outnumber the lymphocytes (lymphopenia) the valley moves down into them: 5 to 12% of
        NK cells lost, T cells kept, on simulated tubes at 2–6% lymphocytes. Monocytes are
        also larger than lymphocytes (forward scatter), which side scatter alone cannot use;
        the classical lymphocyte gate is drawn on both. Here the direction that parts the
        two best is Fisher's linear discriminant of the two populations (as placed by the
        side-scatter valley: events below it, and events from it to as far again beyond the
        monocytes' peak) in log forward and log side scatter; the cut is the density valley
        along it, found as every other cut is. The gate is used only where the discriminant
        parts the populations at least :data:`OBLIQUE_GAIN` times better than side scatter
        alone, with monocytes larger and more granular than lymphocytes.

        The edge ``log SSC + k log FSC = c`` is a curve on the linear scale, written as
        :data:`OBLIQUE_VERTICES` vertices along it from the gate's ceiling (the edge's height
        at the smallest lymphocytes, the 1st percentile of their forward scatter, and never
        above the monocytes' peak) to the top of forward scatter; the polygon is the gate,
        evaluated the same way here and in FlowKit.
        ``left`` is a lower forward-scatter cut (debris) that the polygon then keeps.
        """
        c = self.cuts["SSC low"]
        above = [p for p in c.peaks if p > c.value]
        # the cut and the edge below are in log10 units: scatter channels are on the log scale
        # (:meth:`scale`, by the marker map)
        if c.method != "valley" or not above:
            return None
        mono = min(above)
        idx = self.subsample(base)
        f_raw, s_raw = self.raw(fsc)[idx], self.raw(ssc)[idx]
        ok = (f_raw > 1.0) & (s_raw > 1.0)  # the log scale clips at 1
        f, s = np.log10(f_raw[ok]), np.log10(s_raw[ok])
        low = s < c.value
        high = ~low & (s < 2.0 * mono - c.value)
        if np.count_nonzero(low) < 50 or np.count_nonzero(high) < 50:
            return None
        xy = np.column_stack((f, s))
        a, b = xy[low], xy[high]
        pooled = (np.cov(a.T) * (a.shape[0] - 1) + np.cov(b.T) * (b.shape[0] - 1)) / (
            a.shape[0] + b.shape[0] - 2
        )
        diff = b.mean(axis=0) - a.mean(axis=0)
        try:
            w = np.linalg.solve(pooled, diff)
        except np.linalg.LinAlgError:
            return None
        if not (w[0] > 0 and w[1] > 0 and diff[1] > 0):
            return None
        along_ssc = diff[1] / np.sqrt(pooled[1, 1])
        fisher = np.sqrt(float(diff @ w))
        if fisher < OBLIQUE_GAIN * along_ssc:
            return None
        k = float(w[0] / w[1])  # the projection in side-scatter units: log SSC + k log FSC
        # the valley between the two populations alone (granulocytes far beyond would
        # outweigh few lymphocytes), and it must lie between their means along the projection
        p = s + k * f
        both = low | high
        cut = find_cut(p[both], min_separation=self.separation(ssc))
        if cut.method != "valley" or not (p[low].mean() < cut.value < p[high].mean()):
            return None
        self.cuts["SSC low (size-adjusted)"] = cut
        top_f = max(self.channel(fsc).top, float(np.max(f_raw)))
        top_s = self.channel(ssc).top
        # no lymphocyte scatters more side light than the edge allows at the smallest of them
        # (the 1st percentile of their forward scatter), nor more than a monocyte
        ceiling = 10.0 ** min(mono, cut.value - k * float(np.quantile(f[low], 0.01)))
        # what the side-scatter cut keeps stays in: the edge only adds the lymphocytes that
        # scatter more side light at a lymphocyte's size (large lymphocytes of normal side
        # scatter would otherwise fall beyond a falling edge)
        floor = 10.0**c.value
        return _oblique_polygon(
            cut.value,
            k,
            ceiling=max(ceiling, floor),
            left=left,
            right=1.01 * top_f,
            bottom=-top_s,
            floor=floor,
        )

    def lineage_gates(self, lymph: str) -> None:
        """CD3/CD19/CD56/CD16 gates inside the lymphocytes.

        CD56 and CD16 cuts are found on all lymphocytes; the CD3 cut that separates NK from
        NK-like T cells is found on the NK-marker-positive lymphocytes, where both populations
        stand as peaks. CD3- means inside the CD3-negative population's own spread (its peak +
        3 SD, never past the valley); CD3+ means above the valley. Events in between are CD3-dim
        and counted in neither, as a person drawing the gates would leave them.
        """
        # every mask below is a subset of the lymphocytes: work on their indices and values
        base = self.indices(lymph)
        cd3 = self.markers.channel_for("CD3")
        cd56 = self.markers.channel_for("CD56")
        cd16 = self.markers.markers.get("CD16")
        separate16 = cd16 is not None and cd16 != cd56
        if cd16 == cd56:
            self.notes.append("CD16 and CD56 share one channel: NK = CD3- CD16/56+; no subsets")
        elif cd16 is None:
            self.notes.append("no CD16 channel: NK = CD3- CD56+; CD56bright/dim subsets not gated")
        # first pass on all lymphocytes, to find the NK-marker-positive cells for the CD3 split
        c56_all = self.cut("CD56 (all lymphocytes)", cd56, base)
        marker_pos = self.values_in(lymph, cd56) >= c56_all
        if separate16 and cd16 is not None:
            c16_all = self.cut("CD16 (all lymphocytes)", cd16, base)
            marker_pos |= self.values_in(lymph, cd16) >= c16_all
        nk_marker = _pick(base, marker_pos)
        enough = nk_marker.size >= 50
        # NK-like T cells sit on CD3 where the T cells of all lymphocytes do: the peak of the
        # NK-marker-positive cells nearest the T cells' median is theirs, and the cut is the
        # valley below it, whatever stands further down (audit 31: NK cells spread into two
        # peaks by unmixing, whose lowest valley made the CD56dim ones NK-like T on a real
        # Cytek Aurora PBMC) or further up (review 34: a CD3-brighter subset, as TCRγδ T cells
        # can be, had the brightest peak taken and the cut above every ordinary T cell)
        c3_all = self.cut("CD3 (all lymphocytes)", cd3, base)
        t_median: float | None = None
        if self.cuts["CD3 (all lymphocytes)"].method == "valley":  # the T cells stand apart
            t_cells = self.scaled(cd3, _pick(base, self.values_in(lymph, cd3) >= c3_all))
            t_median = float(np.median(t_cells)) if t_cells.size else None
        # without T cells standing apart, the lowest peak is the negatives', as for any cut
        side: Literal["above", "below"] = "below" if t_median is not None else "above"
        self.cut("CD3", cd3, nk_marker if enough else base, side=side, reference=t_median)
        if enough and self.cuts["CD3"].method != "valley":
            # one population among them, NK or NK-like T: a lone peak is taken for the
            # negatives, and in a tube without NK cells the NK-like T cells were called NK and
            # every T cell CD3- (audit 32). The T cells among all lymphocytes set the cut
            self.notes.append(
                "CD3: the NK-marker-positive lymphocytes form one population; the CD3 cut is "
                "taken on all lymphocytes"
            )
            self.cut("CD3", cd3, base, side=side, reference=t_median)
        c3_valley = self.linear(cd3, self.cuts["CD3"].value)
        c3_neg = self.linear(cd3, self.cuts["CD3"].negatives_end)

        dims = [self.dim(cd3)]
        lo: list[float | None] = [None]
        hi: list[float | None] = [c3_neg]
        c19: float | None = None
        cd19 = self.markers.markers.get("CD19")
        cd19_parent = _pick(base, self.values_in(lymph, cd3) < c3_neg)
        if cd19 is not None and cd19 == cd3:
            # a CD3/CD19 dump channel: CD3- is negative for both, and CD3+ holds the B cells
            self.notes.append(
                f"CD19 shares channel {cd19} with CD3 (a dump channel): B cells are not gated "
                "apart, CD3- means CD3- CD19-, and CD3+ holds the B cells"
            )
            cd19 = None
        if cd19 is not None and cd19_parent.size < 10:
            self.notes.append("too few CD3- events to place a CD19 cut: B cells not excluded")
            cd19 = None
        if cd19 is not None:
            c19 = self.cut("CD19", cd19, cd19_parent, bright_only=True)
            if self.cuts["CD19"].method != "valley":
                # the CD3- lymphocytes as one population: B cells alone (a tube without NK
                # cells: B cells read 0.00% for 12, review 34) or no B cells. All lymphocytes
                # hold the T cells as CD19's negatives: a valley there is the B cells'
                every = self.cut("CD19 (all lymphocytes)", cd19, base, bright_only=True)
                if self.cuts["CD19 (all lymphocytes)"].method == "valley":
                    c19 = every
                    self.cuts["CD19"] = self.cuts["CD19 (all lymphocytes)"]
                    self.note_tail("CD19", cd19, self.cuts["CD19"])
            dims.append(self.dim(cd19))
            lo.append(None)
            hi.append(c19)
        self.add(RangeGate("CD3-", lymph, tuple(dims), tuple(lo), tuple(hi)))
        # the NK cuts proper, on the NK gate's own parent
        # reference population for the NK cuts: CD3- lymphocytes with the B cells kept in, so
        # that a CD56-/CD16- population is always there to define "negative"
        neg_ref = cd19_parent
        # on a combined CD16+56 channel (TBNK kits) CD16-dim monocytes in the lymphocyte gate
        # stand between the negatives and the NK cells: where three peaks stand, NK cells are
        # the brightest (as on a CD16 channel of its own)
        c56 = self.cut("CD56", cd56, neg_ref, bright_only=cd16 == cd56)
        c56 = self.negatives_missing("CD56", cd56, c56)
        c16 = (
            self.negatives_missing("CD16", cd16, self.cut("CD16", cd16, neg_ref, bright_only=True))
            if separate16 and cd16 is not None
            else None
        )

        nk: Gate
        if separate16 and cd16 is not None and c16 is not None:
            big = 1e9
            # CD56+ or CD16+: everything outside the double-negative corner
            vertices = ((-big, c16), (c56, c16), (c56, -big), (big, -big), (big, big), (-big, big))
            nk = PolygonGate("NK", "CD3-", (self.dim(cd56), self.dim(cd16)), vertices)
        else:
            nk = RangeGate("NK", "CD3-", (self.dim(cd56),), (c56,), (None,))
        self.add(nk)
        nk_in = self.indices("NK")
        positive56: Array | None = None  # the CD56+ NK cells' CD56, where subsets are cut
        positive_nk = nk_in  # and those events
        if separate16 and cd16 is not None and nk_in.size >= 20:
            # on the CD56+ NK cells only: the CD56- CD16+ NK cells below the NK cut would widen
            # the dim peak's lower side, and a lone dim peak's cut (its peak + 3 SD of that
            # side) would then pass over a rare bright subset (1.8% of NK read as 0.04%)
            on56 = self.scaled(cd56, nk_in)
            c56_scaled = float(self.scale(cd56)(np.array([c56]))[0])
            positive_nk = _pick(nk_in, on56 >= c56_scaled)
            positive56 = _pick(on56, on56 >= c56_scaled)
            if positive56.size < MIN_SUBSET_EVENTS:
                self.notes.append(
                    f"only {positive56.size} CD56+ NK events: too few to place the CD56bright "
                    "cut; CD56bright/dim subsets not given"
                )
                positive56 = None
        c_bright: Cut | None = None
        if cd16 is not None and positive56 is not None:
            # the CD56dim NK cells are the reference: the lowest CD56+ NK peak, passing over a
            # light one hard by the NK cut where two more stand above it (that bump had put the
            # bright cut below the whole dim peak: CD56bright 92% of NK for 7%, audit 32); not
            # the median, which lies among the bright cells where they are the majority
            # (CD56bright 0.0% for 61: review 34)
            c_bright = find_cut(
                positive56,
                above=c56_scaled,
                axis_pile=self.kind == "flow",
                reference_mass=SUBSET_REFERENCE_MASS,
                reference_gap=self.separation(cd56),
            )
            if c_bright.method != "valley" and self.mostly_cd16_negative(positive_nk):
                c_bright = None
        if cd16 is not None and c_bright is not None:
            self.cuts["CD56bright"] = c_bright
            lin_b = self.linear(cd56, c_bright.value)
            # CD56bright CD16-/dim (ARUP 2013805's CD3-CD16-CD56bright): below the CD16+ NK
            # cells' own spread on CD16; CD56bright CD16+ cells are in neither subset (they
            # had counted as CD56bright, which the label and the interval leave out: audit 32)
            # only where the CD16+ cells stand as a peak of their own: a cut at the CD16-
            # negatives' tail (few NK cells) would leave out the CD16-dim ones (CD56bright 4.7%
            # for 10.6: review 34)
            c16_used = self.cuts["CD16"]
            if c16_used.method == "valley" and c16 is not None:
                lim16 = max(self.linear(cd16, c16_used.positives_start), c16)
                self.add(
                    RangeGate(
                        "NK CD56bright",
                        "NK",
                        (self.dim(cd56), self.dim(cd16)),
                        (lin_b, None),
                        (None, lim16),
                    )
                )
            else:
                self.add(RangeGate("NK CD56bright", "NK", (self.dim(cd56),), (lin_b,), (None,)))
            self.add(
                RangeGate(
                    # CD56dim CD16+ (ARUP 2013805): CD56 between the NK cut and the bright cut;
                    # CD56- CD16+ NK cells belong to neither subset
                    "NK CD56dim",
                    "NK",
                    (self.dim(cd56), self.dim(cd16)),
                    (c56, c16),
                    (lin_b, None),
                )
            )
        self.add(RangeGate("CD3+", lymph, (self.dim(cd3),), (c3_valley,), (None,)))
        # on a combined CD16+56 channel the NK cut lies above the CD16-dim monocytes, which
        # the CD3+ cells hold none of: there the NK-like T cells (CD56 dimmer than NK cells)
        # are cut where all lymphocytes part into negatives and positives (they read 0.946× the
        # truth on 20 TBNK-style tubes, 2.85% for 4.02%: audit 32)
        nkt_cut = c56_all if cd16 == cd56 else c56
        self.add(RangeGate("NK-like T", "CD3+", (self.dim(cd56),), (nkt_cut,), (None,)))
        if cd19 is not None and c19 is not None:
            self.add(
                RangeGate(
                    "B cells", lymph, (self.dim(cd3), self.dim(cd19)), (None, c19), (c3_neg, None)
                )
            )

    def mostly_cd16_negative(self, positive_nk: NDArray[np.intp]) -> bool:
        """Whether the CD56+ NK cells (events ``positive_nk``), standing as one CD56
        population, are mostly CD16-, as CD56bright cells are and CD56dim ones are not: taken
        for the CD56dim cells, such a population had read CD56bright 0.1% of NK for 95 and
        CD56dim 41% for 3 (this session). Which subset it is cannot be told from CD56 alone,
        so the subsets are not given, with a note."""
        c16 = self.cuts.get("CD16")
        if c16 is None or c16.method == "fallback":
            return False
        on16 = self.scaled(self.markers.channel_for("CD16"), positive_nk) >= c16.value
        share = float(np.count_nonzero(on16)) / max(1, on16.size)
        if share >= 0.5:
            return False
        # the reader is not pointed to one subset: CD56dim cells that shed CD16 (activation,
        # a stored sample) are as CD16- as CD56bright ones (review 40)
        self.notes.append(
            f"the CD56+ NK cells stand as one CD56 population, {1 - share:.0%} of them CD16-: "
            "CD56bright cells, or CD56dim cells that have shed CD16 (activation, a stored "
            "sample), cannot be told apart, so the CD56bright/dim subsets are not given; review "
            "the NK gate's CD56 and CD16"
        )
        return True

    def negatives_missing(self, label: str, pnn: str, value: float) -> float:
        """The NK cut ``label`` on the CD3- lymphocytes, or the one on all lymphocytes where
        the CD3- ones held no negative population.

        Where B cells are absent and the CD3- lymphocytes are nearly all NK cells, their
        one peak on CD16 is the positive population, and a cut at its tail (for a lone
        negative peak) lies above the NK cells: CD56- CD16+ NK cells fell out of the NK
        gate (extreme sweep, 1.2 points of NK % silent). The T cells are the negatives on
        all lymphocytes, and the cut found there (a valley below that peak) is used.
        """
        own, every = self.cuts[label], self.cuts.get(f"{label} (all lymphocytes)")
        if own.method == "valley" or every is None or every.method != "valley":
            return value
        if not own.peaks or min(own.peaks) <= every.value:
            return value
        self.cuts[f"{label} (CD3-, no negatives)"] = own
        self.cuts[label] = every
        self.note_tail(label, pnn, every)
        self.notes.append(
            f"{label}: the CD3- lymphocytes stand as one positive peak on {pnn} (no negative "
            "population there): cut where it is found on all lymphocytes"
        )
        return self.linear(pnn, every.value)

    def linear(self, pnn: str, y: float | None) -> float:
        if y is None:  # a fallback cut (fewer than 10 usable events) has no tail end
            raise QCError(f"{self.sample.source}: too few usable events on {pnn} to place a cut")
        return self.scale(pnn).inverse(y)


#: the least share of the events that counting beads must hold to be found as a population:
#: 1,000 beads (the fewest the bead-count check accepts) in a 500,000-event tube. Beads stand
#: apart from every cell on every channel at once, so a small peak of them is no ripple; at
#: the default share of a population (2%) beads were not found in 2 of 62 lymphopenic tubes,
#: where granulocytes fill the acquisition (audit 10)
BEAD_MIN_MASS = 0.002
#: events between the cells and the beads are beads (dimmed by a clog) where their colour
#: profile lies within this many times the beads' own median distance of the beads' profile:
#: on simulated tubes clog-dimmed beads lie at 1.0x, events bright on every channel with a
#: lognormal spread of 0.25 per channel at 6x (review 34)
BEAD_COLOUR_SPREAD = 2.0
#: the oblique lymphocyte gate is drawn only where Fisher's discriminant of lymphocytes and
#: monocytes on log FSC and log SSC separates them this many times better than SSC alone (on
#: simulated blood 1.15–1.25 times; a gain under a tenth is not worth a curved gate)
OBLIQUE_GAIN = 1.1
#: vertices along the curved edge of the oblique lymphocyte gate (the chords then lie within
#: about 0.5% of the curve in side scatter)
OBLIQUE_VERTICES = 24


def _oblique_polygon(
    c: float,
    k: float,
    *,
    ceiling: float,
    left: float | None,
    right: float,
    bottom: float,
    floor: float | None = None,
) -> tuple[tuple[float, float], ...]:
    """The region ``log10 SSC + k log10 FSC < c`` below ``ceiling`` (SSC), right of ``left``
    (FSC; every event for ``None``) and left of ``right``, together with everything below
    ``floor`` (SSC) in that FSC range, as polygon vertices on the linear scale: a flat bottom
    at ``bottom``, and an upper edge that runs along the ceiling, then down the curve
    ``SSC = 10^c FSC^-k`` (vertices evenly spaced in log FSC) until it meets the floor, then
    along the floor.

    >>> v = _oblique_polygon(10.0, 1.0, ceiling=1e5, left=None, right=1e6, bottom=-1.0)
    >>> v[1], v[2]  # up the left side to the ceiling, along it to where the curve meets it
    ((-1000000.0, 100000.0), (100000.0, 100000.0))
    >>> v[-2], v[-1]  # the curve's end at the right edge (10^10 / 10^6), down to the bottom
    ((1000000.0, 10000.0), (1000000.0, -1.0))
    >>> v = _oblique_polygon(10.0, 1.0, ceiling=1e5, left=None, right=1e6, bottom=-1.0,
    ...                      floor=2e4)
    >>> [(round(x), round(y)) for x, y in v[-3:-1]]  # meets the floor at FSC 5·10^5, then on
    [(500000, 20000), (1000000, 20000)]
    """
    x_left = left if left is not None else -right
    x_cap = 10.0 ** ((c - np.log10(ceiling)) / k)  # where the curve meets the ceiling
    start = max(x_cap, x_left, 1.0)
    end = right
    if floor is not None and floor > 0:
        end = min(right, 10.0 ** ((c - np.log10(floor)) / k))  # where it meets the floor
    xs = np.geomspace(start, end, OBLIQUE_VERTICES) if start < end else np.array([end])
    ys = np.minimum(10.0 ** (c - k * np.log10(xs)), ceiling)
    if floor is not None:
        ys = np.maximum(ys, floor)
    upper = [(x_left, ceiling)] if x_left < start else []
    upper += [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
    if end < right:
        upper.append((right, float(floor if floor is not None else ys[-1])))
    return ((x_left, bottom), *upper, (right, bottom))


def auto_gate(
    sample: FlowSample,
    compensated: Array | CompensatedColumns,
    markers: MarkerMap,
    settings: AutoGateSettings | None = None,
) -> AutoGateResult:
    """Gate the NK panel on one sample.

    Parameters
    ----------
    sample
        The sample (its channels, metadata and raw events).
    compensated
        Its compensated events (``sample.events`` itself when there is nothing to compensate),
        as an array or as :class:`~nkpanel.flow.compensation.CompensatedColumns`.
    markers
        Channels for CD3, CD56 (required) and CD16, CD19, CD45, CD14, CD66, FSC-A, FSC-H,
        SSC-A, SSC-H, Time (used where present).

    Returns
    -------
    AutoGateResult
        Gate records (exportable as Gating-ML), each event's membership, and the audit trail of
        every cut.
    """
    if not isinstance(compensated, CompensatedColumns):
        compensated = CompensatedColumns.of_matrix(sample, compensated)
    g = _Gater(sample, compensated, markers, settings or AutoGateSettings())
    root, unstable = g.time_gate()
    bead = g.bead_gate(root) if g.kind == "flow" else None
    single = g.singlet_gate(root)
    leuk = g.leukocyte_gate(single, bead)
    lymph = g.lymphocyte_gate(leuk)
    g.lineage_gates(lymph)
    return AutoGateResult(
        tree=GateTree(tuple(g.gates)),
        membership=g.member,
        cuts=g.cuts,
        notes=tuple(g.notes),
        cytometry=g.kind,
        unstable_time_fraction=unstable,
        trimmed_time_fraction=g.trimmed_time,
        lymphocytes_separated=g.lymphocytes_separated,
        dead_side_scatter=g.dead_side_scatter,
        bead_doubt=g.bead_doubt,
        bead_doubt_in_cells=g.bead_doubt_in_cells,
        scales=dict(g.scales),
    )
