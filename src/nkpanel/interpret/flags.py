"""One result against its interval: below, within or above; near a limit when the limit lies
within the result's measurement uncertainty; and the pre-analytic caveats that qualify it.

Measurement uncertainty
    The components known for a result are combined in quadrature as independent relative
    uncertainties: the lab's analytical CV for the measurand (interval file, or
    ``InterpretSettings.analytical_cv``), the biomarker's own CV (replicates), and the counting
    CV of the events behind the value. The expanded uncertainty is U = k · CV · value with
    coverage factor k = 2 (about 95% for a normal distribution; JCGM 100:2008, the GUM, §6.2–6.3).
    A result is *near a limit* when |value − limit| ≤ U: the test cannot tell on which side of
    the limit the patient lies, and the advice is to repeat rather than act.

Values are rounded to the measurand's reporting precision before they are compared with a
limit, so the flag agrees with the number printed beside it.

Wording
    The sentences written here are nkpanel's own fixed wording, checked against
    :mod:`nkpanel.interpret.wording` by the tests for every branch; the text they quote from files
    (interval sources and populations, method notes) is checked when those files load. Free text
    from a case (a medication note, a QC reason) is quoted as recorded data ("medication
    recorded: “…”") and never checked or rewritten: a lab's note is not nkpanel's statement.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from nkpanel.interpret.intervals import IntervalSet, ReferenceInterval, limit_text
from nkpanel.interpret.measurands import Measurand, measurand
from nkpanel.interpret.measurements import DayOnly, Measurement
from nkpanel.interpret.method_notes import MethodNote, notes_for
from nkpanel.interpret.preanalytic import lh_label

__all__ = [
    "SPECIMEN_CAVEATS",
    "Caveat",
    "Flag",
    "InterpretSettings",
    "Interpretation",
    "Uncertainty",
    "interpret_measurement",
    "method_caveats",
    "pre_analytic_caveats",
    "uncertainty_of",
]

Flag = Literal["below", "within", "above", "not_interpreted", "no_interval", "reported_only"]

#: Caveats about the specimen rather than the single result: a report states them once per
#: specimen.
SPECIMEN_CAVEATS = frozenset({"acute-exposure", "storage", "sample-age", "on-treatment"})

#: Adrenaline effects are back to baseline by 60–120 min (Schedlowski 1993): an exposure less
#: than this long before the draw raises the caveat.
EXPOSURE_WINDOW_MIN = 120.0


@dataclass(frozen=True)
class InterpretSettings:
    """How results are read.

    Attributes
    ----------
    coverage_factor
        k of the expanded uncertainty U = k · u (JCGM 100:2008 §6.3; 2 ≈ 95% coverage).
    analytical_cv
        Measurand code → analytical CV in %, overriding the interval file's.
    """

    coverage_factor: float = 2.0
    analytical_cv: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Uncertainty:
    """A result's relative standard uncertainty and expanded uncertainty, with its basis."""

    cv_percent: float
    expanded: float
    coverage_factor: float
    basis: str
    #: the CV is counting statistics alone: no analytical CV (laboratory or interval file)
    #: and no replicate CV, so the tubes' own variation (pipetting, staining) is left out
    counting_only: bool = False


@dataclass(frozen=True)
class Caveat:
    """A pre-analytic or quality caveat on a result.

    ``blocks_interval`` is true when the interval cannot be applied at all (a biopsy outside
    the interval's LH window, for instance); the result is then reported without a flag.
    """

    code: str
    text: str
    patient_text: str = ""
    blocks_interval: bool = False


