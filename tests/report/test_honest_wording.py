"""What the pages say a result means: a clinic cutoff is not a normal range, "healthy adults"
only for a healthy reference population, the serial view names what its uncertainty leaves
out, the patient page carries the plain evidence on IVIG, and an automated uNK count carries its
method note. Truth: the domain brief and the sources named in each test."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from nkpanel.report import build_reports
from tests.interpret.summaries import biopsy, flow_entry, summary
from tests.report.conftest import Reported
from tests.report.test_render import _Text

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "nkpanel" / "report" / "templates"


def _report(tmp_path: Path, case: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], str, str]:
    paths = build_reports(case, tmp_path, pdf=False, **kw)
    doc = json.loads(paths.json.read_text("utf-8"))
    patient = _Text.of(paths.patient_html.read_text("utf-8"))
    clinician = _Text.of(paths.clinician_html.read_text("utf-8"))
    return doc, patient, clinician


def test_patient_page_never_calls_a_cutoff_a_healthy_range(tmp_path: Path) -> None:
    lab = tmp_path / "lab.toml"
    lab.write_text('[defaults]\n"pnk-pct-lymph" = "hum-reprod-2010-cutoff-18"\n', "utf-8")
    case = summary(flow=[flow_entry(nk_pct=21.0, n_lymph=10**9)])
    doc, patient, _ = _report(tmp_path / "cutoff", case, intervals_path=lab)
    nk = next(r for r in doc["results"] if r["code"] == "pnk-pct-lymph")
    assert nk["patient_interval_kind"] == "cutoff" and nk["flag"] == "above"
    # domain brief §1: "Cutoffs differ between clinics; none is validated as a treatment
    # threshold"
    assert "above a cutoff (18.0 %) that some clinics use" in patient
    assert "none has been shown to guide treatment" in patient
    # the other flow results are still read against ARUP's laboratory reference intervals
    assert "healthy adults" in patient
    assert not re.search(r"cutoff[^.]*healthy adults", patient)
    # ARUP's interval, bundled with nkpanel, is not called the issuing laboratory's own
    assert "laboratory's reference range" not in patient
    assert "inside the reference range used for this test" in patient


def test_healthy_adults_not_said_without_a_healthy_reference(tmp_path: Path) -> None:
    # uNK only: Lash 2016's range at LH+7 is not stated to come from healthy adults
    case = summary(flow=[], endometrial=[biopsy(pct=3.0, lh_day=8)])
    doc, patient, _ = _report(tmp_path / "unk", case)
    assert "healthy" not in patient
    assert doc["patient_interval_notes"] == [
        "Where a result is compared with a range from published studies, being outside it is "
        "not a diagnosis."
    ]


def test_serial_view_names_what_it_leaves_out_on_both_pages(reported: Reported) -> None:
    patient = _Text.of(reported.paths.patient_html.read_text("utf-8"))
    clinician = _Text.of(reported.paths.clinician_html.read_text("utf-8"))
    # domain brief: NK counts change within minutes with stress (Schedlowski 1993); Tang 2013's
    # feasibility RCT was not significant
    assert "Within-person and pre-analytic variation are not included" in clinician
    assert "not evidence of benefit" in clinician and "Tang 2013" in clinician
    assert "within-person and pre-analytic variation not included" in clinician  # per change
    assert "test's own measurement error" in patient and "not allowed for" in patient
    assert "does not show that the medicine improves" in patient


def test_patient_page_carries_the_plain_ivig_evidence(tmp_path: Path) -> None:
    from tests.interpret.summaries import plate

    _, patient, _ = _report(tmp_path, summary(cytotoxicity=[plate(ivig=41.0)]))
    # IVIG meta-analysis (PLoS One 2015): RR of no live birth 0.92 (0.75–1.12)
    assert "relative risk of no live birth was 0.92, with a range of 0.75 to 1.12" in patient
    # Roussev 2007: suppression in the test tube is not evidence that the treatment helps
    assert "does not show that IVIG or intralipid as a treatment helps" in patient


def test_automated_unk_count_has_its_method_note_on_both_pages(tmp_path: Path) -> None:
    entry = biopsy(pct=3.0, lh_day=8)
    entry["method"] = "CD56 immunohistochemistry, automated count"
    _, patient, clinician = _report(tmp_path, summary(endometrial=[entry]))
    assert "not yet validated against a person counting CD56-stained endometrium" in clinician
    assert (
        "F1 0.58 (goal 0.80)" in clinician and "tests/uterine/test_real_dab_field.py" in clinician
    )
    assert "has not yet been checked against counts made by a trained person" in patient
    # the numbers live in the data file with their source, not in a template
    for template in TEMPLATES.glob("*.j2"):
        text = template.read_text("utf-8")
        assert "0.58" not in text and "31.6" not in text and "47.8" not in text, template.name


def test_plate_qc_reaches_the_qc_table(tmp_path: Path) -> None:
    from tests.interpret.summaries import native_plate

    paths = build_reports(
        summary(cytotoxicity=[native_plate(lu_extrapolated=True)]), tmp_path, pdf=False
    )
    html = paths.clinician_html.read_text("utf-8")
    qc = _Text.of(html[html.index('id="qc"') : html.index('id="trends"')])
    assert "SYNTH-P01, no additive (spontaneous release 12.0% of maximum)" in qc
    assert "spontaneous release is 12.0% of maximum (limit 30%)" in qc
    # checks by name in words, not as identifiers (audit 19: "maximum_above_spontaneou s")
    assert "replicate cv at 50:1" in qc and "lytic units extrapolated" in qc
    assert "replicate_cv" not in qc
    results = _Text.of(html[html.index('id="results"') : html.index('id="comments"')])
    # the extrapolated lytic units carry their warning beside the value
    assert "outside the tested 12.5:1–50:1" in results and "fitted curve" in results
    # a value without an interval has no bar: "no interval", not "no value" (audit 19)
    assert "no interval" in results
    doc = json.loads(paths.json.read_text("utf-8"))
    lu = next(r for r in doc["results"] if r["code"] == "nka-lu")
    assert lu["qc_status"] == "warn" and lu["qc_notes"]
    plate_qc = [q for q in doc["qc"] if q["biomarker"] == "cytotoxicity"]
    assert len(plate_qc) == 2 and all(q["checks"] for q in plate_qc)
