"""The ``nkpanel uterine`` sub-commands and the case manifest's ``[[endometrial]]`` table, on
SYNTHETIC fields written by ``nkpanel uterine simulate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from nkpanel.errors import ConfigError
from nkpanel.uterine.cli import app
from nkpanel.uterine.manifest import EndometrialBiopsy, biopsy_timing, run_biopsy_for_case

runner = CliRunner()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("synthetic")
    res = runner.invoke(app, ["simulate", "--out", str(d), "--fields", "2", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "SYNTHETIC" in res.output
    return d


def test_simulate_writes_labelled_fields(synthetic: Path) -> None:
    images = sorted(synthetic.glob("*.tif"))
    assert [p.name for p in images] == ["synthetic_field_01.tif", "synthetic_field_02.tif"]
    truth = json.loads((synthetic / "synthetic_field_01.truth.json").read_text())
    assert truth["synthetic"] is True
    assert (synthetic / "synthetic_field_01.regions.geojson").is_file()


def test_analyze_with_regions_folder(synthetic: Path, tmp_path: Path) -> None:
    images = sorted(synthetic.glob("*.tif"))
    out = tmp_path / "out"
    res = runner.invoke(
        app, ["analyze", *map(str, images), "--regions", str(synthetic), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "synthetic" in res.output
    summary = json.loads((out / "biopsy_summary.json").read_text())
    biopsy = summary["biopsy"]
    assert biopsy["synthetic"] is True
    assert biopsy["exclusion_of_glands_and_epithelium"] == "regions"
    assert biopsy["across_fields_cd56_per_100_stromal_cells"]["n_fields"] == 2
    truth = [json.loads(p.with_suffix(".truth.json").read_text()) for p in images]
    t100 = (
        100 * sum(t["cd56_positive_cells"] for t in truth) / sum(t["stromal_cells"] for t in truth)
    )
    assert abs(biopsy["cd56_per_100_stromal_cells"] - t100) <= 1.5
    assert (out / "uterine_results.csv").read_text().count("\n") == 4  # header, 2 images, biopsy
    # review outputs: overlay with both colours, GeoJSON QuPath can import
    from PIL import Image

    img_dir = out / "images" / "synthetic_field_01"
    ov = np.asarray(Image.open(img_dir / "overlay.png").convert("RGB"))
    assert ((ov == (230, 20, 20)).all(axis=2)).sum() > 100
    assert ((ov == (20, 190, 40)).all(axis=2)).sum() > 1000
    geo = json.loads((img_dir / "detections.geojson").read_text())
    feats = geo["features"]
    per_image = summary["images"][0]
    assert len(feats) == per_image["stromal_cells"]
    names = [f["properties"]["classification"]["name"] for f in feats]
    assert names.count("Positive") == per_image["cd56_positive_cells"]
    for f in feats[:50]:
        ring = f["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) >= 4
        assert f["properties"]["objectType"] == "cell"
        xs = [p[0] for p in ring]
        assert min(xs) >= 0 and max(xs) <= 1000
        # QuPath (PathObjectTypeAdapters.read) takes the nucleus from a member of the Feature
        # beside "geometry"; inside "properties" it would be dropped on import
        assert "nucleusGeometry" not in f["properties"]
        nucleus = f["nucleusGeometry"]
        assert nucleus["type"] == "Polygon"
        nring = nucleus["coordinates"][0]
        assert nring[0] == nring[-1] and len(nring) >= 4
        # the nucleus lies within the cell's bounding box
        assert min(p[0] for p in nring) >= min(xs) and max(p[0] for p in nring) <= max(xs)
        # straight runs are kept as their two ends: no vertex where the outline goes straight on
        for r in (ring, nring):
            v = np.asarray(r[:-1])
            into, out_ = v - np.roll(v, 1, axis=0), np.roll(v, -1, axis=0) - v
            cross = into[:, 0] * out_[:, 1] - into[:, 1] * out_[:, 0]
            straight = (np.abs(cross) < 1e-9) & ((into * out_).sum(axis=1) > 0)
            assert not straight.any()
    cells = (img_dir / "cells.csv").read_text().splitlines()
    assert len(cells) == per_image["stromal_cells"] + 1


def test_regions_folder_by_qupath_image_name_and_a_missing_file(
    synthetic: Path, tmp_path: Path
) -> None:
    images = sorted(synthetic.glob("*.tif"))
    folder = tmp_path / "regions"
    folder.mkdir()
    # QuPath's naming for the first image (<image file name>.geojson); none for the second
    src = synthetic / "synthetic_field_01.regions.geojson"
    (folder / "synthetic_field_01.tif.geojson").write_text(src.read_text())
    out = tmp_path / "out"
    args = ["analyze", *map(str, images), "--regions", str(folder), "--out", str(out)]
    res = runner.invoke(app, [*args, "--no-detections", "--no-overlays"])
    assert res.exit_code == 0, res.output
    assert "warning: synthetic_field_02: no regions file for this image" in res.output
    rows = (out / "uterine_results.csv").read_text().splitlines()
    assert ",regions," in rows[1] and ",automatic," in rows[2]


def test_analyze_batch_with_a_bad_file_exits_1(synthetic: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage")
    good = synthetic / "synthetic_field_01.tif"
    res = runner.invoke(
        app, ["analyze", str(bad), str(good), "--out", str(tmp_path / "o"), "--no-detections"]
    )
    assert res.exit_code == 1
    assert "broken.tif" in res.output
    assert "1 of 2 image(s) failed" in res.output
    assert (tmp_path / "o" / "images" / "synthetic_field_01" / "summary.json").is_file()
    # one image analysed: the biopsy's own row is still shown (its QC can differ from the
    # image's: e.g. too few stromal cells over the biopsy)
    assert "(all" in res.output and "images)" in res.output  # the label wraps at 80 columns
    # the biopsy's result says it rests on fewer images than given, and why
    biopsy = json.loads((tmp_path / "o" / "biopsy_summary.json").read_text())["biopsy"]
    (warning,) = [q for q in biopsy["qc"] if q["check"] == "images analysed"]
    assert not warning["passed"] and not warning["blocking"]
    assert warning["reason"].startswith("1 of 2 images analysed; not counted: ")
    assert "broken.tif: not a readable TIFF" in warning["reason"]
    # one field image of the protocol's ten random ×400 fields: said, as a warning
    (fields,) = [q for q in biopsy["qc"] if q["check"] == "×400 fields"]
    assert not fields["passed"] and not fields["blocking"]
    assert fields["reason"] == "only 1 random ×400 field of stroma (protocol: 10)"


def test_a_folder_of_images_is_analysed(synthetic: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["analyze", str(synthetic), "--out", str(tmp_path / "o"), "--no-detections"]
    )
    assert res.exit_code == 0, res.output
    done = sorted(p.name for p in (tmp_path / "o" / "images").iterdir())
    assert done == ["synthetic_field_01", "synthetic_field_02"]


def test_regions_count_mismatch_is_a_config_error(synthetic: Path, tmp_path: Path) -> None:
    images = sorted(synthetic.glob("*.tif"))
    regs = sorted(synthetic.glob("*.geojson"))[:1]
    res = runner.invoke(
        app, ["analyze", *map(str, images), "--regions", str(regs[0]), "--out", str(tmp_path)]
    )
    assert isinstance(res.exception, ConfigError)


def test_manifest_model() -> None:
    b = EndometrialBiopsy.model_validate({"images": "a.tif", "lh_day": 7})
    assert b.images == (Path("a.tif"),)
    assert biopsy_timing(b)["in_mid_luteal_window"] is True
    late = EndometrialBiopsy.model_validate({"images": ["a.tif"], "cycle_day": 26})
    assert biopsy_timing(late)["in_mid_luteal_window"] is False
    assert "outside" in biopsy_timing(late)["note"]
    none = EndometrialBiopsy.model_validate({"images": ["a.tif"]})
    assert biopsy_timing(none)["in_mid_luteal_window"] is None
    with pytest.raises(ValidationError):
        EndometrialBiopsy.model_validate({"images": ["a.tif"], "colour": "brown"})
    with pytest.raises(ValidationError):
        EndometrialBiopsy.model_validate({"images": []})
    with pytest.raises(ValidationError):
        EndometrialBiopsy.model_validate(
            {"images": ["a.tif", "b.tif", "c.tif"], "regions": ["a.json", "b.json"]}
        )
    with pytest.raises(ValidationError):
        b.model_copy(update={"id": "x"}).__setattr__("id", "y")


def test_run_biopsy_for_case(synthetic: Path, tmp_path: Path) -> None:
    b = EndometrialBiopsy.model_validate(
        {
            "id": "biopsy-1",
            "lh_day": 8,
            "images": ["synthetic_field_01.tif", "missing.tif"],
            "collected": "2026-11-20",
        }
    )
    out = run_biopsy_for_case(b, synthetic, tmp_path / "uterine" / "biopsy-1")
    json.dumps(out)  # JSON-ready
    assert out["synthetic"] is True
    assert out["timing"]["in_mid_luteal_window"] is True
    assert out["uterine"]["sample"] == "biopsy-1"
    assert out["uterine"]["exclusion_of_glands_and_epithelium"] == "automatic"
    assert [Path(f["source"]).name for f in out["failures"]] == ["missing.tif"]
    assert "file not found" in out["failures"][0]["reason"]
    assert (tmp_path / "uterine" / "biopsy-1" / "biopsy_summary.json").is_file()


def test_a_biopsy_counts_each_image_once_and_reads_folders(synthetic: Path, tmp_path: Path) -> None:
    """A manifest listing one field four times (twice by the same path, once as ./, once as a
    byte-for-byte copy) pooled it four times: a CI across fields of zero width, reportable.
    Each image is now analysed once, with a note each; and a folder entry means its images
    (it was refused as "not an image")."""
    import shutil

    shutil.copy(synthetic / "synthetic_field_01.tif", tmp_path / "field copy.tif")
    shutil.copy(synthetic / "synthetic_field_01.tif", tmp_path / "f1.tif")
    b = EndometrialBiopsy.model_validate(
        {"id": "b1", "images": ["f1.tif", "f1.tif", "./f1.tif", "field copy.tif"]}
    )
    out = run_biopsy_for_case(b, tmp_path, tmp_path / "out-dup")
    assert [r["sample"] for r in out["images"]] == ["f1"]
    assert out["uterine"]["cd56_positive_cells"] == out["images"][0]["cd56_positive_cells"]
    assert len(out["notes"]) == 3 and "a copy" in out["notes"][-1]
    folder = EndometrialBiopsy.model_validate({"id": "b2", "images": [str(synthetic)]})
    out = run_biopsy_for_case(folder, tmp_path, tmp_path / "out-folder")
    assert sorted(r["sample"] for r in out["images"]) == [
        "synthetic_field_01",
        "synthetic_field_02",
    ]
    assert not out["failures"] and "its 2 image(s) read" in out["notes"][0]


def test_a_biopsy_gives_its_glass_colour(synthetic: Path, tmp_path: Path) -> None:
    b = EndometrialBiopsy.model_validate(
        {"id": "b", "images": ["synthetic_field_01.tif"], "white_point": [242, 240, 236]}
    )
    out = run_biopsy_for_case(b, synthetic, tmp_path / "b")
    image = json.loads(
        (tmp_path / "b" / "images" / "synthetic_field_01" / "summary.json").read_text()
    )
    assert image["stain_vectors"]["white"] == [242.0, 240.0, 236.0]
    assert not out["failures"]


def test_overlays_of_synthetic_fields_say_so(synthetic: Path, tmp_path: Path) -> None:
    """A review overlay can travel alone (into a report, a slide deck): one of a synthetic
    field carries the SYNTHETIC label in its pixels."""
    from PIL import Image

    res = runner.invoke(
        app,
        ["analyze", str(synthetic / "synthetic_field_01.tif"), "--out", str(tmp_path / "o")],
    )
    assert res.exit_code == 0, res.output
    path = tmp_path / "o" / "images" / "synthetic_field_01" / "overlay.png"
    overlay = np.asarray(Image.open(path).convert("RGB")).astype(int)
    corner = overlay[:24, :320]  # the label, red text (anti-aliased) on white, top left
    text = (corner[..., 0] > 120) & (corner[..., 0] - corner[..., 1] > 60)
    assert text.sum() > 50 and (corner == 255).all(axis=-1).sum() > 1000


def test_earlier_image_folders_are_warned_about(synthetic: Path, tmp_path: Path) -> None:
    one, two = synthetic / "synthetic_field_01.tif", synthetic / "synthetic_field_02.tif"
    out = tmp_path / "o"
    args = ["--out", str(out), "--no-detections", "--no-overlays"]
    assert runner.invoke(app, ["analyze", str(one), str(two), *args]).exit_code == 0
    res = runner.invoke(app, ["analyze", str(one), *args])
    assert res.exit_code == 0, res.output
    kept = out / "images" / "synthetic_field_02"
    assert (kept / "summary.json").is_file()
    flat = " ".join(res.output.split())  # the console may fold long lines
    assert f"warning: {kept}: from an earlier run into {out}" in flat


@pytest.mark.parametrize("bad", [[0, 240, 236], [242, 240], [242, 240, 300]])
def test_a_bad_glass_colour_is_refused_with_the_manifest(bad: list[float]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="white_point"):
        EndometrialBiopsy.model_validate({"images": ["a.tif"], "white_point": bad})


def test_detection_outlines_keep_their_corners_and_lose_nothing() -> None:
    """The GeoJSON outline keeps only the vertices where the boundary changes direction; it is
    the same outline: every boundary pixel centre lies on it and it encloses the same points.
    Truth from hand-drawn labels: a rectangle has four corners; a disc and an L shape."""
    from matplotlib.path import Path as Outline

    from nkpanel.uterine.output import _corners, _outlines

    labels = np.zeros((40, 60), np.int32)
    labels[5:15, 5:25] = 1  # a 10 × 20 rectangle
    yy, xx = np.ogrid[:40, :60]
    labels[(yy - 25) ** 2 + (xx - 45) ** 2 <= 64] = 2  # a disc of radius 8
    labels[22:36, 4:8] = 3  # an L
    labels[32:36, 4:22] = 3
    rings = _outlines(labels, np.ones(4, dtype=bool))
    assert set(rings) == {1, 2, 3}
    assert sorted(map(tuple, _corners(rings[1]))) == [(5, 5), (5, 24), (14, 5), (14, 24)]
    # sample points off every line through two pixel centres of this small grid
    gy, gx = np.mgrid[0:40, 0:60]
    probe = np.c_[gy.ravel() + 0.2113, gx.ravel() + 0.3719]
    for lab, pts in rings.items():
        kept = _corners(pts)
        assert len(kept) < len(pts)
        assert {tuple(p) for p in kept} <= {tuple(p) for p in pts}
        seg_a, seg_b = kept, np.roll(kept, -1, axis=0)
        for p in pts:  # every boundary pixel centre lies on a segment of the kept outline
            ab, ap = seg_b - seg_a, p - seg_a
            on = (
                (ab[:, 0] * ap[:, 1] - ab[:, 1] * ap[:, 0] == 0)
                & ((ap * ab).sum(axis=1) >= 0)
                & ((ap * ab).sum(axis=1) <= (ab * ab).sum(axis=1))
            )
            assert on.any(), (lab, p)
        inside_full = Outline(np.vstack([pts, pts[:1]])).contains_points(probe)
        inside_kept = Outline(np.vstack([kept, kept[:1]])).contains_points(probe)
        assert inside_full.any() and (inside_full == inside_kept).all(), lab


def test_of_an_image_and_its_copy_the_one_with_regions_is_kept(
    synthetic: Path, tmp_path: Path
) -> None:
    """A byte copy whose name sorts before the original's ("… copy.tif" before ".tif") was
    kept and the original dropped, with the regions drawn for it: glands were then excluded
    automatically and "no regions file" warned. The listing with regions is kept."""
    import shutil

    from nkpanel.uterine.batch import NoRegionsFile, gather_images

    folder = tmp_path / "img"
    folder.mkdir()
    shutil.copy(synthetic / "synthetic_field_01.tif", folder / "field.tif")
    shutil.copy(synthetic / "synthetic_field_01.tif", folder / "field copy.tif")
    regions = tmp_path / "regs"
    regions.mkdir()
    (regions / "field.tif.geojson").write_text("{}")
    images, paired, notes = gather_images([folder], [regions])
    assert [p.name for p in images] == ["field.tif"]
    assert paired == [regions / "field.tif.geojson"] and not isinstance(paired[0], NoRegionsFile)
    assert any("a copy" in n for n in notes)
