"""Analysing one CD56 image: field image or whole slide, tile by tile, in bounded memory.

The steps, for either kind of image:

1. **Overview** at ``tissue.overview_um`` (2 µm/px): tissue (:func:`~nkpanel.uterine.tissue.
   detect_tissue`), drawn regions rasterised (:mod:`nkpanel.uterine.regions`), and, when no
   regions were drawn (or the regions say nothing of glands), glands and luminal epithelium
   found automatically (:func:`~nkpanel.uterine.tissue.detect_epithelium`). Countable
   stroma = tissue ∩ drawn stroma regions (if any) − exclusions − epithelium. No tissue is an error.
2. **Stain vectors**: the white point is estimated (99.5th percentile per channel: glass, or
   the palest stroma of a field filled with tissue; on a whole slide from patches of clear glass
   read at the analysis resolution, as a field is, not from the JPEG-compressed reduced level
   the overview comes from; pixels exactly the fill colour, where nothing was scanned or the
   slide is transparent, are left out); the standard Ruifrok H-DAB vectors are used
   by default, so that QuPath's OD scale and thresholds carry over (cells are judged on their
   DAB above the stroma's own, :mod:`nkpanel.uterine.detect` step 10, which agrees with
   QuPath's rule on clean stroma; where the two part, the "background changed calls" check
   says so, and ``dab_background_um = 0`` gives QuPath's rule); Macenko vectors are
   estimated from the image in every run and reported with their sanity checks, and used
   instead when asked (``stains="estimated"``) and sane.
3. **Fields**: a field image is one field. On a whole slide, ten random ×400 fields of stroma
   are chosen (:mod:`nkpanel.uterine.fields`) before counting.
4. **Tiles**: the analysis grid (0.5 µm/px by default; the image's own pixel size when it is
   coarser) is cut into tiles of ``tile_px`` with a margin wide enough for background
   subtraction and cell expansion, cut at the image's edge (beyond it every filter reflects the
   image, as if the tissue went on as its mirror image); tiles with no countable stroma are
   skipped. A field image is resampled to the analysis grid once. Each tile is
   read, deconvolved, and its cells detected (:func:`~nkpanel.uterine.detect.detect_cells`);
   a cell belongs to the tile whose core holds its centroid (no cell is counted twice) and is
   counted when its centroid lies in countable stroma. Memory is bounded by one tile, the
   overview and the table of counted cells.
5. **Counts**: CD56+ cells, stromal cells (every counted cell, positive or not), stromal area;
   per field and over the whole stroma; the confidence interval across fields
   (:func:`~nkpanel.uterine.results.ratio_ci`).

Coordinates of cells are continuous level-0 pixel coordinates (pixel ``(i, j)`` spans
``[j, j+1) × [i, i+1)``), QuPath's convention.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from nkpanel.errors import InputError, QCError
from nkpanel.uterine import options
from nkpanel.uterine.detect import (
    CellTable,
    DetectionSettings,
    Segmentation,
    dab_background,
    detect_cells,
)
from nkpanel.uterine.fields import FieldCircle, choose_fields
from nkpanel.uterine.images import (
    FieldImage,
    ImageSource,
    WholeSlide,
    _resize,
    check_brightfield,
    open_image,
)
from nkpanel.uterine.regions import MAX_OUTSIDE_FRACTION, Regions, read_qupath_geojson
from nkpanel.uterine.results import (
    Exclusion,
    FieldCount,
    UterineQC,
    UterineResult,
    across_fields_qc,
    background_calls_qc,
    borderline_staining_qc,
    dab_background_qc,
    few_positives_qc,
    fields_qc,
    merged_nuclei_qc,
    nucleus_size_qc,
    pieces_qc,
    pixel_size_qc,
    ratio_ci,
    stromal_cells_qc,
)
from nkpanel.uterine.simulate import SYNTHETIC_TAG
from nkpanel.uterine.stains import (
    StainCheck,
    StainVectors,
    deconvolve,
    estimate_macenko,
    estimate_white,
    ruifrok_hdab,
)
from nkpanel.uterine.tissue import (
    TissueSettings,
    detect_epithelium,
    detect_ink,
    detect_tissue,
    overview_od,
)

__all__ = [
    "AnalysisPlan",
    "TileSink",
    "TileView",
    "UterineAnalysis",
    "UterineSettings",
    "analyze_image",
    "analyze_source",
]

U8 = NDArray[np.uint8]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class UterineSettings:
    """Everything that decides a count; recorded in every result.

    Attributes
    ----------
    detection
        Cell detection and positivity (:class:`~nkpanel.uterine.detect.DetectionSettings`);
        its ``pixel_size_um`` is the analysis resolution.
    tissue
        Tissue and automatic epithelium detection.
    stains
        ``"ruifrok"`` (standard vectors, default) or ``"estimated"`` (Macenko, when sane).
    stain_vectors
        A lab's own vectors (e.g. from QuPath); overrides ``stains``.
    white_point
        I0 per channel; estimated from the image when None.
    auto_exclude_epithelium
        Find glands and luminal epithelium automatically when no regions are given.
    tile_px
        Tile core size on the analysis grid (1024 px = 512 µm at 0.5 µm/px).
    n_fields, field_diameter_um, min_field_stroma_fraction, seed
        Random ×400 fields on whole slides (see :mod:`nkpanel.uterine.fields`).
    min_stromal_cells
        500: a CD56+ percentage near 5% from 500 cells has a binomial SE of about 1 point.
    max_pixel_size_um
        1.0: coarser images cannot outline 5–10 µm nuclei.
    """

    detection: DetectionSettings = field(default_factory=DetectionSettings)
    tissue: TissueSettings = field(default_factory=TissueSettings)
    stains: options.Stains = options.STAINS
    stain_vectors: StainVectors | None = None
    white_point: tuple[float, float, float] | None = None
    auto_exclude_epithelium: bool = True
    tile_px: int = 1024
    n_fields: int = options.N_FIELDS
    field_diameter_um: float = options.FIELD_DIAMETER_UM
    min_field_stroma_fraction: float = 0.75
    seed: int = options.SEED
    min_stromal_cells: int = 500
    max_pixel_size_um: float = 1.0

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        if self.stain_vectors is not None:
            d["stain_vectors"] = self.stain_vectors.as_dict()
        return d


@dataclass(frozen=True)
class TileView:
    """One analysed tile as handed to sinks (overlays, GeoJSON writers).

    ``rgb`` and the label images cover the tile with its margin; :meth:`core` selects the core
    (``core_shape``), whose top-left corner is ``(x0, y0)`` on the analysis grid. Label ``i`` is
    row ``i − 1`` of ``cells`` (the tile's detections, in the pixels of the tile with margin);
    ``positive[i]`` and ``counted[i]`` say whether it is CD56+ and counted (index 0 is the
    background). A cell is counted in one tile only, the one whose core holds its centroid.
    """

    x0: int
    y0: int
    margin: int
    core_shape: tuple[int, int]
    rgb: U8
    segmentation: Segmentation
    positive: BoolArray
    counted: BoolArray
    cells: CellTable
    analysis_downsample: float

    def core(self) -> tuple[slice, slice]:
        """The slices of ``rgb`` and the label images that are this tile's core."""
        m = self.margin
        return (slice(m, m + self.core_shape[0]), slice(m, m + self.core_shape[1]))


class TileSink(Protocol):
    """Receives analysed tiles that overlap the analysis-grid box it asks for."""

    def wants(self, x0: int, y0: int, w: int, h: int) -> bool: ...

    def add(self, view: TileView) -> None: ...


@dataclass(frozen=True)
class AnalysisPlan:
    """What is fixed before any tile is read: masks on the overview grid, fields, scales."""

    source: Path
    overview: U8
    tissue: BoolArray
    excluded: BoolArray
    stroma: BoolArray
    fields: tuple[FieldCircle, ...]
    overview_downsample: float
    analysis_downsample: float
    level0_size: tuple[int, int]
    stains: StainVectors
    #: the image was generated by nkpanel (its review overlays say so)
    synthetic: bool = False


@dataclass(frozen=True)
class UterineAnalysis:
    """One image's result with what the outputs need (plan, counted cells)."""

    result: UterineResult
    plan: AnalysisPlan
    cells: CellTable  # counted cells, continuous level-0 coordinates
    field_of_cell: NDArray[np.int16]  # index into plan.fields, −1 outside every field


#: the note of an image analysed without regions: glands found automatically
NO_REGIONS_NOTE = (
    "glands and luminal epithelium were excluded automatically (no regions given): "
    "check the excluded area on the overlay"
)


def _whole_field(src: FieldImage, ds: float) -> U8:
    """A field image at downsample ``ds``: ``src.read(0, 0, width, height, ds)`` without the
    copy that a region read makes."""
    return _resize(src.rgb, max(1, round(src.width / ds)), max(1, round(src.height / ds)))


#: most pixels one band of the overview reads from the slide (32 megapixels: 128 MB as RGBA)
OVERVIEW_BAND_PIXELS = 32_000_000


def _read_overview(src: ImageSource, ds: float) -> U8:
    """The whole image at downsample ``ds``, read in bands of bounded size."""
    out_w = max(1, round(src.width / ds))
    out_h = max(1, round(src.height / ds))
    if isinstance(src, FieldImage):
        return _whole_field(src, ds)
    out = np.empty((out_h, out_w, 3), dtype=np.uint8)
    # bands of at most OVERVIEW_BAND_PIXELS read from the level the reader picks (a slide
    # without a pyramid is read at full resolution: a band of output rows is ds² times as
    # many pixels read)
    level_ds = src.levels[src.best_level(ds)][2] if isinstance(src, WholeSlide) else 1.0
    read_per_row = (src.width / level_ds) * (ds / level_ds)
    band = max(1, min(2048, int(OVERVIEW_BAND_PIXELS // max(read_per_row, 1.0))))
    for y in range(0, out_h, band):
        h = min(band, out_h - y)
        y0 = round(y * ds)
        y1 = min(src.height, round((y + h) * ds))
        part = src.read(0, y0, src.width, max(1, y1 - y0), ds)
        part = _fit(part, h, out_w)
        out[y : y + h] = part
    return out


def _colour_qc(src: ImageSource, ds_a: float, px0: float, a_um: float) -> UterineQC | None:
    """The (non-blocking) check that the image's colour is as fine as the analysis grid, for
    an image whose colour is stored at less than its pixel resolution (JPEG 4:2:0 or 4:2:2);
    None for full-colour images.

    Membranous DAB is a thin ring of colour: with one colour sample per 2×2 pixels at 0.5 µm
    per pixel the colour is at 1 µm and the ring is blurred into its surroundings (a
    user's test: CD56+ cells 94 → 42 at JPEG quality 75, 6–10% lost at 92; at 0.25 µm per
    pixel, or 4:4:4, nothing was lost)."""
    if isinstance(src, WholeSlide):
        level = src.best_level(ds_a)
        factor = src.chroma_factor(level)
        colour_um = px0 * src.levels[level][2] * factor
    elif isinstance(src, FieldImage):
        factor = src.chroma_factor
        colour_um = px0 * factor
    else:  # another source knows nothing of its colour sampling
        return None
    if factor <= 1:
        return None
    passed = colour_um <= a_um * 1.0001
    reason = (
        f"colour stored at {colour_um:.2g} µm (JPEG colour subsampling: one colour sample per "
        f"{factor}×{factor} pixels)"
    )
    if passed:
        reason += f", no coarser than the {a_um:.2g} µm analysis grid"
    else:
        reason += (
            f", coarser than the {a_um:.2g} µm the cells are analysed at: thin membranous DAB "
            "is blurred, so CD56+ cells are undercounted (save fields as TIFF or PNG, or JPEG "
            "4:4:4, or at a finer pixel size)"
        )
    return UterineQC("colour resolution", passed, colour_um, a_um, reason, blocking=False)


def _tissue_of(
    overview: U8, stains: StainVectors, settings: TissueSettings
) -> tuple[NDArray[np.float32], BoolArray, BoolArray]:
    """The overview's optical density (for tissue and for glands), its ink and its tissue
    (ink left out), against ``stains``' white point."""
    od = overview_od(overview, stains.white)
    ink = detect_ink(overview, stains, settings, od=od)
    return od, ink, detect_tissue(overview, stains, settings, od=od, ink=ink)


def _dab_background_qc(
    dab: NDArray[np.float32],
    stroma: BoolArray,
    stroma_mm2: float,
    det: DetectionSettings,
    ov_um: float,
) -> UterineQC:
    """:func:`~nkpanel.uterine.results.dab_background_qc` of the stroma whose DAB background
    (:func:`~nkpanel.uterine.detect.dab_background`, on the overview's DAB ``dab``: block
    medians of every pixel, nuclei not left out at that resolution, so a crowd of strongly
    stained cells raises it too) reaches half the positive threshold."""
    limit_od = 0.5 * det.positive_threshold_od
    block = max(2, round(det.dab_background_um / ov_um))
    back = dab_background(dab, np.zeros(dab.shape, dtype=bool), block, det.dab_background_floor_od)
    raised_mm2 = float((stroma & (back >= limit_od)).sum()) * (ov_um * 1e-3) ** 2
    return dab_background_qc(raised_mm2, stroma_mm2, limit_od)


#: stroma pieces smaller than this (mm²) are not compared on their own (a fragment's edge, a
#: speck the region left)
MIN_PIECE_MM2 = 0.02


def _pieces(
    stroma: BoolArray, cell_pixels: NDArray[np.intp], positive: BoolArray, ov_px_mm2: float
) -> list[FieldCount]:
    """The counts of each separate piece of stroma on the overview (8-connected, at least
    :data:`MIN_PIECE_MM2`), for :func:`~nkpanel.uterine.results.pieces_qc`; ``cell_pixels``:
    each counted cell's overview pixel (flat index), ``positive``: whether it is CD56+."""
    from scipy import ndimage as ndi

    labels, n = ndi.label(stroma, structure=np.ones((3, 3), dtype=bool))
    if n < 2:
        return []
    of_cell = labels.ravel()[cell_pixels]
    area = np.bincount(labels.ravel(), minlength=n + 1) * ov_px_mm2
    cells_in = np.bincount(of_cell, minlength=n + 1)
    positive_in = np.bincount(of_cell, weights=positive.astype(np.float64), minlength=n + 1)
    return [
        FieldCount(f"piece {k}", "image", int(positive_in[k]), int(cells_in[k]), float(area[k]))
        for k in range(1, n + 1)
        if area[k] >= MIN_PIECE_MM2
    ]


def _fit(a: U8, h: int, w: int) -> U8:
    """Crop or pad (white) an RGB array to h × w."""
    if a.shape[0] == h and a.shape[1] == w:
        return a
    out = np.full((h, w, 3), 255, dtype=np.uint8)
    hh, ww = min(h, a.shape[0]), min(w, a.shape[1])
    out[:hh, :ww] = a[:hh, :ww]
    return out


def _mirror_pad(rgb: U8, r_in: BoolArray, c_in: BoolArray) -> U8:
    """Replace the rows/columns outside the image by a mirror image of the inside."""
    r0, r1 = int(np.argmax(r_in)), len(r_in) - int(np.argmax(r_in[::-1]))
    c0, c1 = int(np.argmax(c_in)), len(c_in) - int(np.argmax(c_in[::-1]))
    inside = rgb[r0:r1, c0:c1]
    pads = ((r0, len(r_in) - r1), (c0, len(c_in) - c1), (0, 0))
    if min(inside.shape[:2]) > max(max(p) for p in pads[:2]):
        return np.asarray(np.pad(inside, pads, mode="symmetric"), dtype=np.uint8)
    return np.asarray(np.pad(inside, pads, mode="edge"), dtype=np.uint8)


def _tile_view(
    box: tuple[int, int, int, int],
    cut: tuple[int, int, int, int],
    margin: int,
    rgb: U8,
    seg: Segmentation,
    cells: CellTable,
    counted: BoolArray,
    ds_a: float,
) -> TileView:
    """The view sinks expect: the tile with its full margin on every side, the part beyond
    the image's edge filled with the image's mirror image (RGB) and no cells (labels)."""
    xa, ya, tw, th = box
    xs, ys, xe, ye = cut
    top, left = ys - (ya - margin), xs - (xa - margin)
    bottom, right = (ya + th + margin) - ye, (xa + tw + margin) - xe
    if top or left or bottom or right:
        rows = np.arange(ya - margin, ya + th + margin)
        cols = np.arange(xa - margin, xa + tw + margin)
        full = np.full((rows.size, cols.size, 3), 255, dtype=np.uint8)
        full[top : top + rgb.shape[0], left : left + rgb.shape[1]] = rgb
        r_in = (rows >= ys) & (rows < ye)
        c_in = (cols >= xs) & (cols < xe)
        rgb = _mirror_pad(full, r_in, c_in)
        pad = ((top, bottom), (left, right))
        seg = Segmentation(np.pad(seg.nuclei, pad), np.pad(seg.cells, pad))
        cells = cells.shifted(float(top), float(left))
    pos = np.concatenate([[False], cells.positive])
    cnt = np.concatenate([[False], counted])
    return TileView(xa, ya, margin, (th, tw), rgb, seg, pos, cnt, cells, ds_a)


def _stain_sample(
    src: ImageSource, tissue: BoolArray, ds_ov: float, ds_a: float, rng: np.random.Generator
) -> U8:
    """Pixels of a whole slide at analysis resolution for white-point and stain estimation
    (a field image is read whole at that resolution instead)."""
    # random tissue pixels of the overview, drawn without listing every tissue pixel
    flat = rng.integers(0, tissue.size, size=20_000)
    hits = flat[tissue.ravel()[flat]][:8]
    if hits.size == 0:
        hits = np.flatnonzero(tissue.ravel())[:1]
    if hits.size == 0:
        return np.zeros((0, 1, 3), np.uint8)
    ys, xs = np.unravel_index(hits, tissue.shape)
    size = 512
    parts = []
    for i in range(hits.size):
        cx, cy = (xs[i] + 0.5) * ds_ov, (ys[i] + 0.5) * ds_ov
        w0 = round(size * ds_a)
        parts.append(
            src.read(round(cx - w0 / 2), round(cy - w0 / 2), w0, w0, ds_a).reshape(-1, 1, 3)
        )
    return np.concatenate(parts, axis=0)


def _fill_colours(src: ImageSource) -> list[tuple[int, int, int]]:
    """Colours a whole slide shows where nothing was scanned: white (transparent pixels are
    composited on it, :func:`~nkpanel.uterine.images.open_image`) and OpenSlide's
    ``openslide.background-color`` when the slide states one."""
    out = [(255, 255, 255)]
    bg = getattr(src, "properties", {}).get("openslide.background-color", "")
    if len(bg) == 6 and all(c in "0123456789abcdefABCDEF" for c in bg):
        out.append((int(bg[0:2], 16), int(bg[2:4], 16), int(bg[4:6], 16)))
    return out


def _is_fill(rgb: U8, fills: Sequence[tuple[int, int, int]]) -> BoolArray:
    """Pixels exactly a fill colour in every channel (no scanned glass is that uniform)."""
    px = rgb.reshape(-1, 3)
    hit = np.zeros(px.shape[0], dtype=bool)
    for c in fills:
        hit |= (px[:, 0] == c[0]) & (px[:, 1] == c[1]) & (px[:, 2] == c[2])
    return hit.reshape(rgb.shape[:-1])


#: fewest overview pixels that are not fill for the overview's white point to leave fill out
#: (0.04 mm² at 2 µm/px); fewer, and every pixel counts
MIN_SCANNED_PIXELS = 10_000
#: least share of the pixels read from glass patches that must be real glass (not fill)
#: for a white point to be estimated from them
MIN_GLASS_SHARE = 0.25


def _glass_white(
    src: ImageSource,
    tissue: BoolArray,
    ds_ov: float,
    ds_a: float,
    rng: np.random.Generator,
    *,
    fill: BoolArray | None = None,
    fills: Sequence[tuple[int, int, int]] = ((255, 255, 255),),
    patches: int = 16,
    size: int = 64,
    clearance_um: float = 50.0,
) -> tuple[float, float, float] | None:
    """The white point of a whole slide from clear glass at the analysis resolution.

    ``patches`` squares of ``size`` analysis pixels (32 µm at 0.5 µm/px) are read, wholly inside
    the slide, centred on random overview pixels at least ``clearance_um`` from any tissue and
    not in ``fill`` (overview pixels exactly a fill colour: unscanned or transparent areas),
    and the white point is estimated from their pixels that are not exactly a colour of
    ``fills``, as from a field (:func:`~nkpanel.uterine.stains.estimate_white`). None when the
    slide holds too little clear glass (a field of tissue), or less than
    :data:`MIN_GLASS_SHARE` of the pixels read is glass rather than fill: the overview's
    estimate stands.
    """
    from scipy import ndimage as ndi

    ov_um = src.pixel_size.um_per_px * ds_ov
    reach = max(1, math.ceil(clearance_um / ov_um))
    glass = ~ndi.binary_dilation(tissue, iterations=reach)
    if fill is not None:
        glass &= ~fill
    ys, xs = np.nonzero(glass)
    w0 = round(size * ds_a)
    if ys.size < patches or w0 > min(src.width, src.height):
        return None
    pick = rng.choice(ys.size, size=patches, replace=False)
    parts = []
    for i in pick:
        x0 = min(max(0, round((xs[i] + 0.5) * ds_ov - w0 / 2)), src.width - w0)
        y0 = min(max(0, round((ys[i] + 0.5) * ds_ov - w0 / 2)), src.height - w0)
        parts.append(src.read(x0, y0, w0, w0, ds_a).reshape(-1, 3))
    px = np.concatenate(parts, axis=0)
    real = px[~_is_fill(px, fills)]
    if real.shape[0] < MIN_GLASS_SHARE * px.shape[0]:
        return None
    return estimate_white(real)


def _is_synthetic(src: ImageSource) -> bool:
    p = src.path
    try:
        with p.open("rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return False
    return SYNTHETIC_TAG.encode() in head


def analyze_source(
    src: ImageSource,
    settings: UterineSettings | None = None,
    *,
    regions: Regions | None = None,
    sinks: Sequence[TileSink] = (),
    sink_factory: Callable[[AnalysisPlan], Sequence[TileSink]] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> UterineAnalysis:
    """Analyse an opened image; see the module docstring for the steps.

    Parameters
    ----------
    src
        An opened field image or whole slide (:func:`nkpanel.uterine.images.open_image`).
    settings
        What decides the count.
    regions
        Regions drawn by a person (QuPath GeoJSON); None for automatic exclusion.
    sinks
        Receivers of analysed tiles (overlays, GeoJSON).
    sink_factory
        Called once fields are chosen (before any tile is read) to make more sinks, e.g. one
        overlay per field; it sees the :class:`AnalysisPlan`.
    on_tile
        Progress callback ``(tiles done, tiles total)``.

    Raises
    ------
    InputError
        No tissue found; a grayscale or fluorescence slide.
    """
    s = settings or UterineSettings()
    notes: list[str] = list(src.notes)
    region_qc: list[UterineQC] = []
    if regions is not None:
        # regions from another image: refused (no region on it) or warned about (past its edges)
        outside, warning = regions.check_on_image(src.width, src.height)
        if warning is not None:
            notes.append(warning)
            region_qc.append(
                UterineQC("regions on image", False, outside, MAX_OUTSIDE_FRACTION, warning, False)
            )
    px0 = src.pixel_size.um_per_px
    is_slide = isinstance(src, WholeSlide)
    ds_a = max(1.0, s.detection.pixel_size_um / px0)
    a_um = px0 * ds_a
    det = replace(s.detection, pixel_size_um=a_um)
    ds_ov = max(1.0, s.tissue.overview_um / px0)
    ov_um = px0 * ds_ov
    tis = replace(s.tissue, overview_um=ov_um)
    rng = np.random.default_rng(s.seed)

    # a field image is read once at the analysis resolution: white point, stain sample, tiles
    field_a = _whole_field(src, ds_a) if isinstance(src, FieldImage) else None
    step = ds_ov / ds_a
    if field_a is not None and step == round(step):
        # the overview is a box filter of the analysis image (whole-number steps), not of the
        # original pixels: block means of block means
        overview = _resize(
            field_a, max(1, round(src.width / ds_ov)), max(1, round(src.height / ds_ov))
        )
    else:
        overview = _read_overview(src, ds_ov)
    if is_slide:
        check_brightfield(overview, src.path)
    # white point: the palest pixels of a field; on a slide, first from its overview, then
    # from clear glass at the analysis resolution (below)
    fills = _fill_colours(src)
    fill = _is_fill(overview, fills) if is_slide else None
    if s.white_point is not None:
        white = s.white_point
    elif field_a is not None:
        white = estimate_white(field_a)
    elif fill is not None and fill.any() and (~fill).sum() >= MIN_SCANNED_PIXELS:
        # unscanned or transparent areas are exactly the fill colour, brighter than glass
        white = estimate_white(overview[~fill])
        notes.append(
            f"{100 * fill.mean():.1f}% of the slide is fill (exactly "
            + " or ".join(f"RGB {c}" for c in fills)
            + ": not scanned, or transparent) and is left out of the white point"
        )
    else:
        white = estimate_white(overview)
    if min(white) < 120:
        raise InputError(
            src.path,
            f"no bright background (white point {tuple(round(v) for v in white)}): a "
            "brightfield image is needed",
        )
    std = ruifrok_hdab(white)
    overview_density, ink, tissue = _tissue_of(overview, std, tis)
    if is_slide and s.white_point is None and tissue.any():
        # the overview comes from a reduced, JPEG-compressed level whose colours overshoot near
        # tissue; the white point is read where a field's is, at the analysis resolution, from
        # clear glass (tissue and the glass are then found again against it)
        glass_white = _glass_white(
            src,
            tissue | ink,  # the glass is read away from tissue and from ink
            ds_ov,
            ds_a,
            np.random.default_rng([s.seed, 1]),
            fill=fill,
            fills=fills,
        )
        if glass_white is not None and glass_white != white:
            white = glass_white
            std = ruifrok_hdab(white)
            overview_density, ink, tissue = _tissue_of(overview, std, tis)
    ink_mm2 = float(ink.sum()) * (ov_um * 1e-3) ** 2
    if ink_mm2 > 0:
        notes.append(
            f"{ink_mm2:.3f} mm² of colour that neither haematoxylin nor DAB explains (pen or "
            "marker ink; also eosin or pigment) was left out of the tissue: check it on the "
            "overlay"
        )
    if not tissue.any():
        image_um2 = src.width * src.height * px0 * px0
        if image_um2 < s.tissue.min_tissue_um2:
            raise InputError(
                src.path,
                f"image too small: {image_um2:.0f} µm² in all, less than the "
                f"{s.tissue.min_tissue_um2:.0f} µm² the smallest piece of tissue counted must "
                "cover (a ×400 field is about 200,000 µm²)",
            )
        if ink_mm2 > 0:
            raise InputError(
                src.path,
                f"no tissue left: all {ink_mm2:.3f} mm² of stained area has colour that "
                "neither haematoxylin nor DAB explains (ink, or not an H-DAB stain: an H&E "
                "slide?)",
            )
        raise InputError(src.path, "no tissue found (nothing stained above glass)")
    sample = field_a if field_a is not None else _stain_sample(src, tissue, ds_ov, ds_a, rng)
    estimated, check = estimate_macenko(sample, white=white)
    if s.stain_vectors is not None:
        stains = s.stain_vectors
    elif s.stains == "estimated":
        stains = estimated
        if not check.passed:
            notes.append(
                "estimated stain vectors failed their sanity checks ("
                + "; ".join(check.reasons)
                + "): the standard Ruifrok vectors were used"
            )
    else:
        stains = std
    # countable stroma on the overview grid
    oh, ow = tissue.shape
    excluded = np.zeros_like(tissue)
    count_region: BoolArray | None = None
    exclusion_source: Exclusion = "none"
    if regions is not None:
        count_region, excl = regions.rasterise(ow, oh, ds_ov)
        excluded |= excl
        exclusion_source = "regions"
        notes.extend(regions.notes)
    # the overview's DAB for the background check, when it is unmixed on the same vectors as
    # the haematoxylin glands are found on (the standard ones, by default): unmixed once
    overview_dab: NDArray[np.float32] | None = None
    if s.auto_exclude_epithelium and (regions is None or not regions.marks_glands):
        # no regions, or regions that say nothing of glands (an artefact drawn as Ignore*):
        # glands would be counted as stroma
        hem, dab = deconvolve(overview, std)
        excluded |= detect_epithelium(
            overview, tissue, std, tis, od=overview_density, haematoxylin=hem
        )
        exclusion_source = "automatic" if regions is None else "regions and automatic"
        if stains == std:
            overview_dab = dab
        del hem, dab
    stroma = tissue & ~excluded
    if count_region is not None:
        stroma &= count_region
    ov_px_mm2 = (ov_um * 1e-3) ** 2
    stroma_mm2 = float(stroma.sum()) * ov_px_mm2
    # the "DAB background" check, measured while the overview's DAB is at hand
    background_qc: UterineQC | None = None
    if det.dab_background_um > 0:
        if overview_dab is None:
            overview_dab = deconvolve(overview, stains)[1]
        background_qc = _dab_background_qc(overview_dab, stroma, stroma_mm2, det, ov_um)
    del overview_dab
    if isinstance(src, WholeSlide):
        fields = choose_fields(
            stroma,
            ds_ov,
            diameter_px0=s.field_diameter_um / px0,
            n_fields=s.n_fields,
            min_stroma_fraction=s.min_field_stroma_fraction,
            seed=s.seed,
        )
    else:
        fields = ()

    plan = AnalysisPlan(
        source=src.path,
        overview=overview,
        tissue=tissue,
        excluded=excluded & tissue,
        stroma=stroma,
        fields=fields,
        overview_downsample=ds_ov,
        analysis_downsample=ds_a,
        level0_size=(src.width, src.height),
        stains=stains,
        synthetic=_is_synthetic(src),
    )
    all_sinks = list(sinks)
    if sink_factory is not None:
        all_sinks += list(sink_factory(plan))

    # tiles on the analysis grid
    wa = math.ceil(src.width / ds_a)
    ha = math.ceil(src.height / ds_a)
    margin = math.ceil(
        (det.background_radius_um + det.cell_expansion_um + 3 * det.sigma_um + 6.0) / a_um
    )
    t = s.tile_px
    boxes = []
    for ya in range(0, ha, t):
        for xa in range(0, wa, t):
            tw, th = min(t, wa - xa), min(t, ha - ya)
            oy0 = int(ya * ds_a / ds_ov)
            oy1 = min(oh, math.ceil((ya + th) * ds_a / ds_ov))
            ox0 = int(xa * ds_a / ds_ov)
            ox1 = min(ow, math.ceil((xa + tw) * ds_a / ds_ov))
            if stroma[oy0:oy1, ox0:ox1].any():
                boxes.append((xa, ya, tw, th))
    tables: list[CellTable] = []
    # each counted cell's overview pixel (flat index), for the pieces of stroma of a slide
    cell_pixels: list[NDArray[np.intp]] = []
    for k, (xa, ya, tw, th) in enumerate(boxes):
        want_labels = any(sk.wants(xa, ya, tw, th) for sk in all_sinks)
        # the tile with its margin, cut at the image's edge: beyond it every filter reflects
        # the image (as if the tissue went on as its mirror image) and nothing is detected
        xs, ys = max(0, xa - margin), max(0, ya - margin)
        xe, ye = min(wa, xa + tw + margin), min(ha, ya + th + margin)
        if field_a is not None and (xs, ys, xe, ye) == (0, 0, wa, ha):
            rgb = _fit(field_a, ha, wa)
        else:
            x0, y0 = round(xs * ds_a), round(ys * ds_a)
            w0, h0 = round((xe - xs) * ds_a), round((ye - ys) * ds_a)
            rgb = _fit(src.read(x0, y0, w0, h0, ds_a), ye - ys, xe - xs)
        hem, dab = deconvolve(rgb, stains)
        cells, seg = detect_cells(hem, dab, det, return_labels=want_labels)
        # tile pixels → analysis grid
        gxa, gya = cells.x + xs, cells.y + ys
        core = (gya >= ya) & (gya < ya + th) & (gxa >= xa) & (gxa < xa + tw)
        # continuous level-0 coordinates of the nucleus centroid
        gx = (gxa + 0.5) * ds_a
        gy = (gya + 0.5) * ds_a
        oxi = np.clip((gx / ds_ov).astype(np.intp), 0, ow - 1)
        oyi = np.clip((gy / ds_ov).astype(np.intp), 0, oh - 1)
        counted = core & stroma[oyi, oxi]
        if is_slide:
            cell_pixels.append(oyi[counted] * ow + oxi[counted])
        kept = cells.take(counted)
        tables.append(
            CellTable(
                gy[counted],
                gx[counted],
                *(getattr(kept, f) for f in list(CellTable.__dataclass_fields__)[2:]),
            )
        )
        if want_labels and seg is not None:
            view = _tile_view(
                (xa, ya, tw, th), (xs, ys, xe, ye), margin, rgb, seg, cells, counted, ds_a
            )
            for sk in all_sinks:
                if sk.wants(xa, ya, tw, th):
                    sk.add(view)
        if on_tile is not None:
            on_tile(k + 1, len(boxes))
    counted_cells = CellTable.concat(tables)
    field_of_cell = np.full(len(counted_cells), -1, dtype=np.int16)
    for i, f in enumerate(fields):
        field_of_cell[f.contains(counted_cells.x, counted_cells.y)] = i

    # counts
    overall = FieldCount(
        "whole stroma" if is_slide else "image",
        "whole-stroma" if is_slide else "image",
        int(counted_cells.positive.sum()),
        len(counted_cells),
        stroma_mm2,
    )
    field_counts: list[FieldCount] = []
    if fields:
        for i, f in enumerate(fields):
            # stromal area of the field, on a window of the overview around it
            r = f.diameter / ds_ov / 2 + 1
            y0o, y1o = max(0, int(f.cy / ds_ov - r)), min(oh, int(f.cy / ds_ov + r) + 1)
            x0o, x1o = max(0, int(f.cx / ds_ov - r)), min(ow, int(f.cx / ds_ov + r) + 1)
            gy, gx = np.ogrid[y0o:y1o, x0o:x1o]
            disc = f.contains((gx + 0.5) * ds_ov, (gy + 0.5) * ds_ov)
            inside = disc & stroma[y0o:y1o, x0o:x1o]
            sel = field_of_cell == i
            field_counts.append(
                FieldCount(
                    f.name,
                    "lash-field",
                    int(counted_cells.positive[sel].sum()),
                    int(sel.sum()),
                    float(inside.sum()) * ov_px_mm2,
                    round(f.cx * px0, 2),
                    round(f.cy * px0, 2),
                    s.field_diameter_um,
                )
            )
    elif not is_slide:
        # a field image is one field of the biopsy
        field_counts.append(overall)
    # a slide's whole stroma is never one of its fields: with none fitted it has no
    # across-field estimate (its whole stroma is reported, and said to be); too few fields
    # are the "×400 fields" check's to say (fields_qc)
    qc = [
        UterineQC(
            "pixel size",
            px0 <= s.max_pixel_size_um,
            px0,
            s.max_pixel_size_um,
            f"pixel size {px0:.3g} µm (nuclei need ≤ {s.max_pixel_size_um:g} µm per pixel)"
            if px0 <= s.max_pixel_size_um
            else f"pixel size {px0:.3g} µm is too coarse: nuclei need ≤ "
            f"{s.max_pixel_size_um:g} µm per pixel",
        ),
        stromal_cells_qc(len(counted_cells), s.min_stromal_cells, blocking=is_slide),
    ]
    if isinstance(src, WholeSlide) and src.other_images:
        n = len(src.other_images)
        qc.append(
            UterineQC(
                "other images in the file",
                False,
                float(n),
                None,
                f"the file holds {n} more image{'s' if n > 1 else ''} of tissue "
                f"({', '.join(src.other_images)}), not analysed: only the first was counted "
                "(export each scene as its own file to count it)",
                blocking=False,
            )
        )
    colour = _colour_qc(src, ds_a, px0, a_um)
    if colour is not None:
        qc.append(colour)
    size = nucleus_size_qc(counted_cells.nucleus_area_um2, px0)
    if src.pixel_size.disagreement is not None:
        # the lab's value is used as asked, but a per-mm² figure off by the square of a wrong
        # magnification must not pass unseen
        qc.append(
            pixel_size_qc(src.pixel_size.disagreement, px0, src.pixel_size.file_um_per_px, size)
        )
    if is_slide:
        qc.append(fields_qc(len(fields), s.n_fields))
        qc += across_fields_qc(field_counts)
        pixels = np.concatenate(cell_pixels) if cell_pixels else np.zeros(0, dtype=np.intp)
        piece_check = pieces_qc(_pieces(stroma, pixels, counted_cells.positive, ov_px_mm2))
        if piece_check is not None:
            qc.append(piece_check)
    compartment_od = counted_cells.dab_above_background_od(s.detection.compartment)
    qc.append(borderline_staining_qc(compartment_od, s.detection.positive_threshold_od))
    if s.detection.dab_background_um > 0:
        raw_od = counted_cells.dab_od(s.detection.compartment)
        qc.append(background_calls_qc(raw_od, compartment_od, s.detection.positive_threshold_od))
    qc.append(size)
    qc.append(merged_nuclei_qc(counted_cells.nucleus_area_um2, counted_cells.nucleus_ellipse_fill))
    if background_qc is not None:
        qc.append(background_qc)
    qc.append(few_positives_qc(int(counted_cells.positive.sum()), len(counted_cells)))
    qc += region_qc
    if exclusion_source in ("automatic", "regions and automatic"):
        notes.append(
            NO_REGIONS_NOTE
            if regions is None
            else "glands and luminal epithelium were excluded automatically, as the regions "
            "drawn neither outline stroma nor exclude glands (only "
            + ", ".join(dict.fromkeys(r.name for r in regions.regions))
            + "): check the excluded area on the overlay"
        )
    result = UterineResult(
        sample=src.path.stem,
        sources=(str(src.path),),
        kind=src.kind,
        synthetic=plan.synthetic,
        pixel_size_um=px0,
        pixel_size_source=src.pixel_size.source,
        analysis_pixel_size_um=a_um,
        stains=stains.as_dict(),
        stain_estimate_check=_check_dict(check, estimated),
        exclusion_source=exclusion_source,
        tissue_area_mm2=float(tissue.sum()) * ov_px_mm2,
        excluded_area_mm2=float((excluded & tissue).sum()) * ov_px_mm2,
        overall=overall,
        fields=tuple(field_counts),
        per_100_ci=ratio_ci(
            [f.cd56_positive_cells for f in field_counts],
            [f.stromal_cells for f in field_counts],
            scale=100.0,
        ),
        per_mm2_ci=ratio_ci(
            [f.cd56_positive_cells for f in field_counts],
            [f.stromal_area_mm2 for f in field_counts],
        ),
        qc=tuple(qc),
        notes=tuple(notes),
        settings={**s.as_dict(), "detection": {**det.as_dict()}, "tissue": asdict(tis)},
    )
    return UterineAnalysis(result, plan, counted_cells, field_of_cell)


def _check_dict(check: StainCheck, estimated: StainVectors) -> dict[str, object]:
    d = check.as_dict()
    d["estimated_vectors"] = estimated.as_dict() if check.passed else None
    return d


def analyze_image(
    path: str | Path,
    settings: UterineSettings | None = None,
    *,
    pixel_size_um: float | None = None,
    regions: str | Path | Regions | None = None,
    sinks: Sequence[TileSink] = (),
    sink_factory: Callable[[AnalysisPlan], Sequence[TileSink]] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> UterineAnalysis:
    """Open and analyse one image (field or whole slide).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from nkpanel.uterine.simulate import FieldSpec, simulate_field, write_field
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_field(simulate_field(FieldSpec(seed=3)), d / "f.tif")
    >>> a = analyze_image(d / "f.tif")
    >>> a.result.synthetic, a.result.overall.stromal_cells > 500
    (True, True)
    """
    reg = read_qupath_geojson(regions) if isinstance(regions, str | Path) else regions
    src = open_image(path, pixel_size_um=pixel_size_um)
    try:
        return analyze_source(
            src,
            settings or UterineSettings(),
            regions=reg,
            sinks=sinks,
            sink_factory=sink_factory,
            on_tile=on_tile,
        )
    except MemoryError:
        raise QCError(f"{path}: out of memory while analysing") from None
    finally:
        src.close()
