"""Reading case summaries into generic measurements: the flow section as ``nkpanel run`` writes
it, the cytotoxicity and endometrial sections as documented, and the generic list."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from nkpanel.errors import InputError
from nkpanel.interpret import MEASURANDS, read_episode
from tests.interpret.summaries import biopsy, flow_entry, native_plate, plate, summary


def test_flow_section() -> None:
    ep = read_episode(summary())
    codes = [m.code for m in ep.measurements]
    assert codes == [
        "pnk-pct-lymph",
        "pnk-per-ul",
        "pnk-cd56bright-pct-nk",
        "pnk-cd56dim-pct-nk",
        "pnk-nklike-t-pct-lymph",
    ]
    m = ep.measurements[0]
    assert m.value == 14.0 and m.unit == "%" and m.reportable and m.qc_status == "pass"
    assert m.collected == dt.datetime(2026, 11, 2, 8, 30)
    assert m.specimen_id == "draw-1" and m.sample == "tube1" and m.biomarker == "flow"
    assert ep.synthetic and ep.patient_id == "SYNTH-P1" and ep.age_years == 34
    assert ep.qc[0].checks[0].check == "lymphocyte events"


def test_no_absolute_count_is_left_out_not_failed() -> None:
    ep = read_episode(summary(flow=[flow_entry(per_ul=None, count_method="none")]))
    assert "pnk-per-ul" not in [m.code for m in ep.measurements]


def _count_check_failed(check: str, value: float, limit: float, reason: str) -> Any:
    """The episode of a flow entry with no absolute count and the count's check ``check``
    failed (non-blocking: it withholds the count only)."""
    flag = {"check": check, "passed": False, "value": value, "limit": limit}
    entry = flow_entry(per_ul=None)
    entry["qc"] = [*entry["qc"], {**flag, "reason": reason, "blocking": False}]
    return read_episode(summary(flow=[entry]))


def test_an_absolute_count_withheld_as_implausible_is_shown_withheld() -> None:
    """A bead count outside every blood count withholds the absolute count: the report showed
    nothing, as if none had been asked for. It is a measurement withheld, with the reason."""
    reason = "the beads give 195,849 lymphocytes/µL, outside 50–100,000/µL"
    ep = _count_check_failed("bead count plausible", 195849.0, 100000.0, reason)
    count = next(m for m in ep.measurements if m.code == "pnk-per-ul")
    assert count.value is None
    assert any("195,849 lymphocytes/µL" in n for n in count.qc_notes)


def test_an_absolute_count_withheld_for_two_counts_apart_is_shown_withheld() -> None:
    """A bead count and the analyser's more than 2× apart withhold the absolute count (audit
    32: NK 23/µL flagged low beside a dual-platform 235/µL): shown withheld, with the reason,
    not left out as if no count had been asked for."""
    reason = (
        "the beads give 198 lymphocytes/µL, the haematology count 2,000 (10.1× apart): no "
        "absolute count is given"
    )
    ep = _count_check_failed("bead and haematology counts agree", 10.1, 2.0, reason)
    count = next(m for m in ep.measurements if m.code == "pnk-per-ul")
    assert count.value is None and not count.reportable
    assert any("10.1× apart" in n for n in count.qc_notes)


def test_a_bead_note_is_on_the_count_not_on_the_percentages() -> None:
    """Too few beads (a non-blocking check that withholds the count) put "999 counting-bead
    events" on NK %, CD56bright % and NK-like T % of the report and the FHIR bundle, which use
    no beads (audit 32). It is the count's note alone; the percentages pass."""
    reason = "999 counting-bead events (minimum 1000)"
    ep = _count_check_failed("bead events", 999.0, 1000.0, reason)
    count = next(m for m in ep.measurements if m.code == "pnk-per-ul")
    assert any("999 counting-bead events" in n for n in count.qc_notes)
    for m in ep.measurements:
        if m.code != "pnk-per-ul":
            assert not any("counting-bead" in n for n in m.qc_notes), m.code
            assert m.qc_status == "pass", m.code


