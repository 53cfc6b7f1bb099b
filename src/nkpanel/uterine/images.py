"""Opening brightfield field images and whole-slide images, with their pixel size.

Two kinds of input, one reading interface (:class:`ImageSource.read`: a region of level-0
pixels returned at a chosen downsample), so the analysis is always tile by tile:

* **Field images** (TIFF, PNG, JPEG up to :data:`MAX_FIELD_PIXELS`): decoded whole, once, after
  their header dimensions passed the decompression-bomb guard. A field image is one field; a
  TIFF holding several images (an ImageJ stack, several pages) is refused, since focus planes
  of one field and several fields cannot be told apart (one field per file). Thumbnail, label,
  macro and overview images a file carries beside the image are not images of their own.
* **Whole-slide images** (Aperio SVS, Hamamatsu NDPI, generic tiled TIFF, and every other format
  OpenSlide reads, through openslide-python with the openslide-bin library; OME and other tiled
  TIFF pyramids OpenSlide does not open, and tiled TIFFs of more than 8 bits per sample, whose
  high byte alone OpenSlide would read, are read tile by tile with tifffile). Only the tiles a
  region needs are decoded.

Colour encodings: RGB (8- or 16-bit, interleaved or planar), RGBA (composited on white),
palette, YCbCr, and CMYK (TIFF ``SEPARATED`` or JPEG, Adobe-inverted as Pillow reads it),
converted by :func:`cmyk_to_rgb` without colour management (noted). 16-bit samples are scaled
from their real range: ``MaxSampleValue``, else the camera depth (8, 10, 12, 14 bits) the
brightest samples fit (all but 1%: a hot pixel or a scale bar burnt in at full value does
not decide it; on a slide, over a bounded sample of its pixels).

Pixel size, in order: the value given by the user (``--pixel-size``); OpenSlide's
``openslide.mpp-x/y``; the Aperio ``MPP =`` entry; OME ``PhysicalSizeX/Y``; an ImageJ/Fiji
calibration (``unit=`` micron, µm, nm, mm, cm… with X/YResolution in pixels per unit); TIFF
resolution tags in centimetres or inches; PNG ``pHYs``; JPEG/JFIF density. A value outside
:data:`PLAUSIBLE_UM_PER_PX` (e.g. the 72 or 96 dpi a screen-capture tool writes) is not a
microscope scale and counts as unknown. An unknown pixel size is an error: counts per mm² and
every size limit in microns depend on it. So are non-square pixels (width and height apart by
more than :data:`SQUARE_TOLERANCE`): areas would be off by their ratio.

Bad input raises :class:`~nkpanel.errors.InputError` naming the file and the cause in one line:
not an image, too large to decode safely, grayscale or fluorescence, several images in one
TIFF, unknown pixel size or non-square pixels.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from nkpanel.errors import InputError, option_or_key, tracebacks_shown

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_FIELD_PIXELS",
    "PLAUSIBLE_UM_PER_PX",
    "SQUARE_TOLERANCE",
    "FieldImage",
    "ImageSource",
    "PixelSize",
    "WholeSlide",
    "check_brightfield",
    "cmyk_to_rgb",
    "open_image",
]

U8 = NDArray[np.uint8]

#: what a folder given as input is searched for: field images and whole-slide formats
IMAGE_SUFFIXES = (
    ".tif",
    ".tiff",
    ".png",
    ".jpg",
    ".jpeg",
    ".svs",
    ".ndpi",
    ".scn",
    ".mrxs",
    ".bif",
    ".vms",
)

#: largest image decoded whole (50 megapixels, 150 MB as RGB): larger non-tiled images are
#: refused as a decompression-bomb risk; a ×400 field at 0.25 µm/px is about 5 megapixels
MAX_FIELD_PIXELS = 50_000_000
#: a pixel size outside this range (µm per pixel) is not from a microscope
PLAUSIBLE_UM_PER_PX = (0.05, 10.0)
#: pixels whose width and height differ by more than this fraction are not square: their areas
#: (per mm² of stroma) and every size limit in microns would be off by the ratio
SQUARE_TOLERANCE = 0.01


@dataclass(frozen=True)
class PixelSize:
    """Microns per pixel at level 0, and where the value came from.

    ``um_per_px_y`` is the pixel height when the metadata gave one (None: square, or not said);
    the analysis needs square pixels (:func:`open_image` refuses others).
    """

    um_per_px: float
    source: str
    um_per_px_y: float | None = None
    #: when the size was given and the file's metadata says otherwise (by more than 5%): what
    #: the metadata says, in one line
    disagreement: str | None = None
    #: ... and the file's (square) pixel size itself
    file_um_per_px: float | None = None

    @property
    def is_square(self) -> bool:
        """Width and height agree within :data:`SQUARE_TOLERANCE`."""
        y = self.um_per_px_y
        return y is None or abs(y - self.um_per_px) <= SQUARE_TOLERANCE * self.um_per_px


class ImageSource(Protocol):
    """What the analysis reads from: a field or a whole slide."""

    path: Path
    pixel_size: PixelSize
    kind: Literal["field", "slide"]
    notes: tuple[str, ...]

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    def read(self, x: int, y: int, w: int, h: int, downsample: float) -> U8:
        """Level-0 region (x, y, w, h) as RGB uint8 at ``downsample`` (≥ 1)."""
        ...

    def close(self) -> None: ...


def _resize(rgb: U8, out_w: int, out_h: int) -> U8:
    if rgb.shape[1] == out_w and rgb.shape[0] == out_h:
        return rgb
    from PIL import Image

    im = Image.fromarray(rgb)
    k = rgb.shape[1] // out_w
    if k > 1 and rgb.shape[1] == k * out_w and rgb.shape[0] == k * out_h:
        # a whole-number factor: the mean of each k×k block (Pillow's reduce, which rounds the
        # exact mean; BOX resampling differs from it by at most one grey level), at a third of
        # the cost
        return np.asarray(im.reduce(k), dtype=np.uint8)
    return np.asarray(im.resize((out_w, out_h), Image.Resampling.BOX), dtype=np.uint8)


@dataclass
class FieldImage:
    """A field image held in memory as RGB uint8."""

    path: Path
    rgb: U8
    pixel_size: PixelSize
    notes: tuple[str, ...] = ()
    kind: Literal["field", "slide"] = "field"
    #: pixels (across or down) sharing one colour sample: 2 for a JPEG 4:2:0 or 4:2:2
    chroma_factor: int = 1

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    def read(self, x: int, y: int, w: int, h: int, downsample: float) -> U8:
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self.width), min(y + h, self.height)
        if x1 > x0 and y1 > y0:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = self.rgb[y0:y1, x0:x1]
        ow, oh = max(1, round(w / downsample)), max(1, round(h / downsample))
        return _resize(out, ow, oh)

    def close(self) -> None:
        return None


class _LevelReader(Protocol):
    def __call__(self, level: int, x: int, y: int, w: int, h: int) -> U8: ...


@dataclass
class WholeSlide:
    """A pyramidal whole-slide image read region by region.

    ``levels`` holds (width, height, downsample) per pyramid level; ``read`` picks the finest
    level no finer than needed and resamples the rest of the way (box filter).
    """

    path: Path
    width: int
    height: int
    pixel_size: PixelSize
    levels: tuple[tuple[int, int, float], ...]
    backend: str
    _read_level: Callable[[int, int, int, int, int], U8]
    _close: Callable[[], None]
    notes: tuple[str, ...] = ()
    kind: Literal["field", "slide"] = "slide"
    properties: dict[str, str] = field(default_factory=dict)
    #: per level, how many pixels share one colour sample (2 for JPEG 4:2:0 or 4:2:2 tiles,
    #: :func:`_jpeg_chroma_factor`; 1 when unknown or full colour)
    chroma_factors: tuple[int, ...] = ()
    #: names of other images of tissue the file holds (scenes of an OME export), not analysed
    other_images: tuple[str, ...] = ()

    def best_level(self, downsample: float) -> int:
        """The coarsest level whose colour is no coarser than ``downsample``: its pixels, and
        its colour samples, at most ``downsample`` level-0 pixels apart.

        The colour matters: a thin ring of membranous DAB is a colour, and a level stored as
        JPEG 4:2:0 keeps one colour sample per 2×2 pixels, so read at its own resolution it
        blurs the ring into its surroundings (CD56+ cells were undercounted by about 30% on a
        slide whose 2× level was JPEG 4:2:0). A finer level, resampled, keeps it.
        """
        best = 0
        for i, (_, _, ds) in enumerate(self.levels):
            if ds * self.chroma_factor(i) <= downsample * 1.0001:
                best = i
        return best

    def chroma_factor(self, level: int) -> int:
        """Pixels per colour sample along each axis at ``level`` (2 for JPEG 4:2:0; 1 when
        the colour is full, or not known)."""
        return self.chroma_factors[level] if level < len(self.chroma_factors) else 1

    def read(self, x: int, y: int, w: int, h: int, downsample: float) -> U8:
        level = self.best_level(downsample)
        ds = self.levels[level][2]
        lw = max(1, math.ceil(w / ds))
        lh = max(1, math.ceil(h / ds))
        rgb = self._read_level(level, x, y, lw, lh)
        return _resize(rgb, max(1, round(w / downsample)), max(1, round(h / downsample)))

    def close(self) -> None:
        self._close()


# ---------------------------------------------------------------------------------------------
# pixel size from metadata


def _plausible(
    um: float | None, source: str, notes: list[str], um_y: float | None = None
) -> PixelSize | None:
    """A metadata pixel size (width, and height when given) if it is a microscope scale."""
    if um is None or not math.isfinite(um) or um <= 0:
        return None
    lo, hi = PLAUSIBLE_UM_PER_PX
    if um_y is not None and not (math.isfinite(um_y) and lo <= um_y <= hi):
        # e.g. an OME PhysicalSizeY whose unit was left out (µm by default) beside an X in mm
        notes.append(f"{source}: height {um_y:.4g} µm/pixel is not a microscope scale (ignored)")
        um_y = None
    if lo <= um <= hi:
        return PixelSize(um, source, um_y)
    notes.append(f"{source} says {um:.4g} µm/pixel, which is not a microscope scale (ignored)")
    return None


def _from_resolution(value: float | None, unit: str | int | None) -> float | None:
    """µm per pixel from a resolution in pixels per unit (TIFF 2 = inch, 3 = cm; 4 = mm and
    5 = µm, as tifffile writes them beyond the TIFF 6 units)."""
    if not value or value <= 0:
        return None
    u = str(unit).lower() if unit is not None else ""
    if u in ("3", "centimeter", "cm", "resunit.centimeter"):
        return 1e4 / value
    if u in ("4", "millimeter", "mm", "resunit.millimeter"):
        return 1e3 / value
    if u in ("5", "micrometer", "um", "µm", "resunit.micrometer"):
        return 1.0 / value
    if u in ("2", "inch", "resunit.inch"):
        return 25400.0 / value
    return None


_APERIO_MPP = re.compile(r"MPP\s*=\s*([0-9.eE+-]+)")
_OME_UNITS = {"µm": 1.0, "um": 1.0, "\u03bcm": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}
#: ImageJ/Fiji calibration units (``unit=`` in the ImageDescription) in microns; ImageJ writes
#: µ escaped as ``\u00B5`` in the description
_IMAGEJ_UNITS = {
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometers": 1.0,
    "micrometre": 1.0,
    "micrometres": 1.0,
    "um": 1.0,
    "µm": 1.0,
    "\u03bcm": 1.0,
    "\\u00b5m": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "nanometre": 1e-3,
    # ångström (ImageJ's unit "A" or "Å", the latter escaped as \u00C5 in the description)
    "a": 1e-4,
    "å": 1e-4,
    "\\u00c5": 1e-4,
    "angstrom": 1e-4,
    "mm": 1e3,
    "millimeter": 1e3,
    "millimetre": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "centimetre": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "metre": 1e6,
    "inch": 25400.0,
    "in": 25400.0,
}


def _ome_size(ome: str, axis: str, image: int = 0) -> float | None:
    """``PhysicalSize{axis}`` of OME image number ``image`` (its ``<Pixels>`` element, in
    document order, as tifffile orders its series) in µm; None when absent or in an unknown
    unit. The first image's when there are fewer."""
    pixels = re.findall(r"<(?:\w+:)?Pixels\b[^>]*>", ome)
    tag = pixels[image] if image < len(pixels) else (pixels[0] if pixels else ome)
    m = re.search(rf'PhysicalSize{axis}="([0-9.eE+-]+)"', tag)
    if not m:
        return None
    mu = re.search(rf'PhysicalSize{axis}Unit="([^"]+)"', tag)
    scale = _OME_UNITS.get(mu.group(1) if mu else "µm")
    return float(m.group(1)) * scale if scale is not None else None


