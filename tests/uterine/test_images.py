"""Reading images: pixel size from each kind of metadata, and every kind of bad input giving one
line that names the file and the cause."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nkpanel.errors import InputError
from nkpanel.uterine.analyze import analyze_image
from nkpanel.uterine.images import FieldImage, open_image
from nkpanel.uterine.simulate import FieldSpec, simulate_field, write_field


@pytest.fixture(scope="module")
def small_field() -> np.ndarray:
    return simulate_field(FieldSpec(width_px=240, height_px=200, seed=9)).rgb


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _bomb_png(path: Path, side: int = 100_000) -> None:
    """A 150-byte PNG whose header claims side × side RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def test_pixel_size_from_tiff_png_and_jpeg(tmp_path: Path, small_field: np.ndarray) -> None:
    f = simulate_field(FieldSpec(width_px=120, height_px=100, seed=1, pixel_size_um=0.4))
    tif = write_field(f, tmp_path / "a.tif")[0]
    png = write_field(f, tmp_path / "a.png", fmt="png")[0]
    src = open_image(tif)
    assert src.pixel_size.source == "TIFF resolution tags"
    assert src.pixel_size.um_per_px == pytest.approx(0.4, rel=1e-6)
    src = open_image(png)
    assert src.pixel_size.source == "PNG pHYs"
    assert src.pixel_size.um_per_px == pytest.approx(0.4, rel=1e-3)
    jpg = tmp_path / "a.jpg"
    Image.fromarray(small_field).save(jpg, quality=95, dpi=(25400 / 0.5, 25400 / 0.5))
    src = open_image(jpg)
    assert src.pixel_size.um_per_px == pytest.approx(0.5, rel=1e-2)
    assert isinstance(src, FieldImage)
    np.testing.assert_array_equal(open_image(tif).read(0, 0, 120, 100, 1.0), f.rgb)


def test_given_pixel_size_overrides_and_notes_disagreement(tmp_path: Path) -> None:
    f = simulate_field(FieldSpec(width_px=120, height_px=100, seed=1, pixel_size_um=0.4))
    tif = write_field(f, tmp_path / "a.tif")[0]
    src = open_image(tif, pixel_size_um=0.25)
    assert src.pixel_size.source == "given"
    assert any("0.4" in n for n in src.notes)


def test_a_given_pixel_size_the_file_contradicts_is_a_warning_on_the_result(
    tmp_path: Path,
) -> None:
    """A lab's --pixel-size 0.3 on a field whose TIFF says 0.25 µm: the given value is used, as
    asked, but every area is then 1.44× the truth (CD56+ per mm² 0.69 of it), so the result
    carries a failed (warning) check naming both values; an agreeing value carries none."""
    f = simulate_field(FieldSpec(width_px=600, height_px=600, seed=2, pixel_size_um=0.25))
    tif = write_field(f, tmp_path / "a.tif")[0]
    a = analyze_image(tif, pixel_size_um=0.3)
    (q,) = [q for q in a.result.qc if q.check == "pixel size agrees with the file"]
    assert not q.passed and not q.blocking
    assert "given as 0.3 µm" in q.reason and "0.25" in q.reason
    assert "areas ×1.44, CD56+ per mm² ×0.69" in q.reason
    (size,) = [q for q in a.result.qc if q.check == "nucleus size"]
    assert size.passed  # 45 µm² nuclei read 65 µm²: inside their range
    b = analyze_image(tif, pixel_size_um=0.26)
    assert not [q for q in b.result.qc if q.check == "pixel size agrees with the file"]


@pytest.mark.parametrize("given", [0.5, 0.125])
def test_a_given_pixel_size_the_nuclei_also_contradict_is_not_reported(
    tmp_path: Path, given: float
) -> None:
    """Given ×2 or ×½ the file's 0.25 µm (a calibration for another objective), the nuclei
    also measure outside their range (×4 or ×¼ their area), on the side the file's value would
    correct: two independent signs of one mistake, so the count is withheld, saying both. (At
    ×2 it was reported, its per-100 halved: audit 17.)"""
    f = simulate_field(FieldSpec(width_px=600, height_px=600, seed=2, pixel_size_um=0.25))
    tif = write_field(f, tmp_path / "a.tif")[0]
    a = analyze_image(tif, pixel_size_um=given)
    (q,) = [q for q in a.result.qc if q.check == "pixel size agrees with the file"]
    assert not q.passed and q.blocking and not a.result.reportable
    assert f"given as {given:g} µm" in q.reason and "the nuclei measure" in q.reason
    # the way to mend it named for the command line and for a case manifest alike
    assert "--pixel-size (in a case manifest: pixel_size_um)" in q.reason


