"""Whole-slide images: a SYNTHETIC pyramidal TIFF read through OpenSlide (generic tiled TIFF)
and an OME-TIFF pyramid read with tifffile; tiling, tissue on glass, random ×400 fields."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nkpanel.uterine.analyze import UterineAnalysis, UterineSettings, analyze_source
from nkpanel.uterine.images import FieldImage, PixelSize, WholeSlide, open_image
from nkpanel.uterine.simulate import SYNTHETIC_TAG, FieldSpec, simulate_field

from .helpers import f1, match

UM = 0.5
SETTINGS = UterineSettings(n_fields=3, field_diameter_um=250.0, tile_px=256)


@pytest.fixture(scope="module")
def mosaic() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four synthetic 600×600 fields on glass: RGB, truth centres (y, x), truth positivity.

    The glass is the light the fields were simulated under (``FieldSpec.white``), with camera
    noise: on a real slide glass and tissue are lit by the same lamp."""
    rng = np.random.default_rng(0)
    lamp = np.array(FieldSpec().white)
    canvas = (lamp + rng.integers(-2, 3, (1600, 1600, 3))).clip(0, 255).astype(np.uint8)
    xy, pos = [], []
    for k in range(4):
        f = simulate_field(FieldSpec(width_px=600, height_px=600, seed=20 + k))
        oy, ox = 200 + 600 * (k // 2), 200 + 600 * (k % 2)
        canvas[oy : oy + 600, ox : ox + 600] = f.rgb
        for c in f.cells:
            xy.append((c.y_px + oy, c.x_px + ox))
            pos.append(c.positive)
    return canvas, np.asarray(xy), np.asarray(pos)


def _write_generic_pyramid(
    path: Path,
    rgb: np.ndarray,
    tile: int = 256,
    compression: str | None = "jpeg",
) -> None:
    import tifffile

    with tifffile.TiffWriter(path) as tw:
        for level, step in enumerate((1, 4)):
            tw.write(
                np.ascontiguousarray(rgb[::step, ::step]),
                photometric="rgb",
                tile=(tile, tile),
                compression=compression,
                compressionargs={"level": 95} if compression == "jpeg" else None,
                resolution=(1e4 / (UM * step), 1e4 / (UM * step)),
                resolutionunit="CENTIMETER",
                subfiletype=1 if level else 0,
                description=SYNTHETIC_TAG if level == 0 else None,
                metadata=None,
            )


def _write_ome_pyramid(path: Path, rgb: np.ndarray) -> None:
    import tifffile

    with tifffile.TiffWriter(path) as tw:
        meta = {
            "axes": "YXS",
            "PhysicalSizeX": UM,
            "PhysicalSizeY": UM,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeYUnit": "µm",
        }
        tw.write(
            rgb, subifds=1, photometric="rgb", tile=(256, 256), compression="zlib", metadata=meta
        )
        tw.write(
            np.ascontiguousarray(rgb[::4, ::4]),
            subfiletype=1,
            photometric="rgb",
            tile=(256, 256),
            compression="zlib",
        )


def _score(a: UterineAnalysis, xy: np.ndarray, pos: np.ndarray) -> tuple[float, float]:
    det = np.c_[a.cells.y - 0.5, a.cells.x - 0.5]
    i, _ = match(det, xy, 4.0 / UM)
    ip, _ = match(det[a.cells.positive], xy[pos], 4.0 / UM)
    return f1(len(det), len(xy), len(i)), f1(int(a.cells.positive.sum()), int(pos.sum()), len(ip))


@pytest.mark.parametrize("kind", ["openslide", "ome-tifffile"])
def test_pyramid_slide(
    kind: str, tmp_path: Path, mosaic: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    rgb, xy, pos = mosaic
    if kind == "openslide":
        path = tmp_path / "slide.tif"
        _write_generic_pyramid(path, rgb)
    else:
        path = tmp_path / "slide.ome.tif"
        _write_ome_pyramid(path, rgb)
    src = open_image(path, max_field_pixels=1_000_000)
    assert isinstance(src, WholeSlide)
    assert src.backend.startswith("openslide" if kind == "openslide" else "tifffile")
    assert src.pixel_size.um_per_px == pytest.approx(UM, rel=1e-3)
    assert len(src.levels) == 2
    try:
        a = analyze_source(src, SETTINGS)
    finally:
        src.close()
    r = a.result
    assert r.kind == "slide"
    # tissue is the 0.6 × 0.6 mm mosaic, not the glass around it
    assert r.tissue_area_mm2 == pytest.approx(0.36, rel=0.08)
    f1_all, f1_pos = _score(a, xy, pos)
    assert f1_all >= 0.85
    assert f1_pos >= 0.90
    truth100 = 100.0 * pos.mean()
    assert abs((r.overall.cd56_per_100_stromal_cells or 0) - truth100) <= 1.5
    # three random ×400-style fields inside the tissue, each counted, with an interval
    assert len(r.fields) == 3
    assert all(f.kind == "lash-field" and f.stromal_cells > 100 for f in r.fields)
    assert sum(f.stromal_cells for f in r.fields) < r.overall.stromal_cells
    assert r.per_100_ci.lower is not None and r.per_100_ci.upper is not None
    assert r.per_100_ci.lower <= (r.per_100_ci.estimate or 0) <= r.per_100_ci.upper


def test_tiles_do_not_change_the_count(mosaic: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The same pixels analysed as one field (one tile) and in 256-px tiles with margins."""
    rgb = mosaic[0][200:1400, 200:1400]
    field = FieldImage(Path("synthetic-mosaic.tif"), rgb, PixelSize(UM, "given"))
    whole = analyze_source(field, replace(SETTINGS, tile_px=4096))
    tiled = analyze_source(field, replace(SETTINGS, tile_px=256))
    a, b = whole.result.overall, tiled.result.overall
    assert abs(a.stromal_cells - b.stromal_cells) <= 0.01 * a.stromal_cells
    assert abs(a.cd56_positive_cells - b.cd56_positive_cells) <= 2


def test_slide_white_point_is_the_glass_at_full_resolution(tmp_path: Path) -> None:
    """The reduced, JPEG-compressed level the overview comes from overshoots in colour near
    tissue (here by up to 26 levels in blue); the white point is the clear glass as scanned."""
    import tifffile

    glass = (241, 236, 229)
    canvas = np.empty((2000, 2000, 3), np.uint8)
    canvas[:] = glass
    for k in range(4):
        f = simulate_field(FieldSpec(width_px=600, height_px=600, seed=20 + k))
        oy, ox = 400 + 600 * (k // 2), 400 + 600 * (k % 2)
        canvas[oy : oy + 600, ox : ox + 600] = f.rgb
    p = tmp_path / "glass.tif"
    with tifffile.TiffWriter(p) as tw:
        for level, step in enumerate((1, 4)):
            tw.write(
                np.ascontiguousarray(canvas[::step, ::step]),
                photometric="rgb",
                tile=(256, 256),
                compression="jpeg",
                compressionargs={"level": 75},
                resolution=(1e4 / (UM * step), 1e4 / (UM * step)),
                resolutionunit="CENTIMETER",
                subfiletype=1 if level else 0,
                metadata=None,
            )
    src = open_image(p)
    try:
        assert isinstance(src, WholeSlide)
        white = analyze_source(src, SETTINGS).result.stains["white"]
    finally:
        src.close()
    # a uniform colour survives JPEG's YCbCr round trip within one level
    assert np.abs(np.asarray(white) - np.asarray(glass)).max() <= 1


def _write_pyramid_025(path: Path, rgb: np.ndarray, compression: str) -> None:
    """A SYNTHETIC slide at 0.25 µm/pixel with levels 1, 2 and 4 (the analysis grid, 0.5 µm,
    is level 1)."""
    import tifffile
    from PIL import Image

    with tifffile.TiffWriter(path) as tw:
        for level, step in enumerate((1, 2, 4)):
            img = rgb
            if step > 1:
                img = np.asarray(
                    Image.fromarray(rgb).resize(
                        (rgb.shape[1] // step, rgb.shape[0] // step), Image.Resampling.BOX
                    )
                )
            tw.write(
                img,
                photometric="rgb",
                tile=(256, 256),
                compression=compression,
                compressionargs={"level": 90} if compression == "jpeg" else None,
                resolution=(1e4 / (0.25 * step), 1e4 / (0.25 * step)),
                resolutionunit="CENTIMETER",
                subfiletype=1 if level else 0,
                description=SYNTHETIC_TAG if level == 0 else None,
                metadata=None,
            )


def test_cells_are_read_from_a_level_with_colour_at_the_analysis_resolution(
    tmp_path: Path,
) -> None:
    """A slide at 0.25 µm/pixel whose levels are JPEG 4:2:0 (one colour sample per 2×2
    pixels): its 2× level has pixels at the 0.5 µm analysis grid but colour at 1 µm, which
    blurs thin membranous DAB. Cells are read from level 0 instead, and count as the same
    pixels stored losslessly do; read from the 2× level, CD56+ cells are lost."""
    from dataclasses import replace as dc_replace

    f = simulate_field(FieldSpec(width_px=1400, height_px=1400, pixel_size_um=0.25, seed=41))
    lamp = np.array(FieldSpec().white)
    rng = np.random.default_rng(1)
    canvas = (lamp + rng.integers(-2, 3, (1800, 1800, 3))).clip(0, 255).astype(np.uint8)
    canvas[200:1600, 200:1600] = f.rgb
    settings = UterineSettings(n_fields=3, field_diameter_um=150.0, tile_px=512)
    counts = {}
    for name, compression in (("jpeg", "jpeg"), ("lossless", "zlib")):
        path = tmp_path / f"{name}.tif"
        _write_pyramid_025(path, canvas, compression)
        src = open_image(path, max_field_pixels=1_000_000)
        assert isinstance(src, WholeSlide)
        try:
            if name == "jpeg":
                assert src.chroma_factors[:3] == (2, 2, 2)
                assert src.best_level(2.0) == 0
                assert any("colour at half resolution" in n for n in src.notes)
                # the same slide read from its 2× level, as before
                blurred = analyze_source(dc_replace(src, chroma_factors=()), settings)
                counts["2x level"] = blurred.result.overall.cd56_positive_cells
            else:
                assert set(src.chroma_factors) == {1}
                assert src.best_level(2.0) == 1
            counts[name] = analyze_source(src, settings).result.overall.cd56_positive_cells
        finally:
            src.close()
    truth = sum(c.positive for c in f.cells)
    assert abs(counts["jpeg"] - counts["lossless"]) <= 0.05 * counts["lossless"]
    assert abs(counts["jpeg"] - truth) <= 0.10 * truth
    assert counts["2x level"] < 0.9 * counts["jpeg"]


def test_a_slide_with_fewer_fields_than_the_protocol_says_so_on_the_biopsy(
    tmp_path: Path, mosaic: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """Forty 250 µm fields cannot fit on 0.36 mm² of tissue: the slide's own check fails, and
    the biopsy result (the one printed and reported) repeats it; it was dropped, as the
    biopsy recounts fields only for field images."""
    from nkpanel.uterine.batch import pool_results

    rgb, _, _ = mosaic
    path = tmp_path / "slide.tif"
    _write_generic_pyramid(path, rgb)
    src = open_image(path, max_field_pixels=1_000_000)
    try:
        a = analyze_source(src, replace(SETTINGS, n_fields=40))
    finally:
        src.close()
    (own,) = [q for q in a.result.qc if q.check == "×400 fields"]
    assert not own.passed and own.value is not None and own.value < 40
    pooled = pool_results([a.result], "biopsy", protocol_fields=40)
    (again,) = [q for q in pooled.qc if q.check == "×400 fields"]
    assert not again.passed and again.reason.startswith("slide: only ")


def test_a_tiled_tiff_whose_header_claims_more_tiles_than_it_holds_is_refused(
    tmp_path: Path,
) -> None:
    """A 512² tiled TIFF whose header was rewritten to 200,000 × 150,000 pixels: reading it
    as a slide that size took more than 8 minutes and 12 GB before; now one line."""
    import tifffile

    from nkpanel.errors import InputError

    p = tmp_path / "hostile.tif"
    rgb = simulate_field(FieldSpec(width_px=512, height_px=512, seed=3)).rgb
    tifffile.imwrite(p, rgb, tile=(256, 256), photometric="rgb", metadata=None)
    with tifffile.TiffFile(p, mode="r+b") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(200000)
        tif.pages[0].tags["ImageLength"].overwrite(150000)
    with pytest.raises(InputError) as info:
        open_image(p, pixel_size_um=0.5)
    msg = str(info.value)
    assert msg.startswith(str(p)) and "corrupt TIFF header" in msg
    # 782 × 586 tiles of 256² are needed for 200,000 × 150,000 pixels; the file lists 4
    assert "need 458252 tiles" in msg and "lists 4" in msg


def test_the_overview_of_a_slide_without_a_pyramid_is_read_in_bounded_bands(
    tmp_path: Path, mosaic: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """A single-level slide is read at full resolution for its overview; each band read is at
    most OVERVIEW_BAND_PIXELS of the slide (a band of 2048 output rows of a 200,000-pixel-wide
    slide was 3 gigapixels)."""
    import tifffile

    from nkpanel.uterine import analyze as an

    rgb, _, _ = mosaic
    p = tmp_path / "flat.tif"
    tifffile.imwrite(p, rgb, tile=(256, 256), photometric="rgb", metadata=None)
    src = open_image(p, pixel_size_um=UM, max_field_pixels=1_000_000)
    assert isinstance(src, WholeSlide) and len(src.levels) == 1
    sizes: list[int] = []
    inner = src._read_level

    def spy(level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        sizes.append(w * h)
        return inner(level, x, y, w, h)

    budget = 200_000
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(an, "OVERVIEW_BAND_PIXELS", budget)
            flat = replace(src, _read_level=spy)
            ov = an._read_overview(flat, 4.0)
    finally:
        src.close()
    assert ov.shape == (400, 400, 3)
    assert len(sizes) > 1 and max(sizes) <= budget
    np.testing.assert_array_equal(ov, an._resize(rgb, 400, 400))


def test_a_truncated_slide_is_one_line_saying_so(
    tmp_path: Path, mosaic: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """A tiled slide cut short (a copy that stopped part-way): one line naming the file and
    'truncated', and nothing of tifffile's own log (which names no file) on the console."""
    import subprocess
    import sys

    rgb, _, _ = mosaic
    whole = tmp_path / "whole.tif"
    _write_generic_pyramid(whole, rgb)
    cut = tmp_path / "cut.tif"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    from nkpanel.errors import InputError

    with pytest.raises(InputError, match=r"truncated file: \d+ of \d+ tiles lie beyond its end"):
        open_image(cut, pixel_size_um=UM, max_field_pixels=1_000_000)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "nkpanel",
            "uterine",
            "analyze",
            str(cut),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode != 0
    assert f"{cut}: truncated file" in run.stderr
    assert "tifffile" not in run.stderr and "Traceback" not in run.stderr


def test_a_slide_on_which_no_field_fits_has_no_field_estimate(
    tmp_path: Path, mosaic: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """A 2 mm field cannot fit on 0.36 mm² of tissue: the slide's whole stroma is reported as
    the whole stroma, never as a field (it was pooled as 'a field image' and, beside another
    slide's ×400 fields, outweighed them in a 'Lash 2016' estimate)."""
    from nkpanel.uterine.batch import pool_results

    rgb, _, _ = mosaic
    path = tmp_path / "slide.tif"
    _write_generic_pyramid(path, rgb)
    src = open_image(path, max_field_pixels=1_000_000)
    try:
        none_fit = analyze_source(src, replace(SETTINGS, field_diameter_um=2000.0)).result
        three = analyze_source(src, SETTINGS).result
    finally:
        src.close()
    assert none_fit.fields == () and none_fit.per_100_ci.estimate is None
    assert none_fit.overall.kind == "whole-stroma"
    (q,) = [q for q in none_fit.qc if q.check == "×400 fields"]
    assert not q.passed and q.reason.startswith("only 0 random ×400 fields")
    assert len(three.fields) == 3
    pooled = pool_results([three, replace(none_fit, sample="other")], "biopsy")
    assert pooled.fields_label == "3 random ×400 fields (Lash 2016)"
    want = (
        100.0
        * sum(f.cd56_positive_cells for f in three.fields)
        / sum(f.stromal_cells for f in three.fields)
    )
    assert pooled.per_100_ci.estimate == pytest.approx(want)
    summary = pool_results([none_fit], "biopsy").summary()
    assert summary["across_fields_cd56_per_100_stromal_cells"]["estimate"] is None


def _write_ome_scenes(
    path: Path, images: list[tuple[str, np.ndarray]], sizes: dict[str, float] | None = None
) -> None:
    """An OME-TIFF of several images (series), each a two-level pyramid when large; pixel
    sizes UM unless ``sizes`` names another (a label's pixels are coarse)."""
    import tifffile

    with tifffile.TiffWriter(path, ome=True) as tw:
        for name, img in images:
            um = (sizes or {}).get(name, UM)
            meta = {"Name": name, "PhysicalSizeX": um, "PhysicalSizeY": um}
            if img.shape[0] >= 512:
                tw.write(img, tile=(256, 256), photometric="rgb", subifds=1, metadata=meta)
                tw.write(img[::4, ::4], tile=(256, 256), photometric="rgb", subfiletype=1)
            else:
                tw.write(img, photometric="rgb", metadata=meta)


def test_an_ome_file_with_its_label_first_is_read_as_its_slide(
    tmp_path: Path, mosaic: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """An OME export may put the label image first: the slide is the first image of tissue
    (it was refused as 'TIFF holds 2 images', with a Fiji stack recipe)."""
    rgb, xy, pos = mosaic
    label = np.full((120, 240, 3), 200, np.uint8)
    path = tmp_path / "labelled.ome.tif"
    # the label's own pixels are 20 µm: the slide's pixel size is its own image's, 0.5 µm
    _write_ome_scenes(path, [("label image", label), ("slide A", rgb)], {"label image": 20.0})
    src = open_image(path, max_field_pixels=1_000_000)
    assert isinstance(src, WholeSlide)
    assert src.pixel_size.um_per_px == pytest.approx(UM)
    assert (src.width, src.height) == (1600, 1600) and src.other_images == ()
    try:
        a = analyze_source(src, SETTINGS)
    finally:
        src.close()
    f1_all, _ = _score(a, xy, pos)
    assert f1_all >= 0.85
    assert not [q for q in a.result.qc if q.check == "other images in the file"]


def test_a_second_scene_of_an_ome_file_is_named_not_dropped_silently(
    tmp_path: Path, mosaic: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    rgb, _, _ = mosaic
    path = tmp_path / "two-scenes.ome.tif"
    # a second section a fifth the size of the first: not a preview (OME names its pictures)
    _write_ome_scenes(path, [("slide A", rgb), ("slide B", rgb[:700, :700].copy())])
    src = open_image(path, max_field_pixels=1_000_000)
    assert isinstance(src, WholeSlide) and src.other_images == ("slide B",)
    try:
        a = analyze_source(src, SETTINGS)
    finally:
        src.close()
    (q,) = [q for q in a.result.qc if q.check == "other images in the file"]
    assert not q.passed and not q.blocking and "slide B" in q.reason


def test_a_slide_of_uncompressed_240_pixel_tiles_is_read_whole(
    tmp_path: Path, mosaic: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """Aperio's 240×240 tiles stored uncompressed: OpenSlide (libtiff's RGBA reader) failed
    partway through ("Invalid tile byte count"), audit 8. Uncompressed tiles are read by
    tifffile, as stored, and count the same cells as LZW tiles of the same pixels."""
    rgb, xy, pos = mosaic
    counts = {}
    for compression in (None, "lzw"):
        path = tmp_path / f"slide_{compression}.tif"
        _write_generic_pyramid(path, rgb, tile=240, compression=compression)
        src = open_image(path, max_field_pixels=1_000_000)
        assert isinstance(src, WholeSlide)
        if compression is None:
            assert src.backend.startswith("tifffile")
        try:
            a = analyze_source(src, SETTINGS)
        finally:
            src.close()
        counts[compression] = (a.result.overall.cd56_positive_cells, a.result.overall.stromal_cells)
        assert _score(a, xy, pos)[1] >= 0.90
    assert counts[None] == counts["lzw"]


@pytest.mark.parametrize("control", [False, True])
def test_a_control_section_beside_the_biopsy_is_said(tmp_path: Path, control: bool) -> None:
    """Two biopsy fragments (8% CD56+) and, on the same slide, a positive control section
    (35%): counted as stroma when no region is drawn, a 22% control beside an 8% biopsy read
    14–16 per 100 and was within the fields' own spread (audit 10). The control is a piece of
    tissue of its own, far richer than the rest: said. Two fragments alike are not."""
    lamp = np.array(FieldSpec().white)
    rng = np.random.default_rng(1)
    canvas = (lamp + rng.integers(-2, 3, (700, 2200, 3))).clip(0, 255).astype(np.uint8)
    pieces = [(50, 50, 8.0, 31), (50, 800, 8.0, 32), (50, 1550, 35.0 if control else 8.0, 33)]
    for oy, ox, pct, seed in pieces:
        spec = FieldSpec(width_px=600, height_px=600, seed=seed, unk_percent_of_stromal=pct)
        canvas[oy : oy + 600, ox : ox + 600] = simulate_field(spec).rgb
    path = tmp_path / "slide.tif"
    _write_generic_pyramid(path, canvas, compression="lzw")
    src = open_image(path, max_field_pixels=100_000)
    assert isinstance(src, WholeSlide)
    try:
        a = analyze_source(src, SETTINGS)
    finally:
        src.close()
    (q,) = [q for q in a.result.qc if q.check == "tissue pieces"]
    assert q.passed is not control, q.reason
    if control:  # by construction: the control is 35/8 ≈ 4.4 times the fragments' rate
        assert q.value is not None and q.value > 3.0