@pytest.mark.parametrize(
    "roles",
    [
        {"template": "lab.wsp", "template_roles": {"NK": "/Lymphocytes/NK"}},
        # a summary written before the roles had a key of their own
        {"notes": ["template lab.wsp: NK = gate '/Lymphocytes/NK'"]},
    ],
    ids=["template_roles", "legacy notes"],
)
def test_a_template_without_a_subset_gate_is_not_a_failed_check(roles: dict[str, Any]) -> None:
    """A lab template with no CD56bright gate measured no CD56bright: nothing to report, not
    a QC failure; and which gate played which role is the method, not a quality note."""
    entry = flow_entry(bright=None, dim=None) | {"gating": "template"} | roles
    ep = read_episode(summary(flow=[entry]))
    codes = [m.code for m in ep.measurements]
    assert "pnk-cd56bright-pct-nk" not in codes and "pnk-cd56dim-pct-nk" not in codes
    nk = ep.measurements[0]
    assert nk.reportable and nk.qc_status == "pass" and not nk.qc_notes
    assert "template lab.wsp: NK = gate '/Lymphocytes/NK'" in nk.method


def test_failed_tube_and_failed_file() -> None:
    ep = read_episode(
        summary(
            flow=[flow_entry(failed_check="too few events")],
            failures=[{"source": "/data/t2.fcs", "reason": "truncated file"}],
        )
    )
    assert all(not m.reportable and m.qc_status == "fail" for m in ep.measurements)
    assert ep.measurements[0].not_reportable_reasons == ("too few events",)
    assert ep.failures[0].reason == "truncated file"


def test_cytotoxicity_and_endometrial_sections() -> None:
    ep = read_episode(summary(cytotoxicity=[plate(intralipid=30.0)], endometrial=[biopsy()]))
    by_code = {m.code: m for m in ep.measurements}
    assert by_code["nka-lysis-50-1"].value == 18.0
    assert by_code["nka-lu"].value == 35.0
    assert by_code["nka-suppression-ivig"].value == 41.0
    assert by_code["nka-suppression-intralipid"].value == 30.0
    assert by_code["nka-lysis-50-1"].curve == ((12.5, 8.1), (25.0, 12.6), (50.0, 18.0))
    assert by_code["unk-pct-stroma"].value == 3.0
    assert by_code["unk-pct-stroma"].pre_analytic.lh_day == 8
    assert by_code["unk-per-mm2"].unit == "cells/mm²"
    assert {s["kind"] for s in ep.specimens} == {
        "peripheral blood",
        "peripheral blood (NK activity)",
        "endometrial biopsy",
    }


def test_unreportable_plate() -> None:
    ep = read_episode(summary(flow=[], cytotoxicity=[plate(reportable=False)]))
    assert ep.measurements and all(not m.reportable for m in ep.measurements)
    assert ep.measurements[0].not_reportable_reasons == ("spontaneous release 45% of maximum",)


def test_generic_measurement_list_wins() -> None:
    entry = biopsy(pct=3.0)
    entry["measurements"] = [
        {"code": "unk-pct-stroma", "value": 6.5, "unit": "%", "cv_percent": 8.0},
        {
            "code": "unk-per-mm2",
            "value": None,
            "qc_status": "fail",
            "not_reportable_reasons": ["stroma area below 1 mm²"],
        },
    ]
    ep = read_episode(summary(flow=[], endometrial=[entry]))
    by_code = {m.code: m for m in ep.measurements}
    assert by_code["unk-pct-stroma"].value == 6.5 and by_code["unk-pct-stroma"].cv_percent == 8.0
    assert not by_code["unk-per-mm2"].reportable
    assert by_code["unk-per-mm2"].not_reportable_reasons == ("stroma area below 1 mm²",)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s.update(blood_draws={}), "blood_draws: expected a list"),
        (lambda s: s["blood_draws"][0].update(collected="yesterday"), "ISO 8601"),
        (
            lambda s: s["blood_draws"][0]["flow"][0].update(nk_percent_of_lymphocytes="12"),
            "nk_percent_of_lymphocytes: expected a number",
        ),
        (
            lambda s: s.update(cytotoxicity=[{"measurements": [{"code": "nk-bogus", "value": 1}]}]),
            "unknown measurand code",
        ),
        (
            lambda s: s.update(
                endometrial=[
                    {
                        "measurements": [
                            {"code": "unk-pct-stroma", "value": 1.0, "unit": "cells/mm²"}
                        ]
                    }
                ]
            ),
            "must be in",
        ),
        (
            lambda s: s.update(cytotoxicity=[{"suppression_percent": {"aspirin": 3.0}}]),
            "unknown agent",
        ),
        (
            lambda s: s["blood_draws"][0]["flow"][0].update(nk_cells_per_ul=float("nan")),
            "not a finite number",
        ),
        # another JSON file (a plate's truth file, say) is not a case summary
        (lambda s: s.pop("case"), "case.id: missing: not a case summary"),
        (lambda s: s["case"].pop("patient_id"), "case.patient_id: missing"),
    ],
)
def test_malformed_summaries_name_the_field(mutate: Any, expected: str) -> None:
    s = summary()
    mutate(s)
    with pytest.raises(InputError, match="case summary") as info:
        read_episode(s)
    assert expected in str(info.value)


