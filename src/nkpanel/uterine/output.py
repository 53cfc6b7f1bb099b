"""Review outputs a pathologist can check, and the tables: overlays, QuPath GeoJSON, CSV, JSON.

* **Overlays** (PNG): the image at the analysis resolution with every detected cell outlined,
  CD56+ in red and CD56− in green (nucleus and cell outline), cells not counted (outside
  countable stroma) in grey, excluded areas (glands, epithelium, drawn exclusions) tinted
  yellow; on a slide, one overlay per random ×400 field (circle drawn) and an overview with
  tissue, exclusions and fields.
* **Detections** (GeoJSON): a ``FeatureCollection`` of QuPath cell objects: the cell outline as
  ``geometry`` (through the boundary pixels' centres, straight runs kept as their two end
  vertices), the nucleus as the Feature's ``nucleusGeometry`` member (where QuPath reads it,
  beside ``geometry``), class ``Positive``/``Negative`` and the
  measurements with QuPath's names ("Cytoplasm: DAB OD mean"…), in full-resolution pixel
  coordinates, so QuPath (File › Import objects) lays them over the original image.
* **Tables**: ``summary.json`` per image and per biopsy, ``cells.csv`` (one row per counted
  cell), and the batch table ``uterine_results.csv``.

Every file is written atomically.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from nkpanel._atomic import atomic_path, write_text, write_with
from nkpanel.uterine.analyze import AnalysisPlan, TileSink, TileView, UterineAnalysis
from nkpanel.uterine.fields import FieldCircle
from nkpanel.uterine.results import UterineResult

__all__ = [
    "GeoJSONWriter",
    "OverlayCanvas",
    "overlay_sinks",
    "write_batch_table",
    "write_image_outputs",
]

U8 = NDArray[np.uint8]
POSITIVE_RGB = (230, 20, 20)
NEGATIVE_RGB = (20, 190, 40)
NOT_COUNTED_RGB = (150, 150, 150)
EXCLUDED_RGB = (255, 210, 0)


class OverlayCanvas:
    """Collects analysed tiles over a box of the analysis grid and draws the overlay."""

    def __init__(
        self,
        target: Path,
        plan: AnalysisPlan,
        x0: int,
        y0: int,
        w: int,
        h: int,
        circle: FieldCircle | None = None,
    ) -> None:
        self.target = target
        self.plan = plan
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.circle = circle
        self.rgb = np.full((h, w, 3), 255, dtype=np.uint8)
        self.pos = np.zeros((h, w), dtype=bool)
        self.neg = np.zeros((h, w), dtype=bool)
        self.other = np.zeros((h, w), dtype=bool)

    def wants(self, x0: int, y0: int, w: int, h: int) -> bool:
        return not (
            x0 >= self.x0 + self.w
            or x0 + w <= self.x0
            or y0 >= self.y0 + self.h
            or y0 + h <= self.y0
        )

    def add(self, view: TileView) -> None:
        from nkpanel.uterine._skimage import find_boundaries

        core = view.core()
        rgb = view.rgb[core]
        cells = view.segmentation.cells[core]
        nuclei = view.segmentation.nuclei[core]
        th, tw = rgb.shape[:2]
        ax0, ay0 = max(view.x0, self.x0), max(view.y0, self.y0)
        ax1 = min(view.x0 + tw, self.x0 + self.w)
        ay1 = min(view.y0 + th, self.y0 + self.h)
        if ax1 <= ax0 or ay1 <= ay0:
            return
        src = (slice(ay0 - view.y0, ay1 - view.y0), slice(ax0 - view.x0, ax1 - view.x0))
        dst = (slice(ay0 - self.y0, ay1 - self.y0), slice(ax0 - self.x0, ax1 - self.x0))
        self.rgb[dst] = rgb[src]
        edge = find_boundaries(cells, mode="inner") | find_boundaries(nuclei, mode="inner")
        lab = np.where(cells > 0, cells, nuclei)
        e = edge[src]
        lb = lab[src]
        pos = view.positive[lb] & view.counted[lb]
        cnt = view.counted[lb]
        self.pos[dst] |= e & pos
        self.neg[dst] |= e & cnt & ~pos
        self.other[dst] |= e & (lb > 0) & ~cnt

    def render(self) -> U8:
        out = self.rgb.astype(np.float32)
        # excluded areas from the overview grid, tinted
        p = self.plan
        scale = p.analysis_downsample / p.overview_downsample
        yy = ((np.arange(self.h) + self.y0 + 0.5) * scale).astype(np.intp)
        xx = ((np.arange(self.w) + self.x0 + 0.5) * scale).astype(np.intp)
        yy = np.clip(yy, 0, p.excluded.shape[0] - 1)
        xx = np.clip(xx, 0, p.excluded.shape[1] - 1)
        excl = p.excluded[np.ix_(yy, xx)]
        out[excl] = 0.7 * out[excl] + 0.3 * np.asarray(EXCLUDED_RGB, np.float32)
        img = out.round().astype(np.uint8)
        img[self.other] = NOT_COUNTED_RGB
        img[self.neg] = NEGATIVE_RGB
        img[self.pos] = POSITIVE_RGB
        if self.circle is not None:
            cx = self.circle.cx / p.analysis_downsample - self.x0
            cy = self.circle.cy / p.analysis_downsample - self.y0
            r = self.circle.diameter / p.analysis_downsample / 2
            gy, gx = np.ogrid[: self.h, : self.w]
            ring = np.abs(np.hypot(gy - cy, gx - cx) - r) <= 1.5
            img[ring] = (0, 90, 255)
        return img

    def close(self) -> Path:
        from PIL import Image, ImageDraw

        img = Image.fromarray(self.render())
        if self.plan.synthetic:  # wherever the overlay goes, it says what it is
            draw = ImageDraw.Draw(img)
            label = "SYNTHETIC (generated by nkpanel, not a patient)"
            box = draw.textbbox((4, 4), label)
            draw.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), fill=(255, 255, 255))
            draw.text((4, 4), label, fill=(179, 38, 30))
        write_with(self.target, lambda tmp: img.save(tmp, format="PNG", compress_level=1))
        return self.target


def overlay_sinks(plan: AnalysisPlan, out_dir: Path) -> list[OverlayCanvas]:
    """One overlay for a field image; one per random ×400 field on a slide."""
    w0, h0 = plan.level0_size
    ds = plan.analysis_downsample
    if not plan.fields:
        return [
            OverlayCanvas(
                out_dir / "overlay.png", plan, 0, 0, math.ceil(w0 / ds), math.ceil(h0 / ds)
            )
        ]
    sinks = []
    for f in plan.fields:
        r = f.diameter / ds / 2 + 8
        x0 = max(0, int(f.cx / ds - r))
        y0 = max(0, int(f.cy / ds - r))
        size = int(2 * r)
        sinks.append(OverlayCanvas(out_dir / f"overlay_{f.name}.png", plan, x0, y0, size, size, f))
    return sinks


def _outlines(
    labels: NDArray[np.int32], wanted: NDArray[np.bool_]
) -> dict[int, NDArray[np.float64]]:
    """Outline of every wanted label: its boundary pixels' centres in angular order around
    the label's centroid (row, col). Exact for star-shaped objects (nuclei, and cells grown
    from them), vectorised over all labels at once."""
    from nkpanel.uterine._skimage import find_boundaries

    n = int(labels.max())
    if n == 0:
        return {}
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n + 1).astype(np.float64)
    rr, cc = np.indices(labels.shape)
    cy = np.bincount(flat, weights=rr.ravel(), minlength=n + 1) / np.maximum(area, 1)
    cx = np.bincount(flat, weights=cc.ravel(), minlength=n + 1) / np.maximum(area, 1)
    edge = find_boundaries(labels, mode="inner") & (labels > 0)
    ys, xs = np.nonzero(edge)
    lab = labels[ys, xs]
    keep = wanted[lab]
    ys, xs, lab = ys[keep], xs[keep], lab[keep]
    if lab.size == 0:
        return {}
    ang = np.arctan2(ys - cy[lab], xs - cx[lab])
    order = np.lexsort((ang, lab))
    lab, ys, xs = lab[order], ys[order], xs[order]
    cuts = np.flatnonzero(np.diff(lab)) + 1
    starts = np.r_[0, cuts]
    ends = np.r_[cuts, lab.size]
    pts = np.c_[ys, xs].astype(np.float64)
    return {int(lab[a]): pts[a:b] for a, b in zip(starts, ends, strict=True) if b - a >= 3}


def _corners(pts: NDArray[np.float64]) -> NDArray[np.float64]:
    """A closed ring of (row, col) pixel positions without the vertices where it goes straight on.

    A vertex is dropped when the step into it and the step out of it point the same way
    (cross product 0, dot product > 0): it lies on the segment between its neighbours, so the
    closed outline, and what it encloses, is the same point set. The test is exact on the
    integer pixel grid (before any scaling); a ring that would keep fewer than three
    vertices (a degenerate outline) is returned unchanged.

    Examples
    --------
    >>> square = np.array([[0, 0], [0, 1], [0, 2], [1, 2], [2, 2], [2, 1], [2, 0], [1, 0]], float)
    >>> _corners(square).tolist()
    [[0.0, 0.0], [0.0, 2.0], [2.0, 2.0], [2.0, 0.0]]
    """
    if len(pts) < 4:
        return pts
    into = pts - np.roll(pts, 1, axis=0)
    out = np.roll(pts, -1, axis=0) - pts
    cross = into[:, 0] * out[:, 1] - into[:, 1] * out[:, 0]
    dot = (into * out).sum(axis=1)
    keep = (cross != 0) | (dot <= 0)
    return pts[keep] if np.count_nonzero(keep) >= 3 else pts


def _ring(pts: NDArray[np.float64], x0: float, y0: float, ds: float) -> list[list[float]]:
    """Tile (row, col) pixel centres → a closed GeoJSON ring in level-0 coordinates, its
    straight runs kept as their end vertices only (:func:`_corners`; lossless)."""
    pts = _corners(pts)
    xy = np.round(np.c_[(pts[:, 1] + x0 + 0.5) * ds, (pts[:, 0] + y0 + 0.5) * ds], 2)
    ring = cast(list[list[float]], xy.tolist())
    ring.append(ring[0])
    return ring


class GeoJSONWriter:
    """Streams counted cells to a QuPath-readable GeoJSON FeatureCollection."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self._ctx = atomic_path(target)
        self._tmp = self._ctx.__enter__()
        self._fh: IO[str] = self._tmp.open("w", encoding="utf-8")
        self._fh.write('{"type": "FeatureCollection", "features": [\n')
        self._first = True

    def wants(self, x0: int, y0: int, w: int, h: int) -> bool:
        return True  # every counted cell

    def add(self, view: TileView) -> None:
        seg = view.segmentation
        ds = view.analysis_downsample
        ox, oy = view.x0 - view.margin, view.y0 - view.margin  # tile origin, analysis grid
        cell_rings = _outlines(seg.cells, view.counted)
        nuc_rings = _outlines(seg.nuclei, view.counted)
        t = view.cells
        parts: list[str] = []
        for i, cell_pts in cell_rings.items():
            pos = bool(view.positive[i])
            k = i - 1
            props: dict[str, Any] = {
                "objectType": "cell",
                "classification": {
                    "name": "Positive" if pos else "Negative",
                    "color": list(POSITIVE_RGB if pos else NEGATIVE_RGB),
                },
                "isLocked": False,
                "measurements": {
                    "Nucleus: Area µm^2": round(float(t.nucleus_area_um2[k]), 2),
                    "Cell: Area µm^2": round(float(t.cell_area_um2[k]), 2),
                    "Nucleus: Hematoxylin OD mean": round(float(t.haematoxylin_nucleus_od[k]), 4),
                    "Nucleus: DAB OD mean": round(float(t.dab_nucleus_od[k]), 4),
                    "Cytoplasm: DAB OD mean": round(float(t.dab_cytoplasm_od[k]), 4),
                    "Cell: DAB OD mean": round(float(t.dab_cell_od[k]), 4),
                    "DAB background OD (nkpanel)": round(float(t.dab_background_od[k]), 4),
                },
            }
            feat: dict[str, Any] = {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [_ring(cell_pts, ox, oy, ds)]},
            }
            # QuPath reads a cell's nucleus from a member of the Feature beside "geometry"
            # (PathObjectTypeAdapters.read: obj.get("nucleusGeometry")), not from properties;
            # RFC 7946 §6.1 allows such foreign members, so the file stays valid GeoJSON
            nuc_pts = nuc_rings.get(i)
            if nuc_pts is not None:
                feat["nucleusGeometry"] = {
                    "type": "Polygon",
                    "coordinates": [_ring(nuc_pts, ox, oy, ds)],
                }
            feat["properties"] = props
            parts.append(json.dumps(feat, ensure_ascii=False, separators=(",", ":")))
        if not parts:
            return
        if not self._first:
            self._fh.write(",\n")
        self._fh.write(",\n".join(parts))
        self._first = False

    def close(self) -> Path:
        self._fh.write("\n]}\n")
        self._fh.close()
        self._ctx.__exit__(None, None, None)
        return self.target

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        with contextlib.suppress(RuntimeError):
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)