@dataclass(frozen=True)
class Interpretation:
    """A result, read: its value as reported, the interval applied and its flag, comments."""

    measurement: Measurement
    measurand: Measurand
    reported_value: float | None
    display_value: str
    interval: ReferenceInterval | None
    other_intervals: tuple[ReferenceInterval, ...]
    flag: Flag
    near_limit: float | None
    uncertainty: Uncertainty | None
    caveats: tuple[Caveat, ...]
    comment: str
    patient_comment: str

    @property
    def flagged(self) -> bool:
        """Below or above the interval, or near one of its limits."""
        return self.flag in ("below", "above") or self.near_limit is not None

    @property
    def raised(self) -> bool:
        """Above the interval, or near its upper limit (what a stress before the draw could
        explain)."""
        near_top = self.interval is not None and self.near_limit == self.interval.upper
        return self.flag == "above" or (self.near_limit is not None and near_top)

    @property
    def flag_label(self) -> str:
        """The flag as printed in the results table."""
        return {
            "below": "L (below)",
            "within": "within",
            "above": "H (above)",
            "not_interpreted": "not interpreted",
            "no_interval": "no interval",
            "reported_only": "reported only",
        }[self.flag] + (" · near limit" if self.near_limit is not None else "")


def _fmt(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}"


def uncertainty_of(
    m: Measurement, intervals: IntervalSet, settings: InterpretSettings
) -> Uncertainty | None:
    """The combined uncertainty of ``m`` (see the module docstring), or ``None`` if unknown."""
    parts: list[tuple[float, str]] = []
    lab_cv = settings.analytical_cv.get(m.code)
    file_cv = intervals.cv_for(m.code)
    if lab_cv is not None:
        parts.append((lab_cv, f"analytical CV {lab_cv:g}% (laboratory setting)"))
    elif file_cv is not None:
        parts.append(
            (file_cv.cv_percent, f"analytical CV {file_cv.cv_percent:g}% ({file_cv.source})")
        )
    if m.cv_percent is not None and m.cv_percent > 0:
        parts.append((m.cv_percent, f"measurement CV {m.cv_percent:.1f}% (replicates)"))
    if m.counting_cv_percent is not None and m.counting_cv_percent > 0:
        parts.append((m.counting_cv_percent, f"counting CV {m.counting_cv_percent:.1f}%"))
    if not parts or m.value is None:
        return None
    total = math.sqrt(sum(p * p for p, _ in parts))
    k = settings.coverage_factor
    basis = "; ".join(b for _, b in parts)
    if m.counting_cv_leaves_out and lab_cv is None and file_cv is None:
        basis += (
            f"; {m.counting_cv_leaves_out} is not included (a laboratory sets the whole "
            "method's CV as the analytical CV)"
        )
    replicates = m.cv_percent is not None and m.cv_percent > 0
    return Uncertainty(
        cv_percent=total,
        expanded=k * total / 100.0 * abs(m.value),
        coverage_factor=k,
        basis=basis,
        counting_only=lab_cv is None and file_cv is None and not replicates,
    )


