"""Image encodings a lab's camera or converter writes, read back to the RGB they were built from:
CMYK (TIFF and Adobe JPEG), 12-bit samples in 16-bit TIFFs, palette and planar TIFFs, ImageJ
calibration, non-square pixels and multi-page stacks. The truth of each test is the array the
file was made from (SYNTHETIC fields) and the arithmetic written in the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from nkpanel.errors import InputError
from nkpanel.uterine.images import FieldImage, cmyk_to_rgb, open_image
from nkpanel.uterine.simulate import FieldSpec, simulate_field

#: 0.5 µm per pixel as TIFF resolution tags (pixels per centimetre)
RES = {"resolution": (20000, 20000), "resolutionunit": "CENTIMETER"}


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return simulate_field(FieldSpec(width_px=240, height_px=200, seed=9)).rgb


def _ucr_cmyk(rgb: np.ndarray) -> np.ndarray:
    """CMYK with grey-component replacement, as a prepress tool writes it: K = min(C, M, Y)
    and each ink reduced by it, C' = (C − K) / (1 − K); fractions of full ink."""
    f = rgb.astype(np.float64) / 255
    c, m, y = 1 - f[..., 0], 1 - f[..., 1], 1 - f[..., 2]
    k = np.minimum(np.minimum(c, m), y)
    den = np.maximum(1 - k, 1e-9)
    cmyk = np.dstack([(c - k) / den, (m - k) / den, (y - k) / den, k])
    return np.asarray((cmyk * 255).round(), dtype=np.uint8)


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


# --------------------------------------------------------------------------------------------
# CMYK


def test_cmyk_formula_by_hand() -> None:
    # R = (255 − C)(255 − K)/255: no ink is white, full K is black, K = 128 is mid grey
    px = np.array([[[0, 0, 0, 0], [0, 0, 0, 255], [0, 0, 0, 128], [255, 0, 0, 0]]], np.uint8)
    assert cmyk_to_rgb(px).tolist() == [
        [[255, 255, 255], [0, 0, 0], [127, 127, 127], [0, 255, 255]]
    ]
    # C = 100, M = 50, Y = 0, K = 60: (155·195)/255 = 118.5…, (205·195)/255 = 156.8…, 195
    assert cmyk_to_rgb(np.array([[[100, 50, 0, 60]]], np.uint8)).tolist() == [[[119, 157, 195]]]


def test_cmyk_tiff_reads_as_the_rgb_it_was_made_from(tmp_path: Path, rgb: np.ndarray) -> None:
    p = tmp_path / "ucr.tif"
    tifffile.imwrite(p, _ucr_cmyk(rgb), photometric="separated", **RES)
    src = open_image(p)
    assert isinstance(src, FieldImage)
    # the UCR inks are inverted exactly by R = (1 − C')(1 − K); 8-bit inks add at most
    # half a level each, so the round trip is within 2 levels (K as alpha gave ~100 levels)
    d = _diff(src.rgb, rgb)
    assert d.max() <= 2 and d.mean() < 0.5
    assert any("CMYK" in n for n in src.notes)


def test_cmyk_tiff_that_is_not_cmyk_is_refused(tmp_path: Path, rgb: np.ndarray) -> None:
    p = tmp_path / "inks.tif"
    tifffile.imwrite(p, _ucr_cmyk(rgb), photometric="separated", extratags=[(332, 3, 1, 2, True)])
    with pytest.raises(InputError, match="not CMYK"):
        open_image(p, pixel_size_um=0.5)


def test_adobe_cmyk_jpeg_reads_as_its_rgb(tmp_path: Path, rgb: np.ndarray) -> None:
    """Pillow writes CMYK JPEGs with Adobe's inverted inks and undoes that on reading."""
    p = tmp_path / "ucr.jpg"
    Image.fromarray(_ucr_cmyk(rgb), mode="CMYK").save(p, quality=95, dpi=(50800, 50800))
    src = open_image(p)
    assert isinstance(src, FieldImage)
    # JPEG at quality 95 moves a pixel by a few levels, never by the tens an ink read as alpha
    # or an uninverted Adobe file gives
    d = _diff(src.rgb, rgb)
    assert d.mean() < 3.0
    assert np.percentile(d, 99) < 15