def _overview_png(plan: AnalysisPlan, target: Path) -> Path:
    from PIL import Image

    img = plan.overview.astype(np.float32)
    img[plan.excluded] = 0.6 * img[plan.excluded] + 0.4 * np.asarray(EXCLUDED_RGB, np.float32)
    edge = plan.tissue & ~ndi.binary_erosion(plan.tissue)
    out = img.round().astype(np.uint8)
    out[edge] = (0, 0, 0)
    h, w = plan.tissue.shape
    for f in plan.fields:
        cx, cy = f.cx / plan.overview_downsample, f.cy / plan.overview_downsample
        r = f.diameter / plan.overview_downsample / 2
        # the ring (within a pixel of the circle) lies inside the circle's box widened by 2
        y0, y1 = max(0, int(np.floor(cy - r - 2))), min(h, int(np.ceil(cy + r + 2)) + 1)
        x0, x1 = max(0, int(np.floor(cx - r - 2))), min(w, int(np.ceil(cx + r + 2)) + 1)
        gy, gx = np.ogrid[y0:y1, x0:x1]
        ring = np.abs(np.hypot(gy - cy, gx - cx) - r) <= 1.0
        out[y0:y1, x0:x1][ring] = (0, 90, 255)
    im = Image.fromarray(out)
    if plan.fields:
        from PIL import ImageDraw, ImageFont

        # each circle numbered as its overlay file is named (field-01.png …), in a type a
        # quarter of the circle's radius high
        draw = ImageDraw.Draw(im)
        r = plan.fields[0].diameter / plan.overview_downsample / 2  # one diameter for all
        font = ImageFont.load_default(size=max(12, round(r / 4)))
        for f in plan.fields:
            cx, cy = f.cx / plan.overview_downsample, f.cy / plan.overview_downsample
            label = f.name.removeprefix("field-")
            draw.text((cx + 0.72 * r, cy - 0.72 * r), label, fill=(0, 90, 255), font=font)
    write_with(target, lambda tmp: im.save(tmp, format="PNG", compress_level=1))
    return target


