"""The report's content, once: a JSON-ready dict from which the HTML, the PDF and the FHIR
bundle are all rendered, so every format says the same thing.

The dict carries the report elements of ISO 15189:2022 §7.4.1.6: identification of the
examination and the laboratory, the patient and the requester, specimen type and collection
time, the measurement procedure, results with units, reference intervals and flags, QC status,
interpretive comments, the authoriser, the report's date, version and amendment history.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from nkpanel import __version__
from nkpanel.interpret.evidence import TOPICS
from nkpanel.interpret.flags import SPECIMEN_CAVEATS, Interpretation
from nkpanel.interpret.intervals import ReferenceInterval
from nkpanel.interpret.measurands import LOCAL_CODE_SYSTEM
from nkpanel.interpret.measurements import DayOnly
from nkpanel.interpret.panel import CaseInterpretation
from nkpanel.interpret.preanalytic import PreAnalytic, lh_label
from nkpanel.interpret.serial import episodes_in_order
from nkpanel.report.model import Amendment, LabInfo

__all__ = ["SCHEMA", "ReportStatus", "report_document"]

SCHEMA = "nkpanel-report/1"
ReportStatus = Literal["preliminary", "final", "amended"]


def _iso(t: dt.datetime | None) -> str | None:
    """A time as reports print it; a collection recorded as a day stays a day."""
    if t is None:
        return None
    if isinstance(t, DayOnly):
        return t.date().isoformat()
    return t.isoformat(timespec="minutes")


def _interval(iv: ReferenceInterval | None, decimals: int) -> dict[str, Any] | None:
    if iv is None:
        return None
    return {
        "id": iv.id,
        "kind": iv.kind,
        "lower": iv.lower,
        "upper": iv.upper,
        "unit": iv.unit,
        "text": iv.describe(decimals),
        "source": iv.source,
        "population": iv.population,
        "method": iv.method,
        "cycle_timing": iv.cycle_timing,
        "note": iv.note,
        "healthy_population": iv.healthy_population,
    }


def _patient_interval_kind(iv: ReferenceInterval | None) -> str | None:
    """How the patient page names the interval: ``"healthy_reference"``, ``"range"`` or
    ``"cutoff"`` (``None`` when no interval was applied)."""
    if iv is None:
        return None
    if iv.kind == "clinic_cutoff":
        return "cutoff"
    return "healthy_reference" if iv.healthy_population else "range"


#: What the patient page says about each kind of interval applied to a reported result.
PATIENT_INTERVAL_NOTES = {
    "healthy_reference": "Where a result is compared with a reference range, that range "
    "describes values seen in healthy adults (the laboratory's full report names its source). "
    "Being outside it is not a diagnosis.",
    "range": "Where a result is compared with a range from published studies, being outside "
    "it is not a diagnosis.",
    "cutoff": "Where a result is compared with a cutoff, it is a cutoff some clinics use; "
    "cutoffs differ between clinics, and none has been shown to guide treatment.",
}


def _patient_interval_notes(results: Sequence[Interpretation]) -> list[str]:
    kinds = {
        _patient_interval_kind(r.interval)
        for r in results
        if r.measurement.reportable and r.flag in ("below", "within", "above")
    }
    return [text for kind, text in PATIENT_INTERVAL_NOTES.items() if kind in kinds]


def _pre_analytic_lines(pa: PreAnalytic, *, biopsy: bool = False) -> list[str]:
    """A specimen's pre-analytic facts as the report lists them. The blood draw's own (the
    stress or exercise before it, the anticoagulant) are not a biopsy's: the episode's stress
    record was printed on a biopsy taken 12 days later (audit 19); the biopsy day is a
    biopsy's only."""
    lines = []
    if pa.acute_exposure is not None and not biopsy:
        when = (
            f", {pa.minutes_since_exposure:.0f} min before the draw"
            if pa.minutes_since_exposure is not None
            else ""
        )
        lines.append(f"stress/exercise/adrenaline: {pa.acute_exposure}{when}")
    if pa.current_corticosteroid is not None:
        lines.append(f"current corticosteroid: {'yes' if pa.current_corticosteroid else 'no'}")
    if pa.current_immunotherapy is not None:
        lines.append(f"current immunotherapy: {'yes' if pa.current_immunotherapy else 'no'}")
    if pa.medication_note:
        lines.append(f"medication recorded: “{pa.medication_note}”")
    if pa.anticoagulant and not biopsy:
        lines.append(f"anticoagulant: {pa.anticoagulant}")
    if pa.storage:
        lines.append(f"storage: {pa.storage.replace('_', ' ')}")
    if pa.processed:
        lines.append(f"processed: {_iso(pa.processed)}")
    if pa.lh_day is not None and biopsy:
        lines.append(f"biopsy day: {lh_label(pa.lh_day)}")
    return lines


