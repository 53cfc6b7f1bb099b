"""Typed result records of the endometrial NK biomarker, and the confidence interval across fields.

The overall density over several fields is a ratio of sums (CD56+ cells over stromal cells, or
over stromal area), as in the standardised protocol (Lash et al. 2016: the CD56+ cells of ten
fields as a percentage of their stromal cells). Its confidence interval treats the fields as a
sample of clusters and uses the variance of the ratio estimator (Cochran 1977, §6.4)::

    R = Σy_i / Σx_i
    SE(R)² = Σ (y_i − R·x_i)² / (n (n − 1) x̄²)
    CI = R ± t_{0.975, n−1} · SE(R)

with ``y_i`` the CD56+ cells and ``x_i`` the stromal cells (or stromal mm²) of field ``i``; the
lower bound is clipped at 0. With fewer than two fields there is no interval.

References
----------
Cochran WG. Sampling Techniques, 3rd ed. Wiley 1977, chapter 6 (ratio estimators).
Drury JA et al. The variability of uterine natural killer cell counts in the endometrium of
women with recurrent miscarriage. Histopathology 2011;59:1156-1162 (inter-observer CV 10.3%;
the limit of the borderline-staining and merged-nuclei checks).
Flusser J, Suk T. Pattern recognition by affine moment invariants. Pattern Recognit
1993;26:167-174 (the ellipse has the least first affine moment invariant: the merged-nuclei
check's shape measure).
Lash GE et al. Standardisation of uterine natural killer (uNK) cell measurements in the
endometrium of women with recurrent pregnancy loss. J Reprod Immunol 2016;116:50-59.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from nkpanel.errors import option_or_key
from nkpanel.flow.qc import QCFlag

__all__ = [
    "Exclusion",
    "FieldCount",
    "RatioCI",
    "UterineQC",
    "UterineResult",
    "across_fields_qc",
    "background_calls_qc",
    "borderline_staining_qc",
    "dab_background_qc",
    "few_positives_qc",
    "fields_qc",
    "merged_nuclei",
    "merged_nuclei_qc",
    "nucleus_size_qc",
    "outlier_fields_qc",
    "pieces_qc",
    "pixel_size_qc",
    "pooled_merged_nuclei_qc",
    "positives_under_threshold",
    "ratio_ci",
    "sparse_fields_qc",
    "stromal_cells_qc",
]

#: how glands and luminal epithelium were excluded: from drawn regions, found automatically,
#: both (regions that say nothing of glands, with automatic exclusion on top), not at all, or,
#: pooled over images, mixed
Exclusion = Literal["regions", "automatic", "regions and automatic", "none", "mixed"]


@dataclass(frozen=True)
class RatioCI:
    """A ratio of sums across fields with its confidence interval (None below two fields)."""

    estimate: float | None
    lower: float | None
    upper: float | None
    n_fields: int
    level: float = 0.95


def ratio_ci(
    numerators: Sequence[float],
    denominators: Sequence[float],
    *,
    scale: float = 1.0,
    level: float = 0.95,
) -> RatioCI:
    """``scale · Σy/Σx`` with a cluster (ratio-estimator) confidence interval across fields.

    Examples
    --------
    >>> r = ratio_ci([2, 4, 3], [100, 100, 100], scale=100)
    >>> round(r.estimate, 3), round(r.lower, 3), round(r.upper, 3)
    (3.0, 0.516, 5.484)
    """
    from scipy.stats import t as student_t

    y = [float(v) for v in numerators]
    x = [float(v) for v in denominators]
    n = len(y)
    sx = sum(x)
    if n == 0 or sx <= 0:
        return RatioCI(None, None, None, n, level)
    r = sum(y) / sx
    if n < 2:
        return RatioCI(scale * r, None, None, n, level)
    xbar = sx / n
    ss = sum((yi - r * xi) ** 2 for yi, xi in zip(y, x, strict=True))
    se = math.sqrt(ss / (n * (n - 1))) / xbar
    q = float(student_t.ppf(0.5 + level / 2, n - 1))
    return RatioCI(scale * r, scale * max(0.0, r - q * se), scale * (r + q * se), n, level)


@dataclass(frozen=True)
class FieldCount:
    """Counts in one field: a field image, a ×400 field chosen on a slide, or a whole stroma."""

    field: str
    kind: Literal["image", "lash-field", "whole-stroma"]
    cd56_positive_cells: int
    stromal_cells: int
    stromal_area_mm2: float
    centre_x_um: float | None = None
    centre_y_um: float | None = None
    diameter_um: float | None = None

    @property
    def cd56_per_100_stromal_cells(self) -> float | None:
        return 100.0 * self.cd56_positive_cells / self.stromal_cells if self.stromal_cells else None

    @property
    def cd56_per_mm2_stroma(self) -> float | None:
        return (
            self.cd56_positive_cells / self.stromal_area_mm2 if self.stromal_area_mm2 > 0 else None
        )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cd56_per_100_stromal_cells"] = _r(self.cd56_per_100_stromal_cells)
        d["cd56_per_mm2_stroma"] = _r(self.cd56_per_mm2_stroma)
        d["stromal_area_mm2"] = round(self.stromal_area_mm2, 6)
        return d


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(v, nd)


#: one quality check: passed or not, the value and limit, and a one-line reason worded for the
#: outcome (a passing check states the value against its limit, "2291 stromal cells counted
#: (minimum 500)"; a failing one says why it matters); the same record as the flow checks'
UterineQC = QCFlag


def stromal_cells_qc(
    cells: int, min_cells: int, *, where: str = "", blocking: bool = True
) -> UterineQC:
    """The check that enough stromal cells were counted, its reason worded for pass or fail.

    ``where`` (e.g. ``" in the biopsy"``) follows "counted" in the reason.

    Examples
    --------
    >>> stromal_cells_qc(2291, 500).reason
    '2291 stromal cells counted (minimum 500)'
    >>> q = stromal_cells_qc(312, 500, where=" in the biopsy")
    >>> q.passed, q.reason.split(":")[0]
    (False, '312 stromal cells counted in the biopsy, fewer than the minimum of 500')
    """
    passed = cells >= min_cells
    reason = (
        f"{cells} stromal cells counted{where} (minimum {min_cells})"
        if passed
        else f"{cells} stromal cells counted{where}, fewer than the minimum of {min_cells}: "
        "the CD56+ percentage is too imprecise to report"
    )
    return UterineQC(
        "stromal cells counted", passed, float(cells), float(min_cells), reason, blocking
    )


#: cells within this share of the positive threshold below it are "just under" it
BORDERLINE_FROM = 0.5

#: the CD56+ population is fitted to the cells above this share of the positive threshold:
#: above the negative cells, whose DAB is the stroma's background (0 once it is subtracted)
#: plus what a touching CD56+ neighbour's membrane puts into their ring (on synthetic fields
#: with membrane DAB up to 1.0 OD the 99th percentile of true negatives was 0.03-0.15 OD at
#: the 0.2 threshold), and low enough to hold the shoulder of a population whose mode sits
#: at the threshold (ln(1/0.75) = 0.29, about 1.7 of its log-SD below the mode)
POSITIVE_FIT_FROM = 0.75

#: fewest cells above :data:`POSITIVE_FIT_FROM` for the population to be fitted: fewer, and the
#: fitted share under the threshold is too uncertain to warn on (binomial SE over 0.08)
POSITIVE_FIT_MIN_CELLS = 30

#: share of the CD56+ population estimated under the threshold from which the count is said to
#: be low: the CD56+ count's inter-observer CV is 10.3% (Drury et al. 2011), so two observers
#: reading one slide differ by about sqrt(2)*10.3% = 15% (1 SD); a loss from staining alone as
#: large as that is beyond what the method's readers already differ by
POSITIVES_UNDER_LIMIT = 0.15


def positives_under_threshold(
    dab_od: NDArray[np.float64], threshold_od: float
) -> tuple[float, float, float, int] | None:
    """The share of the CD56+ population whose DAB falls under the threshold, fitted.

    A positive cell's mean DAB OD in its compartment is a product of factors that vary from
    cell to cell (how much CD56 it carries; how much of its membrane the section and the ring
    hold; the ring's place against the membrane), so the CD56+ cells' OD is close to
    log-normal: on synthetic fields its log-SD was 0.13-0.23 whatever the stain's strength.
    Cells under the threshold are measured all the same: only below about
    :data:`POSITIVE_FIT_FROM` times the threshold do they mix with negative cells. A normal
    distribution in ln(OD), truncated at that floor, is fitted by maximum likelihood to the
    cells above it (Cohen 1991), and the share of it under the threshold is
    ``Φ((ln t − μ) / σ)``. Where the stain separates positives from negatives, that share is
    near 0; where the positive mode sits at the threshold (a faint run), near a half.

    Returns
    -------
    (share, median_od, log_sd, n_fitted) or None
        None when fewer than :data:`POSITIVE_FIT_MIN_CELLS` cells lie above the floor.

    References
    ----------
    Cohen AC. Truncated and Censored Samples: Theory and Applications. Marcel Dekker 1991,
    chapter 2 (maximum likelihood for the truncated normal).

    Examples
    --------
    >>> from scipy.stats import norm
    >>> q = norm.ppf((np.arange(400) + 0.5) / 400)
    >>> faint = np.exp(np.log(0.22) + 0.16 * q)  # a mode at 0.22 OD: 27% under 0.2
    >>> share, median, sd, n = positives_under_threshold(np.r_[np.zeros(3000), faint], 0.2)
    >>> round(share, 2), round(median, 3), round(sd, 2)
    (0.28, 0.22, 0.16)
    """
    from scipy.optimize import minimize
    from scipy.stats import norm

    od = np.asarray(dab_od, dtype=np.float64)
    floor = POSITIVE_FIT_FROM * threshold_od
    x = np.log(od[od >= floor])
    if x.size < POSITIVE_FIT_MIN_CELLS:
        return None
    a = math.log(floor)

    def nll(p: NDArray[np.float64]) -> float:
        mu, sd = float(p[0]), math.exp(float(p[1]))
        return -float(norm.logpdf(x, mu, sd).sum() - x.size * norm.logsf(a, mu, sd))

    start = np.array([float(np.median(x)), math.log(max(float(x.std()), 0.05))])
    # the mode is held within a decade of the floor and the log-SD to 0.02-2 (a CV of 2% to
    # several-fold): outside these no stain run lies, and a flat likelihood stays bounded
    bounds = [(a - math.log(10.0), a + math.log(100.0)), (math.log(0.02), math.log(2.0))]
    fit = minimize(nll, start, method="L-BFGS-B", bounds=bounds)
    mu, sd = float(fit.x[0]), math.exp(float(fit.x[1]))
    share = float(norm.cdf((math.log(threshold_od) - mu) / sd))
    return share, math.exp(mu), sd, int(x.size)


def borderline_staining_qc(dab_od: NDArray[np.float64], threshold_od: float) -> UterineQC:
    """The (non-blocking) check that the stain parts CD56+ cells from the threshold.

    Where the stain separates the two kinds, negative cells measure near 0 OD and positive
    cells well above the threshold. Two signs that it does not, either of which fails the
    check (its value stays the count of cells just under the threshold):

    * many cells between half the threshold and the threshold, as many as half the positives
      or more: a faint stain run whose positives fell under it, a threshold too high for it,
      or DAB from neighbouring positive cells in negative cells' rings;
    * the CD56+ population straddling the threshold: a log-normal fitted to the cells above
      :data:`POSITIVE_FIT_FROM` times the threshold (:func:`positives_under_threshold`) puts
      :data:`POSITIVES_UNDER_LIMIT` or more of it under the threshold. A membranous stain
      measured over a ring reads about a third of the membrane's OD, so membrane DAB of
      0.6 OD puts the positive mode at about 0.22, and a quarter of the positives are read
      negative; the first rule misses that, as the negatives' neighbour DAB and the positives
      above the threshold both outnumber the positives lost.

    On random synthetic fields (``benchmarks/sweep_uterine_accuracy.py``) faint runs were
    undercounted without a word before each rule. The check flags; it never moves the threshold.

    Examples
    --------
    >>> od = np.array([0.0] * 900 + [0.15] * 60 + [0.4] * 40)
    >>> q = borderline_staining_qc(od, 0.2)
    >>> q.passed, q.value
    (False, 60.0)
    >>> borderline_staining_qc(np.array([0.0] * 950 + [0.4] * 50), 0.2).passed
    True
    """
    od = np.asarray(dab_od, dtype=np.float64)
    low = BORDERLINE_FROM * threshold_od
    under = int(np.count_nonzero((od >= low) & (od < threshold_od)))
    positive = int(np.count_nonzero(od >= threshold_od))
    share = under / od.size if od.size else 0.0
    many_under = under >= 10 and share >= 0.01 and under >= 0.5 * positive
    fitted = positives_under_threshold(od, threshold_od)
    straddles = fitted is not None and fitted[0] >= POSITIVES_UNDER_LIMIT
    passed = not (many_under or straddles)
    reason = (
        f"{under} cells ({share:.1%}) with a mean DAB OD of {low:g}–{threshold_od:g}, just "
        f"under the positive threshold, against {positive} positive"
    )
    if fitted is not None:
        lost, median, _, n = fitted
        reason += (
            f"; the CD56+ population (fitted to the {n} cells from "
            f"{POSITIVE_FIT_FROM * threshold_od:.3g} OD) has its median at {median:.2f} OD, "
            f"an estimated {lost:.0%} of it under the threshold (warned from "
            f"{POSITIVES_UNDER_LIMIT:.0%})"
        )
    if many_under:
        # the cells just under may be either: dim CD56+ cells, or negatives with a touching
        # positive's DAB in their ring (dense, strongly stained stroma: then the fit takes
        # them for the positives' shoulder too, and the count is high, not low)
        reason += (
            ": faint staining or a threshold too high for this stain run (the count is then "
            "low), or background DAB, shading or DAB from neighbouring cells (then cells "
            "just over the threshold may be false positives: the count may be high); check "
            "the overlay"
        )
    elif straddles and fitted is not None:
        reason += (
            ": the cells just under the threshold continue the CD56+ population, as when "
            "the stain is too faint for the threshold: the CD56+ count is then low by about "
            f"{fitted[0]:.0%} (per 100 and per mm²); unless they are negative cells carrying "
            "background DAB or a neighbour's; check the overlay and the run's positive control"
        )
    return UterineQC("borderline staining", passed, float(under), None, reason, blocking=False)


#: the median nucleus area (µm²) of the cells counted, expected at the right pixel size: the
#: nuclei of endometrial stromal cells and lymphocytes are about 5–10 µm across (20–80 µm²);
#: a margin above for decidualised stroma (real field of the tests: 30 µm²)
NUCLEUS_AREA_UM2 = (20.0, 90.0)


#: fewest detections to judge a field's nuclei by (their size, their merges)
MIN_NUCLEI_JUDGED = 50


def nucleus_size_qc(nucleus_area_um2: NDArray[np.float64], pixel_size_um: float) -> UterineQC:
    """The (non-blocking) check that the nuclei counted are the size nuclei are.

    A pixel size that is wrong (a calibration for another objective; a JPEG whose 16-bit dpi
    field wrapped: 0.25 µm written as 101,600 dpi is stored as 36,064, read as 0.70 µm) moves
    CD56+ per mm² by its square and, through the cell-size settings, per 100 too, with nothing
    else to show it: on synthetic fields the median nucleus read 45 µm² at the right scale
    from 0.25 to 1 µm per pixel, 94–97 µm² at twice the pixel size, 15 µm² at half. The
    check names the pixel size used and the factor the nuclei suggest it is off by.

    Examples
    --------
    >>> nucleus_size_qc(np.full(500, 45.0), 0.25).passed
    True
    >>> q = nucleus_size_qc(np.full(500, 180.0), 0.7)
    >>> q.passed, q.value
    (False, 180.0)
    """
    areas = np.asarray(nucleus_area_um2, dtype=np.float64)
    lo, hi = NUCLEUS_AREA_UM2
    if areas.size < MIN_NUCLEI_JUDGED:  # too few nuclei to judge a scale by
        return UterineQC(
            "nucleus size", True, None, None, f"{areas.size} nuclei: size not judged", False
        )
    median = float(np.median(areas))
    passed = lo <= median <= hi
    reason = f"median nucleus {median:.0f} µm² at {pixel_size_um:.4g} µm/pixel"
    if not passed:
        off = float(np.sqrt(median / np.sqrt(lo * hi)))
        reason += (
            f", outside the {lo:g}–{hi:g} µm² of stromal and immune nuclei: the pixel size is "
            f"likely wrong (about ×{off:.2g}; per mm² moves by its square); check the "
            f"microscope calibration, or give {option_or_key('--pixel-size', 'pixel_size_um')}"
        )
    return UterineQC("nucleus size", passed, round(median, 1), None, reason, blocking=False)


def pixel_size_qc(
    disagreement: str, given_um: float, file_um: float | None, size: UterineQC
) -> UterineQC:
    """The check that a pixel size given by hand agrees with the file's: a warning, and a
    blocking one where the nuclei also measure outside their range on the side the file's value
    would correct (given larger than the file's: nuclei too large; smaller: too small).

    The two are independent signs of one mistake (a calibration for another objective typed
    in): together the count is not reported. On synthetic fields at 0.5 µm per pixel, given as
    1 µm, per 100 read 4.4 for 8.6 and the flag moved from above the interval to within it,
    reportable (audit 17). Alone, either stays a warning: a file's metadata can be wrong, and
    nuclei vary by tissue.

    Examples
    --------
    >>> big = UterineQC("nucleus size", False, 98.0, None, "median nucleus 98 µm²", False)
    >>> pixel_size_qc("given 1 µm; the file says 0.5", 1.0, 0.5, big).blocking
    True
    >>> pixel_size_qc("given 0.25 µm; the file says 0.5", 0.25, 0.5, big).blocking
    False
    """
    lo, hi = NUCLEUS_AREA_UM2
    nuclei = size.value
    agree = (
        nuclei is not None
        and file_um is not None
        and ((given_um > file_um and nuclei > hi) or (given_um < file_um and nuclei < lo))
    )
    if not agree:
        return UterineQC(
            "pixel size agrees with the file", False, given_um, None, disagreement, False
        )
    return UterineQC(
        "pixel size agrees with the file",
        False,
        given_um,
        None,
        f"{disagreement}; and the nuclei measure {nuclei:.0f} µm² (median), outside the "
        f"{lo:g}–{hi:g} µm² of stromal and immune nuclei as they would at that wrong scale: not "
        "reported (check which pixel size is right and give it with "
        f"{option_or_key('--pixel-size', 'pixel_size_um')})",
        blocking=True,
    )


#: a detection is taken for merged nuclei from this many times the field's single-nucleus
#: area: two nuclei of 0.75 of it each, or one nucleus 2.5 SD above it at the 20% CV of
#: nuclear area within one cell type
MERGED_AREA_RATIO = 1.5

#: ... and when its area over that of its moments' ellipse (``nucleus_ellipse_fill``,
#: :func:`~nkpanel.uterine.detect.ellipse_fill`) is under this: an ellipse reads 1 (0.99 once
#: digitised), two equal nuclei overlapping by a third of their width 0.975, by a fifth 0.96,
#: touching 0.894
MERGED_FILL = 0.97

#: merged nuclei are judged only where the field's nuclei are ellipses (the median fill of
#: the smaller half of the detections at least this): where outlines are ragged, or nuclei
#: irregular, shape cannot tell two nuclei from one
ELLIPTIC_NUCLEI_FILL = 0.98

#: estimated missed nuclei, as a share of those counted, from which the stromal count is said
#: to be low: the per-100 figure is then as much too high (its relative error is the missed
#: share), and sqrt(2) * 10.3% = 15% is how far two observers' counts of one slide differ
#: (Drury et al. 2011), as for :data:`POSITIVES_UNDER_LIMIT`
MERGED_LIMIT = 0.15


def _small_nuclei_fill(area: NDArray[np.float64], fill: NDArray[np.float64]) -> float:
    """The median ellipse fill of the detections no larger than the median detection."""
    return float(np.median(fill[area <= np.median(area)]))


def merged_nuclei(
    nucleus_area_um2: NDArray[np.float64], nucleus_ellipse_fill: NDArray[np.float64]
) -> tuple[float, int, float, float] | None:
    """How many nuclei the detections hold beyond their count: merged touching nuclei.

    Where nuclei touch (dense or decidualised stroma), two or three of them can be outlined as
    one detection. Such an object is larger than the field's nuclei and, unlike one nucleus,
    not an ellipse. The field's single-nucleus area ``A1`` is the median area of the
    detections shaped as one nucleus (ellipse fill at least :data:`MERGED_FILL`); a detection
    of at least :data:`MERGED_AREA_RATIO` · ``A1`` whose fill is under :data:`MERGED_FILL` is
    taken for ``area / A1`` nuclei, and at least two (overlapping nuclei share area), so it
    hides ``max(1, area / A1 − 1)`` of them. Nothing is judged (None) with fewer than
    :data:`MIN_NUCLEI_JUDGED` detections or where the median fill of the smaller half of
    the detections (single nuclei, even where half the detections are merged) is under
    :data:`ELLIPTIC_NUCLEI_FILL`: nuclei too irregular for shape to tell two from one.

    Returns
    -------
    (missed_share, n_merged, missed, single_area_um2) or None
        ``missed`` nuclei estimated in the ``n_merged`` merged detections, and ``missed`` over
        the number of detections.

    Examples
    --------
    >>> area = np.r_[np.full(180, 40.0), np.full(20, 80.0)]
    >>> fill = np.r_[np.full(180, 0.99), np.full(20, 0.9)]
    >>> merged_nuclei(area, fill)
    (0.1, 20, 20.0, 40.0)
    """
    area = np.asarray(nucleus_area_um2, dtype=np.float64)
    fill = np.asarray(nucleus_ellipse_fill, dtype=np.float64)
    # the smaller half of the detections are single nuclei even where half are merged
    if area.size < MIN_NUCLEI_JUDGED or _small_nuclei_fill(area, fill) < ELLIPTIC_NUCLEI_FILL:
        return None
    single = float(np.median(area[fill >= MERGED_FILL]))
    merged = (area >= MERGED_AREA_RATIO * single) & (fill < MERGED_FILL)
    missed = float(np.maximum(1.0, area[merged] / single - 1.0).sum())
    return missed / area.size, int(merged.sum()), missed, single


def merged_nuclei_qc(
    nucleus_area_um2: NDArray[np.float64], nucleus_ellipse_fill: NDArray[np.float64]
) -> UterineQC:
    """The (non-blocking) check that few detections are touching nuclei merged into one.

    Each merged pair is one stromal cell counted instead of two: the stromal count is low and
    CD56+ per 100 stromal cells as much too high (uNK nuclei, round and apart, merge far
    less), while per mm² stays right. On simulated dense stroma the count was 0.84–0.88 of
    the truth and per 100 read 2–2.5 points high with no other check failing. The estimate
    (:func:`merged_nuclei`) counts the nuclei hidden in detections too large and not shaped as
    one nucleus; from :data:`MERGED_LIMIT` of the count the check fails, and its reason gives
    the stromal count the estimate implies. It flags; it never changes the count.

    Examples
    --------
    >>> area = np.r_[np.full(180, 40.0), np.full(20, 80.0)]
    >>> merged_nuclei_qc(area, np.r_[np.full(180, 0.99), np.full(20, 0.9)]).passed
    True
    >>> area = np.r_[np.full(160, 40.0), np.full(40, 80.0)]
    >>> q = merged_nuclei_qc(area, np.r_[np.full(160, 0.99), np.full(40, 0.9)])
    >>> q.passed, q.value
    (False, 0.2)
    """
    area = np.asarray(nucleus_area_um2, dtype=np.float64)
    fill = np.asarray(nucleus_ellipse_fill, dtype=np.float64)
    est = merged_nuclei(area, fill)
    n = int(area.size)
    if est is None:
        why = (
            f"{n} nuclei: merges not judged (too few)"
            if n < MIN_NUCLEI_JUDGED
            else f"{n} nuclei: merges not judged (the smaller half's median ellipse fill is "
            f"{_small_nuclei_fill(area, fill):.2f}, under {ELLIPTIC_NUCLEI_FILL:g}: nuclei too "
            "irregular for shape to tell two touching nuclei from one)"
        )
        return UterineQC("merged nuclei", True, None, MERGED_LIMIT, why, blocking=False)
    share, n_merged, missed, single = est
    reason = (
        f"{n_merged} of {n} detections ({n_merged / n:.1%}) are larger than "
        f"{MERGED_AREA_RATIO:g}× the single-nucleus area ({single:.0f} µm²) and not shaped as "
        f"one nucleus: an estimated {missed:.0f} nuclei merged into them, {share:.1%} of the "
        f"count (warned from {MERGED_LIMIT:.0%})"
    )
    low = f"the stromal count is likely low (about {n + missed:.0f}, not {n})"
    return _merged_check(share, reason, low, "overlay")


def _merged_check(share: float, reason: str, low: str, overlay: str) -> UterineQC:
    """The "merged nuclei" check of an image's or a biopsy's estimated share of nuclei merged
    into larger detections: failed from :data:`MERGED_LIMIT`, when ``reason`` is followed by
    what that means (``low``: whose stromal count is low; ``overlay``: what to look at)."""
    passed = share < MERGED_LIMIT
    if not passed:
        reason += (
            f": touching nuclei counted as one (dense stroma); {low} and CD56+ per 100 stromal "
            f"cells about {share:.0%} too high; per mm² is not affected; check the {overlay}"
        )
    return UterineQC("merged nuclei", passed, round(share, 4), MERGED_LIMIT, reason, False)


def pooled_merged_nuclei_qc(parts: Sequence[tuple[str, UterineQC, int]]) -> UterineQC | None:
    """The merged-nuclei check of a biopsy, from its images' checks.

    ``parts`` holds each image's name, its "merged nuclei" check and its stromal count. The
    missed nuclei an image's check estimated (its value times its count) are summed over the
    images where merges were judged, against their counts: the biopsy's per-100 figure is a
    ratio of sums, and is as much too high as that pooled share. None when no image was judged.

    Examples
    --------
    >>> a = UterineQC("merged nuclei", False, 0.3, MERGED_LIMIT, "", False)
    >>> b = UterineQC("merged nuclei", True, 0.05, MERGED_LIMIT, "", False)
    >>> q = pooled_merged_nuclei_qc([("a", a, 1000), ("b", b, 3000)])
    >>> q.passed, q.value
    (True, 0.1125)
    """
    judged = [(name, q, n) for name, q, n in parts if q.value is not None and n > 0]
    if not judged:
        return None
    missed = sum(float(q.value or 0.0) * n for _, q, n in judged)
    counted = sum(n for _, _, n in judged)
    share = missed / counted
    over = [name for name, q, _ in judged if not q.passed]
    reason = (
        f"an estimated {missed:.0f} nuclei merged into larger detections in the "
        f"{len(judged)} image{'s' if len(judged) > 1 else ''} where merges were judged, "
        f"{share:.1%} of their {counted} stromal cells (warned from {MERGED_LIMIT:.0%})"
    )
    if over:
        reason += f"; over the limit in {', '.join(over)}"
    return _merged_check(share, reason, "the biopsy's stromal count is likely low", "overlays")


#: cells that lose positivity to the stroma's DAB background, as a share of those positive on
#: their DAB alone, above which the count is said to depart from QuPath's rule
BACKGROUND_CALLS_SHARE = 0.10


def background_calls_qc(
    raw_od: NDArray[np.float64], above_od: NDArray[np.float64], threshold_od: float
) -> UterineQC:
    """The (non-blocking) check that judging cells above the stroma's own DAB changed few
    calls against QuPath's rule (their DAB alone).

    Where the stroma is clean the two rules agree. Red cells, or a non-specific DAB tint,
    raise the background: a tint adds DAB to every cell alike, and QuPath's rule then counts
    faint cells it would not count on a clean slide (a synthetic field of faint 0.5 OD stain,
    truth 8.0 per 100, read 2.5 untinted and 7.7–8.7 with a flat 0.05–0.12 OD tint), while
    the background rule reads 3.8 at every tint (the 0.02 OD floor of the tint is kept). A
    threshold a lab set in QuPath on its own slides may assume either; the check says when the
    rules part, by how many cells, so that the lab can look and choose
    (``--dab-background 0`` gives QuPath's rule).

    Examples
    --------
    >>> raw = np.array([0.0] * 900 + [0.25] * 60 + [0.5] * 40)
    >>> q = background_calls_qc(raw, raw - 0.08, 0.2)
    >>> q.passed, q.value
    (False, 60.0)
    """
    raw = np.asarray(raw_od, dtype=np.float64)
    positive = raw >= threshold_od
    lost = int(np.count_nonzero(positive & (np.asarray(above_od) < threshold_od)))
    n = int(np.count_nonzero(positive))
    passed = not (lost >= 10 and lost > BACKGROUND_CALLS_SHARE * n)
    reason = (
        f"{lost} of the {n} cells positive on their DAB alone (QuPath's rule) are not above "
        "the stroma's own DAB"
    )
    if not passed:
        reason += (
            ": red cells or a non-specific DAB tint under them; the count follows the stain "
            "above that background and departs from QuPath's rule here "
            f"({option_or_key('--dab-background 0', 'dab_background_um = 0')} gives QuPath's); "
            "check the overlay"
        )
    return UterineQC("background changed calls", passed, float(lost), None, reason, False)


#: raised DAB background over less than this (µm²) is not flagged: a capillary full of red
#: cells (the same allowance as the ink rule's ``min_ink_um2``, :mod:`nkpanel.uterine.tissue`)
MIN_RAISED_BACKGROUND_UM2 = 2000.0


def dab_background_qc(raised_mm2: float, stroma_mm2: float, limit_od: float) -> UterineQC:
    """The (non-blocking) check that the stroma itself is not DAB-coloured.

    CD56 stains single cells; stroma whose own DAB background (block medians on the overview,
    nuclei not left out at its resolution, :func:`~nkpanel.uterine.detect.dab_background`;
    cells are judged on the finer one between nuclei) reaches ``limit_od`` (half the positive
    threshold) is coloured by something else: red cells, whose haemoglobin unmixes as DAB
    (:mod:`nkpanel.uterine.haemoglobin`), non-specific staining, or CD56+ cells crowded
    so densely that their own DAB fills the stroma (on the synthetic sweep it fired on 4 of
    40 fields without blood, all with 14–22% CD56+ cells at DAB 0.75–1.0 OD, three of them
    counted more than 2 points high). Cells there are judged
    on their DAB above that background, which a negative cell's ring barely exceeds, but a
    faint CD56+ cell among red cells can fall under the threshold. The check gives the area
    (mm²) so that a person can look at the overlay and, as QuPath users do, draw an
    exclusion region around haemorrhage.

    Examples
    --------
    >>> q = dab_background_qc(0.06, 0.25, 0.1)
    >>> q.passed, q.value
    (False, 0.06)
    >>> dab_background_qc(0.0, 0.25, 0.1).passed
    True
    """
    share = raised_mm2 / stroma_mm2 if stroma_mm2 > 0 else 0.0
    passed = raised_mm2 * 1e6 < MIN_RAISED_BACKGROUND_UM2
    reason = (
        f"{raised_mm2:.4f} mm² of stroma ({share:.1%}) with a DAB background of "
        f"{limit_od:g} OD or more"
    )
    if not passed:
        reason += (
            ": red cells (haemoglobin reads as DAB), non-specific staining, or CD56+ cells "
            "so crowded that their DAB fills the stroma between them; cells there are judged "
            "on their DAB above that background, so faint CD56+ cells among red cells may be "
            "missed and crowded ones miscounted: check the overlay, and draw an exclusion "
            "region around haemorrhage if it should not be counted"
        )
    return UterineQC("DAB background", passed, round(raised_mm2, 6), None, reason, blocking=False)


#: the lowest CD56+ per 100 stromal cells in the published series nkpanel quotes (Tuckerman
#: et al. 2007, Hum Reprod 22:2208: recurrent miscarriage 1.1–41.4%, controls 2.2–13.9%;
#: ../shared/domain.md §3)
LOWEST_PUBLISHED_PER_100 = 1.1


def few_positives_qc(positive: int, stromal: int) -> UterineQC:
    """The (non-blocking) check that a count is not below every published value.

    Every endometrium in the published series holds CD56+ uNK cells (the lowest value quoted:
    :data:`LOWEST_PUBLISHED_PER_100` per 100 stromal cells); a weak or failed stain run also
    reads as few positive cells, and no threshold can tell the two apart. Below that value
    the result says to check the run's positive control before the value is read as low.

    Examples
    --------
    >>> few_positives_qc(0, 2000).passed, few_positives_qc(40, 2000).passed
    (False, True)
    """
    per_100 = 100.0 * positive / stromal if stromal else 0.0
    passed = stromal == 0 or per_100 >= LOWEST_PUBLISHED_PER_100
    # printed finely enough that a value just under the limit does not read as equal to it
    # (a failing value is never rounded up to the limit: 1.099 reads 1.099, 1.09999 1.0999)
    shown = next(
        (
            f"{per_100:.{d}f}"
            for d in (2, 3, 4)
            if passed or round(per_100, d) < LOWEST_PUBLISHED_PER_100
        ),
        f"{math.floor(per_100 * 1e4) / 1e4:.4f}",
    )
    reason = (
        f"{shown} CD56+ per 100 stromal cells (lowest value in the published series "
        f"quoted: {LOWEST_PUBLISHED_PER_100:g}, Tuckerman et al. 2007)"
    )
    if not passed:
        reason += (
            ": a weak or failed stain also reads as few positive cells; check the run's "
            "positive control before reading the value as low"
        )
    return UterineQC(
        "fewer CD56+ than published", passed, per_100, LOWEST_PUBLISHED_PER_100, reason, False
    )


#: a field holding less than this share of the median field's stromal cells per mm²
SPARSE_FIELD_SHARE = 0.25


#: a field whose CD56+ count lies this many robust standard deviations above the median
#: field's rate, and at this many times that rate, is another tissue's (see outlier_fields_qc)
OUTLIER_FIELD_Z = 5.0
OUTLIER_FIELD_RATIO = 3.0


def outlier_fields_qc(fields: Sequence[FieldCount]) -> UterineQC | None:
    """The (non-blocking) check that no field is far richer in CD56+ cells than the others.

    uNK cells cluster (around spiral arterioles), so fields differ by more than counting alone
    allows; a field far beyond that spread is likely not this biopsy's stroma: a positive
    control section mounted beside it (decidua, 30-50% CD56+, counted as stroma when no region
    is drawn: a slide of 8.5 per 100 read 14.1-16.1, audit 8), or a lymphoid aggregate.

    Fields are judged against the median field, robustly, so that a control lying in two or
    three of ten fields cannot hide itself by raising the reference (a leave-one-out mean
    caught none of those, audit 9): with m the median rate, each field's standardised
    residual e = (x − n m) / √(n m (1 − m)), their spread s = 1.4826 · MAD(e) (at least 1,
    counting alone), a field is flagged when (e − median(e)) / s exceeds
    :data:`OUTLIER_FIELD_Z` and its rate is over :data:`OUTLIER_FIELD_RATIO` times m (Hampel's
    rule; Rousseeuw & Croux 1993). On simulated biopsies of 10 fields, 8% CD56+: a 45%
    control in 1, 2 or 3 fields flagged in 99.8%, 99.2% and 93% of them; ordinary biopsies
    whose fields' rates vary with a CV of 0.3, 0.5, 0.7 flagged in 0.2%, 7% and 18%.
    None with fewer than four fields with cells.

    Examples
    --------
    >>> f = [FieldCount(f"f{i}", "lash-field", 8 + i % 3, 100, 0.2) for i in range(8)]
    >>> outlier_fields_qc(f).passed
    True
    >>> q = outlier_fields_qc([*f, FieldCount("control", "lash-field", 54, 100, 0.2)])
    >>> q.passed, q.reason.split(" (")[0]
    (False, 'control reads 54.0 CD56+ per 100 stromal cells against a median field of 9.0')
    """
    counted = [f for f in fields if f.stromal_cells > 0]
    if len(counted) < 4:
        return None
    x = np.array([f.cd56_positive_cells for f in counted], dtype=np.float64)
    n = np.array([f.stromal_cells for f in counted], dtype=np.float64)
    m = float(np.median(x / n))
    if not 0.0 < m < 1.0:
        return None
    e = (x - n * m) / np.sqrt(n * m * (1.0 - m))
    centre = float(np.median(e))
    spread = max(1.0, 1.4826 * float(np.median(np.abs(e - centre))))
    z = (e - centre) / spread
    i = int(np.argmax(z))
    f = counted[i]
    rate = x[i] / n[i]
    over = (z > OUTLIER_FIELD_Z) & (x / n > OUTLIER_FIELD_RATIO * m)
    passed = not over[i]
    flagged = [counted[j].field for j in np.flatnonzero(over)]
    reason = (
        f"{f.field} reads {100 * rate:.1f} CD56+ per 100 stromal cells against a median field "
        f"of {100 * m:.1f} ({z[i]:.1f} robust SD above the fields, their own spread included)"
    )
    if not passed:
        also = f"; {len(flagged)} fields so: {', '.join(flagged)}" if len(flagged) > 1 else ""
        reason += (
            f"{also}: another tissue in the field? (a positive control section beside the "
            "biopsy, a lymphoid aggregate); check it on the overlay, and draw a Stroma region "
            "around the biopsy if so"
        )
    return UterineQC(
        "outlier field", passed, round(float(z[i]), 1), OUTLIER_FIELD_Z, reason, blocking=False
    )


def across_fields_qc(fields: Sequence[FieldCount]) -> list[UterineQC]:
    """The checks that compare fields with one another: :func:`sparse_fields_qc` and
    :func:`outlier_fields_qc` (those that apply)."""
    return [q for q in (sparse_fields_qc(fields), outlier_fields_qc(fields)) if q is not None]


#: a piece of tissue is compared with the rest of the slide from this many stromal cells, and
#: said when its CD56+ rate is over this many times the rest's (and 5 binomial SD above it)
PIECE_MIN_CELLS = 200
PIECE_RATIO = 2.0


def pieces_qc(pieces: Sequence[FieldCount]) -> UterineQC | None:
    """The (non-blocking) check that no separate piece of tissue on a slide is far richer in
    CD56+ cells than the rest.

    A positive control section mounted beside the biopsy (decidua or tonsil) is a piece of
    its own; counted as stroma when no region is drawn, a 22% control beside an 8% biopsy read
    14.1–15.5 per 100 and was too little beyond the fields' own spread for
    :func:`outlier_fields_qc` (audit 10). Each piece of at least :data:`PIECE_MIN_CELLS`
    stromal cells is set against the pooled rest: said when its rate is over
    :data:`PIECE_RATIO` times theirs and 5 binomial SD above it. Fragments of one biopsy
    differ less than that as a rule, but can: the check asks a person to look. None with
    fewer than two such pieces.

    Examples
    --------
    >>> biopsy = [FieldCount(f"piece {i}", "image", x, 1000, 0.2) for i, x in ((1, 85), (2, 80))]
    >>> pieces_qc(biopsy).passed
    True
    >>> q = pieces_qc([*biopsy, FieldCount("piece 3", "image", 220, 1000, 0.2)])
    >>> q.passed, q.reason.split(" (")[0]
    (False, 'piece 3 reads 22.0 CD56+ per 100 stromal cells against 8.2 in the rest of the slide')
    """
    big = [p for p in pieces if p.stromal_cells >= PIECE_MIN_CELLS]
    if len(big) < 2:
        return None
    x = np.array([p.cd56_positive_cells for p in big], dtype=np.float64)
    n = np.array([p.stromal_cells for p in big], dtype=np.float64)
    # each piece against the rest of the slide (whole counts: the sums are exact)
    rest = (x.sum() - x) / (n.sum() - n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(rest > 0, (x / n) / rest, np.inf)
    i = int(np.argmax(ratios))
    ratio, p_rest = float(ratios[i]), float(rest[i])
    piece = big[i]
    rate = x[i] / n[i]
    se = float(np.sqrt(max(p_rest * (1.0 - p_rest), 1e-12) / n[i]))
    passed = not (ratio > PIECE_RATIO and (rate - p_rest) / se > 5.0)
    reason = (
        f"{piece.field} reads {100 * rate:.1f} CD56+ per 100 stromal cells against "
        f"{100 * p_rest:.1f} in the rest of the slide ({piece.stromal_cells} cells, "
        f"{piece.stromal_area_mm2:.3f} mm²)"
    )
    if not passed:
        reason += (
            ": another tissue on the slide? (a positive control section beside the biopsy); "
            "check the overview, and draw a Stroma region around the biopsy if so"
        )
    return UterineQC("tissue pieces", passed, round(ratio, 2), PIECE_RATIO, reason, False)


def sparse_fields_qc(fields: Sequence[FieldCount]) -> UterineQC | None:
    """The (non-blocking) check that every field's stroma holds cells like the others'.

    Stromal cell density varies across a biopsy (oedematous and dense stroma), but a field
    whose "stroma" holds under a quarter of the median field's cells per mm² is likely not
    stroma: glass under uneven light, ink or mucus taken for tissue, a fold. Its area then
    lowers CD56+ per mm². None with fewer than three fields (no median to compare with).

    Examples
    --------
    >>> f = [FieldCount(f"f{i}", "lash-field", 5, 900, 0.2) for i in range(4)]
    >>> sparse_fields_qc(f).passed
    True
    >>> q = sparse_fields_qc([*f, FieldCount("f9", "lash-field", 0, 6, 0.2)])
    >>> q.passed, q.reason.split(":")[0]
    (False, 'f9 holds 30 stromal cells per mm² against a median of 4500 in the fields')
    """
    dense = [
        (f.field, f.stromal_cells / f.stromal_area_mm2) for f in fields if f.stromal_area_mm2 > 0
    ]
    if len(dense) < 3:
        return None
    median = float(np.median([d for _, d in dense]))
    sparse = [(name, d) for name, d in dense if d < SPARSE_FIELD_SHARE * median]
    if not sparse:
        return UterineQC(
            "sparse fields",
            True,
            0.0,
            SPARSE_FIELD_SHARE,
            f"every field holds at least a quarter of the median {median:.0f} stromal cells "
            "per mm²",
            blocking=False,
        )
    said = ", ".join(f"{name} holds {d:.0f}" for name, d in sparse)
    return UterineQC(
        "sparse fields",
        False,
        float(len(sparse)),
        SPARSE_FIELD_SHARE,
        f"{said} stromal cells per mm² against a median of {median:.0f} in the fields: "
        "not stroma? (glass under uneven light, ink, mucus, a fold); its area lowers CD56+ "
        "per mm²; check it on the overlay",
        blocking=False,
    )


def fields_qc(n_fields: int, protocol_fields: int) -> UterineQC:
    """The (non-blocking) check that a slide held the protocol's number of random ×400 fields.

    Examples
    --------
    >>> fields_qc(10, 10).reason
    '10 random ×400 fields of stroma (protocol: 10)'
    >>> fields_qc(6, 10).reason
    'only 6 random ×400 fields of stroma (protocol: 10)'
    """
    passed = n_fields >= protocol_fields
    fields = "field" if n_fields == 1 else "fields"
    reason = f"{'' if passed else 'only '}{n_fields} random ×400 {fields} of stroma"
    return UterineQC(
        "×400 fields",
        passed,
        float(n_fields),
        float(protocol_fields),
        f"{reason} (protocol: {protocol_fields})",
        blocking=False,
    )


@dataclass(frozen=True)
class UterineResult:
    """CD56+ uterine NK cells of one image (or, pooled, of one biopsy).

    ``overall`` counts the whole stromal area analysed; ``fields`` are the units of the
    across-field confidence interval (each field image, or the random ×400 fields of a slide).
    ``per_100_ci`` and ``per_mm2_ci`` pool those fields: their ``estimate`` is the across-field
    ratio of sums, and their interval belongs to that estimate only. On a slide it is the
    standardised protocol's estimate (ten random ×400 fields, Lash et al. 2016), which the
    reference ranges come from, and differs from the whole stroma's ratio; for field images
    (each image one field) the two coincide.
    """

    sample: str
    sources: tuple[str, ...]
    kind: Literal["field", "slide", "biopsy"]
    synthetic: bool
    pixel_size_um: float | None
    pixel_size_source: str | None
    analysis_pixel_size_um: float | None
    stains: dict[str, Any]
    stain_estimate_check: dict[str, Any] | None
    exclusion_source: Exclusion
    tissue_area_mm2: float
    excluded_area_mm2: float
    overall: FieldCount
    fields: tuple[FieldCount, ...]
    per_100_ci: RatioCI
    per_mm2_ci: RatioCI
    qc: tuple[UterineQC, ...] = ()
    notes: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def reportable(self) -> bool:
        return all(q.passed or not q.blocking for q in self.qc)

    @property
    def not_reportable_reasons(self) -> tuple[str, ...]:
        return tuple(q.reason for q in self.qc if q.blocking and not q.passed)

    @property
    def field_kinds(self) -> tuple[int, int]:
        """How many of the fields are a slide's random ×400 fields, and how many are field
        images."""
        lash = sum(f.kind == "lash-field" for f in self.fields)
        return lash, len(self.fields) - lash

    @property
    def fields_label(self) -> str:
        """What the across-field estimate rests on, said as a report prints it.

        Examples
        --------
        >>> img = FieldCount("a", "image", 5, 100, 0.02)
        >>> lash = FieldCount("f01", "lash-field", 3, 90, 0.2)
        >>> ci = RatioCI(None, None, None, 0)
        >>> def result(kind, fields):
        ...     return UterineResult("s", (), kind, False, None, None, None, {}, None,
        ...                          "none", 0.0, 0.0, img, tuple(fields), ci, ci)
        >>> result("slide", [lash] * 10).fields_label
        '10 random ×400 fields (Lash 2016)'
        >>> result("biopsy", [img, img]).fields_label
        '2 field images (each image one field)'
        >>> result("biopsy", [lash, lash, img]).fields_label
        '3 fields: 2 random ×400 fields of slides (Lash 2016) and 1 field image'
        """
        lash, images = self.field_kinds

        def n(k: int, what: str) -> str:
            return f"{k} {what}{'' if k == 1 else 's'}"

        if lash and images:
            return (
                f"{lash + images} fields: {n(lash, 'random ×400 field')} of slides (Lash 2016) "
                f"and {n(images, 'field image')}"
            )
        if lash:
            return f"{n(lash, 'random ×400 field')} (Lash 2016)"
        if images and self.kind == "slide":
            return "the whole stroma (no random ×400 field fitted on the slide)"
        if images:
            return f"{n(images, 'field image')} (each image one field)"
        return "no field"

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (every number with its unit in the key).

        Two estimates, each named: ``across_fields_cd56_per_100_stromal_cells`` (and per mm²)
        holds the across-field ratio as ``estimate`` with *its* confidence interval, and
        ``fields`` says what the fields are (on a slide, its random ×400 fields: the
        standardised protocol's estimate, Lash et al. 2016); ``whole_stroma_cd56_per_100_
        stromal_cells`` (and per mm²) is the ratio over the whole stroma analysed, which has
        no interval. ``cd56_per_100_stromal_cells`` and ``cd56_per_mm2_stroma`` are the
        whole stroma's too, kept for summaries read before the names were explicit.
        """
        o = self.overall

        def ci(c: RatioCI) -> dict[str, Any]:
            return {
                "estimate": _r(c.estimate),
                "lower": _r(c.lower),
                "upper": _r(c.upper),
                "level": c.level,
                "n_fields": c.n_fields,
                "fields": self.fields_label,
                "method": "ratio estimator across fields, t interval (Cochran 1977 §6.4)",
            }

        return {
            "biomarker": "endometrial NK cells (CD56 immunohistochemistry)",
            "sample": self.sample,
            "sources": list(self.sources),
            "kind": self.kind,
            "synthetic": self.synthetic,
            "reportable": self.reportable,
            "not_reportable_reasons": list(self.not_reportable_reasons),
            "cd56_positive_cells": o.cd56_positive_cells,
            "stromal_cells": o.stromal_cells,
            "stromal_area_mm2": round(o.stromal_area_mm2, 6),
            "cd56_per_100_stromal_cells": _r(o.cd56_per_100_stromal_cells),
            "cd56_per_mm2_stroma": _r(o.cd56_per_mm2_stroma),
            "whole_stroma_cd56_per_100_stromal_cells": _r(o.cd56_per_100_stromal_cells),
            "whole_stroma_cd56_per_mm2_stroma": _r(o.cd56_per_mm2_stroma),
            "fields": [f.as_dict() for f in self.fields],
            "across_fields_cd56_per_100_stromal_cells": ci(self.per_100_ci),
            "across_fields_cd56_per_mm2_stroma": ci(self.per_mm2_ci),
            "exclusion_of_glands_and_epithelium": self.exclusion_source,
            "tissue_area_mm2": round(self.tissue_area_mm2, 6),
            "excluded_area_mm2": round(self.excluded_area_mm2, 6),
            "pixel_size_um": self.pixel_size_um,
            "pixel_size_source": self.pixel_size_source,
            "analysis_pixel_size_um": self.analysis_pixel_size_um,
            "stain_vectors": self.stains,
            "stain_estimate_check": self.stain_estimate_check,
            "qc": [asdict(q) for q in self.qc],
            "notes": list(self.notes),
            "settings": self.settings,
        }