def _cells_csv(analysis: UterineAnalysis, target: Path) -> Path:
    px = analysis.result.pixel_size_um or 1.0
    c = analysis.cells
    names = [f.name for f in analysis.plan.fields]
    buf = io.StringIO()
    wr = csv.writer(buf)
    wr.writerow(
        [
            "x_px",
            "y_px",
            "x_um",
            "y_um",
            "field",
            "cd56_positive",
            "nucleus_area_um2",
            "cell_area_um2",
            "haematoxylin_nucleus_od",
            "dab_nucleus_od",
            "dab_cytoplasm_od",
            "dab_cell_od",
            "dab_background_od",
        ]
    )
    for k in range(len(c)):
        fi = int(analysis.field_of_cell[k])
        wr.writerow(
            [
                f"{c.x[k]:.2f}",
                f"{c.y[k]:.2f}",
                f"{c.x[k] * px:.2f}",
                f"{c.y[k] * px:.2f}",
                names[fi] if fi >= 0 else "",
                int(c.positive[k]),
                f"{c.nucleus_area_um2[k]:.2f}",
                f"{c.cell_area_um2[k]:.2f}",
                f"{c.haematoxylin_nucleus_od[k]:.4f}",
                f"{c.dab_nucleus_od[k]:.4f}",
                f"{c.dab_cytoplasm_od[k]:.4f}",
                f"{c.dab_cell_od[k]:.4f}",
                f"{c.dab_background_od[k]:.4f}",
            ]
        )
    write_text(target, buf.getvalue())
    return target


