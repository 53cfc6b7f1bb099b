"""Measurements as interpretation sees them: one generic record per measured value, read from a
case summary (the JSON ``nkpanel run`` and ``nkpanel demo`` write).

Interpretation never looks at a biomarker's own structures: each biomarker's section of the
summary is turned into :class:`Measurement` records here, and everything downstream works on
those. The sections read:

``blood_draws[].flow[]``
    The flow biomarker's :meth:`FlowResult.summary` (NK % of lymphocytes, NK cells/µL,
    CD56bright and CD56dim % of NK, NK-like T %, QC) and ``figures`` (its gating plots, in
    gate order). Counting uncertainty is derived from the QC checks' event counts ("NK
    events", "lymphocyte events", "bead events").
``cytotoxicity[]``
    One entry per plate, with ``specific_lysis_percent_at_50_1``,
    ``lytic_units_per_1e7_effectors``, ``suppression_percent`` (``{"IVIG": …, "intralipid":
    …}``), ``lysis_by_ratio`` (``[{"effector_to_target": 50, "specific_lysis_percent": …}]``),
    ``method``, ``reportable``, ``not_reportable_reasons``, ``qc``, ``collected``, ``figures``,
    and optionally ``qc_groups`` (``[{"sample", "reportable", "qc"}]``: checks shown in the
    report's QC table, one group per condition, which do not by themselves block the entry).
``endometrial[]``
    One entry per biopsy, with ``unk_percent_of_stromal_cells``, ``unk_per_mm2_stroma``,
    ``lh_day`` (or ``cycle_day``), ``method``, ``reportable``, ``not_reportable_reasons``,
    ``qc``, ``collected``, ``figures`` (overlay thumbnails). Optionally ``estimate`` (which
    estimate the two values are, e.g. "10 random ×400 fields (Lash 2016)"),
    ``unk_percent_ci`` and ``unk_per_mm2_ci`` (``{"lower", "upper", "level"}``: the values'
    own confidence intervals across fields) and ``whole_stroma`` (``{"unk_percent_of_stromal_
    cells", "unk_per_mm2_stroma"}``: the whole stroma's values, shown beside the result,
    labelled, and never read against the interval).

The summaries the biomarker packages write themselves are read as well: a plate as
:func:`nkpanel.cytotox.manifest.run_plate_for_case` returns it (``headline`` rows per treatment:
lysis at the standard ratio, lytic units, suppression; ``samples`` for the curve and the QC
of every condition and ratio, which reach the report's QC table and, as warnings, the values
they qualify) and a biopsy
as :func:`nkpanel.uterine.manifest.run_biopsy_for_case` returns it (``uterine`` pooled summary,
``timing``, ``outputs`` with the overlay images). A biopsy's value is its across-field estimate
(``across_fields_…["estimate"]``, with its confidence interval): on a slide, the standardised
protocol's ten random ×400 fields (Lash et al. 2016), which the reference ranges come from;
the whole stroma's value is carried beside it, labelled. For field images (each image one
field) the two are one number. Where no field was counted, the whole stroma's value is read,
and said to be that.

Any entry may instead (or as well) carry ``measurements``: a list of generic records
``{"code", "value", "unit", "method", "qc_status", "reportable", "not_reportable_reasons",
"cv_percent", "qc_notes"}``; those win over the named fields for the same code, and a record's
``qc_notes`` (non-blocking warnings about that value only) join the entry's. Any entry, and
the summary itself, may carry ``pre_analytic``
(:class:`~nkpanel.interpret.preanalytic.PreAnalytic`).
Relative figure paths are relative to the folder of the case summary.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from nkpanel.errors import InputError
from nkpanel.interpret.measurands import MEASURANDS, Biomarker, measurand
from nkpanel.interpret.preanalytic import (
    PreAnalytic,
    lh_label,
    merge_pre_analytic,
    parse_pre_analytic,
)

__all__ = ["Episode", "Failure", "Measurement", "QCCheck", "QCStatus", "SampleQC", "read_episode"]

QCStatus = Literal["pass", "warn", "fail"]
SOURCE = "case summary"
#: the flow checks that, failing, withhold the absolute count only (nkpanel.flow.analyze)
ABSOLUTE_COUNT_CHECKS = frozenset(
    {"bead events", "bead population", "bead count plausible", "bead and haematology counts agree"}
)


@dataclass(frozen=True)
class Measurement:
    """One measured value of one measurand on one specimen.

    Attributes
    ----------
    code
        The measurand code (:data:`~nkpanel.interpret.measurands.MEASURANDS`).
    value
        In the measurand's unit; ``None`` when it could not be measured.
    qc_status
        ``"fail"`` when a blocking check failed (then ``reportable`` is false and
        ``not_reportable_reasons`` says why), ``"warn"`` when only a non-blocking one did.
    cv_percent
        The measurement's own coefficient of variation where the biomarker gives one
        (replicate wells, say), in %.
    counting_cv_percent
        The counting (binomial/Poisson) CV from the number of events behind the value, in %.
    """

    code: str
    value: float | None
    unit: str
    method: str
    qc_status: QCStatus
    reportable: bool
    specimen_id: str
    sample: str
    episode_id: str
    biomarker: Biomarker
    collected: dt.datetime | None = None
    #: when the specimen reached the laboratory (a blood draw's ``received``)
    received: dt.datetime | None = None
    not_reportable_reasons: tuple[str, ...] = ()
    qc_notes: tuple[str, ...] = ()
    cv_percent: float | None = None
    counting_cv_percent: float | None = None
    #: a term of the method's uncertainty the counting CV does not cover (said in the report
    #: unless the laboratory gives the method's analytical CV)
    counting_cv_leaves_out: str = ""
    #: how a flow sample was gated: ``"automated"`` or ``"template"`` ("" for other biomarkers)
    gating: str = ""
    pre_analytic: PreAnalytic = field(default_factory=PreAnalytic)
    figures: tuple[str, ...] = ()
    curve: tuple[tuple[float, float], ...] = ()
    #: which estimate ``value`` is where a specimen gives more than one (an endometrial slide:
    #: "10 random ×400 fields (Lash 2016)" or "whole stroma"); "" when there is one way
    estimate: str = ""
    #: ``value``'s own confidence interval from the specimen's sampling (the ratio estimator
    #: across fields, Cochran 1977): ``(lower, upper, level)``; ``None`` when not computed
    ci: tuple[float, float, float] | None = None
    #: other estimates of the same measurand on the same specimen, ``(label, value)``: shown
    #: beside the value, labelled, never read against the interval
    also: tuple[tuple[str, float], ...] = ()
    #: the measurand's label as this specimen's panel measured it, where it differs from the
    #: catalogue's ("NK-like T cells (CD3+ CD16/56+)" on a combined CD16+56 channel); "" when not
    label: str = ""


@dataclass(frozen=True)
class Failure:
    """A specimen file that produced no measurement, and why."""

    specimen_id: str
    source: str
    reason: str
    biomarker: Biomarker


@dataclass(frozen=True)
class QCCheck:
    """One quality check as the biomarker recorded it."""

    check: str
    passed: bool
    blocking: bool
    reason: str
    value: float | None = None
    limit: float | None = None


@dataclass(frozen=True)
class SampleQC:
    """The quality checks of one sample (an FCS file, a plate, a biopsy)."""

    specimen_id: str
    sample: str
    biomarker: Biomarker
    reportable: bool
    checks: tuple[QCCheck, ...]


@dataclass(frozen=True)
class Episode:
    """One test episode (one case summary): who, when, and every measurement."""

    episode_id: str
    patient_id: str
    age_years: int | None
    synthetic: bool
    indication: Mapping[str, Any]
    measurements: tuple[Measurement, ...]
    failures: tuple[Failure, ...]
    pre_analytic: PreAnalytic
    specimens: tuple[Mapping[str, Any], ...]
    qc: tuple[SampleQC, ...] = ()

    @property
    def collected(self) -> dt.datetime | None:
        """The earliest collection time of the episode's specimens."""
        times = [m.collected for m in self.measurements]
        return earliest(times + [s.get("collected") for s in self.specimens])


