"""Reading QuPath's GeoJSON export (annotations with classes) and rasterising it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nkpanel.errors import InputError
from nkpanel.uterine.regions import Region, Regions, read_qupath_geojson


def _feature(
    cls: Any, coords: list[Any], gtype: str = "Polygon", kind: str = "annotation"
) -> dict[str, Any]:
    props: dict[str, Any] = {"objectType": kind}
    if cls is not None:
        props["classification"] = cls
    return {
        "type": "Feature",
        "geometry": {"type": gtype, "coordinates": coords},
        "properties": props,
    }


SQUARE = [[[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]]
SQUARE_FEATURE = {
    "type": "Feature",
    "geometry": {"type": "Polygon", "coordinates": SQUARE},
    "properties": {"objectType": "annotation"},
}
MISSING_COORDS = {
    "type": "Feature",
    "geometry": {"type": "Polygon"},
    "properties": {"objectType": "annotation", "classification": {"name": "Stroma"}},
}
HOLE = [[20, 20], [40, 20], [40, 40], [20, 40], [20, 20]]


def test_feature_collection_with_classes(tmp_path: Path) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            _feature({"name": "Stroma", "color": [0, 255, 0]}, [SQUARE[0], HOLE]),
            _feature({"name": "Gland"}, [[[60, 60], [80, 60], [80, 80], [60, 80], [60, 60]]]),
            _feature("Ignore*", [[[0, 0], [10, 0], [10, 10], [0, 0]]]),
            _feature(None, [[[5, 5], [6, 5], [6, 6]]], gtype="Point", kind="annotation"),
            _feature({"name": "Positive"}, SQUARE, kind="cell"),
        ],
    }
    p = tmp_path / "r.geojson"
    p.write_text(json.dumps(doc))
    r = read_qupath_geojson(p)
    assert [x.role for x in r.regions] == ["count", "exclude", "exclude"]
    assert r.regions[0].area_px == pytest.approx(100 * 100 - 20 * 20)
    assert any("cell objects" in n for n in r.notes)
    count, excl = r.rasterise(100, 100, 1.0)
    assert count is not None
    # a hole in a count region is not counted; an exclusion is excluded
    assert not count[30, 30] and count[10, 50]
    assert excl[70, 70] and not excl[50, 50]
    assert count.sum() == pytest.approx(100 * 100 - 20 * 20, rel=0.05)
    # the same regions on a grid 4 times coarser
    count4, _ = r.rasterise(25, 25, 4.0)
    assert count4 is not None and count4.sum() == pytest.approx(count.sum() / 16, rel=0.1)


def test_bare_list_and_multipolygon_and_unclassified(tmp_path: Path) -> None:
    doc = [
        _feature(
            None, [SQUARE, [[[200, 200], [210, 200], [210, 210], [200, 200]]]], gtype="MultiPolygon"
        )
    ]
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc))
    r = read_qupath_geojson(p)
    assert len(r.regions) == 2 and all(x.role == "count" for x in r.regions)
    assert r.has_count_regions and not r.has_exclusions


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        ("{not json", "not valid GeoJSON"),
        (json.dumps({"type": "Polygon"}), "not a GeoJSON Feature"),
        (json.dumps({"type": "FeatureCollection", "features": []}), "no polygon annotation"),
        (json.dumps([_feature({"name": "Tumor"}, SQUARE)]), "'Tumor'"),
        (json.dumps([_feature(None, [[[0, 0], [1, 1]]])]), "fewer than 3 points"),
        # malformed files a script or a hand edit leaves: each a one-line InputError, never a
        # KeyError/TypeError that would stop a whole batch
        (
            json.dumps({"type": "FeatureCollection", "features": [MISSING_COORDS]}),
            'feature 1: Polygon geometry has no "coordinates"',
        ),
        (
            json.dumps([{"type": "Feature", "geometry": "Polygon", "properties": {}}]),
            'feature 1: "geometry" is not a GeoJSON geometry object',
        ),
        (json.dumps({"type": "FeatureCollection", "features": None}), '"features" is not a list'),
        (
            '[{"type":"Feature","geometry":{"type":"Polygon","coordinates":'
            '[[[0,0],[NaN,0],[5,9],[0,0]]]},"properties":{}}]',
            "coordinate that is not a number",
        ),
        (json.dumps([_feature(None, [[0, 0, 0]])]), "not a list of \\[x, y\\] pairs"),
        (json.dumps([_feature(None, 7)]), '"coordinates" is not a list'),
        (json.dumps([_feature(None, [7], gtype="MultiPolygon")]), "not a list of rings"),
        (json.dumps([SQUARE_FEATURE, "text"]), "feature 2 is not a GeoJSON object"),
    ],
)
def test_bad_regions(tmp_path: Path, content: str, cause: str) -> None:
    p = tmp_path / "bad.geojson"
    p.write_text(content)
    with pytest.raises(InputError, match=cause) as info:
        read_qupath_geojson(p)
    assert str(info.value).startswith(str(p))
    assert "\n" not in str(info.value)


def test_feature_without_geometry_or_with_odd_properties_is_skipped(tmp_path: Path) -> None:
    doc = [
        {"type": "Feature", "geometry": None, "properties": {"objectType": "annotation"}},
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": SQUARE},
            "properties": [],
        },
    ]
    p = tmp_path / "r.geojson"
    p.write_text(json.dumps(doc))
    r = read_qupath_geojson(p)
    # the unclassified square counts (properties that are not an object are no class)
    assert [x.role for x in r.regions] == ["count"]
    assert r.regions[0].area_px == pytest.approx(100 * 100)
    assert r.notes == ("regions: skipped 1 annotations without geometry",)


def test_missing_regions_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_qupath_geojson(tmp_path / "nope.geojson")


def test_rasterise_without_count_regions(tmp_path: Path) -> None:
    p = tmp_path / "g.geojson"
    p.write_text(json.dumps([_feature({"name": "Epithelium"}, SQUARE)]))
    count, excl = read_qupath_geojson(p).rasterise(50, 50, 4.0)
    assert count is None
    assert excl[:24, :24].all() and not excl[30:, 30:].any()
    assert np.count_nonzero(excl) == pytest.approx(25 * 25, rel=0.1)


def test_regions_without_area_are_said_to_be_empty() -> None:
    """Polygons that enclose nothing (a line drawn back on itself, a point) lie on the image
    but hold no stroma: the regions are empty, not from another image."""
    line = ((100.0, 100.0), (500.0, 500.0), (100.0, 100.0))
    point = ((300.0, 300.0), (300.0, 300.0), (300.0, 300.0))
    empty = Regions("r.geojson", (Region("count", "Stroma", line),))
    with pytest.raises(InputError, match="regions are empty") as info:
        empty.check_on_image(1000, 1000)
    assert "another image" not in str(info.value)
    both = Regions(
        "r.geojson",
        (Region("count", "Stroma", point), Region("exclude", "Gland", ((0, 0), (9, 0), (9, 9)))),
    )
    with pytest.raises(InputError, match=r"regions to count \(Stroma\) are empty"):
        both.check_on_image(1000, 1000)


def _read(tmp_path: Path, features: list[Any]) -> Regions:
    p = tmp_path / "r.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return read_qupath_geojson(p)


def test_detections_of_older_qupath_versions_are_not_regions(tmp_path: Path) -> None:
    """QuPath 0.3 wrote the object type as ``object_type`` and 0.2 as the feature's ``id``
    ("PathDetectionObject"); read as annotations, every detected cell became a region to count
    (1 of 17 cells counted instead of 61 of 1,099). They are skipped, as QuPath reads them."""
    cells = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": SQUARE},
            "properties": {"object_type": "detection"},
        },
        {
            "type": "Feature",
            "id": "PathDetectionObject",
            "geometry": {"type": "Polygon", "coordinates": SQUARE},
            "properties": {},
        },
        {
            "type": "Feature",
            "id": "PathAnnotationObject",
            "geometry": {"type": "Polygon", "coordinates": SQUARE},
            "properties": {"classification": {"name": "Gland"}},
        },
    ]
    r = _read(tmp_path, cells)
    assert [x.role for x in r.regions] == ["exclude"]
    assert r.notes == ("regions: skipped 2 detection objects",)


@pytest.mark.parametrize(
    "cls",
    [
        {"names": ["Gland", "Luminal"], "color": [0, 0, 255]},  # QuPath 0.4+: a derived class
        {"name": "Luminal", "parentClass": {"name": "Gland"}},  # earlier: name and parent
        {"name": "Non-stroma"},
        "Not stroma",
        # stroma sub-classed to be left out (audit 8: counted as stroma)
        {"names": ["Stroma", "Blood"]},
        {"name": "Necrosis", "parentClass": {"name": "Stroma"}},
        "Stroma: Ignore*",
    ],
    ids=["names", "parentClass", "non-stroma", "not-stroma", "blood", "necrosis", "ignore"],
)
def test_derived_and_negated_classes_are_exclusions(tmp_path: Path, cls: Any) -> None:
    """A derived class ("Gland: Luminal") was read as no class, i.e. a region to count, and
    restricted the count to the gland (0 of 21 cells); "Non-stroma" was read as stroma."""
    (region,) = _read(tmp_path, [_feature(cls, SQUARE)]).regions
    assert region.role == "exclude"


def test_a_gland_drawn_as_a_geometry_collection_is_read(tmp_path: Path) -> None:
    collection = {
        "type": "GeometryCollection",
        "geometries": [
            {"type": "Polygon", "coordinates": SQUARE},
            {"type": "LineString", "coordinates": [[0, 0], [5, 5]]},
        ],
    }
    feature = {
        "type": "Feature",
        "geometry": collection,
        "properties": {"objectType": "annotation", "classification": {"name": "Gland"}},
    }
    (region,) = _read(tmp_path, [feature]).regions
    assert region.role == "exclude" and region.area_px == pytest.approx(100 * 100)


def test_an_annotation_named_but_not_classed_as_a_gland_is_said(tmp_path: Path) -> None:
    """QuPath keeps an annotation's name apart from its class; nkpanel reads the class (no
    class = count), and says so when the name reads as an exclusion."""
    feature = _feature(None, SQUARE)
    feature["properties"]["name"] = "Gland"
    r = _read(tmp_path, [feature])
    assert r.regions[0].role == "count"
    assert any("named 'Gland' have no class" in n for n in r.notes)


def test_whether_regions_say_where_the_glands_are(tmp_path: Path) -> None:
    """Only a region classed as stroma or an exclusion of glands or epithelium says where the
    glands are; an unclassified outline (QuPath's tissue detection) plus Ignore*, or lumens
    alone, left glands counted as stroma (57 of 1,139 for 57 of 1,053)."""
    assert not _read(tmp_path, [_feature("Ignore*", SQUARE)]).marks_glands
    assert not _read(tmp_path, [_feature(None, SQUARE), _feature("Ignore*", SQUARE)]).marks_glands
    assert not _read(tmp_path, [_feature("Lumen", SQUARE)]).marks_glands
    assert _read(tmp_path, [_feature("Epithelium", SQUARE)]).marks_glands
    assert _read(tmp_path, [_feature({"name": "Stroma"}, SQUARE)]).marks_glands


@pytest.mark.parametrize(
    "name", ["Non-decidualised stroma", "Non-neoplastic stroma", "Stroma (not oedematous)"]
)
def test_stroma_qualified_by_a_negation_is_still_stroma(tmp_path: Path, name: str) -> None:
    """Only stroma denied as a whole ("Non-stroma") is an exclusion: "Non-decidualised
    stroma" was read as one and half a field's stroma was dropped, silently."""
    (region,) = _read(tmp_path, [_feature({"name": name}, SQUARE)]).regions
    assert region.role == "count"


@pytest.mark.parametrize("band_first", [True, False])
def test_a_regions_hole_is_its_own(band_first: bool) -> None:
    """An Ignore band around the tissue edge (QuPath's "Remove interior": a polygon with a
    hole) exported after the glands un-excluded every gland: holes were painted on the
    canvas all regions of a role share. Either order now excludes the gland and the band."""

    def sq(x0: float, y0: float, x1: float, y1: float) -> tuple[tuple[float, float], ...]:
        return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))

    gland = Region("exclude", "Gland", sq(40, 40, 60, 60))
    band = Region("exclude", "Ignore*", sq(0, 0, 100, 100), (sq(5, 5, 95, 95),))
    order = (band, gland) if band_first else (gland, band)
    _, excl = Regions("x", order).rasterise(100, 100, 1.0)
    assert excl[40:60, 40:60].all()  # the gland
    assert excl[:5].all() and excl[96:].all() and excl[:, :5].all()  # the band
    assert not excl[10:35, 10:35].any()  # the band's hole, outside the gland
    # areas: band 100² − 90², gland 20² (edges drawn inclusive: 2,160 pixels)
    assert np.count_nonzero(excl) == pytest.approx(100 * 100 - 90 * 90 + 20 * 20, rel=0.1)


def test_gland_areas_exported_as_detections_are_exclusions(tmp_path: Path) -> None:
    """QuPath's pixel classifier may write its Gland areas as detections beside a Stroma
    annotation: skipped, the glands were counted as stroma and, the Stroma region marking
    where glands are, automatic exclusion was off too (−8% per mm², audit 8)."""
    stroma = _feature({"name": "Stroma"}, SQUARE)
    gland = _feature({"name": "Gland"}, [HOLE], kind="detection")
    cell = _feature({"name": "Positive"}, [HOLE], kind="detection")  # a cell's, not an area
    r = _read(tmp_path, [stroma, gland, cell])
    assert [(x.role, x.name) for x in r.regions] == [("count", "Stroma"), ("exclude", "Gland")]
    assert r.marks_glands
    count, excl = r.rasterise(100, 100, 1.0)
    assert count is not None and excl[25:35, 25:35].all() and not excl[50:, 50:].any()
    assert "regions: 1 detection object(s) classed as exclusions" in " ".join(r.notes)
    assert "regions: skipped 1 detection objects" in r.notes
