"""The borderline-staining warning when the CD56+ population straddles the threshold.

A membranous stain measured as the mean of a ring reads about a third of the membrane's OD,
so membrane DAB of about 0.6 OD puts the CD56+ cells' mode just above QuPath's 0.2 threshold
and a quarter of them under it: the count is low by that much, while the cells just under the
threshold are still fewer than half the positives (the older rule's trigger). Truth comes from
construction: log-normal populations drawn at known quantiles (their share under the
threshold is Φ((ln t − μ)/σ) by hand), and SYNTHETIC fields whose membranes carry DAB at a
known OD, whose truly CD56+ cells read negative are counted by matching them to the
simulator's cells.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from nkpanel.uterine.analyze import analyze_image
from nkpanel.uterine.results import (
    POSITIVE_FIT_MIN_CELLS,
    borderline_staining_qc,
    positives_under_threshold,
)
from nkpanel.uterine.simulate import FieldSpec, simulate_field, write_field

from .helpers import match


def _lognormal(median_od: float, log_sd: float, n: int) -> np.ndarray:
    """``n`` cells at the quantiles (k + 0.5)/n of a log-normal: no sampling noise."""
    q = norm.ppf((np.arange(n) + 0.5) / n)
    return np.exp(math.log(median_od) + log_sd * q)


def _negatives(n: int) -> np.ndarray:
    """Negative cells: the stroma's background (about 0 once subtracted) and, in a tenth of
    them, a touching CD56+ neighbour's DAB in the ring, up to 0.11 OD (on the synthetic sweep
    the 99th percentile of true negatives was 0.03-0.15 OD)."""
    rng = np.random.default_rng(5)
    od = rng.normal(0.0, 0.01, n)
    bled = rng.random(n) < 0.1
    od[bled] = rng.uniform(0.02, 0.11, int(bled.sum()))
    return od


@pytest.mark.parametrize(
    ("median_od", "log_sd"),
    [(0.20, 0.15), (0.22, 0.16), (0.24, 0.18), (0.26, 0.13), (0.30, 0.17), (0.40, 0.20)],
)
def test_the_fitted_share_under_the_threshold_is_the_population_s(
    median_od: float, log_sd: float
) -> None:
    cells = np.r_[_negatives(3000), _lognormal(median_od, log_sd, 300)]
    fitted = positives_under_threshold(cells, 0.2)
    assert fitted is not None
    share, median, sd, _ = fitted
    by_hand = norm.cdf((math.log(0.2) - math.log(median_od)) / log_sd)
    assert share == pytest.approx(by_hand, abs=0.03)
    assert median == pytest.approx(median_od, rel=0.05)
    assert sd == pytest.approx(log_sd, rel=0.15)


@pytest.mark.parametrize(
    ("median_od", "flagged"),
    [
        (0.225, True),  # 23% under: the count about a quarter low
        (0.23, True),  # 19% under
        (0.26, False),  # 5% under
        (0.28, False),  # 2% under
        (0.40, False),  # a clean stain
    ],
)
def test_a_population_straddling_the_threshold_fails_the_check(
    median_od: float, flagged: bool
) -> None:
    positives = _lognormal(median_od, 0.16, 200)
    cells = np.r_[_negatives(2000), positives]
    q = borderline_staining_qc(cells, 0.2)
    # the older rule alone would pass all four: fewer than half the positives just under
    just_under = np.count_nonzero((cells >= 0.1) & (cells < 0.2))
    assert just_under < 0.5 * np.count_nonzero(cells >= 0.2)
    assert q.passed is not flagged and not q.blocking
    assert ("continue the CD56+ population" in q.reason) is flagged


def test_too_few_cells_above_the_floor_are_not_fitted() -> None:
    few = np.r_[np.zeros(500), _lognormal(0.21, 0.15, POSITIVE_FIT_MIN_CELLS - 1)]
    n_over = int(np.count_nonzero(few >= 0.15))
    assert n_over < POSITIVE_FIT_MIN_CELLS
    assert positives_under_threshold(few, 0.2) is None


def _misread_share(dab_od: float, seed: int, tmp_path: Path) -> tuple[float, bool, float]:
    """(share of the true CD56+ cells read negative, the check's verdict, the fitted share)
    on a SYNTHETIC field with membranes at ``dab_od``."""
    spec = FieldSpec(
        width_px=900, height_px=900, seed=seed, dab_od=dab_od, unk_percent_of_stromal=15.0
    )
    field = simulate_field(spec)
    path, _ = write_field(field, tmp_path / f"dab-{dab_od}-{seed}-synthetic.tif")
    analysis = analyze_image(path)
    cells = analysis.cells
    truth = [c for c in field.cells if c.kind != "epithelial"]
    t_xy = np.array([[c.y_px, c.x_px] for c in truth])
    t_pos = np.array([c.positive for c in truth])
    d_xy = np.c_[cells.y - 0.5, cells.x - 0.5]
    i, j = match(d_xy, t_xy, 4.0 / spec.pixel_size_um)
    read = cells.positive[i][t_pos[j]]
    (q,) = [q for q in analysis.result.qc if q.check == "borderline staining"]
    fitted = positives_under_threshold(cells.dab_above_background_od("cytoplasm"), 0.2)
    assert fitted is not None
    assert analysis.result.reportable  # a warning: the lab decides
    return float(np.mean(~read)), not q.passed, fitted[0]


@pytest.mark.parametrize(
    ("dab_od", "seed"),
    # membrane DAB 0.59 and 0.64 OD: the audit's faint fields (20-30% low per mm², unwarned)
    [(0.59, 71), (0.64, 72)],
)
def test_a_faint_run_of_membranes_is_flagged_with_its_loss(
    tmp_path: Path, dab_od: float, seed: int
) -> None:
    misread, flagged, fitted = _misread_share(dab_od, seed, tmp_path)
    assert misread > 0.15  # by construction: these membranes put the mode at the threshold
    assert flagged
    assert fitted == pytest.approx(misread, abs=0.08)


@pytest.mark.parametrize(("dab_od", "seed"), [(0.9, 73), (1.2, 74), (1.4, 75)])
def test_a_strong_stain_raises_no_alarm(tmp_path: Path, dab_od: float, seed: int) -> None:
    misread, flagged, fitted = _misread_share(dab_od, seed, tmp_path)
    assert misread < 0.05
    assert not flagged
    assert fitted < 0.08


def test_dense_strongly_stained_stroma_keeps_the_two_sided_message(tmp_path: Path) -> None:
    """In dense (decidualised) stroma at 12,000 cells per mm² a strong stain's membranes touch
    negative cells, whose rings then read 0.1-0.3 OD: the count is high (by construction here,
    about a quarter), and the fit takes those negatives for the positives' shoulder. The
    older rule fires too, and its message, which says the count may be low or high, is the
    one given: the fitted share alone would say "low"."""
    spec = FieldSpec(width_px=900, height_px=900, seed=86, dab_od=1.2, stromal_cells_per_mm2=12_000)
    field = simulate_field(spec)
    path, _ = write_field(field, tmp_path / "dense-synthetic.tif")
    result = analyze_image(path).result
    assert result.overall.cd56_positive_cells > 1.1 * field.positive_cells
    (q,) = [q for q in result.qc if q.check == "borderline staining"]
    assert not q.passed
    assert "the count may be high" in q.reason
    assert "continue the CD56+ population" not in q.reason
