"""From a case summary to every report file: clinician HTML and PDF, patient page HTML and PDF,
report JSON, FHIR R4 bundle, and the figures as SVG files.

The wording rules (:mod:`nkpanel.interpret.wording`) are enforced where text is written, not on
the finished page: nkpanel's own sentences by the tests, interval, evidence and method-note files
when they load (a :class:`~nkpanel.errors.ConfigError` naming the file and entry). The page also
quotes a case's free text (a medication note, a QC reason) as recorded data, which is not
nkpanel's statement and is never checked or rewritten."""

from __future__ import annotations

import datetime as dt
import json
import warnings
import zoneinfo
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nkpanel._atomic import write_text
from nkpanel.errors import ConfigError, NkPanelWarning
from nkpanel.interpret.evidence import EvidenceStatement
from nkpanel.interpret.flags import InterpretSettings
from nkpanel.interpret.intervals import ReferenceInterval
from nkpanel.interpret.panel import CaseInterpretation, interpret_case
from nkpanel.report.document import report_document
from nkpanel.report.fhir import fhir_bundle, validate_bundle
from nkpanel.report.figures import (
    Figure,
    biomarker_figures,
    figure_path,
    lysis_curve_svg,
    reference_bar_svg,
    svg_data_uri,
    trend_svg,
)
from nkpanel.report.model import Amendment, LabInfo, ReportPaths
from nkpanel.report.render import render_clinician_html, render_patient_html, write_pdf

__all__ = ["build_reports", "render_reading"]

FILES = {
    "clinician_html": "report.html",
    "clinician_pdf": "report.pdf",
    "patient_html": "patient.html",
    "patient_pdf": "patient.pdf",
    "json": "report.json",
    "fhir": "report.fhir.json",
}


def render_reading(
    reading: CaseInterpretation,
    out_dir: Path,
    *,
    lab: LabInfo,
    issued: dt.datetime,
    version: int = 1,
    amendments: Sequence[Amendment] = (),
    results_dir: Path | None = None,
    pdf: bool = True,
) -> ReportPaths:
    """Write every report file of an interpreted case into ``out_dir``."""
    synthetic = reading.episode.synthetic
    fig_dir = out_dir / "figures"
    figure_files: list[Path] = []

    def save(name: str, svg: str) -> str:
        target = fig_dir / name
        write_text(target, svg)
        figure_files.append(target)
        return svg_data_uri(svg)

    bars: list[str | None] = []
    for i, r in enumerate(reading.results):
        svg = reference_bar_svg(r, synthetic=synthetic)
        bars.append(
            save(f"bar_{i:02d}_{r.measurand.code}_{r.measurement.specimen_id}.svg", svg)
            if svg is not None
            else None
        )
    trend_figs = {
        t.measurand.code: save(
            f"trend_{t.measurand.code}.svg",
            trend_svg(t, _applied_today(reading, t.measurand.code), synthetic=synthetic),
        )
        for t in reading.trends
    }
    lysis = []
    for r in reading.results:
        if results_dir is not None and any(
            figure_path(f, results_dir).is_file() for f in r.measurement.figures
        ):
            continue  # the biomarker drew its own curves; they are embedded below
        svg = lysis_curve_svg(r.measurement, synthetic=synthetic)
        if svg is not None:
            name = f"lysis_{r.measurement.specimen_id}.svg"
            lysis.append(Figure(f"{r.measurement.sample}: lysis curve", save(name, svg), name))
    own = biomarker_figures([r.measurement for r in reading.results], results_dir)
    figure_index = {
        "reference_bars": [p.name for p in figure_files if p.name.startswith("bar_")],
        "trends": [p.name for p in figure_files if p.name.startswith("trend_")],
        "lysis_curves": [f.source for f in lysis],
        "biomarker_figures": [{"title": f.title, "source": f.source} for f in own],
    }
    doc = report_document(
        reading,
        lab=lab,
        issued=issued,
        version=version,
        amendments=amendments,
        figures=figure_index,
    )

    paths = {k: out_dir / v for k, v in FILES.items()}
    clinician = render_clinician_html(
        doc, bars=bars, trend_figs=trend_figs, gating_figs=own, lysis_figs=lysis
    )
    patient = render_patient_html(doc, bars=bars)
    write_text(paths["clinician_html"], clinician)
    write_text(paths["patient_html"], patient)
    if pdf and not pdf_engine_available():
        # the HTML is complete; a machine without Pango cannot typeset the PDF
        warnings.warn(
            "PDF not written: WeasyPrint needs Pango (Debian: libpango-1.0-0, "
            "libpangoft2-1.0-0, libharfbuzz-subset0); the HTML reports are complete",
            NkPanelWarning,
            stacklevel=2,
        )
        pdf = False
    if pdf:
        write_pdf(clinician, paths["clinician_pdf"])
        write_pdf(patient, paths["patient_pdf"])
    write_text(paths["json"], json.dumps(doc, indent=2, ensure_ascii=False))
    forms = [("text/html", FILES["clinician_html"])]
    if pdf:
        forms.insert(0, ("application/pdf", FILES["clinician_pdf"]))
    bundle = fhir_bundle(doc, timezone=_zone(lab), presented_forms=forms)
    validate_bundle(bundle)
    write_text(paths["fhir"], json.dumps(bundle, indent=2, ensure_ascii=False))
    return ReportPaths(
        clinician_html=paths["clinician_html"],
        clinician_pdf=paths["clinician_pdf"] if pdf else None,
        patient_html=paths["patient_html"],
        patient_pdf=paths["patient_pdf"] if pdf else None,
        json=paths["json"],
        fhir=paths["fhir"],
        figures=tuple(figure_files),
        preliminary=doc["report"]["status"] == "preliminary",
        lab_unnamed=doc["laboratory"]["name"] == LabInfo.model_fields["name"].default,
    )


