"""Data-driven cut points from one-dimensional densities, in the manner of flowDensity's
``deGate`` and openCyto's ``mindensity``: find the populations' peaks, cut at the density
minimum between the negative and the positive one, and fall back to the negative peak's upper
tail when the positive population forms no peak of its own.

References
----------
Malek M et al. flowDensity: reproducing manual gating of flow cytometry data by automated
density-based cell population identification. Bioinformatics 2015;31:606-607.
Finak G et al. OpenCyto: an open source infrastructure for scalable, robust, reproducible, and
automated, end-to-end flow cytometry data analysis. PLoS Comput Biol 2014;10:e1003806.
Silverman BW. Density Estimation for Statistics and Data Analysis. Chapman & Hall 1986 (§3.4.2).
Botev ZI, Grotowski JF, Kroese DP. Kernel density estimation via diffusion. Ann Stat
2010;38:2916-2957 (the improved Sheather-Jones bandwidth used here: Silverman's rule
oversmooths multimodal data and would blur the valleys gating depends on).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.fft import dct
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import brentq
from scipy.signal import find_peaks

__all__ = ["Cut", "Density", "density_1d", "find_cut"]

#: a peak must stand out by this fraction of its own height (a real dip on both sides, not a
#: shoulder) …
MIN_RELATIVE_PROMINENCE = 0.25
#: … and reach this fraction of the highest density (not a ripple in a sparse tail) …
MIN_HEIGHT = 0.01
#: … and hold at least this fraction of the events between its valleys (a population, not a
#: ripple of a few events that a narrow bandwidth resolves in a sparse tail)
MIN_MASS = 0.02
#: the upper tail of a lone negative peak is its centre plus this many left-side SDs
TAIL_SDS = 3.0
#: the least share of a parent's events on its lowest value that counts as a pile at the axis
AXIS_PILE_FRACTION = 0.01


@dataclass(frozen=True)
class Density:
    """A binned Gaussian kernel density estimate on an even grid."""

    grid: NDArray[np.float64]
    density: NDArray[np.float64]
    bandwidth: float


@dataclass(frozen=True)
class Cut:
    """A threshold and how it was found (for the audit trail and the plots)."""

    value: float
    method: Literal["valley", "tail", "fallback"]
    peaks: tuple[float, ...]
    #: where the reference population's own spread ends (its peak ± ``tail_sds`` SDs), never
    #: past the valley: events between this and ``value`` belong clearly to neither side
    tail_end: float | None = None
    #: likewise where the other population's spread begins (its peak ∓ ``tail_sds`` SDs of its
    #: outer half), never before the valley; ``None`` when it forms no peak
    other_start: float | None = None
    #: ``"above"`` when the reference population is the lower one (the negatives), ``"below"``
    #: when it is the upper one (``side="below"``, or the brightest of many peaks)
    side: Literal["above", "below"] = "above"

    @property
    def negatives_end(self) -> float:
        """Where the lower (negative) population's own spread ends, whichever population the
        cut was placed from: events above it and below :attr:`value` belong to neither."""
        end = self.tail_end if self.side == "above" else self.other_start
        return self.value if end is None else end

    @property
    def positives_start(self) -> float:
        """Where the upper (positive) population's own spread begins, whichever population
        the cut was placed from; the cut itself where no positive peak stands."""
        start = self.other_start if self.side == "above" else self.tail_end
        return self.value if start is None else start


def _bin_counts(x: NDArray[np.float64], lo: float, hi: float, bins: int) -> NDArray[np.int64]:
    """Counts of ``x`` (finite values) in ``bins`` even bins over [lo, hi); values outside are
    left out.

    The same counts as ``np.histogram`` up to values within rounding of a bin edge, at a third
    of its cost (an index per value and one ``bincount``). Values below the first bin are
    counted in one bin before it and values above the last in one after it, both dropped: a
    clip, not a mask and a compaction of the values inside.
    """
    scale = bins / (hi - lo)
    idx = np.floor((x - lo) * scale)
    if not (np.isfinite(scale) and scale > 0 and np.isfinite(lo)):
        # (x − lo) · scale could be NaN: only the values that fall in a bin are counted
        idx = idx[(idx >= 0) & (idx < bins)].astype(np.intp)
        return np.bincount(idx, minlength=bins).astype(np.int64)
    # finite x, lo and scale: every index is a whole number or ±inf, never NaN
    np.clip(idx, -1.0, float(bins), out=idx)
    idx += 1.0
    counts = np.bincount(idx.astype(np.intp), minlength=bins + 2)
    return counts[1 : bins + 1].astype(np.int64)


def _finite(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """The finite values of ``x``, in order (``x`` itself when every value is)."""
    ok = np.isfinite(x)
    return x if ok.all() else x[ok]


def _below(x: NDArray[np.float64], centre: float) -> NDArray[np.float64]:
    """``x[x <= centre] - centre``: the same values in the same order, by the indices of the
    mask (boolean indexing of a mask without a pattern costs about twice as much)."""
    return np.take(x, np.flatnonzero(x <= centre)) - centre


def _above(x: NDArray[np.float64], centre: float) -> NDArray[np.float64]:
    """``x[x >= centre] - centre``, as :func:`_below` computes it."""
    return np.take(x, np.flatnonzero(x >= centre)) - centre


def _quantiles_from_counts(
    counts: NDArray[np.int64], lo: float, step: float, probs: tuple[float, ...]
) -> tuple[float, ...]:
    """Quantiles read off a fine histogram, linearly within a bin (to within one bin width)."""
    cdf = np.concatenate(([0.0], np.cumsum(counts, dtype=np.float64)))
    cdf /= cdf[-1]
    edges = lo + step * np.arange(cdf.size)
    return tuple(float(np.interp(p, cdf, edges)) for p in probs)


def _silverman(x: NDArray[np.float64], quartiles: tuple[float, float] | None = None) -> float:
    n = x.size
    sd = float(np.std(x))
    q25, q75 = quartiles if quartiles is not None else np.percentile(x, [25, 75])
    spread = min(sd, float(q75 - q25) / 1.349) or sd or 1.0
    return float(0.9 * spread * n ** (-0.2))


def isj_bandwidth(x: NDArray[np.float64], *, n_grid: int = 1024) -> float | None:
    """Improved Sheather-Jones bandwidth (Botev et al. 2010), or ``None`` if it has no solution.

    The fixed point t = ξγ^[ℓ](t) is solved with ℓ = 7 on a DCT of the binned data; the
    bandwidth is √t times the data range.
    """
    lo, hi = float(np.min(x)), float(np.max(x))
    span = (hi - lo) * 1.2
    if span <= 0:
        return None
    lo -= (hi - lo) * 0.1
    counts, _ = np.histogram(x, bins=n_grid, range=(lo, lo + span))
    return _isj_from_counts(counts, x.size, span)


#: ℓ, the number of stages of the ISJ fixed point (Botev et al. 2010, §5: ℓ = 7)
_ISJ_ELL = 7


@functools.lru_cache(maxsize=4)
def _isj_tables(
    n_grid: int,
) -> tuple[Mapping[int, NDArray[np.float64]], NDArray[np.float64], Mapping[int, float]]:
    """What the ISJ fixed point needs that depends on the grid alone, worked out once per grid
    size: ``2 π^(2s) i^(2s)`` per stage ``s``, the decay ``−i² π²`` and the stages' constants
    before division by the number of events (Botev et al. 2010, eq. 29 and the γ functional)."""
    i2 = np.arange(1, n_grid, dtype=np.float64) ** 2
    powers = {s: 2.0 * np.pi ** (2 * s) * i2**s for s in range(2, _ISJ_ELL + 1)}
    decay = -i2 * np.pi**2
    const = {
        s: 2.0
        * (1 + 0.5 ** (s + 0.5))
        / 3.0
        * float(np.prod(np.arange(1, 2 * s, 2)))
        / np.sqrt(2 * np.pi)
        for s in range(2, _ISJ_ELL)
    }
    for arr in (*powers.values(), decay):
        arr.setflags(write=False)
    # kept by lru_cache for every later call: read-only, mappings and arrays alike
    return MappingProxyType(powers), decay, MappingProxyType(const)


def _isj_from_counts(
    counts: NDArray[np.int64], n: int, span: float, near: tuple[float, float] | None = None
) -> float | None:
    """ISJ bandwidth from data binned on an even grid ``span`` wide (see :func:`isj_bandwidth`).

    ``near``: bandwidths between which the solution is looked for first (the caller bounds
    the result to them anyway); the whole range is searched when no solution lies between.
    """
    n_grid = counts.size
    a = dct(counts / counts.sum(), type=2)
    a2 = (a[1:] / 2.0) ** 2
    ell = _ISJ_ELL
    powers, decay, const = _isj_tables(n_grid)
    # the fixed point is evaluated a few dozen times, six functionals each: their weights,
    # constants and exponents once, in the order the stages are taken (ℓ, then ℓ − 1 … 2)
    top = powers[ell] * a2
    stages = [(powers[s] * a2, const[s] / n, 2.0 / (3 + 2 * s)) for s in range(ell - 1, 1, -1)]
    scale = 2 * n * np.sqrt(np.pi)
    terms = np.empty(n_grid - 1, dtype=np.float64)
    multiply, exp, dot = np.multiply, np.exp, np.dot

    seen: dict[float, float] = {}

    def fixed_point(t: float) -> float:
        # brentq starts at both ends of the bracket, where the bracket was tried: once each
        if t in seen:
            return seen[t]
        # each stage's functional: Σ weights · exp(−i² π² t_s), with t_s from the one before
        multiply(decay, t, out=terms)
        exp(terms, out=terms)
        f = float(dot(top, terms))
        for weights, c, power in stages:
            multiply(decay, (c / f) ** power, out=terms)
            exp(terms, out=terms)
            f = float(dot(weights, terms))
        seen[t] = value = float(t - (scale * f) ** (-0.4))
        return value

    bracket = (1e-12, 0.1)
    if near is not None:
        a, b = (near[0] / span) ** 2, (near[1] / span) ** 2
        try:
            if 1e-12 < a < b < 0.1 and fixed_point(a) * fixed_point(b) < 0:
                bracket = (a, b)  # a narrow bracket: half the iterations
        except (FloatingPointError, ZeroDivisionError):
            pass
    try:
        # t to six significant digits: the bandwidth, √t, to three parts in ten million
        t_star = brentq(fixed_point, *bracket, xtol=1e-14, rtol=1e-6)
    except (ValueError, RuntimeError, FloatingPointError, ZeroDivisionError):
        return None
    return float(np.sqrt(float(t_star)) * span)


def density_1d(
    values: NDArray[np.float64],
    *,
    n_grid: int = 512,
    bw_adjust: float = 1.0,
    limits: tuple[float, float] | None = None,
    bandwidth: Literal["isj", "silverman"] | float = "isj",
    quartiles: tuple[float, float] | None = None,
) -> Density:
    """Binned Gaussian KDE of ``values``, bandwidth × ``bw_adjust``.

    Counts on an even grid convolved with a Gaussian: O(n + g log g), and within a fraction of a
    bin of the exact KDE for the grid sizes used here.

    Parameters
    ----------
    bandwidth
        ``"isj"``: improved Sheather-Jones, bounded to [1/5, 1] × Silverman's rule (for valleys
        between populations); ``"silverman"``: Silverman's rule alone, enough to place the
        mode of one dominant population and about ten times cheaper; a number: that
        bandwidth (before ``bw_adjust``).
    quartiles
        The 25th and 75th percentiles of ``values`` when the caller has them already.
    """
    x = _finite(np.asarray(values, dtype=np.float64))
    if x.size < 2:
        raise ValueError("at least two finite values are needed for a density")
    lo, hi = limits if limits is not None else (float(np.min(x)), float(np.max(x)))
    if hi <= lo:
        hi = lo + 1.0
    if isinstance(bandwidth, str):
        with np.errstate(all="ignore"):
            isj = isj_bandwidth(x) if x.size >= 50 and bandwidth == "isj" else None
        silverman = _silverman(x, quartiles)
        # ISJ can collapse onto rounding artefacts of integer data; never go below a fifth of
        # Silverman's rule, nor above it
        bw = (min(max(isj, 0.2 * silverman), silverman) if isj else silverman) * bw_adjust
    else:
        bw = float(bandwidth) * bw_adjust
    pad = 3 * bw
    counts = _bin_counts(x, lo - pad, hi + pad, n_grid)
    step = (hi - lo + 2 * pad) / n_grid
    edges = lo - pad + step * np.arange(n_grid + 1)
    dens = gaussian_filter1d(counts.astype(np.float64), sigma=max(bw / step, 0.5), mode="constant")
    dens /= max(dens.sum() * step, 1e-300)
    centres = 0.5 * (edges[:-1] + edges[1:])
    return Density(centres, dens, bw)


def _peak_masses(d: Density, peaks: NDArray[np.intp]) -> NDArray[np.float64]:
    """Each peak's share of the density, between the valleys that bound it."""
    step = float(d.grid[1] - d.grid[0])
    bounds = [0]
    for a, b in itertools.pairwise(peaks):
        bounds.append(int(a) + int(np.argmin(d.density[a : b + 1])))
    bounds.append(d.density.size)
    return np.array([d.density[lo:hi].sum() * step for lo, hi in itertools.pairwise(bounds)])


