"""Cell detection and DAB positivity, in the spirit of QuPath's positive cell detection.

Array in, table out: :func:`detect_cells` takes haematoxylin and DAB optical densities of one
tile (from :func:`nkpanel.uterine.stains.deconvolve`) at a known pixel size and returns every
cell it found, with its nucleus, its cell outline (the nucleus grown by ``cell_expansion_um``)
and its DAB measurements per compartment.

Steps (every length in microns, converted with the tile's pixel size)
---------------------------------------------------------------------
1. **Detection image**: haematoxylin OD (default, as QuPath's "Hematoxylin OD": CD56 stains
   the membrane and leaves the nucleus blue), or haematoxylin + DAB OD for nuclear stains whose
   positive nuclei are so brown that little blue is left (QuPath's "Optical density sum" serves
   the same purpose).
2. **Background subtraction**: minus a morphological opening whose square window is twice
   ``background_radius_um`` wide; a region whose background exceeds ``max_background_od`` is
   dark debris or a fold and yields no cells.
3. **Smoothing**: Gaussian, ``sigma_um``, for finding nuclei; a lighter one,
   ``outline_sigma_um``, for their outlines (a strong blur moves a thresholded edge outwards by
   about a σ and would inflate every nucleus).
4. **Threshold**: pixels whose lightly smoothed, background-subtracted value exceeds
   ``threshold_od``; holes smaller than the smallest nucleus are filled.
5. **Watershed on intensity**: seeds at local maxima (of the strongly smoothed image) at least
   ``seed_distance_um`` apart (equal maxima closer than that are one seed, as a plateau is:
   the blurred image of an oval peaks at two equal points of its long axis at some angles);
   the smoothed stain image is flooded from them within the
   thresholded mask. A thresholded piece that no seed reaches (a pale nucleus whose smoothed
   peak stays below the threshold although its outline passes it) is a nucleus of its own, as
   QuPath keeps every region whose mean exceeds the threshold.
6. **Split by shape**: inside each object, the maxima of the distance to its edge whose
   dynamic exceeds ``shape_split_h_um`` become seeds of a second watershed, one seed per
   h-dome (:func:`_h_maxima_marks`), so two touching round nuclei that share one intensity
   maximum are parted at their waist and one oval nucleus is not.
7. **Area limits**: nuclei outside [``min_area_um2``, ``max_area_um2``] are dropped.
8. **Cell expansion**: each nucleus grows by ``cell_expansion_um`` without overlapping its
   neighbours (:func:`skimage.segmentation.expand_labels`); the ring between the nucleus and
   the cell edge is the "cytoplasm" compartment, where a membranous stain such as CD56 lies.
9. **Positivity**: a cell is positive when the mean DAB OD of ``compartment``, less the DAB
   background around it (step 10), reaches ``positive_threshold_od``.
10. **DAB background**: the median DAB OD of the pixels outside nuclei, in square blocks of
   ``dab_background_um``, interpolated between block centres (the mesh background of
   photutils' ``Background2D`` and SExtractor, with a plain median), less
   ``dab_background_floor_od`` (:func:`dab_background`). CD56 lies on single cells; the
   stroma between them carries none. What colours the stroma itself as DAB is not CD56:
   red cells, whose haemoglobin unmixes as DAB (about 0.16 OD per red cell, 0.3 in a pool of
   packed red cells; :mod:`nkpanel.uterine.haemoglobin`), or non-specific background. Colour
   cannot part them (haemoglobin lies nearly in the plane of the H and DAB vectors), but
   place can: a cell among red cells has their haemoglobin in its ring too, and a negative
   cell's ring then measures about the stroma's background, a CD56+ cell's its own DAB more.
   The measurements in the table stay QuPath's (uncorrected); the background is recorded
   beside them (``dab_background_od``). ``dab_background_um`` 0 turns this off (QuPath's
   rule).

Default values, from biology and from QuPath's own defaults
-----------------------------------------------------------
* work at 0.5 µm/pixel (QuPath's default "requested pixel size"); a stromal or lymphocyte
  nucleus 5–10 µm across spans 10–20 pixels, enough to outline it;
* ``sigma_um`` 1.5 and ``background_radius_um`` 8 (QuPath defaults): σ about a quarter of a
  small nucleus, and a background window wider than the largest nucleus radius, so nuclei are
  not subtracted away; ``outline_sigma_um`` 0.5, one pixel, against camera noise;
* ``seed_distance_um`` 3: the radius of a small lymphocyte nucleus (about 6 µm across);
  two nuclei closer than that are one object;
* ``shape_split_h_um`` 0.5: a waist at least one pixel of the analysis grid (0.5 µm) narrower
  than both halves. QuPath's "split by shape" is ImageJ's binary watershed, whose distance-map
  maxima need a prominence of 0.5 pixel (``EDM.MAXFINDER_TOLERANCE``); at 0.25 µm the pixel
  staircase of a digitised oval outline makes tops of its own (5 of 150 single oval nuclei
  of stromal size split in two, drawn at random), at 0.5 µm none did;
* ``min_area_um2`` 10 and ``max_area_um2`` 400 (QuPath defaults): 10 µm² is a 3.6 µm disc,
  the smallest tangential cut of a nucleus worth counting; 400 µm² excludes clumps and debris
  (a decidualised stromal nucleus is about 60–100 µm²);
* ``threshold_od`` 0.1 (QuPath default, same OD units);
* ``cell_expansion_um`` 4: a uNK cell is a large granular lymphocyte 10–14 µm across with a
  nucleus about 6 µm across, so the membrane lies 2–4 µm beyond the nuclear edge (QuPath's
  default is 5);
* ``dab_background_um`` 24: a block of stroma about twice the area of the largest uNK cell
  (14 µm across; King 1989), so that one CD56+ cell, whose nucleus is left out and whose
  ring fills under half of the block's other pixels, cannot raise the median; fine enough to
  follow a patch of haemorrhage 70 µm across. ``dab_background_floor_od`` 0.02: the DAB an
  unstained stroma shows from a white point a few grey levels off (the same allowance as
  the ink rule's ``ink_floor_od`` in :mod:`nkpanel.uterine.tissue`): without it, every
  faint stain run would lose its borderline cells to a background that is no stain;
* ``positive_threshold_od`` 0.2 (QuPath's default single threshold) on the mean DAB OD of the
  ring between the nucleus and the cell edge (``compartment = "cytoplasm"``, QuPath's
  "Cytoplasm: DAB OD mean"): CD56 lies on the membrane and in the granules of the cytoplasm,
  and the nucleus (unstained) would dilute a whole-cell mean. For a nuclear stain (Ki67) use
  ``compartment = "nucleus"``.

Speed
-----
Everything runs on the analysis grid (0.5 µm/px), in float32. The opening and the seed search
take square windows, computed row then column by window doubling (log2(w) array operations;
van Herk 1992, Gil & Werman 1993); the shape split treats all objects in one mosaic
(:func:`_split_by_shape`); per-cell sums are one ``bincount`` each over the cells' pixels.
Only the watershed's visiting order among pixels of exactly equal distance differs from
treating objects one by one. Distances are exact squared integers worked out only as far as
they matter (:func:`~nkpanel.uterine._kernels.sq_distance`, shared with the tissue detection;
cell expansion looks ``cell_expansion_um`` away, no farther, with SciPy's tie rule:
:func:`_expand_labels`), and the h-maxima's reconstruction is iterated geodesic dilation
(:func:`_h_maxima`); each gives scikit-image's or SciPy's numbers exactly (property tests in
``tests/uterine/test_filters.py``).

References
----------
Bankhead P et al. QuPath: open source software for digital pathology image analysis. Sci Rep
2017;7:16878 (positive cell detection and its default parameters).
Beucher S, Meyer F. The morphological approach to segmentation: the watershed transformation.
In: Mathematical Morphology in Image Processing. 1993:433-481.
King A et al. Uterine large granular lymphocytes: a morphological and functional study. Hum
Reprod 1989;4:823-828 (uNK are large granular lymphocytes, ~10–14 µm).
Maurer CR, Qi R, Raghavan V. A linear time algorithm for computing exact Euclidean distance
transforms of binary images in arbitrary dimensions. IEEE TPAMI 2003;25:265-270.
Soille P. Morphological Image Analysis, 2nd ed. Springer 2003, ch. 6 (h-maxima, dynamics).
Vincent L. Morphological grayscale reconstruction in image analysis: applications and
efficient algorithms. IEEE Trans Image Process 1993;2:176-201.
Bertin E, Arnouts S. SExtractor: software for source extraction. Astron Astrophys Suppl
1996;117:393-404 (background as a mesh of local medians, interpolated).
van Herk M. A fast algorithm for local minimum and maximum filters on rectangular and
octagonal kernels. Pattern Recognit Lett 1992;13:517-521; Gil J, Werman M. Computing 2-D min,
median, and max filters. IEEE TPAMI 1993;15:504-507.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from nkpanel.errors import ConfigError
from nkpanel.uterine import options
from nkpanel.uterine._kernels import column_gaps, fill_small_holes, sq_distance
from nkpanel.uterine.options import Compartment

__all__ = [
    "CellTable",
    "DetectionSettings",
    "Segmentation",
    "dab_background",
    "detect_cells",
    "ellipse_fill",
]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I32 = NDArray[np.int32]
#: the CellTable field holding each compartment's mean DAB OD
_COMPARTMENT_FIELDS: dict[str, str] = {
    "cell": "dab_cell_od",
    "cytoplasm": "dab_cytoplasm_od",
    "nucleus": "dab_nucleus_od",
}

#: cell expansion (pixels) up to which :func:`_expand_labels` packs its keys in 32 bits
_MAX_EXPAND_PX = 120


@dataclass(frozen=True)
class DetectionSettings:
    """Cell detection and positivity settings; lengths in µm, areas in µm², ODs in QuPath units.

    See the module docstring for where each default comes from.
    """

    pixel_size_um: float = 0.5
    detection_image: Literal["haematoxylin", "haematoxylin+dab"] = "haematoxylin"
    sigma_um: float = 1.5
    outline_sigma_um: float = 0.5
    background_radius_um: float = 8.0
    max_background_od: float = 2.0
    threshold_od: float = 0.1
    seed_distance_um: float = 3.0
    split_by_shape: bool = True
    shape_split_h_um: float = 0.5
    min_area_um2: float = 10.0
    max_area_um2: float = 400.0
    cell_expansion_um: float = 4.0
    compartment: Compartment = options.COMPARTMENT
    positive_threshold_od: float = options.POSITIVE_THRESHOLD_OD
    dab_background_um: float = options.DAB_BACKGROUND_UM
    dab_background_floor_od: float = 0.02

    def __post_init__(self) -> None:
        checks = {
            "pixel_size_um": self.pixel_size_um > 0,
            "sigma_um": self.sigma_um >= 0,
            "outline_sigma_um": self.outline_sigma_um >= 0,
            "background_radius_um": self.background_radius_um >= 0,
            "threshold_od": self.threshold_od > 0,
            "seed_distance_um": self.seed_distance_um > 0,
            "shape_split_h_um": self.shape_split_h_um > 0,
            "min_area_um2": 0 <= self.min_area_um2 < self.max_area_um2,
            "cell_expansion_um": self.cell_expansion_um >= 0,
            "positive_threshold_od": self.positive_threshold_od > 0,
            "dab_background_um": self.dab_background_um >= 0,
            "dab_background_floor_od": self.dab_background_floor_od >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid cell detection settings: {', '.join(bad)}")
        if self.compartment not in get_args(Compartment):
            raise ConfigError(
                f"compartment {self.compartment!r}: expected cell, cytoplasm or nucleus"
            )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class CellTable:
    """Detected cells of one tile (or a whole image), one entry per cell.

    Coordinates are in the pixels of the tile analysed (``y``, ``x`` are centroids of the
    nucleus); measurements are means over the compartment named (QuPath's, not corrected).
    ``dab_background_od`` is the stroma's DAB around the cell (module docstring, step 10),
    averaged over the compartment judged; a cell is ``positive`` when that compartment's
    mean DAB OD less this background reaches the threshold. ``nucleus_ellipse_fill`` is the
    nucleus's area over that of the ellipse with its second moments (1 for an ellipse, less
    for any other shape; :func:`ellipse_fill`).
    """

    y: F64
    x: F64
    nucleus_area_um2: F64
    nucleus_ellipse_fill: F64
    cell_area_um2: F64
    haematoxylin_nucleus_od: F64
    dab_nucleus_od: F64
    dab_cytoplasm_od: F64
    dab_cell_od: F64
    dab_background_od: F64
    positive: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def dab_od(self, compartment: Compartment) -> F64:
        """Each cell's mean DAB OD in ``compartment``, as QuPath measures it."""
        od: F64 = getattr(self, _COMPARTMENT_FIELDS[compartment])
        return od

    def dab_above_background_od(self, compartment: Compartment) -> F64:
        """Each cell's mean DAB OD in ``compartment`` less the DAB background around it
        (what positivity is judged on)."""
        return np.asarray(self.dab_od(compartment) - self.dab_background_od, dtype=np.float64)

    def take(self, index: NDArray[np.bool_] | NDArray[np.intp]) -> CellTable:
        return CellTable(*(np.asarray(getattr(self, f))[index] for f in self.__dataclass_fields__))

    @staticmethod
    def empty() -> CellTable:
        z = np.zeros(0, dtype=np.float64)
        columns = {f: z for f in CellTable.__dataclass_fields__ if f != "positive"}
        return CellTable(**columns, positive=np.zeros(0, dtype=bool))

    @staticmethod
    def concat(tables: list[CellTable]) -> CellTable:
        if not tables:
            return CellTable.empty()
        return CellTable(
            *(
                np.concatenate([np.asarray(getattr(t, f)) for t in tables])
                for f in CellTable.__dataclass_fields__
            )
        )

    def shifted(self, dy: float, dx: float, scale: float = 1.0) -> CellTable:
        """The same cells with coordinates ``(y, x) * scale + (dy, dx)``."""
        return replace(self, y=self.y * scale + dy, x=self.x * scale + dx)