@dataclass(frozen=True)
class _Origin:
    """What every measurement read from one summary entry shares: the specimen, the episode,
    the pre-analytic record, the entry's non-blocking QC notes and its figures."""

    specimen_id: str
    sample: str
    episode_id: str
    collected: dt.datetime | None
    pre_analytic: PreAnalytic
    qc_notes: tuple[str, ...]
    figures: tuple[str, ...] = ()
    curve: tuple[tuple[float, float], ...] = ()
    received: dt.datetime | None = None

    def measurement(
        self,
        code: str,
        value: float | None,
        *,
        biomarker: Biomarker,
        method: str,
        qc_status: QCStatus,
        reportable: bool,
        reasons: tuple[str, ...],
        cv_percent: float | None = None,
        counting_cv_percent: float | None = None,
        counting_cv_leaves_out: str = "",
        gating: str = "",
        extra_notes: tuple[str, ...] = (),
        label: str = "",
    ) -> Measurement:
        """One measurement of ``code`` from this entry (in the measurand's unit), with the
        entry's QC notes and ``extra_notes`` of its own; the lysis curve goes only to the lysis
        measurands."""
        return Measurement(
            code=code,
            value=value,
            unit=measurand(code).unit,
            method=method,
            qc_status=qc_status,
            reportable=reportable,
            not_reportable_reasons=reasons,
            qc_notes=tuple(dict.fromkeys(self.qc_notes + extra_notes)),
            specimen_id=self.specimen_id,
            sample=self.sample,
            episode_id=self.episode_id,
            biomarker=biomarker,
            collected=self.collected,
            received=self.received,
            cv_percent=cv_percent,
            counting_cv_percent=counting_cv_percent,
            counting_cv_leaves_out=counting_cv_leaves_out,
            gating=gating,
            label=label,
            pre_analytic=self.pre_analytic,
            figures=self.figures,
            curve=self.curve if code.startswith("nka-lysis") else (),
        )


def _bad(where: str, cause: str) -> InputError:
    return InputError(SOURCE, f"{where}: {cause}")


class DayOnly(dt.datetime):
    """A collection recorded as a day, without a time (a biopsy's date): reports print it as
    the day it is, inventing no time of day."""


def earliest(times: Iterable[object]) -> dt.datetime | None:
    """The earliest of collection times (``None`` when none is): a day alone (a
    :class:`datetime.date`) counts as that day, after any timed collection on it
    (:func:`time_order`); values of other kinds are not times. One rule for an episode's time,
    whether read from its summary or, before a run, from its manifest (``nkpanel run`` checks
    ``--history`` against it before any work)."""
    days = [
        t if isinstance(t, dt.datetime) else DayOnly(t.year, t.month, t.day)
        for t in times
        if isinstance(t, dt.date)
    ]
    return min(days, key=time_order) if days else None


def time_order(t: dt.datetime) -> tuple[dt.date, bool, dt.datetime]:
    """A sort key for collection times of any kind: times with a zone by their UTC time,
    times without one as written; within a day, a timed collection before a day-only one (so
    an episode's blood drawn at 08:30 dates it, not the biopsy's day on the same date)."""
    u = t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo is not None else t
    return (u.date(), isinstance(t, DayOnly), u.replace(tzinfo=None))