# --------------------------------------------------------------------------------------------
# 16-bit, palette and planar TIFFs


def test_12_bit_camera_data_in_16_bit_tiff(tmp_path: Path, rgb: np.ndarray) -> None:
    p = tmp_path / "cam12.tif"
    tifffile.imwrite(p, rgb.astype(np.uint16) * 16 + 8, photometric="rgb", **RES)
    src = open_image(p)
    assert isinstance(src, FieldImage)
    # largest sample 16·255 + 8 = 4088 → 12-bit, full scale 4095:
    # (16 r + 8) · 255 / 4095 = r · 0.9963 + 0.498, within one level of r
    assert _diff(src.rgb, rgb).max() <= 1
    assert any("0–4095" in n for n in src.notes)


def test_a_scale_bar_at_full_value_does_not_set_the_camera_depth(
    tmp_path: Path, rgb: np.ndarray
) -> None:
    """One hot pixel, or a scale bar burnt in at 65535, in 12-bit camera data made the whole
    image scale from 0–65535: it read almost black and was refused as fluorescence. The depth
    is set by all but 1% of the samples: the image reads as without them (bar aside)."""
    cam = rgb.astype(np.uint16) * 16 + 8
    cam[0, 0] = 65535  # a hot pixel
    h, w = cam.shape[:2]
    bar = (slice(h - 6, h - 2), slice(2, 2 + max(1, int(0.005 * h * w / 4))))  # ~0.5% of pixels
    cam[bar] = 65535
    p = tmp_path / "cam12_bar.tif"
    tifffile.imwrite(p, cam, photometric="rgb", **RES)
    src = open_image(p)
    assert isinstance(src, FieldImage)
    keep = np.ones((h, w), bool)
    keep[0, 0] = False
    keep[bar] = False
    assert _diff(src.rgb, rgb)[keep].max() <= 1  # as test_12_bit_camera_data_in_16_bit_tiff
    assert any("0–4095" in n for n in src.notes)


def test_8_bit_values_in_16_bit_tiff_and_full_16_bit(tmp_path: Path, rgb: np.ndarray) -> None:
    p8 = tmp_path / "u16_8bit.tif"
    tifffile.imwrite(p8, rgb.astype(np.uint16), photometric="rgb", **RES)
    p16 = tmp_path / "u16.tif"
    tifffile.imwrite(p16, rgb.astype(np.uint16) * 257, photometric="rgb", **RES)
    for p in (p8, p16):
        src = open_image(p)
        assert isinstance(src, FieldImage)
        np.testing.assert_array_equal(src.rgb, rgb)  # 255/255 and 257·r/257


def test_palette_tiff(tmp_path: Path, rgb: np.ndarray) -> None:
    pal = Image.fromarray(rgb).quantize(64)
    idx = np.asarray(pal)
    table = np.asarray(pal.getpalette()[: 3 * 64], np.uint16).reshape(64, 3)
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, :64] = table.T * 257  # TIFF colour maps are 16-bit
    p = tmp_path / "palette.tif"
    tifffile.imwrite(p, idx, photometric="palette", colormap=cmap, **RES)
    src = open_image(p)
    assert isinstance(src, FieldImage)
    np.testing.assert_array_equal(src.rgb, table.astype(np.uint8)[idx])


def test_planar_separate_field(tmp_path: Path, rgb: np.ndarray) -> None:
    p = tmp_path / "planar.tif"
    tifffile.imwrite(p, rgb.transpose(2, 0, 1), photometric="rgb", planarconfig="separate", **RES)
    src = open_image(p)
    assert isinstance(src, FieldImage)
    np.testing.assert_array_equal(src.rgb, rgb)