@dataclass(frozen=True)
class Segmentation:
    """Label images of a tile: nucleus and cell labels (0 = none; label i is table row i−1)."""

    nuclei: I32
    cells: I32


def _run_extreme(a: F32, size: int, axis: int, fn: np.ufunc) -> F32:
    """Minimum or maximum (``fn`` = ``np.minimum`` / ``np.maximum``) over a window of ``size``
    pixels along ``axis``, centred as scipy centres it, the image reflected at its edges.

    Windows of 2, 4, 8 … pixels are built by combining two shifted copies of the previous
    ones; the last step combines two overlapping windows of the largest power of two. The
    cost is log2(size) array operations (the doubling behind van Herk 1992 and Gil & Werman
    1993), and the result is exactly :func:`scipy.ndimage.minimum_filter1d` /
    ``maximum_filter1d`` with ``mode="reflect"``.
    """
    if size <= 1:
        return a
    lo = size // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (lo, size - 1 - lo)
    m = np.pad(a, pad, mode="symmetric")
    n = a.shape[axis]

    def cut(start: int, stop: int) -> tuple[slice, slice]:
        return (slice(start, stop), slice(None)) if axis == 0 else (slice(None), slice(start, stop))

    span = 1
    while span * 2 <= size:
        length = m.shape[axis]
        m = fn(m[cut(0, length - span)], m[cut(span, length)])
        span *= 2
    if span < size:
        m = fn(m[cut(0, n)], m[cut(size - span, size - span + n)])
    return np.asarray(m[cut(0, n)], dtype=a.dtype)


