"""Colour deconvolution against scikit-image (an outside implementation), hand-made pixels, and
QuPath's own stain strings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nkpanel.errors import ConfigError
from nkpanel.uterine.stains import (
    deconvolve,
    estimate_macenko,
    estimate_white,
    optical_density,
    parse_qupath_stains,
    ruifrok_hdab,
)

#: QuPath 0.5's "H-DAB default" line, as QuPath writes it into a script
QUPATH_DEFAULT = (
    '{"Name" : "H-DAB default", "Stain 1" : "Hematoxylin", "Values 1" : "0.65111 0.70119 0.29049",'
    ' "Stain 2" : "DAB", "Values 2" : "0.26917 0.56824 0.77759", "Background" : " 255 255 255"}'
)


def _angle(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    va, vb = np.asarray(a), np.asarray(b)
    c = float(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb))
    return math.degrees(math.acos(min(1.0, c)))


def test_ihc_regression_against_scikit_image() -> None:
    """skimage.data.immunohistochemistry ships inside scikit-image (no download); our amounts
    equal scikit-image's separate_stains with the same H-DAB matrix times 6 (log10 vs
    ln/ln(1e-6) scales), wherever scikit-image does not clip negatives to 0."""
    from skimage import data
    from skimage.color import rgb_from_hdx, separate_stains

    ihc = data.immunohistochemistry()
    assert ihc.shape == (512, 512, 3)
    h, d = deconvolve(ihc, ruifrok_hdab())
    # scikit-image's rows are unit length to 3 decimals; normalise them as QuPath does
    m = np.array(rgb_from_hdx, dtype=np.float64)
    m[:2] /= np.linalg.norm(m[:2], axis=1, keepdims=True)
    m[2] = np.cross(m[0], m[1]) / np.linalg.norm(np.cross(m[0], m[1]))
    ref = separate_stains(ihc, np.linalg.inv(m)) * 6.0
    # a zero intensity is clamped to 1e-6 by scikit-image and to 1 level here: leave those out
    valid = ihc.min(axis=2) > 0
    assert valid.mean() > 0.99
    for ours, theirs in ((h, ref[..., 0]), (d, ref[..., 1])):
        np.testing.assert_allclose(
            np.maximum(ours, 0)[valid], theirs[valid], rtol=1e-4, atol=1e-4
        )  # float32 arithmetic here, float64 in scikit-image
    # and the image is what it is: a DAB/haematoxylin colon section with both stains present
    assert float(np.percentile(h, 99)) > 0.3
    assert float(np.percentile(d, 99)) > 0.3


def test_hand_made_pure_stain_pixels() -> None:
    """Beer–Lambert by hand: I = 255·10^(−a·s) for a pure stain of amount a."""
    v = ruifrok_hdab()
    s_h = np.asarray(v.haematoxylin)
    s_d = np.asarray(v.dab)
    px = np.stack(
        [
            np.round(255 * 10 ** (-0.5 * s_h)),
            np.round(255 * 10 ** (-0.8 * s_d)),
            np.round(255 * 10 ** (-(0.3 * s_h + 0.4 * s_d))),
            np.array([255.0, 255, 255]),
        ]
    ).astype(np.uint8)[None]
    h, d = deconvolve(px, v)
    np.testing.assert_allclose(h[0], [0.5, 0.0, 0.3, 0.0], atol=0.01)
    np.testing.assert_allclose(d[0], [0.0, 0.8, 0.4, 0.0], atol=0.01)


@settings(max_examples=60, deadline=None)
@given(
    a_h=st.floats(0.0, 1.0),
    a_d=st.floats(0.0, 1.0),
    white=st.tuples(st.integers(200, 255), st.integers(200, 255), st.integers(200, 255)),
)
def test_amounts_recovered_for_any_mixture(
    a_h: float, a_d: float, white: tuple[int, int, int]
) -> None:
    v = ruifrok_hdab(tuple(float(x) for x in white))  # type: ignore[arg-type]
    od = a_h * np.asarray(v.haematoxylin) + a_d * np.asarray(v.dab)
    px = np.clip(np.round(np.asarray(white) * 10 ** (-od)), 1, 255).astype(np.uint8)[None, None]
    h, d = deconvolve(px, v)
    # 8-bit quantisation: half a level at intensity ~25 is ~0.01 OD per channel
    assert abs(float(h[0, 0]) - a_h) < 0.04
    assert abs(float(d[0, 0]) - a_d) < 0.04


def test_optical_density_scale() -> None:
    px = np.array([[[255, 25, 1]]], dtype=np.uint8)
    od = optical_density(px)
    np.testing.assert_allclose(od[0, 0], [0.0, math.log10(255 / 25), math.log10(255)], atol=1e-6)


def test_macenko_on_ihc_is_sane_and_close_to_standard() -> None:
    from skimage import data

    ihc = data.immunohistochemistry()
    est, check = estimate_macenko(ihc)
    assert check.passed, check.reasons
    assert est.source == "macenko"
    std = ruifrok_hdab()
    assert _angle(est.haematoxylin, std.haematoxylin) < 25
    assert _angle(est.dab, std.dab) < 25
    assert _angle(est.haematoxylin, est.dab) > 15


def test_macenko_falls_back_with_reasons() -> None:
    blank = np.full((64, 64, 3), 240, dtype=np.uint8)
    est, check = estimate_macenko(blank)
    assert not check.passed
    assert est.source == "ruifrok"
    assert "stained pixels" in check.reasons[0]
    # a single stain (haematoxylin only): the second direction is noise, far from DAB
    rng = np.random.default_rng(0)
    amounts = rng.uniform(0.2, 1.0, (4000, 1))
    s_h = np.asarray(ruifrok_hdab().haematoxylin)
    od = amounts * s_h + rng.normal(0, 0.01, (4000, 3))
    px = np.clip(np.round(255 * 10 ** (-od)), 1, 255).astype(np.uint8).reshape(-1, 1, 3)
    est2, check2 = estimate_macenko(px, white=(255.0, 255.0, 255.0))
    assert not check2.passed
    assert est2.source == "ruifrok"


def test_qupath_default_string_is_the_standard_vectors() -> None:
    v = parse_qupath_stains(QUPATH_DEFAULT)
    std = ruifrok_hdab()
    assert _angle(v.haematoxylin, std.haematoxylin) < 0.5
    assert _angle(v.dab, std.dab) < 0.5
    assert v.white == (255.0, 255.0, 255.0)
    again = parse_qupath_stains(v.qupath())
    assert _angle(again.dab, v.dab) < 1e-3


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        '{"Values 1" : "0.6 0.7", "Values 2" : "0.2 0.5 0.7"}',
        '{"Stain 1" : "DAB", "Values 1" : "0.2 0.5 0.7", "Stain 2" : "Hematoxylin",'
        ' "Values 2" : "0.6 0.7 0.3"}',
        '{"Values 1" : "a b c", "Values 2" : "0.2 0.5 0.7"}',
    ],
)
def test_bad_qupath_strings(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_qupath_stains(text)


def test_white_point_is_a_high_percentile() -> None:
    img = np.full((100, 100, 3), 120, dtype=np.uint8)
    img[:10] = (240, 236, 230)
    img[0, 0] = (255, 255, 255)  # one glint is ignored
    assert estimate_white(img) == (240.0, 236.0, 230.0)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 5000),
    q=st.floats(0.0, 100.0),
    narrow=st.booleans(),
)
def test_white_point_equals_numpy_percentile(seed: int, n: int, q: float, narrow: bool) -> None:
    """The white point read from per-channel level counts (Pillow's histogram) is NumPy's
    percentile of each channel, floored at 1."""
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, (n, 1, 3)).astype(np.uint8)
    if narrow:  # few levels: many equal values around the percentile
        px = (px // 64 * 64).astype(np.uint8)
    expected = np.maximum(np.percentile(px.reshape(-1, 3), q, axis=0), 1.0)
    assert estimate_white(px, percentile=q) == tuple(float(v) for v in expected)


def test_a_shape_split_depth_of_zero_is_refused() -> None:
    """h-maxima of depth 0 are every plateau: the setting is refused where settings are
    checked, not deep in a tile's detection (where it was a bare ValueError)."""
    from nkpanel.uterine.detect import DetectionSettings

    with pytest.raises(ConfigError, match="shape_split_h_um"):
        DetectionSettings(shape_split_h_um=0)


def test_a_burnt_in_white_scale_bar_does_not_lift_the_white_point() -> None:
    """A camera's scale bar burnt in at pure white over 0.5% of a field lifted the white point
    from 241 to 248 (glass at 241): optical densities shifted, and automatic gland exclusion
    found nothing. Pure white under 1% of the image is left out; saturated glass over more of
    it is the white point itself."""
    from nkpanel.uterine.stains import estimate_white

    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(241, 2, (200, 200, 3)), 0, 255).astype(np.uint8)
    img[:100] = 150  # tissue over half the field
    plain = estimate_white(img)
    barred = img.copy()
    barred[190:192, :100] = 255  # 200 pixels: 0.5%
    assert estimate_white(barred) == plain
    saturated = img.copy()
    saturated[100:] = 255  # glass overexposed over half the field
    assert estimate_white(saturated) == (255.0, 255.0, 255.0)
