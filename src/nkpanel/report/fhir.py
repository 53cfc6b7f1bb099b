"""The report as a FHIR R4 bundle: a DiagnosticReport with one Observation per result, the
Patient and Specimens they point to, and a CodeSystem that documents nkpanel's local codes.

Codes: LOINC only where a code checked against the LOINC listings (domain brief) names the
population nkpanel measures: 9728-7 for the NK count (the TBNK name of CD3− CD16/56+ cells).
The NK percentage is not 107067-1 (CD19−CD3−CD56+, CD56+ cells only), and subsets, activity
and uNK have no checked code; every result also carries nkpanel's local code
(:data:`LOCAL_CODE_SYSTEM`), which the bundle's CodeSystem resource defines, with the reason a
nearby LOINC code was not used. Units are UCUM where UCUM has a code. Flags use HL7
v3-ObservationInterpretation (L, N, H); a result that failed QC has no value but a
dataAbsentReason of ``error`` and the reason in a note. Synthetic data carry the HL7
v3-ActReason security label HTEST ("test health data") on every resource.

Validation uses fhir.resources' R4B models (``fhir.resources.R4B``): R4B (4.3.0) left
DiagnosticReport, Observation, Patient, Specimen, CodeSystem and Bundle as they were in R4
(4.0.1), and the bundle uses no element R4B added.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from nkpanel.errors import NkPanelError
from nkpanel.interpret.measurands import LOCAL_CODE_SYSTEM, MEASURANDS

__all__ = ["PANEL_CODE", "REQUIRED_CODES", "code_system", "fhir_bundle", "validate_bundle"]

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
HTEST = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "code": "HTEST",
    "display": "test health data",
}
PATIENT_ID_SYSTEM = "urn:nkpanel:identifier:patient"
#: The local code of the whole panel (no checked LOINC panel code exists for it).
PANEL_CODE = "nk-panel"
_FLAG_CODE = {"below": ("L", "Low"), "within": ("N", "Normal"), "above": ("H", "High")}


def _uid(*parts: str) -> str:
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "nkpanel:" + ":".join(parts)))


def _instant(text: str | None, tz: dt.tzinfo) -> str | None:
    """A FHIR dateTime with a time zone: naive times are taken in the lab's zone. A day
    without a time stays a day (FHIR dateTime allows ``YYYY-MM-DD``): no time is invented."""
    if text is None:
        return None
    if len(text) == len("2026-11-14"):
        return dt.date.fromisoformat(text).isoformat()
    t = dt.datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=tz)
    return t.isoformat(timespec="seconds")


def _quantity(value: float, unit: str, ucum: str | None) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value, "unit": unit}
    if ucum is not None:
        q |= {"system": UCUM, "code": ucum}
    return q


def _observation(
    res: Mapping[str, Any],
    *,
    status: str,
    patient_ref: str,
    specimen_ref: str | None,
    issued: str,
    tz: dt.tzinfo,
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    coding = []
    if res["loinc"]:
        display = MEASURANDS[res["code"]].loinc_display
        coding.append({"system": LOINC, "code": res["loinc"], "display": display})
    coding.append({"system": LOCAL_CODE_SYSTEM, "code": res["code"], "display": res["label"]})
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": dict(meta),
        "status": "final" if status == "amended" else status,
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                        "display": "Laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": coding, "text": res["label"]},
        "subject": {"reference": patient_ref},
        "issued": issued,
        "method": {"text": res["method"]},
    }
    if (when := _instant(res["collected"], tz)) is not None:
        obs["effectiveDateTime"] = when
    if specimen_ref is not None:
        obs["specimen"] = {"reference": specimen_ref}
    if res["value"] is not None and res["reportable"]:
        obs["valueQuantity"] = _quantity(res["value"], res["unit"], res["ucum"])
    else:
        obs["dataAbsentReason"] = {
            "coding": [{"system": ABSENT, "code": "error", "display": "Error"}],
            "text": "; ".join(res["not_reportable_reasons"]) or "not reportable",
        }
    # a value within measurement uncertainty of a limit is not coded "Normal": the report says
    # "within · near limit", repeat rather than act (audit 19); the note carries it
    near = res["flag"] == "within" and res.get("near_limit") is not None
    if res["flag"] in _FLAG_CODE and not near:
        code, display = _FLAG_CODE[res["flag"]]
        obs["interpretation"] = [
            {"coding": [{"system": INTERPRETATION, "code": code, "display": display}]}
        ]
    iv = res["interval"]
    if iv is not None:
        rng: dict[str, Any] = {
            "text": f"{iv['text']}; {iv['source']}; {iv['population']}"
            + (f"; {iv['cycle_timing']}" if iv["cycle_timing"] else "")
        }
        if iv["lower"] is not None:
            rng["low"] = _quantity(iv["lower"], res["unit"], res["ucum"])
        if iv["upper"] is not None:
            rng["high"] = _quantity(iv["upper"], res["unit"], res["ucum"])
        obs["referenceRange"] = [rng]
    notes = [res["comment"], *(c["text"] for c in res["caveats"])]
    if res.get("estimate") or res.get("ci") or res.get("also"):
        # which estimate the value is, its own CI, the others beside it (an endometrial slide)
        said = [f"estimate: {res['estimate']}"] if res.get("estimate") else []
        said += [res["ci"]["text"]] if res.get("ci") else []
        said += [f"{a['text']} (not read against the interval)" for a in res.get("also", [])]
        notes.insert(0, "; ".join(said))
    obs["note"] = [{"text": n} for n in notes if n]
    return obs


def fhir_bundle(
    doc: Mapping[str, Any],
    *,
    timezone: dt.tzinfo = dt.UTC,
    presented_forms: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The FHIR R4 bundle (type ``collection``) of a report document.

    Parameters
    ----------
    doc
        :func:`nkpanel.report.document.report_document`'s dict.
    timezone
        The zone of naive times in the case summary (FHIR needs a zone on every time).
    presented_forms
        ``(content type, relative file name)`` of the rendered reports, linked from the
        DiagnosticReport's ``presentedForm``.
    """
    report = doc["report"]
    rid = report["id"]
    version = str(report["version"])
    meta: dict[str, Any] = {"security": [HTEST]} if doc["synthetic"] else {}
    issued = _instant(report["issued"], timezone)
    assert issued is not None
    patient_ref = _uid(rid, "patient")
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": patient_ref,
            "resource": {
                "resourceType": "Patient",
                "meta": dict(meta),
                "identifier": [{"system": PATIENT_ID_SYSTEM, "value": doc["patient"]["id"]}],
            },
        }
    ]
    specimen_refs: dict[str, str] = {}
    for s in doc["specimens"]:
        ref = _uid(rid, "specimen", str(s["id"]))
        specimen_refs[str(s["id"])] = ref
        spec: dict[str, Any] = {
            "resourceType": "Specimen",
            "meta": dict(meta),
            "identifier": [{"value": str(s["id"])}],
            "type": {"text": s["kind"]},
            "subject": {"reference": patient_ref},
        }
        if (when := _instant(s["collected"], timezone)) is not None:
            spec["collection"] = {"collectedDateTime": when}
        if s["pre_analytic_lines"] or s["detail"]:
            spec["note"] = [
                {"text": "; ".join(x for x in [s["detail"], *s["pre_analytic_lines"]] if x)}
            ]
        entries.append({"fullUrl": ref, "resource": spec})
    result_refs = []
    for i, res in enumerate(doc["results"]):
        ref = _uid(rid, version, "observation", str(i), res["code"], res["specimen_id"])
        result_refs.append(ref)
        obs = _observation(
            res,
            status=report["status"],
            patient_ref=patient_ref,
            specimen_ref=specimen_refs.get(res["specimen_id"]),
            issued=issued,
            tz=timezone,
            meta=meta,
        )
        entries.append({"fullUrl": ref, "resource": obs})
    diag: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "meta": dict(meta),
        "identifier": [{"system": "urn:nkpanel:identifier:report", "value": f"{rid}-v{version}"}],
        "status": report["status"],
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                        "code": "LAB",
                        "display": "Laboratory",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {"system": LOCAL_CODE_SYSTEM, "code": PANEL_CODE, "display": "NK-cell panel"}
            ],
            "text": report["title"],
        },
        "subject": {"reference": patient_ref},
        "issued": issued,
        "performer": [{"display": doc["laboratory"]["name"]}],
        "specimen": [{"reference": r} for r in specimen_refs.values()],
        "result": [{"reference": r} for r in result_refs],
        "conclusion": " ".join(doc["comments"]),
    }
    if (when := _instant(doc["episode"]["collected"], timezone)) is not None:
        diag["effectiveDateTime"] = when
    if doc["laboratory"].get("authoriser"):
        diag["resultsInterpreter"] = [{"display": doc["laboratory"]["authoriser"]}]
    if presented_forms:
        diag["presentedForm"] = [
            {"contentType": ctype, "url": name, "title": f"{report['title']} ({name})"}
            for ctype, name in presented_forms
        ]
    entries.insert(0, {"fullUrl": _uid(rid, version, "report"), "resource": diag})
    entries.append({"fullUrl": _uid("codesystem", LOCAL_CODE_SYSTEM), "resource": code_system()})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:nkpanel:identifier:bundle", "value": f"{rid}-v{version}"},
        "type": "collection",
        "timestamp": issued,
        "entry": entries,
    }
    if meta:
        bundle["meta"] = dict(meta)
    return bundle


