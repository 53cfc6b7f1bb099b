"""Every place that shows an across-field confidence interval shows it beside its own estimate
(the across-field ratio), with the whole stroma's value as a separate, labelled figure: the
console table, the batch CSV, the JSON summary, and the case report (whose interpretation reads
the ten-field estimate, the standardised protocol's number the reference range comes from).

Truth from construction: a SYNTHETIC slide built by hand whose ten random ×400 fields hold
80 CD56+ of 2000 stromal cells (4.0 per 100, 40 per mm² of 2.0 mm²) and whose whole stroma
holds 330 of 6000 (5.5 per 100, 33 per mm² of 10 mm²), so the two estimates differ and the
fields' 95% CI (worked out below by Cochran's formula) excludes the whole stroma's value.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from nkpanel.errors import InputError
from nkpanel.uterine.results import FieldCount, RatioCI, UterineResult, ratio_ci

#: CD56+ cells in each of ten fields of 200 stromal cells and 0.2 mm² of stroma
FIELD_POSITIVES = (6, 7, 8, 9, 10, 7, 8, 9, 7, 9)
FIELD_CELLS, FIELD_MM2 = 200, 0.2
WHOLE = FieldCount("whole stroma", "whole-stroma", 330, 6000, 10.0)  # 5.5 /100, 33 /mm²

# the fields' ratio and its CI by hand (Cochran 1977 §6.4): R = Σy/Σx = 80/2000; the residuals
# y − R·x = y − 8 are −2 −1 0 1 2 −1 0 1 −1 1, Σ = 14; SE(R) = √(14 / (10·9)) / 200; the t
# quantile with 9 degrees of freedom is 2.2622 (any t table)
T_975_9 = 2.262157
FIELDS_100 = 4.0
HALF_100 = 100 * T_975_9 * math.sqrt(14 / 90) / 200  # 0.446
FIELDS_MM2 = 40.0
HALF_MM2 = T_975_9 * math.sqrt(14 / 90) / 0.2  # same residuals per mm² (x̄ = 0.2 mm²): 4.46
WHOLE_100, WHOLE_MM2 = 5.5, 33.0


def _fields() -> tuple[FieldCount, ...]:
    return tuple(
        FieldCount(f"field_{i + 1:02d}", "lash-field", y, FIELD_CELLS, FIELD_MM2)
        for i, y in enumerate(FIELD_POSITIVES)
    )


def _result(
    sample: str,
    kind: Any,
    overall: FieldCount,
    fields: tuple[FieldCount, ...],
) -> UterineResult:
    ys = [f.cd56_positive_cells for f in fields]
    return UterineResult(
        sample=sample,
        sources=(f"/synthetic/{sample}.svs",),
        kind=kind,
        synthetic=True,
        pixel_size_um=0.25,
        pixel_size_source="test",
        analysis_pixel_size_um=0.5,
        stains={"source": "ruifrok"},
        stain_estimate_check=None,
        exclusion_source="regions",
        tissue_area_mm2=12.0,
        excluded_area_mm2=2.0,
        overall=overall,
        fields=fields,
        per_100_ci=ratio_ci(ys, [f.stromal_cells for f in fields], scale=100.0),
        per_mm2_ci=ratio_ci(ys, [f.stromal_area_mm2 for f in fields]),
    )


@pytest.fixture
def slide() -> UterineResult:
    return _result("slide-1", "slide", WHOLE, _fields())


@pytest.fixture
def field_images() -> UterineResult:
    """A biopsy of two field images: each image is one field, so the estimates coincide."""
    a = FieldCount("a", "image", 9, 200, 0.2)
    b = FieldCount("b", "image", 7, 200, 0.2)
    return _result("biopsy", "biopsy", FieldCount("biopsy", "whole-stroma", 16, 400, 0.4), (a, b))


def test_the_construction_is_what_the_docstring_says(slide: UterineResult) -> None:
    c100, cmm = slide.per_100_ci, slide.per_mm2_ci
    assert c100.estimate == pytest.approx(FIELDS_100)
    assert (c100.lower, c100.upper) == pytest.approx((4.0 - HALF_100, 4.0 + HALF_100), abs=1e-4)
    assert cmm.estimate == pytest.approx(FIELDS_MM2)
    assert (cmm.lower, cmm.upper) == pytest.approx((40 - HALF_MM2, 40 + HALF_MM2), abs=1e-3)
    assert slide.overall.cd56_per_100_stromal_cells == pytest.approx(WHOLE_100)
    assert slide.overall.cd56_per_mm2_stroma == pytest.approx(WHOLE_MM2)
    assert not (c100.lower or 0) <= WHOLE_100 <= (c100.upper or 0)  # the defect's condition


def test_summary_names_both_estimates(slide: UterineResult) -> None:
    s = slide.summary()
    fields = s["across_fields_cd56_per_100_stromal_cells"]
    assert fields["estimate"] == pytest.approx(FIELDS_100)
    assert fields["lower"] <= fields["estimate"] <= fields["upper"]
    assert fields["fields"] == "10 random ×400 fields (Lash 2016)"
    assert s["across_fields_cd56_per_mm2_stroma"]["estimate"] == pytest.approx(FIELDS_MM2)
    assert s["whole_stroma_cd56_per_100_stromal_cells"] == pytest.approx(WHOLE_100)
    assert s["whole_stroma_cd56_per_mm2_stroma"] == pytest.approx(WHOLE_MM2)
    # the old keys stay, and are the whole stroma's
    assert s["cd56_per_100_stromal_cells"] == s["whole_stroma_cd56_per_100_stromal_cells"]
    assert s["cd56_per_mm2_stroma"] == s["whole_stroma_cd56_per_mm2_stroma"]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.replace("┃", "│").strip().strip("│").split("│")]


def test_console_table_pairs_each_ci_with_its_estimate(
    slide: UterineResult, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nkpanel._cli import out_console
    from nkpanel.uterine.batch import UterineBatch, pool_results
    from nkpanel.uterine.cli import _print_results

    batch = UterineBatch(results=[slide], pooled=pool_results([slide], "biopsy-1"))
    monkeypatch.setattr(out_console, "width", 220)  # no cell folds
    with out_console.capture() as cap:
        _print_results(batch, tmp_path)
    lines = cap.get().splitlines()
    header = next(_cells(x) for x in lines if "whole stroma" in x and x.startswith("┃"))
    assert header[3:5] == ["across fields (95% CI): /100; /mm²", "whole stroma: /100; /mm²"]
    starts = [i for i, x in enumerate(lines) if "slide-1" in x or "biopsy-1" in x]
    assert len(starts) == 2
    lo, hi = 4.0 - HALF_100, 4.0 + HALF_100
    lo_mm2, hi_mm2 = 40 - HALF_MM2, 40 + HALF_MM2
    for i in starts:  # each row: per 100 stromal cells on its first line, per mm² on its second
        first = dict(zip(header, _cells(lines[i]), strict=True))
        second = dict(zip(header, _cells(lines[i + 1]), strict=True))
        assert first["across fields (95% CI): /100; /mm²"] == f"4.00 ({lo:.2f}–{hi:.2f})"
        assert second["across fields (95% CI): /100; /mm²"] == f"40 ({lo_mm2:.0f}–{hi_mm2:.0f})"
        assert first["whole stroma: /100; /mm²"] == "5.50"
        assert second["whole stroma: /100; /mm²"] == "33"
        assert first["fields"] == "10 ×400"
        assert first["CD56+ / stromal"] == "330 / 6000"  # whole-stroma counts
    text = " ".join(cap.get().split())
    assert "5.50 (" not in text and "33 (" not in text  # whole stroma never beside a CI
    assert "Lash 2016" in text and "Whole stroma: all stroma analysed, no CI" in text


def test_batch_csv_pairs_each_ci_with_its_estimate(
    slide: UterineResult, field_images: UterineResult, tmp_path: Path
) -> None:
    from nkpanel.uterine.output import write_batch_table

    target = write_batch_table([slide, field_images], tmp_path / "uterine_results.csv")
    with target.open(newline="", encoding="utf-8") as fh:
        rows = {r["sample"]: r for r in csv.DictReader(fh)}
    s = rows["slide-1"]
    assert float(s["across_fields_cd56_per_100_stromal_cells"]) == pytest.approx(FIELDS_100)
    assert float(s["across_fields_ci_low_per_100"]) == pytest.approx(4 - HALF_100, abs=1e-3)
    assert float(s["across_fields_ci_high_per_100"]) == pytest.approx(4 + HALF_100, abs=1e-3)
    assert float(s["across_fields_cd56_per_mm2_stroma"]) == pytest.approx(FIELDS_MM2)
    assert float(s["across_fields_ci_low_per_mm2"]) == pytest.approx(40 - HALF_MM2, abs=1e-3)
    assert float(s["whole_stroma_cd56_per_100_stromal_cells"]) == pytest.approx(WHOLE_100)
    assert float(s["whole_stroma_cd56_per_mm2_stroma"]) == pytest.approx(WHOLE_MM2)
    assert s["fields"] == "10 random ×400 fields (Lash 2016)" and s["n_fields"] == "10"
    assert "cd56_per_100_stromal_cells" not in s  # no unnamed ratio beside an interval
    for r in rows.values():  # every interval holds the estimate in its own row
        for unit in ("per_100", "per_mm2"):
            key = "cd56_per_100_stromal_cells" if unit == "per_100" else "cd56_per_mm2_stroma"
            est = float(r[f"across_fields_{key}"])
            assert float(r[f"across_fields_ci_low_{unit}"]) <= est
            assert est <= float(r[f"across_fields_ci_high_{unit}"])
    # field images: each image one field, the two estimates one number (16 / 400 = 4 per 100)
    f = rows["biopsy"]
    assert float(f["across_fields_cd56_per_100_stromal_cells"]) == pytest.approx(4.0)
    assert float(f["whole_stroma_cd56_per_100_stromal_cells"]) == pytest.approx(4.0)
    assert f["fields"] == "2 field images (each image one field)"


def _case(uterine: UterineResult | None, **extra: Any) -> dict[str, Any]:
    """A case summary holding a biopsy as :func:`run_biopsy_for_case` returns it."""
    from tests.interpret.summaries import summary

    entry = {
        "id": "biopsy-1",
        "collected": "2026-10-20",
        "timing": {"lh_day": 8},
        "synthetic": True,
        "uterine": json.loads(json.dumps(uterine.summary())) if uterine else None,
        "images": [],
        "failures": [],
        "figures": [],
        **extra,
    }
    return summary(flow=[], endometrial=[entry])


def test_interpretation_reads_the_ten_field_estimate(slide: UterineResult) -> None:
    from nkpanel.interpret import interpret_case

    reading = interpret_case(_case(slide))
    by = {r.measurand.code: r for r in reading.results}
    pct, mm2 = by["unk-pct-stroma"], by["unk-per-mm2"]
    assert pct.measurement.value == pytest.approx(FIELDS_100)
    assert pct.measurement.estimate == "10 random ×400 fields (Lash 2016)"
    assert pct.measurement.ci is not None
    lo, hi, level = pct.measurement.ci
    assert (lo, hi) == pytest.approx((4 - HALF_100, 4 + HALF_100), abs=1e-3) and level == 0.95
    ((label, whole),) = pct.measurement.also
    assert label == "whole stroma" and whole == pytest.approx(WHOLE_100)
    assert mm2.measurement.value == pytest.approx(FIELDS_MM2)
    ((label, whole),) = mm2.measurement.also
    assert label == "whole stroma" and whole == pytest.approx(WHOLE_MM2)
    # Lash 2016's 1.2–4.5% at LH+7 read against the fields' 4.0, not the whole stroma's 5.5
    assert pct.interval is not None and pct.interval.upper == 4.5
    assert pct.flag == "within"
    assert "estimate: 10 random ×400 fields (Lash 2016)" in pct.measurement.method


def test_field_images_change_nothing_numerically(field_images: UterineResult) -> None:
    from nkpanel.interpret import interpret_case

    by = {r.measurand.code: r for r in interpret_case(_case(field_images)).results}
    m = by["unk-pct-stroma"].measurement
    assert m.value == pytest.approx(100 * 16 / 400)  # the whole stroma's and the fields' value
    assert m.also == ()  # no second figure: the fields are the stroma
    assert m.estimate == "2 field images (each image one field)"


def test_a_slide_without_fields_reads_the_whole_stroma_and_says_so() -> None:
    from nkpanel.interpret import interpret_case

    bare = _result("slide-1", "slide", WHOLE, ())
    assert bare.per_100_ci == RatioCI(None, None, None, 0)
    by = {r.measurand.code: r for r in interpret_case(_case(bare)).results}
    m = by["unk-pct-stroma"].measurement
    assert m.value == pytest.approx(WHOLE_100)
    assert m.estimate == "whole stroma" and m.ci is None and m.also == ()


def test_an_interval_beside_another_estimate_is_refused() -> None:
    """The documented shape: a CI that does not hold the value beside it is the defect this
    file guards against, refused with the field named."""
    from nkpanel.interpret.measurements import read_episode
    from tests.interpret.summaries import biopsy, summary

    entry = biopsy(pct=5.5) | {"unk_percent_ci": {"lower": 3.55, "upper": 4.45}}
    with pytest.raises(InputError, match=r"unk_percent_ci.*does not hold the value 5\.5"):
        read_episode(summary(flow=[], endometrial=[entry]))
    ok = biopsy(pct=4.0) | {
        "estimate": "10 random ×400 fields (Lash 2016)",
        "unk_percent_ci": {"lower": 3.55, "upper": 4.45, "level": 0.95},
        "whole_stroma": {"unk_percent_of_stromal_cells": 5.5},
    }
    (m, _) = read_episode(summary(flow=[], endometrial=[ok])).measurements
    assert (m.value, m.ci, m.also) == (4.0, (3.55, 4.45, 0.95), (("whole stroma", 5.5),))


def test_report_shows_the_estimate_its_ci_and_the_whole_stroma(
    slide: UterineResult, tmp_path: Path
) -> None:
    from nkpanel.report import build_reports
    from tests.report.test_render import _Text

    paths = build_reports(_case(slide), tmp_path, pdf=False)
    doc = json.loads(paths.json.read_text("utf-8"))
    res = next(r for r in doc["results"] if r["code"] == "unk-pct-stroma")
    assert res["value"] == 4.0 and res["display_value"] == "4.0"
    # one decimal, as the measurand reports: 3.554 → 3.6, 4.446 → 4.4
    assert res["ci"]["text"] == "95% CI 3.6–4.4"
    assert res["estimate"] == "10 random ×400 fields (Lash 2016)"
    assert res["also"] == [{"label": "whole stroma", "value": 5.5, "text": "whole stroma: 5.5 %"}]
    assert res["flag"] == "within"
    clinician = _Text.of(paths.clinician_html.read_text("utf-8"))
    assert "4.0 % (95% CI 3.6–4.4)" in clinician
    assert "estimate: 10 random ×400 fields (Lash 2016)" in clinician
    assert "whole stroma: 5.5 % (shown beside it; not read against the interval)" in clinician
    assert "5.5 % (95% CI" not in clinician
    patient = _Text.of(paths.patient_html.read_text("utf-8"))
    assert "4.0 %" in patient and "5.5" not in patient  # the protocol's number only
    bundle = json.loads(paths.fhir.read_text("utf-8"))
    (obs,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["text"].startswith("Uterine NK cells (CD56+), %")
    ]
    assert obs["valueQuantity"]["value"] == 4.0
    assert obs["note"][0]["text"] == (
        "estimate: 10 random ×400 fields (Lash 2016); 95% CI 3.6–4.4; "
        "whole stroma: 5.5 % (not read against the interval)"
    )


def test_case_console_table_pairs_each_interval_with_its_own_estimate(
    slide: UterineResult, capsys: pytest.CaptureFixture[str]
) -> None:
    """`nkpanel run`'s endometrial table (it printed the whole stroma's 5.5 beside the fields'
    interval 3.6–4.4)."""
    from nkpanel.cli import _print_endometrial

    _print_endometrial([{"id": "B1", "timing": {"lh_day": 7}, "uterine": slide.summary()}])
    out = " ".join(capsys.readouterr().out.split())
    low, high = FIELDS_100 - HALF_100, FIELDS_100 + HALF_100
    assert f"4.0 ({low:.1f}–{high:.1f})" in out
    assert "5.5; 33" in out  # the whole stroma, in its own column
    assert f"40 ({FIELDS_MM2 - HALF_MM2:.0f}–{FIELDS_MM2 + HALF_MM2:.0f})" in out
    assert "5.5 (" not in out
