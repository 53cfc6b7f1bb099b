"""The numeric kernels of the NK-activity biomarker: specific lysis, flow-based killing,
suppression, replicate statistics and the outlier rule. Arrays in, arrays out; no I/O.

References
----------
Brunner KT, Mauel J, Cerottini JC, Chapuis B. Quantitative assay of the lytic action of immune
lymphoid cells on 51Cr-labelled allogeneic target cells in vitro. Immunology 1968;14:181-196
(specific release from experimental, spontaneous and maximum release).
Iglewicz B, Hoaglin DC. How to Detect and Handle Outliers. ASQC Quality Press 1993 (the
modified z-score, 0.6745·(x − median)/MAD, with the cut-off 3.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "OUTLIER_FLOOR_PERCENT",
    "OUTLIER_Z",
    "ReplicateStats",
    "flow_specific_killing",
    "replicate_stats",
    "robust_outliers",
    "specific_lysis",
    "spontaneous_percent_of_maximum",
    "suppression_percent",
]

#: modified z-score above which a replicate is flagged (Iglewicz & Hoaglin 1993)
OUTLIER_Z = 3.5
#: … and only when it also lies this many percentage points of lysis from the median, so that
#: three nearly equal wells (a median absolute deviation near 0) do not flag a trivial difference
OUTLIER_FLOOR_PERCENT = 5.0
_MAD_TO_Z = 0.6745  # the 0.75 quantile of the standard normal: MAD/0.6745 estimates σ


def specific_lysis(
    experimental: ArrayLike,
    spontaneous: ArrayLike,
    maximum: ArrayLike,
    *,
    blank: ArrayLike = 0.0,
) -> NDArray[np.float64]:
    """Percent specific lysis, ``100 × (E − S) / (M − S)``.

    Parameters
    ----------
    experimental, spontaneous, maximum
        Release with effectors (E), from targets alone (S) and from detergent-lysed targets
        (M), in the instrument's unit (cpm, counts, RFU, absorbance). Broadcast together.
    blank
        Medium-alone background, subtracted from E, S and M. It cancels in the ratio; it is
        accepted so that callers pass the same corrected values they report.

    Returns
    -------
    ndarray
        Percent lysis; negative when E < S (reported as measured). NaN where ``M == S``.

    References
    ----------
    Brunner KT et al. Immunology 1968;14:181-196.

    Examples
    --------
    >>> float(specific_lysis(1300.0, 500.0, 2500.0))  # 100 × 800 / 2000
    40.0
    """
    b = np.asarray(blank, dtype=np.float64)
    e = np.asarray(experimental, dtype=np.float64) - b
    s = np.asarray(spontaneous, dtype=np.float64) - b
    m = np.asarray(maximum, dtype=np.float64) - b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * (e - s) / (m - s)
    return np.where(m == s, np.nan, out)


def flow_specific_killing(
    dead_percent_with_effectors: ArrayLike, dead_percent_targets_alone: ArrayLike
) -> NDArray[np.float64]:
    """Flow-based specific killing, ``(D_E − D_T) / (100 − D_T) × 100``.

    The dead fraction of labelled targets with effectors (``D_E``) above the targets' own
    background death (``D_T``), as a percentage of the targets alive without effectors. It is
    specific lysis with S = D_T and M = 100.

    Returns
    -------
    ndarray
        Percent killing; NaN where ``D_T == 100``.

    References
    ----------
    Kim GG, Donnenberg VS, Donnenberg AD, Gooding W, Whiteside TL. A novel multiparametric flow
    cytometry-based cytotoxicity assay simultaneously immunophenotypes effector cells:
    comparisons to a 4 h 51Cr-release assay. J Immunol Methods 2007;325:51-66.

    Examples
    --------
    >>> float(flow_specific_killing(40.0, 10.0))  # (40 − 10) / 90 × 100
    33.333333333333336
    """
    return specific_lysis(dead_percent_with_effectors, dead_percent_targets_alone, 100.0)


def spontaneous_percent_of_maximum(
    spontaneous: ArrayLike, maximum: ArrayLike, *, blank: ArrayLike = 0.0
) -> NDArray[np.float64]:
    """Spontaneous release as a percentage of maximum release, ``100 × (S − B) / (M − B)``.

    The assay's background: targets that leak label without effectors. Unlike specific lysis
    it depends on the medium blank ``B``, which is subtracted from both.

    Examples
    --------
    >>> float(spontaneous_percent_of_maximum(600.0, 2600.0, blank=100.0))
    20.0
    """
    b = np.asarray(blank, dtype=np.float64)
    s = np.asarray(spontaneous, dtype=np.float64) - b
    m = np.asarray(maximum, dtype=np.float64) - b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * s / m
    return np.where(m == 0, np.nan, out)


def suppression_percent(lysis_without: ArrayLike, lysis_with: ArrayLike) -> NDArray[np.float64]:
    """Suppression of lysis by a treatment, ``(L_without − L_with) / L_without × 100``.

    As used for IVIG and intralipid "suppression" assays (Roussev, Ng, Coulam 2007). Reported as
    measured: no pass/fail criterion for it has been validated. Negative when the treated wells
    lysed more; NaN where ``L_without == 0``.

    References
    ----------
    Roussev RG, Ng SC, Coulam CB. Natural killer cell functional activity suppression by
    intravenous immunoglobulin, intralipid and soluble human leukocyte antigen-G. Am J Reprod
    Immunol 2007;57:262-269.

    Examples
    --------
    >>> float(suppression_percent(25.0, 15.0))
    40.0
    """
    w0 = np.asarray(lysis_without, dtype=np.float64)
    w1 = np.asarray(lysis_with, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * (w0 - w1) / w0
    return np.where(w0 == 0, np.nan, out)


@dataclass(frozen=True)
class ReplicateStats:
    """Mean, sample SD (n − 1) and CV of replicate values; SD and CV need two values."""

    n: int
    mean: float
    sd: float | None
    cv_percent: float | None


def replicate_stats(values: Sequence[float] | NDArray[np.float64]) -> ReplicateStats:
    """Mean, SD (n − 1 denominator) and CV = SD / |mean| × 100 of replicate values.

    CV is ``None`` with fewer than two values or a mean of zero.

    Raises
    ------
    ValueError
        No values, or a non-finite value.

    Examples
    --------
    >>> s = replicate_stats([10.0, 12.0, 14.0])
    >>> s.mean, s.sd, round(s.cv_percent, 6)
    (12.0, 2.0, 16.666667)
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no values")
    if not np.all(np.isfinite(x)):
        raise ValueError("a value is not finite")
    mean = float(np.mean(x))
    if x.size < 2:
        return ReplicateStats(1, mean, None, None)
    sd = float(np.std(x, ddof=1))
    cv = 100.0 * sd / abs(mean) if mean != 0 else None
    return ReplicateStats(int(x.size), mean, sd, cv)