def test_every_measurand_has_patient_wording_and_unit() -> None:
    for m in MEASURANDS.values():
        assert m.patient_name and m.patient_what and m.unit
        assert m.loinc in (None, "9728-7", "107067-1")  # only codes the brief lists as checked


def test_nk_loinc_codes() -> None:
    # domain brief §1: 9728-7 = CD3−CD16+CD56+ (NK) cells [#/volume] in Blood, the TBNK name of
    # the NK count (CD16 and CD56 on one fluorochrome: CD3− CD16/56+); LOINC 107067-1 is
    # CD19−CD3−CD56+ cells/100 cells, CD56+ only, so the NK percentage keeps the local code
    # and says why.
    assert MEASURANDS["pnk-per-ul"].loinc == "9728-7"
    pct = MEASURANDS["pnk-pct-lymph"]
    assert pct.loinc is None
    assert "107067-1" in pct.loinc_not_used and "and/or CD16+" in pct.loinc_not_used


def _by_code(ep: Any) -> dict[str, Any]:
    return {m.code: m for m in ep.measurements}


def test_plate_qc_reaches_the_qc_record() -> None:
    # a plate summary as nkpanel.cytotox writes it: each condition's checks (S/M %, fit) and
    # each ratio's (replicate CV) become one QC group per condition, ratio checks named with
    # their ratio; nothing is dropped
    ep = read_episode(summary(cytotoxicity=[native_plate()]))
    groups = [q for q in ep.qc if q.biomarker == "cytotoxicity"]
    assert [q.sample for q in groups] == [
        "SYNTH-P01, no additive (spontaneous release 12.0% of maximum)",
        "SYNTH-P01, with IVIG 2 mg/mL (spontaneous release 12.0% of maximum)",
    ]
    for q in groups:
        names = [c.check for c in q.checks]
        # 2 condition checks + 3 ratios × 1 replicate-CV check, by hand
        assert names == [
            "spontaneous_release",
            "fit_quality",
            "replicate_cv at 50:1",
            "replicate_cv at 25:1",
            "replicate_cv at 12.5:1",
        ]
        assert q.reportable and q.specimen_id == "plate-native"
    assert "12.0% of maximum" in groups[0].checks[0].reason


def test_extrapolated_lytic_units_carry_a_warning_on_that_value_only() -> None:
    ep = read_episode(summary(cytotoxicity=[native_plate(lu_extrapolated=True)]))
    by = _by_code(ep)
    lu = by["nka-lu"]
    assert lu.qc_status == "warn" and lu.reportable
    assert any("outside the tested 12.5:1–50:1" in n and "fitted curve" in n for n in lu.qc_notes)
    # lysis at 50:1 and suppression at 50:1 are measured wells, not the LU extrapolation
    for code in ("nka-lysis-50-1", "nka-suppression-ivig"):
        assert by[code].qc_status == "pass" and by[code].qc_notes == (), code


