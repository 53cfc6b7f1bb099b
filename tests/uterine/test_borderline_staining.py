"""The borderline-staining warning: many cells just under the positive threshold.

Truth comes from construction: hand-built OD values, and SYNTHETIC fields whose membranes carry
DAB at a known OD (a faint run whose positives fall under QuPath's 0.2 threshold, and a strong
one whose positives are well above it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nkpanel.uterine.analyze import analyze_image
from nkpanel.uterine.results import borderline_staining_qc
from nkpanel.uterine.simulate import FieldSpec, simulate_field, write_field


@pytest.mark.parametrize(
    ("values", "flagged"),
    [
        # 60 cells at 0.15 (just under 0.2) against 40 positives: flagged
        ([0.0] * 900 + [0.15] * 60 + [0.4] * 40, True),
        # a clean stain: negatives near 0, positives well above
        ([0.02] * 950 + [0.5] * 50, False),
        # a few borderline cells among many positives: not flagged (under half the positives)
        ([0.0] * 800 + [0.12] * 40 + [0.6] * 160, False),
        # under 1% of the cells: not flagged
        ([0.0] * 2000 + [0.15] * 15 + [0.5] * 10, False),
        # no positive at all, many borderline: flagged
        ([0.0] * 300 + [0.18] * 30, True),
        # cells at 0.09, under half the threshold: not counted as borderline
        ([0.0] * 500 + [0.09] * 200 + [0.5] * 20, False),
    ],
)
def test_the_rule_on_hand_built_values(values: list[float], flagged: bool) -> None:
    q = borderline_staining_qc(np.array(values), 0.2)
    assert q.passed is not flagged and not q.blocking
    assert q.value == float(sum(0.1 <= v < 0.2 for v in values))


@pytest.mark.parametrize(("dab_od", "flagged"), [(0.4, True), (0.9, False)])
def test_a_faint_stain_run_is_flagged_and_a_strong_one_is_not(
    tmp_path: Path, dab_od: float, flagged: bool
) -> None:
    field = simulate_field(FieldSpec(width_px=800, height_px=800, seed=61, dab_od=dab_od))
    path, _ = write_field(field, tmp_path / f"dab-{dab_od}-synthetic.tif")
    result = analyze_image(path).result
    (q,) = [q for q in result.qc if q.check == "borderline staining"]
    assert q.passed is not flagged
    assert result.reportable  # a warning: the lab decides


@pytest.mark.parametrize(
    ("subsampling", "um", "check"),
    [
        (2, 0.5, "fails"),  # 4:2:0 at 0.5 µm: colour at 1 µm
        (1, 0.5, "fails"),  # 4:2:2: colour halved across
        (2, 0.25, "passes"),  # 4:2:0 at 0.25 µm: colour at the 0.5 µm grid
        (0, 0.5, None),  # 4:4:4: full colour, no check
    ],
)
def test_a_jpeg_whose_colour_is_coarser_than_the_grid_is_warned_about(
    tmp_path: Path, subsampling: int, um: float, check: str | None
) -> None:
    """4:2:0 and 4:2:2 JPEGs store one colour sample per 2 pixels (Pillow's sampling codes 2
    and 1), which blurs thin membranous DAB when that is coarser than the 0.5 µm analysis
    grid (a user's test: CD56+ 94 → 42 at quality 75); a warning says so, on the result."""
    from PIL import Image

    from nkpanel.uterine.analyze import analyze_image

    field = simulate_field(FieldSpec(width_px=400, height_px=400, seed=62))
    path = tmp_path / f"field-{subsampling}-synthetic.jpg"
    Image.fromarray(field.rgb).save(path, quality=92, subsampling=subsampling)
    analysis = analyze_image(path, pixel_size_um=um)  # JFIF holds whole dots per inch only
    qc = [q for q in analysis.result.qc if q.check == "colour resolution"]
    if check is None:
        assert qc == []
        return
    (q,) = qc
    assert q.passed is (check == "passes") and not q.blocking
    assert ("undercounted" in q.reason) is (check == "fails")


def test_the_glass_colour_is_given_as_three_numbers() -> None:
    from nkpanel.errors import ConfigError
    from nkpanel.uterine.stains import parse_white_point

    assert parse_white_point("242,240,236") == (242.0, 240.0, 236.0)
    assert parse_white_point(" 242 ; 240 ; 236 ") == (242.0, 240.0, 236.0)
    for bad in ("242,240", "0,240,236", "242,240,300", "a,b,c", "nan,1,1"):
        with pytest.raises(ConfigError, match="three numbers 1-255"):
            parse_white_point(bad)


def test_a_given_white_point_is_used(tmp_path: Path) -> None:
    """The simulator's own light given as the white point is the one the analysis reports."""
    from nkpanel.uterine.analyze import UterineSettings

    spec = FieldSpec(width_px=400, height_px=400, seed=63)
    path, _ = write_field(simulate_field(spec), tmp_path / "f-synthetic.tif")
    light = (230.0, 231.0, 232.0)
    result = analyze_image(path, UterineSettings(white_point=light)).result
    assert tuple(result.stains["white"]) == pytest.approx(light)


def test_the_warning_reaches_the_biopsy_and_the_command_line(tmp_path: Path) -> None:
    """The faint run's warning is repeated on the pooled biopsy result (the one the report
    reads) and printed by `nkpanel uterine analyze`."""
    from typer.testing import CliRunner

    from nkpanel.uterine.batch import analyze_batch
    from nkpanel.uterine.cli import app

    images = [
        write_field(
            simulate_field(FieldSpec(width_px=800, height_px=800, seed=61 + k, dab_od=0.4)),
            tmp_path / f"faint-{k}-synthetic.tif",
        )[0]
        for k in range(2)
    ]
    batch = analyze_batch(images, tmp_path / "out", detections=False, overlays=False)
    assert batch.pooled is not None
    pooled = [q for q in batch.pooled.qc if q.check == "borderline staining"]
    assert len(pooled) == 2 and not any(q.passed or q.blocking for q in pooled)
    res = CliRunner().invoke(app, ["analyze", *map(str, images), "--out", str(tmp_path / "c")])
    assert res.exit_code == 0
    assert res.output.count("just under the positive threshold") == 2


def test_a_count_below_every_published_value_asks_for_the_positive_control(
    tmp_path: Path,
) -> None:
    """A stain run that failed (DAB 0.12 OD) reads as 0 CD56+ cells; every endometrium in the
    published series holds some (lowest 1.1 per 100, Tuckerman et al. 2007), so the result
    asks for the run's positive control. A single field with none is common, so the biopsy is
    judged on its pooled count: a second field with positives lifts the warning."""
    from nkpanel.uterine.analyze import analyze_image
    from nkpanel.uterine.batch import pool_results
    from nkpanel.uterine.simulate import write_field

    failed = simulate_field(FieldSpec(width_px=700, height_px=700, seed=63, dab_od=0.12))
    a = analyze_image(write_field(failed, tmp_path / "failed.tif")[0]).result
    (q,) = [q for q in a.qc if q.check == "fewer CD56+ than published"]
    assert not q.passed and not q.blocking and "positive control" in q.reason
    assert a.reportable
    good = simulate_field(FieldSpec(width_px=700, height_px=700, seed=64))
    b = analyze_image(write_field(good, tmp_path / "good.tif")[0]).result
    assert [q.passed for q in b.qc if q.check == "fewer CD56+ than published"] == [True]
    alone = pool_results([a], "biopsy")
    both = pool_results([a, b], "biopsy")
    assert [q.passed for q in alone.qc if q.check == "fewer CD56+ than published"] == [False]
    assert [q.passed for q in both.qc if q.check == "fewer CD56+ than published"] == [True]


def test_a_jpeg_compressed_tiff_field_has_its_colour_checked_too(tmp_path: Path) -> None:
    """tifffile and many camera programs write JPEG-in-TIFF as YCbCr 4:2:0: the same colour
    check as a .jpg (it had none)."""
    import tifffile

    from nkpanel.uterine.analyze import analyze_image

    field = simulate_field(FieldSpec(width_px=400, height_px=400, seed=62))
    path = tmp_path / "field-synthetic.tif"
    tifffile.imwrite(path, field.rgb, photometric="rgb", compression="jpeg")
    (q,) = [
        q
        for q in analyze_image(path, pixel_size_um=0.5).result.qc
        if q.check == "colour resolution"
    ]
    assert not q.passed and "undercounted" in q.reason
