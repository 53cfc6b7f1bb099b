"""Regions drawn by a person, read from QuPath's GeoJSON export, and rasterised into masks.

QuPath exports annotations (File › Export objects as GeoJSON, or ``exportObjectsToGeoJson``) as
a ``FeatureCollection`` (or, from older versions, a bare list of features) whose coordinates are
full-resolution pixels of the image, with the annotation's class under
``properties.classification.name``.

How a class is read (case-insensitive; a derived class is its names joined by ": ", as QuPath
prints it, e.g. "Gland: Luminal", from ``names`` (QuPath 0.4+) or ``name`` and ``parentClass``):

* **exclude**: names starting with ``Ignore`` (QuPath's "Ignore*"), ``Exclude``, ``Gland``,
  ``Epithel…`` (luminal or glandular epithelium), ``Lumen``, ``Necrosis``, ``Artefact``/
  ``Artifact``, ``Fold``, ``Debris``, ``Blood``, ``Mucus``, and stroma denied ("Non-stroma");
* **count**: ``Stroma`` (any other name containing "stroma"), or no class at all: the region
  to count (an annotation *named* like an exclusion but without a class is said in a note);
* any other class is an error that names it: a silently ignored region would change the count.

When count regions exist, only stroma inside them is counted; exclusions always win. Regions
that neither outline stroma (a region classed Stroma) nor exclude glands or epithelium (an
artefact, an unclassified tissue outline, lumens alone) leave the automatic gland exclusion on
(:attr:`Regions.marks_glands`). The object type is read as QuPath reads it
(``objectType``, ``object_type``, ``type``, or a QuPath 0.2 feature ``id``); detections classed
as an exclusion (a pixel classifier's Gland areas) are exclusions, other detections, cells,
tiles, point annotations and features without geometry are skipped (and said so in the
notes); a GeometryCollection's polygons are read; a malformed feature (geometry that is not
an object, no or non-numeric coordinates) is an error naming the file and the feature's
position. Regions are checked against the image
(:meth:`Regions.check_on_image`): none on it is an error (drawn on another image), regions
running well past its edges a warning.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from nkpanel.errors import InputError

__all__ = [
    "EXCLUDE_PREFIXES",
    "GLAND_PREFIXES",
    "MAX_OUTSIDE_FRACTION",
    "Region",
    "Regions",
    "read_qupath_geojson",
]

BoolArray = NDArray[np.bool_]
Ring = list[tuple[float, float]]

#: regions running past the image by more than this fraction of their area are warned about
#: (an annotation drawn up to the edge with a brush overshoots by a few percent)
MAX_OUTSIDE_FRACTION = 0.05

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


#: exclusion classes that mark glands or epithelium (the rest mark artefacts and the like)
GLAND_PREFIXES = ("gland", "epithel", "luminal")
#: a class that is stroma denied, whole ("Non-stroma", "Not stroma", "non_stroma"), is an
#: exclusion; "Non-decidualised stroma" is stroma
_NOT_STROMA = re.compile(r"(non|not|no)[\s_-]*stroma")
#: QuPath 0.2 wrote the object type as the feature's "id" (Bankhead, QuPath's
#: PathObjectTypeAdapters: LEGACY_TYPE_IDS)
_LEGACY_TYPES = {
    "PathAnnotationObject": "annotation",
    "PathDetectionObject": "detection",
    "PathCellObject": "cell",
    "PathTileObject": "tile",
    "TMACoreObject": "tma_core",
    "PathRootObject": "root",
}


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
        return _shoelace(self.exterior) - sum(_shoelace(h) for h in self.holes)


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

    @property
    def marks_glands(self) -> bool:
        """Whether the person said where the glands are: a region classed as stroma (drawn,
        glands left out) or an exclusion of glands or epithelium. An unclassified outline (as
        QuPath's tissue detection draws) or a lumen alone (its epithelium left in) says
        nothing of them, and glands are then still excluded automatically."""
        return any(
            (r.role == "count" and "stroma" in r.name.lower())
            or (r.role == "exclude" and r.name.strip().lower().startswith(GLAND_PREFIXES))
            for r in self.regions
        )

    def rasterise(
        self, width: int, height: int, pixel_size_ratio: float
    ) -> tuple[BoolArray | None, BoolArray]:
        """Count and exclude masks on a grid of ``width × height`` cells, each
        ``pixel_size_ratio`` level-0 pixels wide. The count mask is None when no count region
        was drawn (then all tissue counts)."""
        from PIL import Image, ImageDraw

        def grid(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
            return [(x / pixel_size_ratio, y / pixel_size_ratio) for x, y in points]

        def draw(role: str) -> BoolArray:
            im = Image.new("1", (width, height), 0)
            d = ImageDraw.Draw(im)
            holed = []
            for r in self.regions:
                if r.role != role:
                    continue
                if r.holes:
                    holed.append(r)
                else:
                    d.polygon(grid(r.exterior), fill=1)
            mask = np.asarray(im, dtype=bool).copy()
            # a region's holes are its own: drawn on one canvas, a later region's hole (an
            # Ignore band around the tissue) would wipe out earlier regions inside it (every
            # gland). Each holed region is drawn in its own box and added
            for r in holed:
                ext = grid(r.exterior)
                x0 = max(0, int(np.floor(min(x for x, _ in ext))))
                y0 = max(0, int(np.floor(min(y for _, y in ext))))
                x1 = min(width, int(np.ceil(max(x for x, _ in ext))) + 1)
                y1 = min(height, int(np.ceil(max(y for _, y in ext))) + 1)
                if x1 <= x0 or y1 <= y0:
                    continue
                box = Image.new("1", (x1 - x0, y1 - y0), 0)
                bd = ImageDraw.Draw(box)
                bd.polygon([(x - x0, y - y0) for x, y in ext], fill=1)
                for hole in r.holes:
                    bd.polygon([(x - x0, y - y0) for x, y in grid(hole)], fill=0)
                mask[y0:y1, x0:x1] |= np.asarray(box, dtype=bool)
            return mask

        count = draw("count") if self.has_count_regions else None
        return count, draw("exclude")

    def check_on_image(self, width: int, height: int) -> tuple[float, str | None]:
        """Check that the regions were drawn on this image (``width × height`` level-0 pixels).

        Returns
        -------
        outside_fraction : float
            The fraction of the regions' area (exteriors) beyond the image's edges.
        warning : str or None
            Said when that fraction is above :data:`MAX_OUTSIDE_FRACTION` (drawn on a larger
            image, or at another resolution?).

        Raises
        ------
        InputError
            When the regions (or those to count) enclose no area; when no region, or no
            region to count, touches the image: the file belongs to another image (a count of
            0 cells would otherwise look like a result).
        """
        total = {"count": 0.0, "exclude": 0.0}
        inside = {"count": 0.0, "exclude": 0.0}
        x1 = y1 = 0.0
        for r in self.regions:
            total[r.role] += _shoelace(r.exterior)
            inside[r.role] += _shoelace(_clip_to_box(r.exterior, width, height))
            x1 = max(x1, max(x for x, _ in r.exterior))
            y1 = max(y1, max(y for _, y in r.exterior))
        size = f"{width}×{height} pixels"
        if sum(total.values()) <= 0:
            raise InputError(
                self.source,
                "the regions are empty (every polygon encloses no area: a line or a point); "
                "draw them again as areas",
            )
        if total["count"] <= 0 and any(r.role == "count" for r in self.regions):
            raise InputError(
                self.source,
                "the regions to count (Stroma) are empty (they enclose no area); draw them "
                "again as areas",
            )
        if sum(inside.values()) <= 0:
            raise InputError(
                self.source,
                f"no region lies on the image ({size}; the regions reach x {x1:.0f}, "
                f"y {y1:.0f}): the GeoJSON was drawn on another image",
            )
        if total["count"] > 0 and inside["count"] <= 0:
            raise InputError(
                self.source,
                f"no region to count (Stroma) lies on the image ({size}): the GeoJSON was "
                "drawn on another image",
            )
        area = sum(total.values())
        outside = 1.0 - sum(inside.values()) / area if area > 0 else 0.0
        if outside > MAX_OUTSIDE_FRACTION:
            return outside, (
                f"regions: {outside:.0%} of the drawn regions' area lies beyond the image's "
                f"edges ({size}; the regions reach x {x1:.0f}, y {y1:.0f}): were they drawn "
                "on a larger image or at another resolution?"
            )
        return outside, None


def _shoelace(ring: Sequence[tuple[float, float]]) -> float:
    """Area of a simple polygon (Gauss's shoelace formula); 0 for fewer than 3 points."""
    if len(ring) < 3:
        return 0.0
    a = np.asarray(ring, dtype=np.float64)
    x, y = a[:, 0], a[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2.0


def _clip_to_box(
    ring: Sequence[tuple[float, float]], width: float, height: float
) -> list[tuple[float, float]]:
    """The part of a polygon inside ``[0, width] × [0, height]`` (Sutherland & Hodgman 1974,
    clipping against each edge of the box in turn; exact for any simple polygon's area).

    References
    ----------
    Sutherland IE, Hodgman GW. Reentrant polygon clipping. Commun ACM 1974;17(1):32-42.
    """
    out = list(ring)
    # each edge of the box as (axis, limit, keep the side below the limit?)
    for axis, limit, below in (
        (0, 0.0, False),
        (0, width, True),
        (1, 0.0, False),
        (1, height, True),
    ):
        pts, out = out, []
        if not pts:
            break

        def inside(
            q: tuple[float, float], axis: int = axis, limit: float = limit, below: bool = below
        ) -> bool:
            return q[axis] <= limit if below else q[axis] >= limit

        prev = pts[-1]
        for cur in pts:
            if inside(cur) != inside(prev):
                t = (limit - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if inside(cur):
                out.append(cur)
            prev = cur
    return out


def _role(name: str | None) -> Literal["count", "exclude"] | None:
    if name is None or not name.strip():
        return "count"
    n = name.strip().lower()
    # a derived class ("Stroma: Blood") is an exclusion when any of its names is one: a lab
    # sub-classes areas of stroma to leave them out
    if any(part.strip().startswith(EXCLUDE_PREFIXES) for part in n.split(":")):
        return "exclude"
    if "stroma" in n:
        return "exclude" if _NOT_STROMA.fullmatch(n) else "count"
    return None


def _class_name(props: dict[str, Any]) -> str | None:
    """The annotation's class as QuPath prints it: ``"Gland"``, or a derived class's names
    joined by ": " (``"Gland: Luminal"``), written by QuPath 0.4 and later as ``names`` and by
    earlier versions as a ``name`` with its ``parentClass``."""
    cls = props.get("classification")
    if isinstance(cls, str):
        return cls
    names: list[str] = []
    while isinstance(cls, dict) and len(names) < 16:
        listed = cls.get("names")
        if isinstance(listed, list) and listed:
            names[:0] = [str(n) for n in listed]
            break
        if cls.get("name") is not None:
            names.insert(0, str(cls["name"]))
        cls = cls.get("parentClass")
    return ": ".join(names) if names else None


def _object_type(feature: dict[str, Any], props: dict[str, Any]) -> str:
    """What QuPath exported the feature as (QuPath's own reading): ``objectType`` (0.4+),
    ``object_type`` (0.3), ``type``, or the feature's ``id`` (0.2); an annotation otherwise."""
    for key in ("objectType", "object_type", "type"):
        if key in props:
            return str(props[key]).lower()
    legacy = feature.get("id")
    if isinstance(legacy, str) and legacy in _LEGACY_TYPES:
        return _LEGACY_TYPES[legacy]
    return "annotation"


def _ring(coords: Any, path: Path, where: str) -> tuple[tuple[float, float], ...]:
    try:
        ring = tuple((float(p[0]), float(p[1])) for p in coords)
    except (TypeError, ValueError, IndexError, KeyError):
        raise InputError(path, f"{where}: a polygon ring is not a list of [x, y] pairs") from None
    if not all(math.isfinite(v) for xy in ring for v in xy):
        raise InputError(path, f"{where}: a polygon ring has a coordinate that is not a number")
    if len(ring) < 3:
        raise InputError(path, f"{where}: a polygon ring has fewer than 3 points")
    return ring


def _polygons(geom: dict[str, Any], gtype: str, path: Path, where: str) -> list[Any]:
    """The polygons (lists of rings) of a Polygon or MultiPolygon geometry."""
    if "coordinates" not in geom:
        raise InputError(path, f'{where}: {gtype} geometry has no "coordinates"')
    coords = geom["coordinates"]
    if not isinstance(coords, list):
        raise InputError(path, f'{where}: {gtype} "coordinates" is not a list')
    polys = [coords] if gtype == "Polygon" else coords
    for poly in polys:
        if not isinstance(poly, list):
            raise InputError(path, f"{where}: a polygon of the MultiPolygon is not a list of rings")
    return polys


def read_qupath_geojson(path: str | Path) -> Regions:
    """Read annotations exported by QuPath as GeoJSON.

    Raises
    ------
    InputError
        Unreadable or invalid JSON; a malformed feature or geometry (named by its position in
        the file); no polygon annotation; or an annotation class that is neither a count nor
        an exclusion class (named in the message).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text("utf-8"))
    except OSError as exc:
        raise InputError(p, f"cannot read regions file ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(p, f"regions file is not valid GeoJSON ({exc})") from None
    except RecursionError:
        raise InputError(p, "regions file is not valid GeoJSON (nested too deeply)") from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise InputError(p, 'the FeatureCollection\'s "features" is not a list')
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, list):
        features = data
    else:
        raise InputError(p, "regions file is not a GeoJSON Feature or FeatureCollection")
    regions: list[Region] = []
    skipped: dict[str, int] = {}
    unclassed_names: list[str] = []
    read_detections = 0
    for n, feat in enumerate(features, start=1):
        where = f"feature {n}"
        if not isinstance(feat, dict):
            raise InputError(p, f"{where} is not a GeoJSON object")
        props = feat.get("properties")
        if not isinstance(props, dict):
            props = {}
        kind = _object_type(feat, props)
        geom = feat.get("geometry")
        if geom is None:
            skipped["annotations without geometry"] = (
                skipped.get("annotations without geometry", 0) + 1
            )
            continue
        if not isinstance(geom, dict):
            raise InputError(p, f'{where}: "geometry" is not a GeoJSON geometry object')
        gtype = geom.get("type")
        # QuPath's pixel classifier may write its areas (Gland, Epithelium…) as detections:
        # an exclusion is one whatever object holds it (skipped, its glands were counted as
        # stroma, and with a Stroma annotation beside them automatic exclusion was off)
        name = _class_name(props)
        role = _role(name)
        excluding = kind == "detection" and role == "exclude"
        if excluding:
            read_detections += 1
        elif kind not in ("annotation", "tma_core", "tmacore"):
            skipped[f"{kind} objects"] = skipped.get(f"{kind} objects", 0) + 1
            continue
        parts = [geom]
        if gtype == "GeometryCollection":  # QuPath writes one for an area with lines or points
            members = geom.get("geometries", geom.get("coordinates"))  # the latter: not RFC 7946
            parts = [g for g in members if isinstance(g, dict)] if isinstance(members, list) else []
        shapes = [g for g in parts if g.get("type") in ("Polygon", "MultiPolygon")]
        if not shapes:
            skipped[f"{gtype} annotations"] = skipped.get(f"{gtype} annotations", 0) + 1
            continue
        if role is None:
            raise InputError(
                p,
                f"annotation class {name!r} is neither a region to count (Stroma, or no class) "
                f"nor an exclusion ({', '.join(s.capitalize() + '…' for s in EXCLUDE_PREFIXES)})",
            )
        label = props.get("name")
        if name is None and isinstance(label, str) and _role(label) == "exclude":
            unclassed_names.append(label)
        for shape in shapes:
            for poly in _polygons(shape, str(shape["type"]), p, where):
                if not poly:
                    continue
                ext = _ring(poly[0], p, where)
                holes = tuple(_ring(h, p, where) for h in poly[1:])
                regions.append(Region(role, name or "(no class)", ext, holes))
    if not regions:
        raise InputError(p, "no polygon annotation found in the regions file")
    notes = tuple(f"regions: skipped {n} {what}" for what, n in sorted(skipped.items()))
    if read_detections:
        notes += (
            f"regions: {read_detections} detection object(s) classed as exclusions (a pixel "
            "classifier's areas) read as exclusions",
        )
    if unclassed_names:  # QuPath reads a class, not a name; so does nkpanel
        shown = ", ".join(repr(n) for n in dict.fromkeys(unclassed_names))
        notes += (
            f"regions: annotation(s) named {shown} have no class, so they were read as regions "
            "to count, not excluded: give them a class (e.g. Gland) in QuPath to exclude them",
        )
    return Regions(str(p), tuple(regions), notes)
