"""The FHIR R4 bundle: valid (fhir.resources), coded only with checked LOINC codes or the
documented local code system, flags and QC failures carried, synthetic data labelled."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nkpanel.errors import NkPanelError
from nkpanel.interpret import LOCAL_CODE_SYSTEM, MEASURANDS
from nkpanel.report import validate_bundle
from tests.report.conftest import Reported


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_bundle_validates_and_references_resolve(reported: Reported) -> None:
    bundle = reported.bundle
    validate_bundle(bundle)
    assert bundle["type"] == "collection"
    urls = {e["fullUrl"] for e in bundle["entry"]}
    (report,) = resources(bundle, "DiagnosticReport")
    refs = [r["reference"] for r in report["result"] + report["specimen"]]
    refs.append(report["subject"]["reference"])
    for obs in resources(bundle, "Observation"):
        refs.append(obs["subject"]["reference"])
        refs += [obs["specimen"]["reference"]] if "specimen" in obs else []
    assert refs and set(refs) <= urls
    assert report["status"] == "amended"
    assert report["resultsInterpreter"][0]["display"] == "Dr B. Authoriser"
    assert {f["contentType"] for f in report["presentedForm"]} == {"application/pdf", "text/html"}
    assert len(report["result"]) == len(reported.doc["results"])


def test_codes(reported: Reported) -> None:
    loinc_used = set()
    local_used = set()
    for obs in resources(reported.bundle, "Observation"):
        codings = obs["code"]["coding"]
        for c in codings:
            if c["system"] == "http://loinc.org":
                loinc_used.add(c["code"])
            else:
                assert c["system"] == LOCAL_CODE_SYSTEM
                local_used.add(c["code"])
        assert any(c["system"] == LOCAL_CODE_SYSTEM for c in codings)
    # domain brief §1: 9728-7 = CD3−CD16+CD56+ (NK) cells [#/volume] in Blood, the TBNK name of
    # the NK count; 107067-1 (CD19−CD3−CD56+ cells/100 cells) counts CD56+ cells only and is not
    # used for nkpanel's "CD56+ and/or CD16+" percentage.
    assert loinc_used == {"9728-7"}
    (cs,) = resources(reported.bundle, "CodeSystem")
    assert cs["url"] == LOCAL_CODE_SYSTEM
    defined = {c["code"] for c in cs["concept"]}
    assert local_used <= defined and set(MEASURANDS) <= defined
    assert all(c["definition"] for c in cs["concept"])


def test_codesystem_says_why_the_nk_percent_loinc_code_was_not_used(reported: Reported) -> None:
    (cs,) = resources(reported.bundle, "CodeSystem")
    by_code = {c["code"]: c["definition"] for c in cs["concept"]}
    pct = by_code["pnk-pct-lymph"]
    assert "107067-1" in pct and "not used" in pct and "and/or CD16+" in pct
    assert "107067-1" in cs["description"] and "9728-7" in cs["description"]


def test_values_flags_ranges_and_qc_failures(reported: Reported) -> None:
    obs = resources(reported.bundle, "Observation")
    by_doc = reported.doc["results"]
    for o, res in zip(obs, by_doc, strict=True):
        if res["reportable"]:
            q = o["valueQuantity"]
            assert q["value"] == res["value"] and q["unit"] == res["unit"]
            if res["ucum"]:
                assert q["system"] == "http://unitsofmeasure.org" and q["code"] == res["ucum"]
        else:
            assert "valueQuantity" not in o
            assert o["dataAbsentReason"]["coding"][0]["code"] == "error"
            assert "flow rate unstable" in o["dataAbsentReason"]["text"]
        codes = [c["code"] for i in o.get("interpretation", []) for c in i["coding"]]
        expected = {"below": ["L"], "within": ["N"], "above": ["H"]}.get(res["flag"], [])
        if res["near_limit"] is not None and res["flag"] == "within":
            expected = []  # not coded "Normal" near a limit (audit 19)
        assert codes == expected
        if res["interval"]:
            assert res["interval"]["source"] in o["referenceRange"][0]["text"]
        else:  # no interval applied (none chosen, or an LH-timed one outside its window)
            assert "referenceRange" not in o
        assert o["effectiveDateTime"].endswith(("+00:00", "+01:00"))  # lab zone Europe/London


def test_synthetic_label_on_every_resource(reported: Reported) -> None:
    assert reported.bundle["meta"]["security"][0]["code"] == "HTEST"
    for e in reported.bundle["entry"]:
        if e["resource"]["resourceType"] != "CodeSystem":
            assert e["resource"]["meta"]["security"][0]["code"] == "HTEST"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b["entry"][0]["resource"].update(status="done"),
        lambda b: resources(b, "Observation")[0].update(status="bogus"),
        lambda b: resources(b, "Observation")[0].pop("code"),
        lambda b: b["entry"][0]["resource"].update(issued="2026-11-05T14:00:00"),  # no zone
        lambda b: next(o for o in resources(b, "Observation") if "interpretation" in o)[
            "interpretation"
        ][0]["coding"][0].update(code="HIGHISH"),
    ],
)
def test_invalid_bundles_are_rejected(reported: Reported, mutate: Any) -> None:
    broken = copy.deepcopy(reported.bundle)
    mutate(broken)
    with pytest.raises(NkPanelError, match="not valid R4"):
        validate_bundle(broken)


def test_a_biopsy_dated_by_day_stays_a_day(tmp_path: Any) -> None:
    """A biopsy recorded as 2026-11-14 is not given a time (it once became
    2026-11-14T00:00:00+00:00 in FHIR and 00:00 in the report)."""
    import json

    from nkpanel.report import build_reports
    from tests.interpret.summaries import biopsy, summary

    s = summary(flow=[], endometrial=[biopsy(collected="2026-11-14")])
    paths = build_reports(s, tmp_path, pdf=False)
    bundle = json.loads(paths.fhir.read_text("utf-8"))
    unk = [
        o
        for o in resources(bundle, "Observation")
        if any(c.get("code") == "unk-pct-stroma" for c in o["code"]["coding"])
    ]
    assert unk and all(o["effectiveDateTime"] == "2026-11-14" for o in unk)
    validate_bundle(bundle)  # a day is a valid FHIR dateTime (raises otherwise)
    doc = json.loads(paths.json.read_text("utf-8"))
    assert {r["collected"] for r in doc["results"] if r["code"] == "unk-pct-stroma"} == {
        "2026-11-14"
    }


@pytest.mark.parametrize(("nk_pct", "coded"), [(14.0, "N"), (26.0, None), (30.0, "H")])
def test_a_near_limit_result_is_not_coded_normal(
    tmp_path: Any, nk_pct: float, coded: str | None
) -> None:
    """Audit 19: FHIR said "N" Normal for 26.0% against ARUP's 4.0–26.0%, where the report
    says "within · near limit … repeat the measurement rather than act"."""
    import json

    from nkpanel.report import build_reports
    from tests.interpret.summaries import flow_entry, summary

    paths = build_reports(summary(flow=[flow_entry(nk_pct=nk_pct)]), tmp_path, pdf=False)
    bundle = json.loads(paths.fhir.read_text("utf-8"))
    (obs,) = [
        o
        for o in resources(bundle, "Observation")
        if any(c.get("code") == "pnk-pct-lymph" for c in o["code"]["coding"])
    ]
    codes = [c["code"] for i in obs.get("interpretation", []) for c in i["coding"]]
    assert codes == ([coded] if coded else [])
    validate_bundle(bundle)