def _square_extreme(a: F32, size: int, fn: np.ufunc) -> F32:
    """Minimum or maximum over a ``size``×``size`` square (separable: rows, then columns)."""
    return _run_extreme(_run_extreme(a, size, 0, fn), size, 1, fn)


def _opening_background(img: F32, radius_px: int) -> F32:
    """Morphological opening with a square window of side ``2·radius_px + 1`` (reflected edges):
    the minimum, then the maximum, over the square; the same as
    ``scipy.ndimage.grey_opening(img, size=(w, w))``."""
    if radius_px < 1:
        return np.zeros_like(img)
    size = 2 * radius_px + 1
    return _square_extreme(_square_extreme(img, size, np.minimum), size, np.maximum)


def _local_maxima(img: F32, mask: NDArray[np.bool_], distance_px: int, floor: float) -> I32:
    """Seeds: pixels equal to the maximum of their (2d+1)² window, above ``floor``, in mask.

    The window is reflected at the array's edge, as the image would be if it went on as its
    mirror image (the convention of every other filter here).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    d = max(distance_px, 1)
    mx = _square_extreme(img, 2 * d + 1, np.maximum)
    peaks = (img >= mx) & mask & (img > floor)
    # peaks within one window of each other are equal (each is the other's window maximum):
    # a plateau, or equal tops of one smooth oval (its blurred image peaks at two points
    # of its long axis, in a pixel staircase); each such group is one seed, as a plateau
    at = np.flatnonzero(peaks.ravel())
    seeds = np.zeros(img.shape, dtype=np.int32)
    if at.size == 0:
        return seeds
    yx = np.column_stack(np.divmod(at, img.shape[1]))
    pairs = cKDTree(yx).query_pairs(d, p=np.inf, output_type="ndarray")
    graph = coo_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(at.size,) * 2
    )
    _, group = connected_components(graph, directed=False)
    seeds.ravel()[at] = group.astype(np.int32) + 1
    return seeds


def _seeds_per_object(
    objects: I32, seeds: I32, n_objects: int, n_seeds: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.intp]]:
    """Which seeds lie in which object: the distinct (object, seed) pairs over the seeds'
    pixels, and how many distinct seeds each object holds.

    Parameters
    ----------
    objects
        Object labels 0…``n_objects`` (0: no object).
    seeds
        Seed labels 0…``n_seeds`` (0: no seed), of the same shape. A seed that straddles two
        objects counts in both.

    Returns
    -------
    (pair_object, pair_seed, seeds_in_object)
        The object and the seed of each pair, ordered by object, then by seed; and, for each
        object label 0…``n_objects``, the number of distinct seeds on it (at 0: on no object).
    """
    at = np.flatnonzero(seeds.ravel())
    base = n_seeds + 1
    pairs = np.unique(objects.ravel()[at].astype(np.int64) * base + seeds.ravel()[at])
    pair_object = pairs // base
    return pair_object, pairs % base, np.bincount(pair_object, minlength=n_objects + 1)


def _flood(img: F32, seeds: I32, mask: NDArray[np.bool_]) -> I32:
    """Watershed of ``-img`` from ``seeds`` within ``mask`` (4-connected, as skimage's
    default), one connected piece of the mask at a time where that is cheaper.

    A flood cannot leave the 4-connected piece of the mask it starts in, so a piece holding
    one seed is that seed's object entirely and a piece holding none stays 0; only pieces with
    two or more seeds need the watershed, which runs on them alone, laid in a mosaic
    (:func:`_mosaic`). The result is the whole-tile watershed's, except possibly the order in
    which pixels of exactly equal value are visited.
    """
    from nkpanel.uterine._skimage import watershed

    pieces, n_pieces = ndi.label(mask)
    if n_pieces == 0:
        return np.zeros(mask.shape, dtype=np.int32)
    pair_piece, pair_seed, per_piece = _seeds_per_object(pieces, seeds, n_pieces, int(seeds.max()))
    label_of = np.zeros(n_pieces + 1, dtype=np.int32)
    one = per_piece[pair_piece] == 1
    label_of[pair_piece[one]] = pair_seed[one]
    labels: I32 = np.asarray(label_of[pieces], dtype=np.int32)
    several = per_piece >= 2
    several[0] = False
    if several.any():
        tiles, src, dst = _mosaic(pieces, several)
        values = np.zeros(tiles.shape, dtype=np.float32)
        values.ravel()[dst] = -img.ravel()[src]
        marks = np.zeros(tiles.shape, dtype=np.int32)
        marks.ravel()[dst] = seeds.ravel()[src]
        flooded = np.asarray(watershed(values, marks, mask=tiles > 0), dtype=np.int32)
        labels.ravel()[src] = flooded.ravel()[dst]
    return labels


def _label_seedless(labels: I32, mask: NDArray[np.bool_]) -> I32:
    """Give each above-threshold piece that no seed reached a label of its own.

    A pale nucleus whose strongly smoothed peak stays below the threshold, or that lies
    beside a darker nucleus within the seed distance, has no seed of its own; when it is not
    joined to a seeded object it would be lost although its outline passed the threshold.
    Every thresholded piece is at least one nucleus (as in QuPath, where every region whose
    mean exceeds the threshold is kept; Bankhead et al. 2017); it is one object, the same as
    a watershed from its brightest pixel would give.
    """
    left = mask & (labels == 0)
    if not left.any():
        return labels
    pieces, _ = ndi.label(left)
    start = int(labels.max())
    return np.where(left, pieces + start, labels).astype(np.int32)


def _interior(labels: I32) -> NDArray[np.bool_]:
    """Object pixels whose four neighbours all carry the same label (beyond the array: none).

    The complement, within objects, is skimage's ``find_boundaries(mode="inner")`` with a
    background of 0 outside the array.
    """
    p = np.pad(labels, 1)
    c = p[1:-1, 1:-1]
    return np.asarray(
        (c > 0)
        & (c == p[:-2, 1:-1])
        & (c == p[2:, 1:-1])
        & (c == p[1:-1, :-2])
        & (c == p[1:-1, 2:]),
        dtype=bool,
    )


def _edt_inside(mask: NDArray[np.bool_]) -> F32:
    """Euclidean distance of each mask pixel to the nearest pixel outside it (the array's
    surroundings count as outside), as ``scipy.ndimage.distance_transform_edt`` gives it
    (the square root, in float64, of the exact squared distance; here rounded to float32)."""
    d2 = sq_distance(np.pad(mask, 1))[1:-1, 1:-1]
    return np.sqrt(d2.astype(np.float64)).astype(np.float32)


def _pack(shapes: list[tuple[int, int]], width: int) -> tuple[list[tuple[int, int]], int, int]:
    """Shelf packing, tallest boxes first: top-left corners (in the order given) of boxes laid
    in rows of at most ``width`` pixels, one empty pixel between boxes and between rows;
    returns (corners, mosaic height, mosaic width)."""
    corners: list[tuple[int, int]] = [(0, 0)] * len(shapes)
    y = x = shelf = 0
    w_max = 0
    for i in sorted(range(len(shapes)), key=lambda k: -shapes[k][0]):
        h, w = shapes[i]
        if x > 0 and x + w > width:
            y += shelf + 1
            x = shelf = 0
        corners[i] = (y, x)
        x += w + 1
        shelf = max(shelf, h)
        w_max = max(w_max, x)
    return corners, y + shelf, w_max


def _mosaic(labels: I32, keep: NDArray[np.bool_]) -> tuple[I32, NDArray[np.intp], NDArray[np.intp]]:
    """The objects whose ``keep[label]`` is true, each cut out (its bounding box, other
    objects' pixels blanked) and laid in a mosaic one empty pixel apart.

    Returns the mosaic and, for every pixel of a kept object, its flat index in ``labels``
    and in the mosaic.
    """
    boxes = ndi.find_objects(labels)
    ids = [i for i in range(1, len(boxes) + 1) if keep[i] and boxes[i - 1] is not None]
    shapes = [
        (boxes[i - 1][0].stop - boxes[i - 1][0].start, boxes[i - 1][1].stop - boxes[i - 1][1].start)
        for i in ids
    ]
    side = max(int(math.sqrt(sum(h * w for h, w in shapes))), max(w for _, w in shapes))
    corners, mh, mw = _pack(shapes, side)
    shift_y = np.zeros(len(boxes) + 1, dtype=np.intp)
    shift_x = np.zeros(len(boxes) + 1, dtype=np.intp)
    for i, (cy, cx) in zip(ids, corners, strict=True):
        shift_y[i] = cy - boxes[i - 1][0].start
        shift_x[i] = cx - boxes[i - 1][1].start
    flat = labels.ravel()
    kept = flat != 0 if not keep[0] and keep[1:].all() else keep[flat]  # all: no lookup
    src = np.asarray(np.flatnonzero(kept), dtype=np.intp)
    lab = flat[src]
    row, col = np.divmod(src, labels.shape[1])
    dst = np.asarray((row + shift_y[lab]) * mw + (col + shift_x[lab]), dtype=np.intp)
    mosaic = np.zeros((mh, mw), dtype=np.int32)
    mosaic.ravel()[dst] = lab
    return mosaic, src, dst


def _split_by_shape(labels: I32, h_px: float, min_seed_px: float) -> I32:
    """Second watershed on the distance to each object's edge (splits touching nuclei).

    Only objects holding two or more local maxima of the distance map (at least
    ``min_seed_px`` deep) are examined; in each, maxima whose dynamic exceeds ``h_px``
    (h-maxima, Soille 2003, ch. 6) seed a watershed of the negated distance, within that object
    only.

    The objects are cut out and laid in a mosaic one empty pixel apart (:func:`_mosaic`), and
    the cores of the candidates again in a smaller one, so that one distance transform, one
    h-maxima transform and one watershed treat them all, on fewer pixels than the tile holds.
    This is the same as treating them one by one: each object's distance map is 0 on its
    outline, and all three operations are local to the connected pieces of a mosaic (a
    morphological reconstruction cannot carry a value across the 0 between objects). Only the
    order in which a watershed visits pixels of exactly equal distance can differ.
    """
    from nkpanel.uterine._skimage import watershed

    n_obj = int(labels.max())
    everything = np.ones(n_obj + 1, dtype=bool)
    everything[0] = False
    objects, src1, dst1 = _mosaic(labels, everything)
    dist = _edt_inside(_interior(objects))
    # candidates: objects with two or more regional-maximum plateaus deep enough to seed
    peaks = (dist >= min_seed_px) & (dist >= _square_extreme(dist, 3, np.maximum))
    eight = np.ones((3, 3), dtype=bool)
    seeds, n_seeds = ndi.label(peaks, structure=eight)
    if n_seeds < 2:
        return labels
    _, _, seeds_in = _seeds_per_object(objects, seeds, n_obj, n_seeds)
    # h-maxima of an object whose deepest point is less than h are empty (skimage's rule)
    at = np.flatnonzero(seeds.ravel())
    deepest = np.zeros(n_obj + 1, dtype=np.float32)
    np.maximum.at(deepest, objects.ravel()[at], dist.ravel()[at])
    candidate = (seeds_in >= 2) & (deepest >= np.float32(h_px))
    candidate[0] = False
    if not candidate.any():
        return labels
    # h-maxima on the candidates' cores, cut out again into a smaller mosaic: whether a pixel
    # at least min_seed deep is an h-maximum depends only on paths whose lowest point lies
    # above min_seed − h (anything lower is ≤ its value − h)
    floor = min_seed_px - h_px
    core = objects if floor < 0 else np.where(dist > floor, objects, 0).astype(np.int32)
    cores, src2, dst2 = _mosaic(core, candidate)
    d = np.zeros(cores.shape, dtype=np.float32)
    d.ravel()[dst2] = dist.ravel()[src2]
    marks, n_marks = _h_maxima_marks(d, h_px, min_seed_px)
    if n_marks < 2:
        return labels
    # objects with two or more seeds are split; the others keep their label. Each seed lies
    # in one object (it is at least min_seed deep, and objects lie apart in the mosaic), so
    # the pairs name every seed once, in the order of the objects, then of their seeds: the
    # order of the new labels (as one by one)
    mark_object, mark, n_per = _seeds_per_object(cores, marks, n_obj, n_marks)
    split_marks = mark[n_per[mark_object] >= 2]
    if split_marks.size == 0:
        return labels
    new_id = np.zeros(n_marks + 1, dtype=np.int32)
    new_id[split_marks] = np.arange(n_obj + 1, n_obj + 1 + split_marks.size, dtype=np.int32)
    # the seeds back in the mosaic of whole objects; a watershed of the split ones there
    seeds_o = np.zeros(objects.shape, dtype=np.int32)
    seeds_o.ravel()[src2] = new_id[marks.ravel()[dst2]]
    split = n_per >= 2
    split[0] = False
    in_split = split[objects]
    d_o = np.where(in_split, dist, np.float32(0.0))
    objects = np.where(in_split, watershed(-d_o, seeds_o, mask=in_split), objects)
    out = labels.copy()
    out.ravel()[src1] = objects.ravel()[dst1]
    return out


def _h_maxima(image: F32, h: float) -> NDArray[np.bool_]:
    """:func:`skimage.morphology.h_maxima` (8-connected) of a float32 image, as a mask.

    The same arithmetic as scikit-image's: the marker is ``image − h − 2·res·|image|``
    (``res`` the float32 resolution, against rounding), reconstructed by dilation under the
    image; pixels whose residue ``image − reconstruction`` reaches ``h`` are the h-maxima
    (Soille 2003, ch. 6). A reconstruction takes its values from the marker and the image
    only (each pixel gets the largest, over paths, of the least value along the path), so
    any exact algorithm gives the same numbers: here iterated elementary geodesic dilations
    (:func:`_reconstruct_by_dilation`).
    """
    found = _h_reconstruction(image, h)
    return found[1] if found is not None else np.zeros(image.shape, dtype=bool)


def _h_reconstruction(image: F32, h: float) -> tuple[F32, NDArray[np.bool_]] | None:
    """The h-reconstruction of ``image`` (``rec``) and its h-maxima (:func:`_h_maxima`); None
    when ``h`` exceeds the image's range (no h-maxima: scikit-image's rule)."""
    if h > np.ptp(image):  # h > 0: DetectionSettings refuses a shape_split_h_um of 0
        return None
    resolution = 2 * np.finfo(image.dtype).resolution * np.abs(image)
    rec = _reconstruct_by_dilation(image - h - resolution, image)
    return rec, np.asarray((image - rec) >= h, dtype=bool)


def _h_maxima_marks(image: F32, h: float, min_value: float) -> tuple[I32, int]:
    """Watershed markers from the h-maxima of ``image``: one label per dome, not per pixel.

    The h-maxima (:func:`_h_maxima`, scikit-image's) are the pixels whose residue over the
    h-reconstruction ``rec`` reaches ``h``. A dome with several tops of equal height (the
    distance map of an oval nucleus rises to the same value at two or three points of its
    ridge, in a pixel staircase) gives several such pixels, not 8-connected, whose dynamic
    between one another is far less than ``h``: labelled one by one, they split a single
    convex nucleus. They belong to one regional maximum of ``rec`` (the h-dome's plateau, at
    the tops' height less ``h``), and the regional maxima of ``rec`` are the extended
    maxima (Soille 2003, §6.3.4: EMAX_h = RMAX(HMAX_h)); so each top takes the label of its
    plateau, the 8-connected piece of pixels no lower than any neighbour in ``rec``.

    Only tops at least ``min_value`` high mark; returns the marker image (0: none) and the
    number of labels.
    """
    found = _h_reconstruction(image, h)
    if found is None:
        return np.zeros(image.shape, dtype=np.int32), 0
    rec, tops = found
    tops &= image >= min_value
    if not tops.any():
        return np.zeros(image.shape, dtype=np.int32), 0
    # a pixel of a regional maximum of rec is no lower than its neighbours, and an
    # 8-connected piece of such pixels is flat (a higher neighbour would exclude it)
    flat = rec >= _square_extreme(rec, 3, np.maximum)
    plateaus, n = ndi.label(flat, structure=np.ones((3, 3), dtype=bool))
    used = np.zeros(n + 1, dtype=bool)
    used[plateaus[tops]] = True
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[used] = np.arange(1, int(used.sum()) + 1, dtype=np.int32)
    marks = np.where(tops, lut[plateaus], 0).astype(np.int32)
    return marks, int(used.sum())


def _reconstruct_by_dilation(marker: F32, mask: F32) -> F32:
    """Morphological reconstruction by dilation of ``marker`` (≤ ``mask``) under ``mask``,
    8-connected, nothing beyond the array: elementary geodesic dilations (the 3×3 maximum,
    then the minimum with the mask) repeated until nothing changes (Vincent 1993, §III).

    References
    ----------
    Vincent L. Morphological grayscale reconstruction in image analysis: applications and
    efficient algorithms. IEEE Trans Image Process 1993;2:176-201.
    """
    h, w = marker.shape
    padded = np.full((h + 2, w + 2), -np.inf, dtype=marker.dtype)
    rec = padded[1:-1, 1:-1]
    rec[...] = marker
    rows = np.empty((h + 2, w), dtype=marker.dtype)
    grown = np.empty((h, w), dtype=marker.dtype)
    while True:
        np.maximum(padded[:, :-2], padded[:, 1:-1], out=rows)
        np.maximum(rows, padded[:, 2:], out=rows)
        np.maximum(rows[:-2], rows[1:-1], out=grown)
        np.maximum(grown, rows[2:], out=grown)
        np.minimum(grown, mask, out=grown)
        if np.array_equal(grown, rec):
            return np.array(rec)
        rec[...] = grown


def _expand_labels(labels: I32, distance_px: int) -> I32:
    """Grow each label into the background pixels within ``distance_px`` whose nearest label
    pixel (Euclidean) is its own; labels never overlap.

    The result is :func:`skimage.segmentation.expand_labels`' (from CellProfiler's
    "IdentifySecondaryObjects, Distance-N"), which takes each pixel's nearest label pixel from
    SciPy's exact Euclidean feature transform (Maurer et al. 2003). That transform works one
    axis after the other: down each column the nearest feature, the upper one on a tie; then
    along each row the column whose candidate is nearest, the leftmost on a tie (its lower
    envelope keeps a parabola on equality and its scan moves on only to a strictly nearer
    one). So the pixel taken is the nearest label pixel, ties broken by smaller column, then
    smaller row. Here both steps look only ``distance_px`` pixels away (farther pixels are
    never grown into): the column step by doubling
    (:func:`~nkpanel.uterine._kernels.column_gaps`), the row step as ``2·distance_px + 1``
    shifted minima of one packed key per pixel, squared distance, then column, then the row
    offset that names the pixel; everything in small integers.

    References
    ----------
    Maurer CR, Qi R, Raghavan V. A linear time algorithm for computing exact Euclidean
    distance transforms of binary images in arbitrary dimensions. IEEE TPAMI 2003;25:265-270.
    """
    r = distance_px
    background = labels == 0
    if not background.any() or background.all() or r < 1:
        return labels
    h, w = labels.shape
    if r > _MAX_EXPAND_PX or h * w >= 2**31:
        return _expand_labels_edt(labels, r)
    up, down = column_gaps(~background, r + 1)
    # the column's candidate: its offset (r − up or r + down, in 0…2r) and squared distance
    take_up = up <= down
    gap = np.minimum(up, down).astype(np.uint32)
    offset = np.where(
        take_up,
        np.uint16(r) - np.minimum(up, np.uint16(r)),
        np.uint16(r) + np.minimum(down, np.uint16(r)),
    )
    bits = (2 * r).bit_length()
    key = (gap * gap) << np.uint32(2 * bits) | offset
    beyond = np.uint32((r * r + 1) << (2 * bits))  # every key from here on is too far
    padded = np.full((h, w + 2 * r), beyond, dtype=np.uint32)
    padded[:, r : r + w] = key
    best = np.full((h, w), beyond, dtype=np.uint32)
    shifted = np.empty((h, w), dtype=np.uint32)
    for dx in range(-r, r + 1):  # left to right: on equal distance the leftmost column wins
        np.add(
            padded[:, r + dx : r + dx + w],
            np.uint32((dx * dx << 2 * bits) | (dx + r) << bits),
            out=shifted,
        )
        np.minimum(best, shifted, out=best)
    hit = best < beyond
    low = np.uint32((1 << bits) - 1)
    source = ((best >> np.uint32(bits)) & low).astype(np.int32) - r
    source += ((best & low).astype(np.int32) - r) * w
    source += np.arange(h * w, dtype=np.int32).reshape(h, w)
    source *= hit
    out = labels.ravel().take(source.ravel()).reshape(h, w)
    out *= hit
    return np.asarray(out, dtype=np.int32)


def _expand_labels_edt(labels: I32, distance_px: int) -> I32:
    """:func:`_expand_labels` on SciPy's whole feature transform (for distances too large
    for the packed keys there), with the distance compared in integers (squared)."""
    background = labels == 0
    if not background.any() or background.all():
        return labels
    iy, ix = ndi.distance_transform_edt(background, return_distances=False, return_indices=True)
    dy = iy - np.arange(labels.shape[0], dtype=iy.dtype)[:, None]
    dx = ix - np.arange(labels.shape[1], dtype=ix.dtype)[None, :]
    near = dy * dy + dx * dx <= distance_px * distance_px
    out = np.zeros_like(labels)
    out[near] = labels[iy[near], ix[near]]
    return out


def dab_background(
    dab: F32, exclude: NDArray[np.bool_], block_px: int, floor_od: float = 0.02
) -> F32:
    """The DAB of the stroma around each pixel: the median DAB OD of the pixels not in
    ``exclude`` (nuclei), per square block of ``block_px``, interpolated bilinearly between
    block centres, less ``floor_od`` and never below 0.

    A block with fewer than a quarter of its pixels outside ``exclude`` (a crowd of nuclei,
    the image's last partial block) takes the value of the nearest block measured; with none
    measured the background is 0. See the module docstring (step 10) for why.

    Parameters
    ----------
    dab
        H×W DAB optical density.
    exclude
        H×W mask of pixels left out of the median (the nuclei: a DAB-coloured nucleus is
        a cell's own, never the stroma's).
    block_px
        Block side in pixels.
    floor_od
        Background up to this is unstained stroma's (a colour cast of the white point) and
        is not subtracted.

    Examples
    --------
    >>> import numpy as np
    >>> dab = np.full((64, 64), 0.3, np.float32)  # a field evenly brown
    >>> round(float(dab_background(dab, np.zeros((64, 64), bool), 16)[32, 32]), 3)
    0.28
    """
    h, w = dab.shape
    nby, nbx = -(-h // block_px), -(-w // block_px)
    v = np.full((nby * block_px, nbx * block_px), np.nan, dtype=np.float32)
    v[:h, :w] = np.where(exclude, np.float32(np.nan), dab)
    blocks = v.reshape(nby, block_px, nbx, block_px).transpose(0, 2, 1, 3).reshape(nby, nbx, -1)
    valid = np.count_nonzero(~np.isnan(blocks), axis=2)
    enough = valid >= (block_px * block_px) // 4
    if not enough.any():
        return np.zeros((h, w), dtype=np.float32)
    med = np.full((nby, nbx), np.nan, dtype=np.float64)
    # each block's median over its valid pixels: NaN sorts last, so the valid ones come first
    # (np.nanmedian gives the same numbers with a Python call per block)
    ordered = np.sort(blocks[enough], axis=1)
    k = valid[enough]
    rows = np.arange(k.size)
    med[enough] = (ordered[rows, (k - 1) // 2] + ordered[rows, k // 2]) / np.float32(2)
    if not enough.all():
        # a block of too few stroma pixels (a crowd of nuclei, the image's last partial
        # block) takes its nearest measured neighbour's value: a 0 there pulled the
        # background down over a block's width, and cells among red cells read positive
        _, (iy, ix) = ndi.distance_transform_edt(~enough, return_indices=True)
        med = med[iy, ix]
    med = np.maximum(med - floor_od, 0.0).astype(np.float32)
    full = ndi.zoom(med, block_px, order=1, mode="nearest", grid_mode=True)
    return np.asarray(full[:h, :w], dtype=np.float32)


def ellipse_fill(
    label: NDArray[np.integer], row: NDArray[np.integer], col: NDArray[np.integer], n: int
) -> F64:
    """Each object's area over that of the ellipse with the same second moments.

    With ``μ`` the central second moments of an object's pixels (each pixel a unit square,
    so ``1/12`` is added to each variance), the ellipse with those moments has area
    ``4π √(μ_yy μ_xx − μ_xy²)``; the ratio is 1 for an ellipse of any size, elongation or
    orientation, and less for any other shape (the ellipse has the least affine moment
    invariant ``I1 = det μ / A⁴`` of all plane shapes, ``1 / 16π²``; Flusser & Suk 1993).
    Two touching equal discs (or, by affine invariance, two equal ellipses touching end to
    end or side by side) read ``2π / (4π √(5/16)) = 0.894``; a square, ``3/π = 0.955``.
    A cheap stand-in for solidity: sums over pixels, no convex hull.

    Parameters
    ----------
    label, row, col
        For each pixel of an object: its label (1..n−1) and its row and column.
    n
        One more than the largest label; entry 0 of the result is meaningless (NaN).

    References
    ----------
    Flusser J, Suk T. Pattern recognition by affine moment invariants. Pattern Recognit
    1993;26:167-174.

    Examples
    --------
    >>> yy, xx = np.mgrid[:80, :80]
    >>> disc = (yy - 40) ** 2 + (xx - 20) ** 2 < 100
    >>> pair = disc | ((yy - 40) ** 2 + (xx - 40) ** 2 < 100)
    >>> r, c = np.nonzero(disc)
    >>> round(float(ellipse_fill(np.ones(r.size, int), r, c, 2)[1]), 3)
    0.996
    >>> r, c = np.nonzero(pair)  # two touching discs: 0.894 in the continuum
    >>> round(float(ellipse_fill(np.ones(r.size, int), r, c, 2)[1]), 3)
    0.882
    """
    lab = np.asarray(label).ravel()
    y = np.asarray(row, dtype=np.float64).ravel()
    x = np.asarray(col, dtype=np.float64).ravel()
    area = np.bincount(lab, minlength=n).astype(np.float64)
    sum_y = np.bincount(lab, weights=y, minlength=n)
    sum_x = np.bincount(lab, weights=x, minlength=n)
    return _ellipse_fill(lab, y, x, area, sum_y, sum_x)


def _ellipse_fill(
    lab: NDArray[np.integer], y: F64, x: F64, area: F64, sum_y: NDArray[Any], sum_x: NDArray[Any]
) -> F64:
    """:func:`ellipse_fill` from each object's pixel count ``area`` and the sums of its rows
    ``sum_y`` and columns ``sum_x`` (``y``, ``x``: each pixel's, as float64), for a caller
    that has them (:func:`detect_cells`: the nuclei's areas and centroids)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        my = sum_y / area
        mx = sum_x / area
        dy, dx = y - my[lab], x - mx[lab]
        n = area.size
        syy = np.bincount(lab, weights=dy * dy, minlength=n) / area + 1.0 / 12.0
        sxx = np.bincount(lab, weights=dx * dx, minlength=n) / area + 1.0 / 12.0
        sxy = np.bincount(lab, weights=dy * dx, minlength=n) / area
        fill: F64 = area / (4.0 * math.pi * np.sqrt(np.maximum(syy * sxx - sxy * sxy, 1e-12)))
    fill[0] = np.nan
    return fill


def _relabel(labels: I32, keep: NDArray[np.bool_]) -> I32:
    lut = np.zeros(keep.shape[0], dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


def detect_cells(
    haematoxylin: F32,
    dab: F32,
    settings: DetectionSettings,
    *,
    return_labels: bool = False,
) -> tuple[CellTable, Segmentation | None]:
    """Detect nuclei and cells in one tile and measure their DAB staining.

    Parameters
    ----------
    haematoxylin, dab
        H×W optical densities (QuPath units) at ``settings.pixel_size_um``.
    settings
        Detection and positivity settings (microns).
    return_labels
        Also return the nucleus and cell label images (for overlays and outlines).

    Returns
    -------
    (cells, segmentation)
        The cell table (centroids in tile pixels) and, when asked, the label images.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:64, :64]
    >>> h = (0.6 * (((yy - 32) ** 2 + (xx - 32) ** 2) < 36)).astype(np.float32)
    >>> cells, _ = detect_cells(h, np.zeros_like(h), DetectionSettings())
    >>> len(cells), bool(cells.positive[0])
    (1, False)
    """

    s = settings
    um = s.pixel_size_um
    h = np.asarray(haematoxylin, dtype=np.float32)
    d = np.asarray(dab, dtype=np.float32)
    det = h + d if s.detection_image == "haematoxylin+dab" else h
    bg = _opening_background(det, round(s.background_radius_um / um))
    raw = det - bg
    sub = raw
    if s.sigma_um > 0:
        sub = np.asarray(ndi.gaussian_filter(raw, s.sigma_um / um, truncate=3.0), np.float32)
    edge = raw
    if s.outline_sigma_um > 0:
        edge = np.asarray(
            ndi.gaussian_filter(raw, s.outline_sigma_um / um, truncate=3.0), np.float32
        )
    mask = edge > s.threshold_od
    if s.max_background_od > 0:
        mask &= bg <= s.max_background_od
    px_area = um * um
    min_px = max(1, round(s.min_area_um2 / px_area))
    mask = fill_small_holes(mask, min_px)
    seeds = _local_maxima(sub, mask, round(s.seed_distance_um / um), s.threshold_od)
    labels = _flood(sub, seeds, mask)
    labels = _label_seedless(labels, mask)
    if s.split_by_shape and labels.max() > 0:
        labels = _split_by_shape(labels, s.shape_split_h_um / um, s.seed_distance_um / um / 2)
    n = int(labels.max())
    if n == 0:
        empty = Segmentation(labels, labels) if return_labels else None
        return CellTable.empty(), empty
    flat = labels.ravel()
    area_px = np.bincount(flat, minlength=n + 1).astype(np.float64)
    keep = (area_px * px_area >= s.min_area_um2) & (area_px * px_area <= s.max_area_um2)
    keep[0] = False
    nuclei = _relabel(labels, keep)
    n = int(keep.sum())
    if n == 0:
        empty = Segmentation(nuclei, nuclei) if return_labels else None
        return CellTable.empty(), empty
    expand_px = round(s.cell_expansion_um / um)
    cells = _expand_labels(nuclei, expand_px) if expand_px > 0 else nuclei
    # per-cell sums over the pixels of cells only, and per-nucleus sums over the pixels of
    # nuclei only (each in image order, as over the whole tile)
    at = np.flatnonzero(cells.ravel())
    cf = cells.ravel()[at]
    m = n + 1
    cell_px = np.bincount(cf, minlength=m).astype(np.float64)
    at_n = np.flatnonzero(nuclei.ravel())
    nf = nuclei.ravel()[at_n]
    nuc_px = np.bincount(nf, minlength=m).astype(np.float64)
    row, col = np.divmod(at_n, nuclei.shape[1])
    ry, rx = row.astype(np.float64), col.astype(np.float64)
    cy = np.bincount(nf, weights=ry, minlength=m)
    cx = np.bincount(nf, weights=rx, minlength=m)
    h_nuc = np.bincount(nf, weights=h.ravel()[at_n].astype(np.float64), minlength=m)
    ring_px = cell_px - nuc_px

    def means(image: F32) -> dict[Compartment, F64]:
        """Each cell's mean of ``image`` in each compartment (the ring: the cell less its
        nucleus; the nucleus's mean where no ring is left)."""
        in_cell = np.bincount(cf, weights=image.ravel()[at].astype(np.float64), minlength=m)
        in_nuc = np.bincount(nf, weights=image.ravel()[at_n].astype(np.float64), minlength=m)
        with np.errstate(invalid="ignore", divide="ignore"):
            nucleus = in_nuc[1:] / nuc_px[1:]
            ring = (in_cell[1:] - in_nuc[1:]) / np.maximum(ring_px[1:], 1)
            return {
                "nucleus": nucleus,
                "cell": in_cell[1:] / cell_px[1:],
                "cytoplasm": np.where(ring_px[1:] > 0, ring, nucleus),
            }

    dab_means = means(d)
    # the DAB of the stroma around each cell (module docstring, step 10), averaged over the
    # compartment positivity is judged on
    if s.dab_background_um > 0:
        block = max(2, round(s.dab_background_um / um))
        back = dab_background(d, nuclei > 0, block, s.dab_background_floor_od)
        background = means(back)[s.compartment]
    else:
        background = np.zeros(n, dtype=np.float64)
    table = CellTable(
        y=cy[1:] / nuc_px[1:],
        x=cx[1:] / nuc_px[1:],
        nucleus_area_um2=nuc_px[1:] * px_area,
        nucleus_ellipse_fill=_ellipse_fill(nf, ry, rx, nuc_px, cy, cx)[1:],
        cell_area_um2=cell_px[1:] * px_area,
        haematoxylin_nucleus_od=h_nuc[1:] / nuc_px[1:],
        dab_nucleus_od=dab_means["nucleus"],
        dab_cytoplasm_od=dab_means["cytoplasm"],
        dab_cell_od=dab_means["cell"],
        dab_background_od=background,
        positive=dab_means[s.compartment] - background >= s.positive_threshold_od,
    )
    return table, (Segmentation(nuclei, cells) if return_labels else None)
