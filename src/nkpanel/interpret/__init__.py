"""Interpretation: from measurements to what they mean, said honestly.

Reference intervals and cutoffs are data with their sources (``reference_intervals.toml``,
replaced or extended by the lab's file); each result is read below / within / above its
interval, and flagged *near a limit* when the limit lies within its measurement uncertainty;
pre-analytic caveats qualify it; a failed QC check means no interpretation, only the reason;
earlier episodes give trends; and the evidence panel (``evidence.toml``) shows the sourced
statements relevant to the results. Nothing here diagnoses or prescribes
(:mod:`nkpanel.interpret.wording`).

Example::

    >>> from nkpanel.interpret import interpret_case
    >>> reading = interpret_case(summary)                       # doctest: +SKIP
    >>> [(r.measurand.code, r.flag) for r in reading.results]   # doctest: +SKIP
    [('pnk-pct-lymph', 'within'), ...]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nkpanel._lazy import lazy_exports

if TYPE_CHECKING:
    from nkpanel.interpret.evidence import TOPICS, EvidenceStatement, load_evidence, select_evidence
    from nkpanel.interpret.flags import (
        Caveat,
        Interpretation,
        InterpretSettings,
        Uncertainty,
        interpret_measurement,
    )
    from nkpanel.interpret.intervals import IntervalSet, ReferenceInterval, load_intervals
    from nkpanel.interpret.measurands import LOCAL_CODE_SYSTEM, MEASURANDS, Measurand
    from nkpanel.interpret.measurements import Episode, Failure, Measurement, read_episode
    from nkpanel.interpret.panel import CaseInterpretation, interpret_case
    from nkpanel.interpret.preanalytic import PreAnalytic
    from nkpanel.interpret.serial import Trend, TrendPoint, trends
    from nkpanel.interpret.wording import check_wording

#: where each public name lives; imported on first use, so that the command line and the
#: case manifest do not load Jinja2, WeasyPrint and pydantic models before they are needed
_HOME = {
    "TOPICS": "evidence",
    "EvidenceStatement": "evidence",
    "load_evidence": "evidence",
    "select_evidence": "evidence",
    "Caveat": "flags",
    "Interpretation": "flags",
    "InterpretSettings": "flags",
    "Uncertainty": "flags",
    "interpret_measurement": "flags",
    "IntervalSet": "intervals",
    "ReferenceInterval": "intervals",
    "load_intervals": "intervals",
    "LOCAL_CODE_SYSTEM": "measurands",
    "MEASURANDS": "measurands",
    "Measurand": "measurands",
    "Episode": "measurements",
    "Failure": "measurements",
    "Measurement": "measurements",
    "read_episode": "measurements",
    "CaseInterpretation": "panel",
    "interpret_case": "panel",
    "PreAnalytic": "preanalytic",
    "Trend": "serial",
    "TrendPoint": "serial",
    "trends": "serial",
    "check_wording": "wording",
}

__all__ = [
    "LOCAL_CODE_SYSTEM",
    "MEASURANDS",
    "TOPICS",
    "CaseInterpretation",
    "Caveat",
    "Episode",
    "EvidenceStatement",
    "Failure",
    "InterpretSettings",
    "Interpretation",
    "IntervalSet",
    "Measurand",
    "Measurement",
    "PreAnalytic",
    "ReferenceInterval",
    "Trend",
    "TrendPoint",
    "Uncertainty",
    "check_wording",
    "interpret_case",
    "interpret_measurement",
    "load_evidence",
    "load_intervals",
    "read_episode",
    "select_evidence",
    "trends",
]

__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