def robust_outliers(
    values: Sequence[float] | NDArray[np.float64],
    *,
    z: float = OUTLIER_Z,
    floor: float = OUTLIER_FLOOR_PERCENT,
) -> NDArray[np.bool_]:
    """Which replicates are outliers, by the modified z-score with an absolute floor.

    A value ``x`` among ``n ≥ 3`` replicates is flagged when both

    * its modified z-score ``0.6745 · |x − median| / MAD`` exceeds ``z`` (3.5; Iglewicz & Hoaglin
      1993), with MAD the median absolute deviation from the median (a MAD of 0 makes every
      differing value's score infinite), and
    * ``|x − median| > floor`` (in the values' own unit: percentage points of lysis).

    With fewer than three values nothing is flagged: two values cannot say which one is off.
    Flagged values are reported, never dropped.

    Examples
    --------
    >>> robust_outliers([20.0, 21.0, 30.0]).tolist()
    [False, False, True]
    >>> robust_outliers([20.0, 22.0, 26.0]).tolist()
    [False, False, False]
    """
    x = np.asarray(values, dtype=np.float64)
    flags = np.zeros(x.shape, dtype=bool)
    if x.size < 3:
        return flags
    med = float(np.median(x))
    dev = np.abs(x - med)
    mad = float(np.median(dev))
    if mad == 0:
        return dev > floor
    with np.errstate(over="ignore"):  # a subnormal MAD: scores overflow to inf, as they should
        score = _MAD_TO_Z * dev / mad
    return (score > z) & (dev > floor)
