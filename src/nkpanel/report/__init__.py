"""Reports: the clinician report (ISO 15189 report elements), the plain-language patient page,
their figures, and the formats HTML (Jinja2), PDF (WeasyPrint), JSON and FHIR R4.

Every format is rendered from one report document (:func:`report_document`), so they say the
same thing; synthetic data are labelled synthetic on every page and in every FHIR resource.

Example::

    >>> from nkpanel.report import build_reports
    >>> paths = build_reports(summary, Path("out/report"))   # doctest: +SKIP
    >>> paths.clinician_pdf                                   # doctest: +SKIP
    PosixPath('out/report/report.pdf')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nkpanel._lazy import lazy_exports

if TYPE_CHECKING:
    from nkpanel.report.build import build_reports, render_reading
    from nkpanel.report.document import report_document
    from nkpanel.report.fhir import fhir_bundle, validate_bundle
    from nkpanel.report.model import Amendment, LabInfo, ReportPaths, load_lab_info

#: where each public name lives; imported on first use, so that the command line and the
#: case manifest do not load Jinja2, WeasyPrint and pydantic models before they are needed
_HOME = {
    "build_reports": "build",
    "render_reading": "build",
    "report_document": "document",
    "fhir_bundle": "fhir",
    "validate_bundle": "fhir",
    "Amendment": "model",
    "LabInfo": "model",
    "ReportPaths": "model",
    "load_lab_info": "model",
}

__all__ = [
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

__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