def _rational(tag: Any) -> float:
    if tag is None:
        return 0.0
    num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
    return float(num) / float(den) if den else 0.0


def _tiff_pixel_size(
    tif: Any, notes: list[str], page: Any = None, main: int = 0
) -> PixelSize | None:
    """Pixel size from, in order: Aperio ``MPP =``, OME ``PhysicalSizeX/Y``, an ImageJ/Fiji
    calibration (``unit=`` with X/YResolution in pixels per that unit, as ImageJ reads it),
    TIFF X/YResolution in centimetres or inches; of ``page`` (the image analysed; default the
    first page)."""
    page = tif.pages.first if page is None else page
    desc = str(getattr(page, "description", "") or "")
    m = _APERIO_MPP.search(desc)
    if m:
        ps = _plausible(float(m.group(1)), "Aperio MPP", notes)
        if ps:
            return ps
    ome = tif.ome_metadata if getattr(tif, "is_ome", False) else None
    if ome:
        ps = _plausible(
            _ome_size(ome, "X", main), "OME PhysicalSizeX/Y", notes, _ome_size(ome, "Y", main)
        )
        if ps:
            return ps
    tags = page.tags
    xres, yres = tags.get("XResolution"), tags.get("YResolution")
    ij = tif.imagej_metadata if getattr(tif, "is_imagej", False) else None
    if ij and xres is not None:
        unit = str(ij.get("unit", "")).strip()
        scale = _IMAGEJ_UNITS.get(unit.lower())
        x, y = _rational(xres), _rational(yres)
        if scale is not None and x > 0:
            # ImageJ's pixel width is 1 / XResolution in its calibration unit
            return _plausible(
                scale / x, f"ImageJ calibration (unit={unit})", notes, scale / y if y else None
            )
    unit_tag = tags.get("ResolutionUnit")
    if xres is not None:
        unit_code = int(unit_tag.value) if unit_tag is not None else 2
        um = _from_resolution(_rational(xres), unit_code)
        um_y = _from_resolution(_rational(yres), unit_code) if yres is not None else None
        return _plausible(um, "TIFF resolution tags", notes, um_y)
    return None


