"""The across-field confidence interval (ratio estimator), by hand and by property, and the
QC records worded for a pass and for a fail."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nkpanel.uterine.results import (
    FieldCount,
    fields_qc,
    outlier_fields_qc,
    ratio_ci,
    stromal_cells_qc,
)


def test_ratio_ci_by_hand() -> None:
    # fields: 2/100, 4/100, 3/100 → R = 9/300 = 0.03; residuals −1, 1, 0 → Σ = 2;
    # SE = sqrt(2 / (3·2)) / 100 = 0.0057735; t(0.975, 2) = 4.302653 (table value)
    r = ratio_ci([2, 4, 3], [100, 100, 100], scale=100)
    half = 4.302653 * math.sqrt(2 / 6) / 100 * 100
    assert r.estimate == pytest.approx(3.0)
    assert r.lower == pytest.approx(3.0 - half, abs=1e-5)
    assert r.upper == pytest.approx(3.0 + half, abs=1e-5)
    assert r.n_fields == 3


def test_ratio_ci_edge_cases() -> None:
    assert ratio_ci([], []).estimate is None
    one = ratio_ci([5], [100], scale=100)
    assert one.estimate == 5.0 and one.lower is None
    assert ratio_ci([0, 0], [0, 0]).estimate is None
    clipped = ratio_ci([0, 0, 9], [100, 100, 100])
    assert clipped.lower == 0.0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 2000)), min_size=2, max_size=15))
def test_ratio_ci_properties(fields: list[tuple[int, int]]) -> None:
    ys = [min(y, x) for y, x in fields]
    xs = [x for _, x in fields]
    r = ratio_ci(ys, xs, scale=100)
    assert r.estimate == pytest.approx(100 * sum(ys) / sum(xs))
    assert r.lower is not None and r.upper is not None
    assert 0 <= r.lower <= r.estimate <= r.upper


def test_field_count_units() -> None:
    f = FieldCount("f", "image", 12, 400, 0.2)
    assert f.cd56_per_100_stromal_cells == 3.0
    assert f.cd56_per_mm2_stroma == 60.0
    empty = FieldCount("e", "image", 0, 0, 0.0)
    assert empty.cd56_per_100_stromal_cells is None and empty.cd56_per_mm2_stroma is None


@pytest.mark.parametrize(
    ("cells", "minimum", "where", "passed", "reason"),
    [
        (2291, 500, "", True, "2291 stromal cells counted (minimum 500)"),
        (500, 500, "", True, "500 stromal cells counted (minimum 500)"),  # the limit passes
        (
            499,
            500,
            " in the biopsy",
            False,
            "499 stromal cells counted in the biopsy, fewer than the minimum of 500: the CD56+ "
            "percentage is too imprecise to report",
        ),
    ],
)
def test_stromal_cells_qc_is_worded_for_its_outcome(
    cells: int, minimum: int, where: str, passed: bool, reason: str
) -> None:
    q = stromal_cells_qc(cells, minimum, where=where)
    assert (q.check, q.passed, q.value, q.limit, q.reason) == (
        "stromal cells counted",
        passed,
        float(cells),
        float(minimum),
        reason,
    )
    assert q.blocking
    assert not stromal_cells_qc(cells, minimum, blocking=False).blocking


def test_fields_qc_is_worded_for_its_outcome() -> None:
    ok, short = fields_qc(10, 10), fields_qc(6, 10)
    assert ok.passed and ok.reason == "10 random ×400 fields of stroma (protocol: 10)"
    assert not short.passed and short.reason == "only 6 random ×400 fields of stroma (protocol: 10)"
    assert not ok.blocking and not short.blocking


def test_a_count_just_under_the_published_lowest_is_not_printed_as_equal() -> None:
    """1.099 per 100 failed the check against 1.1 but was printed as "1.10": shown with the
    digits that tell it apart."""
    from nkpanel.uterine.results import few_positives_qc

    under = few_positives_qc(1_099, 100_000)
    assert not under.passed and under.reason.startswith("1.099 CD56+")
    assert few_positives_qc(11, 1_000).reason.startswith("1.10 CD56+")
    # whole-slide counts come closer still: never rounded up to the limit they fail
    assert few_positives_qc(109_999, 10_000_000).reason.startswith("1.0999 CD56+")


def test_a_field_far_richer_than_the_others_spread_is_said() -> None:
    """By hand. Fields of 100 stromal cells with 3, 6, 9, 12 and 15 CD56+ (uNK cluster: more
    spread than counting gives). Median rate m = 0.09, √(100 · 0.09 · 0.91) = 2.8618,
    residuals e = (x − 9)/2.8618 = −2.097, −1.048, 0, 1.048, 2.097; median 0, MAD 1.048,
    s = 1.4826 · 1.048 = 1.554; the richest z = 2.097/1.554 = 1.35: no outlier. A control
    section's field of 54: m = 0.105, √(100 · 0.105 · 0.895) = 3.0655, its e = 43.5/3.0655 =
    14.19; the residuals' median 0, MAD 1.468, s = 2.176, z = 6.52, and 54% > 3 × 10.5%."""
    fields = [FieldCount(f"f{x}", "lash-field", x, 100, 0.2) for x in (3, 6, 9, 12, 15)]
    q = outlier_fields_qc(fields)
    assert q is not None and q.passed and q.value == pytest.approx(1.3)
    q = outlier_fields_qc([*fields, FieldCount("control", "lash-field", 54, 100, 0.2)])
    assert q is not None and not q.passed and not q.blocking
    assert q.value == pytest.approx(6.5) and q.reason.startswith("control reads 54.0")
    assert outlier_fields_qc(fields[:3]) is None  # too few fields to judge the spread


def test_a_control_in_two_or_three_fields_does_not_hide_itself() -> None:
    """Judged against the others, a control lying in two fields raised their rate and spread
    and passed (0 of 1,000 caught, audit 9); against the median field it is found, each field
    named."""
    base = [FieldCount(f"f{i}", "lash-field", 40 + (i % 3) * 3, 500, 0.2) for i in range(8)]
    for k in (2, 3):
        controls = [FieldCount(f"c{j}", "lash-field", 200 - 5 * j, 500, 0.2) for j in range(k)]
        q = outlier_fields_qc(base + controls)
        assert q is not None and not q.passed
        assert all(c.field in q.reason for c in controls) and f"{k} fields so" in q.reason
