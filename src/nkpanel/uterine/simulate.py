"""Synthetic CD56 immunohistochemistry fields of endometrium with a known truth.

Everything here is **synthetic**: the images carry "nkpanel SYNTHETIC" in their metadata
(TIFF ImageDescription, PNG text) and every truth file says ``"synthetic": true``. They exist
for the always-on tests and the demo; they are not endometrium.

How a field is made
-------------------
Stain amounts (haematoxylin ``H`` and DAB ``D``, in OD units) are painted on a grid at
``pixel_size_um`` and turned into light by the Beer–Lambert law with the standard H-DAB
vectors (Ruifrok & Johnston 2001)::

    I_c = I0_c · 10^−(H·s_H,c + D·s_DAB,c)

then blurred slightly (optics) and given camera noise. Objects:

* **stroma**: a faint haematoxylin wash with fibrous texture;
* **stromal cells**: elliptical nuclei (semi-axes 3.5–5.5 × 2.2–3.2 µm, any orientation;
  endometrial stromal nuclei are oval to spindle, about 5 × 10 µm), H OD 0.25–0.5 with
  chromatin texture;
* **uNK cells** (CD56+): round nucleus (radius 2.8–3.5 µm, H OD 0.35–0.55) inside a cell of
  radius 5–6.5 µm whose membrane (a 1.5 µm ring) carries DAB at ``dab_od`` and whose
  cytoplasm is filled with DAB granules (mean about a third of it, peaks near it); uNK are
  large granular lymphocytes, CD56 bright on the membrane;
* **glands**: a clear lumen (radius 15–35 µm) lined by a band of columnar epithelial cells
  whose elongated nuclei (4.5 × 2 µm semi-axes) point at the lumen, packed 4 µm apart; CD56
  negative.

* **red cells** (optional, ``blood``): extravasated blood in the stroma, as patches
  (:class:`BloodPatch`) of biconcave discs 7.8 µm across (Evans & Fung 1972) lying flat between
  and over the cells, as many as the patch's haematocrit fills of a ``section_um`` section
  (34% covers about half of a patch; 90% is a pool of packed red cells). They are not
  stained: each pixel's path through red-cell cytoplasm is turned into light by haemoglobin's
  own absorption (:func:`nkpanel.uterine.haemoglobin.haemoglobin_od`, from its spectrum),
  multiplied into the stains' light (Beer–Lambert). The cells under them keep their kind in
  the truth (a stromal cell among red cells is still a stromal cell). They are drawn from
  their own random stream, so a field with blood is the same field as without it.

* **oedema** (optional, ``oedema`` 0–1): the loose, watery stroma of the mid- and late-secretory
  endometrium. The extracellular matrix is diluted by fluid: its haematoxylin wash and fibres
  are multiplied by ``1 − oedema·m``, with ``m`` a smooth random field (0.5–1, varying over
  about 20 µm) so that the watery space is patchy, as it is in sections; at ``oedema`` 1 most of
  the space between cells is as pale as the glass (summed OD under 0.03). The stromal cells
  are those of ``stromal_cells_per_mm2`` (1,500–2,500 per mm² in oedematous stroma, against
  about 5,000 in ordinary proliferative stroma): they lie widely spaced, and the pale space
  between them is stroma, part of the true stromal area. Drawn from its own random stream, so
  the cells of a field with oedema are those of the same field without it.
* **glass** (optional): the glass beyond a tissue edge (``edge_glass_um``: a band that wide,
  on average, along the field's right side, its border wavy by about ±8 µm) and tears
  (:class:`Tear`: a straight crack of a given width between two points). Nothing is painted
  there (the light is the white point's) and no cell lies there; glass is not stroma.

The true stromal area (:attr:`SyntheticField.stromal_area_mm2`) is the field less the glands
(epithelium and lumen) and less the glass; the oedematous space is inside it.

Variants used by the tests: ``dab_od`` 0.15–0.3 for faint staining, ``stromal_cells_per_mm2``
12,000 for dense (decidualised) stroma, ``n_glands`` > 0 for glands, ``blood`` for red cells,
``oedema`` with 1,500–2,500 cells per mm² for oedematous stroma, ``edge_glass_um`` and
``tears`` for glass.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from nkpanel._atomic import write_text, write_with
from nkpanel.uterine.haemoglobin import (
    RED_CELL_RADIUS_UM,
    RED_CELL_VOLUME_UM3,
    haemoglobin_od,
    red_cell_thickness_um,
)

__all__ = [
    "SYNTHETIC_TAG",
    "BloodPatch",
    "FieldSpec",
    "SyntheticField",
    "Tear",
    "simulate_field",
    "write_field",
]

F32 = NDArray[np.float32]
U8 = NDArray[np.uint8]

#: the label every synthetic image carries in its metadata
SYNTHETIC_TAG = "nkpanel SYNTHETIC CD56 field (simulated, not a patient)"

_S_H = np.array([0.650, 0.704, 0.286]) / np.linalg.norm([0.650, 0.704, 0.286])
_S_D = np.array([0.268, 0.570, 0.776]) / np.linalg.norm([0.268, 0.570, 0.776])


@dataclass(frozen=True)
class BloodPatch:
    """Red cells in a disc of the field: centre and radius in µm, and the share of the
    section's volume they fill there (``haematocrit``: 0.34 covers about half the patch's
    area, 0.9 is a pool of packed red cells)."""

    y_um: float
    x_um: float
    radius_um: float
    haematocrit: float


@dataclass(frozen=True)
class Tear:
    """A tear in the section: a straight crack of glass ``width_um`` wide from
    (``y0_um``, ``x0_um``) to (``y1_um``, ``x1_um``), µm from the field's top left corner."""

    y0_um: float
    x0_um: float
    y1_um: float
    x1_um: float
    width_um: float


