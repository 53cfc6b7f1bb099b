"""Each result against its interval: flags, near-limit by measurement uncertainty (hand
calculations), pre-analytic caveats, and no interpretation after a QC failure."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nkpanel.errors import InputError
from nkpanel.interpret import (
    Interpretation,
    InterpretSettings,
    Measurement,
    ReferenceInterval,
    check_wording,
    interpret_case,
    interpret_measurement,
    load_intervals,
)
from nkpanel.interpret.panel import guideline_comment
from tests.interpret.summaries import biopsy, flow_entry, plate, summary


def result(reading: Any, code: str) -> Interpretation:
    found = [r for r in reading.results if r.measurand.code == code]
    assert len(found) == 1, [r.measurand.code for r in reading.results]
    return found[0]


def own_comments(reading: Any) -> list[str]:
    """The case comments in nkpanel's own words: the guidelines' statements, quoted, are
    checked with their attribution (test_the_guidelines_position_is_in_the_interpretive_comment)."""
    quoted = guideline_comment(reading.evidence)
    assert quoted in reading.comments
    return [c for c in reading.comments if c != quoted]


def nk_pct(value: float, **kw: Any) -> Interpretation:
    reading = interpret_case(summary(flow=[flow_entry(nk_pct=value, **kw)]))
    return result(reading, "pnk-pct-lymph")


@pytest.mark.parametrize(
    ("value", "flag"),
    [
        (3.9, "below"),
        (4.0, "within"),  # limits are inclusive
        (26.0, "within"),
        (26.04, "within"),  # compared as printed: 26.0
        (26.06, "above"),  # printed 26.1
        (30.0, "above"),
    ],
)
def test_flag_against_default_interval(value: float, flag: str) -> None:
    # ARUP 0092404: 4–26% of lymphocytes (domain brief). A huge lymphocyte count makes the
    # counting CV negligible here, so "near" does not interfere.
    r = nk_pct(value, n_lymph=10**9)
    assert r.flag == flag
    assert "ARUP Laboratories, test 0092404" in r.comment
    assert r.interval is not None and r.interval.id == "arup-0092404-pct"


def test_counting_cv_by_hand() -> None:
    # 10% NK among 10,000 lymphocyte events: binomial CV = √((1−p)/(pN)) = √(0.9/1000) = 3.0%
    r = nk_pct(10.0, n_lymph=10_000)
    assert r.uncertainty is not None
    assert r.uncertainty.cv_percent == pytest.approx(3.0, abs=1e-9)
    # expanded U = 2 × 3% × 10 = 0.6 percentage points
    assert r.uncertainty.expanded == pytest.approx(0.6)
    reading = interpret_case(summary(flow=[flow_entry(n_nk=400, n_beads=10_000)]))
    # bead count: Poisson on NK events and beads, √(1/400 + 1/10000) = 5.099%
    cv = result(reading, "pnk-per-ul").uncertainty
    assert cv is not None and cv.cv_percent == pytest.approx(100 * math.sqrt(0.0026))


def test_near_a_limit_by_hand() -> None:
    settings = InterpretSettings(analytical_cv={"pnk-pct-lymph": 5.0})
    reading = interpret_case(
        summary(flow=[flow_entry(nk_pct=25.0, n_lymph=10**9)]), settings=settings
    )
    r = result(reading, "pnk-pct-lymph")
    # U = 2 × 5% × 25 = 2.5; |25 − 26| = 1 ≤ 2.5: near the upper limit, still "within"
    assert r.flag == "within" and r.near_limit == 26.0
    assert "repeat the measurement rather than act" in r.comment
    assert "repeat test" in r.patient_comment
    assert "near limit" in r.flag_label
    reading = interpret_case(
        summary(flow=[flow_entry(nk_pct=20.0, n_lymph=10**9)]), settings=settings
    )
    r = result(reading, "pnk-pct-lymph")
    # U = 2 × 5% × 20 = 2.0 < |20 − 26| = 6: not near
    assert r.flag == "within" and r.near_limit is None
    reading = interpret_case(
        summary(flow=[flow_entry(nk_pct=4.1, n_lymph=10**9)]), settings=settings
    )
    # U = 0.41 ≥ |4.1 − 4.0| = 0.1: near the lower limit
    assert result(reading, "pnk-pct-lymph").near_limit == 4.0
    assert any("repeat" in c for c in reading.comments)


def test_qc_failure_means_no_interpretation_only_the_reason() -> None:
    reason = "flow rate unstable over 20% of the acquisition time (limit 5%)"
    reading = interpret_case(summary(flow=[flow_entry(nk_pct=40.0, failed_check=reason)]))
    for r in reading.results:
        assert r.flag == "not_interpreted"
        assert reason in r.comment
        assert "above" not in r.comment.lower() and "within" not in r.comment.lower()
        assert r.near_limit is None and not r.caveats
    assert "did not pass quality control" in reading.comments[0]


def test_non_blocking_qc_warning_is_a_caveat() -> None:
    reading = interpret_case(summary(flow=[flow_entry(warn_check="no spillover matrix")]))
    r = result(reading, "pnk-pct-lymph")
    assert r.measurement.qc_status == "warn" and r.flag == "within"
    assert any(c.code == "qc-note" and "no spillover" in c.text for c in r.caveats)


def test_suppression_is_reported_without_a_verdict() -> None:
    reading = interpret_case(summary(cytotoxicity=[plate(ivig=90.0, intralipid=2.0)]))
    for code in ("nka-suppression-ivig", "nka-suppression-intralipid"):
        r = result(reading, code)
        assert r.flag == "reported_only" and r.interval is None
        assert "no verdict" in r.comment


def test_a_limit_finer_than_the_result_is_printed_as_used(tmp_path: Path) -> None:
    """A lab's upper limit 11.72 was printed "4.0–11.7 %", and the result 11.728, printed
    11.7 and compared as printed, read "within" a limit the reader could not see; the
    expanded uncertainty read "± 0.3 %" in the comment and "± 0.26 %" in the methods table
    (audit 32). The limit is printed with its own digits, the uncertainty with one more
    decimal than the result, alike everywhere."""
    lab = tmp_path / "lab.toml"
    lab.write_text(
        '[defaults]\n"pnk-pct-lymph" = "lab-nk"\n[[interval]]\nid = "lab-nk"\n'
        'measurand = "pnk-pct-lymph"\nkind = "reference_interval"\nlower = 4.0\n'
        'upper = 11.72\nunit = "%"\nmethod = "flow"\npopulation = "lab convention"\n'
        'source = "Lab SOP (synthetic)"\n',
        "utf-8",
    )
    settings = InterpretSettings(analytical_cv={"pnk-pct-lymph": 1.1})
    reading = interpret_case(
        summary(flow=[flow_entry(nk_pct=11.728, n_lymph=10**9)]),
        intervals_path=lab,
        settings=settings,
    )
    r = result(reading, "pnk-pct-lymph")
    assert r.interval is not None and r.interval.describe(1) == "4.0–11.72 %"
    assert r.flag == "within" and r.display_value == "11.7"
    # U = 2 × 1.1% × 11.728 = 0.258: "± 0.26", as the methods table rounds it
    assert r.uncertainty is not None and "(± 0.26 %, k = 2)" in r.comment
    assert "The limit 11.72 %" in r.comment


def test_activity_has_no_default_interval_but_a_lab_may_choose_one(tmp_path: Path) -> None:
    reading = interpret_case(summary(cytotoxicity=[plate(lysis=18.0)]))
    r = result(reading, "nka-lysis-50-1")
    assert r.flag == "no_interval" and "without a flag" in r.comment
    assert result(reading, "nka-lu").flag == "no_interval"
    lab = tmp_path / "lab.toml"
    lab.write_text(
        '[defaults]\n"nka-lysis-50-1" = "lab-nka"\n[[interval]]\nid = "lab-nka"\n'
        'measurand = "nka-lysis-50-1"\nkind = "clinic_cutoff"\nupper = 15.0\nunit = "%"\n'
        'method = "51Cr"\npopulation = "lab convention"\nsource = "Lab SOP (synthetic)"\n',
        "utf-8",
    )
    reading = interpret_case(summary(cytotoxicity=[plate(lysis=18.0)]), intervals_path=lab)
    r = result(reading, "nka-lysis-50-1")
    assert r.flag == "above" and "Lab SOP (synthetic)" in r.comment
    assert "not validated as a treatment threshold" in r.comment


@pytest.mark.parametrize(
    ("lh_day", "cycle_day", "disagree"), [(9, 12, True), (7, 28, False), (7, 21, False)]
)
def test_an_lh_day_and_a_cycle_day_that_disagree_are_said(
    lh_day: int, cycle_day: int, disagree: bool
) -> None:
    """LH+9 with cycle day 12 was read as LH+9, silently: the two are 11 days from their
    28-day correspondence (cycle day = LH day + 14); more than a week apart is said. LH+7 with
    cycle day 28 (a 35-day cycle) is not."""
    b = biopsy(pct=3.0, lh_day=lh_day) | {"cycle_day": cycle_day}
    r = result(interpret_case(summary(endometrial=[b])), "unk-pct-stroma")
    said = [c for c in r.caveats if c.code == "lh-cycle-day-disagree"]
    assert bool(said) is disagree
    if disagree:
        assert f"LH+{lh_day} and cycle day {cycle_day}" in said[0].text
        assert r.flag == "within"  # read by the LH day, the more precise of the two


@pytest.mark.parametrize(
    ("lh_day", "flag", "caveat"),
    [
        (7, "within", None),
        (9, "within", None),
        (11, "no_interval", "lh-window"),
        (5, "no_interval", "lh-window"),
        (-2, "no_interval", "lh-window"),  # before the surge: "LH−2", once "LH+-2"
        (None, "no_interval", "lh-unknown"),
    ],
)
def test_biopsy_timing(lh_day: int | None, flag: str, caveat: str | None) -> None:
    reading = interpret_case(summary(endometrial=[biopsy(pct=3.0, lh_day=lh_day)]))
    r = result(reading, "unk-pct-stroma")
    assert r.flag == flag
    # later in the window than its first day: compared, with a word on timing
    late = lh_day is not None and 7 < lh_day <= 9
    assert ("lh-late-in-window" in {c.code for c in r.caveats}) is late
    if caveat is None:
        assert "1.2–4.5" in r.comment  # Lash 2016 range at LH+7 (domain brief)
    else:
        assert "Not compared with the interval" in r.comment
        assert r.patient_comment
        # the LH+7 interval is not the one applied: nothing may present it as applied
        assert r.interval is None
        assert "lash-2016-lh7" in {iv.id for iv in r.other_intervals}
    if lh_day is not None:
        assert ("LH−2" in r.comment) is (lh_day == -2) and "+-" not in r.comment
    # uNK per mm² has no interval at all
    assert result(reading, "unk-per-mm2").flag == "no_interval"


def test_unk_uses_the_inter_observer_cv() -> None:
    reading = interpret_case(summary(endometrial=[biopsy(pct=4.2, lh_day=8)]))
    r = result(reading, "unk-pct-stroma")
    # Drury 2011 CV 10.3%: U = 2 × 0.103 × 4.2 = 0.8652 ≥ |4.2 − 4.5|: near the upper limit
    assert r.uncertainty is not None
    assert r.uncertainty.expanded == pytest.approx(0.8652)
    assert r.near_limit == 4.5


@pytest.mark.parametrize(
    ("exposure", "minutes", "raised"),
    [
        ("adrenaline", 10, True),
        ("exercise", None, True),
        ("stress", 119, True),
        ("stress", 180, False),
        ("none", None, False),
    ],
)
def test_acute_exposure_caveat(exposure: str, minutes: float | None, raised: bool) -> None:
    pa: dict[str, Any] = {"acute_exposure": exposure}
    if minutes is not None:
        pa["minutes_since_exposure"] = minutes
    reading = interpret_case(summary(draw_pre_analytic=pa))
    r = result(reading, "pnk-pct-lymph")
    assert any(c.code == "acute-exposure" for c in r.caveats) is raised
    if raised:
        assert "Schedlowski 1993" in next(c.text for c in r.caveats)
        assert {"schedlowski-1993", "shakhar-2006"} <= {s.id for s in reading.evidence}


@pytest.mark.parametrize(
    ("anticoagulant", "processed", "raised"),
    [
        ("EDTA", "2026-11-03T10:30:00", True),  # 26 h > 24 h (LabCorp, EDTA)
        ("ACD", "2026-11-03T10:30:00", False),  # 26 h ≤ 48 h (LabCorp, ACD)
        (None, "2026-11-04T10:30:00", True),  # 50 h > 48 h (ARUP)
        (None, "2026-11-02T12:00:00", False),
    ],
)
def test_sample_age_caveat(anticoagulant: str | None, processed: str, raised: bool) -> None:
    pa: dict[str, Any] = {"processed": processed}
    if anticoagulant:
        pa["anticoagulant"] = anticoagulant
    reading = interpret_case(summary(draw_pre_analytic=pa))
    r = result(reading, "pnk-per-ul")
    assert any(c.code == "sample-age" for c in r.caveats) is raised
    # a sample older than the assay allows is not compared with an interval
    assert (r.flag == "no_interval") is raised


def test_a_sample_received_too_late_is_caveated_without_a_processing_time() -> None:
    """EDTA blood collected 2026-11-02 08:30 and received 2026-11-06 09:00 was at least 96.5 h
    old when processed (LabCorp allows 24 h for EDTA): the caveat says "at least", from the
    receipt; a processing time, when recorded, is the one used."""
    late = summary(draw_pre_analytic={"anticoagulant": "EDTA"})
    late["blood_draws"][0]["received"] = "2026-11-06T09:00:00"
    r = result(interpret_case(late), "pnk-per-ul")
    (age,) = [c for c in r.caveats if c.code == "sample-age"]
    assert "96 h old when the laboratory received it" in age.text
    assert "so at least that when processed" in age.text
    assert r.flag == "no_interval"
    # received in time, processed 4 days later: the processing time counts (98 h)
    processed = summary(
        draw_pre_analytic={"anticoagulant": "EDTA", "processed": "2026-11-06T10:30:00"}
    )
    processed["blood_draws"][0]["received"] = "2026-11-02T09:30:00"
    r = result(interpret_case(processed), "pnk-per-ul")
    (age,) = [c for c in r.caveats if c.code == "sample-age"]
    assert "was 98 h old when processed" in age.text
    on_time = summary(draw_pre_analytic={"anticoagulant": "EDTA"})
    on_time["blood_draws"][0]["received"] = "2026-11-02T10:00:00"
    r = result(interpret_case(on_time), "pnk-per-ul")
    assert "sample-age" not in {c.code for c in r.caveats}


def test_storage_and_treatment_caveats_and_episode_level_record() -> None:
    reading = interpret_case(
        summary(
            pre_analytic={"current_corticosteroid": True, "medication_note": "prednisolone"},
            draw_pre_analytic={"storage": "refrigerated"},
            endometrial=[biopsy()],
        )
    )
    r = result(reading, "pnk-pct-lymph")
    codes = {c.code for c in r.caveats}
    assert {"storage", "on-treatment"} <= codes  # episode record merged into the draw's
    # refrigerated blood is unacceptable (ARUP, LabCorp): reported, not compared
    assert r.flag == "no_interval" and "unacceptable" in r.comment
    assert "quenby-2005" in {s.id for s in reading.evidence}
    u = result(reading, "unk-pct-stroma")
    assert "on-treatment" in {c.code for c in u.caveats}
    assert "storage" not in {c.code for c in u.caveats}  # blood storage: flow only


def test_invalid_pre_analytic_names_the_field() -> None:
    with pytest.raises(InputError, match=r"blood_draws\[0\].*acute_exposure"):
        interpret_case(summary(draw_pre_analytic={"acute_exposure": "marathon"}))


def test_every_sentence_passes_the_wording_rules() -> None:
    reading = interpret_case(
        summary(
            flow=[flow_entry(nk_pct=30.0), flow_entry(sample="t2", failed_check="bad tube")],
            cytotoxicity=[plate()],
            endometrial=[biopsy(lh_day=12)],
            draw_pre_analytic={"acute_exposure": "stress", "current_immunotherapy": True},
        )
    )
    texts = own_comments(reading)
    for r in reading.results:
        texts += [r.comment, r.patient_comment] + [c.text for c in r.caveats]
        texts += [c.patient_text for c in r.caveats]
    assert texts
    for text in texts:
        assert check_wording(text) == [], text


def test_intervals_can_be_passed_in() -> None:
    ivs = load_intervals()
    reading = interpret_case(summary(), intervals=ivs)
    assert reading.intervals is ivs


@settings(max_examples=200, deadline=None)
@given(
    value=st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
    lower=st.floats(min_value=0.0, max_value=50.0),
    width=st.floats(min_value=0.1, max_value=50.0),
    cv=st.floats(min_value=0.5, max_value=30.0),
)
def test_flags_and_near_limit_follow_their_definitions(
    value: float, lower: float, width: float, cv: float
) -> None:
    lower, upper = round(lower, 1), round(lower + width, 1)
    ivs = load_intervals()
    iv = ReferenceInterval(
        id="h",
        measurand="pnk-pct-lymph",
        kind="reference_interval",
        lower=lower,
        upper=upper,
        unit="%",
        method="m",
        population="p",
        source="hypothesis (synthetic)",
    )
    ivs = replace(ivs, intervals={"h": iv}, defaults={"pnk-pct-lymph": "h"})
    m = Measurement(
        code="pnk-pct-lymph",
        value=value,
        unit="%",
        method="m",
        qc_status="pass",
        reportable=True,
        specimen_id="d",
        sample="s",
        episode_id="e",
        biomarker="flow",
    )
    r = interpret_measurement(m, ivs, InterpretSettings(analytical_cv={"pnk-pct-lymph": cv}))
    shown = round(value, 1)
    expected = "below" if shown < lower else "above" if shown > upper else "within"
    assert r.flag == expected
    u = 2 * cv / 100 * value
    assume(all(abs(abs(shown - lim) - u) > 1e-9 for lim in (lower, upper)))  # no float ties
    near = [lim for lim in (lower, upper) if abs(shown - lim) <= u]
    assert (r.near_limit is not None) == bool(near)
    if r.near_limit is not None:
        assert r.near_limit in near
        assert "rather than act" in r.comment


@pytest.mark.parametrize(
    ("cycle_day", "flag", "caveat"),
    [
        (21, "within", "cycle-day"),
        (19, "within", "cycle-day"),
        (26, "no_interval", "cycle-day-window"),
    ],
)
def test_biopsy_timed_by_cycle_day(cycle_day: int, flag: str, caveat: str) -> None:
    # domain brief §3: LH+7 to LH+9 is cycle day ~21 ± 2 in a 28-day cycle
    entry = biopsy(pct=3.0, lh_day=None)
    entry["cycle_day"] = cycle_day
    r = result(interpret_case(summary(endometrial=[entry])), "unk-pct-stroma")
    assert r.flag == flag
    if flag == "within":
        assert caveat in {c.code for c in r.caveats}
        assert "approximate" in next(c.text for c in r.caveats if c.code == caveat)
    else:
        assert f"cycle day {cycle_day}, outside cycle day 19–23" in r.comment


def test_a_biopsys_own_timing_stands_whole_against_the_episodes() -> None:
    """The run analyses a biopsy by its own timing when it gives one, the episode's only when
    it gives none; the report took the episode's LH day beside the biopsy's own cycle day,
    labelled it LH+7 and compared it with the LH+7 to LH+9 interval."""
    entry = biopsy(pct=3.0, lh_day=None)
    entry["cycle_day"] = 26
    own = summary(endometrial=[entry], pre_analytic={"lh_day": 7})
    r = result(interpret_case(own), "unk-pct-stroma")
    assert r.flag == "no_interval"
    assert "cycle day 26, outside cycle day 19–23" in r.comment
    assert (r.measurement.pre_analytic.lh_day, r.measurement.pre_analytic.cycle_day) == (None, 26)
    # a biopsy that gives none: the episode's stands for it
    untimed = summary(endometrial=[biopsy(pct=3.0, lh_day=None)], pre_analytic={"lh_day": 7})
    r = result(interpret_case(untimed), "unk-pct-stroma")
    assert r.measurement.pre_analytic.lh_day == 7 and r.flag == "within"


# ---- free text from a case is quoted as data, never checked or rejected ---------------------


def test_medication_note_is_quoted_not_checked() -> None:
    # a lab's note such as "prednisolone 20 mg daily" would break nkpanel's own wording rules
    # (a dose); it is the lab's record, quoted as such, and interpretation goes on
    note = "prednisolone 20 mg daily"
    reading = interpret_case(
        summary(pre_analytic={"current_corticosteroid": True, "medication_note": note})
    )
    r = result(reading, "pnk-pct-lymph")
    text = next(c.text for c in r.caveats if c.code == "on-treatment")
    assert f"medication recorded: “{note}”" in text
    patient = next(c.patient_text for c in r.caveats if c.code == "on-treatment")
    assert "20 mg" not in patient  # the patient sentence is nkpanel's own, without the note
    assert check_wording(patient) == []


def test_qc_reason_with_free_text_is_reported_not_rejected() -> None:
    reason = "operator note: tube labelled 2 mL, give 20 mg to re-run"
    reading = interpret_case(summary(flow=[flow_entry(warn_check=reason)]))
    r = result(reading, "pnk-pct-lymph")
    assert any(reason in c.text for c in r.caveats if c.code == "qc-note")


# ---- a clinic cutoff is never presented to the patient as a normal range --------------------

CUTOFF_LAB = '[defaults]\n"pnk-pct-lymph" = "ajri-1995-cutoff-12"\n'  # the bundled >12% cutoff


@pytest.mark.parametrize(
    ("value", "flag", "where"),
    [(14.0, "above", "above a cutoff (12.0 %)"), (10.0, "within", "not above a cutoff (12.0 %)")],
)
def test_cutoff_has_its_own_patient_sentence(
    tmp_path: Path, value: float, flag: str, where: str
) -> None:
    lab = tmp_path / "lab.toml"
    lab.write_text(CUTOFF_LAB, "utf-8")
    reading = interpret_case(
        summary(flow=[flow_entry(nk_pct=value, n_lymph=10**9)]), intervals_path=lab
    )
    r = result(reading, "pnk-pct-lymph")
    assert r.flag == flag
    # domain brief §1: "Cutoffs differ between clinics; none is validated as a treatment
    # threshold"
    assert where in r.patient_comment and "some clinics use" in r.patient_comment
    assert "none has been shown to guide treatment" in r.patient_comment
    assert "range" not in r.patient_comment and "healthy" not in r.patient_comment
    assert "clinic cutoff of 12.0 %" in r.comment
    assert "not validated as a treatment threshold" in r.comment
    assert check_wording(r.patient_comment) == [] and check_wording(r.comment) == []


def test_healthy_adults_only_for_a_reference_interval_of_a_healthy_population() -> None:
    reading = interpret_case(
        summary(flow=[flow_entry(nk_pct=14.0)], endometrial=[biopsy(pct=3.0, lh_day=8)])
    )
    # ARUP 0092404: a laboratory reference interval (healthy reference individuals)
    assert "healthy adults" in result(reading, "pnk-pct-lymph").patient_comment
    # Lash 2016 uNK range at LH+7: population not stated as healthy adults
    unk = result(reading, "unk-pct-stroma")
    assert unk.flag == "within" and "healthy" not in unk.patient_comment


# ---- method note on automated uNK counts ---------------------------------------------------

REAL_FIELD_TEST = Path(__file__).resolve().parents[1] / "uterine" / "test_real_dab_field.py"


def test_automated_unk_count_carries_the_method_note() -> None:
    entry = biopsy(pct=3.0, lh_day=8)
    entry["method"] = "CD56 immunohistochemistry, automated count: CD56+ cells per 100 stromal"
    reading = interpret_case(summary(endometrial=[entry]))
    for code in ("unk-pct-stroma", "unk-per-mm2"):
        r = result(reading, code)
        (note,) = [c for c in r.caveats if c.code == "method-note"]
        assert "not yet validated against a person" in note.text and "CD56" in note.text
        assert "Ki67" in note.text and "test_real_dab_field.py" in note.text
        assert note.patient_text and "computer" in note.patient_text
    assert result(reading, "unk-pct-stroma").flag == "within"  # the flag itself still stands


def test_the_method_note_numbers_are_those_of_its_source() -> None:
    # the numbers in the note must be the ones measured in tests/uterine/test_real_dab_field.py
    # (its xfail reasons record them): F1 0.58 (goal 0.80); 28.6% vs the expert's 47.8%
    from nkpanel.interpret.method_notes import load_method_notes

    (note,) = load_method_notes()
    source = REAL_FIELD_TEST.read_text("utf-8")
    assert "measured F1 0.58 (goal 0.80)" in source
    assert "measured 28.6% vs the expert's 47.8%" in source
    assert "F1 0.58 (goal 0.80)" in note.text
    assert "28.6%" in note.text and "47.8%" in note.text
    assert {(f.measured, f.goal) for f in note.figures} == {
        (0.58, 0.80),
        (28.6, None),
        (47.8, None),
    }
    assert "tests/uterine/test_real_dab_field.py" in note.source


def test_a_manual_unk_count_has_no_automated_method_note() -> None:
    reading = interpret_case(summary(endometrial=[biopsy(pct=3.0, lh_day=8)]))  # "10 fields ×400"
    assert not [c for c in result(reading, "unk-pct-stroma").caveats if c.code == "method-note"]


def test_every_fixed_sentence_of_every_branch_passes_the_wording_rules(tmp_path: Path) -> None:
    # nkpanel's own wording, checked here rather than at run time: cutoffs above and within,
    # reference intervals, method notes, serial notes on treatment, case comments
    lab = tmp_path / "lab.toml"
    lab.write_text(CUTOFF_LAB, "utf-8")
    entry = biopsy(pct=6.0, lh_day=8)
    entry["method"] = "CD56 immunohistochemistry, automated count"
    before = summary(episode="EP-1", collected="2026-06-01T08:30:00", flow=[flow_entry(nk_pct=9.0)])
    for value in (14.0, 9.0):
        reading = interpret_case(
            summary(
                flow=[flow_entry(nk_pct=value)],
                endometrial=[entry],
                pre_analytic={"current_corticosteroid": True},
            ),
            history=[before],
            intervals_path=lab,
        )
        texts = [*own_comments(reading), *reading.serial_notes, *reading.patient_serial_notes]
        texts += [t.summary for t in reading.trends]
        for r in reading.results:
            texts += [r.comment, r.patient_comment]
            texts += [c.text for c in r.caveats] + [c.patient_text for c in r.caveats]
        assert reading.serial_notes and reading.patient_serial_notes
        for text in texts:
            assert check_wording(text) == [], text


#: (measurand, the flow entry's value for it, the interval's population as said)
_AGED = {
    "pnk-pct-lymph": ({"nk_pct": 30.0}, "adults aged 16–64"),  # ARUP 0092404 states its ages
    # ARUP 2013805 says "adults" only: taken as 18 and over (audit 19: a 12-year-old's
    # CD56bright 7.7% was flagged above 0.7–6.3%, "values seen in healthy adults")
    "pnk-cd56bright-pct-nk": ({"bright": 7.7}, "adults"),
}


@pytest.mark.parametrize(
    ("code", "age", "compared"),
    [
        ("pnk-pct-lymph", 34, True),
        ("pnk-pct-lymph", 16, True),
        ("pnk-pct-lymph", 64, True),
        ("pnk-pct-lymph", 66, False),
        ("pnk-cd56bright-pct-nk", 12, False),
        ("pnk-cd56bright-pct-nk", 17, False),
        ("pnk-cd56bright-pct-nk", 18, True),
        ("pnk-cd56bright-pct-nk", 45, True),
    ],
)
def test_an_interval_of_stated_ages_is_not_applied_outside_them(
    code: str, age: int, compared: bool
) -> None:
    """An interval is applied only within the ages its population covers (domain brief §1:
    ARUP 0092404, adults aged 16–64)."""
    entry, population = _AGED[code]
    s = summary(flow=[flow_entry(**entry)])  # type: ignore[arg-type]
    s["case"]["age_years"] = age
    r = result(interpret_case(s), code)
    if compared:
        assert r.flag == "above" and r.interval is not None
    else:
        assert r.flag == "no_interval" and r.interval is None
        assert f"The patient is {age}; the interval describes {population}" in r.comment
        assert any(iv.id.startswith("arup-") for iv in r.other_intervals)


def test_a_dual_platform_count_says_the_analysers_cv_is_not_in_its_uncertainty() -> None:
    s = summary(flow=[flow_entry(per_ul=252.0, count_method="dual-platform")])
    r = result(interpret_case(s), "pnk-per-ul")
    assert r.uncertainty is not None
    assert "lymphocyte-count CV is not included" in r.uncertainty.basis
    set_cv = InterpretSettings(analytical_cv={"pnk-per-ul": 5.0})
    r = result(interpret_case(s, settings=set_cv), "pnk-per-ul")
    assert r.uncertainty is not None and "not included" not in r.uncertainty.basis


def test_a_one_sided_age_range_is_open_on_its_other_side() -> None:
    from nkpanel.interpret.flags import _age_caveats
    from nkpanel.interpret.intervals import load_intervals

    adult = (
        load_intervals()
        .intervals["arup-0092404-pct"]
        .model_copy(update={"age_min": 18, "age_max": None})
    )
    assert [c.code for c in _age_caveats(15, adult)] == ["age-outside"]
    assert _age_caveats(80, adult) == []


def test_no_sample_age_from_a_draw_dated_by_day_alone() -> None:
    """Drawn 'on 2026-11-02' and processed the next morning: anything from 9 to 33 h, so no
    age is claimed (counting from midnight once removed the interval)."""
    s = summary(collected="2026-11-02", draw_pre_analytic={"processed": "2026-11-03T09:00:00"})
    r = result(interpret_case(s), "pnk-pct-lymph")
    assert "sample-age" not in {c.code for c in r.caveats} and r.flag != "no_interval"


def test_a_limit_inside_the_counts_interval_across_fields_is_near() -> None:
    """An endometrial count carries its own 95% CI across fields (Cochran's ratio estimator):
    3.0% with 2.0–4.6 straddles the 4.5% upper limit (LH+7, the domain brief's 1.2–4.5%), so
    it is 'near' the limit although its measurement uncertainty U alone does not reach it;
    3.0% with 2.6–3.4 is not."""
    entry = biopsy(pct=3.0, lh_day=7)
    wide = entry | {"unk_percent_ci": {"lower": 2.0, "upper": 4.6, "level": 0.95}}
    r = result(interpret_case(summary(endometrial=[wide])), "unk-pct-stroma")
    assert r.uncertainty is None or r.uncertainty.expanded < 1.5  # |3.0 − 4.5|
    assert r.flag == "within" and r.near_limit == 4.5
    assert "95% confidence interval across the fields counted (2.0–4.6 %)" in r.comment
    assert "counting more fields narrows the interval" in r.comment
    assert check_wording(r.comment) == []
    narrow = entry | {"unk_percent_ci": {"lower": 2.6, "upper": 3.4, "level": 0.95}}
    r = result(interpret_case(summary(endometrial=[narrow])), "unk-pct-stroma")
    assert r.flag == "within" and r.near_limit is None


def _disagree(reading: Any) -> dict[str, list[str]]:
    return {
        r.measurement.sample: [c.text for c in r.caveats if c.code == "samples-disagree"]
        for r in reading.results
        if r.measurand.code == "pnk-pct-lymph"
    }


@pytest.mark.parametrize(
    ("second", "apart"), [(14.3, False), (15.2, False), (27.0, True), (21.5, True)]
)
def test_two_tubes_of_one_draw_that_disagree_are_said(second: float, apart: bool) -> None:
    # By hand, 20,000 lymphocyte events: u = 100·√(p(1−p)/n) points. 14%: 0.2454; 15.2%:
    # 0.2539; 27%: 0.3139. The difference's u = √(u₁² + u₂²): 0.3531 (15.2), 0.3985 (27);
    # 3u = 1.059 and 1.195. 15.2 is beyond it, but on counting alone (no tube-to-tube CV set)
    # tubes also part by pipetting and staining: said only when the two read differently
    # against the interval (ARUP 4–26%: 14 within, 27 above) or differ by more than half
    # the smaller (21.5 / 14 = 1.54: both within, but no tube-to-tube CV parts them so far),
    # to the clinician only.
    tubes = [flow_entry(sample="tube1", nk_pct=14.0), flow_entry(sample="tube2", nk_pct=second)]
    reading = interpret_case(summary(flow=tubes))
    said = _disagree(reading)
    assert bool(said["tube1"]) is apart and bool(said["tube2"]) is apart
    if apart:
        gap = f"{second - 14.0:.1f} percentage points apart"
        assert said["tube1"][0].startswith(
            f"Sample tube2 of the same specimen (draw-1) gave {second:.1f} %"
        )
        assert gap in said["tube1"][0]
        assert "percentage points; each value's: counting CV 1.8%)" in said["tube1"][0]
        assert "That uncertainty is counting alone" in said["tube1"][0]
        assert any("Samples of one specimen disagree" in c for c in reading.comments)
        for r in reading.results:
            for c in r.caveats:
                assert check_wording(c.text) == []
                # counting alone may miss tube-to-tube variation: nothing on the patient's page
                assert c.code != "samples-disagree" or c.patient_text == ""
    else:
        assert not any("disagree" in c for c in reading.comments)


def test_a_laboratorys_tube_to_tube_cv_widens_what_two_tubes_may_differ() -> None:
    # with a 5% analytical CV: u(14) = 14·√(5² + 1.753²)% = 0.742, u(15.2) = 0.803 (1.670%
    # counting); 3·√(0.742² + 0.803²) = 3.28 points, so 1.2 apart is within chance
    tubes = [flow_entry(sample="tube1", nk_pct=14.0), flow_entry(sample="tube2", nk_pct=15.2)]
    lab = InterpretSettings(analytical_cv={"pnk-pct-lymph": 5.0})
    assert _disagree(interpret_case(summary(flow=tubes), settings=lab)) == {
        "tube1": [],
        "tube2": [],
    }
    tubes[1] = flow_entry(
        sample="tube2", nk_pct=18.0
    )  # u(18) = 18·√(5² + 1.509²)% = 0.940: 4.0 > 3·√(0.742² + 0.940²) = 3.59
    reading = interpret_case(summary(flow=tubes), settings=lab)
    said = _disagree(reading)
    assert "each value's: analytical CV 5% (laboratory setting); counting CV" in said["tube1"][0]
    assert "Samples of one specimen measure the same cells" in said["tube1"][0]
    caveat = next(c for r in reading.results for c in r.caveats if c.code == "samples-disagree")
    assert caveat.patient_text.startswith("Two samples taken from the same specimen")


def test_only_reportable_results_of_different_samples_are_compared() -> None:
    withheld = flow_entry(sample="tube2", nk_pct=30.0, failed_check="flow rate unstable")
    reading = interpret_case(summary(flow=[flow_entry(sample="tube1", nk_pct=14.0), withheld]))
    assert _disagree(reading) == {"tube1": [], "tube2": []}


@pytest.mark.parametrize(
    ("per_ul", "far"), [(2300.0, True), (1400.0, False), (30.0, False), (24.0, True)]
)
def test_a_count_far_outside_its_interval_asks_for_its_inputs(per_ul: float, far: bool) -> None:
    """ARUP 0092404: 78–470 NK/µL (domain brief). Beads per test typed ×10 gave 2,300 NK/µL
    for 236, flagged only as above the interval (audit 9). Beyond 3 × 470 = 1,410 or under
    78 / 3 = 26 the result asks for its inputs to be checked for a slip."""
    reading = interpret_case(summary(flow=[flow_entry(per_ul=per_ul)]))
    r = result(reading, "pnk-per-ul")
    codes = [c.code for c in r.caveats]
    assert ("far-outside" in codes) is far
    for c in r.caveats:
        assert check_wording(c.text) == []


def test_counting_alone_is_known_from_the_uncertainty_not_its_wording() -> None:
    """A dual-platform count on counting alone says that the analyser's count "is not included
    (a laboratory sets the whole method's CV as the analytical CV)": the words "analytical CV"
    are in its basis, and the disagreement check, reading the basis, took it for a result with
    an analytical CV (its second pair of tubes then reached the patient's page). Counting alone
    is now said by the uncertainty itself: no laboratory or interval-file CV, no replicates."""
    from nkpanel.interpret import InterpretSettings
    from nkpanel.interpret.flags import uncertainty_of

    m = result(interpret_case(summary(flow=[flow_entry()])), "pnk-per-ul").measurement
    dual = replace(m, counting_cv_leaves_out="the analyser's lymphocyte count")
    u = uncertainty_of(dual, load_intervals(), InterpretSettings())
    assert u is not None and "analytical CV" in u.basis
    assert u.counting_only
    lab = InterpretSettings(analytical_cv={"pnk-per-ul": 5.0})
    u = uncertainty_of(dual, load_intervals(), lab)
    assert u is not None and not u.counting_only


def test_the_guidelines_position_is_in_the_interpretive_comment() -> None:
    """Audit 19: ESHRE's and the RCOG's positions came only in the evidence panel, page 12 of
    the demo's 14, after flags such as "H (above)" on page 1. The interpretive comment gives
    them on every report, as the evidence file words them (the sourced statements), not in
    words of its own."""
    from nkpanel.interpret.evidence import EvidenceStatement
    from nkpanel.interpret.wording import check_wording

    reading = interpret_case(summary(flow=[flow_entry()]))
    (said,) = [c for c in reading.comments if c.startswith("ESHRE's 2017 guideline")]
    assert "insufficient evidence to recommend NK cell testing" in said
    assert "should not be routinely offered outside a research context" in said
    assert "RCOG's Green-top Guideline 17 (2023)" in said and "evidence panel" in said
    assert said == guideline_comment(reading.evidence)
    assert check_wording(said, attributed=True) == []
    # a lab's evidence file with another guideline statement: the comment follows it
    own = EvidenceStatement(
        id="national-2026",
        topic="guideline",
        text="The national society's 2026 guideline advises against routine NK cell testing.",
        source="National Society guideline 2026 (synthetic example)",
    )
    reading = interpret_case(summary(flow=[flow_entry()]), evidence=[own])
    assert [c for c in reading.comments if "guideline" in c] == [
        own.text + " (Sources: the evidence panel.)"
    ]


@pytest.mark.parametrize(("pct", "flag"), [(4.9, "within"), (5.0, "above"), (5.1, "above")])
def test_an_excluded_upper_limit_is_outside(tmp_path: Path, pct: float, flag: str) -> None:
    """Quenby 2005 defines 'normal' as <5% (domain brief §3): a uNK of exactly 5.0% is not
    normal, where limits are otherwise inclusive (audit 19: it read "≤ 5.0 %")."""
    lab = tmp_path / "lab.toml"
    lab.write_text("[defaults]\n'unk-pct-stroma' = 'quenby-2005-cutoff-5'\n", "utf-8")
    s = summary(flow=[], endometrial=[biopsy(pct=pct, lh_day=8)])
    r = result(interpret_case(s, intervals_path=lab), "unk-pct-stroma")
    assert r.flag == flag and r.interval is not None
    assert r.interval.describe() == "< 5.0 % (clinic cutoff)"
    if pct == 5.0:  # at the excluded limit: not "above" it in words (review 22)
        assert r.comment.startswith("At the limit of the clinic cutoff of 5.0 %")
        assert r.patient_comment.startswith(
            "Your result is at a cutoff (5.0 %) that some clinics use, and counts as above it."
        )


def test_a_manifest_band_is_said_to_be_drawn_and_not_applied_without_contradiction() -> None:
    """Audit 19 and review 21: the report said "no reference interval has been chosen by the
    laboratory" beside a lysis figure drawing the lab's band; applying the band instead gave it
    a population the manifest never states. The band stays on the figure only, and the text
    says no interval of the lab's interval files applies, and what the band is."""
    from tests.interpret.summaries import native_plate

    entry = native_plate()
    entry["settings"] = {
        "reference": {
            "low_percent": 15.0,
            "high_percent": 25.0,
            "ratio": 50.0,
            "source": "Lab validation 2025 (n = 40)",
        }
    }
    entry["figures"] = {"SYNTH-P01": ["cytotoxicity/p1/plots/SYNTH-P01.png"]}
    r = result(interpret_case(summary(cytotoxicity=[entry])), "nka-lysis-50-1")
    assert r.flag == "no_interval" and r.interval is None
    assert "none is chosen in the laboratory's interval files" in r.comment
    assert "has been chosen by the laboratory" not in r.comment
    assert "15–25% at 50:1 (Lab validation 2025 (n = 40)) is drawn on the lysis figure" in (
        r.measurement.method
    )
    # without figures (--no-plots) nothing is drawn, and the text does not say so (review 22)
    entry["figures"] = {}
    r = result(interpret_case(summary(cytotoxicity=[entry])), "nka-lysis-50-1")
    assert "drawn" not in r.measurement.method
    assert "(Lab validation 2025 (n = 40)) is not an interval applied" in r.measurement.method


def test_a_reference_interval_excluding_its_upper_limit_says_a_value_at_it_is_outside(
    tmp_path: Path,
) -> None:
    """Review 23: for a lab's reference interval excluding its upper limit, 20.0% against
    5.0–under 20.0 was flagged H but told "Above the upper limit" (clinician) and "at the
    upper limit of the range" (patient, which reads as inside)."""
    lab = tmp_path / "lab.toml"
    lab.write_text(
        "[[interval]]\nid='lab-x'\nmeasurand='pnk-pct-lymph'\nkind='reference_interval'\n"
        "lower=5.0\nupper=20.0\nupper_exclusive=true\nunit='%'\nmethod='our TBNK tube'\n"
        "population='our controls'\nsource='Lab study 2026'\n[defaults]\n"
        "'pnk-pct-lymph'='lab-x'\n",
        "utf-8",
    )
    s = summary(flow=[flow_entry(nk_pct=20.0)])
    r = result(interpret_case(s, intervals_path=lab), "pnk-pct-lymph")
    assert r.flag == "above"
    assert r.comment.startswith("At the limit of the reference interval 5.0–under 20.0 %")
    assert "A result at this limit counts as above the range." in r.patient_comment
