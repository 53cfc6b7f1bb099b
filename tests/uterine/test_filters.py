"""The fast kernels of detect.py and _kernels.py (square min/max filters, distances, disc
morphology, label expansion, h-maxima) equal SciPy's and scikit-image's, the reference
implementations."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from nkpanel.uterine.detect import _opening_background, _square_extreme


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    size=st.integers(1, 45),
)
def test_square_min_and_max_equal_scipy(seed: int, h: int, w: int, size: int) -> None:
    img = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    ours_min = _square_extreme(img, size, np.minimum)
    ours_max = _square_extreme(img, size, np.maximum)
    assert np.array_equal(ours_min, ndi.minimum_filter(img, size=size, mode="reflect"))
    assert np.array_equal(ours_max, ndi.maximum_filter(img, size=size, mode="reflect"))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), radius=st.integers(1, 20))
def test_opening_equals_scipy_grey_opening(seed: int, radius: int) -> None:
    img = np.random.default_rng(seed).random((37, 53)).astype(np.float32)
    size = 2 * radius + 1
    expected = ndi.grey_opening(img, size=(size, size))
    assert np.array_equal(_opening_background(img, radius), expected)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), level=st.floats(0.3, 0.7))
def test_flood_by_pieces_equals_one_watershed(seed: int, level: float) -> None:
    """Flooding only the mask pieces with several seeds gives skimage's whole-image result."""
    from skimage.segmentation import watershed

    from nkpanel.uterine.detect import _flood, _local_maxima

    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.random((96, 120)), 2.5).astype(np.float32)
    img = (img - img.min()) / (img.max() - img.min())
    mask = img > level
    seeds = _local_maxima(img, mask, 2, level)
    expected = watershed(-img, seeds, mask=mask)
    assert np.array_equal(_flood(img, seeds, mask), expected)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), r=st.integers(1, 9), fill=st.floats(0.02, 0.6))
def test_disc_dilation_and_erosion_equal_scipy(seed: int, r: int, fill: float) -> None:
    """The distance-transform dilation and erosion by a disc (used for the tissue) equal
    SciPy's with the same disc (erosion with everything beyond the array outside the mask)."""
    from nkpanel.uterine._kernels import dilate_disk, disk, erode_disk

    mask = np.random.default_rng(seed).random((41, 57)) < fill
    disc = disk(r)
    assert np.array_equal(dilate_disk(mask, r), ndi.binary_dilation(mask, disc))
    assert np.array_equal(erode_disk(mask, r), ndi.binary_erosion(mask, disc, border_value=0))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    fill=st.floats(0.3, 0.9),
    max_px=st.integers(0, 12),
)
def test_fill_small_holes_equals_scipy(seed: int, h: int, w: int, fill: float, max_px: int) -> None:
    """The holes filled are SciPy's binary_fill_holes' (4-connected background not reaching
    the edge), those of at most max_px pixels only."""
    from nkpanel.uterine._kernels import fill_small_holes

    mask = np.random.default_rng(seed).random((h, w)) < fill
    holes, n = ndi.label(ndi.binary_fill_holes(mask) & ~mask)
    small = np.bincount(holes.ravel(), minlength=n + 1) <= max_px
    small[0] = False
    assert np.array_equal(fill_small_holes(mask, max_px), mask | small[holes])


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 48),
    w=st.integers(1, 48),
    n_labels=st.integers(1, 6),
    fill=st.floats(0.0, 0.5),
    distance=st.integers(0, 16),
)
def test_expand_labels_equals_skimage(
    seed: int, h: int, w: int, n_labels: int, fill: float, distance: int
) -> None:
    """Cell expansion gives skimage's expand_labels exactly, ties between equally near labels
    included (single pixels of random labels make many ties)."""
    from skimage.segmentation import expand_labels

    from nkpanel.uterine.detect import _expand_labels, _expand_labels_edt

    rng = np.random.default_rng(seed)
    labels = (rng.integers(1, n_labels + 1, (h, w)) * (rng.random((h, w)) < fill)).astype(np.int32)
    expected = expand_labels(labels, distance)
    assert np.array_equal(_expand_labels(labels, distance), expected)
    assert np.array_equal(_expand_labels_edt(labels, distance), expected)


