"""The merged-nuclei warning: touching nuclei outlined as one, so the stromal count is low.

Truth comes from construction: ellipses and pairs of discs drawn at known sizes (their moments
worked out by hand), hand-built areas and shapes, nuclei painted at known places and detected
with the shape split off (each touching pair then one detection), and SYNTHETIC fields whose
every nucleus the simulator placed (the true stromal count is the simulator's).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nkpanel.uterine.analyze import analyze_image
from nkpanel.uterine.detect import DetectionSettings, detect_cells, ellipse_fill
from nkpanel.uterine.results import (
    MERGED_FILL,
    MERGED_LIMIT,
    UterineQC,
    merged_nuclei,
    merged_nuclei_qc,
    pooled_merged_nuclei_qc,
)
from nkpanel.uterine.simulate import FieldSpec, simulate_field, write_field


def _fill_of(mask: np.ndarray) -> float:
    r, c = np.nonzero(mask)
    return float(ellipse_fill(np.ones(r.size, dtype=np.intp), r, c, 2)[1])


@pytest.mark.parametrize("angle", [0.0, 0.4, 1.1, 2.0])
@pytest.mark.parametrize(("a", "b"), [(8.0, 8.0), (14.0, 6.0), (22.0, 9.0)])
def test_an_ellipse_reads_one_whatever_its_size_shape_and_angle(
    a: float, b: float, angle: float
) -> None:
    """An ellipse's area is 4π√det of its second moments (a²/4, b²/4 on its axes): the fill is
    1 up to the pixel staircase of its outline."""
    yy, xx = np.mgrid[:80, :80].astype(np.float64) - 40.0
    u = xx * math.cos(angle) + yy * math.sin(angle)
    v = -xx * math.sin(angle) + yy * math.cos(angle)
    fill = _fill_of((u / a) ** 2 + (v / b) ** 2 <= 1.0)
    assert 0.985 <= fill <= 1.0 + 1e-9


@pytest.mark.parametrize(
    ("separation", "expected"),
    [
        # two unit discs d radii apart: area A = 2π − lens; the lens and the moments worked out
        # by hand (d = 2: A = 2π, μ_xx = 1/4 + 1 = 5/4, μ_yy = 1/4: 2π / 4π√(5/16) = 0.894)
        (2.0, 0.894),
        (1.6, 0.960),
    ],
)
def test_two_touching_nuclei_read_below_the_limit(separation: float, expected: float) -> None:
    r = 30.0
    yy, xx = np.mgrid[:100, :200].astype(np.float64)
    pair = ((yy - 50) ** 2 + (xx - 60) ** 2 <= r * r) | (
        (yy - 50) ** 2 + (xx - 60 - separation * r) ** 2 <= r * r
    )
    fill = _fill_of(pair)
    assert fill == pytest.approx(expected, abs=0.006)
    assert fill < MERGED_FILL


@pytest.mark.parametrize(
    ("areas", "fills", "share", "merged"),
    [
        # 160 nuclei of 40 µm² and 40 pairs of 80 µm² not shaped as one: 40 missed of 200
        ([40.0] * 160 + [80.0] * 40, [0.99] * 160 + [0.9] * 40, 0.2, 40),
        # the same pairs overlapping (64 µm², 1.6 nuclei): still two nuclei each
        ([40.0] * 160 + [64.0] * 40, [0.99] * 160 + [0.95] * 40, 0.2, 40),
        # triples (120 µm²) hide two nuclei each: 2 · 20 / 200
        ([40.0] * 180 + [120.0] * 20, [0.99] * 180 + [0.85] * 20, 0.2, 20),
        # large nuclei shaped as one ellipse are single nuclei
        ([40.0] * 160 + [80.0] * 40, [0.99] * 160 + [0.985] * 40, 0.0, 0),
        # small irregular nuclei are not merged ones
        ([40.0] * 160 + [45.0] * 40, [0.99] * 160 + [0.9] * 40, 0.0, 0),
    ],
)
def test_the_estimate_on_hand_built_nuclei(
    areas: list[float], fills: list[float], share: float, merged: int
) -> None:
    est = merged_nuclei(np.array(areas), np.array(fills))
    assert est is not None
    assert est[0] == pytest.approx(share)
    assert est[1] == merged
    assert est[3] == 40.0  # the single-nucleus area: the median of those shaped as one


def test_nothing_is_judged_on_few_or_irregular_nuclei() -> None:
    assert merged_nuclei(np.full(40, 40.0), np.full(40, 0.99)) is None
    # ragged outlines everywhere (the real Ki67 field's smaller half reads 0.92)
    rng = np.random.default_rng(0)
    areas = rng.uniform(20, 120, 300)
    assert merged_nuclei(areas, np.full(300, 0.92)) is None
    q = merged_nuclei_qc(areas, np.full(300, 0.92))
    assert q.passed and q.value is None and not q.blocking
    assert "not judged" in q.reason


def test_the_check_fails_from_the_limit_and_says_the_count_it_implies() -> None:
    # 29 pairs in 200 detections: 14.5%, under the limit; 30: 15%, at it
    fills = np.r_[np.full(171, 0.99), np.full(29, 0.9)]
    ok = merged_nuclei_qc(np.r_[np.full(171, 40.0), np.full(29, 80.0)], fills)
    assert ok.passed and ok.value == 0.145
    fills = np.r_[np.full(170, 0.99), np.full(30, 0.9)]
    assert not merged_nuclei_qc(np.r_[np.full(170, 40.0), np.full(30, 80.0)], fills).passed
    fills = np.r_[np.full(160, 0.99), np.full(40, 0.9)]
    bad = merged_nuclei_qc(np.r_[np.full(160, 40.0), np.full(40, 80.0)], fills)
    assert not bad.passed and not bad.blocking and bad.value == 0.2
    assert bad.limit == MERGED_LIMIT
    assert "about 240, not 200" in bad.reason and "per mm² is not affected" in bad.reason


def test_painted_touching_pairs_are_found_one_by_one() -> None:
    """60 single nuclei and 20 touching pairs painted on haematoxylin at 0.5 µm/pixel, the
    shape split off so that each pair is one detection: the check finds the 20 pairs and the
    20 nuclei they hide (20 of the 80 detections: 25%)."""
    h = np.zeros((400, 800), dtype=np.float32)
    yy, xx = np.mgrid[:400, :800]
    r = 7.0  # px: a 3.5 µm radius, a 38 µm² nucleus
    centres = [(20 + 40 * (k // 20), 20 + 40 * (k % 20)) for k in range(80)]
    for k, (cy, cx) in enumerate(centres):
        h[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 0.5
        if k % 4 == 0:  # every fourth nucleus has a neighbour touching it
            h[(yy - cy) ** 2 + (xx - cx - 2 * r + 1) ** 2 <= r * r] = 0.5
    settings = DetectionSettings(split_by_shape=False, sigma_um=0.5, seed_distance_um=6.0)
    cells, _ = detect_cells(h, np.zeros_like(h), settings)
    assert len(cells) == 80
    est = merged_nuclei(cells.nucleus_area_um2, cells.nucleus_ellipse_fill)
    assert est is not None
    _, n_merged, missed, _ = est
    assert n_merged == 20
    assert missed == pytest.approx(20, abs=2)
    q = merged_nuclei_qc(cells.nucleus_area_um2, cells.nucleus_ellipse_fill)
    assert not q.passed and q.value == pytest.approx(0.25, abs=0.025)


@pytest.mark.parametrize(
    ("cells_per_mm2", "seed", "flagged"),
    [(4000, 11, False), (5000, 12, False), (12000, 13, True)],
)
def test_on_simulated_stroma_the_estimate_follows_the_true_shortfall(
    tmp_path: Path, cells_per_mm2: float, seed: int, flagged: bool
) -> None:
    """SYNTHETIC fields: the simulator's stromal cells are the truth. In ordinary stroma few
    nuclei touch (counted 0.92-0.94 of the truth) and the check is silent; in dense stroma
    (12,000 per mm², decidualised) nearly a quarter of the nuclei merge and it warns. Either
    way the estimated missed share is within 0.03 of the true one, and the count itself is
    what it was (the check changes nothing)."""
    field = simulate_field(
        FieldSpec(
            width_px=800,
            height_px=800,
            seed=seed,
            stromal_cells_per_mm2=cells_per_mm2,
            unk_percent_of_stromal=15.0,
        )
    )
    path, _ = write_field(field, tmp_path / "dense-synthetic.tif")
    result = analyze_image(path).result
    counted = result.overall.stromal_cells
    true_share = field.stromal_cells / counted - 1.0
    (q,) = [q for q in result.qc if q.check == "merged nuclei"]
    assert q.value is not None
    assert q.value == pytest.approx(true_share, abs=0.03)
    assert q.passed is not flagged
    assert (true_share >= MERGED_LIMIT) is flagged
    assert result.reportable  # a warning: the lab decides


def test_a_biopsy_pools_its_images_missed_nuclei() -> None:
    """1,000 cells with 30% missed and 3,000 with 5%: (300 + 150) / 4,000 = 11.25%; the image
    over the limit is named. 2,000 and 2,000 at 30% and 5%: 17.5%, the biopsy warned."""

    def q(share: float) -> UterineQC:
        return UterineQC("merged nuclei", share < MERGED_LIMIT, share, MERGED_LIMIT, "", False)

    pooled = pooled_merged_nuclei_qc([("a", q(0.3), 1000), ("b", q(0.05), 3000)])
    assert pooled is not None and pooled.passed and pooled.value == 0.1125
    assert "over the limit in a" in pooled.reason
    pooled = pooled_merged_nuclei_qc([("a", q(0.3), 2000), ("b", q(0.05), 2000)])
    assert pooled is not None and not pooled.passed and pooled.value == 0.175
    # images where merges were not judged are left out; none judged, no check
    unjudged = UterineQC("merged nuclei", True, None, MERGED_LIMIT, "", False)
    assert pooled_merged_nuclei_qc([("a", unjudged, 1000)]) is None
