"""Colour deconvolution of haematoxylin/DAB brightfield images, on QuPath's optical-density scale.

The scale
---------
Optical density (OD) is the decadic absorbance of each RGB channel against the white point
(the brightness of clear glass) ``I0``::

    OD_c = log10(I0_c / max(I_c, 1))                                   (Beer–Lambert)

so an OD of 1 passes a tenth of the light. A pixel's OD vector is modelled as a sum of stain
vectors of unit length weighted by stain amounts, ``OD = h·s_H + d·s_DAB + r·s_res``
(Ruifrok & Johnston 2001). The amounts ``h`` and ``d`` are what nkpanel calls "haematoxylin OD"
and "DAB OD". This is the scale QuPath uses for its "Hematoxylin OD" and "DAB OD" measurements
(``ColorDeconvolutionStains`` with unit-length stain vectors and a per-channel background), so
a threshold set in QuPath carries over unchanged when the same stain vectors and background
(white point) are used. scikit-image's :func:`skimage.color.separate_stains` computes the same
amounts on a natural-log scale divided by ``ln(10⁻⁶)`` with ``I0 = 255``: its values are
nkpanel's divided by 6 (checked in the tests).

Stain vectors
-------------
* ``ruifrok_hdab()``: the standard H-DAB vectors of Ruifrok & Johnston (2001) as shipped by
  scikit-image (``skimage.color.rgb_from_hdx``), the same values as QuPath's "H-DAB default".
* :func:`estimate_macenko`: vectors estimated from the slide itself (Macenko et al. 2009),
  accepted only when they pass sanity checks (:class:`StainCheck`); otherwise the standard
  vectors are used and the reason is recorded.
* :func:`parse_qupath_stains`: a lab's own vectors, pasted from QuPath's
  ``setColorDeconvolutionStains(...)`` line.

References
----------
Ruifrok AC, Johnston DA. Quantification of histochemical staining by color deconvolution.
Anal Quant Cytol Histol 2001;23:291-299.
Macenko M et al. A method for normalizing histology slides for quantitative analysis. Proc IEEE
ISBI 2009:1107-1110.
Bankhead P et al. QuPath: open source software for digital pathology image analysis. Sci Rep
2017;7:16878.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from nkpanel.errors import ConfigError

__all__ = [
    "StainCheck",
    "StainVectors",
    "deconvolve",
    "estimate_macenko",
    "estimate_white",
    "is_glass_colour",
    "od_table",
    "optical_density",
    "parse_qupath_stains",
    "parse_white_point",
    "ruifrok_hdab",
]

F32 = NDArray[np.float32]
U8 = NDArray[np.uint8]


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    n = float(np.linalg.norm(v))
    if not n > 0:
        raise ConfigError("a stain vector has zero length")
    return v / n


def _angle_deg(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    c = float(np.clip(np.dot(_unit(a), _unit(b)), -1.0, 1.0))
    return math.degrees(math.acos(c))


@dataclass(frozen=True)
class StainVectors:
    """Haematoxylin and DAB stain vectors (unit OD vectors in R, G, B order) and the white point.

    Attributes
    ----------
    haematoxylin, dab
        Unit-length OD vectors.
    white
        The per-channel intensity of clear glass, ``I0`` (QuPath's "Background").
    source
        ``"ruifrok"`` (standard), ``"macenko"`` (estimated from this image), or ``"given"``.
    """

    haematoxylin: tuple[float, float, float]
    dab: tuple[float, float, float]
    white: tuple[float, float, float] = (255.0, 255.0, 255.0)
    source: Literal["ruifrok", "macenko", "given"] = "ruifrok"

    @property
    def residual(self) -> NDArray[np.float64]:
        """The third vector: the unit cross product of the two stains (Ruifrok & Johnston)."""
        return _unit(
            np.cross(np.asarray(self.haematoxylin, float), np.asarray(self.dab, float))
        ).astype(np.float64)

    def matrix(self) -> NDArray[np.float64]:
        """The 3×3 stain matrix, one unit stain vector per row (H, DAB, residual)."""
        return np.vstack(
            [
                _unit(np.asarray(self.haematoxylin, float)),
                _unit(np.asarray(self.dab, float)),
                self.residual,
            ]
        )

    def unmixing(self) -> NDArray[np.float64]:
        """The matrix ``U`` with ``amounts = OD @ U`` (the inverse of :meth:`matrix`)."""
        return np.asarray(np.linalg.inv(self.matrix()), dtype=np.float64)

    def qupath(self) -> str:
        """The same vectors as a QuPath ``setColorDeconvolutionStains`` argument."""
        h = " ".join(f"{v:.5f}" for v in _unit(np.asarray(self.haematoxylin, float)))
        d = " ".join(f"{v:.5f}" for v in _unit(np.asarray(self.dab, float)))
        r = " ".join(f"{v:.5f}" for v in self.residual)
        w = " ".join(f"{round(v)}" for v in self.white)
        return (
            f'{{"Name" : "H-DAB nkpanel {self.source}", "Stain 1" : "Hematoxylin", '
            f'"Values 1" : "{h}", "Stain 2" : "DAB", "Values 2" : "{d}", '
            f'"Stain 3" : "Residual", "Values 3" : "{r}", "Background" : " {w}"}}'
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "haematoxylin": [round(v, 5) for v in _unit(np.asarray(self.haematoxylin, float))],
            "dab": [round(v, 5) for v in _unit(np.asarray(self.dab, float))],
            "white": [round(v, 2) for v in self.white],
            "qupath": self.qupath(),
        }


def ruifrok_hdab(white: tuple[float, float, float] = (255.0, 255.0, 255.0)) -> StainVectors:
    """The standard H-DAB vectors (Ruifrok & Johnston 2001) as scikit-image ships them.

    Examples
    --------
    >>> v = ruifrok_hdab()
    >>> [round(x, 3) for x in v.haematoxylin]
    [0.65, 0.704, 0.286]
    """
    from skimage.color import rgb_from_hdx

    h = _unit(np.asarray(rgb_from_hdx[0], float))
    d = _unit(np.asarray(rgb_from_hdx[1], float))
    return StainVectors(
        (float(h[0]), float(h[1]), float(h[2])),
        (float(d[0]), float(d[1]), float(d[2])),
        white,
        "ruifrok",
    )


_QP_VALUES = re.compile(r'"Values (\d)"\s*:\s*"([^"]*)"')
_QP_BACKGROUND = re.compile(r'"Background"\s*:\s*"([^"]*)"')
_QP_STAIN = re.compile(r'"Stain (\d)"\s*:\s*"([^"]*)"')


def parse_qupath_stains(text: str) -> StainVectors:
    """Read the argument of QuPath's ``setColorDeconvolutionStains(...)``.

    Stain 1 must be haematoxylin and stain 2 DAB (QuPath's H-DAB layout).

    Raises
    ------
    ConfigError
        When the text lacks the two stain vectors or they are not three numbers each.
    """
    values = {int(k): v for k, v in _QP_VALUES.findall(text)}
    names = {int(k): v.lower() for k, v in _QP_STAIN.findall(text)}
    if 1 not in values or 2 not in values:
        raise ConfigError(
            'stain vectors: expected QuPath\'s \'"Values 1" : "r g b"\' and \'"Values 2"\' entries'
        )
    if names and not (names.get(1, "").startswith("hema") and names.get(2, "") == "dab"):
        raise ConfigError(
            f"stain vectors: stain 1 must be Hematoxylin and stain 2 DAB, found {names}"
        )

    def three(s: str, what: str) -> tuple[float, float, float]:
        try:
            parts = [float(x) for x in s.split()]
        except ValueError:
            raise ConfigError(f"stain vectors: {what} {s!r} is not three numbers") from None
        if len(parts) != 3:
            raise ConfigError(f"stain vectors: {what} {s!r} is not three numbers")
        return (parts[0], parts[1], parts[2])

    h = three(values[1], "Values 1")
    d = three(values[2], "Values 2")
    bg = _QP_BACKGROUND.search(text)
    white = three(bg.group(1), "Background") if bg else (255.0, 255.0, 255.0)
    if min(white) <= 0:
        raise ConfigError("stain vectors: the background must be positive in every channel")
    return StainVectors(h, d, white, "given")


def od_table(white: tuple[float, float, float]) -> NDArray[np.float64]:
    """``log10(I0 / max(I, 1))`` for each channel (rows) and each 8-bit level ``I`` (columns):
    every optical density nkpanel takes of an 8-bit image is a lookup in this table."""
    levels = np.maximum(np.arange(256, dtype=np.float64), 1.0)
    return np.log10(np.asarray(white, dtype=np.float64)[:, None] / levels[None, :])


def optical_density(rgb: U8, white: tuple[float, float, float] = (255.0, 255.0, 255.0)) -> F32:
    """Per-channel optical density ``log10(I0 / max(I, 1))`` of an 8-bit RGB image (H×W×3).

    A 256-entry lookup table per channel makes this one gather per pixel.
    """
    out = np.empty(rgb.shape, dtype=np.float32)
    table = od_table(white).astype(np.float32)
    for c in range(3):
        np.take(table[c], rgb[..., c], out=out[..., c])
    return out


def deconvolve(rgb: U8, stains: StainVectors) -> tuple[F32, F32]:
    """Haematoxylin and DAB optical densities (H×W float32 each) of an RGB image.

    Parameters
    ----------
    rgb
        H×W×3 uint8 brightfield image.
    stains
        Stain vectors and white point.

    Returns
    -------
    (haematoxylin, dab)
        Stain amounts on the OD scale described in the module docstring (QuPath units).

    References
    ----------
    Ruifrok & Johnston 2001: amounts = OD · M⁻¹ with M the matrix of unit stain vectors.

    Examples
    --------
    >>> import numpy as np
    >>> h, d = deconvolve(np.full((1, 1, 3), 255, np.uint8), ruifrok_hdab())
    >>> float(h[0, 0]), float(d[0, 0])
    (0.0, 0.0)
    """
    u = stains.unmixing().astype(np.float32)
    white = stains.white
    h = np.zeros(rgb.shape[:2], dtype=np.float32)
    d = np.zeros(rgb.shape[:2], dtype=np.float32)
    table = od_table(white)
    # amounts are linear in the per-channel OD, so each channel adds a looked-up term
    for c in range(3):
        od = table[c]
        h += np.take((od * u[c, 0]).astype(np.float32), rgb[..., c])
        d += np.take((od * u[c, 1]).astype(np.float32), rgb[..., c])
    return h, d


def _percentile_u8(counts: NDArray[np.intp], n: int, q: float) -> float:
    """``numpy.percentile(values, q)`` (linear method) of ``n`` uint8 values given as a
    histogram of 256 counts, with numpy's own index and interpolation arithmetic."""
    virtual = (n - 1) * (np.float64(q) / 100.0)
    lo = int(np.floor(virtual))
    gamma = float(virtual - lo)
    cum = np.cumsum(counts)
    a = float(np.searchsorted(cum, lo, side="right"))
    b = float(np.searchsorted(cum, min(lo + 1, n - 1), side="right"))
    diff = b - a
    return b - diff * (1.0 - gamma) if gamma >= 0.5 else a + diff * gamma


def _channel_counts(px: U8) -> NDArray[np.intp]:
    """How many of the n×3 uint8 pixels have each level (3 rows of 256 counts), counted by
    Pillow's histogram in one pass (a third of three ``numpy.bincount`` calls' time)."""
    if px.shape[0] < 1 << 28:  # Pillow refuses (MemoryError) one-row images of ≥ 2^29 pixels
        from PIL import Image

        row = np.ascontiguousarray(px).reshape(1, -1, 3)
        return np.asarray(Image.fromarray(row).histogram(), dtype=np.intp).reshape(3, 256)
    return np.stack([np.bincount(px[:, c], minlength=256) for c in range(3)])


#: pure-white pixels over less than this share of an image are an overlay (a scale bar, a
#: label the camera software burnt in), left out of the white point; over more, the glass
#: itself is saturated and white is 255
OVERLAY_SHARE = 0.01


def estimate_white(rgb_sample: U8, *, percentile: float = 99.5) -> tuple[float, float, float]:
    """The white point: each channel's ``percentile`` over a sample of the image's pixels.

    Clear glass (or, in a field filled with tissue, the palest stroma) is the brightest thing
    in a brightfield image; a high percentile rather than the maximum ignores dust glints and
    saturated pixels. QuPath's stain estimation sets its "Background" the same way, from the
    brightest pixels. For 8-bit images the percentile is read from each channel's histogram
    (the same value as :func:`numpy.percentile`, without sorting). Pure-white pixels over
    less than :data:`OVERLAY_SHARE` of the sample (a burnt-in scale bar) are left out.
    """
    px = rgb_sample.reshape(-1, 3)
    if px.dtype == np.uint8 and px.shape[0] > 0:
        n = int(px.shape[0])
        counts = _channel_counts(px)
        if bool(np.all(counts[:, 255] > 0)):
            # pure white in every channel over under 1% of the image is an overlay burnt in
            # by the camera software (a scale bar, a label), not glass: left out, it would
            # lift the white point (241 to 248 for a bar over 0.5% of a field)
            white = np.all(px == 255, axis=1)
            k = int(np.count_nonzero(white))
            if 0 < k < OVERLAY_SHARE * n:
                # each pure-white pixel is one count in bin 255 of every channel
                counts[:, 255] -= k
                n -= k
        w = [_percentile_u8(counts[c], n, percentile) for c in range(3)]
        return (max(w[0], 1.0), max(w[1], 1.0), max(w[2], 1.0))
    wp = np.maximum(np.percentile(px, percentile, axis=0), 1.0)
    return (float(wp[0]), float(wp[1]), float(wp[2]))


@dataclass(frozen=True)
class StainCheck:
    """Sanity checks of estimated stain vectors; ``passed`` false means they were not used.

    Limits
    ------
    min_pixels
        500 stained pixels: fewer cannot define a plane robustly.
    max_angle_to_standard_deg
        25°: estimated H and DAB vectors differ from the standard ones by a few to ~15° across
        laboratories' protocols and scanners; more means the estimate caught something else
        (pigment, a third stain, noise).
    min_angle_between_deg
        15°: the standard H and DAB vectors are 37° apart; two estimates closer than 15° cannot
        be unmixed stably (the matrix is near singular).
    """

    passed: bool
    reasons: tuple[str, ...]
    n_pixels: int
    angle_h_deg: float | None
    angle_dab_deg: float | None
    angle_between_deg: float | None
    limits: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "n_pixels": self.n_pixels,
            "angle_h_to_standard_deg": None
            if self.angle_h_deg is None
            else round(self.angle_h_deg, 2),
            "angle_dab_to_standard_deg": None
            if self.angle_dab_deg is None
            else round(self.angle_dab_deg, 2),
            "angle_between_deg": None
            if self.angle_between_deg is None
            else round(self.angle_between_deg, 2),
            "limits": self.limits,
        }


def _stained_od(px: U8, white: tuple[float, float, float], beta: float) -> NDArray[np.float64]:
    """Optical densities (n×3, float64) of the pixels whose OD exceeds ``beta`` in every
    channel, as :func:`optical_density` computes them; the test is made on the 256 levels of
    each channel first, so only the stained pixels are converted."""
    luts = od_table(white).astype(np.float32)
    keep = np.ones(px.shape[0], dtype=bool)
    for c in range(3):
        keep &= np.take(luts[c] > beta, px[:, c])
    sel = px[keep]
    od = np.empty(sel.shape, dtype=np.float64)
    for c in range(3):
        od[:, c] = np.take(luts[c], sel[:, c])
    return od


#: stained pixels a Macenko estimate is made from at most
_MACENKO_PIXELS = 65_536


def estimate_macenko(
    rgb_sample: U8,
    *,
    white: tuple[float, float, float] | None = None,
    beta: float = 0.15,
    alpha: float = 1.0,
    min_pixels: int = 500,
    max_angle_to_standard_deg: float = 25.0,
    min_angle_between_deg: float = 15.0,
) -> tuple[StainVectors, StainCheck]:
    """Estimate H and DAB vectors from the image (Macenko et al. 2009) and check them.

    Method (Macenko 2009, §2): convert to OD; drop pixels with OD < ``beta`` in any channel
    (clear or barely stained); take the plane of the two largest principal directions of the
    remaining OD vectors; project onto it and take the angles at the ``alpha`` and
    ``100 − alpha`` percentiles as the two stains' directions. The estimate closer to the
    standard haematoxylin vector is called haematoxylin.

    Returns
    -------
    (vectors, check)
        When ``check.passed`` is false, ``vectors`` are the standard Ruifrok vectors (with the
        same white point) and ``check.reasons`` says why the estimate was rejected.
    """
    w = white if white is not None else estimate_white(rgb_sample)
    std = ruifrok_hdab(w)
    limits = {
        "beta_od": beta,
        "alpha_percentile": alpha,
        "min_pixels": float(min_pixels),
        "max_angle_to_standard_deg": max_angle_to_standard_deg,
        "min_angle_between_deg": min_angle_between_deg,
    }
    od = _stained_od(rgb_sample.reshape(-1, 3), w, beta)
    n = int(od.shape[0])
    if n < min_pixels:
        reason = f"only {n} stained pixels (OD > {beta} in every channel; need {min_pixels})"
        return std, StainCheck(False, (reason,), n, None, None, None, limits)
    if n > _MACENKO_PIXELS:
        # evenly spaced stained pixels: the principal plane and the 1st/99th-percentile
        # angles of 65,536 pixels are those of all of them to well within the check's limits
        od = od[:: -(-n // _MACENKO_PIXELS)]
    cov = np.cov(od, rowvar=False)
    _, vecs = np.linalg.eigh(cov)
    plane = vecs[:, [2, 1]]  # two largest principal directions
    if plane[:, 0].sum() < 0:
        plane[:, 0] *= -1
    if plane[:, 1].sum() < 0:
        plane[:, 1] *= -1
    proj = od @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, [alpha, 100.0 - alpha])
    v1 = plane @ np.array([math.cos(lo), math.sin(lo)])
    v2 = plane @ np.array([math.cos(hi), math.sin(hi)])
    v1 = v1 if v1.sum() >= 0 else -v1
    v2 = v2 if v2.sum() >= 0 else -v2
    sh = np.asarray(std.haematoxylin)
    sd = np.asarray(std.dab)
    if _angle_deg(v1, sh) + _angle_deg(v2, sd) <= _angle_deg(v2, sh) + _angle_deg(v1, sd):
        h_vec, d_vec = _unit(v1), _unit(v2)
    else:
        h_vec, d_vec = _unit(v2), _unit(v1)
    a_h = _angle_deg(h_vec, sh)
    a_d = _angle_deg(d_vec, sd)
    a_hd = _angle_deg(h_vec, d_vec)
    reasons: list[str] = []
    if np.any(h_vec < -0.05) or np.any(d_vec < -0.05):
        reasons.append("an estimated vector has a negative OD component")
    if a_h > max_angle_to_standard_deg:
        reasons.append(
            f"haematoxylin is {a_h:.1f}° from the standard (limit {max_angle_to_standard_deg:g}°)"
        )
    if a_d > max_angle_to_standard_deg:
        reasons.append(
            f"DAB is {a_d:.1f}° from the standard (limit {max_angle_to_standard_deg:g}°)"
        )
    if a_hd < min_angle_between_deg:
        reasons.append(f"H and DAB are only {a_hd:.1f}° apart (limit {min_angle_between_deg:g}°)")
    check = StainCheck(not reasons, tuple(reasons), n, a_h, a_d, a_hd, limits)
    if reasons:
        return std, check
    est = StainVectors(
        (float(h_vec[0]), float(h_vec[1]), float(h_vec[2])),
        (float(d_vec[0]), float(d_vec[1]), float(d_vec[2])),
        w,
        "macenko",
    )
    return est, check


def parse_white_point(text: str) -> tuple[float, float, float]:
    """``"242,240,236"`` → (242.0, 240.0, 236.0): the glass colour, 8-bit RGB.

    Raises
    ------
    ConfigError
        Not three numbers, or one outside 1–255 (the optical density of 0 is undefined).
    """
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if not is_glass_colour(values):
        raise ConfigError(f"white point {text!r}: give three numbers 1-255, e.g. 242,240,236")
    return values[0], values[1], values[2]


def is_glass_colour(values: Sequence[float]) -> bool:
    """Three finite 8-bit values 1–255 (an optical density of 0 is undefined)."""
    return len(values) == 3 and all(math.isfinite(v) and 1.0 <= v <= 255.0 for v in values)