def test_planar_separate_tiled_pyramid(tmp_path: Path, rgb: np.ndarray) -> None:
    p = tmp_path / "planar.ome.tif"
    half = rgb[::2, ::2]
    md = {"axes": "SYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    kw = {"tile": (64, 64), "photometric": "rgb", "planarconfig": "separate"}
    with tifffile.TiffWriter(p, ome=True) as tw:
        tw.write(rgb.transpose(2, 0, 1), subifds=1, metadata=md, **kw)
        tw.write(np.ascontiguousarray(half.transpose(2, 0, 1)), subfiletype=1, **kw)
    src = open_image(p)
    try:
        assert src.kind == "slide"
        h, w = rgb.shape[:2]
        np.testing.assert_array_equal(src.read(0, 0, w, h, 1.0), rgb)
        # the reduced level, read where it is stored: a region at downsample 2
        np.testing.assert_array_equal(src.read(0, 0, 128, 128, 2.0), half[:64, :64])
    finally:
        src.close()


# --------------------------------------------------------------------------------------------
# pixel size


@pytest.mark.parametrize(
    ("unit", "pixels_per_unit"),
    [
        ("um", 4.0),
        ("micron", 4.0),
        ("\\u00B5m", 4.0),
        ("mm", 4000.0),
        ("cm", 40000.0),
        ("nm", 0.004),
        ("micrometer", 4.0),
        ("micrometre", 4.0),
        ("A", 0.0004),  # ångström: 0.25 µm = 2500 Å
        ("\\u00C5", 0.0004),  # as ImageJ escapes Å
    ],
)
def test_imagej_calibration(
    tmp_path: Path, rgb: np.ndarray, unit: str, pixels_per_unit: float
) -> None:
    # ImageJ's pixel width is 1 / XResolution in its unit: 0.25 µm in every case
    p = tmp_path / "ij.tif"
    tifffile.imwrite(
        p, rgb, imagej=True, resolution=(pixels_per_unit, pixels_per_unit), metadata={"unit": unit}
    )
    src = open_image(p)
    assert src.pixel_size.um_per_px == pytest.approx(0.25, rel=1e-6)
    assert src.pixel_size.source.startswith("ImageJ calibration")


def test_non_square_pixels_are_refused(tmp_path: Path, rgb: np.ndarray) -> None:
    # 40000 px/cm across (0.25 µm), 20000 down (0.5 µm): each pixel is 0.125 µm², not 0.0625
    tif = tmp_path / "aniso.tif"
    tifffile.imwrite(
        tif, rgb, photometric="rgb", resolution=(40000, 20000), resolutionunit="CENTIMETER"
    )
    ome = tmp_path / "aniso.ome.tif"
    md = {"axes": "YXS", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.5}
    tifffile.imwrite(ome, rgb, photometric="rgb", ome=True, metadata=md)
    png = tmp_path / "aniso.png"
    Image.fromarray(rgb).save(png, dpi=(101600, 50800))
    for p in (tif, ome, png):
        with pytest.raises(InputError, match=r"non-square pixels \(0.25 µm wide, 0.5 µm high"):
            open_image(p)
    # the user's value stands, and the file's disagreement is noted
    src = open_image(tif, pixel_size_um=0.25)
    assert src.pixel_size.um_per_px == 0.25
    assert any("0.5 µm high" in n for n in src.notes)


def test_nearly_square_pixels_are_accepted(tmp_path: Path, rgb: np.ndarray) -> None:
    p = tmp_path / "near.tif"
    # 0.25 µm × 0.2513 µm: 0.5% apart, within the 1% tolerance
    tifffile.imwrite(
        p, rgb, photometric="rgb", resolution=(40000, 39800), resolutionunit="CENTIMETER"
    )
    assert open_image(p).pixel_size.um_per_px == pytest.approx(0.25)


# --------------------------------------------------------------------------------------------
# several images in one TIFF


def test_multi_page_tiff_is_refused(tmp_path: Path, rgb: np.ndarray) -> None:
    stack = np.stack([rgb, rgb[::-1], rgb[:, ::-1]])
    plain = tmp_path / "stack.tif"
    tifffile.imwrite(plain, stack, photometric="rgb", **RES)
    ij = tmp_path / "stack_ij.tif"
    tifffile.imwrite(ij, stack, imagej=True, resolution=(2, 2), metadata={"unit": "um"})
    pages = tmp_path / "pages.tif"
    with tifffile.TiffWriter(pages) as tw:
        for im in stack[:2]:
            tw.write(im, photometric="rgb", **RES)
    for p, n in ((plain, 3), (ij, 3), (pages, 2)):
        with pytest.raises(InputError) as info:
            open_image(p)
        assert f"TIFF holds {n} images" in str(info.value)
        assert "\n" not in str(info.value)


def test_a_thumbnail_page_is_not_a_second_image(tmp_path: Path, rgb: np.ndarray) -> None:
    p = tmp_path / "with_thumb.tif"
    with tifffile.TiffWriter(p) as tw:
        tw.write(rgb, photometric="rgb", **RES)
        tw.write(np.ascontiguousarray(rgb[::4, ::4]), photometric="rgb", subfiletype=1)
    src = open_image(p)
    assert isinstance(src, FieldImage)
    np.testing.assert_array_equal(src.rgb, rgb)


def test_aperio_thumbnail_label_and_macro_are_not_more_images(
    tmp_path: Path, rgb: np.ndarray
) -> None:
    """An Aperio SVS: tiled baseline, then a thumbnail with NewSubfileType 0 (as Aperio
    writes it, not flagged reduced), a label and a macro; only the baseline is an image."""
    p = tmp_path / "small.svs"
    h, w = rgb.shape[:2]
    desc = f"Aperio Image Library v12.0.15 \r\n{w}x{h} [0,0 {w}x{h}] (256x256) RAW|MPP = 0.5"
    with tifffile.TiffWriter(p) as tw:
        tw.write(rgb, tile=(256, 256), photometric="rgb", description=desc, subfiletype=0)
        thumb = np.ascontiguousarray(rgb[::2, ::2])  # a quarter of the pixels: not "much smaller"
        tw.write(
            thumb,
            photometric="rgb",
            description=f"Aperio Image Library v12.0.15 \r\n{w}x{h} -> {w // 2}x{h // 2} - ",
        )
        label = np.full((60, 60, 3), 200, np.uint8)
        tw.write(label, photometric="rgb", subfiletype=1, description="Aperio label\r\nlabel")
        macro = np.full((60, 180, 3), 180, np.uint8)
        tw.write(macro, photometric="rgb", subfiletype=9, description="Aperio macro\r\nmacro")
    src = open_image(p)
    assert isinstance(src, FieldImage)
    assert src.pixel_size.um_per_px == 0.5
    np.testing.assert_array_equal(src.rgb, rgb)


@pytest.mark.parametrize("pages", [("macro",), ("label", "macro")])
def test_a_file_of_only_label_and_macro_pictures_is_refused(
    tmp_path: Path, rgb: np.ndarray, pages: tuple[str, ...]
) -> None:
    """A scanner's export holding only its pictures of the glass slide (Aperio label,
    NewSubfileType 1; macro, NewSubfileType 9) is not a field: it was analysed as one and
    pooled into the biopsy as a reportable 0 CD56+ of 479 cells."""
    p = tmp_path / "export.svs"
    with tifffile.TiffWriter(p) as tw:
        for kind in pages:
            tw.write(
                rgb,
                photometric="rgb",
                subfiletype=1 if kind == "label" else 9,
                description=f"Aperio Image Library v12.0.15\r\n{kind} 240x200",
            )
    with pytest.raises(InputError) as info:
        open_image(p, pixel_size_um=0.5)
    want = " and ".join(f"a {k} image" for k in pages)
    assert f"holds only {want}" in str(info.value)
    assert str(info.value).startswith(str(p))


@pytest.mark.parametrize("filename", ["uNK map 12", "CD56 label study", "S24-0012 overview"])
def test_an_svs_whose_file_name_holds_a_picture_word_is_a_slide(
    tmp_path: Path, rgb: np.ndarray, filename: str
) -> None:
    """Aperio writes the scan's file name into every page's description ("|Filename = …"); a
    word there is not the page's kind, which Aperio puts at the start of the second line."""
    v = "Aperio Image Library v12.0.15\r\n"
    tail = f"|AppMag = 20|MPP = 0.5|Filename = {filename}"
    p = tmp_path / "slide.svs"
    with tifffile.TiffWriter(p) as tw:
        tw.write(
            rgb, tile=(256, 256), photometric="rgb", description=v + "240x200 (256x256)" + tail
        )
        tw.write(rgb[::4, ::4].copy(), photometric="rgb", description=v + "240x200 -> 60x50" + tail)
        tw.write(rgb[:60, :60].copy(), photometric="rgb", subfiletype=1, description=v + "label")
        tw.write(rgb[:60, :120].copy(), photometric="rgb", subfiletype=9, description=v + "macro")
    src = open_image(p)
    assert isinstance(src, FieldImage)
    np.testing.assert_array_equal(src.rgb, rgb)


def test_an_ome_image_named_after_its_file_with_a_picture_word_is_an_image(
    tmp_path: Path, rgb: np.ndarray
) -> None:
    """bfconvert names an OME image after its source file ("S24-0012 CD56-map.svs"): the name
    alone does not make the main image a picture of the glass."""
    p = tmp_path / "slide.ome.tif"
    with tifffile.TiffWriter(p, ome=True) as tw:
        meta = {"Name": "S24-0012 CD56-map.svs", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
        tw.write(rgb, photometric="rgb", metadata=meta)
        tw.write(rgb[:40:4, :80:4].copy(), photometric="rgb", metadata={"Name": "macro image"})
    src = open_image(p)
    assert isinstance(src, FieldImage)
    np.testing.assert_array_equal(src.rgb, rgb)


def test_a_field_whose_description_mentions_a_map_is_a_field(
    tmp_path: Path, rgb: np.ndarray
) -> None:
    p = tmp_path / "field.tif"
    tifffile.imwrite(p, rgb, photometric="rgb", description="field 3, map of the biopsy", **RES)
    assert isinstance(open_image(p), FieldImage)


def test_ome_macro_and_label_images_are_not_more_images(tmp_path: Path, rgb: np.ndarray) -> None:
    p = tmp_path / "field.ome.tif"
    with tifffile.TiffWriter(p, ome=True) as tw:
        meta = {"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
        tw.write(rgb, photometric="rgb", metadata={**meta, "Name": "field"})
        for name in ("macro image", "label image"):
            tw.write(rgb[::-1], photometric="rgb", metadata={**meta, "Name": name})
    src = open_image(p)
    assert isinstance(src, FieldImage)
    np.testing.assert_array_equal(src.rgb, rgb)
    # the same file with the second image named as a field is two images
    q = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(q, ome=True) as tw:
        meta = {"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
        tw.write(rgb, photometric="rgb", metadata={**meta, "Name": "field 1"})
        tw.write(rgb[::-1], photometric="rgb", metadata={**meta, "Name": "field 2"})
    with pytest.raises(InputError, match="TIFF holds 2 images"):
        open_image(q)


def _tiled_12_bit_slide(path: Path, side: int, **kw: object) -> None:
    """A single-level tiled 16-bit RGB TIFF of 12-bit camera data, written tile by tile (never
    whole in memory): glass 3900 everywhere, tissue (2500, 1800, 3000) in the middle ninth."""
    t = 256
    n = -(-side // t)
    glass = np.full((t, t, 3), 3900, np.uint16)
    tissue = np.empty((t, t, 3), np.uint16)
    tissue[:] = (2500, 1800, 3000)

    def tiles() -> object:
        for ty in range(n):
            for tx in range(n):
                middle = n // 3 <= ty < 2 * n // 3 and n // 3 <= tx < 2 * n // 3
                yield tissue if middle else glass

    tifffile.imwrite(
        path,
        tiles(),
        shape=(side, side, 3),
        dtype=np.uint16,
        tile=(t, t),
        photometric="rgb",
        compression="zlib",
        **RES,
        **kw,
    )


def test_large_single_level_16_bit_slide_opens_in_bounded_memory(tmp_path: Path) -> None:
    """Finding the bit depth of a one-level 16-bit slide decodes a bounded sample of tiles,
    not the whole slide (3072² × 3 × 2 bytes = 54 MB here; 81 MP would be 490 MB)."""
    import tracemalloc

    p = tmp_path / "big16.tif"
    side = 3072
    _tiled_12_bit_slide(p, side)
    tracemalloc.start()
    try:
        src = open_image(p, max_field_pixels=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        assert peak < side * side * 3 * 2 / 2  # well under the decoded image
        assert any("0–4095" in n for n in src.notes)
        # 12-bit full scale 4095: 3900·255/4095 = 242.86 → 243; 2500 → 155.7 → 156,
        # 1800 → 112.1 → 112, 3000 → 186.8 → 187
        assert src.read(0, 0, 8, 8, 1.0)[0, 0].tolist() == [243, 243, 243]
        assert src.read(side // 2, side // 2, 8, 8, 1.0)[0, 0].tolist() == [156, 112, 187]
    finally:
        src.close()


def test_a_slide_stating_its_full_scale_is_not_sampled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MaxSampleValue (tag 281) states the camera's full scale: no tile is decoded to find it,
    and the slide scales from 0–4095 as stated."""
    from nkpanel.uterine import images

    p = tmp_path / "stated16.tif"
    _tiled_12_bit_slide(p, 1024, extratags=[(281, "H", 3, (4095, 4095, 4095), True)])

    def no_sampling(*_: object) -> None:
        raise AssertionError("tiles were sampled for a full scale the file states")

    monkeypatch.setattr(images, "_largest_sample", no_sampling)
    src = open_image(p, max_field_pixels=100_000)
    try:
        assert any("0–4095 (MaxSampleValue)" in n for n in src.notes)
        assert src.read(0, 0, 4, 4, 1.0)[0, 0].tolist() == [243, 243, 243]
    finally:
        src.close()


def test_tiled_16_bit_tiff_openslide_accepts_is_read_at_full_depth(tmp_path: Path) -> None:
    """OpenSlide's generic-tiff reader keeps only the high byte of 16-bit samples (12-bit
    glass 3900 → 15: a dark, "fluorescence" image); such files are read by tifffile."""
    import openslide

    p = tmp_path / "tiled16.tif"
    _tiled_12_bit_slide(p, 1024)
    assert openslide.OpenSlide.detect_format(str(p)) == "generic-tiff"
    src = open_image(p, max_field_pixels=100_000)
    try:
        assert not isinstance(src, FieldImage)
        assert src.read(0, 0, 4, 4, 1.0)[0, 0].tolist() == [243, 243, 243]
    finally:
        src.close()


def test_corrupt_tiff_headers_give_one_line_errors(tmp_path: Path) -> None:
    """Bytes of a tiled pyramid's and an Aperio-like file's image file directories changed at
    random (300 files, seeded): each opens or is refused with an InputError naming the file;
    none escapes as another exception (a review found 24 of 500 that did: tile sizes of 0,
    tuples where one number belongs, unknown photometric codes)."""
    import random

    img = np.full((1024, 1024, 3), 225, np.uint8)
    img[150:900, 150:900] = (150, 110, 160)
    sources = []
    pyr = tmp_path / "pyr.tif"
    with tifffile.TiffWriter(pyr, ome=True) as tw:
        tw.write(img, tile=(256, 256), photometric="rgb", subifds=1, compression="jpeg")
        tw.write(img[::2, ::2], tile=(256, 256), photometric="rgb", subfiletype=1)
    svs = tmp_path / "svs.tif"
    with tifffile.TiffWriter(svs, bigtiff=True) as tw:
        v = "Aperio Image Library v12\r\n"
        tw.write(img, tile=(256, 256), photometric="rgb", description=v + "1024x1024|MPP = 0.25")
        tw.write(img[::16, ::16], photometric="rgb", subfiletype=1, description=v + "label 64x64")
    for p in (pyr, svs):
        with tifffile.TiffFile(p) as tif:
            sources.append((p.read_bytes(), [page.offset for page in tif.pages]))
    rng = random.Random(7)
    escaped = []
    for trial in range(300):
        data, offsets = sources[trial % 2]
        b = bytearray(data)
        base = rng.choice(offsets)
        for _ in range(rng.randint(1, 4)):
            i = base + rng.randint(0, 300)
            if i < len(b):
                b[i] = rng.randrange(256)
        p = tmp_path / f"fuzz{trial}.tif"
        p.write_bytes(bytes(b))
        try:
            open_image(p, pixel_size_um=0.25, max_field_pixels=500_000).close()
        except InputError as exc:
            assert str(exc).startswith(str(p))
        except Exception as exc:  # the test is that nothing else escapes
            escaped.append(f"{type(exc).__name__}: {exc}")
        p.unlink()
    assert escaped == []


def _png16(path: Path, rgb16: np.ndarray) -> None:
    """A 16-bit RGB PNG written by hand (Pillow writes no 16-bit colour): IHDR, one IDAT of
    unfiltered big-endian rows, IEND (PNG 1.2 specification)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    h, w = rgb16.shape[:2]
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_a_16_bit_png_of_12_bit_data_is_refused_with_the_way_out(
    tmp_path: Path, rgb: np.ndarray
) -> None:
    """Pillow reads the high byte of 16-bit PNG colour: 12-bit camera data (0–4095) read
    almost black and were refused as fluorescence, with no word of why. The refusal now says
    the file is a 16-bit PNG and to save it as TIFF; full-range 16-bit PNGs read as before."""
    p = tmp_path / "cam12.png"
    _png16(p, rgb.astype(np.uint16) * 16 + 8)
    with pytest.raises(InputError, match=r"16-bit PNG, read at 8 bits.*save it as TIFF"):
        open_image(p, pixel_size_um=0.5)
    full = tmp_path / "full16.png"
    _png16(full, rgb.astype(np.uint16) * 257)
    src = open_image(full, pixel_size_um=0.5)
    assert isinstance(src, FieldImage)
    np.testing.assert_array_equal(src.rgb, rgb)


def test_a_label_at_full_value_over_more_than_1_percent_says_why_the_field_reads_dark(
    tmp_path: Path, rgb: np.ndarray
) -> None:
    """Over 1% of a 12-bit field at 65535 (a label burnt in) sets the scale to 0–65535: the
    field then reads almost black and is refused, as grayscale or fluorescence; the refusal
    said nothing of the label (closing note 7; audit 8). It now says why, and what to do."""
    from nkpanel.errors import InputError

    cam = rgb.astype(np.uint16) * 16 + 8
    h = cam.shape[0]
    cam[: max(1, h // 20)] = 65535  # a band over 5% of the field
    p = tmp_path / "cam12_label.tif"
    tifffile.imwrite(p, cam, photometric="rgb", **RES)
    with pytest.raises(InputError) as caught:
        open_image(p)
    message = str(caught.value)
    assert "scaled from 0–65535 because 5.0% of them are at 65535" in message
    assert "crop that area out, or save the field at its camera's depth" in message