@pytest.mark.parametrize(("ratio", "on_lysis"), [(50.0, True), (25.0, False)])
def test_ratio_warnings_go_to_the_values_that_use_that_ratio(ratio: float, on_lysis: bool) -> None:
    # an outlier well at 50:1 qualifies lysis at 50:1, the suppression at 50:1 and the lytic
    # units (the whole curve); one at 25:1 only the lytic units
    by = _by_code(read_episode(summary(cytotoxicity=[native_plate(outlier_at=ratio)])))
    assert any("outside their replicates" in n for n in by["nka-lu"].qc_notes)
    for code in ("nka-lysis-50-1", "nka-suppression-ivig"):
        assert any("outside their replicates" in n for n in by[code].qc_notes) is on_lysis


def test_treated_condition_warnings_qualify_its_suppression() -> None:
    by = _by_code(read_episode(summary(cytotoxicity=[native_plate(ivig_fit_warning=True)])))
    assert by["nka-suppression-ivig"].qc_notes == ("IVIG 2 mg/mL: exponential fit R² 0.61",)
    assert by["nka-lysis-50-1"].qc_notes == ()


def test_a_plate_of_several_samples_must_name_the_patients() -> None:
    plate = native_plate()
    other = [dict(h, sample="SYNTH-P02") for h in plate["headline"]]
    several = {**plate, "sample_id": None, "headline": [*plate["headline"], *other]}
    with pytest.raises(InputError, match=r"holds 2 samples \(SYNTH-P01, SYNTH-P02\)"):
        read_episode(summary(cytotoxicity=[several]))
    # named: the patient's sample only
    named = read_episode(summary(cytotoxicity=[{**several, "sample_id": "SYNTH-P02"}]))
    assert {m.sample for m in named.measurements if m.biomarker == "cytotoxicity"} == {"SYNTH-P02"}


def test_a_plate_dated_by_its_assay_says_so() -> None:
    """nkpanel.cytotox records the assay date; with no collection time it dates the NK
    activity (it was 'not recorded' in the report and absent from FHIR), and says what it is."""
    ep = read_episode(summary(cytotoxicity=[native_plate() | {"assay_date": "2026-11-02"}]))
    (spec,) = [s for s in ep.specimens if s["kind"] == "peripheral blood (NK activity)"]
    assert spec["collected"] == dt.datetime(2026, 11, 2) and "date of the assay" in spec["detail"]
    nka = [m for m in ep.measurements if m.biomarker == "cytotoxicity"]
    assert nka and all(m.collected == dt.datetime(2026, 11, 2) for m in nka)


def test_a_plates_reference_band_is_said_not_to_be_applied() -> None:
    """A lab's band drawn on the lysis figure, beside a result compared with no interval, is
    explained in the method (the two seemed to contradict each other)."""
    band = {"low_percent": 10.0, "high_percent": 15.0, "ratio": 50.0, "source": "lab 2025"}
    drawn = {"SYNTH-P01": ["cytotoxicity/p1/plots/SYNTH-P01.png"]}
    plate = native_plate() | {"settings": {"reference": band}, "figures": drawn}
    ep = read_episode(summary(cytotoxicity=[plate]))
    lysis = next(m for m in ep.measurements if m.code == "nka-lysis-50-1")
    assert "band 10–15% at 50:1 (lab 2025) is drawn on the lysis figure" in lysis.method
    assert "not an interval applied in this report" in lysis.method


def test_the_patient_page_explains_the_words_it_uses_for_treatments_and_units() -> None:
    """Audit 19: "intralipid" and the unit "LU/10^7 cells" were never explained to the
    patient (IVIG only in the evidence list). Each measurand that names them says what they
    are, in its own plain-language line."""
    from nkpanel.interpret import MEASURANDS

    what = {code: m.patient_what for code, m in MEASURANDS.items()}
    assert "(a fat emulsion that some clinics give by drip)" in what["nka-suppression-intralipid"]
    assert "(an antibody product made from donated blood)" in what["nka-suppression-ivig"]
    assert "lytic units per 10 million cells" in what["nka-lu"]
