"""Two samples of one specimen that disagree: two tubes stained from one blood draw measure the
same blood, so their NK results must agree within what their uncertainties allow.

Rule
    For every measurand, the reportable results of different samples of one specimen are
    compared in pairs. The difference of two independent measurements of one quantity has the
    standard uncertainty √(u₁² + u₂²), with u = CV · value the combined standard uncertainty
    of each (:func:`~nkpanel.interpret.flags.uncertainty_of`: the lab's analytical CV where it
    is given, the counting CV of the events behind each value always). A difference of more than
    :data:`CRITICAL_Z` = 3 times that happens by chance in 0.3% of pairs of a normal
    distribution (ISO 5725-6 builds its repeatability limit the same way, with 2.8 for 95%).
    Such a pair gets a caveat on both results: a tube of another patient, or one stained or
    acquired differently, is the likelier cause, and neither value should be used before the
    tubes are checked.

Where only counting is known (no analytical CV set) the uncertainty is the smallest the values
can have, so tube-to-tube variation from pipetting and staining also passes the limit (an
audit flagged 6 of 10 ordinary duplicate pairs with a 3–4% tube-to-tube CV): such a pair is
said only when the two tubes read differently against the interval (one within, one above,
say) or differ by more than :data:`GROSS_RATIO`, to the clinician only, naming the
uncertainty used. A laboratory that knows its
tube-to-tube CV gives it as the measurand's analytical CV (interval file or
``InterpretSettings.analytical_cv``), and every pair beyond the limit is then said.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from nkpanel.interpret.flags import Caveat, Interpretation

__all__ = ["CRITICAL_Z", "DISAGREE", "samples_disagree"]

#: a difference this many standard uncertainties of the difference is beyond chance
CRITICAL_Z = 3.0
#: the caveat's code
DISAGREE = "samples-disagree"
#: two tubes of one blood whose values differ by more than this ratio are said even on
#: counting alone: at a tube-to-tube CV as high as 10% such a gap is over 3.5 SD (8.1% and
#: 21.6% of one draw, both inside the interval, were otherwise not said)
GROSS_RATIO = 1.5


def _u(r: Interpretation) -> float | None:
    """The standard uncertainty of ``r``'s value, in its unit (``None`` when unknown): from the
    uncertainty its interpretation worked out (:func:`~nkpanel.interpret.flags.uncertainty_of`)."""
    value = r.measurement.value
    if r.uncertainty is None or value is None:
        return None
    return r.uncertainty.cv_percent / 100.0 * abs(value)


def samples_disagree(results: Sequence[Interpretation]) -> tuple[Interpretation, ...]:
    """``results`` with a :data:`DISAGREE` caveat on each reportable result whose value differs
    from another sample's of the same specimen and measurand by more than :data:`CRITICAL_Z`
    standard uncertainties of the difference (see the module docstring)."""
    groups: dict[tuple[str, str, str], list[tuple[int, float]]] = defaultdict(list)
    for i, r in enumerate(results):
        m = r.measurement
        if m.reportable and m.value is not None:
            groups[(m.specimen_id, m.code, m.estimate)].append((i, float(m.value)))
    extra: dict[int, list[Caveat]] = defaultdict(list)
    for (specimen, _, _), members in groups.items():
        for (i, value_a), (j, value_b) in itertools.combinations(members, 2):
            a, b = results[i], results[j]
            if a.measurement.sample == b.measurement.sample:
                continue
            ua, ub = _u(a), _u(b)
            if ua is None or ub is None:
                continue
            diff = abs(value_a - value_b)
            u_diff = math.hypot(ua, ub)
            if diff <= CRITICAL_Z * u_diff:
                continue
            low, high = sorted((abs(value_a), abs(value_b)))
            gross = low > 0 and high / low > GROSS_RATIO
            if (
                _counting_only(a)
                and _counting_only(b)
                and a.flag_label == b.flag_label
                and not gross
            ):
                # counting alone leaves out the tubes' own variation: said where it matters,
                # when the two tubes read differently against the interval, or where no
                # pipetting or staining could part them so far
                continue
            extra[i].append(_caveat(a, b, specimen, diff, u_diff))
            extra[j].append(_caveat(b, a, specimen, diff, u_diff))
    return tuple(
        replace(r, caveats=r.caveats + tuple(extra[i])) if i in extra else r
        for i, r in enumerate(results)
    )


def _counting_only(r: Interpretation) -> bool:
    """Whether ``r``'s uncertainty is counting alone (no analytical or replicate CV)."""
    return r.uncertainty is not None and r.uncertainty.counting_only


def _caveat(
    own: Interpretation, other: Interpretation, specimen: str, diff: float, u_diff: float
) -> Caveat:
    """The caveat on ``own``. Where the uncertainty known is counting alone, tubes of one blood
    may also part by pipetting and staining, which the laboratory has not given: the
    clinician is told so, and the patient's page says nothing (a false alarm there would ask
    whether a sample was another patient's)."""
    d, unit = own.measurand.decimals, own.measurand.unit
    apart = "percentage points" if unit == "%" else unit
    basis = own.uncertainty.basis if own.uncertainty is not None else "not known"
    counting_only = _counting_only(own)
    text = (
        f"Sample {other.measurement.sample} of the same specimen ({specimen}) gave "
        f"{other.display_value} {unit} against {own.display_value} {unit} here: "
        f"{diff:.{d}f} {apart} apart, more than {CRITICAL_Z:g} times the difference's standard "
        f"uncertainty ({u_diff:.{d}f} {apart}; each value's: {basis}). "
    )
    if counting_only:
        text += (
            "That uncertainty is counting alone; tubes of one blood also part by pipetting and "
            "staining, which the laboratory has not set as an analytical CV: if the difference "
            "is beyond its tube-to-tube variation, check that both samples are this patient's "
            "and were stained and acquired alike before using either value."
        )
        return Caveat(DISAGREE, text)
    text += (
        "Samples of one specimen measure the same cells; check that both are this patient's "
        "and were stained and acquired alike before using either value."
    )
    return Caveat(
        DISAGREE,
        text,
        "Two samples taken from the same specimen gave different results; the laboratory will "
        "check them before this result is used.",
    )
