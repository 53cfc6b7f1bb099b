"""Tissue, glands and luminal epithelium on a low-resolution overview (about 2 µm per pixel).

Tissue
------
Pixels whose summed optical density (R+G+B, against the white point) exceeds
``tissue_od`` after a light blur are stained; a morphological closing of radius
``closing_um`` joins the stained pixels of loose stroma (nuclei are rarely more than 30 µm
apart), small specks (under ``min_tissue_um2``, dust) are removed and holes smaller than
``max_gap_um2`` are filled (gaps cut by the image edge included). Clear spaces (summed OD below
``clear_od``: glass, a gland lumen) larger than ``max_gap_um2`` are kept out of the tissue even
where the closing would bridge them. What is left out is glass, gland lumina and large tears.

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

This is a heuristic, not a classifier: glands cut without a lumen (solid tangential cuts) are
missed, and a vessel lined by dense stroma can be taken for a gland. The output always says
whether exclusions came from drawn regions or from this rule, and the overlays show the
excluded area so a pathologist can check it. Drawn regions are preferred.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from nkpanel.uterine._kernels import dilate_disk, erode_disk, fill_small_holes
from nkpanel.uterine.stains import StainVectors, deconvolve, od_table

__all__ = ["TissueSettings", "clear_spaces", "detect_epithelium", "detect_tissue", "overview_od"]

BoolArray = NDArray[np.bool_]
U8 = NDArray[np.uint8]


@dataclass(frozen=True)
class TissueSettings:
    """Tissue and epithelium detection on the overview (lengths in µm, areas in µm²).

    ``overview_um`` 2: fine enough to follow a gland's epithelium (15–30 µm high), coarse
    enough that a 1-gigapixel slide at 0.25 µm/px is a 16-megapixel overview.
    """

    overview_um: float = 2.0
    tissue_od: float = 0.1
    clear_od: float = 0.03
    closing_um: float = 16.0
    min_tissue_um2: float = 5000.0
    max_gap_um2: float = 400.0
    min_lumen_um2: float = 150.0
    epithelium_um: float = 24.0
    density_sigma_um: float = 4.0
    density_ratio: float = 1.6
    min_density_od: float = 0.12
    min_epithelium_um2: float = 400.0
    margin_um: float = 4.0


def _remove_small(mask: BoolArray, min_px: int) -> BoolArray:
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    big = np.bincount(lab.ravel(), minlength=n + 1) >= min_px
    big[0] = False
    return np.asarray(big[lab], dtype=bool)


def overview_od(overview: U8, white: tuple[float, float, float]) -> NDArray[np.float32]:
    """Summed R+G+B optical density, lightly blurred (one lookup table per channel)."""
    od = np.zeros(overview.shape[:2], dtype=np.float32)
    table = od_table(white).astype(np.float32)
    for c in range(3):
        od += np.take(table[c], overview[..., c])
    return np.asarray(ndi.gaussian_filter(od, 0.75), dtype=np.float32)


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


def detect_tissue(
    overview: U8,
    stains: StainVectors,
    settings: TissueSettings | None = None,
    *,
    od: NDArray[np.float32] | None = None,
) -> BoolArray:
    """Tissue mask of an RGB overview at ``settings.overview_um`` µm per pixel (``od``: its
    :func:`overview_od`, when the caller has it)."""
    s = settings or TissueSettings()
    um = s.overview_um
    od = overview_od(overview, stains.white) if od is None else od
    stained = od > s.tissue_od
    r = max(1, round(s.closing_um / um))
    pad = r + 1
    padded = np.pad(stained, pad, mode="edge")
    closed = erode_disk(dilate_disk(padded, r), r)[pad:-pad, pad:-pad]
    # the closing must not fill a gland lumen: clear spaces larger than a stromal gap stay out
    big_clear = _remove_small(od < s.clear_od, max(1, round(s.max_gap_um2 / (um * um))))
    closed &= ~big_clear
    tissue = _remove_small(closed, max(1, round(s.min_tissue_um2 / (um * um))))
    if not tissue.any():
        return tissue
    # gaps cut by the image edge count as enclosed: pad with tissue before filling
    filled = fill_small_holes(
        np.pad(tissue, 1, constant_values=True), round(s.max_gap_um2 / (um * um))
    )
    return np.asarray(filled[1:-1, 1:-1], dtype=bool)


def detect_epithelium(
    overview: U8,
    tissue: BoolArray,
    stains: StainVectors,
    settings: TissueSettings | None = None,
    *,
    od: NDArray[np.float32] | None = None,
) -> BoolArray:
    """Glandular and luminal epithelium (mask on the overview grid); see the module docstring.
    ``od``: the overview's :func:`overview_od`, when the caller has it."""
    s = settings or TissueSettings()
    um = s.overview_um
    if not tissue.any():
        return np.zeros_like(tissue)
    clear = clear_spaces(overview, stains, s, od=od) & ~tissue
    if not clear.any():
        return np.zeros_like(tissue)
    reach = max(1, round(s.epithelium_um / um))
    near = dilate_disk(clear, reach) & ~clear
    h, _ = deconvolve(overview, stains)
    density = ndi.gaussian_filter(np.maximum(h, 0), s.density_sigma_um / um)
    inside = density[tissue]
    median = float(np.median(inside[:: max(1, inside.size // 1_000_000)]))
    floor = max(s.min_density_od, s.density_ratio * median)
    epi = near & tissue & (density >= floor)
    epi = _remove_small(epi, max(1, round(s.min_epithelium_um2 / (um * um))))
    if not epi.any():
        return epi
    r = max(1, round(s.margin_um / um))
    return np.asarray(dilate_disk(epi, r) & tissue, dtype=bool)