def _zone(lab: LabInfo) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(lab.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"lab time zone {lab.timezone!r} is not a known IANA zone") from None


def pdf_engine_available() -> bool:
    """True when WeasyPrint and the system libraries it loads (Pango, HarfBuzz) are there."""
    try:
        import weasyprint  # type: ignore[import-untyped]  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def _applied_today(reading: CaseInterpretation, code: str) -> ReferenceInterval | None:
    """The interval a trend figure bands: the one today's result of ``code`` was compared
    with, and none where it was not compared (a sample too old, an age or a cycle day outside
    the interval's population): the band read "the interval applied today" where the
    results table said "not compared" (audit 19)."""
    for r in reading.results:
        if r.measurand.code == code and r.interval is not None:
            return r.interval
    return None


def build_reports(
    case_summary: Mapping[str, Any],
    out_dir: Path,
    *,
    history: Sequence[Mapping[str, Any]] = (),
    intervals_path: Path | None = None,
    lab: LabInfo | None = None,
    results_dir: Path | None = None,
    evidence: Sequence[EvidenceStatement] | None = None,
    settings: InterpretSettings | None = None,
    issued: dt.datetime | None = None,
    version: int = 1,
    amendments: Sequence[Amendment] = (),
    pdf: bool = True,
) -> ReportPaths:
    """Interpret a case summary and write every report file into ``out_dir``.

    Parameters
    ----------
    case_summary
        The case summary dict ``nkpanel run`` / ``nkpanel demo`` write (``case_summary.json``).
    out_dir
        Folder for the reports; created if needed.
    history
        Earlier episodes' case summaries of the same patient, for the serial view.
    intervals_path
        The lab's reference-interval file, replacing or extending the bundled one.
    lab
        The issuing laboratory, analyst and authoriser (no authoriser: a preliminary report).
    results_dir
        Where the biomarkers wrote their outputs (the folder holding ``case_summary.json``);
        gating plots and overlays found there are embedded. ``None``: no such figures.
    issued
        The report time (default: now, in the lab's time zone).
    version, amendments
        The report version and the earlier versions it replaces.
    pdf
        Also write the PDFs (WeasyPrint).

    Returns
    -------
    ReportPaths
        Every file written.

    Raises
    ------
    InputError
        A malformed case summary (the message names the field).
    ConfigError
        An invalid reference-interval file or lab setting.
    """
    lab = lab or LabInfo()
    if amendments and version <= max(a.version for a in amendments):
        raise ConfigError(
            f"report version {version} must be above every amended version "
            f"({', '.join(str(a.version) for a in amendments)})"
        )
    issued = issued or dt.datetime.now(_zone(lab)).replace(microsecond=0)
    reading = interpret_case(
        case_summary,
        history=history,
        intervals_path=intervals_path,
        evidence=evidence,
        settings=settings,
    )
    return render_reading(
        reading,
        out_dir,
        lab=lab,
        issued=issued,
        version=version,
        amendments=amendments,
        results_dir=results_dir,
        pdf=pdf,
    )