def test_screen_resolution_is_not_a_microscope_scale(
    tmp_path: Path, small_field: np.ndarray
) -> None:
    p = tmp_path / "screen.png"
    Image.fromarray(small_field).save(p, dpi=(72, 72))
    with pytest.raises(InputError, match="unknown pixel size"):
        open_image(p)
    assert open_image(p, pixel_size_um=0.5).pixel_size.um_per_px == 0.5


def _make_bad(kind: str, d: Path, rgb: np.ndarray) -> Path:
    if kind == "text":
        p = d / "notes.png"
        p.write_text("not an image at all\n")
    elif kind == "truncated":
        good = d / "good.png"
        Image.fromarray(rgb).save(good, dpi=(50800, 50800))
        p = d / "truncated.png"
        p.write_bytes(good.read_bytes()[:300])
    elif kind == "bomb":
        p = d / "bomb.png"
        _bomb_png(p)
    elif kind == "grayscale":
        p = d / "gray.png"
        Image.fromarray(rgb[..., 1]).save(p, dpi=(50800, 50800))
    elif kind == "gray-as-rgb":
        p = d / "gray_rgb.tif"
        g = rgb[..., 1:2].repeat(3, axis=2)
        Image.fromarray(g).save(p, dpi=(50800, 50800))
    elif kind == "fluorescence":
        p = d / "fluo.tif"
        f = np.zeros_like(rgb)
        f[..., 2] = (255 - rgb[..., 0]) // 2  # blue DAPI-like nuclei on black
        f[::7, ::5, 1] = 180
        Image.fromarray(f).save(p, dpi=(50800, 50800))
    elif kind == "no-tissue":
        p = d / "blank.tif"
        glass = np.empty_like(rgb)
        glass[:] = (241, 236, 229)  # clear glass, slightly warm, with camera noise
        noise = np.random.default_rng(0).integers(-2, 3, rgb.shape)
        Image.fromarray((glass + noise).astype(np.uint8)).save(p, dpi=(50800, 50800))
    elif kind == "no-pixel-size":
        p = d / "nosize.png"
        Image.fromarray(rgb).save(p)
    elif kind == "missing":
        p = d / "missing.tif"
    elif kind == "empty":
        p = d / "empty.tif"
        p.write_bytes(b"")
    else:  # pragma: no cover
        raise AssertionError(kind)
    return p