def pre_analytic_caveats(
    m: Measurement, interval: ReferenceInterval | None, intervals: IntervalSet
) -> list[Caveat]:
    """The caveats the specimen's pre-analytic record raises for this result."""
    pa = m.pre_analytic
    out: list[Caveat] = []
    blood = m.biomarker in ("flow", "cytotoxicity")
    if blood and pa.acute_exposure not in (None, "none"):
        minutes = pa.minutes_since_exposure
        if minutes is None or minutes < EXPOSURE_WINDOW_MIN:
            when = f"{minutes:.0f} min" if minutes is not None else "an unrecorded time"
            out.append(
                Caveat(
                    "acute-exposure",
                    f"{str(pa.acute_exposure).capitalize()} {when} before the draw. Adrenaline "
                    "mobilises NK cells into blood within 5 min, peaking at 15–30 min and back "
                    "to baseline by 60–120 min (Schedlowski 1993), so a raised value may reflect "
                    "this: repeat the draw at rest rather than act on this result.",
                    "You had stress, exercise or adrenaline shortly before the blood test. That "
                    "can raise NK cells for an hour or two, so a repeat test at rest is more "
                    "reliable.",
                )
            )
    if m.biomarker == "flow" and pa.storage in ("refrigerated", "frozen"):
        out.append(
            Caveat(
                "storage",
                f"Blood was {pa.storage} before analysis; refrigerated or frozen blood is "
                "unacceptable for NK immunophenotyping to ARUP and LabCorp, so the value is "
                "not compared with an interval.",
                "The blood sample was stored cold, which can make this test unreliable, so "
                "it is not compared with the usual range.",
                blocks_interval=True,
            )
        )
    # the sample's age when processed; without that record, when it reached the laboratory
    # (a lower bound: it was at least that old when processed)
    aged_at, at_least = (pa.processed, False) if pa.processed is not None else (m.received, True)
    if (
        aged_at is not None
        and m.collected is not None
        and not isinstance(m.collected, DayOnly)  # a day without its time gives no age
    ):
        limit = intervals.sample_age_limit(m.biomarker, pa.anticoagulant)
        collected = m.collected
        if (collected.tzinfo is None) != (aged_at.tzinfo is None):
            # one written with its zone, the other without: both in that zone
            zone = collected.tzinfo or aged_at.tzinfo
            collected, aged_at = collected.replace(tzinfo=zone), aged_at.replace(tzinfo=zone)
        hours = (aged_at - collected) / dt.timedelta(hours=1)
        if limit is not None and hours > limit.max_hours:
            tube = f"{pa.anticoagulant} " if pa.anticoagulant else ""
            age = (
                f"{hours:.0f} h old when the laboratory received it (no processing time "
                "recorded), so at least that when processed"
                if at_least
                else f"{hours:.0f} h old when processed"
            )
            out.append(
                Caveat(
                    "sample-age",
                    f"The {tube}sample was {age}, older than the {limit.max_hours:g} h the "
                    f"assay allows ({limit.source}); the result may not reflect the blood as "
                    "drawn, so it is not compared with an interval.",
                    "The sample was older than the test allows when it was "
                    + ("received by the laboratory" if at_least else "processed")
                    + ", so the result may be less reliable and is not compared with the usual "
                    "range.",
                    blocks_interval=True,
                )
            )
    if pa.on_treatment:
        what = " and ".join(
            w
            for w, on in (
                ("a corticosteroid", pa.current_corticosteroid),
                ("an immunotherapy", pa.current_immunotherapy),
            )
            if on
        )
        note = f" (medication recorded: “{pa.medication_note}”)" if pa.medication_note else ""
        out.append(
            Caveat(
                "on-treatment",
                f"Recorded as currently taking {what}{note}: the result describes the patient "
                "on treatment, not a baseline; read it beside earlier results (serial view).",
                "You were taking a medicine that can affect the immune system when this "
                "sample was taken, so this result is not a before-treatment value.",
            )
        )
    if interval is not None and interval.lh_window is not None:
        out += _timing_caveats(pa.lh_day, pa.cycle_day, interval)
    return out


def _age_caveats(age: int | None, interval: ReferenceInterval | None) -> list[Caveat]:
    """An interval of a stated age range (ARUP 0092404: adults aged 16–64) does not describe a
    patient outside it."""
    if interval is None or age is None or (interval.age_min is None and interval.age_max is None):
        return []
    # a bound not given is open
    if (interval.age_min is None or interval.age_min <= age) and (
        interval.age_max is None or age <= interval.age_max
    ):
        return []
    return [
        Caveat(
            "age-outside",
            f"The patient is {age}; the interval describes {interval.population} "
            f"({interval.source}), so the value is not compared with it.",
            "The usual range was measured in people of other ages than yours, so your result "
            "is not compared with it.",
            blocks_interval=True,
        )
    ]


