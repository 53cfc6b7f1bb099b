"""The interpretation and report facades are locked: a change is a deliberate change here."""

from __future__ import annotations

import nkpanel.interpret
import nkpanel.report


def test_interpret_surface() -> None:
    assert sorted(nkpanel.interpret.__all__) == sorted(
        [
            "LOCAL_CODE_SYSTEM",
            "MEASURANDS",
            "TOPICS",
            "CaseInterpretation",
            "Caveat",
            "Episode",
            "EvidenceStatement",
            "Failure",
            "IntervalSet",
            "InterpretSettings",
            "Interpretation",
            "Measurand",
            "Measurement",
            "PreAnalytic",
            "ReferenceInterval",
            "Trend",
            "TrendPoint",
            "Uncertainty",
            "check_wording",
            "interpret_case",
            "interpret_measurement",
            "load_evidence",
            "load_intervals",
            "read_episode",
            "select_evidence",
            "trends",
        ]
    )
    for name in nkpanel.interpret.__all__:
        assert hasattr(nkpanel.interpret, name)


def test_report_surface() -> None:
    assert sorted(nkpanel.report.__all__) == sorted(
        [
            "Amendment",
            "LabInfo",
            "ReportPaths",
            "build_reports",
            "fhir_bundle",
            "load_lab_info",
            "render_reading",
            "report_document",
            "validate_bundle",
        ]
    )
    for name in nkpanel.report.__all__:
        assert hasattr(nkpanel.report, name)