BAD = {
    "text": "not an image nkpanel reads",
    "truncated": "not a readable PNG",
    "bomb": "decompression-bomb guard",
    "grayscale": "grayscale",
    "gray-as-rgb": "grayscale",
    "fluorescence": "fluorescence",
    "no-tissue": "no tissue found",
    "no-pixel-size": "unknown pixel size",
    "missing": "file not found",
    "empty": "empty file (0 bytes)",
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_is_one_line_naming_file_and_cause(
    kind: str, tmp_path: Path, small_field: np.ndarray
) -> None:
    p = _make_bad(kind, tmp_path, small_field)
    with pytest.raises(InputError) as info:
        analyze_image(p)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(str(p))
    assert BAD[kind] in msg


def test_bad_inputs_do_not_stop_a_batch(tmp_path: Path, small_field: np.ndarray) -> None:
    from nkpanel.uterine.batch import analyze_batch

    good = write_field(
        simulate_field(FieldSpec(width_px=400, height_px=400, seed=2)), tmp_path / "good.tif"
    )[0]
    bad = [_make_bad(k, tmp_path, small_field) for k in ("text", "bomb", "fluorescence")]
    batch = analyze_batch([bad[0], good, *bad[1:]], tmp_path / "out", detections=False)
    assert [r.sample for r in batch.results] == ["good"]
    assert [Path(f.source).name for f in batch.failures] == [p.name for p in bad]
    assert all("\n" not in f.reason for f in batch.failures)
    assert (tmp_path / "out" / "images" / "good" / "summary.json").is_file()


def test_truncated_file_is_refused_even_if_pillow_is_told_to_load_it(
    tmp_path: Path, small_field: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WeasyPrint sets Pillow's global LOAD_TRUNCATED_IMAGES on import; nkpanel still refuses."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    p = _make_bad("truncated", tmp_path, small_field)
    with pytest.raises(InputError, match="not a readable PNG"):
        open_image(p)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_an_image_smaller_than_the_smallest_tissue_piece_says_so(tmp_path: Path) -> None:
    """A 64 × 64 crop at 0.25 µm/px (256 µm²) of pure stroma: tissue pieces under 5,000 µm²
    are dust to the tissue detection, so the cause is the size, not a lack of stain."""
    f = simulate_field(FieldSpec(width_px=64, height_px=64, seed=5, pixel_size_um=0.25))
    tif = write_field(f, tmp_path / "crop.tif")[0]
    with pytest.raises(InputError, match=r"image too small: 256 µm² in all"):
        analyze_image(tif)


def _jpeg_with_exif(path: Path, rgb: np.ndarray, jfif_dpi: float, per_cm: float) -> None:
    """A JPEG with a JFIF density of ``jfif_dpi`` and an EXIF resolution of ``per_cm``
    pixels per centimetre (ResolutionUnit 3)."""
    exif = Image.Exif()
    exif[282], exif[283], exif[296] = per_cm, per_cm, 3
    Image.fromarray(rgb).save(path, quality=95, dpi=(jfif_dpi, jfif_dpi), exif=exif.tobytes())


@pytest.mark.parametrize(
    ("jfif_dpi", "why"),
    [
        (72.0, "a screen's 72 dpi beside the camera's EXIF scale: refused as no scale"),
        # 0.25 µm is 101,600 dpi; the 16-bit field holds 101,600 − 65,536 = 36,064 (0.704 µm)
        (101_600.0 - 65_536.0, "a wrapped JFIF density: read as 0.704 µm, per mm² −61%"),
    ],
)
def test_a_jpegs_exif_resolution_wins_over_its_jfif_density(
    tmp_path: Path, small_field: np.ndarray, jfif_dpi: float, why: str
) -> None:
    jpg = tmp_path / "f.jpg"
    _jpeg_with_exif(jpg, small_field, jfif_dpi, per_cm=40_000.0)  # 0.25 µm/pixel
    src = open_image(jpg)
    assert src.pixel_size.source == "EXIF resolution", why
    assert src.pixel_size.um_per_px == pytest.approx(0.25, rel=1e-6)
    if jfif_dpi > 1000:  # a plausible but different JFIF scale is said
        assert any("the EXIF value is used" in n for n in src.notes)


@pytest.mark.parametrize(("unit", "per_unit"), [(4, 4_000.0), (5, 4.0)])  # mm, µm
def test_tiff_resolution_in_millimetres_or_microns(
    tmp_path: Path, small_field: np.ndarray, unit: int, per_unit: float
) -> None:
    """tifffile writes ResolutionUnit 4 (mm) and 5 (µm) beyond TIFF 6's inch and cm; they
    were refused as "no microscope resolution" (audit 8). 4,000 px/mm = 4 px/µm = 0.25 µm."""
    import tifffile

    tif = tmp_path / "f.tif"
    tifffile.imwrite(tif, small_field, resolution=(per_unit, per_unit), resolutionunit=unit)
    src = open_image(tif)
    assert src.pixel_size.um_per_px == pytest.approx(0.25, rel=1e-6)


@pytest.mark.parametrize("fmt", ["png", "tif"])
def test_an_alpha_channel_left_at_zero_is_ignored(
    tmp_path: Path, small_field: np.ndarray, fmt: str
) -> None:
    """An exporter that leaves alpha unset (0 in every pixel): composited on white, the field
    was refused as a grayscale image (audit 8). The colour is read as stored."""
    import tifffile

    rgba = np.dstack([small_field, np.zeros(small_field.shape[:2], np.uint8)])
    path = tmp_path / f"f.{fmt}"
    if fmt == "png":
        Image.fromarray(rgba, "RGBA").save(path, dpi=(50_800, 50_800))
    else:
        tifffile.imwrite(path, rgba, photometric="rgb", extrasamples=["unassalpha"])
    src = open_image(path, pixel_size_um=0.5)
    h, w = small_field.shape[:2]
    np.testing.assert_array_equal(src.read(0, 0, w, h, 1.0), small_field)