@dataclass(frozen=True)
class FieldSpec:
    """What to simulate. Densities per mm² of the whole field; lengths in µm."""

    width_px: int = 1000
    height_px: int = 1000
    pixel_size_um: float = 0.5
    seed: int = 0
    stromal_cells_per_mm2: float = 5000.0
    unk_percent_of_stromal: float = 8.0
    dab_od: float = 0.8
    n_glands: int = 0
    white: tuple[float, float, float] = (242.0, 240.0, 236.0)
    noise_sd: float = 2.0
    blood: tuple[BloodPatch, ...] = ()
    section_um: float = 4.0
    oedema: float = 0.0
    edge_glass_um: float = 0.0
    tears: tuple[Tear, ...] = ()


@dataclass(frozen=True)
class TruthCell:
    y_px: float
    x_px: float
    kind: Literal["stromal", "unk", "epithelial"]

    @property
    def positive(self) -> bool:
        return self.kind == "unk"


@dataclass(frozen=True)
class SyntheticField:
    """A simulated RGB field, its truth cells, its truth gland mask and its glass (None when
    the field has none)."""

    spec: FieldSpec
    rgb: U8
    cells: tuple[TruthCell, ...]
    gland_mask: NDArray[np.bool_]
    glands: tuple[tuple[float, float, float, float], ...]  # (cy, cx, lumen r, outer r) px
    red_cell_path_um: NDArray[np.float32] | None = None  # path through red cells per pixel
    glass_mask: NDArray[np.bool_] | None = None  # glass beyond a tissue edge and in tears

    @property
    def stromal_cells(self) -> int:
        return sum(c.kind != "epithelial" for c in self.cells)

    @property
    def positive_cells(self) -> int:
        return sum(c.kind == "unk" for c in self.cells)

    @property
    def stromal_area_mm2(self) -> float:
        """The field less the glands (epithelium and lumen) and the glass, mm²; oedematous
        space between the stromal cells is stroma."""
        px = self.spec.pixel_size_um * 1e-3
        stroma = ~self.gland_mask
        if self.glass_mask is not None:
            stroma &= ~self.glass_mask
        return float(stroma.sum()) * px * px

    @property
    def glass_area_mm2(self) -> float:
        """The glass beyond a tissue edge and in tears, mm²."""
        if self.glass_mask is None:
            return 0.0
        px = self.spec.pixel_size_um * 1e-3
        return float(self.glass_mask.sum()) * px * px

    @property
    def red_cell_area_mm2(self) -> float:
        """The area covered by red cells (any path through them), mm²."""
        if self.red_cell_path_um is None:
            return 0.0
        px = self.spec.pixel_size_um * 1e-3
        return float((self.red_cell_path_um > 0).sum()) * px * px

    def truth(self) -> dict[str, object]:
        return {
            "synthetic": True,
            "label": SYNTHETIC_TAG,
            "spec": asdict(self.spec),
            "cd56_positive_cells": self.positive_cells,
            "stromal_cells": self.stromal_cells,
            "cd56_per_100_stromal_cells": 100.0 * self.positive_cells / max(self.stromal_cells, 1),
            "stromal_area_mm2": self.stromal_area_mm2,
            "red_cell_area_mm2": self.red_cell_area_mm2,
            "glass_area_mm2": self.glass_area_mm2,
            "cells": [
                {"y_px": round(c.y_px, 2), "x_px": round(c.x_px, 2), "kind": c.kind}
                for c in self.cells
            ],
            "glands": [
                {"cy_px": g[0], "cx_px": g[1], "lumen_radius_px": g[2], "outer_radius_px": g[3]}
                for g in self.glands
            ],
        }


