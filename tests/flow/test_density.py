"""Density helpers: the fast paths against the plain formulas they stand for."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.fft import dct
from scipy.optimize import brentq

from nkpanel.flow.density import _bin_counts, _isj_from_counts, find_cut


def _plain_bin_counts(x: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """The counts by definition: each value's bin index, values outside [0, bins) left out."""
    idx = np.floor((x - lo) * (bins / (hi - lo)))
    inside = (idx >= 0) & (idx < bins)
    return np.bincount(idx[inside].astype(np.intp), minlength=bins)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [0, 1, 2, 1000, 30_000])
def test_bin_counts_match_the_plain_formula(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    if n > 10:
        # whole numbers (integer data), values on the range's ends and far outside it
        x[: n // 10] = np.round(x[: n // 10] * 50)
        x[n // 10 : n // 10 + 4] = [-1.5, 1.5, -1e300, 1.7e308]
    for lo, hi, bins in ((-1.5, 1.5, 512), (-3.0, 0.5, 1024), (0.0, 40.0, 7), (-1e300, 1e300, 64)):
        with np.errstate(over="ignore"):  # 1.7e308 − (−1.5) · scale overflows in both
            got = _bin_counts(x, lo, hi, bins)
            expected = _plain_bin_counts(x, lo, hi, bins)
        assert got.dtype == np.int64
        assert np.array_equal(got, expected)


def test_bin_counts_of_a_range_too_narrow_for_its_bins() -> None:
    """A range so narrow that bins / (hi − lo) overflows: the value on its lower end is left
    out (its index is not a number), as the plain formula leaves it."""
    lo, hi = 0.0, 5e-324
    x = np.array([lo, hi, -1.0, 1.0])
    with np.errstate(all="ignore"):
        got = _bin_counts(x, lo, hi, 512)
        assert np.array_equal(got, _plain_bin_counts(x, lo, hi, 512))
    assert got.sum() == 0


def _plain_isj(counts: np.ndarray, n: int, span: float, near: tuple[float, float]) -> float:
    """Botev et al. (2010)'s fixed point with ℓ = 7, written out as in the paper's code."""
    n_grid = counts.size
    a = dct(counts / counts.sum(), type=2)
    i2 = np.arange(1, n_grid, dtype=np.float64) ** 2
    a2 = (a[1:] / 2.0) ** 2

    def functional(s: int, t: float) -> float:
        return float((2.0 * np.pi ** (2 * s) * i2**s * a2) @ np.exp(-i2 * np.pi**2 * t))

    def fixed_point(t: float) -> float:
        f = functional(7, t)
        for s in range(6, 1, -1):
            k = 2.0 * (1 + 0.5 ** (s + 0.5)) / 3.0 * float(np.prod(np.arange(1, 2 * s, 2)))
            f = functional(s, (k / np.sqrt(2 * np.pi) / n / f) ** (2.0 / (3 + 2 * s)))
        return float(t - (2 * n * np.sqrt(np.pi) * f) ** (-0.4))

    lo, hi = (near[0] / span) ** 2, (near[1] / span) ** 2
    bracket = (lo, hi) if fixed_point(lo) * fixed_point(hi) < 0 else (1e-12, 0.1)
    return float(np.sqrt(brentq(fixed_point, *bracket, xtol=1e-14, rtol=1e-6)) * span)


@pytest.mark.parametrize("seed", range(5))
def test_isj_bandwidth_is_the_fixed_point_written_out(seed: int) -> None:
    """The ISJ bandwidth with its tables worked out once and the bracket's ends evaluated
    once is, to the last bit, the fixed point written out in full."""
    rng = np.random.default_rng(seed)
    x = np.concatenate((rng.normal(0, 1, 20_000), rng.normal(4, 0.5, 1000 * (seed + 1))))
    counts, _ = np.histogram(x, bins=1024, range=(x.min() - 1, x.max() + 1))
    span = float(x.max() - x.min() + 2)
    silverman = 0.9 * float(np.std(x)) * x.size ** (-0.2)
    for near in ((0.2 * silverman, silverman), (0.01, 0.02)):
        with np.errstate(all="ignore"):
            expected = _plain_isj(counts, x.size, span, near)
            assert _isj_from_counts(counts, x.size, span, near) == expected
            assert _isj_from_counts(counts, x.size, span, near) == expected  # tables reused


def test_find_cut_leaves_non_finite_values_out() -> None:
    """NaN and ±inf do not move a cut: the same cut as on the finite values alone."""
    rng = np.random.default_rng(4)
    x = np.concatenate((rng.normal(0.2, 0.05, 20_000), rng.normal(0.7, 0.05, 5_000)))
    dirty = x.copy()
    dirty[::97] = np.nan
    dirty[1::89] = np.inf
    dirty[2::83] = -np.inf
    clean = dirty[np.isfinite(dirty)]
    assert find_cut(dirty) == find_cut(clean)
    assert find_cut(clean).method == "valley"
    assert 0.3 < find_cut(clean).value < 0.6
