"""Serial results: each biomarker's values across a patient's episodes (before and on treatment,
say), in time order, with each change set against the measurement uncertainty of the
difference.

The uncertainty of a difference of two independent results with standard uncertainties u₁ and
u₂ is √(u₁² + u₂²) (JCGM 100:2008 §5.1, law of propagation for a difference); a change is called
larger than the measurement uncertainty when |Δ| > k·√(u₁² + u₂²).

That uncertainty is the measurement's only (counting statistics and, where known, analytical
and replicate CV). Variation within a person and before the sample reaches the laboratory is not
in it, and it is large: adrenaline mobilises NK cells into blood within 5 min and they are back
to baseline by 60–120 min (Schedlowski 1993), and the domain brief gives no within-person figure
to add. So every change sentence says so, and :func:`serial_notes` gives the notes a report
prints with the serial view, for the clinician and the patient, including that a change on
treatment is not evidence of benefit (Quenby 2005 lowered uNK with prednisolone; the
feasibility RCT of Tang 2013 found live birth 12/20 vs 8/20, not significant).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from nkpanel.interpret.flags import InterpretSettings, interpret_measurement
from nkpanel.interpret.intervals import IntervalSet
from nkpanel.interpret.measurands import MEASURANDS, Measurand
from nkpanel.interpret.measurements import Episode, time_order

__all__ = ["Trend", "TrendPoint", "episode_order", "episodes_in_order", "serial_notes", "trends"]


@dataclass(frozen=True)
class TrendPoint:
    """One result in a series."""

    episode_id: str
    specimen_id: str
    collected: dt.datetime | None
    value: float | None
    reportable: bool
    on_treatment: bool
    current: bool
    expanded_uncertainty: float | None
    #: what about the specimen makes the result not like-for-like with another (its caveat
    #: codes of :data:`NOT_LIKE_FOR_LIKE`)
    caveats: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        when = self.collected.date().isoformat() if self.collected else self.episode_id
        return when + (" (on treatment)" if self.on_treatment else "")


@dataclass(frozen=True)
class Trend:
    """A measurand's results over episodes, oldest first, with a sentence on the last change."""

    measurand: Measurand
    points: tuple[TrendPoint, ...]
    change: float | None
    change_exceeds_uncertainty: bool | None
    summary: str


def episode_order(ep: Episode, order: int) -> tuple[int, tuple[dt.date, bool, dt.datetime], int]:
    """How episodes are put in time order (undated ones last, in the order given)."""
    t = ep.collected
    if t is None:
        return (1, (dt.date.min, False, dt.datetime.min), order)
    return (0, time_order(t), order)


def episodes_in_order(current: Episode, history: Sequence[Episode]) -> list[Episode]:
    """The history and the current episode, oldest first (:func:`episode_order`)."""
    given = [*history, current]
    order = sorted(range(len(given)), key=lambda i: episode_order(given[i], i))
    return [given[i] for i in order]


def trends(
    current: Episode,
    history: Sequence[Episode],
    intervals: IntervalSet,
    settings: InterpretSettings | None = None,
) -> list[Trend]:
    """Every measurand with results in at least two episodes, in catalogue order."""
    settings = settings or InterpretSettings()
    eps = episodes_in_order(current, history)
    out = []
    for code, meas in MEASURANDS.items():
        points: list[TrendPoint] = []
        for ep in eps:
            for m in ep.measurements:
                if m.code != code:
                    continue
                read = interpret_measurement(m, intervals, settings, ep.age_years)
                unc = read.uncertainty  # worked out there (of a reportable result)
                apart = tuple(c.code for c in read.caveats if c.code in NOT_LIKE_FOR_LIKE)
                # as measured: a change worked out from values rounded for display was off
                # by a last digit (audit 19: −7.8 for −7.73), and so was its comparison
                # with the uncertainty; the text rounds each value as it prints it
                value = m.value
                points.append(
                    TrendPoint(
                        episode_id=ep.episode_id,
                        specimen_id=m.specimen_id,
                        collected=m.collected,
                        value=value if m.reportable else None,
                        reportable=m.reportable,
                        on_treatment=m.pre_analytic.on_treatment,
                        current=ep is current,
                        expanded_uncertainty=unc.expanded if unc and m.reportable else None,
                        caveats=tuple(dict.fromkeys(apart)),
                    )
                )
        if len({p.episode_id for p in points}) < 2:
            continue
        out.append(_trend(meas, points, settings.coverage_factor))
    return out