def _drop_light_peaks(
    d: Density, peaks: NDArray[np.intp], min_mass: float = MIN_MASS
) -> NDArray[np.intp]:
    """Remove, lightest first, peaks whose share of the density (between the valleys that bound
    them) is below ``min_mass``."""
    peaks = np.asarray(peaks)
    while peaks.size > 1:
        mass = _peak_masses(d, peaks)
        lightest = int(np.argmin(mass))
        if mass[lightest] >= min_mass:
            break
        peaks = np.delete(peaks, lightest)
    return peaks


def _cut_density(x: NDArray[np.float64], bw_adjust: float) -> Density:
    """The density a cut is placed on: the 0.1–99.9th percentile range, ISJ bandwidth.

    One fine histogram (1,024 bins over the data's range and a tenth beyond each end, the ISJ
    grid) gives both the bandwidth and the quantiles, to within a bin (0.12% of the range),
    instead of a partial sort for the quantiles and a second pass for the bandwidth.
    """
    mn, mx = float(np.min(x)), float(np.max(x))
    if mx <= mn:
        return density_1d(x, bw_adjust=bw_adjust)
    span = (mx - mn) * 1.2
    start = mn - (mx - mn) * 0.1
    fine = _bin_counts(x, start, start + span, 1024)
    probs = (0.001, 0.25, 0.75, 0.999)
    if fine.max() * 4 > x.size:
        # a spike (a quarter of the values in one fine bin): within-bin interpolation would
        # invent a spread there, so read the quantiles off the values themselves
        lo, q25, q75, hi = (float(v) for v in np.percentile(x, [100 * p for p in probs]))
    else:
        lo, q25, q75, hi = _quantiles_from_counts(fine, start, span / 1024, probs)
    silverman = _silverman(x, (q25, q75))
    with np.errstate(all="ignore"):
        near = (0.2 * silverman, silverman)
        isj = _isj_from_counts(fine, x.size, span, near) if x.size >= 50 else None
    # as in density_1d: ISJ bounded to [1/5, 1] × Silverman's rule
    bw = min(max(isj, 0.2 * silverman), silverman) if isj else silverman
    return density_1d(x, bw_adjust=bw_adjust, limits=(lo, hi), bandwidth=bw)


