"""A batch of images with regions: matching regions files to images, regions that do not belong
to the image, a malformed regions file failing only its image, and re-runs into the same output
folder leaving only the latest run's files. SYNTHETIC fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nkpanel.errors import InputError
from nkpanel.uterine.analyze import analyze_image
from nkpanel.uterine.batch import NoRegionsFile, analyze_batch, pair_regions, pool_results
from nkpanel.uterine.regions import Region, Regions
from nkpanel.uterine.simulate import FieldSpec, simulate_field, write_field

SIDE = 400  # pixels of each synthetic field


@pytest.fixture(scope="module")
def fields(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("fields")
    return [
        write_field(
            simulate_field(FieldSpec(width_px=SIDE, height_px=SIDE, seed=20 + i)), d / f"{n}.tif"
        )[0]
        for i, n in enumerate("abc")
    ]


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def _geojson(path: Path, *rings: list[list[float]], cls: str = "Stroma") -> Path:
    feats: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"objectType": "annotation", "classification": {"name": cls}},
        }
        for ring in rings
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def _regions(*rects: tuple[str, tuple[float, float, float, float]]) -> Regions:
    return Regions(
        "r.geojson",
        tuple(
            Region("count" if role == "count" else "exclude", role, tuple(map(tuple, _rect(*r))))
            for role, r in rects
        ),
    )


# --------------------------------------------------------------------------------------------
# which regions file belongs to which image


def test_regions_folder_matches_qupath_image_names(tmp_path: Path) -> None:
    imgs = [tmp_path / n for n in ("a.tif", "b.svs", "c.png", "d.tif")]
    folder = tmp_path / "regions"
    folder.mkdir()
    for name in ("a.tif.geojson", "b.geojson", "c.regions.geojson", "c.geojson"):
        (folder / name).write_text("{}")
    paired = pair_regions(imgs, [folder])
    assert paired[:3] == [
        folder / "a.tif.geojson",
        folder / "b.geojson",
        folder / "c.regions.geojson",
    ]
    missing = paired[3]
    assert isinstance(missing, NoRegionsFile)
    assert missing.tried == ("d.tif.geojson", "d.regions.geojson", "d.geojson")


def test_image_without_a_regions_file_in_the_folder_is_warned_about(
    fields: list[Path], tmp_path: Path
) -> None:
    folder = tmp_path / "regions"
    folder.mkdir()
    # a Stroma region over the left half of a.tif, named as QuPath names it; none for b.tif
    _geojson(folder / "a.tif.geojson", _rect(0, 0, SIDE / 2, SIDE))
    imgs = fields[:2]
    batch = analyze_batch(
        imgs,
        tmp_path / "out",
        regions=pair_regions(imgs, [folder]),
        detections=False,
        overlays=False,
    )
    a, b = batch.results
    assert a.exclusion_source == "regions" and b.exclusion_source == "automatic"
    # the left half: 200 × 400 px at 0.5 µm = 0.02 mm² of drawn area holds a's counted stroma;
    # drawn on the 2 µm overview grid, the polygon takes in its boundary pixels (Pillow fills
    # them), one column more than its 50: up to 0.02 × 51/50 mm² once tissue fills the field
    assert 0 < a.overall.stromal_area_mm2 <= 0.02 * 51 / 50 + 1e-9
    (warning,) = [q for q in b.qc if q.check == "regions file"]
    assert not warning.passed and not warning.blocking
    assert "no regions file for this image" in warning.reason and "b.tif.geojson" in warning.reason
    assert b.reportable  # a warning, not a refusal
    assert any("no regions file" in n for n in b.notes)
    # said once: not again as the note of an image given no regions at all (audit 17)
    assert not any("(no regions given)" in n for n in b.notes)
    assert batch.pooled is not None
    assert any(q.check == "regions file" and q.reason.startswith("b: ") for q in batch.pooled.qc)
    summary = json.loads((tmp_path / "out" / "images" / "b" / "summary.json").read_text())
    assert any(q["check"] == "regions file" for q in summary["qc"])


# --------------------------------------------------------------------------------------------
# regions drawn on another image


def test_regions_wholly_off_the_image_are_refused() -> None:
    with pytest.raises(InputError, match="no region lies on the image"):
        _regions(("count", (5000, 5000, 6000, 6000))).check_on_image(1000, 1000)
    with pytest.raises(InputError, match="no region lies on the image"):
        _regions(("Gland", (5000, 5000, 6000, 6000))).check_on_image(1000, 1000)
    # an exclusion on the image does not make up for a Stroma region off it
    with pytest.raises(InputError, match="no region to count"):
        _regions(("count", (5000, 0, 6000, 900)), ("Gland", (0, 0, 10, 10))).check_on_image(
            1000, 1000
        )


def test_regions_past_the_edges_are_warned_about() -> None:
    # drawn for an image 2 × 4 times larger: 1000² of 2000 × 4000 px² on the image, 7/8 off
    outside, warning = _regions(("count", (0, 0, 2000, 4000))).check_on_image(1000, 1000)
    assert outside == pytest.approx(7 / 8)
    assert warning is not None and "88%" in warning and "x 2000, y 4000" in warning
    # a triangle x + y ≤ 2000: of its 2·10⁶ px², the 1000² square lies on the image
    tri = Regions("t", (Region("count", "Stroma", ((0, 0), (2000, 0), (0, 2000))),))
    assert tri.check_on_image(1000, 1000)[0] == pytest.approx(0.5)
    # a brush stroke 10 px past the left edge: 10·1000 of 510·1000 px², under 5%: no warning
    outside, warning = _regions(("count", (-10, 0, 500, 1000))).check_on_image(1000, 1000)
    assert outside == pytest.approx(10 / 510) and warning is None
    assert _regions(("count", (0, 0, 500, 1000))).check_on_image(1000, 1000) == (0.0, None)


def test_analysis_refuses_regions_of_another_image(fields: list[Path], tmp_path: Path) -> None:
    reg = _geojson(tmp_path / "other.geojson", _rect(5000, 5000, 6000, 6000))
    with pytest.raises(InputError) as info:
        analyze_image(fields[0], regions=reg)
    assert str(info.value).startswith(str(reg))
    big = _geojson(tmp_path / "big.geojson", _rect(0, 0, 4 * SIDE, 4 * SIDE))
    r = analyze_image(fields[0], regions=big).result
    (q,) = [q for q in r.qc if q.check == "regions on image"]
    assert q.value == pytest.approx(15 / 16) and not q.blocking and r.reportable


# --------------------------------------------------------------------------------------------
# one bad regions file, and re-runs


def test_malformed_regions_file_fails_only_its_image(fields: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "regions"
    folder.mkdir()
    _geojson(folder / "a.geojson", _rect(0, 0, SIDE, SIDE))
    (folder / "b.geojson").write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","geometry":'
        '{"type":"Polygon"},"properties":{"classification":{"name":"Stroma"}}}]}'
    )
    _geojson(folder / "c.geojson", _rect(0, 0, SIDE, SIDE))
    out = tmp_path / "out"
    batch = analyze_batch(fields, out, regions=pair_regions(fields, [folder]), detections=False)
    assert [r.sample for r in batch.results] == ["a", "c"]
    (fail,) = batch.failures
    assert Path(fail.source).name == "b.tif"
    assert "b.geojson" in fail.reason and 'no "coordinates"' in fail.reason
    assert (out / "uterine_results.csv").is_file() and (out / "biopsy_summary.json").is_file()
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a", "c"]


def test_rerun_leaves_only_the_latest_outputs(fields: list[Path], tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    a, b = d / "a.tif", d / "b.tif"
    a.write_bytes(fields[0].read_bytes())
    b.write_bytes(fields[1].read_bytes())
    out = tmp_path / "out"
    first = analyze_batch([a, b], out, detections=False)
    assert not first.failures
    # a file an earlier run of nkpanel wrote (and listed as its own) that this run does not
    (out / "images" / "a" / "overlay_field-01.png").write_bytes(b"from an older run")
    with (out / "images" / "a" / ".nkpanel-files").open("a") as fh:
        fh.write("overlay_field-01.png\n")
    b.write_bytes(b.read_bytes()[:1000])  # b is now truncated
    second = analyze_batch([a, b], out, detections=False)
    assert [Path(f.source).name for f in second.failures] == ["b.tif"]
    # b failed: no earlier result of b remains beside a table listing it as failed
    assert not (out / "images" / "b").exists()
    # a succeeded: its folder holds this run's files only, and the paths reported exist
    assert sorted(p.name for p in (out / "images" / "a").iterdir()) == [
        ".nkpanel-files",
        "cells.csv",
        "overlay.png",
        "summary.json",
    ]
    assert all(p.is_file() for p in second.written + second.overlays)
    assert [p.name for p in (out / "images").iterdir()] == ["a"]  # no partial folders left


def _analysed(field: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of ``field`` analysed into ``out``: (the copy, out)."""
    d = tmp_path / "in"
    d.mkdir()
    a = d / "a.tif"
    a.write_bytes(field.read_bytes())
    out = tmp_path / "out"
    assert not analyze_batch([a], out, detections=False).failures
    return a, out


