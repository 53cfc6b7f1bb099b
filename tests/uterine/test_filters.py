"""The fast square min/max filters of detect.py equal SciPy's (the reference implementation)."""

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
    """tissue.py's distance-transform dilation and erosion by a disc equal SciPy's with the
    same disc (erosion with everything beyond the array outside the mask)."""
    from nkpanel.uterine.tissue import _dilate_disk, _disk, _erode_disk

    mask = np.random.default_rng(seed).random((41, 57)) < fill
    disc = _disk(r)
    assert np.array_equal(_dilate_disk(mask, r), ndi.binary_dilation(mask, disc))
    assert np.array_equal(_erode_disk(mask, r), ndi.binary_erosion(mask, disc, border_value=0))


def test_a_small_invalid_hole_inside_a_nucleus_is_not_measured() -> None:
    """The nucleus keeps its shape over a 3×3 hole of the valid area, but the hole's 9 pixels
    (0.25 µm² each at the default 0.5 µm/px) are left out of what is measured."""
    from nkpanel.uterine.detect import DetectionSettings, detect_cells

    yy, xx = np.mgrid[:96, :96]
    h = (0.6 * (((yy - 48) ** 2 + (xx - 48) ** 2) < 64)).astype(np.float32)
    d = (0.3 * (((yy - 48) ** 2 + (xx - 48) ** 2) < 150)).astype(np.float32)
    valid = np.ones_like(h, dtype=bool)
    valid[47:50, 47:50] = False
    whole, _ = detect_cells(h, d, DetectionSettings())
    holed, _ = detect_cells(h, d, DetectionSettings(), valid=valid)
    assert len(whole) == len(holed) == 1
    assert holed.nucleus_area_um2[0] == whole.nucleus_area_um2[0] - 9 * 0.25
    assert holed.cell_area_um2[0] == whole.cell_area_um2[0] - 9 * 0.25