def _without_axis_pile(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``x`` without the values piled on its lowest one, when they are at least
    :data:`AXIS_PILE_FRACTION` of it.

    Such a pile is censored data, not a population: values clipped at the bottom of the scale
    (channel 0 of a log amplifier, where an analog cytometer puts every event dimmer than its
    first decade). Left in, it is a spike the density takes for the negative peak, and the
    cut lands in the dip just above it. Left out, the cut is placed among the events that
    were measured, and the pile stays below it.
    """
    low = x.min()
    pile = x == low
    n = int(np.count_nonzero(pile))
    if n >= AXIS_PILE_FRACTION * x.size and x.size - n >= 10:
        return np.asarray(x[~pile], dtype=np.float64)
    return x


def find_cut(
    values: NDArray[np.float64],
    *,
    above: float | None = None,
    side: Literal["above", "below"] = "above",
    min_separation: float = 0.0,
    brightest: bool = False,
    max_points: int = 200_000,
    bw_adjust: float = 1.0,
    tail_sds: float = TAIL_SDS,
    seed: int = 0,
    axis_pile: bool = False,
    brightest_of_many: bool = False,
    min_mass: float = MIN_MASS,
    reference: float | None = None,
    from_lowest: bool = False,
    reference_mass: float | None = None,
    reference_gap: float = 0.0,
) -> Cut:
    """Threshold between a negative population and the positive one above it.

    Parameters
    ----------
    values
        Transformed intensities of the parent population.
    above
        Only peaks above this value are considered (e.g. the bright subset of a population
        already known to be positive).
    side
        ``"above"``: the lowest prominent peak is the negative population and the cut lies above
        it (CD3, CD56…). ``"below"``: the highest peak is the positive majority and the cut
        lies below it (CD45 on leukocytes).
    max_points
        Larger inputs are subsampled (with a fixed seed) for the density; the cut is the same to
        within a grid bin.
    brightest
        With ``side="below"``: take the brightest peak as the reference instead of the highest
        (lymphocytes are the CD45-brightest leukocytes, though rarely the most numerous).
    min_separation
        Peaks closer than this (in the units of ``values``) are one population: the lower
        one is dropped. Set it to the scale's width of a ~2.7-fold intensity change so that a
        pile of zero counts beside the dim negatives (mass cytometry) is not taken for two
        populations.
    tail_sds
        For a lone peak: the cut is the peak plus this many SDs of its left side (a Gaussian
        negative population then leaves 0.13% of its events above the cut).
    brightest_of_many
        Where three or more peaks stand, the positive population is the brightest of them
        and the cut lies below it (``side="below"``, ``brightest=True``), whatever stands
        further down (negatives spread into two peaks by compensation, or dim monocytes).
    min_mass
        The least share of the events a peak must hold to count as a population
        (:data:`MIN_MASS`); lower for a population known to be small and apart from the rest
        (counting beads).
    reference
        With ``side="below"``: the reference population is the peak nearest this value
        (instead of the highest or the brightest), e.g. where the population is known by
        another marker (the NK-like T cells, where the T cells of all lymphocytes are).
    reference_mass, reference_gap
        With ``side="above"`` and three or more peaks: the reference population is the lowest
        peak that holds at least ``reference_mass`` of the events or stands more than
        ``reference_gap`` above ``above`` (a light peak hard by ``above``, below two others, is
        the cut-off edge of the population under it): the CD56dim NK cells, below which such a
        bump just above the NK cut had stood as the lowest peak (audit 32). A median missed
        them where CD56bright cells are the majority (review 34); with two peaks the lowest is
        the reference, however light (CD56dim 3% of NK where 93% are bright: review 35).
    from_lowest
        With ``side="below"``: the other population is the lowest peak, not the nearest one
        below the reference, and the cut is the density's lowest point between them. Counting
        beads acquired during a partial clog are dimmer and stand as a second bead peak; the
        gap that parts beads from cells is the one above the cells (audit 32: a third of the
        beads fell out of the gate, NK/µL 45% high).
    axis_pile
        Leave a pile of values on the lowest one out of the density (see
        :func:`_without_axis_pile`): right for fluorescence clipped at the bottom of a log
        amplifier, where the pile sits at the foot of the dim negatives; wrong for mass
        cytometry's zero counts, which can be the whole negative population.

    Returns
    -------
    Cut
        ``method`` is ``"valley"`` when a density minimum between two peaks was used,
        ``"tail"`` when only the negative peak was found.
    """
    x = _finite(np.asarray(values, dtype=np.float64))
    if x.size < 10:
        return Cut(float(np.max(x)) if x.size else 0.0, "fallback", ())
    if x.size > max_points:
        x = np.random.default_rng(seed).choice(x, max_points, replace=False)
    # the pile at the axis is left out of the density, not out of the spread below a peak:
    # it is the censored lower tail of the negative population
    d = _cut_density(_without_axis_pile(x) if axis_pile else x, bw_adjust)
    step = float(d.grid[1] - d.grid[0])
    distance = max(1, round(min_separation / step)) if min_separation > 0 else None
    top = float(d.density.max())
    peaks, props = find_peaks(d.density, prominence=0.0, height=MIN_HEIGHT * top, distance=distance)
    keep = props["prominences"] >= MIN_RELATIVE_PROMINENCE * d.density[peaks]
    peaks = _drop_light_peaks(d, peaks[keep], min_mass)
    if above is not None:
        peaks = peaks[d.grid[peaks] > above]
    if peaks.size == 0:
        peaks = np.array([int(np.argmax(d.density))])
    peak_x = tuple(float(v) for v in d.grid[peaks])
    if brightest_of_many and peaks.size >= 3:
        side, brightest = "below", True
    if side == "above":
        # the reference is the lowest prominent peak; the positive one is the next peak above
        ref = 0
        if reference_mass is not None and peaks.size > 2:
            # a light peak hard by ``above`` is the cut-off edge of the population below it;
            # beside a lone brighter peak it is the smaller population itself (review 35)
            edge = (above if above is not None else -np.inf) + reference_gap
            real = (_peak_masses(d, peaks) >= reference_mass) | (d.grid[peaks] > edge)
            ref = int(np.flatnonzero(real)[0]) if real.any() else 0
        other = ref + 1 if peaks.size >= ref + 2 else None
    else:
        # the reference is the highest peak; the negative one is the nearest prominent peak below
        ref = peaks.size - 1 if brightest else int(np.argmax(d.density[peaks]))
        if reference is not None:
            ref = int(np.argmin(np.abs(d.grid[peaks] - reference)))
        other = (0 if from_lowest else ref - 1) if ref >= 1 else None
    centre = float(d.grid[int(peaks[ref])])
    # the reference population's spread, from its outer half (the side away from the other one)
    half = _below(x, centre) if side == "above" else _above(x, centre)
    sd = float(np.sqrt(np.mean(half**2))) if half.size >= 5 else float(np.std(x))
    tail = centre + (tail_sds if side == "above" else -tail_sds) * sd
    if other is not None:
        a, b = sorted((int(peaks[ref]), int(peaks[other])))
        valley = float(d.grid[a + int(np.argmin(d.density[a : b + 1]))])
        end = min(valley, tail) if side == "above" else max(valley, tail)
        o_centre = float(d.grid[int(peaks[other])])
        o_half = _above(x, o_centre) if side == "above" else _below(x, o_centre)
        o_sd = float(np.sqrt(np.mean(o_half**2))) if o_half.size >= 5 else sd
        o_tail = o_centre - (tail_sds if side == "above" else -tail_sds) * o_sd
        start = max(valley, o_tail) if side == "above" else min(valley, o_tail)
        return Cut(valley, "valley", peak_x, end, start, side)
    return Cut(tail, "tail", peak_x, tail, side=side)