def _estimates(r: Interpretation) -> dict[str, Any]:
    """Which estimate the result is, its own confidence interval, and the other estimates of
    the same specimen shown beside it (an endometrial slide: its ten random ×400 fields, Lash
    et al. 2016, read against the interval; its whole stroma, labelled, not read)."""
    m, meas = r.measurement, r.measurand
    d = meas.decimals
    ci = None
    if m.ci is not None and m.reportable:
        lower, upper, level = m.ci
        ci = {
            "lower": round(lower, d),
            "upper": round(upper, d),
            "level": level,
            "text": f"{level:.0%} CI {lower:.{d}f}–{upper:.{d}f}",
        }
    also = [
        {
            "label": label,
            "value": round(value, d),
            "text": f"{label}: {value:.{d}f} {meas.unit}",
        }
        for label, value in (m.also if m.reportable else ())
    ]
    return {"estimate": m.estimate, "ci": ci, "also": also}


#: nkpanel.uterine's note on a slide where fewer random ×400 fields fit than asked: its failed
#: "×400 fields" check (:func:`nkpanel.uterine.results.fields_qc`) says the same, so where that
#: check failed the note is left out (one warning, not two)
_FIELDS_NOTE = re.compile(r"only \d+ of \d+ ×400 fields with at least \S+ stroma fit on this slide")
_FIELDS_CHECK = "×400 fields"


def _result(
    r: Interpretation, refs: Sequence[str], *, fields_failed: bool = False
) -> dict[str, Any]:
    m, meas = r.measurement, r.measurand
    unc = r.uncertainty

    def said_twice(text: str) -> bool:
        return fields_failed and _FIELDS_NOTE.search(text) is not None

    return {
        "code": meas.code,
        "label": m.label or meas.label,
        "patient_name": meas.patient_name,
        "patient_what": meas.patient_what,
        "biomarker": meas.biomarker,
        "loinc": meas.loinc,
        "local_code": meas.code,
        "value": r.reported_value,
        "display_value": r.display_value,
        **_estimates(r),
        "unit": meas.unit,
        "ucum": meas.ucum,
        "flag": r.flag,
        "flag_label": r.flag_label,
        "near_limit": r.near_limit,
        "interval": _interval(r.interval, meas.decimals),
        "patient_interval_kind": _patient_interval_kind(r.interval),
        "other_intervals": [_interval(iv, meas.decimals) for iv in r.other_intervals],
        "uncertainty": None
        if unc is None
        else {
            "cv_percent": round(unc.cv_percent, 2),
            "expanded": round(unc.expanded, meas.decimals + 1),
            "coverage_factor": unc.coverage_factor,
            "basis": unc.basis,
        },
        "method": m.method,
        "qc_status": m.qc_status,
        "reportable": m.reportable,
        "not_reportable_reasons": list(m.not_reportable_reasons),
        "qc_notes": [n for n in m.qc_notes if not said_twice(n)],
        "specimen_id": m.specimen_id,
        "sample": m.sample,
        "collected": _iso(m.collected),
        "comment": r.comment,
        "patient_comment": r.patient_comment,
        "caveats": [
            {
                "code": c.code,
                "text": c.text,
                "patient_text": c.patient_text,
                "about_specimen": c.code in SPECIMEN_CAVEATS,
            }
            for c in r.caveats
            if not (c.code == "qc-note" and said_twice(c.text))
        ],
        "evidence_refs": list(refs),
    }