def _time(value: Any, where: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return DayOnly(value.year, value.month, value.day)
    try:  # a day alone (date.fromisoformat takes nothing longer)
        day = dt.date.fromisoformat(str(value))
    except ValueError:
        pass
    else:
        return DayOnly(day.year, day.month, day.day)
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise _bad(where, f"not an ISO 8601 date-time: {value!r}") from None


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(where, f"expected a number, found {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise _bad(where, f"not a finite number: {value!r}")
    return v


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(where, f"expected a list, found {type(value).__name__}")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(where, f"expected an object, found {type(value).__name__}")
    return value


def _qc(
    entry: Mapping[str, Any], where: str
) -> tuple[QCStatus, bool, tuple[str, ...], tuple[str, ...]]:
    """QC status, reportable, blocking reasons and non-blocking notes of a summary entry."""
    flags = [_mapping(f, f"{where}.qc[{i}]") for i, f in enumerate(_list(entry.get("qc"), where))]
    reasons = tuple(str(r) for r in _list(entry.get("not_reportable_reasons"), where))
    reasons += tuple(
        str(f.get("reason", f.get("check", "")))
        for f in flags
        if f.get("blocking", True)
        and not f.get("passed", True)
        and str(f.get("reason", "")) not in reasons
    )
    reportable = bool(entry.get("reportable", not reasons)) and not reasons
    notes = tuple(
        str(f.get("reason", f.get("check", "")))
        for f in flags
        if not f.get("blocking", True) and not f.get("passed", True)
    ) + tuple(str(n) for n in _list(entry.get("notes"), where))
    status: QCStatus = "fail" if not reportable else ("warn" if notes else "pass")
    return status, reportable, reasons, notes


def _sample_qc(
    entry: Mapping[str, Any], where: str, specimen_id: str, biomarker: Biomarker
) -> SampleQC:
    _, reportable, _, _ = _qc(entry, where)
    checks = []
    for i, raw in enumerate(_list(entry.get("qc"), where)):
        f = _mapping(raw, f"{where}.qc[{i}]")
        value, limit = f.get("value"), f.get("limit")
        checks.append(
            QCCheck(
                check=str(f.get("check", "")),
                passed=bool(f.get("passed", True)),
                blocking=bool(f.get("blocking", True)),
                reason=str(f.get("reason", "")),
                value=_number(value, f"{where}.qc[{i}].value"),
                limit=_number(limit, f"{where}.qc[{i}].limit"),
            )
        )
    return SampleQC(
        specimen_id, str(entry.get("sample", specimen_id)), biomarker, reportable, tuple(checks)
    )


def _sample_qcs(
    entry: Mapping[str, Any], where: str, specimen_id: str, biomarker: Biomarker
) -> list[SampleQC]:
    """The entry's own checks, and one record per ``qc_groups`` entry (a plate's conditions)."""
    groups = _list(entry.get("qc_groups"), f"{where}.qc_groups")
    out = []
    if not groups or _list(entry.get("qc"), where):
        out.append(_sample_qc(entry, where, specimen_id, biomarker))
    for i, raw in enumerate(groups):
        gw = f"{where}.qc_groups[{i}]"
        g = _mapping(raw, gw)
        own = _sample_qc(g, gw, specimen_id, biomarker)
        out.append(
            SampleQC(
                specimen_id,
                str(g.get("sample", specimen_id)),
                biomarker,
                bool(g.get("reportable", own.reportable)),
                own.checks,
            )
        )
    return out


def _event_count(entry: Mapping[str, Any], check: str) -> float | None:
    for f in entry.get("qc") or ():
        if isinstance(f, Mapping) and f.get("check") == check:
            v = f.get("value")
            if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
                return float(v)
    return None


def _binomial_cv(fraction: float, n_parent: float | None) -> float | None:
    """CV (%) of a proportion ``fraction`` counted among ``n_parent`` events.

    The binomial SD of a proportion is √(p(1−p)/N), so CV = √((1−p)/(pN)); for small p this is
    the Poisson CV 1/√n of the n = pN events counted (counting statistics, as in the QC
    defaults of :mod:`nkpanel.flow.qc`).
    """
    if n_parent is None or not 0 < fraction < 1:
        return None
    return 100.0 * math.sqrt((1.0 - fraction) / (fraction * n_parent))


def _flow_measurements(
    entry: Mapping[str, Any],
    *,
    where: str,
    draw_id: str,
    episode_id: str,
    collected: dt.datetime | None,
    pre: PreAnalytic,
    received: dt.datetime | None = None,
) -> list[Measurement]:
    status, reportable, reasons, notes = _qc(entry, where)
    sample = str(entry.get("sample", draw_id))
    gating = str(entry.get("gating", "automated"))
    count_method = str(entry.get("absolute_count_method", "none"))
    # which channel carried which marker (summaries written before it was kept have none):
    # one channel for CD16 and CD56 (a TBNK kit) gates CD3+ CD16/56+ cells, not CD3+ CD56+
    panel = _mapping(entry.get("markers") or {}, f"{where}.markers")
    combined = panel.get("CD16") is not None and panel.get("CD16") == panel.get("CD56")
    nk_cells = "CD3− CD16/56+ lymphocytes" if combined else "CD3− CD56+ and/or CD16+ lymphocytes"
    base_method = f"flow cytometry, {gating} gating ({nk_cells})"
    labels = (
        {
            "pnk-nklike-t-pct-lymph": "NK-like T cells (CD3+ CD16/56+: CD16 and CD56 on one "
            "channel), % of lymphocytes (reported apart from NK cells)"
        }
        if combined
        else {}
    )
    # which template gate plays which role is provenance, part of the method, not a QC note
    template_roles = _mapping(entry.get("template_roles") or {}, f"{where}.template_roles")
    template = str(entry.get("template") or "template")
    roles = tuple(f"template {template}: {r} = gate {g!r}" for r, g in template_roles.items())
    if not roles:  # summaries written before the roles had a key of their own kept them as notes
        roles = tuple(n for n in notes if n.startswith("template ") and " = gate " in n)
        notes = tuple(n for n in notes if n not in roles)
        if roles and status == "warn" and not notes:
            status = "pass"
    if roles:
        base_method += "; " + "; ".join(roles)
    n_nk = _event_count(entry, "NK events")
    n_lymph = _event_count(entry, "lymphocyte events")
    n_beads = _event_count(entry, "bead events")

    def num(key: str) -> float | None:
        return _number(entry.get(key), f"{where}.{key}")

    nk_pct = num("nk_percent_of_lymphocytes")
    per_ul = num("nk_cells_per_ul")
    bright = num("cd56bright_percent_of_nk")
    dim = num("cd56dim_percent_of_nk")
    nklt = num("nk_like_t_percent_of_lymphocytes")

    cv_pct = _binomial_cv(nk_pct / 100, n_lymph) if nk_pct is not None else None
    cv_abs: float | None = None
    if count_method == "bead" and n_nk and n_beads:
        cv_abs = 100.0 * math.sqrt(1.0 / n_nk + 1.0 / n_beads)  # Poisson, events and beads
    elif count_method == "dual-platform":
        cv_abs = cv_pct  # flow part only (the analyser's CV: counting_cv_leaves_out below)
    abs_method = {
        "bead": "single-platform bead count (cells/µL = cells/beads × beads per test/volume)",
        "dual-platform": "dual platform: % of lymphocytes × haematology lymphocyte count",
    }.get(count_method, "no absolute count")
    rows: list[tuple[str, float | None, str, float | None]] = [
        ("pnk-pct-lymph", nk_pct, base_method, cv_pct),
        ("pnk-per-ul", per_ul, f"{base_method}; {abs_method}", cv_abs),
        (
            "pnk-cd56bright-pct-nk",
            bright,
            base_method,
            _binomial_cv(bright / 100, n_nk) if bright is not None else None,
        ),
        (
            "pnk-cd56dim-pct-nk",
            dim,
            base_method,
            _binomial_cv(dim / 100, n_nk) if dim is not None else None,
        ),
        (
            "pnk-nklike-t-pct-lymph",
            nklt,
            f"flow cytometry, CD3+ {'CD16/56+' if combined else 'CD56+'} lymphocytes",
            _binomial_cv(nklt / 100, n_lymph) if nklt is not None else None,
        ),
    ]
    figures = tuple(str(f) for f in _list(entry.get("figures"), f"{where}.figures"))
    # why a value asked for is missing: a failed check that withholds it (the bead count, or
    # a count the beads give outside every blood count)
    withheld = {
        "pnk-per-ul": tuple(
            str(f.get("reason"))
            for f in _list(entry.get("qc"), where)
            if isinstance(f, Mapping)
            and f.get("check") in ABSOLUTE_COUNT_CHECKS
            and not f.get("passed")
        )
    }
    # the counts' own checks are notes on the count alone: percentages use no beads (audit 32
    # found "999 counting-bead events" on NK %, CD56bright % and NK-like T %)
    count_notes = tuple(n for n in notes if n in withheld["pnk-per-ul"])
    origin = _Origin(
        draw_id,
        sample,
        episode_id,
        collected,
        pre,
        tuple(n for n in notes if n not in count_notes),
        figures,
        received=received,
    )
    out = []
    for code, value, method, cv in rows:
        own = count_notes if code == "pnk-per-ul" else ()
        if status == "warn" and not (origin.qc_notes or own):
            code_status: QCStatus = "pass"
        else:
            code_status = status
        if value is None and reportable and not withheld.get(code):
            # not measured (no count asked for, no such gate or channel in the panel or the
            # template), which is not a failed check: nothing to report
            continue
        out.append(
            origin.measurement(
                code,
                value,
                biomarker="flow",
                method=method,
                qc_status=code_status,
                reportable=reportable and value is not None,
                reasons=reasons
                or (() if value is not None else withheld.get(code) or ("value not measured",)),
                extra_notes=own,
                counting_cv_percent=cv,
                counting_cv_leaves_out=(
                    "the haematology analyser's lymphocyte-count CV"
                    if code == "pnk-per-ul" and count_method == "dual-platform"
                    else ""
                ),
                gating=gating,
                label=labels.get(code, ""),
            )
        )
    return out


_CYTO_FIELDS = {
    "nka-lysis-50-1": "specific_lysis_percent_at_50_1",
    "nka-lu": "lytic_units_per_1e7_effectors",
}
_SUPPRESSION = {"ivig": "nka-suppression-ivig", "intralipid": "nka-suppression-intralipid"}
_ENDO_FIELDS = {
    "unk-pct-stroma": "unk_percent_of_stromal_cells",
    "unk-per-mm2": "unk_per_mm2_stroma",
}


_ENDO_CI = {"unk-pct-stroma": "unk_percent_ci", "unk-per-mm2": "unk_per_mm2_ci"}


def _ci(value: Any, estimate: float | None, where: str) -> tuple[float, float, float] | None:
    """``(lower, upper, level)`` of a confidence interval record, checked to hold its own
    estimate (an interval beside another estimate's value is refused); ``None`` without
    bounds."""
    if value is None:
        return None
    rec = _mapping(value, where)
    lower = _number(rec.get("lower"), f"{where}.lower")
    upper = _number(rec.get("upper"), f"{where}.upper")
    level = _number(rec.get("level", 0.95), f"{where}.level")
    if lower is None or upper is None:
        return None
    if level is None or not 0 < level < 1:
        raise _bad(f"{where}.level", f"a confidence level between 0 and 1, found {level!r}")
    if lower > upper:
        raise _bad(where, f"lower bound {lower:g} above the upper bound {upper:g}")
    if estimate is not None and not lower - 1e-9 <= estimate <= upper + 1e-9:
        raise _bad(
            where,
            f"the interval {lower:g}–{upper:g} does not hold the value {estimate:g} beside it: "
            "an interval belongs to its own estimate",
        )
    return (lower, upper, level)


def _endometrial_details(
    biopsy: Mapping[str, Any], named: Mapping[str, float | None], where: str
) -> dict[str, dict[str, Any]]:
    """Per measurand code, what qualifies a biopsy's value: which estimate it is, its own
    confidence interval, and the whole stroma's value shown beside it."""
    estimate = biopsy.get("estimate")
    if estimate is not None and not isinstance(estimate, str):
        raise _bad(f"{where}.estimate", f"expected text, found {estimate!r}")
    whole = _mapping(biopsy.get("whole_stroma") or {}, f"{where}.whole_stroma")
    out: dict[str, dict[str, Any]] = {}
    for code, key in _ENDO_FIELDS.items():
        d: dict[str, Any] = {}
        if estimate:
            d["estimate"] = estimate
        ci = _ci(biopsy.get(_ENDO_CI[code]), named.get(code), f"{where}.{_ENDO_CI[code]}")
        if ci is not None:
            d["ci"] = ci
        w = _number(whole.get(key), f"{where}.whole_stroma.{key}")
        if w is not None:
            d["also"] = (("whole stroma", w),)
        if d:
            out[code] = d
    return out


def _generic(
    entry: Mapping[str, Any],
    *,
    where: str,
    biomarker: Biomarker,
    specimen_id: str,
    episode_id: str,
    collected: dt.datetime | None,
    pre: PreAnalytic,
    named: Mapping[str, float | None],
    default_method: str,
    curve: tuple[tuple[float, float], ...] = (),
    details: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Measurement]:
    """Measurements of a cytotoxicity or endometrial entry: named fields, then the generic list.

    ``details`` (code → :class:`Measurement` fields) qualify a named field's value: which
    estimate it is, its confidence interval, the other estimates shown beside it. A record of
    the generic list replaces the named value, and its details with it."""
    status, reportable, reasons, notes = _qc(entry, where)
    figures = tuple(str(f) for f in _list(entry.get("figures"), where))
    sample = str(entry.get("sample", specimen_id))
    method = str(entry.get("method", default_method))
    cv_entry = _number(entry.get("cv_percent"), f"{where}.cv_percent")
    origin = _Origin(specimen_id, sample, episode_id, collected, pre, notes, figures, curve)
    found: dict[str, Measurement] = {}
    for code, value in named.items():
        if value is None and reportable:
            continue
        found[code] = origin.measurement(
            code,
            value,
            biomarker=biomarker,
            method=method,
            qc_status=status,
            reportable=reportable and value is not None,
            reasons=reasons,
            cv_percent=cv_entry,
        )
        if details and code in details:
            found[code] = replace(found[code], **details[code])
    for i, raw in enumerate(_list(entry.get("measurements"), where)):
        w = f"{where}.measurements[{i}]"
        rec = _mapping(raw, w)
        code = str(rec.get("code", ""))
        if code not in MEASURANDS:
            raise _bad(w, f"unknown measurand code {code!r}; known: {', '.join(MEASURANDS)}")
        m = MEASURANDS[code]
        unit = str(rec.get("unit", m.unit))
        if unit != m.unit:
            raise _bad(w, f"{code} must be in {m.unit!r}, found {unit!r}")
        value = _number(rec.get("value"), f"{w}.value")
        own_reasons = tuple(str(r) for r in _list(rec.get("not_reportable_reasons"), w))
        own_notes = tuple(str(n) for n in _list(rec.get("qc_notes"), f"{w}.qc_notes"))
        rec_status = str(rec.get("qc_status", status))
        if rec_status not in ("pass", "warn", "fail"):
            raise _bad(w, f"qc_status must be pass, warn or fail, found {rec_status!r}")
        if own_notes and rec_status == "pass":
            rec_status = "warn"
        ok = (
            bool(rec.get("reportable", rec_status != "fail"))
            and reportable
            and value is not None
            and rec_status != "fail"
        )
        found[code] = origin.measurement(
            code,
            value,
            biomarker=m.biomarker,
            method=str(rec.get("method", method)),
            qc_status="fail" if not ok else rec_status,  # type: ignore[arg-type]
            reportable=ok,
            reasons=reasons + own_reasons or (() if ok else ("not reportable (no reason given)",)),
            cv_percent=_number(rec.get("cv_percent"), f"{w}.cv_percent") or cv_entry,
            extra_notes=own_notes,
        )
    return list(found.values())


def _curve(entry: Mapping[str, Any], where: str) -> tuple[tuple[float, float], ...]:
    points = []
    for i, raw in enumerate(_list(entry.get("lysis_by_ratio"), where)):
        rec = _mapping(raw, f"{where}.lysis_by_ratio[{i}]")
        et = _number(rec.get("effector_to_target"), f"{where}.lysis_by_ratio[{i}]")
        lysis = _number(rec.get("specific_lysis_percent"), f"{where}.lysis_by_ratio[{i}]")
        if et is not None and lysis is not None:
            points.append((et, lysis))
    return tuple(sorted(points))


def _agent_code(treatment: str) -> str | None:
    t = treatment.casefold()
    if t.startswith("ivig"):
        return "nka-suppression-ivig"
    if t.startswith("intralipid"):
        return "nka-suppression-intralipid"
    return None


#: Plate checks that concern one derived quantity only: the lytic units rest on the whole curve,
#: lysis at the standard ratio and suppression on that ratio.
_LU_ONLY = frozenset({"lytic_units_extrapolated"})
_STANDARD_RATIO_ONLY = frozenset({"standard_ratio_extrapolated"})


def _ratio_label(r: Mapping[str, Any]) -> str:
    label = r.get("ratio_label")
    if label:
        return str(label)
    ratio = r.get("ratio")
    return f"{ratio:g}:1" if isinstance(ratio, int | float) else "?"


def _cytotox_checks(
    condition: Mapping[str, Any], where: str
) -> tuple[list[dict[str, Any]], list[tuple[str, float | None, Mapping[str, Any]]]]:
    """A condition's checks as the QC table shows them (ratio checks named with their ratio),
    and every check with the ratio it belongs to (``None``: the whole condition)."""
    shown: list[dict[str, Any]] = []
    tagged: list[tuple[str, float | None, Mapping[str, Any]]] = []
    for i, raw in enumerate(_list(condition.get("qc"), where)):
        f = _mapping(raw, f"{where}.qc[{i}]")
        shown.append(dict(f))
        tagged.append((str(f.get("check", "")), None, f))
    for j, raw_r in enumerate(_list(condition.get("ratios"), where)):
        r = _mapping(raw_r, f"{where}.ratios[{j}]")
        ratio = _number(r.get("ratio"), f"{where}.ratios[{j}].ratio")
        for i, raw in enumerate(_list(r.get("qc"), f"{where}.ratios[{j}]")):
            f = _mapping(raw, f"{where}.ratios[{j}].qc[{i}]")
            shown.append({**f, "check": f"{f.get('check', '')} at {_ratio_label(r)}"})
            tagged.append((str(f.get("check", "")), ratio, f))
    return shown, tagged


def _cytotox_notes(
    conditions: Sequence[tuple[str, Mapping[str, Any], list[Any]]],
    *,
    lytic_units: bool,
    standard_ratio: float | None,
) -> list[str]:
    """The non-blocking warnings that qualify one derived value (blocking failures already make
    the headline row not reportable, with its reasons).

    ``conditions`` are ``(treatment, condition, tagged checks)`` of the conditions the value
    rests on. Lytic units rest on the whole fitted curve; lysis at the standard ratio and
    suppression on that ratio only.
    """
    notes: list[str] = []
    for treatment, cond, tagged in conditions:
        prefix = "" if treatment == "none" else f"{treatment}: "
        for check, ratio, f in tagged:
            if f.get("passed", True) or f.get("blocking", True):
                continue
            if check in _LU_ONLY and not lytic_units:
                continue
            if check in _STANDARD_RATIO_ONLY and lytic_units:
                continue
            if (
                ratio is not None
                and not lytic_units
                and (standard_ratio is None or not math.isclose(ratio, standard_ratio))
            ):
                continue
            text = str(f.get("reason") or check)
            if check == "lytic_units_extrapolated":
                text += (
                    "; the lytic units rest on the fitted curve beyond the measured ratios, not "
                    "on measured wells"
                )
            notes.append(prefix + text)
        lu = cond.get("lytic_units")
        if (
            lytic_units
            and isinstance(lu, Mapping)
            and lu.get("extrapolated")
            and not any(c == "lytic_units_extrapolated" for c, _, _ in tagged)
        ):
            notes.append(
                f"{prefix}lytic units extrapolated beyond the tested ratios: they rest on the "
                "fitted curve, not on measured wells"
            )
    return list(dict.fromkeys(notes))


def _from_cytotox(entry: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[Failure]]:
    """A plate summary of :mod:`nkpanel.cytotox` in the documented cytotoxicity shape.

    The plate's QC is carried over: every condition's checks (controls, spontaneous/maximum
    release, fit) and every ratio's (replicate CV, outliers, negative lysis) become a QC group
    of the sample, shown in the report's QC table; the non-blocking warnings that qualify a
    value (an extrapolated lytic unit, an outlier well at 50:1, …) become that value's QC notes.
    """
    pid = str(entry.get("id", "plate"))
    rows = [_mapping(h, f"{where}.headline") for h in _list(entry.get("headline"), where)]
    samples = list(dict.fromkeys(str(h.get("sample")) for h in rows))
    if not entry.get("sample_id") and len(samples) > 1:
        raise _bad(
            where,
            f"plate {pid} holds {len(samples)} samples ({', '.join(samples)}) and names no "
            "sample_id: whose result it is cannot be told",
        )
    wanted = entry.get("sample_id") or (rows[0].get("sample") if rows else None)
    rows = [h for h in rows if h.get("sample") == wanted]
    failures = [
        Failure(
            pid,
            f"{pid}: sample {f.get('sample') or '(plate)'}",
            "; ".join(str(r) for r in _list(f.get("reasons"), where)),
            "cytotoxicity",
        )
        for f in (_mapping(x, f"{where}.failures") for x in _list(entry.get("failures"), where))
        if f.get("sample") in (wanted, "", None)
    ]
    base = next((h for h in rows if str(h.get("treatment", "none")) == "none"), None)
    assay = str(entry.get("assay") or "killing assay")
    method = (
        f"NK-cell killing ({assay}) of {entry.get('target_cells') or 'K562'} targets by "
        f"{entry.get('effector_cells') or 'patient'} effectors"
    )
    settings = entry.get("settings")
    band = settings.get("reference") if isinstance(settings, Mapping) else None
    if isinstance(band, Mapping) and band.get("low_percent") is not None:
        # drawn on the plate's figure, where there is one; the report's intervals come from
        # the interval files
        drawn = (
            any(entry.get("figures") or {}) if isinstance(entry.get("figures"), Mapping) else False
        )
        method += (
            f"; the laboratory's band {band.get('low_percent'):g}–{band.get('high_percent'):g}% "
            f"at {band.get('ratio'):g}:1 ({band.get('source') or 'no source given'}) "
            + ("is drawn on the lysis figure and " if drawn else "")
            + "is not an interval applied in this report"
        )

    # the sample's conditions, with their checks
    sample_entry: Mapping[str, Any] | None = None
    for k, s in enumerate(_list(entry.get("samples"), where)):
        if isinstance(s, Mapping) and s.get("sample") == wanted:
            sample_entry = _mapping(s, f"{where}.samples[{k}]")
    conditions: dict[str, tuple[Mapping[str, Any], list[Any]]] = {}
    qc_groups: list[dict[str, Any]] = []
    sample_notes: list[str] = []
    if sample_entry is not None:
        sample_notes = [str(n) for n in _list(sample_entry.get("notes"), where)]
        for k, raw in enumerate(_list(sample_entry.get("conditions"), where)):
            cw = f"{where}.samples[{wanted}].conditions[{k}]"
            c = _mapping(raw, cw)
            treatment = str(c.get("treatment", "none"))
            shown, tagged = _cytotox_checks(c, cw)
            conditions[treatment] = (c, tagged)
            label = "no additive" if treatment == "none" else f"with {treatment}"
            spm = _number(c.get("spontaneous_percent_of_maximum"), f"{cw}.spontaneous")
            qc_groups.append(
                {
                    "sample": f"{wanted}, {label}"
                    + (f" (spontaneous release {spm:.1f}% of maximum)" if spm is not None else ""),
                    "reportable": bool(c.get("reportable", True)),
                    "qc": shown,
                }
            )

    def on(*treatments: str) -> list[tuple[str, Mapping[str, Any], list[Any]]]:
        return [(t, *conditions[t]) for t in treatments if t in conditions]

    records: list[dict[str, Any]] = []

    def rec(
        code: str, value: Any, row: Mapping[str, Any], note: str = "", qc: Sequence[str] = ()
    ) -> None:
        if value is None and row.get("reportable", True):
            return  # not measured (e.g. no lytic units without targets per well): nothing to say
        records.append(
            {
                "code": code,
                "value": value,
                "reportable": bool(row.get("reportable", True)) and value is not None,
                "not_reportable_reasons": list(row.get("not_reportable_reasons") or [])
                or ([] if value is not None else ["not measured"]),
                "method": method + note,
                "qc_notes": list(qc),
            }
        )

    curve: list[dict[str, Any]] = []
    cv = None
    if base is not None:
        ratio = _number(base.get("standard_ratio"), f"{where}.headline.standard_ratio")
        if ratio is not None and math.isclose(ratio, 50.0):
            how = base.get("lysis_at_standard_ratio_method") or "measured"
            rec(
                "nka-lysis-50-1",
                base.get("lysis_at_standard_ratio_percent"),
                base,
                f"; lysis at 50:1 {how}",
                _cytotox_notes(on("none"), lytic_units=False, standard_ratio=ratio),
            )
        rec(
            "nka-lu",
            base.get("lu_per_1e7_effectors"),
            base,
            f"; lytic units at {base.get('lu_level_percent')}% lysis (Pross 1981)",
            _cytotox_notes(on("none"), lytic_units=True, standard_ratio=ratio),
        )
        if sample_entry is not None:
            for c in _list(sample_entry.get("conditions"), where):
                if isinstance(c, Mapping) and str(c.get("treatment", "none")) == "none":
                    for r in _list(c.get("ratios"), where):
                        if isinstance(r, Mapping) and r.get("mean_lysis_percent") is not None:
                            curve.append(
                                {
                                    "effector_to_target": r.get("ratio"),
                                    "specific_lysis_percent": r.get("mean_lysis_percent"),
                                }
                            )
                            if r.get("ratio") == 50 and r.get("cv_lysis_percent") is not None:
                                cv = r.get("cv_lysis_percent")
    for h in rows:
        treatment = str(h.get("treatment", ""))
        code = _agent_code(treatment)
        if code is not None:
            ok = dict(h)
            if base is not None and not base.get("reportable", True):
                ok["reportable"] = False
                ok["not_reportable_reasons"] = list(base.get("not_reportable_reasons") or [])
            std = h.get("standard_ratio")
            std_ratio = float(std) if isinstance(std, int | float) else None
            rec(
                code,
                h.get("suppression_at_standard_ratio_percent"),
                ok,
                f"; {treatment} added in vitro, suppression at {std_ratio:g}:1"
                if std_ratio is not None
                else f"; {treatment} added in vitro",
                _cytotox_notes(on("none", treatment), lytic_units=False, standard_ratio=std_ratio),
            )
    if cv is not None:
        for r in records:
            if r["code"] == "nka-lysis-50-1":
                r["cv_percent"] = cv
    by_sample = _mapping(entry.get("figures") or {}, f"{where}.figures")
    figures = [
        str(f)
        for name, paths in by_sample.items()
        if wanted is None or name == str(wanted)
        for f in _list(paths, f"{where}.figures.{name}")
    ]
    doc = {
        "id": pid,
        "sample": str(wanted or pid),
        "collected": entry.get("collected"),
        "assay_date": entry.get("assay_date"),
        "method": method,
        "reportable": True,
        "measurements": records,
        "lysis_by_ratio": curve,
        "figures": figures,
        "notes": [str(n) for n in _list(entry.get("notes"), where)] + sample_notes,
        "qc_groups": qc_groups,
    }
    if entry.get("pre_analytic") is not None:
        doc["pre_analytic"] = entry["pre_analytic"]
    return doc, failures


def _from_uterine(entry: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[Failure]]:
    """A biopsy summary of :mod:`nkpanel.uterine` in the documented endometrial shape."""
    bid = str(entry.get("id", "biopsy"))
    failures = [
        Failure(bid, str(f.get("source", "")), str(f.get("reason", "")), "endometrial")
        for f in (_mapping(x, f"{where}.failures") for x in _list(entry.get("failures"), where))
    ]
    timing = _mapping(entry.get("timing") or {}, f"{where}.timing")
    doc: dict[str, Any] = {
        "id": bid,
        "sample": bid,
        "collected": entry.get("collected"),
        "lh_day": timing.get("lh_day"),
        "cycle_day": timing.get("cycle_day"),
    }
    if entry.get("pre_analytic") is not None:
        doc["pre_analytic"] = entry["pre_analytic"]
    u = entry.get("uterine")
    if not isinstance(u, Mapping):
        doc |= {
            "reportable": False,
            "not_reportable_reasons": ["no image could be analysed"],
            "unk_percent_of_stromal_cells": None,
            "unk_per_mm2_stroma": None,
        }
        return doc, failures
    exclusion = u.get("exclusion_of_glands_and_epithelium", "")
    method = (
        "CD56 immunohistochemistry, automated count: CD56+ cells per 100 stromal cells and per "
        f"mm² of stroma (glands and luminal epithelium excluded: {exclusion})"
    )
    doc |= {
        "reportable": bool(u.get("reportable", True)),
        "not_reportable_reasons": list(u.get("not_reportable_reasons") or []),
        "qc": list(u.get("qc") or []),
        "notes": list(u.get("notes") or []),
    }
    whole = {  # the whole stroma's ratios (named so since the summary says which is which)
        "unk_percent_of_stromal_cells": u.get(
            "whole_stroma_cd56_per_100_stromal_cells", u.get("cd56_per_100_stromal_cells")
        ),
        "unk_per_mm2_stroma": u.get(
            "whole_stroma_cd56_per_mm2_stroma", u.get("cd56_per_mm2_stroma")
        ),
    }
    ci100 = _mapping(
        u.get("across_fields_cd56_per_100_stromal_cells") or {},
        f"{where}.uterine.across_fields_cd56_per_100_stromal_cells",
    )
    ci_mm2 = _mapping(
        u.get("across_fields_cd56_per_mm2_stroma") or {},
        f"{where}.uterine.across_fields_cd56_per_mm2_stroma",
    )
    if ci100.get("estimate") is None:  # no field counted: the whole stroma, said so
        doc |= whole | {"estimate": "whole stroma", "method": f"{method}; estimate: whole stroma"}
    else:
        # the across-field estimate (a slide's random ×400 fields: the standardised protocol
        # the reference ranges come from, Lash et al. 2016), each CI beside its own estimate
        label = str(ci100.get("fields") or f"{ci100.get('n_fields')} fields")
        doc |= {
            "unk_percent_of_stromal_cells": ci100.get("estimate"),
            "unk_per_mm2_stroma": ci_mm2.get("estimate"),
            "unk_percent_ci": dict(ci100),
            "unk_per_mm2_ci": dict(ci_mm2),
            "estimate": label,
        }
        method += f"; estimate: {label}"
        if ci100.get("lower") is not None:
            method += ", with its 95% CI across fields (ratio estimator, Cochran 1977)"
        fields = _list(u.get("fields"), f"{where}.uterine.fields")
        if any(isinstance(f, Mapping) and f.get("kind") == "lash-field" for f in fields):
            doc["whole_stroma"] = whole  # a second figure: the fields are not the stroma
            method += "; the whole stroma's value is shown beside it"
        doc["method"] = method
    listed = entry.get("figures")
    if listed is not None:
        doc["figures"] = [str(f) for f in _list(listed, f"{where}.figures")][:4]
    elif isinstance(outputs := entry.get("outputs"), str) and outputs:
        # a summary from before the figures were listed: the overlays in its output folder
        found = sorted(Path(outputs).rglob("overlay*.png"))[:4]
        doc["figures"] = [str(p.resolve()) for p in found]
    return doc, failures


def read_episode(summary: Mapping[str, Any]) -> Episode:
    """Read a case summary into an :class:`Episode` of generic measurements.

    Raises
    ------
    InputError
        When a section has the wrong shape, or the case's ``id`` or ``patient_id`` is missing
        (another JSON file); the message names the field.
    """
    summary = _mapping(summary, "top level")
    case = _mapping(summary.get("case") or {}, "case")
    for key in ("id", "patient_id"):
        if not case.get(key):
            raise _bad(
                f"case.{key}",
                "missing: not a case summary (nkpanel run writes one as case_summary.json)",
            )
    episode_id = str(case["id"])
    episode_pre = parse_pre_analytic(summary.get("pre_analytic"), where=f"{SOURCE}: pre_analytic")
    measurements: list[Measurement] = []
    failures: list[Failure] = []
    sample_qc: list[SampleQC] = []
    specimens: list[Mapping[str, Any]] = []

    def pre_for(entry: Mapping[str, Any], where: str) -> PreAnalytic:
        own = parse_pre_analytic(entry.get("pre_analytic"), where=f"{SOURCE}: {where}")
        return merge_pre_analytic(episode_pre, own)

    for i, raw in enumerate(_list(summary.get("blood_draws"), "blood_draws")):
        where = f"blood_draws[{i}]"
        draw = _mapping(raw, where)
        draw_id = str(draw.get("id", f"draw-{i + 1}"))
        collected = _time(draw.get("collected"), f"{where}.collected")
        received = _time(draw.get("received"), f"{where}.received")
        pre = pre_for(draw, where)
        specimens.append(
            {
                "id": draw_id,
                "kind": "peripheral blood",
                "collected": collected,
                "detail": f"bead lot {draw['bead_lot']}" if draw.get("bead_lot") else "",
            }
        )
        for j, fr in enumerate(_list(draw.get("flow"), f"{where}.flow")):
            sample_qc.append(_sample_qc(_mapping(fr, where), f"{where}.flow[{j}]", draw_id, "flow"))
            measurements += _flow_measurements(
                _mapping(fr, f"{where}.flow[{j}]"),
                where=f"{where}.flow[{j}]",
                draw_id=draw_id,
                episode_id=episode_id,
                collected=collected,
                pre=pre,
                received=received,
            )
        for j, fl in enumerate(_list(draw.get("failures"), f"{where}.failures")):
            rec = _mapping(fl, f"{where}.failures[{j}]")
            failures.append(
                Failure(draw_id, str(rec.get("source", "")), str(rec.get("reason", "")), "flow")
            )

    for i, raw in enumerate(_list(summary.get("cytotoxicity"), "cytotoxicity")):
        where = f"cytotoxicity[{i}]"
        plate = _mapping(raw, where)
        if "error" in plate and "headline" not in plate:
            # a plate the case run could not analyse (its reads or layout): a failure, not a
            # specimen without checks that the report showed as reportable (review 21)
            pid = str(plate.get("id", f"plate-{i + 1}"))
            failures.append(
                Failure(pid, f"cytotoxicity plate {pid}", str(plate["error"]), "cytotoxicity")
            )
            continue
        if "headline" in plate:  # as nkpanel.cytotox writes it
            plate, own_failures = _from_cytotox(plate, where)
            failures += own_failures
        pid = str(plate.get("id", f"plate-{i + 1}"))
        collected = _time(plate.get("collected"), f"{where}.collected")
        detail = ""
        if collected is None and plate.get("assay_date"):
            # effector cells are used fresh, within hours of the draw: the assay's day is the
            # nearest date recorded, and is said to be that
            collected = _time(plate.get("assay_date"), f"{where}.assay_date")
            detail = "date of the assay (the blood draw's time was not recorded)"
        specimens.append(
            {
                "id": pid,
                "kind": "peripheral blood (NK activity)",
                "collected": collected,
                "detail": detail,
            }
        )
        named: dict[str, float | None] = {
            code: _number(plate.get(key), f"{where}.{key}") for code, key in _CYTO_FIELDS.items()
        }
        supp = plate.get("suppression_percent") or {}
        for agent, value in _mapping(supp, f"{where}.suppression_percent").items():
            code = _SUPPRESSION.get(str(agent).lower())
            if code is None:
                raise _bad(f"{where}.suppression_percent", f"unknown agent {agent!r}")
            named[code] = _number(value, f"{where}.suppression_percent.{agent}")
        sample_qc += _sample_qcs(plate, where, pid, "cytotoxicity")
        measurements += _generic(
            plate,
            where=where,
            biomarker="cytotoxicity",
            specimen_id=pid,
            episode_id=episode_id,
            collected=collected,
            pre=pre_for(plate, where),
            named=named,
            default_method="NK-cell killing of K562 targets",
            curve=_curve(plate, where),
        )

    for i, raw in enumerate(_list(summary.get("endometrial"), "endometrial")):
        where = f"endometrial[{i}]"
        biopsy = _mapping(raw, where)
        if "uterine" in biopsy or "timing" in biopsy:  # as nkpanel.uterine writes it
            biopsy, own_failures = _from_uterine(biopsy, where)
            failures += own_failures
        bid = str(biopsy.get("id", f"biopsy-{i + 1}"))
        collected = _time(biopsy.get("collected"), f"{where}.collected")
        pre = pre_for(biopsy, where)
        own = {k: _number(biopsy.get(k), f"{where}.{k}") for k in ("lh_day", "cycle_day")}
        if any(day is not None for day in own.values()):
            # the biopsy's own timing, whole: a specimen's own facts win over the episode's,
            # as the run analysed it (an episode's LH day beside a biopsy's cycle day was
            # labelled and compared by the episode's)
            pre = pre.model_copy(
                update={k: None if day is None else int(day) for k, day in own.items()}
            )
        timing = (
            lh_label(pre.lh_day)
            if pre.lh_day is not None
            else f"cycle day {pre.cycle_day}"
            if pre.cycle_day is not None
            else "LH day not recorded"
        )
        specimens.append(
            {"id": bid, "kind": "endometrial biopsy", "collected": collected, "detail": timing}
        )
        named = {
            code: _number(biopsy.get(key), f"{where}.{key}") for code, key in _ENDO_FIELDS.items()
        }
        sample_qc += _sample_qcs(biopsy, where, bid, "endometrial")
        measurements += _generic(
            biopsy,
            where=where,
            biomarker="endometrial",
            specimen_id=bid,
            episode_id=episode_id,
            collected=collected,
            pre=pre,
            named=named,
            default_method="CD56 immunohistochemistry, counted in endometrial stroma",
            details=_endometrial_details(biopsy, named, where),
        )

    age = case.get("age_years")
    return Episode(
        episode_id=episode_id,
        patient_id=str(case["patient_id"]),
        age_years=int(age) if isinstance(age, int) else None,
        synthetic=bool(summary.get("synthetic", case.get("synthetic", False))),
        indication=dict(_mapping(summary.get("indication") or {}, "indication")),
        measurements=tuple(measurements),
        failures=tuple(failures),
        pre_analytic=episode_pre,
        specimens=tuple(specimens),
        qc=tuple(sample_qc),
    )