def _timing_caveats(
    lh_day: int | None, cycle_day: int | None, interval: ReferenceInterval
) -> list[Caveat]:
    """An LH-timed interval applies only to a biopsy in its window (Moffett 2004: uNK rise
    steeply after LH+7); the cycle day stands in, approximately, when the LH day is unknown."""
    assert interval.lh_window is not None
    lo, hi = interval.lh_window
    outside = (
        "The biopsy was taken on a day of the cycle for which the usual range does not apply, "
        "so the result is not compared with it."
    )
    if lh_day is not None:
        return _disagreeing_days(lh_day, cycle_day) + _lh_caveats(lh_day, lo, hi, outside)
    return _cycle_day_caveats(cycle_day, interval, lo, hi, outside)


#: how far (days) a recorded cycle day may lie from LH day + 14 (their correspondence in a
#: 28-day cycle, domain brief: LH+7 to LH+9 is cycle day ~21 ± 2) before the two are said to
#: disagree: a week, as cycles shorter or longer than 28 days shift the correspondence
DAYS_APART = 7


def _disagreeing_days(lh_day: int, cycle_day: int | None) -> list[Caveat]:
    """Both days recorded, and more than :data:`DAYS_APART` from each other's 28-day
    correspondence (LH+7 and cycle day 12, say): one is likely a slip; the LH day is used."""
    if cycle_day is None or abs(cycle_day - (lh_day + 14)) <= DAYS_APART:
        return []
    return [
        Caveat(
            "lh-cycle-day-disagree",
            f"The record gives {lh_label(lh_day)} and cycle day {cycle_day}, "
            f"{abs(cycle_day - lh_day - 14)} days from their correspondence in a 28-day cycle "
            f"(cycle day {lh_day + 14}): one "
            "of the two is likely a slip. The LH day is used; check the record.",
            "The two dates recorded for your biopsy do not agree with each other; the result "
            "was read using the date from ovulation (LH) testing.",
        )
    ]


def _lh_caveats(lh_day: int, lo: int, hi: int, outside: str) -> list[Caveat]:
    """The caveats of an LH-timed biopsy against an interval of window LH+lo to LH+hi."""
    if lh_day == lo:
        return []
    if lo < lh_day <= hi:
        # in the window, but after its first day, while uNK are rising
        return [
            Caveat(
                "lh-late-in-window",
                f"Biopsy at {lh_label(lh_day)}, within the interval's LH+{lo} to LH+{hi} window "
                "but after its first day; uterine NK cells rise steeply after LH+7 "
                "(Moffett 2004), so a value above the range may partly reflect timing.",
                "The biopsy was taken later in the part of the cycle the usual range is "
                "for, when these cells are rising, which may raise the result.",
            )
        ]
    return [
        Caveat(
            "lh-window",
            f"Biopsy at {lh_label(lh_day)}, outside LH+{lo} to LH+{hi} for which the interval "
            "applies: uterine NK cells rise steeply after LH+7 (Moffett 2004), so the range "
            "does not apply and the value is not compared with it.",
            outside,
            blocks_interval=True,
        )
    ]


def _cycle_day_caveats(
    cycle_day: int | None, interval: ReferenceInterval, lo: int, hi: int, outside: str
) -> list[Caveat]:
    """The caveats of a biopsy timed by cycle day only (or not timed at all)."""
    window = interval.cycle_day_window
    if cycle_day is not None and window is not None:
        clo, chi = window
        if clo <= cycle_day <= chi:
            return [
                Caveat(
                    "cycle-day",
                    f"Biopsy timed by cycle day ({cycle_day}), not by the LH surge: cycle day "
                    f"{clo}–{chi} stands for LH+{lo} to LH+{hi} only in a 28-day cycle, so the "
                    "timing, and with it the interval, is approximate.",
                    "The timing of the biopsy was estimated from the day of your cycle, which "
                    "is less precise than timing from ovulation tests.",
                )
            ]
        return [
            Caveat(
                "cycle-day-window",
                f"Biopsy on cycle day {cycle_day}, outside cycle day {clo}–{chi} (LH+{lo} to "
                f"LH+{hi} in a 28-day cycle): uterine NK cells rise steeply after LH+7 "
                "(Moffett 2004), so the range does not apply and the value is not compared "
                "with it.",
                outside,
                blocks_interval=True,
            )
        ]
    return [
        Caveat(
            "lh-unknown",
            "The biopsy's LH day is not recorded, so the interval timed at "
            f"{interval.cycle_timing or f'LH+{lo} to LH+{hi}'} cannot be applied.",
            "The day of your cycle when the biopsy was taken was not recorded, so the result "
            "cannot be compared with the usual range.",
            blocks_interval=True,
        )
    ]