def _trend(meas: Measurand, points: list[TrendPoint], k: float) -> Trend:
    d, unit = meas.decimals, meas.unit
    usable = [p for p in points if p.value is not None]
    if len(usable) < 2:
        return Trend(meas, tuple(points), None, None, "Fewer than two reportable results.")
    a, b = usable[-2], usable[-1]
    assert a.value is not None and b.value is not None
    delta = b.value - a.value
    # a difference of two percentages is in percentage points, not per cent of the first
    diff_unit = "percentage points" if unit == "%" else unit
    text = (
        f"{a.value:.{d}f} {unit} ({a.label}) → {b.value:.{d}f} {unit} ({b.label}): "
        f"change {delta:+.{d}f} {diff_unit}"
    )
    exceeds: bool | None = None
    if a.expanded_uncertainty is not None and b.expanded_uncertainty is not None:
        # expanded uncertainties back to standard ones, combined, then expanded again
        u = math.hypot(a.expanded_uncertainty / k, b.expanded_uncertainty / k)
        exceeds = abs(delta) > k * u
        text += (
            f", {'larger' if exceeds else 'not larger'} than the measurement uncertainty of "
            f"the difference (± {k * u:.{d}f} {diff_unit}, k = {k:g}; within-person and "
            "pre-analytic variation not included)."
        )
    else:
        text += "; the measurement uncertainty of the difference is not known."
    # a result whose specimen is not like the other's (audit 19: a 30-hour-old sample, a
    # biopsy on cycle day 26 against one at LH+7) makes the change partly the specimen's
    for p in (a, b):
        if p.caveats:
            why = ", ".join(dict.fromkeys(NOT_LIKE_FOR_LIKE[c] for c in p.caveats))
            text += (
                f" The {p.label} result carries a caveat about its specimen ({why}): the "
                "change may reflect that, not the patient."
            )
    return Trend(meas, tuple(points), delta, exceeds, text)


#: caveats that make a result not like-for-like with another of the series, as said
NOT_LIKE_FOR_LIKE = {
    "acute-exposure": "stress or exercise shortly before the draw",
    "storage": "how the blood was stored",
    "sample-age": "the sample's age when analysed",
    "lh-window": "biopsy timing",
    "cycle-day-window": "biopsy timing",
    "lh-cycle-day-disagree": "biopsy timing",
    "lh-unknown": "biopsy timing not recorded",
}


#: What the serial comparison leaves out (clinician wording).
SERIAL_NOTE = (
    "Changes are set against measurement uncertainty only (counting statistics and, where "
    "known, analytical and replicate CV). Within-person and pre-analytic variation are not "
    "included: NK cells in blood change within minutes with stress or exercise (adrenaline "
    "mobilises them within 5 min, back to baseline by 60–120 min; Schedlowski 1993), so a "
    "change larger than the measurement uncertainty need not be a lasting change in the patient."
)
#: A change on treatment is not evidence of benefit (clinician wording).
TREATMENT_NOTE = (
    "A change while on treatment is not evidence of benefit: prednisolone lowered uterine NK "
    "cells from a median of 14% to 9% (Quenby 2005), but a fall in a count is not a better "
    "pregnancy outcome, and in a feasibility randomised trial live birth was 12/20 with "
    "prednisolone and 8/20 with placebo, not significant (Tang 2013)."
)
PATIENT_SERIAL_NOTE = (
    "When your results are compared over time, the comparison allows only for the test's own "
    "measurement error. Normal ups and downs in your body, and things like stress or exercise "
    "shortly before a blood test, can change NK cells within minutes and are not allowed for."
)
PATIENT_TREATMENT_NOTE = (
    "A change in your results while you were on a medicine does not show that the medicine "
    "improves the chance of a successful pregnancy; studies so far have not shown that it does."
)


def serial_notes(series: Sequence[Trend]) -> tuple[list[str], list[str]]:
    """The notes a report prints with the serial view: (clinician, patient).

    Empty when there is no trend; the treatment note only when a point is on treatment.
    """
    if not series:
        return [], []
    clinician, patient = [SERIAL_NOTE], [PATIENT_SERIAL_NOTE]
    if any(p.on_treatment for t in series for p in t.points):
        clinician.append(TREATMENT_NOTE)
        patient.append(PATIENT_TREATMENT_NOTE)
    return clinician, patient
