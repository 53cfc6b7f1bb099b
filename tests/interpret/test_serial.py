"""Serial results: before and on treatment, in time order, changes against the measurement
uncertainty of the difference (hand calculations)."""

from __future__ import annotations

import math

import pytest

from nkpanel.interpret import InterpretSettings, interpret_case
from tests.interpret.summaries import biopsy, flow_entry, summary


def test_trend_before_and_on_treatment() -> None:
    before = summary(
        episode="EP-1",
        collected="2026-06-01T08:30:00",
        flow=[flow_entry(nk_pct=20.0, n_lymph=10_000)],
    )
    on = summary(
        episode="EP-2",
        collected="2026-09-01T08:30:00",
        flow=[flow_entry(nk_pct=12.0, n_lymph=10_000)],
        pre_analytic={"current_corticosteroid": True},
    )
    latest = summary(
        episode="EP-3",
        collected="2026-11-02T08:30:00",
        flow=[flow_entry(nk_pct=11.0, n_lymph=10_000)],
        pre_analytic={"current_corticosteroid": True},
    )
    reading = interpret_case(latest, history=[on, before])  # any order in
    trend = next(t for t in reading.trends if t.measurand.code == "pnk-pct-lymph")
    assert [p.episode_id for p in trend.points] == ["EP-1", "EP-2", "EP-3"]
    assert [p.value for p in trend.points] == [20.0, 12.0, 11.0]
    assert [p.on_treatment for p in trend.points] == [False, True, True]
    assert trend.points[-1].current and not trend.points[0].current
    # last change 12 → 11; binomial CVs √((1−p)/(pN)): 12%: √(0.88/1200), 11%: √(0.89/1100)
    u12 = 12.0 * math.sqrt(0.88 / 1200)
    u11 = 11.0 * math.sqrt(0.89 / 1100)
    assert trend.change == pytest.approx(-1.0)
    expanded = 2 * math.hypot(u12, u11)  # ≈ 0.88
    assert trend.change_exceeds_uncertainty is (expanded < 1.0)
    # a difference of percentages is in percentage points
    assert "change -1.0 percentage points" in trend.summary
    assert f"± {expanded:.1f} percentage points" in trend.summary
    assert "(on treatment)" in trend.summary


def test_small_change_within_uncertainty() -> None:
    s = InterpretSettings(analytical_cv={"pnk-pct-lymph": 10.0})
    a = summary(episode="A", collected="2026-01-01T08:00:00", flow=[flow_entry(nk_pct=14.0)])
    b = summary(episode="B", collected="2026-02-01T08:00:00", flow=[flow_entry(nk_pct=15.0)])
    trend = next(
        t
        for t in interpret_case(b, history=[a], settings=s).trends
        if t.measurand.code == "pnk-pct-lymph"
    )
    # CV ≥ 10% each: 2·√(1.4² + 1.5²) > 4 ≫ 1
    assert trend.change_exceeds_uncertainty is False
    assert "not larger than the measurement uncertainty" in trend.summary


def test_unreportable_earlier_result_is_a_gap() -> None:
    a = summary(
        episode="A",
        collected="2026-01-01T08:00:00",
        flow=[flow_entry(failed_check="clogged")],
        endometrial=[biopsy(pct=14.0, collected="2026-01-05T09:00:00")],
    )
    b = summary(episode="B", endometrial=[biopsy(pct=9.0)])
    reading = interpret_case(b, history=[a])
    pct = next(t for t in reading.trends if t.measurand.code == "pnk-pct-lymph")
    assert [p.value for p in pct.points] == [None, 14.0]
    assert pct.change is None and "Fewer than two" in pct.summary
    unk = next(t for t in reading.trends if t.measurand.code == "unk-pct-stroma")
    assert unk.change == pytest.approx(-5.0)


def test_no_history_no_trends() -> None:
    assert interpret_case(summary()).trends == ()