def _serial_table(reading: CaseInterpretation) -> dict[str, Any]:
    """All trends in one table: a column per episode (oldest first), a row per measurand.

    A column is an episode; each cell carries its own specimen's date (and treatment), as a
    biopsy is taken days after the blood of the same episode."""
    columns: dict[str, str] = {}
    for t in reading.trends:
        for p in t.points:
            columns.setdefault(p.episode_id, p.episode_id + (" · this report" if p.current else ""))
    # oldest first, as the trends order their points (an episode may lack the first measurand)
    ordered = [e.episode_id for e in episodes_in_order(reading.episode, reading.history)]
    order = [e for e in ordered if e in columns]
    rows = []
    for t in reading.trends:
        cells: dict[str, list[str]] = {e: [] for e in order}
        d = t.measurand.decimals
        for p in t.points:
            value = f"{p.value:.{d}f}" if p.value is not None else "not reportable"
            when = p.collected.date().isoformat() if p.collected else "date not recorded"
            cells[p.episode_id].append(
                f"{value} ({when}{', on treatment' if p.on_treatment else ''})"
            )
        rows.append(
            {
                "code": t.measurand.code,
                "label": t.measurand.label,
                "unit": t.measurand.unit,
                "cells": [" / ".join(cells[e]) or "—" for e in order],
                "summary": t.summary,
            }
        )
    return {"columns": [columns[e] for e in order], "rows": rows}


#: a biomarker as the patient page names it
_PLAIN_TESTS = {
    "flow": "NK cells in blood",
    "cytotoxicity": "NK-cell activity (killing test)",
    "endometrial": "NK cells in the lining of the womb",
}


def _file_name(source: str) -> str:
    """A failed input as the report names it: its file name, not the folders on the lab's
    machine (audit 19: full local paths were printed, and a path may hold a patient's name);
    a specimen named in words ("cytotoxicity plate p1") as it is."""
    if "/" in source or "\\" in source:
        return Path(source.replace("\\", "/")).name
    return source


def _shown(value: float | None, decimals: int) -> float | None:
    """A value rounded as the report prints it (None stays None)."""
    return None if value is None else round(value, decimals)


def report_status(lab: LabInfo, amendments: Sequence[Amendment]) -> ReportStatus:
    """Preliminary until authorised; amended once an earlier version was replaced."""
    if not lab.authoriser:
        return "preliminary"
    return "amended" if amendments else "final"


