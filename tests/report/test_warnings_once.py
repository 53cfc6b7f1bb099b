"""A biopsy's warning is listed once beside each result, and the patient page speaks of a blood
test only when the case holds one. SYNTHETIC summaries."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nkpanel.report import build_reports
from nkpanel.uterine.batch import pool_results
from tests.interpret.summaries import plate, summary
from tests.uterine.test_console_warnings import AUTO, FIELDS_NOTE, INK, slide

STRESS = "Stress or exercise just before a blood test can change it."


def endometrial_only() -> dict[str, Any]:
    """A case of one biopsy: a slide where 3 of 10 random ×400 fields fit (its failed check
    and analyze_image's note on it), written as nkpanel run writes it."""
    image = slide("slide_a", (INK, FIELDS_NOTE, AUTO))
    pooled = pool_results([image], "biopsy-1", protocol_fields=10)
    s = summary(flow=[])
    s["blood_draws"] = []
    s["endometrial"] = [
        {
            "id": "biopsy-1",
            "collected": "2026-11-14",
            "timing": {"lh_day": 7},
            "synthetic": True,
            "uterine": pooled.summary(),
            "images": [image.summary()],
            "failures": [],
        }
    ]
    return s


def test_fewer_fields_is_one_quality_note_per_result(tmp_path: Path) -> None:
    paths = build_reports(endometrial_only(), tmp_path, pdf=False)
    html = paths.clinician_html.read_text("utf-8")
    notes = re.findall(r"Quality note: ([^<]*)", html)
    n_results = html.count("data-result=")
    assert n_results == 2  # CD56+ per 100 stromal cells, per mm² of stroma
    fields = [n for n in notes if "×400 field" in n]
    assert fields == ["slide_a: only 3 random ×400 fields of stroma (protocol: 10)."] * n_results
    assert FIELDS_NOTE not in html


def test_the_patient_page_speaks_of_a_blood_test_only_with_a_blood_count(
    tmp_path: Path,
) -> None:
    biopsy_only = build_reports(endometrial_only(), tmp_path / "e", pdf=False)
    page = biopsy_only.patient_html.read_text("utf-8")
    assert "One result can vary." in page and "blood test" not in page
    with_flow = build_reports(summary(), tmp_path / "f", pdf=False)  # one flow tube
    assert STRESS in with_flow.patient_html.read_text("utf-8")
    # NK activity is measured on the blood's own cells: the same caveat as the interpretation
    with_plate = build_reports(summary(flow=[], cytotoxicity=[plate()]), tmp_path / "c", pdf=False)
    assert STRESS in with_plate.patient_html.read_text("utf-8")