def code_system() -> dict[str, Any]:
    """The CodeSystem resource that documents nkpanel's local measurand codes."""
    concepts = [
        {
            "code": PANEL_CODE,
            "display": "NK-cell panel",
            "definition": "The panel of NK-cell measurements nkpanel reports for one test "
            "episode (peripheral blood NK cells by flow cytometry, NK-cell activity, "
            "endometrial NK cells).",
        }
    ]
    for m in MEASURANDS.values():
        loinc = f" LOINC {m.loinc} carries the same measurand." if m.loinc else ""
        if m.loinc_not_used:
            loinc += f" {m.loinc_not_used}"
        concepts.append(
            {
                "code": m.code,
                "display": m.label,
                "definition": f"{m.label}, in {m.unit}; specimen: {m.specimen}.{loinc}",
            }
        )
    return {
        "resourceType": "CodeSystem",
        "url": LOCAL_CODE_SYSTEM,
        "name": "NkpanelMeasurand",
        "title": "nkpanel measurands",
        "status": "active",
        "content": "complete",
        "caseSensitive": True,
        "description": "nkpanel's local codes for NK-cell measurands that have no LOINC code "
        "checked against the LOINC listings for the same population; results with such a code "
        "carry both. The NK percentage is coded here because LOINC 107067-1 names CD56+ cells "
        "only, narrower than nkpanel's CD3- CD56+ and/or CD16+ gate; the NK count also carries "
        "LOINC 9728-7 (CD3-CD16+CD56+, the TBNK name of that gate). Each concept's definition "
        "says why a nearby LOINC code was not used.",
        "concept": concepts,
    }


