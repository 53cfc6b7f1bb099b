"""Tissue, glands and luminal epithelium on a low-resolution overview (about 2 µm per pixel).

Tissue
------
Pixels whose summed optical density (R+G+B, against the white point) exceeds ``tissue_od``
after a light blur are stained: nuclei, and the denser matrix of ordinary stroma. Between them
lies stain-free space, and the question is which of it is stroma. Endometrial stroma is cells
in a matrix; when the matrix is oedematous (mid- and late-secretory phase) it holds so much
fluid that it is as pale as the glass, and the stromal cells lie widely spaced in it: that pale
space is part of the stromal area (it is where the cells are counted per mm²). Glass, by
contrast, is space *no stromal cell borders at the spacing of stromal cells*. The rule says it
with two shapes that cannot fit inside stroma (Serra's morphological opening: the union of
every placement of a shape that fits in the stain-free space):

* a **disc** of radius ``closing_um`` (35 µm): wider than any space between stromal cells. At
  the lowest density of oedematous stroma, about 1,500 cells per mm², stromal nuclei lie
  nearly at random (a Poisson pattern of intensity ρ); the chance that a point lies farther
  than r from every nucleus centre is exp(−ρπr²), so over the N ≈ ρA independent places of a
  ×400 field (A ≈ 0.2 mm², N ≈ 300) the widest empty disc has ρπr² ≈ ln N: r ≈ 35 µm
  from the nearest nucleus centre, ~31 µm from its stained edge. A whole slide's stroma
  (10 mm², ln N ≈ 9.6) allows 45 µm at 1,500/mm² and 31 µm at 2,500/mm²: 35 µm leaves a
  stray empty disc to the sparsest oedema of a large biopsy (a few hundred µm² a slide).
  Every place not covered by such a disc is within 35 µm of stained tissue on all sides:
  this is the morphological closing of the stained pixels at 35 µm.
* a **crack**: stain-free space at least ``tear_width_um`` (50 µm) wide throughout (the
  places a disc that wide fits) in one piece at least ``tear_length_um`` (200 µm) from end to
  end, in any direction: a tear, narrower than the disc but longer than any run of stroma
  without a cell. The places farther than 25 µm from every stained pixel, about 29 µm from
  every nucleus centre, cover exp(−ρπ·29²) of Poisson stroma: 1.9% at 1,500 cells per mm²,
  0.5% at 2,000, in pockets far apart, each the size of one gap between cells (such holes join
  into long channels only above about a third of the area, the vacancy percolation threshold
  of randomly placed discs), so no piece of them reaches 200 µm. At 40 µm (24 µm from
  nucleus centres, 7% at 1,500 cells per mm²) the pockets of a synthetic oedematous field cut
  by the image's edge already joined, mirrored, into 130 µm pieces.

Both are found on the stain-free pixels with the image mirrored beyond its edge (as if the
tissue went on as its mirror image: glass that reaches the edge is glass, a gap cut by the
edge is judged on its mirror image). Tissue is what neither covers; specks under
``min_tissue_um2`` (dust) are removed. Gland lumina narrower than the disc are tissue here and
are left out with their epithelium (below); wider ones, the uterine cavity, glass at the
tissue's edge and tears (wider than 70 µm, or 50–70 µm wide and longer than 200 µm) are left
out as glass, and so is ink (below).

What this cannot tell apart: a tear narrower than 50 µm, or 50–70 µm wide and shorter than
200 µm, is counted as stroma (it is shaped like the space between oedematous stromal cells);
stroma sparser than about 1,500 cells per mm² (or its cells in clusters around vessels, with
wider cell-free lakes between) loses its widest lakes to the glass. The overlay shows the
tissue so a pathologist can check it.

At a cut (the tissue's edge, a tear) the outline runs through the outermost stained pixels, and
the matrix between them and the cut, as pale as the glass, would be lost. It is given back
(``restore_cut_margin``): the glass within the *mean half-plane contact distance* of the tissue
becomes tissue again. A cut is a line laid across the stroma without regard to its cells, so a
point on it sees stain on one side only: if stained pixels form a Boolean model (germs at
random; Chiu et al. 2013, ch. 3), the chance that none lies within r of that point on the
tissue's side is exp(−½·ρ·|dilated germ|) = √S(r), where S(r) = 1 − H_s(r) is the stroma's own
empty-space function (the share of it farther than r from stain), so the mean distance from the
cut to the nearest stain is ∫√S(r) dr: 1/√(2ρ) for point nuclei (16 µm at 2,000 cells per mm²,
18 µm at 1,500), less about a nucleus's radius for real ones. S is measured, not assumed: from
the stroma 17.5–52.5 µm behind the outline (past the outermost nuclei the cut picked out), in
280 µm blocks pooled with their eight neighbours, up to ``tear_width_um``/2 (25 µm, also the
most any edge grows). Stroma stained to the cut (ordinary matrix above ``tissue_od``) has S ≈ 0
and gets nothing; glass farther than the margin from tissue stays glass, so a crack closes only
where it is narrower than twice the margin (a tear the width of a gap between cells). Measured
on SYNTHETIC fields with 2.2 mm of edges and tears in 0.25 mm² at 1,500–2,500 cells per mm²,
two seeds each: stromal area −11% to +4.4% of the truth (the outline alone: −13% to −31%);
ordinary stroma at 3,000 per mm²: −1.5% (was −4.4%); at 5,000 and dense stroma unchanged. What
stays: a margin is a mean, so where the outermost nucleus lies on the cut the tissue spills
onto the glass, by about 0.21 of the margin per length of edge (E[(μ − D)⁺] for a Rayleigh D of
mean μ); and with nuclei wholly at random at 1,500 per mm² the glass also takes lakes that open
onto it, deeper than any margin (a straight cut: 21–46 µm lost, 2–19 µm after).

Away from cuts, measured on SYNTHETIC fields (:mod:`~nkpanel.uterine.simulate`, ``oedema``):
CD56+ per mm² of oedematous stroma at 1,500–2,500 cells per mm² within 6% of the truth, where
the rule before (clear space over 400 µm² left out) read +55% to +150%.

QuPath's simple tissue detection (threshold, then fill holes up to a maximum area) and
HistomicsTK's ``get_tissue_mask`` (Otsu threshold on the smoothed image, keep large
components) measure area, not width: filling by area cannot tell a gland's lumen from an
oedematous gap of the same size (filling gaps under a maximum area counted the lumina as
stroma, +5–7% of the area beside glands), and a threshold alone loses oedematous stroma.

Marker ink and other colour that is neither stain
-------------------------------------------------
Pathologists mark slides with pens (blue, green, black, sometimes red); the ink lies on the
glass and over the tissue, and by summed OD alone it is "stained". It is told apart by its
colour, on the optical-density scale where colour is physics: by Beer–Lambert, a pixel of
H-DAB tissue has the OD vector ``od = h·s_H + d·s_DAB`` with amounts ``h, d ≥ 0``, so its
direction lies in the *cone* spanned by the two stain vectors (Ruifrok & Johnston 2001; the
third, "residual" direction ``n = s_H × s_DAB`` carries no stain and QuPath and Fiji show it
as the check that the vectors fit). An ink of another hue adds an OD vector outside that cone.
The measure is the angle φ between a pixel's OD vector and the nearest direction in the cone:
``sin φ = e / |od|``, with ``e`` the length of the OD left unexplained by the best
non-negative amounts of H and DAB. ``e`` is ``|od·n|`` (Ruifrok's residual) when both amounts
are non-negative, and the distance to the H (or DAB) ray when the unmixing asks for a negative
amount of the other stain. A stained pixel (summed OD above ``tissue_od``) is ink when

    e > sin(ink_angle_deg) · |od| + ink_floor_od

or when its OD exceeds ``ink_black_od`` in every channel (below); pieces smaller than
``min_ink_um2`` are ignored (a vessel of red cells, a speck of pigment), the rest is grown by
``ink_margin_um`` (one overview pixel: the one that straddles the stroke's edge) and left out
of the tissue (to the glass test it is unstained, so that ink on glass leaves the glass whole).

Thresholds, from the stain vectors and the optics rather than from any image:

* ``ink_angle_deg`` 15°: staining protocols and scanners move the H and DAB vectors by a few
  to about 15° from the standard ones (the same figure bounds a sane Macenko estimate in
  :class:`~nkpanel.uterine.stains.StainCheck`); tissue measured against the standard vectors
  can therefore sit up to about 15° outside their cone. A check, not a fit: on the two real
  H-DAB images at hand (scikit-image's immunohistochemistry image; DeepLIIF Ki67
  ``6_2.png``), box-averaged 8×, the median stained pixel lies 5° and 10° from the standard
  cone, the rule flags 0% and 0.8% of stained pixels, all in specks far under
  ``min_ink_um2``, and finds no ink on either.
* ``ink_floor_od`` 0.02: the unexplained OD a colour cast of the glass produces (an error of
  up to ~10 grey levels at 240 in one channel's white point, JPEG chroma error), so that pale
  tissue, whose OD vector is short, is not judged on its hue.
* ``ink_black_od`` 1.0: black ink is nearly neutral, only 7.6° outside the H-DAB cone (within
  the tolerance) but nearly opaque. No H-DAB pixel transmits under 10% in all three channels
  at the overview's 2 µm: the least-absorbed channel of any mixture carries at most 0.76 of
  the most-absorbed (at about 0.72 DAB per haematoxylin), so OD 1 in every channel needs
  haematoxylin ~1.2 with DAB ~0.85 (or 0.9 with 1.5) averaged over 2 µm: two to three times
  a nucleus's haematoxylin OD (0.25–0.55 in :mod:`~nkpanel.uterine.simulate`) stacked with
  strong DAB.
* ``min_ink_um2`` 2,000 µm² (a 45 µm square): above a capillary full of red cells or a
  pigment deposit, below any pen stroke worth the name (a 15 µm line 135 µm long).

What the rule separates, with the standard vectors and unit OD per band (R, G, B absorption of
typical marker dyes): green (0.9, 0.25, 0.7) 31° from the cone; red (0.05, 1, 0.5) 28°;
blue that absorbs red well over green (1, 0.5, 0.15; phthalocyanine, Victoria blue) 22°;
dense black (OD > 1 in every channel). What it cannot: blue or violet ink whose absorption
follows haematoxylin's (R ≈ G ≫ B, e.g. (1, 0.7, 0.2) at 14°, (0.9, 0.8, 0.3) at 6°; a
haematoxylin stained bluer than the standard lies in the same directions), faint black or
grey ink (under OD 1 in some channel), ink too thin over tissue to pull the pixel 15° off
the cone, and brown inks (DAB's colour). Other colour outside the cone is left out with the
ink: eosin (39°: an H&E slide analysed by mistake loses its pink stroma) and some pigment.
Blood is not reliably left out: haemoglobin (absorbing blue and green, little red) lies
about 14–19° from the cone, depending on the absorption assumed, at the edge of the
tolerance; a pool may stay as tissue, and cells among its red cells then read as DAB-positive
(a user audit: a 300 µm pool doubled CD56+ per 100 on a synthetic field). Draw an exclusion
region around haemorrhage. HistomicsTK
rests on the same physics in a simpler form: its tissue detection can work on the
haematoxylin channel after deconvolution, which its documentation calls "better in getting
rid of sharpie marker (if it's green, for example)". The pen filters of histolab
(``red_pen_filter``, ``green_pen_filter``, ``blue_pen_filter``) are lists of RGB thresholds
tuned to particular pens, which this rule avoids.

Glands and luminal epithelium (automatic exclusion, used when no regions were drawn)
-----------------------------------------------------------------------------------
Endometrial epithelium lines a space: the lumen of a gland or the uterine cavity over the
surface (luminal) epithelium. It is a band one cell high (columnar cells, 15–30 µm) whose nuclei
are packed side by side, so it is much denser in haematoxylin than the stroma beside it. The
rule: tissue within ``epithelium_um`` of a clear space (summed OD below ``clear_od``) of at
least ``min_lumen_um2`` whose local
haematoxylin density (mean H OD over a ``density_sigma_um`` Gaussian) reaches
``density_ratio`` × the tissue's median density (and at least ``min_density_od``) is
epithelium; pieces smaller than ``min_epithelium_um2`` (a stromal cell or two beside a
vessel) are dropped; the rest, grown by ``margin_um`` to take in whole cells, is excluded.
The clear spaces the rule looks beside are those outside the tissue (glass, the cavity,
lumina wider than the glass disc) and those inside it of at least ``min_enclosed_lumen_um2``
(400 µm², a lumen about 22 µm across: the narrowest a gland cut across shows; smaller clear
gaps are the space one stromal cell leaves, of which oedematous stroma is full). The tissue's
median density is taken without its clear spaces, so that pale oedematous space does not lower
the threshold towards clusters of stromal nuclei. A clear space inside the tissue is a lumen,
and is excluded with its epithelium and a rim of half the epithelium's height, when at least
``lumen_lined_fraction`` (half) of that rim is epithelium: a lumen is lined by epithelium all
round (less where the section or the image cuts the gland), whereas an oedematous gap beside a
gland touches it on one side only, and the rest of its rim is stroma.

This is a heuristic, not a classifier: glands cut without a lumen (solid tangential cuts) are
missed, and a vessel lined by dense stroma can be taken for a gland. The output always says
whether exclusions came from drawn regions or from this rule, and the overlays show the
excluded area so a pathologist can check it. Drawn regions are preferred.

References
----------
Ruifrok AC, Johnston DA. Quantification of histochemical staining by color deconvolution.
Anal Quant Cytol Histol 2001;23:291-299.
Gutman DA et al. The Digital Slide Archive (HistomicsTK): ``histomicstk.saliency.
tissue_detection.get_tissue_mask``, option ``deconvolve_first``. Cancer Res 2017;77:e75-e78.
Serra J. Image Analysis and Mathematical Morphology. London: Academic Press, 1982 (opening
and closing by a structuring element).
Chiu SN, Stoyan D, Kendall WS, Mecke J. Stochastic Geometry and its Applications, 3rd ed.
Wiley, 2013 (the Poisson process's empty-space function, 1 − exp(−ρπr²)).
Quintanilla J, Torquato S, Ziff RM. Efficient measurement of the percolation threshold for
fully penetrable discs. J Phys A 2000;33:L399-L407 (discs covering 67.6% of the plane).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from nkpanel.uterine._kernels import dilate_disk, outside_sq_distance, sq_distance
from nkpanel.uterine.stains import StainVectors, deconvolve, od_table

__all__ = [
    "TissueSettings",
    "clear_spaces",
    "detect_epithelium",
    "detect_ink",
    "detect_tissue",
    "glass_mask",
    "overview_od",
]

BoolArray = NDArray[np.bool_]
U8 = NDArray[np.uint8]


@dataclass(frozen=True)
class TissueSettings:
    """Tissue and epithelium detection on the overview (lengths in µm, areas in µm²).

    ``overview_um`` 2: fine enough to follow a gland's epithelium (15–30 µm high), coarse
    enough that a 1-gigapixel slide at 0.25 µm/px is a 16-megapixel overview. ``closing_um``
    (the radius of the widest stain-free disc stroma holds), ``tear_width_um`` and
    ``tear_length_um`` (the narrowest and shortest crack that is glass): what separates oedematous
    stroma from glass (module docstring, with their reasoning). ``lumen_lined_fraction``: the
    share of a clear space's rim that must be epithelium for it to be a gland's lumen;
    ``min_enclosed_lumen_um2``: the smallest clear space inside the tissue that epithelium is
    looked for beside.
    ``exclude_ink`` and the ``ink_*`` limits: marker ink and other colour outside the H-DAB
    cone (module docstring). ``restore_cut_margin``: give back the pale stroma between the
    outermost nuclei and a cut (module docstring, "At a cut").
    """

    overview_um: float = 2.0
    tissue_od: float = 0.1
    clear_od: float = 0.03
    closing_um: float = 35.0
    tear_width_um: float = 50.0
    tear_length_um: float = 200.0
    min_tissue_um2: float = 5000.0
    min_lumen_um2: float = 150.0
    min_enclosed_lumen_um2: float = 400.0
    lumen_lined_fraction: float = 0.5
    epithelium_um: float = 24.0
    density_sigma_um: float = 4.0
    density_ratio: float = 1.6
    min_density_od: float = 0.12
    min_epithelium_um2: float = 400.0
    margin_um: float = 4.0
    exclude_ink: bool = True
    ink_angle_deg: float = 15.0
    ink_floor_od: float = 0.02
    ink_black_od: float = 1.0
    min_ink_um2: float = 2000.0
    ink_margin_um: float = 2.0
    restore_cut_margin: bool = True


def _large_pieces(mask: BoolArray, min_px: int) -> tuple[NDArray[np.int32], BoolArray]:
    """The pieces of ``mask`` (4-connected, :func:`scipy.ndimage.label`'s labels) and, per
    label, whether its piece has at least ``min_px`` pixels (False for the background)."""
    lab, n = ndi.label(mask)
    big = np.bincount(lab.ravel(), minlength=n + 1) >= min_px
    big[0] = False
    return lab, big


def _remove_small(mask: BoolArray, min_px: int) -> BoolArray:
    lab, big = _large_pieces(mask, min_px)
    return np.asarray(big[lab], dtype=bool)


def overview_od(overview: U8, white: tuple[float, float, float]) -> NDArray[np.float32]:
    """Summed R+G+B optical density, lightly blurred (one lookup table per channel)."""
    od = np.zeros(overview.shape[:2], dtype=np.float32)
    table = od_table(white).astype(np.float32)
    for c in range(3):
        od += np.take(table[c], overview[..., c])
    return np.asarray(ndi.gaussian_filter(od, 0.75), dtype=np.float32)


#: overview pixels per block of the ink test (bounds its float32 temporaries to ~50 MB)
_INK_BLOCK_PX = 1 << 20


@dataclass(frozen=True)
class _Cone:
    """What :func:`_off_cone` needs of the stains, worked out once per image: the OD lookup
    table on the white point, the unmixing matrix, and cos of the H–DAB angle."""

    table: NDArray[np.float32]
    unmix: NDArray[np.float32]
    cos_hd: np.float32

    @classmethod
    def of(cls, stains: StainVectors) -> _Cone:
        m = stains.matrix()
        return cls(
            od_table(stains.white).astype(np.float32),
            stains.unmixing().astype(np.float32),
            np.float32(float(m[0] @ m[1])),
        )


def _off_cone(px: U8, cone: _Cone, sin_max: float, floor: float, black: float) -> BoolArray:
    """For n×3 uint8 pixels: is the OD vector farther than the tolerance from the H-DAB cone,
    or above ``black`` in every channel? (Module docstring; one LUT gather per channel.)"""
    table, u, cos_hd = cone.table, cone.unmix, cone.cos_hd
    o = [np.take(table[c], px[:, c]) for c in range(3)]
    h = o[0] * u[0, 0] + o[1] * u[1, 0] + o[2] * u[2, 0]
    d = o[0] * u[0, 1] + o[1] * u[1, 1] + o[2] * u[2, 1]
    r = o[0] * u[0, 2] + o[1] * u[1, 2] + o[2] * u[2, 2]
    n2 = o[0] * o[0] + o[1] * o[1] + o[2] * o[2]
    # squared OD left over by the best non-negative H and DAB amounts
    e2 = r * r
    on_h = np.maximum(h + d * cos_hd, 0)  # od · s_H
    on_d = np.maximum(h * cos_hd + d, 0)  # od · s_DAB
    np.copyto(e2, n2 - on_h * on_h, where=d < 0)
    np.copyto(e2, n2 - on_d * on_d, where=h < 0)
    np.copyto(e2, n2, where=(h < 0) & (d < 0))
    limit = np.float32(sin_max) * np.sqrt(n2) + np.float32(floor)
    out = e2 > limit * limit
    out |= np.minimum(np.minimum(o[0], o[1]), o[2]) > np.float32(black)
    return np.asarray(out, dtype=bool)


def detect_ink(
    overview: U8,
    stains: StainVectors,
    settings: TissueSettings | None = None,
    *,
    od: NDArray[np.float32] | None = None,
) -> BoolArray:
    """Marker ink and other colour that neither haematoxylin nor DAB explains, on the overview.

    Parameters
    ----------
    overview
        RGB overview (H×W×3 uint8) at ``settings.overview_um`` µm per pixel.
    stains
        The stain vectors and white point the cone is spanned by (the standard Ruifrok vectors
        on the slide's white point, as tissue detection uses).
    settings
        ``ink_angle_deg``, ``ink_floor_od``, ``ink_black_od``, ``min_ink_um2``,
        ``ink_margin_um`` and ``tissue_od`` (only stained pixels are judged).
    od
        The overview's :func:`overview_od`, when the caller has it.

    Returns
    -------
    mask
        True on ink (grown by ``ink_margin_um``); all False when ``exclude_ink`` is off.

    References
    ----------
    Ruifrok & Johnston 2001 (stain cone and residual); see the module docstring for the rule
    and its limits.

    Examples
    --------
    >>> import numpy as np
    >>> from nkpanel.uterine.stains import ruifrok_hdab
    >>> rgb = np.full((60, 60, 3), 240, np.uint8)
    >>> rgb[:, 20:40] = (60, 150, 70)  # a green stroke, 40 µm wide at 2 µm per pixel
    >>> ink = detect_ink(rgb, ruifrok_hdab((240.0, 240.0, 240.0)))
    >>> bool(ink[:, 22:38].all()), bool(ink[:, :15].any())
    (True, False)
    """
    s = settings or TissueSettings()
    if not s.exclude_ink:
        return np.zeros(overview.shape[:2], dtype=bool)
    um = s.overview_um
    od = overview_od(overview, stains.white) if od is None else od
    flat = overview.reshape(-1, 3)
    stained = (od > s.tissue_od).ravel()
    ink = np.zeros(flat.shape[0], dtype=bool)
    sin_max = math.sin(math.radians(s.ink_angle_deg))
    cone = _Cone.of(stains)
    for i in range(0, flat.shape[0], _INK_BLOCK_PX):
        sel = np.flatnonzero(stained[i : i + _INK_BLOCK_PX]) + i
        if sel.size:
            ink[sel] = _off_cone(flat[sel], cone, sin_max, s.ink_floor_od, s.ink_black_od)
    mask = _remove_small(ink.reshape(od.shape), max(1, round(s.min_ink_um2 / (um * um))))
    r = round(s.ink_margin_um / um)
    if r < 1 or not mask.any():
        return mask
    return np.asarray(dilate_disk(mask, r), dtype=bool)


def clear_spaces(
    overview: U8,
    stains: StainVectors,
    settings: TissueSettings | None = None,
    *,
    od: NDArray[np.float32] | None = None,
) -> BoolArray:
    """Clear spaces (glass, gland lumina, the uterine cavity): unstained pixels (summed OD
    below ``clear_od``) in pieces of at least ``min_lumen_um2``. ``od``: the overview's
    :func:`overview_od`, when the caller has it."""
    s = settings or TissueSettings()
    um = s.overview_um
    od = overview_od(overview, stains.white) if od is None else od
    clear = od < s.clear_od
    return _remove_small(clear, max(1, round(s.min_lumen_um2 / (um * um))))


def glass_mask(free: BoolArray, settings: TissueSettings | None = None) -> BoolArray:
    """Glass among stain-free pixels: the places a disc of radius ``closing_um`` fits into
    ``free``, and the long cracks (module docstring), with the array mirrored beyond its edge.

    Parameters
    ----------
    free
        Stain-free pixels of an overview at ``settings.overview_um`` µm per pixel.
    settings
        ``closing_um``, ``tear_width_um``, ``tear_length_um``, ``overview_um``.

    Returns
    -------
    mask
        True on glass (a subset of ``free``).

    Examples
    --------
    >>> import numpy as np
    >>> free = np.zeros((100, 100), bool)
    >>> free[:, 60:] = True  # glass beyond a tissue edge, 80 µm wide at 2 µm per pixel
    >>> free[20:30, 20:30] = True  # a 20 µm gap between cells
    >>> g = glass_mask(free)
    >>> bool(g[:, 60:].all()), bool(g[20:30, 20:30].any())
    (True, False)
    """
    return _glass(free, settings or TissueSettings())[0]


def _half_tear_px(s: TissueSettings) -> int:
    """Half the narrowest crack taken for a tear, in overview pixels: how far :func:`_glass`
    measures distances to stain, and the cut margin's cap (:func:`_cut_margin`)."""
    return max(1, round(s.tear_width_um / s.overview_um / 2))


def _glass(free: BoolArray, s: TissueSettings) -> tuple[BoolArray, NDArray[np.uint32]]:
    """:func:`glass_mask`, and the squared distance (whole pixels) from each pixel of ``free``
    to the nearest pixel that is not free (:func:`~nkpanel.uterine._kernels.sq_distance`)
    up to the larger of the disc's radius and the crack's half width (beyond it, that
    limit² + 1): both disc fits are read from it, and :func:`_cut_margin` measures how far
    stroma lies from stain with it."""
    um = s.overview_um
    r = max(1, round(s.closing_um / um))
    t = _half_tear_px(s)
    reach = max(r, t)
    pad = reach + 1
    padded = np.pad(free, pad, mode="symmetric")
    # the places each disc fits (d2 > r²: erode_disk; beyond the mirrored array nothing is
    # free); the mirror image of a stained pixel is never nearer than the pixel itself, so
    # inside the array these are the distances of the array alone
    d2 = outside_sq_distance(padded, reach)
    glass = dilate_disk(d2 > r * r, r)
    # cracks: the pieces of stain-free space a tear_width_um disc fits into that reach
    # tear_length_um from end to end (the diagonal of their bounding box, the disc's width
    # added back), grown back by the disc
    core = d2 > t * t
    lab, n = ndi.label(core, structure=np.ones((3, 3), dtype=bool))
    if n:
        long = np.zeros(n + 1, dtype=bool)
        for i, box in enumerate(ndi.find_objects(lab), start=1):
            if box is None:
                continue
            dy, dx = box[0].stop - box[0].start, box[1].stop - box[1].start
            long[i] = math.hypot(dy, dx) + 2 * t >= s.tear_length_um / um
        if long.any():
            glass |= dilate_disk(long[lab], t)
    inside = (slice(pad, -pad), slice(pad, -pad))
    return np.asarray(glass[inside] & free, dtype=bool), d2[inside]


def detect_tissue(
    overview: U8,
    stains: StainVectors,
    settings: TissueSettings | None = None,
    *,
    od: NDArray[np.float32] | None = None,
    ink: BoolArray | None = None,
) -> BoolArray:
    """Tissue mask of an RGB overview at ``settings.overview_um`` µm per pixel (``od``: its
    :func:`overview_od`, when the caller has it; ``ink``: its :func:`detect_ink`, worked out
    here when not given): everything but the glass (:func:`glass_mask`) and the ink. Pale
    space between stromal cells, oedematous stroma's, is tissue (module docstring)."""
    s = settings or TissueSettings()
    um = s.overview_um
    od = overview_od(overview, stains.white) if od is None else od
    ink = detect_ink(overview, stains, s, od=od) if ink is None else ink
    free = od <= s.tissue_od
    free |= ink
    if free.all():
        return np.zeros_like(free)
    glass, stain_d2 = _glass(free, s)
    tissue = ~glass & ~ink
    if s.restore_cut_margin:
        tissue |= _cut_margin(glass, tissue, stain_d2, s) & ~ink
    return _remove_small(tissue, max(1, round(s.min_tissue_um2 / (um * um))))


#: the side of the blocks the pale margin at a cut is estimated over, in units of ``closing_um``
_MARGIN_BLOCK = 8


def _cut_margin(
    glass: BoolArray, tissue: BoolArray, stain_d2: NDArray[np.uint32], s: TissueSettings
) -> BoolArray:
    """The pale margin lost at a cut: the glass within the local mean half-plane contact
    distance ∫√S(r) dr of the tissue, S the empty-space function of the stained pixels in the
    tissue behind the outline (module docstring, "At a cut"), capped at ``tear_width_um / 2``.
    ``stain_d2``: each pixel's squared distance to stain, exact up to at least that cap
    (:func:`_glass`).

    References
    ----------
    Chiu SN, Stoyan D, Kendall WS, Mecke J. Stochastic Geometry and its Applications, 3rd ed.
    Wiley, 2013 (the Boolean model's contact distribution functions).
    """
    um = s.overview_um
    if not glass.any() or not tissue.any():
        return np.zeros_like(glass)
    cap = _half_tear_px(s)
    b0, b1 = round(s.closing_um / 2 / um), round(1.5 * s.closing_um / um)
    # the stroma behind the outline, where the cut's selection no longer shows
    depth2 = sq_distance(~glass, b1)
    band = tissue & (depth2 > b0 * b0) & (depth2 <= b1 * b1)
    if not band.any():
        return np.zeros_like(glass)
    # contact distance (whole pixels, up to the cap) from each band pixel to stain
    k = np.minimum(np.ceil(np.sqrt(stain_d2[band].astype(np.float32))), cap).astype(np.int64)
    side = max(1, round(_MARGIN_BLOCK * s.closing_um / um))
    gh, gw = -(-glass.shape[0] // side), -(-glass.shape[1] // side)
    yy, xx = np.nonzero(band)
    block = (yy // side) * gw + xx // side
    hist = np.bincount(block * (cap + 1) + k, minlength=gh * gw * (cap + 1))
    hist = hist.reshape(gh, gw, cap + 1).astype(np.float64)
    # each block pooled with its neighbours (a window three blocks wide)
    hist = ndi.uniform_filter(hist, size=(3, 3, 1), mode="constant")
    n = hist.sum(axis=2)
    # S(r): the share of the band farther than r from stain, r = 0, 1, …, cap − 1 pixels
    beyond = n[..., None] - np.cumsum(hist, axis=2)[..., :cap]
    survival = np.divide(beyond, n[..., None], out=np.zeros_like(beyond), where=n[..., None] > 0)
    margin_px = np.sqrt(np.clip(survival, 0, 1)).sum(axis=2)  # ∫ √S(r) dr, in pixels
    # compared on the glass alone, each pixel with its block's margin squared (no full-size
    # float arrays of a per-block value)
    limit2 = margin_px * margin_px
    near2 = sq_distance(~tissue, cap)
    gy, gx = np.nonzero(glass)
    out = np.zeros_like(glass)
    out[gy, gx] = near2[gy, gx] <= limit2[gy // side, gx // side]
    return out


def detect_epithelium(
    overview: U8,
    tissue: BoolArray,
    stains: StainVectors,
    settings: TissueSettings | None = None,
    *,
    od: NDArray[np.float32] | None = None,
    haematoxylin: NDArray[np.float32] | None = None,
) -> BoolArray:
    """Glandular and luminal epithelium (mask on the overview grid); see the module docstring.
    ``od``: the overview's :func:`overview_od`, and ``haematoxylin``: its haematoxylin
    (:func:`~nkpanel.uterine.stains.deconvolve` against ``stains``), when the caller has them."""
    s = settings or TissueSettings()
    um = s.overview_um
    if not tissue.any():
        return np.zeros_like(tissue)
    clear = clear_spaces(overview, stains, s, od=od)
    # what epithelium lines: glass, the cavity and lumina wider than a stromal gap (outside the
    # tissue), and clear spaces inside it of a gland lumen's size (labelled: the lumina)
    clear_lab, lumen = _large_pieces(
        clear & tissue, max(1, round(s.min_enclosed_lumen_um2 / (um * um)))
    )
    enclosed = lumen[clear_lab]
    lined = (clear & ~tissue) | enclosed
    if not lined.any():
        return np.zeros_like(tissue)
    reach = max(1, round(s.epithelium_um / um))
    near = dilate_disk(lined, reach) & ~lined
    h = deconvolve(overview, stains)[0] if haematoxylin is None else haematoxylin
    density = ndi.gaussian_filter(np.maximum(h, 0), s.density_sigma_um / um)
    # the tissue's median density, its clear spaces left out: pale oedematous space would
    # lower it, and the epithelium's threshold with it, towards clusters of stromal nuclei
    inside = density[tissue & ~clear]
    if inside.size == 0:
        inside = density[tissue]
    median = float(np.median(inside[:: max(1, inside.size // 1_000_000)]))
    floor = max(s.min_density_od, s.density_ratio * median)
    epi = near & tissue & (density >= floor)
    epi = _remove_small(epi, max(1, round(s.min_epithelium_um2 / (um * um))))
    if not epi.any():
        return epi
    r = max(1, round(s.margin_um / um))
    epi = dilate_disk(epi, r) & tissue
    # a lumen's rim: the pixels within half the epithelium's height (its apical cytoplasm and
    # its nuclei); the lumen is excluded with that rim
    rim = max(r + 1, round(s.epithelium_um / 2 / um))
    lumens = _lumens(clear_lab, lumen, enclosed, epi, s.lumen_lined_fraction, rim)
    if lumens.any():
        epi |= dilate_disk(lumens, rim) & tissue
    return np.asarray(epi, dtype=bool)


def _lumens(
    lab: NDArray[np.int32],
    lumen: BoolArray,
    clear: BoolArray,
    epithelium: BoolArray,
    lined: float,
    reach_px: int,
) -> BoolArray:
    """The pieces of ``clear`` (the pieces labelled ``lab`` whose label is ``lumen``) at least
    ``lined`` of whose rim (the pixels outside them within ``reach_px``, in the array) is
    ``epithelium``."""
    n = lumen.size - 1
    if not lumen.any():
        return np.zeros_like(clear)
    # each piece's label spread over the pixels within reach of it (the largest where two
    # reach one pixel, as a grey dilation by the disc gives), piece by piece in its own box
    rim = np.zeros_like(lab)
    h, w = lab.shape
    for i, box in enumerate(ndi.find_objects(lab), start=1):
        if box is None or not lumen[i]:
            continue
        y0, x0 = max(box[0].start - reach_px, 0), max(box[1].start - reach_px, 0)
        y1, x1 = min(box[0].stop + reach_px, h), min(box[1].stop + reach_px, w)
        near = dilate_disk(lab[y0:y1, x0:x1] == i, reach_px)
        np.maximum(rim[y0:y1, x0:x1], np.where(near, i, 0), out=rim[y0:y1, x0:x1])
    rim[clear] = 0
    on_rim = rim > 0
    total = np.bincount(rim[on_rim], minlength=n + 1)
    lined_px = np.bincount(rim[on_rim & epithelium], minlength=n + 1)
    keep = (lined_px >= lined * np.maximum(total, 1)) & lumen
    return np.asarray(keep[lab], dtype=bool)