def test_a_failed_image_removes_only_nkpanels_files(fields: list[Path], tmp_path: Path) -> None:
    a, out = _analysed(fields[0], tmp_path)
    folder = out / "images" / "a"
    note = folder / "pathologist_notes.txt"
    note.write_text("a lab's own file, not nkpanel's")
    a.write_bytes(a.read_bytes()[:1000])  # a is now truncated
    second = analyze_batch([a], out, detections=False)
    assert [Path(f.source).name for f in second.failures] == ["a.tif"]
    # nkpanel's earlier outputs of a are gone; the lab's file stays, and the folder is named
    assert sorted(p.name for p in folder.iterdir()) == ["pathologist_notes.txt"]
    assert second.earlier == [folder]


def test_a_batch_whose_every_image_fails_writes_nothing(fields: list[Path], tmp_path: Path) -> None:
    """Every image failed: no empty table, and the tables of an earlier run into the same
    folder, which would pass for this run's, are removed (as flow's are); the command says
    nothing was written, where it said "outputs written" (audit 17)."""
    import subprocess
    import sys

    a, out = _analysed(fields[0], tmp_path)
    assert (out / "uterine_results.csv").is_file()
    a.write_bytes(a.read_bytes()[:1000])  # a is now truncated
    again = analyze_batch([a], out, detections=False)
    assert len(again.failures) == 1 and not again.results
    assert sorted(p.name for p in again.removed) == ["biopsy_summary.json", "uterine_results.csv"]
    assert sorted(p.name for p in out.iterdir()) == [".nkpanel-files"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nkpanel",
            "uterine",
            "analyze",
            str(a),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and "outputs written" not in proc.stdout + proc.stderr
    assert "no image could be analysed: nothing written" in proc.stderr
    assert not (tmp_path / "o" / "uterine_results.csv").exists()


def test_earlier_image_folders_are_named_not_removed(fields: list[Path], tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    a, b = d / "a.tif", d / "b.tif"
    a.write_bytes(fields[0].read_bytes())
    b.write_bytes(fields[1].read_bytes())
    out = tmp_path / "out"
    analyze_batch([a, b], out, detections=False)
    before = sorted(p.name for p in (out / "images" / "b").iterdir())
    second = analyze_batch([a], out, detections=False)
    assert second.earlier == [out / "images" / "b"]
    assert sorted(p.name for p in (out / "images" / "b").iterdir()) == before
    summary = json.loads((out / "biopsy_summary.json").read_text())
    assert summary["earlier_image_folders"] == [str(out / "images" / "b")]
    assert [r["sample"] for r in summary["images"]] == ["a"]


def test_a_note_several_images_share_is_one_note_on_the_biopsy() -> None:
    """Three field images each "glands excluded automatically": the biopsy (the result the
    report reads) carries it once, naming the three; a note of one image names that one."""
    from dataclasses import replace

    from tests.uterine.test_estimates_shown import WHOLE, _fields, _result

    base = _result("x", "field", WHOLE, _fields())
    auto = "glands were excluded automatically"
    images = [replace(base, sample=f"f{i}", notes=(auto,)) for i in (1, 2, 3)]
    images[1] = replace(images[1], notes=(auto, "its own note"))
    pooled = pool_results(images, "biopsy")
    assert pooled.notes == (f"f1, f2, f3: {auto}", "f2: its own note")


def test_a_field_with_far_fewer_cells_than_the_others_is_pointed_out() -> None:
    """Ten ×400 fields of 900 stromal cells in 0.2 mm² (4,500 per mm²) and one of 6 cells in
    0.2 mm² (30 per mm², under a quarter of the median): the field is likely glass or ink
    taken for stroma, and its area lowers CD56+ per mm². The slide and the biopsy say so;
    with all fields alike they do not."""
    from dataclasses import replace

    from nkpanel.uterine.results import FieldCount
    from tests.uterine.test_estimates_shown import WHOLE, _result

    alike = tuple(FieldCount(f"field-{i:02d}", "lash-field", 40, 900, 0.2) for i in range(10))
    glass = FieldCount("field-11", "lash-field", 0, 6, 0.2)
    ok = pool_results([_result("slide", "slide", WHOLE, alike)], "biopsy")
    assert [q.passed for q in ok.qc if q.check == "sparse fields"] == [True]
    bad = pool_results([_result("slide", "slide", WHOLE, (*alike, glass))], "biopsy")
    (q,) = [q for q in bad.qc if q.check == "sparse fields"]
    assert not q.passed and not q.blocking
    assert "slide/field-11 holds 30 stromal cells per mm² against a median of 4500" in q.reason
    # one image of the biopsy: its fields are compared among themselves, never fewer than 3
    assert [
        q
        for q in pool_results([replace(bad, fields=alike[:2])], "b").qc
        if q.check == "sparse fields"
    ] == []


def test_one_picture_saved_twice_is_pooled_once(fields: list[Path], tmp_path: Path) -> None:
    """The same field saved again with another compression (not a byte copy) was pooled as a
    second field: a narrower CI across fields than the data allow. It keeps its own row, with
    a note, and the biopsy pools the field once; another field is pooled as before."""
    import tifffile

    again = tmp_path / "a_resaved.tif"
    with tifffile.TiffFile(fields[0]) as tif:
        page = tif.pages[0]
        tifffile.imwrite(
            again,
            page.asarray(),
            compression="zlib",
            resolution=page.resolution,
            resolutionunit=page.resolutionunit,
            description=page.description,
        )
    batch = analyze_batch([fields[0], again, fields[1]], tmp_path / "out")
    assert batch.pooled is not None
    rows = {r.sample: r for r in batch.results}
    assert any("the same pixels as a" in n for n in rows["a_resaved"].notes)
    assert not any("same pixels" in n for n in rows["b"].notes)
    once = rows["a"].overall.cd56_positive_cells + rows["b"].overall.cd56_positive_cells
    assert batch.pooled.overall.cd56_positive_cells == once
    assert len(batch.pooled.fields) == 2


@pytest.mark.parametrize(
    ("quality", "scale", "jpeg_first"), [(95, 1, False), (60, 1, True), (90, 2, False)]
)
def test_a_jpeg_copy_of_a_field_is_pooled_once(
    fields: list[Path], tmp_path: Path, quality: int, scale: int, jpeg_first: bool
) -> None:
    """A field saved as TIFF and again as JPEG (microscope software writes both) has other
    pixels, so the exact digest missed it and it was pooled as another field: 20% and 3%
    CD56+ fields plus the JPEG of the first read 15.1 per 100 for 12.2 (audit 8); a copy at
    half size was missed too, and of the two the JPEG was pooled when it sorted first
    (audit 9). The TIFF is pooled, the JPEG kept in its own row with a note."""
    import tifffile
    from PIL import Image

    with tifffile.TiffFile(fields[0]) as tif:
        rgb = tif.pages[0].asarray()
        x_res = tif.pages[0].resolution[0]  # pixels per resolution unit
        unit = tif.pages[0].resolutionunit
    per_inch = x_res * (2.54 if int(unit) == 3 else 1.0) / scale  # centimetre → inch
    copy = tmp_path / "a_copy.jpg"
    picture = Image.fromarray(rgb)
    if scale > 1:
        picture = picture.reduce(scale)
    picture.save(copy, quality=quality, dpi=(per_inch, per_inch))
    order = [copy, fields[0], fields[1]] if jpeg_first else [fields[0], copy, fields[1]]
    batch = analyze_batch(order, tmp_path / "out")
    assert batch.pooled is not None
    rows = {r.sample: r for r in batch.results}
    assert any("the same picture as a (mean difference" in n for n in rows["a_copy"].notes)
    assert not any("same picture" in n for n in rows["a"].notes + rows["b"].notes)
    once = rows["a"].overall.cd56_positive_cells + rows["b"].overall.cd56_positive_cells
    assert batch.pooled.overall.cd56_positive_cells == once
    assert len(batch.pooled.fields) == 2


def test_pictures_alike_but_of_other_extents_are_two_tissues() -> None:
    """Two slides of one block (serial sections) look alike at 64 px against their glass: two
    of 2.5 × 3 and 3 × 3.5 mm (4.05 and 9.66 per 100) were taken for one picture and the second
    left out of the biopsy (audit 18). Pictures are one only where they show as much tissue in
    microns; a copy at half the pixels and twice the pixel size still is one."""
    from nkpanel.uterine.batch import _look, _same_picture

    rng = np.random.default_rng(3)
    overview = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    slide = _look("s1", Path("s1.tif"), overview, (5000, 6000), 0.5)
    other = _look("s2", Path("s2.tif"), overview, (6000, 7000), 0.5)
    half = _look("s1_half", Path("s1_half.tif"), overview, (2500, 3000), 1.0)
    assert _same_picture(slide, other) is None
    assert _same_picture(slide, half) == 0.0


def test_pictures_alike_at_64_px_but_not_in_detail_are_two_tissues() -> None:
    """Two synthetic sections of one block (one outline, other cells) differed by 6.4 grey at
    64 px against their glass, under the 8 of a copy, and the second was left out of the
    biopsy (audit 18); at 256 px they differ by 28, a copy by under 3. Both must agree."""
    from nkpanel.uterine.batch import _Look, _same_picture

    rng = np.random.default_rng(4)
    coarse = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    fine = rng.integers(60, 200, (256, 256, 3), dtype=np.uint8)
    other = rng.integers(60, 200, (256, 256, 3), dtype=np.uint8)
    one = _Look("l1", 1.2, coarse, False, (2500.0, 3000.0), fine)
    section = _Look("l2", 1.2, coarse, False, (2500.0, 3000.0), other)
    copy = _Look("l1_copy", 1.2, coarse, True, (2500.0, 3000.0), fine)
    assert _same_picture(one, section) is None
    assert _same_picture(one, copy) == 0.0
