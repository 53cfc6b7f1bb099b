"""Regions drawn by a person, read from QuPath's GeoJSON export, and rasterised into masks.

QuPath exports annotations (File › Export objects as GeoJSON, or ``exportObjectsToGeoJson``) as
a ``FeatureCollection`` (or, from older versions, a bare list of features) whose coordinates are
full-resolution pixels of the image, with the annotation's class under
``properties.classification.name``.

How a class is read (case-insensitive):

* **count**: ``Stroma`` (any name containing "stroma"), or no class at all: the region to count;
* **exclude**: names starting with ``Ignore`` (QuPath's "Ignore*"), ``Exclude``, ``Gland``,
  ``Epithel…`` (luminal or glandular epithelium), ``Lumen``, ``Necrosis``, ``Artefact``/
  ``Artifact``, ``Fold``, ``Debris``, ``Blood``, ``Mucus``;
* any other class is an error that names it: a silently ignored region would change the count.

When count regions exist, only stroma inside them is counted; exclusions always win.
Detections and point annotations in the file are skipped (and said so in the notes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from nkpanel.errors import InputError

__all__ = ["EXCLUDE_PREFIXES", "Region", "Regions", "read_qupath_geojson"]

BoolArray = NDArray[np.bool_]
Ring = list[tuple[float, float]]

EXCLUDE_PREFIXES = (
    "ignore",
    "exclude",
    "gland",
    "epithel",
    "luminal",
    "lumen",
    "necrosis",
    "artefact",
    "artifact",
    "fold",
    "debris",
    "blood",
    "mucus",
)


@dataclass(frozen=True)
class Region:
    """One polygon (exterior ring and holes) in level-0 pixels, and its role."""

    role: Literal["count", "exclude"]
    name: str
    exterior: tuple[tuple[float, float], ...]
    holes: tuple[tuple[tuple[float, float], ...], ...] = ()

    @property
    def area_px(self) -> float:
        """Area in level-0 pixels² (shoelace formula, holes subtracted)."""

        def shoelace(ring: tuple[tuple[float, float], ...]) -> float:
            a = np.asarray(ring, dtype=np.float64)
            x, y = a[:, 0], a[:, 1]
            return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2.0

        return shoelace(self.exterior) - sum(shoelace(h) for h in self.holes)


@dataclass(frozen=True)
class Regions:
    """All regions of one image, from one GeoJSON file."""

    source: str
    regions: tuple[Region, ...]
    notes: tuple[str, ...] = ()

    @property
    def has_count_regions(self) -> bool:
        return any(r.role == "count" for r in self.regions)

    @property
    def has_exclusions(self) -> bool:
        return any(r.role == "exclude" for r in self.regions)

    def rasterise(
        self, width: int, height: int, pixel_size_ratio: float
    ) -> tuple[BoolArray | None, BoolArray]:
        """Count and exclude masks on a grid of ``width × height`` cells, each
        ``pixel_size_ratio`` level-0 pixels wide. The count mask is None when no count region
        was drawn (then all tissue counts)."""
        from PIL import Image, ImageDraw

        def draw(role: str) -> BoolArray:
            im = Image.new("1", (width, height), 0)
            d = ImageDraw.Draw(im)
            for r in self.regions:
                if r.role != role:
                    continue
                ext = [(x / pixel_size_ratio, y / pixel_size_ratio) for x, y in r.exterior]
                d.polygon(ext, fill=1)
                for hole in r.holes:
                    d.polygon(
                        [(x / pixel_size_ratio, y / pixel_size_ratio) for x, y in hole], fill=0
                    )
            return np.asarray(im, dtype=bool)

        count = draw("count") if self.has_count_regions else None
        return count, draw("exclude")


def _role(name: str | None) -> Literal["count", "exclude"] | None:
    if name is None or not name.strip():
        return "count"
    n = name.strip().lower()
    if "stroma" in n:
        return "count"
    if n.startswith(EXCLUDE_PREFIXES):
        return "exclude"
    return None


def _class_name(props: dict[str, Any]) -> str | None:
    cls = props.get("classification")
    if isinstance(cls, dict):
        name = cls.get("name")
        return str(name) if name is not None else None
    if isinstance(cls, str):
        return cls
    return None


def _ring(coords: Any, path: Path) -> tuple[tuple[float, float], ...]:
    try:
        ring = tuple((float(p[0]), float(p[1])) for p in coords)
    except (TypeError, ValueError, IndexError):
        raise InputError(path, "a polygon ring is not a list of [x, y] pairs") from None
    if len(ring) < 3:
        raise InputError(path, "a polygon ring has fewer than 3 points")
    return ring


def read_qupath_geojson(path: str | Path) -> Regions:
    """Read annotations exported by QuPath as GeoJSON.

    Raises
    ------
    InputError
        Unreadable or invalid JSON, no polygon annotation, or an annotation class that is
        neither a count nor an exclusion class (named in the message).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text("utf-8"))
    except OSError as exc:
        raise InputError(p, f"cannot read regions file ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(p, f"regions file is not valid GeoJSON ({exc})") from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features", [])
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, list):
        features = data
    else:
        raise InputError(p, "regions file is not a GeoJSON Feature or FeatureCollection")
    regions: list[Region] = []
    skipped: dict[str, int] = {}
    for feat in features:
        if not isinstance(feat, dict):
            raise InputError(p, "a GeoJSON feature is not an object")
        props = feat.get("properties") or {}
        kind = str(props.get("objectType", "annotation")).lower()
        geom = feat.get("geometry") or {}
        gtype = geom.get("type")
        if kind not in ("annotation", "tma_core", "tmacore"):
            skipped[f"{kind} objects"] = skipped.get(f"{kind} objects", 0) + 1
            continue
        if gtype not in ("Polygon", "MultiPolygon"):
            skipped[f"{gtype} annotations"] = skipped.get(f"{gtype} annotations", 0) + 1
            continue
        name = _class_name(props)
        role = _role(name)
        if role is None:
            raise InputError(
                p,
                f"annotation class {name!r} is neither a region to count (Stroma, or no class) "
                f"nor an exclusion ({', '.join(s.capitalize() + '…' for s in EXCLUDE_PREFIXES)})",
            )
        polys = [geom["coordinates"]] if gtype == "Polygon" else list(geom["coordinates"])
        for poly in polys:
            if not poly:
                continue
            ext = _ring(poly[0], p)
            holes = tuple(_ring(h, p) for h in poly[1:])
            regions.append(Region(role, name or "(no class)", ext, holes))
    if not regions:
        raise InputError(p, "no polygon annotation found in the regions file")
    notes = tuple(f"regions: skipped {n} {what}" for what, n in sorted(skipped.items()))
    return Regions(str(p), tuple(regions), notes)