def test_change_sentences_say_what_the_uncertainty_leaves_out() -> None:
    # only the measurement's uncertainty is in the comparison; domain brief §1: adrenaline
    # mobilises NK cells within 5 min (Schedlowski 1993), so within-person and pre-analytic
    # variation must be named as not included
    a = summary(episode="A", collected="2026-01-01T08:00:00", flow=[flow_entry(nk_pct=20.0)])
    b = summary(episode="B", collected="2026-02-01T08:00:00", flow=[flow_entry(nk_pct=11.0)])
    reading = interpret_case(b, history=[a])
    trend = next(t for t in reading.trends if t.measurand.code == "pnk-pct-lymph")
    assert trend.change_exceeds_uncertainty is True
    assert "within-person and pre-analytic variation not included" in trend.summary
    (note,) = reading.serial_notes  # nobody on treatment: no treatment note
    assert "Within-person and pre-analytic variation are not included" in note
    assert "Schedlowski 1993" in note and "within minutes" in note
    (plain,) = reading.patient_serial_notes
    assert "stress or exercise" in plain and "not allowed for" in plain


def test_a_change_on_treatment_is_not_called_evidence_of_benefit() -> None:
    # domain brief, "Treatment monitoring": Quenby 2005 lowered uNK 14% → 9%; Tang 2013 live
    # birth 12/20 vs 8/20, not significant
    a = summary(episode="A", collected="2026-01-01T08:00:00", endometrial=[biopsy(pct=14.0)])
    b = summary(
        episode="B", endometrial=[biopsy(pct=9.0)], pre_analytic={"current_corticosteroid": True}
    )
    reading = interpret_case(b, history=[a])
    assert len(reading.serial_notes) == 2
    treatment = reading.serial_notes[1]
    assert "not evidence of benefit" in treatment
    assert "Quenby 2005" in treatment and "Tang 2013" in treatment and "12/20" in treatment
    assert "does not show that the medicine" in reading.patient_serial_notes[1]


def test_no_trend_no_serial_notes() -> None:
    reading = interpret_case(summary())
    assert reading.serial_notes == () and reading.patient_serial_notes == ()


def test_history_of_another_patient_or_a_later_episode_is_refused() -> None:
    from nkpanel.errors import InputError

    now = summary(episode="SYNTH-EP-2", collected="2026-11-02T08:30:00")
    before = summary(episode="SYNTH-EP-1", collected="2026-06-01T08:30:00")
    stranger = {**before, "case": {**before["case"], "patient_id": "OTHER-9"}}
    with pytest.raises(InputError, match="is of patient OTHER-9, not SYNTH-P1"):
        interpret_case(now, history=[stranger])
    later = summary(episode="SYNTH-EP-3", collected="2027-01-10T08:30:00")
    with pytest.raises(InputError, match="collected 2027-01-10, after this episode"):
        interpret_case(now, history=[later])
    with pytest.raises(InputError, match="is the episode being reported"):
        interpret_case(now, history=[now])
    # another episode of the same minute is no earlier one (audit 19: shown as a change)
    same = summary(episode="SYNTH-EP-9", collected="2026-11-02T08:30:00")
    with pytest.raises(InputError, match="at the same time as this episode"):
        interpret_case(now, history=[same])
    assert interpret_case(now, history=[before]).trends  # the patient's own earlier episode


def test_history_given_twice_is_refused_and_time_zones_may_be_mixed() -> None:
    from nkpanel.errors import InputError

    now = summary(episode="SYNTH-EP-2", collected="2026-11-02T08:30:00")
    before = summary(episode="SYNTH-EP-1", collected="2026-06-01T08:30:00")
    with pytest.raises(InputError, match="given twice: SYNTH-EP-1"):
        interpret_case(now, history=[before, before])
    # one episode written with its zone, one without: put in order, not refused or crashing
    zoned = summary(episode="SYNTH-EP-1", collected="2026-06-01T08:30:00+01:00")
    trend = next(t for t in interpret_case(now, history=[zoned]).trends)
    assert [p.episode_id for p in trend.points] == ["SYNTH-EP-1", "SYNTH-EP-2"]