def write_image_outputs(
    analysis: UterineAnalysis, out_dir: Path, sinks: Sequence[TileSink] = ()
) -> list[Path]:
    """Close the sinks (overlays, GeoJSON) and write the summary, cells table and overview."""
    written: list[Path] = []
    for sk in sinks:
        close = getattr(sk, "close", None)
        if callable(close):
            p = close()
            if isinstance(p, Path):
                written.append(p)
    target = out_dir / "summary.json"
    write_text(target, json.dumps(analysis.result.summary(), indent=2, default=str))
    written.append(target)
    written.append(_cells_csv(analysis, out_dir / "cells.csv"))
    if analysis.plan.fields or analysis.result.kind == "slide":
        written.append(_overview_png(analysis.plan, out_dir / "overview.png"))
    return written


#: the batch table's columns. Two estimates, each named: ``across_fields_*`` is the ratio of
#: sums across fields (a slide's random ×400 fields, the standardised protocol of Lash et al.
#: 2016; each field image one field) beside its own 95% CI, and ``fields`` says what the fields
#: are; ``whole_stroma_*`` is the ratio over the whole stroma analysed (no CI). The counts
#: (``cd56_positive_cells``, ``stromal_cells``, ``stromal_area_mm2``) are the whole stroma's.
_TABLE_COLUMNS = (
    "sample",
    "kind",
    "synthetic",
    "reportable",
    "cd56_positive_cells",
    "stromal_cells",
    "stromal_area_mm2",
    "n_fields",
    "fields",
    "across_fields_cd56_per_100_stromal_cells",
    "across_fields_ci_low_per_100",
    "across_fields_ci_high_per_100",
    "across_fields_cd56_per_mm2_stroma",
    "across_fields_ci_low_per_mm2",
    "across_fields_ci_high_per_mm2",
    "whole_stroma_cd56_per_100_stromal_cells",
    "whole_stroma_cd56_per_mm2_stroma",
    "exclusion_of_glands_and_epithelium",
    "pixel_size_um",
    "pixel_size_source",
    "stain_vectors",
    "notes",
)


def write_batch_table(results: Sequence[UterineResult], target: Path) -> Path:
    """One row per image (and per pooled biopsy) as CSV: each CI beside its own estimate."""
    buf = io.StringIO()
    wr = csv.writer(buf)
    wr.writerow(_TABLE_COLUMNS)
    for r in results:
        s = r.summary()
        c100 = s["across_fields_cd56_per_100_stromal_cells"]
        cmm = s["across_fields_cd56_per_mm2_stroma"]
        wr.writerow(
            [
                r.sample,
                r.kind,
                r.synthetic,
                r.reportable,
                s["cd56_positive_cells"],
                s["stromal_cells"],
                s["stromal_area_mm2"],
                c100["n_fields"],
                c100["fields"],
                c100["estimate"],
                c100["lower"],
                c100["upper"],
                cmm["estimate"],
                cmm["lower"],
                cmm["upper"],
                s["whole_stroma_cd56_per_100_stromal_cells"],
                s["whole_stroma_cd56_per_mm2_stroma"],
                r.exclusion_source,
                r.pixel_size_um,
                r.pixel_size_source,
                r.stains.get("source"),
                " | ".join(r.notes),
            ]
        )
    write_text(target, buf.getvalue())
    return target