#: an absolute count this many times beyond a limit of its reference interval is more often an
#: input slipped by a power of ten (beads per test, sample volume, an analyser's count) than
#: a patient: said, with what to check
FAR_OUTSIDE = 3.0


def _far_outside(value: float, iv: ReferenceInterval, meas: Measurand) -> list[Caveat]:
    """A caveat on an absolute count (cells/µL) more than :data:`FAR_OUTSIDE` times above the
    upper limit of a reference interval or below its lower one: beads per test typed ×10
    gave 2,300 NK/µL for 236, flagged only as above the interval (audit 9)."""
    if "/µL" not in meas.unit or iv.kind != "reference_interval":
        return []
    high = iv.upper is not None and value > FAR_OUTSIDE * iv.upper
    low = iv.lower is not None and value < iv.lower / FAR_OUTSIDE
    if not (high or low):
        return []
    side = "above the upper" if high else "below the lower"
    return [
        Caveat(
            "far-outside",
            f"More than {FAR_OUTSIDE:g} times {side} limit of the interval: check the count's "
            "inputs (beads per test and sample volume, or the analyser's lymphocyte count) for "
            "a slip by a power of ten before reading it as the patient's.",
        )
    ]


def _limit_phrase(iv: ReferenceInterval, decimals: int) -> str:
    where = f"({iv.source}; {iv.population})"
    if iv.kind == "reference_interval":
        return f"reference interval {iv.describe(decimals)} {where}"
    if iv.lower is not None and iv.upper is not None:
        limits = iv.describe(decimals).removesuffix(" (clinic cutoff)")
        return f"clinic cutoffs {limits} {where}"
    for limit in (iv.upper, iv.lower):
        if limit is not None:
            return f"clinic cutoff of {_num(limit, decimals, iv.unit)} {where}"
    return f"clinic cutoff {where}"  # not reached: an interval has a limit (ReferenceInterval)


def _num(v: float, decimals: int, unit: str) -> str:
    """A limit with its unit (its own digits where finer than the result's)."""
    return f"{limit_text(v, decimals)} {unit}"


def _patient_sentence(
    flag: Flag, iv: ReferenceInterval, decimals: int, *, at_limit: bool = False
) -> str:
    """Where the result lies, for the patient: a clinic cutoff is never called a normal range,
    and "healthy adults" is said only of a reference interval from a healthy population.
    ``at_limit``: the result is at an upper limit the interval excludes ("normal <5%": 5.0),
    which counts as above it (reviews 22, 23)."""
    if iv.kind == "clinic_cutoff":
        lo = _num(iv.lower, decimals, iv.unit) if iv.lower is not None else None
        hi = _num(iv.upper, decimals, iv.unit) if iv.upper is not None else None
        if lo is not None and hi is not None:
            where = {
                "above": f"above the upper of the cutoffs ({lo} and {hi})",
                "below": f"below the lower of the cutoffs ({lo} and {hi})",
                "within": f"between the cutoffs ({lo} and {hi})",
            }[flag]
        else:
            side, limit = ("above", hi) if hi is not None else ("below", lo)
            where = {
                "above": f"above a cutoff ({limit})",
                "below": f"below a cutoff ({limit})",
                "within": f"not {side} a cutoff ({limit})",
            }[flag]
        if at_limit:
            where = f"at a cutoff ({hi}) that some clinics use, and counts as above it."
        else:
            where += " that some clinics use."
        return (
            f"Your result is {where} Cutoffs differ between clinics, and none has been shown "
            "to guide treatment."
        )
    where = {"within": "inside", "above": "above", "below": "below"}[flag]
    if at_limit:
        where = "at the upper limit of"
    rng = iv.describe(decimals)
    if iv.healthy_population:
        said = (
            f"Your result is {where} the reference range used for this test ({rng}), which "
            "describes values seen in healthy adults."
        )
    else:
        said = f"Your result is {where} the range used for this test ({rng})."
    return said + (" A result at this limit counts as above the range." if at_limit else "")


