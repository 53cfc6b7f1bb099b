"""What ``nkpanel uterine analyze`` prints after its table: each warning (a failed
non-blocking check, a note that may have moved the count) and each note once, per image and
for the biopsy, naming whose it is. SYNTHETIC results and fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nkpanel.flow.qc import QCFlag
from nkpanel.uterine.batch import pool_results
from nkpanel.uterine.cli import Checked, app, console_lines
from nkpanel.uterine.results import (
    FieldCount,
    UterineResult,
    fields_qc,
    ratio_ci,
    stromal_cells_qc,
)

runner = CliRunner()

PIXEL = (
    "pixel size given as 0.3 µm; the file's slide metadata says 0.25 µm (the given value is "
    "used: areas ×1.44, CD56+ per mm² ×0.69)"
)
INK = (
    "0.718 mm² of colour that neither haematoxylin nor DAB explains (pen or marker ink; also "
    "eosin or pigment) was left out of the tissue: check it on the overlay"
)
FIELDS_NOTE = "only 3 of 10 ×400 fields with at least 75% stroma fit on this slide"
AUTO = (
    "glands and luminal epithelium were excluded automatically (no regions given): check the "
    "excluded area on the overlay"
)


def slide(name: str, notes: tuple[str, ...]) -> UterineResult:
    """A slide of three random ×400 fields (of ten asked) and a pixel size the file
    contradicts, as analyze_image records them: failed checks and notes by construction."""
    fields = tuple(FieldCount(f"field-{i}", "lash-field", 8, 100, 0.2) for i in range(3))
    overall = FieldCount("whole stroma", "whole-stroma", 30, 1000, 2.0)
    qc = (
        stromal_cells_qc(1000, 500),
        QCFlag("pixel size agrees with the file", False, 0.3, None, PIXEL, blocking=False),
        fields_qc(3, 10),
    )
    return UterineResult(
        sample=name,
        sources=(f"{name}.svs",),
        kind="slide",
        synthetic=True,
        pixel_size_um=0.3,
        pixel_size_source="given",
        analysis_pixel_size_um=0.5,
        stains={"source": "ruifrok"},
        stain_estimate_check=None,
        exclusion_source="automatic",
        tissue_area_mm2=3.0,
        excluded_area_mm2=0.5,
        overall=overall,
        fields=fields,
        per_100_ci=ratio_ci([8, 8, 8], [100, 100, 100], scale=100),
        per_mm2_ci=ratio_ci([8, 8, 8], [0.2, 0.2, 0.2]),
        qc=qc,
        notes=notes,
    )


def test_each_warning_of_a_slide_and_its_biopsy_is_said_once() -> None:
    image = slide("slide_a", (PIXEL, INK, FIELDS_NOTE, AUTO))
    biopsy = pool_results([image], "biopsy", protocol_fields=10)
    # the biopsy repeats the image's checks and notes with the image's name in front
    assert f"slide_a: {PIXEL}" in [q.reason for q in biopsy.qc]
    lines = console_lines([Checked.of(image)], Checked.of(biopsy))
    assert lines == [
        ("warning:", f"slide_a: {PIXEL}"),  # the check; its note says the same: once
        ("warning:", f"slide_a: {INK}"),
        # the slide's own check, which the biopsy repeats; the fields note says the same
        ("warning:", "slide_a: only 3 random ×400 fields of stroma (protocol: 10)"),
        ("note:", f"slide_a: {AUTO}"),  # informational
    ]


def test_one_text_said_of_several_images_is_one_line() -> None:
    a, b = slide("a", (INK,)), slide("b", (INK,))
    biopsy = pool_results([a, b], "biopsy", protocol_fields=10)
    lines = console_lines([Checked.of(a), Checked.of(b)], Checked.of(biopsy), notes=False)
    assert ("warning:", f"a, b: {INK}") in lines
    assert ("warning:", f"a, b: {PIXEL}") in lines
    assert len(lines) == len(set(lines)) == 3  # pixel size, fields, ink


def test_a_summary_reads_back_as_the_result() -> None:
    image = slide("slide_a", (PIXEL,))
    assert Checked.from_summary(image.summary()) == Checked.of(image)


@pytest.fixture(scope="module")
def fields(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two SYNTHETIC fields at 0.5 µm/pixel: one TIFF, one JPEG with 4:2:0 colour."""
    from PIL import Image

    d = tmp_path_factory.mktemp("fields")
    res = runner.invoke(app, ["simulate", "--out", str(d), "--fields", "2", "--seed", "3"])
    assert res.exit_code == 0, res.output
    jpeg = d / "field_jpeg.jpg"
    with Image.open(d / "synthetic_field_02.tif") as im:
        dpi = 25400 / 0.5
        im.convert("RGB").save(jpeg, quality=95, subsampling=2, dpi=(dpi, dpi))
    return d / "synthetic_field_01.tif", jpeg


def test_analyze_prints_each_warning_once(fields: tuple[Path, Path], tmp_path: Path) -> None:
    tif, jpeg = fields
    out = tmp_path / "out"
    args = [*map(str, fields), "--out", str(out), "--pixel-size", "0.6"]
    res = runner.invoke(app, ["analyze", *args, "--no-overlays", "--no-detections"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()

    def said(flag: str, *words: str) -> list[str]:
        return [x for x in lines if x.startswith(flag) and all(w in x for w in words)]

    # 0.6 given against the files' 0.5: areas off by (0.6/0.5)² = 1.44, once per image (the
    # TIFF's resolution tags and the JPEG's density are named apart)
    pixel = said("warning:", "pixel size given as 0.6 µm", "areas ×1.44")
    assert sorted(x.split(":")[1].strip() for x in pixel) == sorted([tif.stem, jpeg.stem])
    (jpeg_line,) = said("warning:", "subsampling")
    assert jpeg_line.startswith(f"warning: {jpeg.stem}: ")
    # two field images are two of the protocol's ten ×400 fields: the biopsy's warning
    assert said("warning:", "biopsy: only 2 random ×400 fields of stroma (protocol: 10)")
    (auto,) = said("note:", "excluded automatically")
    assert auto.startswith(f"note: {tif.stem}, {jpeg.stem}: ")
    assert len([x for x in lines if x.startswith(("warning:", "note:"))]) == 5


@pytest.mark.parametrize(
    ("note", "warning"),
    [
        # the range a 16-bit field was scaled from, found in its samples: how it was read
        ("16-bit samples hold 0–4095 (12-bit camera): scaled to 8 bits from that range", False),
        # no range found (tiles too large to sample): a 12-bit slide then reads dark
        (
            "16-bit samples: tiles too large to sample for the camera's bit depth; scaled "
            "to 8 bits from 0–65535",
            True,
        ),
    ],
)
def test_a_16_bit_note_is_a_warning_only_when_the_range_was_not_found(
    note: str, warning: bool
) -> None:
    image = slide("s", (note,))
    assert ("warning:" if warning else "note:", f"s: {note}") in console_lines(
        [Checked.of(image)], None
    )
