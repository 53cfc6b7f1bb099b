"""Always-on accuracy tests on SYNTHETIC CD56 fields with a known truth (nkpanel's simulator):
ordinary, faint staining, dense stroma, glands (automatic exclusion and drawn regions).

A detection matches a truth cell when their centres lie within 4 µm (about the radius of a
nucleus 8 µm across), one-to-one. Limits below are the acceptance criteria for the method on
these fields, set before the runs: they are not copied from the output.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nkpanel.uterine.analyze import UterineAnalysis, UterineSettings, analyze_image
from nkpanel.uterine.batch import pool_results
from nkpanel.uterine.detect import DetectionSettings, detect_cells
from nkpanel.uterine.simulate import FieldSpec, SyntheticField, simulate_field, write_field

from .helpers import f1, match

RADIUS_UM = 4.0


def _run(
    tmp: Path, spec: FieldSpec, settings: UterineSettings | None = None, regions: bool = False
) -> tuple[SyntheticField, UterineAnalysis]:
    field = simulate_field(spec)
    files = write_field(field, tmp / f"field_{spec.seed}.tif")
    reg = next((f for f in files if f.suffix == ".geojson"), None) if regions else None
    return field, analyze_image(files[0], settings, regions=reg)


def _scores(field: SyntheticField, a: UterineAnalysis) -> dict[str, float]:
    um = field.spec.pixel_size_um
    truth = [c for c in field.cells if c.kind != "epithelial"]
    t_xy = np.array([[c.y_px, c.x_px] for c in truth])
    t_pos = np.array([c.positive for c in truth])
    d_xy = np.c_[a.cells.y - 0.5, a.cells.x - 0.5]  # continuous → pixel-index coordinates
    i, _ = match(d_xy, t_xy, RADIUS_UM / um)
    ip, _ = match(d_xy[a.cells.positive], t_xy[t_pos], RADIUS_UM / um)
    r = a.result.overall
    return {
        "f1_all": f1(len(d_xy), len(t_xy), len(i)),
        "f1_pos": f1(int(a.cells.positive.sum()), int(t_pos.sum()), len(ip)),
        "per100": r.cd56_per_100_stromal_cells or 0.0,
        "per100_truth": 100.0 * t_pos.sum() / len(t_xy),
        "area": r.stromal_area_mm2,
        "area_truth": field.stromal_area_mm2,
    }


@pytest.fixture(scope="module")
def ordinary(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticField, UterineAnalysis]:
    return _run(tmp_path_factory.mktemp("ordinary"), FieldSpec(width_px=900, height_px=900, seed=3))


def test_ordinary_field(ordinary: tuple[SyntheticField, UterineAnalysis]) -> None:
    field, a = ordinary
    s = _scores(field, a)
    assert s["f1_all"] >= 0.85
    assert s["f1_pos"] >= 0.90
    assert abs(s["per100"] - s["per100_truth"]) <= 1.5
    assert s["area"] == pytest.approx(s["area_truth"], rel=0.10)
    assert a.result.synthetic
    assert a.result.kind == "field"
    assert a.result.pixel_size_source == "TIFF resolution tags"
    assert a.result.exclusion_source == "automatic"
    # a single field image: the across-field interval needs two fields
    assert a.result.per_100_ci.lower is None


def test_faint_staining(tmp_path: Path) -> None:
    """DAB at 0.3 OD (less than half the ordinary 0.8): QuPath's default 0.2 threshold misses
    many cells, and a lab that lowers its threshold to 0.1 (as labs do for weak stains) finds
    them; negatives stay negative."""
    spec = FieldSpec(width_px=800, height_px=800, seed=5, dab_od=0.3)
    field, default = _run(tmp_path, spec)
    low = UterineSettings(detection=DetectionSettings(positive_threshold_od=0.1))
    lowered = analyze_image(tmp_path / "field_5.tif", low)
    s_default = _scores(field, default)
    s_low = _scores(field, lowered)
    assert s_low["f1_pos"] >= 0.85
    assert s_low["f1_pos"] > s_default["f1_pos"]
    assert abs(s_low["per100"] - s_low["per100_truth"]) <= 2.0


def test_dense_stroma(tmp_path: Path) -> None:
    """12,000 stromal cells per mm² (very dense, decidualised stroma): touching nuclei.

    Known limitation, measured here: some touching stromal nuclei are merged (the CD56+ cells,
    with their ring of cytoplasm, stay apart), so the denominator is undercounted and the CD56+
    percentage comes out too high, by about 40% on this field (10.6 vs 7.5).
    The limits pin that down so a change that worsens it is caught."""
    field, a = _run(
        tmp_path, FieldSpec(width_px=800, height_px=800, seed=6, stromal_cells_per_mm2=12000)
    )
    s = _scores(field, a)
    assert s["f1_all"] >= 0.80  # measured 0.85
    assert s["f1_pos"] >= 0.85
    assert s["per100_truth"] <= s["per100"] <= 1.5 * s["per100_truth"]


@pytest.mark.parametrize("drawn", [False, True], ids=["automatic", "regions"])
def test_glands_are_excluded(tmp_path: Path, drawn: bool) -> None:
    spec = FieldSpec(width_px=900, height_px=900, seed=4, n_glands=3)
    field, a = _run(tmp_path, spec, regions=drawn)
    assert a.result.exclusion_source == ("regions" if drawn else "automatic")
    um = spec.pixel_size_um
    epi = np.array([[c.y_px, c.x_px] for c in field.cells if c.kind == "epithelial"])
    d_xy = np.c_[a.cells.y - 0.5, a.cells.x - 0.5]
    i, _ = match(d_xy, epi, RADIUS_UM / um)
    assert len(i) <= 0.03 * len(epi)  # epithelial cells are not counted as stromal cells
    s = _scores(field, a)
    assert s["f1_pos"] >= 0.85
    assert abs(s["per100"] - s["per100_truth"]) <= 1.5
    assert s["area"] == pytest.approx(s["area_truth"], rel=0.10)
    truth_gland_mm2 = float(field.gland_mask.sum()) * (um * 1e-3) ** 2
    assert a.result.excluded_area_mm2 == pytest.approx(truth_gland_mm2, rel=0.5)


def test_regions_that_exclude_only_artefacts_leave_gland_exclusion_on(tmp_path: Path) -> None:
    """A regions file holding one Ignore* square (an artefact) switched the automatic gland
    exclusion off: glands were counted as stroma, silently. Such regions say nothing of the
    glands, so they are still excluded automatically, and the note says why."""
    import json

    spec = FieldSpec(width_px=900, height_px=900, seed=4, n_glands=3)
    field = simulate_field(spec)
    image = write_field(field, tmp_path / "field.tif")[0]
    square = [[[0, 0], [40, 0], [40, 40], [0, 40], [0, 0]]]
    regions = tmp_path / "artefact.geojson"
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": square},
        "properties": {"objectType": "annotation", "classification": {"name": "Ignore*"}},
    }
    regions.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    a = analyze_image(image, regions=regions)
    assert a.result.exclusion_source == "regions and automatic"  # the artefact drawn, too
    assert any("only Ignore*" in n for n in a.result.notes)
    um = spec.pixel_size_um
    truth_gland_mm2 = float(field.gland_mask.sum()) * (um * 1e-3) ** 2
    assert a.result.excluded_area_mm2 == pytest.approx(truth_gland_mm2, rel=0.5)


def test_touching_nuclei_are_split_by_shape() -> None:
    """Two overlapping nuclei (radius 4 µm, centres 7.5 µm apart), one paler, form one blob
    with a single intensity maximum within the seed distance; the shape split parts them at
    their waist."""
    um = 0.5
    yy, xx = np.mgrid[:80, :80]
    r = 4.0 / um
    a = ((yy - 40) ** 2 + (xx - 32) ** 2) <= r * r
    b = ((yy - 40) ** 2 + (xx - 47) ** 2) <= r * r
    h = (0.6 * a + 0.35 * (b & ~a)).astype(np.float32)
    d = np.zeros_like(h)
    cells, _ = detect_cells(h, d, DetectionSettings())
    assert len(cells) == 2
    unsplit, _ = detect_cells(h, d, DetectionSettings(split_by_shape=False))
    assert len(unsplit) == 1


@pytest.mark.parametrize("split_by_shape", [False, True], ids=["intensity-seeds", "shape-split"])
def test_one_oval_nucleus_is_one_cell_at_any_angle(split_by_shape: bool) -> None:
    """A stromal nucleus is an oval about 10 × 5 µm. Drawn uniform (so the truth is one cell by
    construction), 10 or 11 µm long, at 13 angles and two sub-pixel offsets, it is one cell
    each time. Its blurred image and its distance map can each peak at two or three equal
    points along the long axis (a pixel staircase); taking each such point as a seed of its
    own cut single ovals in two at 28 of these 52 placements (4 of them from the intensity
    seeds alone)."""
    um = 0.5
    yy, xx = np.mgrid[:100, :100] * um
    settings = DetectionSettings(split_by_shape=split_by_shape)
    counts = []
    for angle in np.linspace(0.0, np.pi, 13):
        for cy in (25.0, 25.25):
            u = (xx - 25.0) * np.cos(angle) + (yy - cy) * np.sin(angle)
            v = -(xx - 25.0) * np.sin(angle) + (yy - cy) * np.cos(angle)
            for a in (5.0, 5.5):
                h = (0.4 * ((u / a) ** 2 + (v / 2.5) ** 2 <= 1.0)).astype(np.float32)
                counts.append(len(detect_cells(h, np.zeros_like(h), settings)[0]))
    assert counts == [1] * len(counts)


def test_pale_small_nucleus_is_found() -> None:
    """A pale nucleus (OD 0.13, radius 2.5 µm) whose outline passes QuPath's 0.1 threshold but
    whose peak, after the 1.5 µm smoothing used for seeds, does not (a 2-D Gaussian of σ 3 px
    keeps 1 − exp(−5²/(2·3²)) = 75% of a 5 px disc at its centre: 0.13 × 0.75 ≈ 0.098 < 0.1).
    Every thresholded piece is a nucleus, seeded or not."""
    um = 0.5
    yy, xx = np.mgrid[:80, :80]
    h = (0.13 * (np.hypot(yy - 40, xx - 40) * um <= 2.5)).astype(np.float32)
    cells, _ = detect_cells(h, np.zeros_like(h), DetectionSettings())
    assert len(cells) == 1
    assert cells.y[0] == pytest.approx(40, abs=0.5) and cells.x[0] == pytest.approx(40, abs=0.5)
    # its outline lies inside the 19.6 µm² disc (the threshold cuts its blurred edge) and
    # above the 10 µm² minimum
    assert 10.0 <= cells.nucleus_area_um2[0] <= 19.6


def test_area_limits_in_microns() -> None:
    um = 0.5
    yy, xx = np.mgrid[:200, :200]
    speck = ((yy - 20) ** 2 + (xx - 20) ** 2) <= (1.0 / um) ** 2  # 3 µm²
    nucleus = ((yy - 100) ** 2 + (xx - 100) ** 2) <= (3.0 / um) ** 2  # 28 µm²
    h = (0.6 * (speck | nucleus)).astype(np.float32)
    cells, _ = detect_cells(h, np.zeros_like(h), DetectionSettings())
    assert len(cells) == 1
    # a threshold at 1/6 of the nucleus's OD on a lightly blurred edge lies about one pixel
    # outside it, as in QuPath: the outline is up to ~35% larger in area at 0.5 µm/px
    assert 28.3 <= cells.nucleus_area_um2[0] <= 28.3 * 1.35
    # the same disc at 0.25 µm/pixel is the same size in µm²
    h2 = np.kron(h, np.ones((2, 2), np.float32))
    cells2, _ = detect_cells(
        h2, np.zeros_like(h2), replace(DetectionSettings(), pixel_size_um=0.25)
    )
    assert cells2.nucleus_area_um2[0] == pytest.approx(cells.nucleus_area_um2[0], rel=0.1)


def test_membrane_ring_is_positive_in_the_cytoplasm_compartment() -> None:
    """A blue nucleus with a brown ring 2–3 µm beyond its edge (CD56 on the membrane)."""
    um = 0.5
    yy, xx = np.mgrid[:100, :100]
    dist = np.hypot(yy - 50, xx - 50) * um
    h = (0.5 * (dist <= 3.0)).astype(np.float32)
    d = (0.8 * ((dist >= 5.0) & (dist <= 6.5))).astype(np.float32)
    cells, _ = detect_cells(h, d, DetectionSettings())
    assert len(cells) == 1
    assert bool(cells.positive[0])
    assert cells.dab_nucleus_od[0] < 0.05
    nuclear, _ = detect_cells(h, d, DetectionSettings(compartment="nucleus"))
    assert not bool(nuclear.positive[0])


def test_qc_reasons_read_right_when_passing_and_failing(
    ordinary: tuple[SyntheticField, UterineAnalysis], tmp_path: Path
) -> None:
    """A passing check states its value against the limit; only a failing one says why it
    blocks (a reviewer saw "pass · 2291 stromal cells counted…, fewer than 500: … too
    imprecise to report")."""
    _, a = ordinary
    n = a.result.overall.stromal_cells
    assert n >= 500  # the ordinary 900 × 900 px field holds well over 500 stromal cells
    qc = {q.check: q for q in a.result.qc}
    cells = qc["stromal cells counted"]
    assert cells.passed and cells.reason == f"{n} stromal cells counted (minimum 500)"
    px = qc["pixel size"]
    assert px.passed and "too coarse" not in px.reason and "(nuclei need ≤ 1 µm" in px.reason
    for q in a.result.qc:
        assert "fewer" not in q.reason and "too imprecise" not in q.reason

    # the same cells pooled as a biopsy (batch.pool_results): at the limit it passes ...
    ok = pool_results([a.result], "biopsy", min_cells=n)
    pooled = next(q for q in ok.qc if q.check == "stromal cells counted")
    assert (
        pooled.passed and pooled.reason == f"{n} stromal cells counted in the biopsy (minimum {n})"
    )
    assert ok.reportable and ok.not_reportable_reasons == ()
    # ... one cell short it fails, says why, and blocks
    short = pool_results([a.result], "biopsy", min_cells=n + 1)
    failed = next(q for q in short.qc if q.check == "stromal cells counted")
    assert not failed.passed and failed.reason == (
        f"{n} stromal cells counted in the biopsy, fewer than the minimum of {n + 1}: "
        "the CD56+ percentage is too imprecise to report"
    )
    assert short.not_reportable_reasons == (failed.reason,)

    # analyze.py's failing wording: limits no field can meet
    strict = UterineSettings(min_stromal_cells=10**6, max_pixel_size_um=0.01)
    _, b = _run(tmp_path, FieldSpec(width_px=300, height_px=300, seed=5), strict)
    qb = {q.check: q for q in b.result.qc}
    m = b.result.overall.stromal_cells
    assert not qb["stromal cells counted"].passed
    assert qb["stromal cells counted"].reason == (
        f"{m} stromal cells counted, fewer than the minimum of 1000000: "
        "the CD56+ percentage is too imprecise to report"
    )
    assert not qb["pixel size"].passed
    assert "too coarse: nuclei need ≤ 0.01 µm per pixel" in qb["pixel size"].reason


@pytest.mark.parametrize(("factor", "passed"), [(None, True), (2.0, False), (0.5, False)])
def test_a_wrong_pixel_size_shows_in_the_size_of_the_nuclei(
    ordinary: tuple[SyntheticField, UterineAnalysis], factor: float | None, passed: bool
) -> None:
    """A field read at twice its pixel size (another objective's calibration; a JPEG's wrapped
    dpi field) gave CD56+ per mm² −51%, reportable and silent (audit 8). Nuclei are 5–10 µm
    across: the median nucleus of the cells counted tells a scale off by 2 either way."""
    field, a = ordinary
    if factor is not None:
        given = field.spec.pixel_size_um * factor
        a = analyze_image(a.result.sources[0], pixel_size_um=given)
    flag = next(q for q in a.result.qc if q.check == "nucleus size")
    assert flag.passed is passed and not flag.blocking
    # the simulator's stromal nuclei (most cells) are ellipses of semi-axes 3.5–5.5 × 2.2–3.2
    # µm: at the midpoints π · 4.5 · 2.7 = 38 µm²
    if passed:
        assert flag.value == pytest.approx(np.pi * 4.5 * 2.7, rel=0.3)
    else:
        assert "the pixel size is likely wrong" in flag.reason
