"""Morphology and labelling kernels shared by the uterine modules.

Cell detection (:mod:`~nkpanel.uterine.detect`), tissue and epithelium detection
(:mod:`~nkpanel.uterine.tissue`) and the choice of ×400 fields (:mod:`~nkpanel.uterine.fields`)
all need the same few binary-image operations: exact squared Euclidean distances
(:func:`sq_distance`, from the nearest-feature distances down each column,
:func:`column_gaps`; :func:`outside_sq_distance` as erosion counts them), dilation and
erosion by a disc on those distances (:func:`disk`, :func:`dilate_disk`, :func:`erode_disk`)
and the filling of small holes (:func:`fill_small_holes`). Each gives SciPy's numbers exactly
(property tests in ``tests/uterine/test_filters.py``).

The names are public within the package and private to it: nothing here is part of
:mod:`nkpanel.uterine`'s surface.

References
----------
Maurer CR, Qi R, Raghavan V. A linear time algorithm for computing exact Euclidean distance
transforms of binary images in arbitrary dimensions. IEEE TPAMI 2003;25:265-270.
Saito T, Toriwaki J-I. New algorithms for Euclidean distance transformation of an
n-dimensional digitized picture with applications. Pattern Recognit 1994;27:1551-1565.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

__all__ = [
    "column_gaps",
    "dilate_disk",
    "disk",
    "erode_disk",
    "fill_small_holes",
    "outside_sq_distance",
    "sq_distance",
]

BoolArray = NDArray[np.bool_]
U16 = NDArray[np.uint16]


def disk(r: int) -> BoolArray:
    """The pixels within Euclidean distance ``r`` of the centre of a (2r+1)×(2r+1) square."""
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return np.asarray(yy * yy + xx * xx <= r * r, dtype=bool)


def dilate_disk(mask: BoolArray, r: int) -> BoolArray:
    """Binary dilation by :func:`disk` (radius ``r``): the pixels within Euclidean distance
    ``r`` of the mask. The same as ``ndi.binary_dilation(mask, disk(r))``, in time that grows
    with the disc's radius, not its area (:func:`sq_distance`)."""
    if not mask.any():
        return np.zeros_like(mask)
    return np.asarray(sq_distance(~mask, r) <= r * r, dtype=bool)


def erode_disk(mask: BoolArray, r: int) -> BoolArray:
    """Binary erosion by :func:`disk` with everything beyond the array outside the mask (as
    ``ndi.binary_erosion(mask, disk(r))``): the pixels farther than ``r`` from the nearest
    pixel outside the mask."""
    return np.asarray(outside_sq_distance(mask, r) > r * r, dtype=bool)


def outside_sq_distance(mask: BoolArray, limit: int) -> NDArray[np.uint32]:
    """:func:`sq_distance` to the nearest pixel outside ``mask`` with everything beyond the
    array outside it, as :func:`erode_disk` has it (``> r²``: the erosion by a disc of any
    radius ``r`` up to ``limit``)."""
    return sq_distance(np.pad(mask, 1), limit)[1:-1, 1:-1]


def fill_small_holes(mask: BoolArray, max_px: int) -> BoolArray:
    """Fill holes (4-connected pieces of background not reaching the array's edge, as
    :func:`scipy.ndimage.binary_fill_holes` defines them) of at most ``max_px`` pixels."""
    lab, n = ndi.label(~mask)
    if n == 0:
        return mask
    small = np.bincount(lab.ravel(), minlength=n + 1) <= max_px
    small[0] = False
    for edge in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        small[edge] = False
    if not small.any():
        return mask
    return np.asarray(mask | small[lab], dtype=bool)


def column_gaps(feat: BoolArray, cap: int) -> tuple[U16, U16]:
    """Rows from each pixel up to the nearest ``feat`` pixel of its column at or above it, and
    down to the nearest at or below it; ``cap`` when there is none within ``cap − 1`` rows.

    Distances double each step: after the step of ``s`` rows, a pixel knows the nearest
    feature within ``2s − 1`` rows (min-plus doubling, log2(cap) array operations).
    """
    up = (~feat).astype(np.uint16) * np.uint16(cap)
    down = up[::-1].copy()
    span = 1
    while span < cap and span < feat.shape[0]:
        np.minimum(up[span:], up[:-span] + np.uint16(span), out=up[span:])
        np.minimum(down[span:], down[:-span] + np.uint16(span), out=down[span:])
        span *= 2
        if span >= 8 and max(int(up.max()), int(down.max())) < cap:
            break  # every pixel has found its feature both ways
    return np.minimum(up, np.uint16(cap)), np.minimum(down[::-1], np.uint16(cap))


def sq_distance(inside: BoolArray, limit: int | None = None) -> NDArray[np.uint32]:
    """Squared Euclidean distance (exact integers) from each pixel to the nearest False pixel
    of ``inside`` (0 on False pixels); nothing beyond the array counts.

    With ``limit``, only distances up to ``limit`` are worked out: a pixel with no False pixel
    that near gets ``limit² + 1``. Without it, every column must hold a False pixel (pad the
    array with False).

    The exact squared distance is, over the columns, the least of (column offset)² +
    (distance to the nearest False pixel within that column)² (the separable decomposition of
    Saito & Toriwaki 1994 and Maurer et al. 2003); the column distances come by doubling
    (:func:`column_gaps`), the row step as shifted minima over the offsets that can matter,
    at most the largest column distance (or ``limit``) either way.

    References
    ----------
    Saito T, Toriwaki J-I. New algorithms for Euclidean distance transformation of an
    n-dimensional digitized picture with applications. Pattern Recognit 1994;27:1551-1565.
    """
    h, w = inside.shape
    cap = h + 1 if limit is None else limit + 1
    if cap >= 1 << 15:
        d2 = _sq_distance_edt(inside)
        return d2 if limit is None else np.minimum(d2, np.uint32(limit * limit + 1))
    up, down = column_gaps(~inside, cap)
    gap = np.minimum(up, down)
    top = int(gap.max()) if limit is None else cap  # no gap is larger
    reach = min(top if limit is None else limit, w - 1)  # column offsets that can matter
    kind: type[np.unsignedinteger[Any]] = (
        np.uint16 if top * top + reach * reach < 1 << 16 else np.uint32
    )
    sq: NDArray[np.unsignedinteger[Any]] = gap.astype(kind)
    np.multiply(sq, sq, out=sq)
    padded = np.full((h, w + 2 * reach), top * top, dtype=kind)  # beyond: nothing nearer
    padded[:, reach : reach + w] = sq
    best = sq
    shifted = np.empty_like(best)
    for dx in range(1, reach + 1):
        for start in (reach - dx, reach + dx):
            np.add(padded[:, start : start + w], kind(dx * dx), out=shifted)
            np.minimum(best, shifted, out=best)
    if limit is not None:
        np.minimum(best, kind(limit * limit + 1), out=best)
    return best.astype(np.uint32, copy=False)


def _sq_distance_edt(inside: BoolArray) -> NDArray[np.uint32]:
    """:func:`sq_distance` on SciPy's feature transform (arrays too tall for 16-bit gaps)."""
    iy, ix = ndi.distance_transform_edt(inside, return_distances=False, return_indices=True)
    dy = iy.astype(np.int64) - np.arange(inside.shape[0])[:, None]
    dx = ix.astype(np.int64) - np.arange(inside.shape[1])[None, :]
    return np.asarray(dy * dy + dx * dx, dtype=np.uint32)