def test_expand_labels_ties_on_a_lattice() -> None:
    """Label pixels on a regular lattice: every background pixel midway between two or four
    of them is a tie, settled as skimage (SciPy's feature transform) settles it."""
    from skimage.segmentation import expand_labels

    from nkpanel.uterine.detect import _expand_labels

    labels = np.zeros((40, 44), dtype=np.int32)
    labels[2::6, 3::6] = np.arange(1, labels[2::6, 3::6].size + 1).reshape(labels[2::6, 3::6].shape)
    for distance in (1, 2, 3, 4, 5, 9):
        assert np.array_equal(_expand_labels(labels, distance), expand_labels(labels, distance))


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    fill=st.floats(0.05, 0.95),
    pad=st.booleans(),
)
def test_squared_distance_equals_scipy(seed: int, h: int, w: int, fill: float, pad: bool) -> None:
    """The exact squared distance to the nearest False pixel is SciPy's, with and without a
    limit; the distance inside objects is distance_transform_edt's, rounded to float32."""
    from nkpanel.uterine._kernels import sq_distance
    from nkpanel.uterine.detect import _edt_inside

    inside = np.random.default_rng(seed).random((h, w)) < fill
    if pad:
        inside = np.pad(inside, 1)
    if not inside.all():
        _, (iy, ix) = ndi.distance_transform_edt(inside, return_indices=True)
        dy = iy - np.arange(inside.shape[0])[:, None]
        dx = ix - np.arange(inside.shape[1])[None, :]
        exact = dy * dy + dx * dx
        if (~inside).any(axis=0).all():  # every column holds a False pixel
            assert np.array_equal(sq_distance(inside), exact)
        for limit in (1, 2, 5, 9):
            assert np.array_equal(sq_distance(inside, limit), np.minimum(exact, limit * limit + 1))
    expected = ndi.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1].astype(np.float32)
    assert np.array_equal(_edt_inside(inside), expected)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.floats(0.25, 6.0),
    levels=st.integers(2, 40),
    kind=st.sampled_from(["smooth", "plateaus", "distance"]),
)
def test_h_maxima_equals_skimage(seed: int, h: float, levels: int, kind: str) -> None:
    """The h-maxima (reconstruction by iterated geodesic dilation) are skimage's exactly, on
    smooth images, images of few grey levels (plateaus everywhere) and distance maps."""
    from skimage.morphology import h_maxima

    from nkpanel.uterine.detect import _h_maxima

    rng = np.random.default_rng(seed)
    if kind == "distance":
        img = ndi.distance_transform_edt(rng.random((40, 50)) < 0.8).astype(np.float32)
    else:
        img = ndi.gaussian_filter(rng.random((40, 50)), 2.0) * 10
        if kind == "plateaus":
            img = np.round(img * levels / 10)
        img = img.astype(np.float32)
    assert np.array_equal(_h_maxima(img, h), h_maxima(img, h) > 0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 30), w=st.integers(1, 30))
def test_reconstruction_by_dilation_equals_skimage(seed: int, h: int, w: int) -> None:
    """Iterated geodesic dilation reaches skimage's reconstruction exactly (8-connected)."""
    from skimage.morphology import reconstruction

    from nkpanel.uterine.detect import _reconstruct_by_dilation

    rng = np.random.default_rng(seed)
    mask = np.round(rng.random((h, w)) * 8).astype(np.float32)
    marker = np.where(rng.random((h, w)) < 0.1, mask, mask.min()).astype(np.float32)
    expected = reconstruction(marker, mask, method="dilation")
    assert np.array_equal(_reconstruct_by_dilation(marker, mask), expected)