def _paint_ellipse(
    img: F32,
    cy: float,
    cx: float,
    a: float,
    b: float,
    theta: float,
    value: float | F32,
    edge: float = 0.7,
) -> None:
    """Add ``value`` inside an ellipse (semi-axes a, b px; angle theta) with a soft edge."""
    r = math.ceil(max(a, b) + 2 * edge + 1)
    y0, y1 = max(0, int(cy) - r), min(img.shape[0], int(cy) + r + 1)
    x0, x1 = max(0, int(cx) - r), min(img.shape[1], int(cx) + r + 1)
    if y1 <= y0 or x1 <= x0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    c, s = math.cos(theta), math.sin(theta)
    u = (dx * c + dy * s) / a
    v = (-dx * s + dy * c) / b
    rho = np.sqrt(u * u + v * v)
    # soft edge: 1 inside, falling to 0 over ~edge px at the boundary
    w = np.clip((1.0 - rho) * min(a, b) / edge + 0.5, 0.0, 1.0)
    if isinstance(value, np.ndarray):
        img[y0:y1, x0:x1] += w * value[y0:y1, x0:x1]
    else:
        img[y0:y1, x0:x1] += w * np.float32(value)


def _paint_ring(img: F32, cy: float, cx: float, r: float, width: float, value: float) -> None:
    rr = math.ceil(r + width + 2)
    y0, y1 = max(0, int(cy) - rr), min(img.shape[0], int(cy) + rr + 1)
    x0, x1 = max(0, int(cx) - rr), min(img.shape[1], int(cx) + rr + 1)
    if y1 <= y0 or x1 <= x0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.hypot(yy - cy, xx - cx)
    w = np.clip(1.0 - np.abs(d - r) / max(width / 2, 0.5), 0.0, 1.0)
    img[y0:y1, x0:x1] += w * np.float32(value)