def method_caveats(m: Measurement, notes: Sequence[MethodNote] | None = None) -> list[Caveat]:
    """The method notes (:mod:`nkpanel.interpret.method_notes`) that apply to ``m``."""
    return [
        Caveat("method-note", f"{n.text} (Source: {n.source}.)", n.plain)
        for n in notes_for(m.code, m.method, notes)
    ]


def interpret_measurement(
    m: Measurement,
    intervals: IntervalSet,
    settings: InterpretSettings | None = None,
    age_years: int | None = None,
) -> Interpretation:
    """Read one result against the lab's default interval for its measurand.

    A result that failed QC upstream is not interpreted: the comment gives only the reason.
    An interval whose population covers stated ages is not applied to a patient (of
    ``age_years``) outside them.
    """
    settings = settings or InterpretSettings()
    meas = measurand(m.code)
    interval = intervals.default_for(m.code)
    others = tuple(iv for iv in intervals.for_measurand(m.code) if iv is not interval)
    reported = round(m.value, meas.decimals) if m.value is not None else None
    display = _fmt(reported, meas.decimals) if reported is not None else "—"

    def done(
        flag: Flag,
        comment: str,
        patient: str,
        *,
        caveats: tuple[Caveat, ...] = (),
        near: float | None = None,
        unc: Uncertainty | None = None,
        iv: ReferenceInterval | None = interval,
        not_applied: tuple[ReferenceInterval, ...] = (),
    ) -> Interpretation:
        return Interpretation(
            measurement=m,
            measurand=meas,
            reported_value=reported,
            display_value=display,
            interval=iv,
            other_intervals=not_applied + others,
            flag=flag,
            near_limit=near,
            uncertainty=unc,
            caveats=caveats,
            comment=comment,
            patient_comment=patient,
        )

    if not m.reportable or reported is None:
        reasons = "; ".join(m.not_reportable_reasons) or "not measured"
        reported, display = None, "—"  # measured, perhaps, but not reportable: no value shown
        return done(
            "not_interpreted",
            f"Not interpreted: the result did not pass quality control ({reasons}).",
            "This result could not be reported because the sample did not pass the "
            "laboratory's quality checks. The laboratory will explain what happens next.",
            iv=None,
        )
    caveats = list(pre_analytic_caveats(m, interval, intervals))
    caveats += _age_caveats(age_years, interval)
    caveats += method_caveats(m)
    caveats += [Caveat("qc-note", f"Quality note: {n}.") for n in m.qc_notes]
    unc = uncertainty_of(m, intervals, settings)
    if not meas.verdict:
        return done(
            "reported_only",
            "Reported as measured. No validated criterion exists for this measurement, so no "
            "verdict is given.",
            "This is reported as measured; there is no agreed normal range for it.",
            caveats=tuple(caveats),
            unc=unc,
            iv=None,
        )
    if interval is None:
        published = "; ".join(f"{iv.describe(meas.decimals)} ({iv.source})" for iv in others)
        return done(
            "no_interval",
            "No reference interval is applied to this measurand (none is chosen in the "
            "laboratory's interval files), so the value is reported without a flag."
            + (f" Published limits: {published}." if published else ""),
            "There is no agreed normal range for this measurement, so the result is given "
            "as a number only.",
            caveats=tuple(caveats),
            unc=unc,
        )
    blocking = [c for c in caveats if c.blocks_interval]
    if blocking:
        return done(
            "no_interval",
            "Not compared with the interval: " + " ".join(c.text for c in blocking),
            " ".join(c.patient_text for c in blocking),
            # the specimen's own caveats stay with it (the report lists them per specimen)
            caveats=tuple(
                c for c in caveats if not c.blocks_interval or c.code in SPECIMEN_CAVEATS
            ),
            unc=unc,
            # not applied: no report, table or FHIR reference range may carry it as applied
            iv=None,
            not_applied=(interval,),
        )
    limits = [x for x in (interval.lower, interval.upper) if x is not None]
    flag: Flag
    if interval.lower is not None and reported < interval.lower:
        flag = "below"
    elif interval.upper is not None and (
        reported > interval.upper or (interval.upper_exclusive and reported >= interval.upper)
    ):
        flag = "above"  # at an excluded limit too ("normal <5%": 5.0 is not normal)
    else:
        flag = "within"
    by_unc = None  # the nearest limit within the measurement uncertainty
    if unc is not None:
        close = [lim for lim in limits if abs(reported - lim) <= unc.expanded]
        by_unc = min(close, key=lambda lim: abs(reported - lim)) if close else None
    # a value with its own confidence interval from sampling (an endometrial count's ratio
    # across fields): a limit inside that interval is as undecided as one inside U
    in_ci = None
    if m.ci is not None:
        lo_ci, hi_ci, _ = m.ci
        inside = [lim for lim in limits if lo_ci <= lim <= hi_ci]
        in_ci = min(inside, key=lambda lim: abs(reported - lim)) if inside else None
    near = by_unc if by_unc is not None else in_ci
    d = meas.decimals
    phrase = _limit_phrase(interval, d)
    # at an excluded limit ("normal <5%": 5.0): not "above" it in words, nor "at the limit" as
    # if inside (reviews 22, 23)
    at_limit = interval.upper_exclusive and reported == interval.upper
    comment = {
        "within": f"Within the {phrase}.",
        "above": f"Above the upper limit of the {phrase}.",
        "below": f"Below the lower limit of the {phrase}.",
    }[flag]
    if interval.kind == "clinic_cutoff":
        side = "above" if interval.upper is not None else "below"
        comment = {
            "within": f"Not {side} the {phrase}."
            if interval.lower is None or interval.upper is None
            else f"Between the {phrase}.",
            "above": f"Above the {phrase}.",
            "below": f"Below the {phrase}.",
        }[flag]
    if at_limit:
        comment = f"At the limit of the {phrase}, which itself counts as outside."
    if interval.kind == "clinic_cutoff":
        comment += (
            " This cutoff is not validated as a treatment threshold; cutoffs differ between "
            "clinics."
        )
    patient = _patient_sentence(flag, interval, d, at_limit=at_limit)
    caveats += _far_outside(reported, interval, meas)
    if by_unc is not None and unc is not None:
        comment += (
            f" The limit {limit_text(by_unc, d)} {meas.unit} lies within the result's "
            f"measurement uncertainty (± {_fmt(unc.expanded, d + 1)} {meas.unit}, "
            f"k = {unc.coverage_factor:g}): "
            "the test cannot tell on which side of the limit the value lies, so repeat the "
            "measurement rather than act on this result."
        )
    elif in_ci is not None and m.ci is not None:
        lo_ci, hi_ci, level = m.ci
        comment += (
            f" The limit {limit_text(in_ci, d)} {meas.unit} lies within the result's {level:.0%} "
            f"confidence interval across the fields counted ({_fmt(lo_ci, d)}–{_fmt(hi_ci, d)} "
            f"{meas.unit}): the fields counted cannot tell on which side of the limit the "
            "value lies; counting more fields narrows the interval."
        )
    if near is not None:
        patient += (
            " It is so close to the edge of the range that the test's own variation could move "
            "it to the other side, so a repeat test is more useful than acting on this one."
        )
    return done(flag, comment, patient, caveats=tuple(caveats), near=near, unc=unc)