#: Required value-set bindings (FHIR R4) of the codes nkpanel writes; fhir.resources checks
#: structure, cardinality and datatypes but not these bindings.
REQUIRED_CODES: dict[tuple[str, str], frozenset[str]] = {
    ("Bundle", "type"): frozenset(
        [
            "document",
            "message",
            "transaction",
            "transaction-response",
            "batch",
            "batch-response",
            "history",
            "searchset",
            "collection",
        ]
    ),
    ("DiagnosticReport", "status"): frozenset(
        [
            "registered",
            "partial",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "appended",
            "cancelled",
            "entered-in-error",
            "unknown",
        ]
    ),
    ("Observation", "status"): frozenset(
        [
            "registered",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "cancelled",
            "entered-in-error",
            "unknown",
        ]
    ),
    ("CodeSystem", "status"): frozenset(["draft", "active", "retired", "unknown"]),
    ("CodeSystem", "content"): frozenset(
        ["not-present", "example", "fragment", "complete", "supplement"]
    ),
}
_INTERPRETATION_CODES = frozenset({"L", "N", "H"})


def _binding_problems(bundle: Mapping[str, Any]) -> list[str]:
    problems = []
    resources = [("Bundle", bundle)] + [
        (e["resource"]["resourceType"], e["resource"]) for e in bundle.get("entry", [])
    ]
    for i, (rtype, res) in enumerate(resources):
        for (bound_type, element), allowed in REQUIRED_CODES.items():
            if rtype == bound_type and element in res and res[element] not in allowed:
                problems.append(
                    f"{rtype}[{i}].{element} = {res[element]!r} is not in its value set"
                )
        for interp in res.get("interpretation", []):
            for c in interp.get("coding", []):
                if c.get("system") == INTERPRETATION and c.get("code") not in _INTERPRETATION_CODES:
                    problems.append(f"{rtype}[{i}].interpretation {c.get('code')!r} unknown")
    return problems


def validate_bundle(bundle: Mapping[str, Any]) -> None:
    """Validate with fhir.resources' R4B models (every entry against its resource type), and
    the required code bindings of :data:`REQUIRED_CODES`.

    Raises
    ------
    NkPanelError
        With the validator's message, when the bundle is not valid FHIR.
    """
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    try:
        Bundle.model_validate(dict(bundle))
    except (ValidationError, ValueError) as exc:
        raise NkPanelError(f"FHIR bundle is not valid R4: {exc}") from None
    problems = _binding_problems(bundle)
    if problems:
        raise NkPanelError("FHIR bundle is not valid R4: " + "; ".join(problems))