def simulate_field(spec: FieldSpec) -> SyntheticField:
    """Simulate one synthetic CD56 field; see the module docstring.

    Examples
    --------
    >>> f = simulate_field(FieldSpec(width_px=200, height_px=200, seed=1))
    >>> f.rgb.shape, f.positive_cells <= f.stromal_cells
    ((200, 200, 3), True)
    """
    rng = np.random.default_rng(spec.seed)
    h_, w_ = spec.height_px, spec.width_px
    um = spec.pixel_size_um
    H = np.zeros((h_, w_), np.float32)
    D = np.zeros((h_, w_), np.float32)
    texture = ndi.gaussian_filter(rng.normal(0, 1, (h_, w_)).astype(np.float32), 1.0 / um)
    chrom = ndi.gaussian_filter(rng.normal(0, 1, (h_, w_)).astype(np.float32), 0.4 / um)
    chrom /= np.float32(chrom.std() + 1e-6)  # unit-SD granularity
    # stroma wash with fibres
    fib = ndi.gaussian_filter(rng.normal(0, 1, (h_, w_)).astype(np.float32), (0.6 / um, 4.0 / um))
    wash = (
        np.float32(0.03)
        + np.float32(0.012) * texture
        + np.float32(0.02) * np.abs(fib) / (float(np.abs(fib).std()) + 1e-6) * np.float32(0.5)
    )
    if spec.oedema > 0:
        wash *= _oedema_factor(spec)
    glass = _glass(spec) if spec.edge_glass_um > 0 or spec.tears else None
    H += wash
    gland_mask = np.zeros((h_, w_), bool)
    glands: list[tuple[float, float, float, float]] = []
    cells: list[TruthCell] = []
    yy, xx = np.mgrid[0:h_, 0:w_]
    for _ in range(spec.n_glands):
        for _attempt in range(50):
            lumen = rng.uniform(15, 35) / um
            outer = lumen + rng.uniform(18, 24) / um
            cy = rng.uniform(outer, h_ - outer) if h_ > 2 * outer else h_ / 2
            cx = rng.uniform(outer, w_ - outer) if w_ > 2 * outer else w_ / 2
            if all(math.hypot(cy - g[0], cx - g[1]) > outer + g[3] + 10 / um for g in glands):
                break
        glands.append((float(cy), float(cx), float(lumen), float(outer)))
        d = np.hypot(yy - cy, xx - cx)
        gland_mask |= d <= outer
        H[d <= lumen] = 0.0
        band = (d > lumen) & (d <= outer)
        H[band] += 0.04  # epithelial cytoplasm
        # columnar nuclei along the middle of the band, long axis pointing at the lumen
        rmid = lumen + 0.45 * (outer - lumen)
        n = int(2 * math.pi * rmid * um / 4.0)
        for k in range(n):
            ang = 2 * math.pi * (k + rng.uniform(-0.15, 0.15)) / n
            ny = cy + rmid * math.sin(ang)
            nx = cx + rmid * math.cos(ang)
            _paint_ellipse(H, ny, nx, 4.5 / um, 2.0 / um, ang, rng.uniform(0.3, 0.5))
            if 0 <= ny < h_ and 0 <= nx < w_:
                cells.append(TruthCell(float(ny), float(nx), "epithelial"))
    # stromal cells and uNK cells by dart throwing with a minimum spacing
    stroma_px = ~gland_mask if glass is None else ~gland_mask & ~glass
    area_mm2 = stroma_px.sum() * (um * 1e-3) ** 2
    n_cells = int(rng.poisson(spec.stromal_cells_per_mm2 * area_mm2))
    n_unk = round(n_cells * spec.unk_percent_of_stromal / 100.0)
    placed: list[tuple[float, float, float]] = []
    grid: dict[tuple[int, int], list[int]] = {}
    cellsz = 14.0 / um

    def free(y: float, x: float, r: float) -> bool:
        if not stroma_px[min(int(y), h_ - 1), min(int(x), w_ - 1)]:
            return False
        for g in glands:
            if math.hypot(y - g[0], x - g[1]) < g[3] + r:
                return False
        gy, gx = int(y // cellsz), int(x // cellsz)
        for oy in (-1, 0, 1):
            for ox in (-1, 0, 1):
                for i in grid.get((gy + oy, gx + ox), []):
                    py, px, pr = placed[i]
                    if math.hypot(y - py, x - px) < 0.85 * (r + pr):
                        return False
        return True

    kinds = ["unk"] * n_unk + ["stromal"] * (n_cells - n_unk)
    rng.shuffle(kinds)
    for kind in kinds:
        r_excl = (6.0 if kind == "unk" else 3.2) / um
        for _attempt in range(60):
            y, x = rng.uniform(0, h_), rng.uniform(0, w_)
            if free(y, x, r_excl):
                break
        else:
            continue
        placed.append((y, x, r_excl))
        grid.setdefault((int(y // cellsz), int(x // cellsz)), []).append(len(placed) - 1)
        if kind == "unk":
            rn = rng.uniform(2.8, 3.5) / um
            _paint_ellipse(
                H,
                y,
                x,
                rn,
                rn * rng.uniform(0.85, 1.0),
                rng.uniform(0, math.pi),
                rng.uniform(0.35, 0.55) * (1 + 0.25 * chrom),
            )
            rc = rng.uniform(5.0, 6.5) / um
            dab = spec.dab_od * rng.uniform(0.8, 1.2)
            _paint_ring(D, y, x, rc, 1.5 / um, dab)
            gran = (np.float32(0.35) + np.float32(0.65) * np.clip(chrom, 0, None)) * np.float32(
                dab / 2
            )
            _paint_ellipse(D, y, x, rc, rc, 0.0, gran)
        else:
            a = rng.uniform(3.5, 5.5) / um
            b = rng.uniform(2.2, 3.2) / um
            _paint_ellipse(
                H, y, x, a, b, rng.uniform(0, math.pi), rng.uniform(0.25, 0.5) * (1 + 0.25 * chrom)
            )
        cells.append(TruthCell(float(y), float(x), "stromal" if kind == "stromal" else "unk"))
    if glass is not None:
        # a cell at the edge of a tear or of the tissue is cut there; no epithelium on glass
        H[glass] = 0.0
        D[glass] = 0.0
        cells = [c for c in cells if not glass[min(int(c.y_px), h_ - 1), min(int(c.x_px), w_ - 1)]]
    od = H[..., None] * _S_H.astype(np.float32) + D[..., None] * _S_D.astype(np.float32)
    path = _red_cells(spec) if spec.blood else None
    if path is not None:
        od += _haemoglobin_lut(path, spec.section_um)
    light = np.asarray(spec.white, np.float32) * np.power(np.float32(10.0), -od)
    light = ndi.gaussian_filter(light, (0.5, 0.5, 0))
    light += rng.normal(0, spec.noise_sd, light.shape).astype(np.float32)
    rgb = np.clip(np.round(light), 0, 255).astype(np.uint8)
    return SyntheticField(spec, rgb, tuple(cells), gland_mask, tuple(glands), path, glass)


def _oedema_factor(spec: FieldSpec) -> F32:
    """What is left of the stroma's wash where fluid dilutes it: ``1 − oedema·m``, ``m`` a
    smooth random field between 0.5 and 1 varying over about 20 µm (its own random stream)."""
    rng = np.random.default_rng([spec.seed, 0x0ED3A])
    um = spec.pixel_size_um
    noise = rng.normal(0, 1, (spec.height_px, spec.width_px)).astype(np.float32)
    smooth = ndi.gaussian_filter(noise, 10.0 / um)
    smooth /= np.float32(smooth.std() + 1e-12)
    m = np.clip(np.float32(0.75) + np.float32(0.25) * smooth, 0.5, 1.0)
    return np.asarray(np.float32(1.0) - np.float32(min(max(spec.oedema, 0.0), 1.0)) * m)


def _glass(spec: FieldSpec) -> NDArray[np.bool_]:
    """Glass beyond the tissue edge (a band along the right side, ``edge_glass_um`` wide on
    average, its border wavy by about ±8 µm) and in each :class:`Tear` (its own random stream)."""
    rng = np.random.default_rng([spec.seed, 0x61A55])
    um = spec.pixel_size_um
    h_, w_ = spec.height_px, spec.width_px
    yy, xx = np.mgrid[0:h_, 0:w_].astype(np.float32)
    glass = np.zeros((h_, w_), bool)
    if spec.edge_glass_um > 0:
        wave = ndi.gaussian_filter1d(rng.normal(0, 1, h_).astype(np.float32), 15.0 / um)
        wave *= np.float32(8.0 / um / (float(wave.std()) + 1e-12))
        border = np.float32(w_ - spec.edge_glass_um / um) + wave
        glass |= xx >= border[:, None]
    for t in spec.tears:
        y0, x0, y1, x1 = t.y0_um / um, t.x0_um / um, t.y1_um / um, t.x1_um / um
        dy, dx = y1 - y0, x1 - x0
        length2 = max(dy * dy + dx * dx, 1e-12)
        # distance from each pixel centre to the segment
        f = np.clip(((yy - y0) * dy + (xx - x0) * dx) / np.float32(length2), 0.0, 1.0)
        d = np.hypot(yy - (y0 + f * dy), xx - (x0 + f * dx))
        glass |= d <= t.width_um / um / 2
    return glass


def _red_cells(spec: FieldSpec) -> F32:
    """Path through red-cell cytoplasm (µm) per pixel: flat biconcave discs at random in each
    :class:`BloodPatch`, stacked where they overlap, no deeper than the section."""
    rng = np.random.default_rng([spec.seed, 0xB100D])
    um = spec.pixel_size_um
    h_, w_ = spec.height_px, spec.width_px
    path = np.zeros((h_, w_), np.float32)
    r_px = RED_CELL_RADIUS_UM / um
    k = math.ceil(r_px) + 1
    oy, ox = np.mgrid[-k : k + 1, -k : k + 1].astype(np.float64)
    for p in spec.blood:
        area_um2 = math.pi * p.radius_um**2
        n = int(rng.poisson(p.haematocrit * spec.section_um * area_um2 / RED_CELL_VOLUME_UM3))
        rho = p.radius_um * np.sqrt(rng.uniform(0, 1, n))
        phi = rng.uniform(0, 2 * math.pi, n)
        cy = (p.y_um + rho * np.sin(phi)) / um
        cx = (p.x_um + rho * np.cos(phi)) / um
        for y, x in zip(cy, cx, strict=True):
            iy, ix = round(y), round(x)
            y0, y1 = max(0, iy - k), min(h_, iy + k + 1)
            x0, x1 = max(0, ix - k), min(w_, ix + k + 1)
            if y1 <= y0 or x1 <= x0:
                continue
            dy = oy[y0 - iy + k : y1 - iy + k, x0 - ix + k : x1 - ix + k] + (iy - y)
            dx = ox[y0 - iy + k : y1 - iy + k, x0 - ix + k : x1 - ix + k] + (ix - x)
            t = red_cell_thickness_um(np.hypot(dy, dx) * um)
            path[y0:y1, x0:x1] += t.astype(np.float32)
    return np.minimum(path, np.float32(spec.section_um))


def _haemoglobin_lut(path: F32, section_um: float) -> F32:
    """Haemoglobin's OD per channel (H×W×3) for each pixel's path, from a table of the
    spectral integral every 0.01 µm (it is not linear in the path)."""
    steps = np.arange(0.0, section_um + 0.02, 0.01)
    table = haemoglobin_od(steps).astype(np.float32)  # (n, 3)
    i = np.clip(np.round(path / np.float32(0.01)).astype(np.intp), 0, len(steps) - 1)
    return np.asarray(table[i], dtype=np.float32)


def _gland_geojson(f: SyntheticField, n_vertices: int = 48) -> dict[str, object]:
    feats: list[dict[str, object]] = []
    for cy, cx, _lumen, outer in f.glands:
        ring = [
            [
                cx + outer * math.cos(2 * math.pi * k / n_vertices),
                cy + outer * math.sin(2 * math.pi * k / n_vertices),
            ]
            for k in range(n_vertices)
        ]
        ring.append(ring[0])
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "objectType": "annotation",
                    "classification": {"name": "Gland", "color": [255, 200, 0]},
                    "synthetic": True,
                },
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def write_field(
    field: SyntheticField, target: Path, *, fmt: Literal["tiff", "png"] = "tiff"
) -> list[Path]:
    """Write the image (pixel size in its metadata), its truth JSON and, when it has glands, a
    QuPath-style GeoJSON with the glands drawn as exclusions. Returns the files written."""
    from PIL import Image, PngImagePlugin

    target.parent.mkdir(parents=True, exist_ok=True)
    um = field.spec.pixel_size_um
    written: list[Path] = []
    if fmt == "tiff":
        import tifffile

        def w_tiff(tmp: Path) -> None:
            tifffile.imwrite(
                tmp,
                field.rgb,
                photometric="rgb",
                resolution=(1e4 / um, 1e4 / um),
                resolutionunit="CENTIMETER",
                description=SYNTHETIC_TAG,
                metadata=None,
            )

        write_with(target, w_tiff)
    else:
        info = PngImagePlugin.PngInfo()
        info.add_text("Description", SYNTHETIC_TAG)
        dpi = 25400.0 / um

        def w_png(tmp: Path) -> None:
            Image.fromarray(field.rgb).save(tmp, format="PNG", pnginfo=info, dpi=(dpi, dpi))

        write_with(target, w_png)
    written.append(target)
    truth = target.with_suffix(".truth.json")
    write_text(truth, json.dumps(field.truth(), indent=1))
    written.append(truth)
    if field.glands:
        regions = target.with_suffix(".regions.geojson")
        write_text(regions, json.dumps(_gland_geojson(field), indent=1))
        written.append(regions)
    return written