def _exif_resolution(im: Any) -> tuple[float, float, int] | None:
    """EXIF XResolution, YResolution and ResolutionUnit (tags 282, 283, 296) of a Pillow
    image, or None. Rationals of 32 bits each: a camera's pixels per cm or inch at ×400 fit,
    where JFIF's 16-bit density does not."""
    try:
        exif = im.getexif()
    except Exception:  # a malformed EXIF block leaves the other metadata to use
        return None
    try:
        x, y = float(exif.get(282, 0) or 0), float(exif.get(283, 0) or 0)
        unit = int(exif.get(296, 2) or 2)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return (x, y or x, unit) if x > 0 else None


def _pil_pixel_size(
    info: dict[str, Any],
    fmt: str,
    notes: list[str],
    exif: tuple[float, float, int] | None = None,
) -> PixelSize | None:
    """The pixel size a JPEG's or PNG's metadata give: EXIF resolution first (32-bit
    rationals), else the JFIF density or PNG pHYs (Pillow's ``dpi``). A JPEG's JFIF density
    is 16 bits: 0.25 µm/pixel is 101,600 dpi, stored as 36,064 (0.70 µm) by writers that
    truncate, so where both are given and disagree the EXIF value is used, and said."""
    dpi = info.get("dpi")
    own: PixelSize | None = None
    quiet: list[str] = []  # the density's own notes, said only when it is what is used
    source = "PNG pHYs" if fmt == "PNG" else f"{fmt} density"
    if dpi:
        try:
            x = float(dpi[0])
            y = float(dpi[1]) if len(dpi) > 1 else x
        except (TypeError, ValueError, IndexError):
            x = y = 0.0
        if x > 0:
            own = _plausible(25400.0 / x, source, quiet, 25400.0 / y if y > 0 else None)
            if exif is None:
                notes += quiet
    if exif is not None:
        ex, ey, unit = exif
        um = _from_resolution(ex, unit)
        um_y = _from_resolution(ey, unit)
        exif_notes: list[str] = []
        found = _plausible(um, "EXIF resolution", exif_notes, um_y)
        if found is None:  # the JFIF or PNG value (if any) is used: its notes, and EXIF's
            notes += exif_notes + quiet
            return own
        notes += exif_notes
        if own is not None and abs(own.um_per_px / found.um_per_px - 1) > 0.01:
            notes.append(
                f"{source} says {own.um_per_px:.4g} µm/pixel, EXIF {found.um_per_px:.4g}: "
                "the EXIF value is used (JFIF's 16-bit density cannot hold a ×400 scale "
                "in dots per inch)"
            )
        return found
    return own


# ---------------------------------------------------------------------------------------------
# checks