def test_an_episode_is_dated_by_its_timed_specimen_whatever_the_zones() -> None:
    """Blood at 08:30+01:00 and a plate dated by its assay day (no zone, no time): no crash,
    and the episode's date is the blood draw's time, not the plate's midnight."""
    import datetime as dt

    from nkpanel.interpret import read_episode
    from tests.interpret.summaries import native_plate

    s = summary(
        collected="2026-11-02T08:30:00+01:00",
        cytotoxicity=[native_plate() | {"assay_date": "2026-11-02"}],
    )
    ep = read_episode(s)
    assert ep.collected == dt.datetime(
        2026, 11, 2, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))
    )
    interpret_case(s)  # and the whole reading goes through


def test_serial_columns_are_in_time_order_when_an_episode_lacks_the_first_measurand() -> None:
    from nkpanel.report.document import _serial_table
    from tests.interpret.summaries import biopsy

    ep1 = summary(
        episode="EP-1",
        collected="2026-01-10T08:30:00",
        endometrial=[biopsy(collected="2026-01-20T10:00:00")],
    )
    ep2 = summary(
        episode="EP-2",
        collected="2026-03-10T08:30:00",
        flow=[],
        endometrial=[biopsy(collected="2026-03-20T10:00:00")],
    )
    ep3 = summary(
        episode="EP-3",
        collected="2026-06-10T08:30:00",
        endometrial=[biopsy(collected="2026-06-20T10:00:00")],
    )
    table = _serial_table(interpret_case(ep3, history=[ep1, ep2]))
    assert table["columns"] == ["EP-1", "EP-2", "EP-3 · this report"]


def test_a_change_is_worked_out_from_the_values_as_measured() -> None:
    """Audit 19: 20.9601% → 13.2308% was said as a change of −7.8 points (21.0 − 13.2 after
    rounding each); by hand 13.2308 − 20.9601 = −7.7293, printed −7.7."""
    now = summary(
        episode="SYNTH-EP-2", collected="2026-11-02T08:30:00", flow=[flow_entry(nk_pct=13.2308)]
    )
    before = summary(
        episode="SYNTH-EP-1", collected="2026-06-01T08:30:00", flow=[flow_entry(nk_pct=20.9601)]
    )
    (t,) = [
        t
        for t in interpret_case(now, history=[before]).trends
        if t.measurand.code == "pnk-pct-lymph"
    ]
    assert t.change == pytest.approx(-7.7293)
    assert "21.0 % (2026-06-01) → 13.2 % (2026-11-02): change -7.7 percentage points" in t.summary


def test_a_change_resting_on_a_caveated_specimen_says_so() -> None:
    """Audit 19: a change from a sample the report said "may not reflect the blood as drawn"
    (or a draw 10 min after stress) was stated as a plain change. The series now says which
    result carries a caveat about its specimen."""
    now = summary(
        episode="SYNTH-EP-2",
        collected="2026-11-02T08:30:00",
        flow=[flow_entry(nk_pct=13.0)],
        pre_analytic={"acute_exposure": "stress", "minutes_since_exposure": 10},
    )
    before = summary(
        episode="SYNTH-EP-1", collected="2026-06-01T08:30:00", flow=[flow_entry(nk_pct=21.0)]
    )
    (t,) = [
        t
        for t in interpret_case(now, history=[before]).trends
        if t.measurand.code == "pnk-pct-lymph"
    ]
    assert t.summary.endswith(
        "The 2026-11-02 result carries a caveat about its specimen (stress or exercise shortly "
        "before the draw): the change may reflect that, not the patient."
    )
    plain = summary(episode="SYNTH-EP-2", flow=[flow_entry(nk_pct=13.0)])
    (u,) = [
        t
        for t in interpret_case(plain, history=[before]).trends
        if t.measurand.code == "pnk-pct-lymph"
    ]
    assert "caveat" not in u.summary
