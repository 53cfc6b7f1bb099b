"""Lytic units: the exponential model of lysis against the effector:target ratio.

Pross et al. (1981) described NK lysis as a one-hit process: with ``x`` effectors per target,

    lysis% = A · (1 − exp(−k · x)),

where ``A`` is the plateau (the fraction of targets that can be lysed, at most 100%) and ``k``
the rate per unit ratio. Bryant et al. (1992) reviewed how lytic units are computed from such
fits and recommended simple, robust versions of this model for human NK activity against
K562. nkpanel fits it by least squares to every replicate well (not to means, so that each
ratio weighs by its wells):

* with three or more distinct ratios, ``A`` and ``k`` are both fitted (``0 < A ≤ 100``);
* with fewer, or when the two-parameter fit does not converge, ``A`` is fixed at 100% and only
  ``k`` is fitted (Pross's one-parameter form).

The ratio at which the model reaches lysis level ``p`` (default 20%) is, in closed form,

    x_p = −ln(1 − p/A) / k            (defined for p < A),

one lytic unit is the number of effectors lysing ``p``% of the well's ``T`` targets, ``x_p · T``,
and activity is expressed as lytic units per 10^7 effectors: ``10^7 / (x_p · T)``.

References
----------
Pross HF, Baines MG, Rubin P, Shragge P, Patterson MS. Spontaneous human lymphocyte-mediated
cytotoxicity against tumor target cells. IX. The quantitation of natural killer cell activity.
J Clin Immunol 1981;1:51-63.
Bryant J, Day R, Whiteside TL, Herberman RB. Calculation of lytic units for the expression of
cell-mediated cytotoxicity. J Immunol Methods 1992;146:91-103. doi:10.1016/0022-1759(92)90052-U
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "EFFECTORS_PER_LU_BASIS",
    "NO_TARGETS",
    "ExponentialFit",
    "LyticUnits",
    "fit_exponential",
    "lytic_units",
]

#: why lytic units are not given when the number of targets per well is not
NO_TARGETS = "targets per well not given: LU not computed"
#: lytic units are expressed per this many effector cells
EFFECTORS_PER_LU_BASIS = 1e7
_MAX_PLATEAU = 100.0


@dataclass(frozen=True)
class ExponentialFit:
    """A least-squares fit of ``lysis% = A · (1 − exp(−k · ratio))``, and its quality.

    Attributes
    ----------
    plateau_percent
        ``A``, the fitted (or fixed) plateau of lysis.
    rate_per_ratio
        ``k``, per unit of effectors per target.
    plateau_fixed
        True when ``A`` was fixed at 100% (fewer than three ratios, or no convergence).
    r_squared
        ``1 − SS_res/SS_tot`` over the wells; ``None`` when all wells have the same lysis.
    rmse_percent
        Root mean squared residual, percentage points of lysis.
    """

    plateau_percent: float
    rate_per_ratio: float
    plateau_fixed: bool
    n_points: int
    n_ratios: int
    ratio_min: float
    ratio_max: float
    r_squared: float | None
    rmse_percent: float

    def predict(self, ratio: ArrayLike) -> NDArray[np.float64]:
        """Lysis (%) the model gives at each ratio."""
        x = np.asarray(ratio, dtype=np.float64)
        return self.plateau_percent * -np.expm1(-self.rate_per_ratio * x)

    def ratio_at(self, lysis_percent: float) -> float | None:
        """The ratio at which the model reaches ``lysis_percent``; ``None`` when it never does
        (the level is at or above the plateau, or not positive)."""
        if not 0 < lysis_percent < self.plateau_percent or self.rate_per_ratio <= 0:
            return None
        return -math.log1p(-lysis_percent / self.plateau_percent) / self.rate_per_ratio


@dataclass(frozen=True)
class LyticUnits:
    """Lytic units at one lysis level, or why there are none.

    ``lu_per_1e7_effectors`` needs the number of targets per well; without it only the ratio at
    the level is given. ``extrapolated`` is true when that ratio lies outside the tested ones:
    below the lowest, the value is read off the curve between it and the origin; above the
    highest (the level not reached within the tested ratios), no value is given, only
    ``upper_bound_per_1e7``: beyond the data the fitted plateau and rate trade off, and the
    value moved several-fold with the assay's noise (audit 20).
    """

    lysis_level_percent: float
    ratio_at_level: float | None
    targets_per_well: float | None
    lu_per_1e7_effectors: float | None
    extrapolated: bool
    reason: str | None = None
    #: where the level is not reached within the tested ratios: the most the lytic units can
    #: be (10^7 / (highest ratio · T)), given in place of a value
    upper_bound_per_1e7: float | None = None


def _sse_fixed(k: float, x: NDArray[np.float64], y: NDArray[np.float64], a: float) -> float:
    return float(np.sum((y - a * -np.expm1(-k * x)) ** 2))


def _fit_fixed(x: NDArray[np.float64], y: NDArray[np.float64], a: float) -> tuple[float, bool]:
    from scipy.optimize import minimize_scalar

    # bracket log k over rates whose half-plateau ratio spans 1e-4 … 1e7 effectors per target
    res = minimize_scalar(
        lambda lk: _sse_fixed(math.exp(lk), x, y, a),
        bounds=(-16.0, 9.0),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return math.exp(float(res.x)), bool(res.success)


def _fit_free(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float] | None:
    from scipy.optimize import least_squares

    a0 = float(min(_MAX_PLATEAU, max(1.5 * float(np.max(y)), 1.0)))
    frac = np.clip(y / a0, 1e-6, 1 - 1e-6)
    ok = (y > 0) & (x > 0)
    k0 = float(np.median(-np.log1p(-frac[ok]) / x[ok])) if ok.any() else 0.01
    k0 = min(max(k0, 1e-6), 1e3)

    def resid(p: NDArray[np.float64]) -> NDArray[np.float64]:
        a, lk = p
        return np.asarray(a * -np.expm1(-math.exp(lk) * x) - y, dtype=np.float64)

    try:
        res = least_squares(
            resid,
            x0=np.array([a0, math.log(k0)]),
            bounds=([1e-6, -16.0], [_MAX_PLATEAU, 9.0]),
            xtol=1e-12,
            ftol=1e-12,
            gtol=1e-12,
            max_nfev=2000,
        )
    except (ValueError, FloatingPointError):
        return None
    if not res.success or not np.all(np.isfinite(res.x)):
        return None
    return float(res.x[0]), math.exp(float(res.x[1]))


def fit_exponential(
    ratios: Sequence[float] | NDArray[np.float64],
    lysis_percent: Sequence[float] | NDArray[np.float64],
    *,
    plateau_percent: float | None = None,
) -> ExponentialFit | None:
    """Fit ``lysis% = A · (1 − exp(−k · ratio))`` to replicate wells by least squares.

    Parameters
    ----------
    ratios
        Effectors per target of each well.
    lysis_percent
        Percent specific lysis of each well (negative values are kept).
    plateau_percent
        Fix ``A`` at this value instead of fitting it. By default ``A`` is fitted when three or
        more distinct ratios were tested, and fixed at 100 otherwise.

    Returns
    -------
    ExponentialFit or None
        ``None`` when no well has positive lysis (there is no curve to fit).

    References
    ----------
    Pross HF et al. J Clin Immunol 1981;1:51-63. Bryant J et al. J Immunol Methods
    1992;146:91-103.

    Examples
    --------
    >>> x = [50.0, 25.0, 12.5]
    >>> y = [40 * (1 - math.exp(-0.03 * r)) for r in x]
    >>> fit = fit_exponential(x, y)
    >>> round(fit.plateau_percent, 6), round(fit.rate_per_ratio, 6)
    (40.0, 0.03)
    """
    x = np.asarray(ratios, dtype=np.float64)
    y = np.asarray(lysis_percent, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("ratios and lysis must be 1-D and of one length")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y = x[ok], y[ok]
    if x.size == 0 or not np.any(y > 0):
        return None
    n_ratios = int(np.unique(x).size)
    fixed = plateau_percent is not None or n_ratios < 3
    a = _MAX_PLATEAU if plateau_percent is None else float(plateau_percent)
    k: float | None = None
    if not fixed:
        free = _fit_free(x, y)
        if free is None:
            fixed = True
        else:
            a, k = free
    if fixed:
        k, _ = _fit_fixed(x, y, a)
    assert k is not None
    pred = a * -np.expm1(-k * x)
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - np.mean(y)) ** 2))
    return ExponentialFit(
        plateau_percent=a,
        rate_per_ratio=k,
        plateau_fixed=fixed,
        n_points=int(x.size),
        n_ratios=n_ratios,
        ratio_min=float(np.min(x)),
        ratio_max=float(np.max(x)),
        r_squared=1.0 - ss_res / ss_tot if ss_tot > 0 else None,
        rmse_percent=math.sqrt(ss_res / x.size),
    )


def lytic_units(
    fit: ExponentialFit | None,
    *,
    lysis_level_percent: float = 20.0,
    targets_per_well: float | None = None,
    measured_at_highest: float | None = None,
) -> LyticUnits:
    """Lytic units per 10^7 effectors at ``lysis_level_percent`` from a fitted model.

    ``LU = 10^7 / (x_p · T)`` with ``x_p = −ln(1 − p/A)/k`` and ``T`` targets per well.

    Where the level is not reached within the tested ratios (the model's ``x_p`` beyond the
    highest, and the mean lysis measured there, ``measured_at_highest``, under the level),
    no value is given, only its upper bound ``10^7 / (highest ratio · T)``. Where the wells
    reached the level at the highest ratio but the curve passes it just beyond, the value is
    read off the curve and marked extrapolated (review 21: a bound "below" would point the
    wrong way there).

    Examples
    --------
    >>> fit = fit_exponential([50.0, 25.0, 12.5], [40 * (1 - math.exp(-0.03 * r))
    ...                                             for r in (50.0, 25.0, 12.5)])
    >>> lu = lytic_units(fit, targets_per_well=10_000)
    >>> round(lu.ratio_at_level, 4), round(lu.lu_per_1e7_effectors, 3)
    (23.1049, 43.281)
    """
    p = float(lysis_level_percent)
    if fit is None:
        return LyticUnits(p, None, targets_per_well, None, False, "no well with positive lysis")
    x_p = fit.ratio_at(p)
    if x_p is None:
        return LyticUnits(
            p,
            None,
            targets_per_well,
            None,
            False,
            f"the fitted plateau ({fit.plateau_percent:.1f}%) does not reach {p:g}% lysis",
        )
    extrapolated = not fit.ratio_min <= x_p <= fit.ratio_max
    if targets_per_well is None:
        return LyticUnits(p, x_p, None, None, extrapolated, NO_TARGETS)
    not_reached = measured_at_highest is None or measured_at_highest < p
    if x_p > fit.ratio_max and not_reached:
        # the level is not reached at any tested ratio: beyond them the model is not
        # identified by the data (its plateau and rate trade off), so only a bound is given
        bound = EFFECTORS_PER_LU_BASIS / (fit.ratio_max * float(targets_per_well))
        return LyticUnits(
            p,
            x_p,
            targets_per_well,
            None,
            True,
            f"{p:g}% lysis is not reached at the highest tested ratio "
            f"({fit.ratio_max:g}:1; the model would reach it only at {x_p:.3g}:1, beyond the "
            f"data): LU{p:g} below {bound:.3g} per 10⁷ effectors",
            upper_bound_per_1e7=bound,
        )
    lu = EFFECTORS_PER_LU_BASIS / (x_p * float(targets_per_well))
    return LyticUnits(p, x_p, float(targets_per_well), lu, extrapolated, None)