def check_brightfield(rgb: U8, source: Path | str) -> None:
    """Refuse grayscale and fluorescence images (brightfield RGB is needed).

    Grayscale: in 99.9% of pixels the three channels differ by at most 4 levels. Fluorescence:
    a dark background (median brightness below 80 of 255), where brightfield has bright glass or
    pale stroma (median well above 150 in every DAB/haematoxylin field we know of).
    """
    px = rgb.reshape(-1, 3)
    # 50,000 evenly spaced pixels estimate both fractions to well within a percentage point
    if px.shape[0] > 50_000:
        px = px[:: px.shape[0] // 50_000]
    p = px.astype(np.int16)
    spread = np.maximum(np.abs(p[:, 0] - p[:, 1]), np.abs(p[:, 1] - p[:, 2]))
    if np.mean(spread <= 4) >= 0.999:
        raise InputError(
            source,
            "grayscale image (R, G and B equal): a brightfield RGB image with DAB and "
            "haematoxylin is needed",
        )
    # Rec. 601 luma in whole levels; its median from a 256-bin count, no sort
    q = p.astype(np.int32)
    lum = (299 * q[:, 0] + 587 * q[:, 1] + 114 * q[:, 2] + 500) // 1000
    cdf = np.cumsum(np.bincount(lum, minlength=256))
    med = float(np.searchsorted(cdf, (cdf[-1] + 1) // 2))
    if med < 80:
        raise InputError(
            source,
            f"dark background (median brightness {med:.0f} of 255): looks like a fluorescence "
            "image; a brightfield RGB image with DAB and haematoxylin is needed",
        )


#: bit depths a camera's samples have inside a 16-bit container (10-, 12- and 14-bit sensors)
_CAMERA_BITS = (8, 10, 12, 14)


def _full_scale(largest: int, declared_bits: int = 16) -> int:
    """Full-scale value of integer samples: ``2**b − 1`` for the smallest camera bit depth ``b``
    (8, 10, 12, 14) holding ``largest`` (the brightest samples, :func:`_brightest`), else
    for the declared depth.

    A 12-bit camera's image stored in a 16-bit TIFF (values 0–4095) would look almost black if
    scaled from 0–65535 and be refused as fluorescence. The brightest pixels of a brightfield
    image are glass or pale stroma near the sensor's full scale, so the largest value tells the
    depth; optical density is measured against the image's own white point
    (:func:`nkpanel.uterine.stains.estimate_white`), so the choice of scale does not change it.
    """
    for b in _CAMERA_BITS:
        if b < declared_bits and largest <= (1 << b) - 1:
            return (1 << b) - 1
    return (1 << declared_bits) - 1


#: the share of 16-bit samples allowed above the value that sets the camera depth: hot pixels,
#: or a scale bar and its label burnt in at full value (a 100 µm bar 5 µm thick and its
#: label are about 0.5% of a 500 µm field), stay under 1%; glass, or the palest stroma near the
#: sensor's full scale, covers more of a brightfield image than that
BRIGHT_OUTLIERS = 0.01


def _brightest(a: NDArray[Any]) -> int:
    """The value all but :data:`BRIGHT_OUTLIERS` of the integer samples ``a`` lie at or
    below (a 16-bit histogram: one pass, no sort)."""
    return _brightest_in(_histogram16(a))


def _histogram16(a: NDArray[Any]) -> NDArray[np.int64]:
    """Counts of each 16-bit value in ``a``, in blocks (``bincount`` widens what it counts
    to 64 bits: a 50-megapixel field whole would take 1.2 GB)."""
    flat = np.asarray(a, dtype=np.uint16).ravel()
    counts = np.zeros(1 << 16, dtype=np.int64)
    for start in range(0, flat.size, 1 << 22):
        counts += np.bincount(flat[start : start + (1 << 22)], minlength=1 << 16)
    return counts


def _brightest_in(counts: NDArray[np.int64]) -> int:
    """:func:`_brightest` from a histogram of the samples."""
    total = int(counts.sum())
    if total == 0:
        return 0
    above = np.cumsum(counts[::-1])[::-1]  # samples at or above each value
    return int(np.flatnonzero(above > BRIGHT_OUTLIERS * total)[-1])


def _as_u8(a: NDArray[Any], source: Path, full_scale: int | None = None) -> U8:
    """uint8 samples: 16-bit scaled from ``full_scale`` (see :func:`_full_scale`; from the
    data when None), float in 0–1 scaled by 255."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        full = full_scale if full_scale is not None else _full_scale(_brightest(a))
        scaled = np.minimum(a.astype(np.float32) * (255.0 / full), 255.0)
        return np.asarray(scaled.round(), dtype=np.uint8)
    if np.issubdtype(a.dtype, np.floating) and float(np.nanmax(a)) <= 1.0:
        return np.asarray(np.clip(np.nan_to_num(a) * 255.0, 0, 255).round(), dtype=np.uint8)
    raise InputError(source, f"unsupported sample type {a.dtype} for an RGB image")


def _on_white(rgb: U8, alpha: U8) -> U8:
    """Composite on white, only where the image is not opaque. An alpha of 0 in every pixel
    is an exporter's unset channel, not a picture transparent throughout (composited, it read
    as a white "grayscale image"): it is ignored."""
    rgb = np.ascontiguousarray(rgb)
    if not alpha.any():
        return rgb
    clear = alpha < 255
    if clear.any():
        al = alpha[clear].astype(np.uint32)[:, None]
        mixed = (rgb[clear].astype(np.uint32) * al + 255 * (255 - al) + 127) // 255
        rgb[clear] = mixed.astype(np.uint8)
    return rgb


def _to_rgb8(arr: NDArray[Any], source: Path, mode: str, full_scale: int | None = None) -> U8:
    """RGB uint8 from a decoded array; alpha is composited on white (an alpha of 0 in every
    pixel is ignored); 16-bit scaled down."""
    a = np.asarray(arr)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 2)):
        raise InputError(
            source,
            f"grayscale image ({mode}): a brightfield RGB image with DAB and haematoxylin "
            "is needed",
        )
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InputError(
            source, f"unexpected image shape {a.shape}: an RGB image (height×width×3) is needed"
        )
    a = _as_u8(a, source, full_scale)
    if a.shape[2] == 4:
        return _on_white(a[..., :3], a[..., 3])
    return np.ascontiguousarray(a[..., :3])


def cmyk_to_rgb(cmyk: U8) -> U8:
    """RGB from CMYK samples (uint8, last axis C, M, Y, K; 0 = no ink).

    ``R = (255 − C)(255 − K) / 255`` (and G from M, B from Y), rounded: the conversion Pillow
    makes (``Image.convert("RGB")``, ``cmyk2rgb`` in its ``Convert.c``), without colour
    management; it inverts the usual grey-component replacement (``K = min(C, M, Y)``,
    ``C' = (C − K) / (1 − K)``) exactly.

    Examples
    --------
    >>> cmyk_to_rgb(np.array([[[0, 255, 255, 0], [0, 0, 0, 128]]], np.uint8)).tolist()
    [[[255, 0, 0], [127, 127, 127]]]
    """
    c = np.asarray(cmyk, dtype=np.uint32)
    nk = 255 - c[..., 3:4]
    return np.asarray(((255 - c[..., :3]) * nk + 127) // 255, dtype=np.uint8)


_CMYK_NOTE = (
    "CMYK image converted to RGB without colour management (R = (255−C)(255−K)/255): check the "
    "stain colours on the overlay"
)


def _tiff_rgb8(a: NDArray[Any], page: Any, source: Path, full_scale: int | None) -> U8:
    """RGB uint8 from a decoded TIFF page or tile (height × width × samples, or 2-D), read by
    its photometric interpretation: RGB/YCbCr, CMYK (SEPARATED), palette; grayscale refused."""
    photometric = page.photometric.name
    mode = f"{photometric}, {page.samplesperpixel} sample(s)"
    if photometric == "PALETTE":
        cmap = np.asarray(page.colormap)
        if cmap.ndim != 2 or cmap.shape[0] != 3 or a.ndim != 2:
            raise InputError(source, f"palette TIFF without a usable colour map ({mode})")
        # TIFF colour maps are 16-bit (0–65535); some writers store 8-bit values in them
        cmap8 = _as_u8(cmap.astype(np.uint16), source, 255 if cmap.max() <= 255 else 65535)
        idx = np.minimum(a, cmap8.shape[1] - 1)
        return np.ascontiguousarray(cmap8.T[idx])
    if photometric == "SEPARATED":
        inkset = page.tags.get("InkSet")
        if (inkset is not None and int(inkset.value) != 1) or a.ndim != 3 or a.shape[2] < 4:
            raise InputError(
                source,
                f"colour-separated TIFF that is not CMYK ({mode}): an RGB image is needed",
            )
        a8 = _as_u8(a, source, full_scale)
        rgb = cmyk_to_rgb(a8[..., :4])
        return _on_white(rgb, a8[..., 4]) if a8.shape[2] > 4 else rgb
    if photometric not in ("RGB", "YCBCR") and (a.ndim == 2 or a.shape[2] < 3):
        raise InputError(
            source,
            f"grayscale image ({mode}): a brightfield RGB image with DAB and haematoxylin "
            "is needed",
        )
    return _to_rgb8(a, source, mode, full_scale)


def _stated_max(page: Any) -> int | None:
    """The page's MaxSampleValue (the largest over samples) when it states a full scale below
    65535, else None."""
    tag = page.tags.get("MaxSampleValue")
    stated = tag.value if tag is not None else None
    if isinstance(stated, tuple):
        stated = max(stated)
    return int(stated) if stated is not None and 0 < int(stated) < 65535 else None


def _full_scale_hint(arr: NDArray[Any], full: int | None) -> str | None:
    """Why a 16-bit field scaled from 0–65535 may read dark, when most of its samples lie far
    below that (a camera's 10–14 bits) and more than 1% sit at the top (a label or a
    saturated area, burnt in at full value): else None."""
    if full != 65535 or arr.dtype != np.uint16 or not arr.size:
        return None
    flat = arr.ravel()[:: max(1, arr.size // 200_000)]
    typical = int(np.percentile(flat, 95))
    top = float(np.mean(flat >= 65535))
    # a camera of 14 bits or fewer keeps 95% of its samples under 16,383
    if typical > (1 << 14) - 1 or top <= BRIGHT_OUTLIERS:
        return None
    return (
        f"its 16-bit samples were scaled from 0–65535 because {top:.1%} of them are at 65535 "
        f"(a label or a saturated area?) while 95% lie at or below {typical}: crop that area "
        "out, or save the field at its camera's depth"
    )


def _declared_full_scale(
    page: Any, brightest: Callable[[], int | None]
) -> tuple[int | None, str | None]:
    """Full scale of a 16-bit TIFF's samples (None for 8-bit) and a note when it is not
    65535: MaxSampleValue when the file states it, else the camera depth the brightest samples
    (``brightest()``, asked only then: :func:`_brightest`, or None when not known) fit
    (:func:`_full_scale`)."""
    bits = int(page.bitspersample)
    if bits != 16 or page.photometric.name == "PALETTE":
        return None, None
    stated = _stated_max(page)
    if stated is not None:
        full = stated
        why = "MaxSampleValue"
    else:
        largest = brightest()
        if largest is None:
            return 65535, None
        full = _full_scale(largest, bits)
        why = f"all but 1% of samples at or below {largest}"
    if full == 65535:
        return full, None
    return full, f"16-bit samples hold 0–{full} ({why}): scaled to 8 bits from that range"


# ---------------------------------------------------------------------------------------------
# opening


def _sniff(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except IsADirectoryError:
        return "directory"
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror or exc})") from None
    if not head:
        raise InputError(path, "empty file (0 bytes): copied or saved in part?")
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    return "other"


def _resolve_pixel_size(
    path: Path, given: float | None, found: PixelSize | None, notes: list[str]
) -> PixelSize:
    if given is not None:
        if not (given > 0 and math.isfinite(given)):
            raise InputError(path, f"pixel size {given} µm is not a positive number")
        said: str | None = None
        on_file: float | None = None
        if found is not None and not found.is_square:
            said = (
                f"pixel size given as {given:g} µm; the file's {found.source} says pixels are "
                f"{found.um_per_px:.4g} µm wide and {found.um_per_px_y:.4g} µm high (the given "
                "value is used for both)"
            )
        elif found is not None and abs(found.um_per_px - given) / given > 0.05:
            on_file = found.um_per_px
            said = (
                f"pixel size given as {given:g} µm; the file's {found.source} says "
                f"{found.um_per_px:.4g} µm (the given value is used: areas ×"
                f"{(given / found.um_per_px) ** 2:.2f}, CD56+ per mm² ×"
                f"{(found.um_per_px / given) ** 2:.2f})"
            )
        if said is not None:
            notes.append(said)
        return PixelSize(float(given), "given", disagreement=said, file_um_per_px=on_file)
    if found is None:
        raise InputError(
            path,
            "unknown pixel size: the file holds no microscope resolution in its metadata; "
            f"give it with {option_or_key('--pixel-size MICRONS', 'pixel_size_um')}",
        )
    if not found.is_square:
        raise InputError(
            path,
            f"non-square pixels ({found.um_per_px:.4g} µm wide, {found.um_per_px_y:.4g} µm high, "
            f"from {found.source}): areas per mm² need square pixels; resample the image to "
            "square pixels (e.g. Fiji Image › Scale), or give "
            f"{option_or_key('--pixel-size', 'pixel_size_um')} if the metadata is wrong",
        )
    return PixelSize(found.um_per_px, found.source)


def _open_pil(path: Path, fmt: str, given: float | None, max_pixels: int) -> FieldImage:
    from PIL import Image, ImageFile

    notes: list[str] = []
    # a truncated file is an error here, whatever another library (WeasyPrint sets it on
    # import) has done to Pillow's global LOAD_TRUNCATED_IMAGES
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise InputError(
                        path,
                        f"image of {w}×{h} pixels is larger than the {max_pixels / 1e6:g} "
                        "megapixels nkpanel decodes whole (decompression-bomb guard); save a "
                        "whole slide as a tiled pyramidal TIFF",
                    )
                mode = im.mode
                info = {str(k): v for k, v in im.info.items()}
                exif_resolution = _exif_resolution(im)
                chroma = 2 if fmt == "jpeg" and _chroma_halved(im) else 1
                im.load()
                if mode in ("P", "PA"):
                    arr = np.asarray(im.convert("RGBA"))
                elif mode in ("CMYK", "YCbCr"):
                    # Pillow undoes the Adobe inversion of CMYK JPEGs as it decodes them and
                    # converts as cmyk_to_rgb does; the 4th channel is ink (K), not alpha
                    arr = np.asarray(im.convert("RGB"))
                    if mode == "CMYK":
                        notes.append(_CMYK_NOTE)
                else:
                    arr = np.asarray(im)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(
            path, f"image too large to decode safely (decompression-bomb guard: {exc})"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(path, f"not a readable {fmt.upper()} image ({exc})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    rgb = _to_rgb8(arr, path, mode)
    try:
        check_brightfield(rgb, path)
    except InputError as exc:
        if fmt == "png" and _png_bit_depth(path) == 16:
            # Pillow keeps the high byte of 16-bit colour samples: data of fewer bits (a
            # 12-bit camera's, 0–4095) read almost black
            raise InputError(
                path,
                f"{exc.cause}; it is a 16-bit PNG, read at 8 bits from its high byte: if its "
                "values use fewer bits (a 10-, 12- or 14-bit camera), save it as TIFF, which "
                "nkpanel reads at full depth",
            ) from None
        raise
    found = _pil_pixel_size(info, fmt.upper(), notes, exif_resolution)
    ps = _resolve_pixel_size(path, given, found, notes)
    return FieldImage(path, rgb, ps, tuple(notes), chroma_factor=chroma)


def _png_bit_depth(path: Path) -> int | None:
    """The bit depth in a PNG's IHDR chunk (bytes 24 of the file), None if unreadable."""
    try:
        with path.open("rb") as fh:
            head = fh.read(26)
    except OSError:
        return None
    return head[24] if len(head) == 26 and head[12:16] == b"IHDR" else None


def _chroma_halved(im: Any) -> bool:
    """Whether a JPEG stores its colour at half resolution (Pillow's sampling code 1 or 2)."""
    from PIL import JpegImagePlugin

    try:
        return int(JpegImagePlugin.get_sampling(im)) in (1, 2)
    except (AttributeError, TypeError, ValueError):
        return False


#: names of images a slide file carries beside the slide (tifffile's series names: Aperio SVS,
#: NDPI, Philips, Ventana BIF, QPTIFF…; OME ``Image Name`` as Bio-Formats and scanners write it,
#: e.g. "macro image", "label image")
_ASSOCIATED = re.compile(r"\b(thumbnail|label|macro|map|overview|preview|barcode)\b", re.I)


#: JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman or
#: arithmetic coding): ITU-T T.81 Table B.1
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)


def _jpeg_chroma_factor(stream: bytes) -> int:
    """How many pixels (across or down) share one colour sample in a JPEG stream: 2 for
    4:2:0 or 4:2:2, 1 for 4:4:4, grayscale, or a stream whose frame header is not found.

    Read from the frame header (ITU-T T.81 §B.2.2): each component's horizontal and vertical
    sampling factors; the first component's over the others' is the subsampling.
    """
    i, n = 2, len(stream)  # after SOI
    while i + 4 <= n:
        if stream[i] != 0xFF:
            return 1
        marker = stream[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(stream[i + 2 : i + 4], "big")
        if marker in _JPEG_SOF:
            body = stream[i + 4 : i + 2 + length]
            if len(body) < 6 or body[5] < 3 or len(body) < 6 + 3 * body[5]:
                return 1
            hv = [(body[7 + 3 * k] >> 4, body[7 + 3 * k] & 15) for k in range(body[5])]
            (h0, v0), rest = hv[0], hv[1:]
            ratios = [max(h0 // max(h, 1), v0 // max(v, 1)) for h, v in rest]
            return max(1, min(ratios))
        if marker == 0xDA:  # start of scan: no frame header before it
            return 1
        i += 2 + length
    return 1


def _tiff_chroma_factor(page: Any, fh: Any) -> int:
    """The chroma factor of a TIFF page: from YCbCr subsampling tags when the TIFF stores
    YCbCr samples, else from the first tile's (or strip's) JPEG frame header; 1 otherwise."""
    try:
        if int(page.compression) not in (6, 7):  # old-style and new-style JPEG
            if page.photometric.name == "YCBCR":
                sub = page.tags.get("YCbCrSubSampling")
                return max(sub.value) if sub is not None else 2  # TIFF 6.0 default (2, 2)
            return 1
        k = next((i for i, c in enumerate(page.databytecounts) if c), None)
        if k is None:
            return 1
        fh.seek(page.dataoffsets[k])
        head = fh.read(min(int(page.databytecounts[k]), 4096))
        # the frame header is in the tile's own stream: JPEGTables hold only DQT/DHT (TIFF
        # Technical Note 2), so a stream that does not start one says nothing of its colour
        return _jpeg_chroma_factor(head) if head[:2] == b"\xff\xd8" else 1
    except Exception:  # an unreadable page is found (and reported) when it is read
        return 1


def _level_chroma(series: Any, fh: Any) -> tuple[int, ...]:
    """Per pyramid level of a TIFF series, its chroma factor (:func:`_tiff_chroma_factor`)."""
    return tuple(_tiff_chroma_factor(level.keyframe, fh) for level in series.levels)


def _match_levels(chroma: tuple[int, ...], n_levels: int) -> tuple[int, ...]:
    """Chroma factors for a reader that sees ``n_levels`` levels: tifffile's, when it counts
    as many; else level 0's alone (the same image to both readers), the others 1 (unknown)."""
    if len(chroma) == n_levels:
        return chroma
    return ((chroma[0],) if chroma else (1,)) + (1,) * (n_levels - 1)


#: an Aperio thumbnail's second description line: the slide's size, an arrow, its own size
_APERIO_RESAMPLED = re.compile(r"\d+x\d+ -> \d+x\d+\b")


def _picture_kind(series: Any) -> str | None:
    """The kind of picture of the glass slide a TIFF series says it is ("label", "macro",
    "thumbnail"…), or None: from tifffile's series name (it names an SVS's, NDPI's, OME's
    pictures), or from an Aperio page's description, whose line after the first starts with
    the kind ("label 387x463", "macro 1280x431") or, for the thumbnail, the slide's size
    resampled ("46920x33014 -> 1024x732"); a word elsewhere in the description (a file name
    such as "uNK map 12") says nothing."""
    found = _ASSOCIATED.search(str(series.name or ""))
    if found is None:
        desc = str(getattr(series.keyframe, "description", "") or "")
        if desc.startswith("Aperio"):
            second = desc.splitlines()[1:2]
            if second and _APERIO_RESAMPLED.match(second[0].strip()):
                return "thumbnail"  # "46920x33014 -> 1024x732 - …": a resampled copy
            for line in desc.splitlines()[1:]:
                found = _ASSOCIATED.match(line.strip())
                if found is not None:
                    break
    return found.group(1).lower() if found else None


def _associated(series: Any, main: Any) -> bool:
    """Whether a TIFF series other than the first is a picture of the slide rather than an
    image of its own: a reduced-resolution page (NewSubfileType bit 0), a series that says it
    is one (:func:`_picture_kind`), or a single page with less than a quarter of the first
    image's pixels (a preview; two fields from one camera have the same size)."""
    page = series.keyframe
    if page.is_reduced or _picture_kind(series) is not None:
        return True
    # a small single-page image beside a camera's field is its preview; in an OME file a
    # smaller image may be a second tissue section (OME names its pictures: label, macro…)
    if getattr(series, "kind", "") == "ome" or len(series.levels) > 1:
        return False
    own = int(page.imagewidth) * int(page.imagelength)
    first = int(main.keyframe.imagewidth) * int(main.keyframe.imagelength)
    return len(series.pages) == 1 and 4 * own < first


def _tiles_missing(tif: Any) -> str | None:
    """Why a tiled TIFF's header cannot be right, or None: a tiled page must list one tile
    (per colour plane) for every tile its width and height need (TIFF 6.0, Section 15). A
    header claiming far more pixels than the file holds would otherwise have nkpanel read a
    slide of that size, mostly blank, for hours."""
    for series in list(tif.series)[:1]:
        for level in series.levels:
            page = level.keyframe
            if not page.is_tiled:
                continue
            tw, th = int(page.tilewidth), int(page.tilelength)
            if tw <= 0 or th <= 0:
                return f"corrupt TIFF header: tiles of {tw}×{th} pixels"
            across = -(-int(page.imagewidth) // tw)
            down = -(-int(page.imagelength) // th)
            planes = int(page.samplesperpixel) if int(page.planarconfig) == 2 else 1
            need = across * down * planes
            have = len(page.dataoffsets)
            if have < need:
                return (
                    f"corrupt TIFF header: {page.imagewidth}×{page.imagelength} pixels need "
                    f"{need} tiles of {page.tilewidth}×{page.tilelength}, but the file lists "
                    f"{have}"
                )
            ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)]
            size = int(tif.filehandle.size)
            if ends and max(ends) > size:
                beyond = sum(e > size for e in ends)
                return (
                    f"truncated file: {beyond} of {have} tiles lie beyond its end "
                    f"({size} bytes; copied or downloaded in part?)"
                )
    return None


def _pictures_only(tif: Any) -> str | None:
    """What a TIFF holds when every image in it is a picture of the glass slide (a label,
    macro or thumbnail, as a scanner writes beside the scan; Aperio marks its label and macro
    pages NewSubfileType 1 and 9), e.g. "a label image and a macro image"; None when it holds
    an image of the tissue. The first image counts as a picture only when its page is marked
    reduced-resolution: a name alone (an OME image named after its file, "CD56-map.svs")
    does not make it one."""
    every = list(tif.series)
    if not every:
        return None
    kinds = []
    for i, series in enumerate(every):
        reduced = bool(series.keyframe.is_reduced)
        kind = _picture_kind(series)
        if not reduced and (i == 0 or kind is None):
            return None
        kinds.append(kind or "reduced-resolution")
    names = [f"a {k} image" for k in dict.fromkeys(kinds)]
    return " and ".join(names)


def _main_series(tif: Any) -> int:
    """The TIFF series of the tissue: the first that is not a picture of the glass slide (a
    reduced-resolution page or one that says it is a label, macro…: an OME file may put its
    label first); 0 when every series is one."""
    for i, series in enumerate(tif.series):
        if not series.keyframe.is_reduced and _picture_kind(series) is None:
            return i
    return 0


def _planes_in(tif: Any, main: int = 0) -> int:
    """Images a TIFF holds apart from pictures of the slide (thumbnails, labels, macro and
    overview images: :func:`_associated`) and pyramid levels: every plane (Z, T, pages of a
    stack…) of every series. Channels (C) of a grayscale series are one image's colours; of
    an RGB series (samples S), each is an RGB image. ``main``: the series of the tissue."""
    n = 0
    every = list(tif.series)
    for i, series in enumerate(every):
        if i != main and _associated(series, every[main]):
            continue
        if i == main and series.keyframe.is_reduced:
            continue
        axes = str(series.axes)
        skip = "YXS" if "S" in axes else "YXSC"
        n += math.prod(d for a, d in zip(axes, series.shape, strict=True) if a not in skip)
    return n


def _open_tiff_field(
    path: Path, tif: Any, given: float | None, notes: list[str], page: Any, main: int = 0
) -> FieldImage:
    try:
        arr = page.asarray()
    except Exception as exc:  # tifffile raises many types on corrupt data
        raise InputError(path, f"TIFF cannot be decoded ({type(exc).__name__}: {exc})") from None
    if int(page.planarconfig) == 2 and arr.ndim == 3 and arr.shape[0] == page.samplesperpixel:
        arr = np.moveaxis(arr, 0, -1)  # separate colour planes → height × width × samples
    # the brightest samples (a pass over the field) only when the scale is read from them
    full, note = _declared_full_scale(page, lambda: _brightest(arr) if arr.size else None)
    if note:
        notes.append(note)
    rgb = _tiff_rgb8(arr, page, path, full)
    if page.photometric.name == "SEPARATED":
        notes.append(_CMYK_NOTE)
    try:
        check_brightfield(rgb, path)
    except InputError as exc:
        hint = _full_scale_hint(arr, full)
        if hint is None:
            raise
        raise InputError(path, f"{exc.cause}; {hint}") from None
    found = _tiff_pixel_size(tif, notes, page, main)
    ps = _resolve_pixel_size(path, given, found, notes)
    chroma = _tiff_chroma_factor(page, tif.filehandle)
    return FieldImage(path, rgb, ps, tuple(notes), chroma_factor=chroma)


def _open_openslide(
    path: Path, given: float | None, tiff_chroma: tuple[int, ...] = ()
) -> WholeSlide:
    """A slide through OpenSlide; ``tiff_chroma``: the chroma factors of the file's pyramid
    levels as tifffile reads them (:func:`_level_chroma`), for a TIFF-based slide."""
    import openslide

    try:
        slide = openslide.OpenSlide(str(path))
    except openslide.OpenSlideError as exc:
        raise InputError(path, f"OpenSlide cannot read this slide ({exc})") from None
    notes: list[str] = []
    props = dict(slide.properties)
    found: PixelSize | None = None
    mpp = props.get(openslide.PROPERTY_NAME_MPP_X)
    mpp_y = props.get(openslide.PROPERTY_NAME_MPP_Y)
    if mpp:
        found = _plausible(
            float(mpp),
            "slide metadata (openslide.mpp-x/y)",
            notes,
            float(mpp_y) if mpp_y else None,
        )
    if found is None and "tiff.XResolution" in props:
        unit = props.get("tiff.ResolutionUnit")
        um = _from_resolution(float(props["tiff.XResolution"]), unit)
        yres = props.get("tiff.YResolution")
        um_y = _from_resolution(float(yres), unit) if yres else None
        found = _plausible(um, "TIFF resolution tags", notes, um_y)
    try:
        ps = _resolve_pixel_size(path, given, found, notes)
    except InputError:
        slide.close()
        raise
    levels = tuple(
        (int(d[0]), int(d[1]), float(ds))
        for d, ds in zip(slide.level_dimensions, slide.level_downsamples, strict=True)
    )

    def read_level(level: int, x: int, y: int, w: int, h: int) -> U8:
        try:
            region = slide.read_region((x, y), level, (w, h))
        except openslide.OpenSlideError as exc:
            raise InputError(path, f"slide region cannot be decoded ({exc})") from None
        rgba = np.asarray(region, dtype=np.uint8)
        return _to_rgb8(rgba, path, "RGBA")

    w0, h0 = slide.dimensions
    vendor = openslide.OpenSlide.detect_format(str(path)) or "unknown"
    chroma = _match_levels(tiff_chroma, len(levels))
    _note_chroma(chroma, notes)
    return WholeSlide(
        path,
        int(w0),
        int(h0),
        ps,
        levels,
        f"openslide {openslide.__library_version__} ({vendor})",
        read_level,
        slide.close,
        tuple(notes),
        properties={k: v for k, v in props.items() if k.startswith("openslide.")},
        chroma_factors=chroma,
    )


#: most bytes of decoded samples read to find a 16-bit slide's bit depth (16 MB): the whole
#: smallest pyramid level when it is no larger, else tiles (or strips) spread over it
SAMPLE_DEPTH_BYTES = 16 << 20


def _decode_segment(page: Any, fh: Any, i: int) -> NDArray[Any] | None:
    """Tile (or strip) ``i`` of a TIFF page, decoded as tifffile lays it out; None when the
    file holds no bytes for it."""
    off, count = page.dataoffsets[i], page.databytecounts[i]
    if count == 0:
        return None
    fh.seek(off)
    data = page.decode(fh.read(count), i, jpegtables=page.jpegtables)[0]
    return None if data is None else np.asarray(data)


def _largest_sample(pages: list[Any], fh: Any, notes: list[str]) -> int | None:
    """The brightest samples (:func:`_brightest`) of a 16-bit tiled slide that states no
    ``MaxSampleValue``, decoding at most :data:`SAMPLE_DEPTH_BYTES` (None when nothing could be
    read within that bound: :func:`_declared_full_scale` then takes 65535).

    The smallest level is decoded whole when it fits the bound (a pyramid's thumbnail level);
    otherwise, as for a single-level slide, whose one level is the whole slide, tiles spread
    evenly over that level are decoded one at a time. Glass, the brightest thing on a slide,
    covers much of it, so a spread of tiles finds the camera's depth.
    """
    page = pages[-1]
    itemsize = 2
    whole = int(page.imagewidth) * int(page.imagelength) * int(page.samplesperpixel) * itemsize
    if whole <= SAMPLE_DEPTH_BYTES:
        return _brightest(page.asarray())
    if page.is_tiled:
        seg = int(page.tilewidth) * int(page.tilelength)
    else:
        seg = int(page.imagewidth) * int(page.rowsperstrip)
    planes = int(page.samplesperpixel) if int(page.planarconfig) == 2 else 1
    seg *= itemsize * (1 if planes > 1 else int(page.samplesperpixel))
    n = len(page.dataoffsets)
    k = min(n, SAMPLE_DEPTH_BYTES // max(1, seg))
    if k == 0:
        notes.append(
            "16-bit samples: tiles too large to sample for the camera's bit depth; scaled "
            "to 8 bits from 0–65535"
        )
        return None
    counts = np.zeros(1 << 16, dtype=np.int64)
    for i in sorted({round(v) for v in np.linspace(0, n - 1, k)}):
        data = _decode_segment(page, fh, i)
        if data is not None:
            counts += _histogram16(data)
    return _brightest_in(counts)


def _open_tifffile_pyramid(
    path: Path, tif: Any, given: float | None, notes: list[str], main: int = 0
) -> WholeSlide:
    series = tif.series[main]
    # other images of the tissue in the file (an OME export of several scenes): only this
    # one is analysed, and the result says so
    others = [
        str(s.name or f"series {i}")
        for i, s in enumerate(tif.series)
        if i != main and not _associated(s, series)
    ]
    pages = [lvl.keyframe for lvl in series.levels]
    for p in pages:
        if not p.is_tiled:
            raise InputError(
                path,
                f"TIFF of {pages[0].imagewidth}×{pages[0].imagelength} pixels is not tiled and "
                f"larger than the {MAX_FIELD_PIXELS / 1e6:g} megapixels nkpanel decodes whole "
                "(decompression-bomb guard); save it as a tiled pyramidal TIFF",
            )
    if pages[0].samplesperpixel < 3 and pages[0].photometric.name != "PALETTE":
        raise InputError(
            path,
            f"grayscale image ({pages[0].photometric.name}, {pages[0].samplesperpixel} "
            "sample(s)): a brightfield RGB image is needed",
        )
    # one scale for every tile, found by decoding a bounded amount of the slide
    full: int | None = None
    if int(pages[0].bitspersample) == 16:

        def largest() -> int | None:
            try:
                return _largest_sample(pages, tif.filehandle, notes)
            except Exception as exc:
                raise InputError(
                    path, f"TIFF cannot be decoded ({type(exc).__name__}: {exc})"
                ) from None

        full, note = _declared_full_scale(pages[0], largest)
        if note:
            notes.append(note)
    if pages[0].photometric.name == "SEPARATED":
        notes.append(_CMYK_NOTE)
    found = _tiff_pixel_size(tif, notes, pages[0], main)
    ps = _resolve_pixel_size(path, given, found, notes)
    w0, h0 = int(pages[0].imagewidth), int(pages[0].imagelength)
    levels = tuple((int(p.imagewidth), int(p.imagelength), w0 / float(p.imagewidth)) for p in pages)
    fh = tif.filehandle

    def read_level(level: int, x: int, y: int, w: int, h: int) -> U8:
        page = pages[level]
        ds = levels[level][2]
        lx, ly = int(x / ds), int(y / ds)
        tw, th = int(page.tilewidth), int(page.tilelength)
        pw, ph = int(page.imagewidth), int(page.imagelength)
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        tiles_across = -(-pw // tw)
        # separate colour planes: each sample's tiles follow the previous sample's
        planes = int(page.samplesperpixel) if int(page.planarconfig) == 2 else 1
        per_plane = len(page.dataoffsets) // planes

        def tile_at(idx: int) -> NDArray[Any] | None:
            parts = []
            for s in range(planes):
                i = s * per_plane + idx
                try:
                    data = _decode_segment(page, fh, i)
                except Exception as exc:
                    raise InputError(path, f"TIFF tile {i} cannot be decoded ({exc})") from None
                if data is None:
                    return None
                parts.append(data[0])
            return parts[0] if planes == 1 else np.concatenate(parts, axis=-1)

        for ty in range(max(ly, 0) // th, min(ly + h, ph - 1) // th + 1):
            for tx in range(max(lx, 0) // tw, min(lx + w, pw - 1) // tw + 1):
                data = tile_at(ty * tiles_across + tx)
                if data is None:
                    continue
                if data.ndim == 3 and data.shape[2] == 1:
                    data = data[..., 0]
                tile = _tiff_rgb8(data, page, path, full)
                # paste the overlap of this tile and the requested region
                gx0, gy0 = tx * tw, ty * th
                sx0, sy0 = max(lx, gx0), max(ly, gy0)
                sx1 = min(lx + w, gx0 + tw, pw)
                sy1 = min(ly + h, gy0 + th, ph)
                if sx1 > sx0 and sy1 > sy0:
                    out[sy0 - ly : sy1 - ly, sx0 - lx : sx1 - lx] = tile[
                        sy0 - gy0 : sy1 - gy0, sx0 - gx0 : sx1 - gx0
                    ]
        return out

    chroma = _level_chroma(series, fh)
    _note_chroma(chroma, notes)
    return WholeSlide(
        path,
        w0,
        h0,
        ps,
        levels,
        f"tifffile {_tifffile_version()}",
        read_level,
        tif.close,
        tuple(notes),
        chroma_factors=chroma,
        other_images=tuple(others),
    )


def _note_chroma(chroma: tuple[int, ...], notes: list[str]) -> None:
    if any(f > 1 for f in chroma):
        notes.append(
            "pyramid levels stored as JPEG with colour at half resolution (4:2:0 or 4:2:2): "
            "cells are read from a level whose colour is as fine as the analysis grid where "
            "one is (thin membranous DAB needs it; the 'colour resolution' check says)"
        )


def _tifffile_version() -> str:
    import tifffile

    return str(tifffile.__version__)


def _open_tiff(path: Path, given: float | None, max_pixels: int) -> ImageSource:
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:
        raise InputError(path, f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    try:
        return _open_tiff_file(path, tif, given, max_pixels)
    except BaseException:
        tif.close()  # a slide returned keeps its file open; a failure never does
        raise


def _open_tiff_file(path: Path, tif: Any, given: float | None, max_pixels: int) -> ImageSource:
    try:
        main = _main_series(tif)
        page = tif.series[main].keyframe if tif.series else tif.pages.first
        w, h = int(page.imagewidth), int(page.imagelength)
        n_levels = len(tif.series[main].levels) if tif.series else 1
    except Exception as exc:
        raise InputError(path, f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    notes: list[str] = []
    try:
        short = _tiles_missing(tif)
        pictures = _pictures_only(tif)
    except Exception as exc:  # tifffile raises many types on a corrupt header
        raise InputError(path, f"corrupt TIFF header ({type(exc).__name__}: {exc})") from None
    if short:
        raise InputError(path, short)
    if pictures:
        raise InputError(
            path,
            f"holds only {pictures} (pictures of the glass slide a scanner saves beside the "
            "scan), not a field or a slide of the tissue",
        )
    # a field small enough to decode whole: one level, or a pyramid whose level 0 is not
    # tiled (a field with a thumbnail page); small tiled pyramids are read as slides
    if w * h <= max_pixels and (n_levels == 1 or not page.is_tiled):
        try:
            n_images = _planes_in(tif, main)
            if n_images > 1:
                # focus planes of one field and several fields look alike: counting each page
                # could count the same cells several times, so one field per file
                raise InputError(
                    path,
                    f"TIFF holds {n_images} images (a stack or several pages: focus planes "
                    "or several fields, which nkpanel cannot tell apart); save each field as "
                    "its own file (Fiji: Image › Stacks › Stack to Images) and give those",
                )
            return _open_tiff_field(path, tif, given, notes, page, main)
        finally:
            tif.close()
    # a large or pyramidal TIFF: OpenSlide when it knows the format, else tifffile
    import openslide

    fmt = openslide.OpenSlide.detect_format(str(path))
    # OpenSlide reads more than 8 bits per sample as their high byte (libtiff's RGBA reading),
    # so a 12-bit camera's image would look dark: tifffile reads those, scaled from their range
    deep = int(page.bitspersample) > 8
    # uncompressed tiles: libtiff's RGBA reader under OpenSlide refused Aperio's 240×240 ones
    # partway through a slide ("Invalid tile byte count"), which tifffile reads as stored
    raw = int(page.compression) == 1
    if fmt is not None and not getattr(tif, "is_ome", False) and not deep and not raw and main == 0:
        chroma = _level_chroma(tif.series[0], tif.filehandle) if tif.series else ()
        tif.close()
        return _open_openslide(path, given, chroma)
    return _open_tifffile_pyramid(path, tif, given, notes, main)


def open_image(
    path: str | Path,
    *,
    pixel_size_um: float | None = None,
    max_field_pixels: int = MAX_FIELD_PIXELS,
) -> ImageSource:
    """Open a field image or a whole-slide image for analysis.

    Parameters
    ----------
    path
        TIFF, PNG or JPEG field image; or a whole-slide image OpenSlide reads (SVS, NDPI,
        MRXS, SCN, BIF, CZI, tiled TIFF…), or a tiled OME-TIFF pyramid.
    pixel_size_um
        Microns per pixel at full resolution; overrides the file's metadata.
    max_field_pixels
        Largest image decoded whole (decompression-bomb guard).

    Raises
    ------
    InputError
        Not an image; too large to decode safely; grayscale or fluorescence; unknown pixel size.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    kind = _sniff(p)
    if kind == "png":
        return _open_pil(p, "png", pixel_size_um, max_field_pixels)
    if kind == "jpeg":
        return _open_pil(p, "jpeg", pixel_size_um, max_field_pixels)
    if kind == "tiff":
        try:
            return _open_tiff(p, pixel_size_um, max_field_pixels)
        except (
            TypeError,
            ValueError,
            AttributeError,
            IndexError,
            KeyError,
            ZeroDivisionError,
        ) as exc:
            # tifffile hands a corrupt header's values on as it finds them (a tuple where one
            # number belongs, an unknown code): the file's fault, said in one line
            if tracebacks_shown():
                raise
            raise InputError(
                p, f"TIFF header not understood ({type(exc).__name__}: {exc}): a corrupt file?"
            ) from None
    import openslide

    fmt = openslide.OpenSlide.detect_format(str(p))
    if fmt is None:
        raise InputError(
            p,
            "not an image nkpanel reads (expected TIFF, PNG, JPEG or a whole-slide format "
            "OpenSlide reads, e.g. SVS, NDPI, MRXS)",
        )
    return _open_openslide(p, pixel_size_um)