def report_document(
    reading: CaseInterpretation,
    *,
    lab: LabInfo,
    issued: dt.datetime,
    version: int = 1,
    amendments: Sequence[Amendment] = (),
    figures: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module docstring)."""
    ep = reading.episode
    refs = {s.id: f"E{i}" for i, s in enumerate(reading.evidence, start=1)}

    def refs_for(code: str) -> list[str]:
        return [refs[s.id] for s in reading.evidence if code in s.measurands]

    specimens = []
    by_specimen = {m.specimen_id: m.pre_analytic for m in ep.measurements}
    for s in ep.specimens:
        sid = str(s["id"])
        pa = by_specimen.get(sid, ep.pre_analytic)
        caveats: dict[str, str] = {}
        for r in reading.results:
            if r.measurement.specimen_id == sid:
                for c in r.caveats:
                    if c.code in SPECIMEN_CAVEATS:
                        caveats.setdefault(c.text, c.code)
        specimens.append(
            {
                "id": s["id"],
                "kind": s["kind"],
                "collected": _iso(s.get("collected")),
                "detail": s.get("detail", ""),
                "pre_analytic": pa.model_dump(mode="json", exclude_defaults=True),
                "pre_analytic_lines": _pre_analytic_lines(
                    pa, biopsy=s["kind"] == "endometrial biopsy"
                ),
                "caveats": [{"code": code, "text": text} for text, code in caveats.items()],
            }
        )
    patient_caveats = list(  # the specimen-level ones, once each, for the patient page
        dict.fromkeys(
            c.patient_text
            for r in reading.results
            for c in r.caveats
            if c.patient_text and c.code in SPECIMEN_CAVEATS
        )
    )
    fields_failed = {
        q.specimen_id
        for q in ep.qc
        if any(c.check == _FIELDS_CHECK and not c.passed for c in q.checks)
    }
    status = report_status(lab, amendments)
    return {
        "schema": SCHEMA,
        "synthetic": ep.synthetic,
        "report": {
            "id": f"NKR-{ep.episode_id}",
            "title": "NK-cell panel: laboratory report",
            "version": version,
            "status": status,
            "issued": _iso(issued),
            "amendments": [a.model_dump(mode="json") for a in amendments],
            "generator": f"nkpanel {__version__}",
            "local_code_system": LOCAL_CODE_SYSTEM,
        },
        "laboratory": lab.model_dump(mode="json"),
        "patient": {"id": ep.patient_id, "age_years": ep.age_years},
        "episode": {
            "id": ep.episode_id,
            "collected": _iso(ep.collected),
            # every day a specimen of the episode was taken (a biopsy comes days after blood)
            "collected_days": sorted({c[:10] for s in specimens if (c := s["collected"])}),
            "indication": dict(ep.indication),
            "requester": lab.requester,
        },
        "specimens": specimens,
        "results": [
            _result(
                r,
                refs_for(r.measurand.code),
                fields_failed=r.measurement.specimen_id in fields_failed,
            )
            for r in reading.results
        ],
        "failures": [
            {
                "specimen_id": f.specimen_id,
                "source": _file_name(f.source),
                "reason": f.reason,
                "biomarker": f.biomarker,
            }
            for f in reading.failures
        ],
        # which tests the patient page says are missing (audit 19: "2 measurement files could
        # not be analysed" did not say the blood NK count was missing)
        "failed_tests_plain": list(
            dict.fromkeys(_PLAIN_TESTS.get(f.biomarker, "a test") for f in reading.failures)
        ),
        "qc": [
            {
                "specimen_id": q.specimen_id,
                "sample": q.sample,
                "biomarker": q.biomarker,
                "reportable": q.reportable,
                "checks": [
                    {
                        "check": c.check,
                        "status": "pass" if c.passed else ("FAIL" if c.blocking else "warn"),
                        "reason": c.reason,
                    }
                    for c in q.checks
                ],
            }
            for q in ep.qc
        ],
        "comments": list(reading.comments),
        "patient_caveats": patient_caveats,
        "patient_interval_notes": _patient_interval_notes(reading.results),
        "serial_notes": list(reading.serial_notes),
        "patient_serial_notes": list(reading.patient_serial_notes),
        "trends": [
            {
                "code": t.measurand.code,
                "label": t.measurand.label,
                "unit": t.measurand.unit,
                "summary": t.summary,
                # as shown (the series keeps the values as measured for its change)
                "change": _shown(t.change, t.measurand.decimals),
                "change_exceeds_uncertainty": t.change_exceeds_uncertainty,
                "points": [
                    {
                        "episode_id": p.episode_id,
                        "specimen_id": p.specimen_id,
                        "collected": _iso(p.collected),
                        "value": _shown(p.value, t.measurand.decimals),
                        "reportable": p.reportable,
                        "on_treatment": p.on_treatment,
                        "current": p.current,
                        "label": p.label,
                    }
                    for p in t.points
                ],
            }
            for t in reading.trends
        ],
        "serial_table": _serial_table(reading),
        "history_episodes": [e.episode_id for e in reading.history],
        "evidence": [
            {
                "ref": refs[s.id],
                "id": s.id,
                "topic": s.topic,
                "topic_heading": TOPICS[s.topic],
                "measurands": list(s.measurands),
                "text": s.text,
                "plain": s.plain,
                "source": s.source,
                "design": s.design,
                "size": s.size,
                "effect": s.effect,
                "ci": s.ci,
                "note": s.note,
            }
            for s in reading.evidence
        ],
        "interval_files": list(reading.intervals.files),
        "figures": dict(figures or {}),
    }
