"""The numeric kernels against hand calculations, and their properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nkpanel.cytotox.lysis import (
    flow_specific_killing,
    replicate_stats,
    robust_outliers,
    specific_lysis,
    spontaneous_percent_of_maximum,
    suppression_percent,
)

counts = st.floats(min_value=1.0, max_value=1e6, allow_nan=False, allow_infinity=False)
scales = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)


def test_specific_lysis_by_hand() -> None:
    # E 1300, S 500, M 2500: 100 × 800 / 2000 = 40
    assert float(specific_lysis(1300.0, 500.0, 2500.0)) == pytest.approx(40.0)
    # with a blank of 100 the corrected values are 1200, 400, 2400: 100 × 800 / 2000 = 40 again
    assert float(specific_lysis(1300.0, 500.0, 2500.0, blank=100.0)) == pytest.approx(40.0)
    # E below S: negative, as measured: 100 × (460 − 500) / 2000 = −2
    assert float(specific_lysis(460.0, 500.0, 2500.0)) == pytest.approx(-2.0)
    assert math.isnan(float(specific_lysis(10.0, 5.0, 5.0)))
    arr = specific_lysis(np.array([700.0, 720.0]), 500.0, 2500.0)
    assert arr.tolist() == pytest.approx([10.0, 11.0])


def test_flow_killing_by_hand() -> None:
    # 40% dead with effectors, 10% dead alone: (40 − 10) / (100 − 10) × 100 = 33.33
    assert float(flow_specific_killing(40.0, 10.0)) == pytest.approx(100.0 / 3.0)
    assert float(flow_specific_killing(10.0, 10.0)) == 0.0
    assert float(flow_specific_killing(100.0, 20.0)) == pytest.approx(100.0)


def test_spontaneous_percent_of_maximum_uses_the_blank() -> None:
    # (500 − 100) / (2500 − 100) = 400 / 2400
    assert float(spontaneous_percent_of_maximum(500.0, 2500.0, blank=100.0)) == pytest.approx(
        100.0 / 6.0
    )
    assert float(spontaneous_percent_of_maximum(500.0, 2500.0)) == pytest.approx(20.0)


def test_suppression_by_hand() -> None:
    # (40 − 20) / 40 = 50%; more lysis with the treatment is negative suppression
    assert float(suppression_percent(40.0, 20.0)) == pytest.approx(50.0)
    assert float(suppression_percent(20.0, 30.0)) == pytest.approx(-50.0)
    assert math.isnan(float(suppression_percent(0.0, 5.0)))


def test_replicate_stats_by_hand() -> None:
    s = replicate_stats([40.0, 42.0, 38.0])
    # mean 40; deviations 0, 2, −2: SD = √(8 / 2) = 2; CV = 2 / 40 = 5%
    assert (s.n, s.mean, s.sd, s.cv_percent) == (3, 40.0, 2.0, pytest.approx(5.0))
    one = replicate_stats([7.0])
    assert (one.n, one.sd, one.cv_percent) == (1, None, None)
    assert replicate_stats([1.0, -1.0]).cv_percent is None  # mean 0
    with pytest.raises(ValueError):
        replicate_stats([])


def test_outlier_rule_by_hand() -> None:
    # median 21, |dev| 1, 0, 9 → MAD 1; z of 30 = 0.6745 × 9 = 6.07 > 3.5, and 9 > 5 points
    assert robust_outliers([20.0, 21.0, 30.0]).tolist() == [False, False, True]
    # median 22, |dev| 2, 0, 4 → MAD 2; z of 26 = 0.6745 × 4 / 2 = 1.35: not flagged
    assert robust_outliers([20.0, 22.0, 26.0]).tolist() == [False, False, False]
    # MAD 0 (two equal): the odd one is flagged only beyond the 5-point floor
    assert robust_outliers([20.0, 20.0, 24.0]).tolist() == [False, False, False]
    assert robust_outliers([20.0, 20.0, 26.0]).tolist() == [False, False, True]
    # two values cannot say which one is off
    assert robust_outliers([0.0, 90.0]).tolist() == [False, False]


@settings(max_examples=200, deadline=None)
@given(e=counts, s=counts, m=counts, b=st.floats(0, 1e3), c=scales)
def test_lysis_is_invariant_to_scaling_all_counts(
    e: float, s: float, m: float, b: float, c: float
) -> None:
    if abs(m - s) < 1e-3 * max(m, s):
        return
    base = float(specific_lysis(e, s, m, blank=b))
    scaled = float(specific_lysis(c * e, c * s, c * m, blank=c * b))
    assert scaled == pytest.approx(base, rel=1e-9, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(e=counts, s=counts, m=counts, b=st.floats(-1e3, 1e3))
def test_lysis_does_not_depend_on_the_blank(e: float, s: float, m: float, b: float) -> None:
    if abs(m - s) < 1e-3 * max(m, s):
        return
    assert float(specific_lysis(e, s, m, blank=b)) == pytest.approx(
        float(specific_lysis(e, s, m)), rel=1e-9, abs=1e-9
    )


@settings(max_examples=200, deadline=None)
@given(lysis=st.floats(min_value=-50, max_value=100).filter(lambda v: v != 0))
def test_suppression_of_identical_conditions_is_zero(lysis: float) -> None:
    assert float(suppression_percent(lysis, lysis)) == 0.0


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(-20, 100, allow_nan=False), min_size=3, max_size=8),
    shift=st.floats(-50, 50, allow_nan=False),
)
def test_outlier_rule_is_shift_invariant(values: list[float], shift: float) -> None:
    a = robust_outliers(values)
    b = robust_outliers([v + shift for v in values])
    # away from exact ties with the thresholds, a common shift changes nothing
    x = np.asarray(values)
    dev = np.abs(x - np.median(x))
    if np.any(np.isclose(dev, 5.0, atol=1e-6)):
        return
    mad = float(np.median(dev))
    with np.errstate(over="ignore"):
        if mad > 0 and np.any(np.isclose(0.6745 * dev / mad, 3.5, atol=1e-6)):
            return
    assert a.tolist() == b.tolist()
    assert a.sum() <= len(values) // 2  # at most a minority is ever flagged
