"""From plate reads and a layout to % specific lysis, lytic units, suppression and QC.

The steps, for each sample on the plate and each treatment it was tested under:

1. **Blank.** The mean of the medium-blank wells is subtracted from every well. It cancels in
   % lysis but not in the spontaneous/maximum ratio, the assay's background check.
2. **Controls.** Spontaneous (targets alone) and maximum (detergent) wells are taken from the
   most specific set the layout offers: the sample's own wells with this treatment, then its
   untreated ones, then plate-wide wells with this treatment, then plate-wide untreated ones.
3. **Lysis.** Each test well gives ``100 × (E − S̄)/(M̄ − S̄)`` (Brunner 1968), after the mean
   effector-spontaneous release at its ratio is subtracted from E where the layout has such
   wells (LDH, calcein: Promega CytoTox 96 technical bulletin TB163); a treatment without
   effector-spontaneous wells of its own uses the sample's untreated ones.
4. **Replicates.** Mean, SD and CV per ratio; outliers are flagged by the modified z-score
   rule of :func:`~nkpanel.cytotox.lysis.robust_outliers` and kept.
5. **QC.** Missing controls, ``M̄ ≤ S̄``, spontaneous release above a limit, a CV of the
   replicate wells' blank-corrected *signals* above a limit (blocking: the result is kept but
   marked not reportable); a CV of the replicates' *% lysis* above the same limit at a mean
   lysis of at least 10%, outliers, negative lysis, a poor fit and extrapolation (warnings).
   Both CVs are in the tidy table; :func:`replicate_cv_flags` says why there are two.
6. **Lytic units** and lysis at the standard ratio from the exponential fit
   (:mod:`nkpanel.cytotox.lytic`); **suppression** by each treatment against the untreated wells.

An input defect (a well without a read, text in a numeric cell, a well listed twice, an unknown
role, a ratio with fewer replicates than required…) fails only the samples that need the well;
each failure is one line naming the file, the well and the cause. The other samples are
analysed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from nkpanel.cytotox.layout import LayoutProblem, PlateLayout, Role, Treatment, read_layout
from nkpanel.cytotox.lysis import (
    OUTLIER_FLOOR_PERCENT,
    OUTLIER_Z,
    replicate_stats,
    robust_outliers,
    specific_lysis,
    suppression_percent,
)
from nkpanel.cytotox.lytic import fit_exponential, lytic_units
from nkpanel.cytotox.reads import AssayKind, PlateReads, read_plate
from nkpanel.cytotox.results import (
    ConditionResult,
    CytotoxResult,
    RatioResult,
    SampleFailure,
    SampleResult,
    StandardRatioLysis,
    SuppressionResult,
    WellResult,
    ratio_label,
)
from nkpanel.errors import ConfigError, InputError
from nkpanel.flow.qc import QCFlag

__all__ = [
    "CytotoxSettings",
    "Measurement",
    "ReferenceBand",
    "analyze_measurements",
    "analyze_plate",
    "analyze_plate_files",
    "replicate_cv_flags",
]


@dataclass(frozen=True)
class ReferenceBand:
    """A lab's reference range of % lysis at one ratio, drawn on the figure when configured.

    nkpanel ships none: published values differ by lab, assay and population, and none is
    validated as a treatment threshold (see the domain brief, section 2).
    """

    low_percent: float
    high_percent: float
    ratio: float = 50.0
    source: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low_percent) and math.isfinite(self.high_percent)):
            raise ConfigError("reference band: limits must be numbers")
        if self.low_percent > self.high_percent:
            raise ConfigError(
                f"reference band: low {self.low_percent:g} is above high {self.high_percent:g}"
            )
        if not (math.isfinite(self.ratio) and self.ratio > 0):
            raise ConfigError("reference band: ratio must be a positive number")
        if not self.source.strip():  # every interval shown names where it is from
            raise ConfigError(
                "reference band: its source is required (--reference-source, or "
                "reference_source in a case manifest): where the limits come from is shown "
                "beside them"
            )
        from nkpanel.interpret.wording import source_problem

        if (why := source_problem(self.source)) is not None:
            raise ConfigError(f"reference band: the source {why}")

    @classmethod
    def from_limits(
        cls, low: float | None, high: float | None, ratio: float = 50.0, source: str = ""
    ) -> ReferenceBand | None:
        """The band from its two limits as a lab gives them, ``None`` when neither is given.

        Raises
        ------
        ConfigError
            Only one limit given, or limits that are not a band.
        """
        if low is None and high is None:
            return None
        if low is None or high is None:
            raise ConfigError("reference band: the low and high limits go together")
        return cls(low, high, ratio, source)


@dataclass(frozen=True)
class CytotoxSettings:
    """What an NK-activity analysis can be told; every limit is the lab's to set.

    Attributes
    ----------
    spontaneous_limit_percent
        30: spontaneous release above this % of maximum makes a condition not reportable.
        Labs accept S/M ≤ 20–30% by convention (domain brief §2); the default is the lenient
        end, set your own. For flow killing it limits the dead % of targets alone.
    cv_limit_percent
        20: replicate wells whose blank-corrected signals vary more than this (CV) are not
        reportable; replicates whose % lysis varies more than this (CV) at a mean lysis of at
        least ``lysis_cv_floor_percent`` get a warning (see :func:`replicate_cv_flags`).
    lysis_cv_floor_percent
        10: the mean % lysis from which the CV of % lysis is judged. Below it the CV's
        denominator is too near zero for a CV to mean anything (a spread of one percentage
        point at 5% lysis is a CV of 20%); the signal CV still applies there.
    min_replicates
        2: fewer wells at a ratio fail the sample (SD and CV need two). Flow killing, with one
        tube per ratio, uses 1.
    outlier_z, outlier_floor_percent
        The outlier rule: modified z-score > 3.5 and > 5 percentage points from the median.
    lysis_level_percent
        20: the lysis level that defines one lytic unit (LU20).
    standard_ratio
        50: lysis is also given at this E:T ratio, read off the fitted model when untested.
    targets_per_well
        Target cells per well, needed for LU per 10^7 effectors.
    min_r_squared
        0.8: a fit below this R² is flagged (a warning, not a block).
    reference
        An optional reference band for the figure.
    """

    spontaneous_limit_percent: float = 30.0
    cv_limit_percent: float = 20.0
    lysis_cv_floor_percent: float = 10.0
    min_replicates: int = 2
    outlier_z: float = OUTLIER_Z
    outlier_floor_percent: float = OUTLIER_FLOOR_PERCENT
    lysis_level_percent: float = 20.0
    standard_ratio: float = 50.0
    targets_per_well: float | None = None
    min_r_squared: float = 0.8
    reference: ReferenceBand | None = None

    def __post_init__(self) -> None:
        def positive(name: str, value: float) -> None:
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"cytotoxicity setting {name} must be positive, not {value!r}")

        positive("spontaneous_limit_percent", self.spontaneous_limit_percent)
        positive("cv_limit_percent", self.cv_limit_percent)
        positive("outlier_z", self.outlier_z)
        positive("standard_ratio", self.standard_ratio)
        if not (0 <= self.lysis_cv_floor_percent < 100):
            raise ConfigError("cytotoxicity setting lysis_cv_floor_percent must lie in [0, 100)")
        if not (math.isfinite(self.outlier_floor_percent) and self.outlier_floor_percent >= 0):
            raise ConfigError("cytotoxicity setting outlier_floor_percent must be ≥ 0")
        if not 0 < self.lysis_level_percent < 100:
            raise ConfigError("cytotoxicity setting lysis_level_percent must lie in (0, 100)")
        if self.min_replicates < 1:
            raise ConfigError("cytotoxicity setting min_replicates must be at least 1")
        if self.targets_per_well is not None:
            positive("targets_per_well", self.targets_per_well)
        if not 0 <= self.min_r_squared <= 1:
            raise ConfigError("cytotoxicity setting min_r_squared must lie in [0, 1]")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    """One well (or flow tube) ready for analysis: its layout entry and its value.

    ``problem`` is one line (file, well, cause) when the value cannot be used; ``qc`` holds
    checks of the measurement itself (e.g. too few target events in a flow tube).
    """

    unit_id: str
    role: Role
    sample: str
    treatment: Treatment
    ratio: float | None
    replicate: int | None
    signal: float | None
    problem: str | None = None
    qc: tuple[QCFlag, ...] = ()


def _describe(w: Measurement | object) -> str:
    if not isinstance(w, Measurement):
        return ""
    parts: list[str] = [w.role]
    if w.sample:
        parts.append(f"sample {w.sample}")
    if w.ratio is not None:
        parts.append(ratio_label(w.ratio))
    if not w.treatment.is_none:
        parts.append(w.treatment.label)
    return ", ".join(parts)


def _layout_failures(layout: PlateLayout) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in layout.problems:
        out.setdefault(p.sample, []).append(_problem_line(layout.source, p))
    return out


def _problem_line(source: str, p: LayoutProblem) -> str:
    where = f"well {p.well}" if p.well else f"line {p.line}"
    line = f" (line {p.line})" if p.well and p.line and "line" not in p.cause else ""
    return f"{source}: {where}: {p.cause}{line}"


def _join(reads: PlateReads, layout: PlateLayout) -> tuple[list[Measurement], list[str]]:
    measurements: list[Measurement] = []
    notes = [f"{reads.source}: {n}" for n in reads.notes]
    notes += [f"{layout.source}: {n}" for n in layout.notes]
    assigned = {w.well for w in layout.wells} | {p.well for p in layout.problems if p.well}
    n_found = 0
    for w in layout.wells:
        m = Measurement(w.well, w.role, w.sample, w.treatment, w.ratio, w.replicate, None)
        value = reads.values.get(w.well)
        problem: str | None = None
        if w.well in reads.bad_cells:
            problem = f"{reads.source}: well {w.well}: {reads.bad_cells[w.well]}"
            n_found += 1
        elif value is None:
            problem = (
                f"{reads.source}: well {w.well}: no value, but the layout assigns it "
                f"({_describe(m)})"
            )
        else:
            n_found += 1
        measurements.append(
            Measurement(w.well, w.role, w.sample, w.treatment, w.ratio, w.replicate, value, problem)
        )
    if layout.wells and n_found == 0:
        raise InputError(
            layout.source,
            f"none of its {len(layout.wells)} wells has a value in {reads.source} "
            "(a layout for another plate, or an empty export?)",
        )
    unassigned = sorted(
        (set(reads.values) | set(reads.bad_cells)) - assigned, key=lambda x: (x[0], int(x[1:]))
    )
    if unassigned:
        shown = " ".join(unassigned[:24]) + (" …" if len(unassigned) > 24 else "")
        notes.append(
            f"{reads.source}: {len(unassigned)} well(s) with a value but no layout entry "
            f"({shown}); not used"
        )
    return measurements, notes


def analyze_plate(
    reads: PlateReads,
    layout: PlateLayout,
    settings: CytotoxSettings | None = None,
    *,
    plate_id: str = "plate-1",
    assay: str = "release",
    synthetic: bool = False,
) -> CytotoxResult:
    """Analyse a release-assay plate: % specific lysis, replicates, QC, lytic units, suppression.

    Parameters
    ----------
    reads
        The plate's values (:func:`~nkpanel.cytotox.reads.read_plate`).
    layout
        What each well holds (:func:`~nkpanel.cytotox.layout.read_layout`).
    settings
        Limits and options; the defaults are described in :class:`CytotoxSettings`.

    Returns
    -------
    CytotoxResult
        Per sample results, and the samples that failed with one line per cause.

    Raises
    ------
    InputError
        No layout well has a value in the reads (a layout for another plate).

    References
    ----------
    Brunner KT et al. Immunology 1968;14:181-196. Pross HF et al. J Clin Immunol 1981;1:51-63.
    Bryant J et al. J Immunol Methods 1992;146:91-103.
    """
    measurements, notes = _join(reads, layout)
    return analyze_measurements(
        measurements,
        settings,
        plate_id=plate_id,
        assay=assay,
        reads_source=reads.source,
        layout_source=layout.source,
        unit=reads.unit,
        notes=notes,
        failures=_layout_failures(layout),
        synthetic=synthetic,
    )


def analyze_plate_files(
    reads_path: str | Path,
    layout_path: str | Path,
    settings: CytotoxSettings | None = None,
    *,
    kind: AssayKind = "release",
    unit: str | None = None,
    sheet: str | None = None,
    layout_sheet: str | None = None,
    grid: int | None = None,
    plate_id: str | None = None,
    synthetic: bool | None = None,
) -> CytotoxResult:
    """Read a plate export and its layout, and analyse them (see :func:`analyze_plate`).

    ``synthetic`` defaults to whether either file says it was generated by nkpanel.
    """
    reads = read_plate(reads_path, kind=kind, unit=unit, sheet=sheet, grid=grid)
    layout = read_layout(layout_path, sheet=layout_sheet)
    if synthetic is None:
        synthetic = reads.synthetic or layout.synthetic
    return analyze_plate(
        reads,
        layout,
        settings,
        plate_id=plate_id or Path(reads_path).stem,
        assay=kind,
        synthetic=synthetic,
    )


# --- the engine ------------------------------------------------------------------------------


def _key(ratio: float) -> float:
    return round(ratio, 9)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


@dataclass
class _Index:
    tests: dict[str, list[Measurement]]
    controls: dict[tuple[str, str, str], list[Measurement]]
    effector_spont: dict[tuple[str, str, float], list[Measurement]]


def _index(measurements: Sequence[Measurement]) -> _Index:
    idx = _Index({}, {}, {})
    for m in measurements:
        if m.role == "test":
            idx.tests.setdefault(m.sample, []).append(m)
        elif m.role in ("spontaneous", "maximum"):
            idx.controls.setdefault((m.role, m.sample, m.treatment.label), []).append(m)
        elif m.role == "effector_spontaneous" and m.ratio is not None:
            key = (m.sample, m.treatment.label, _key(m.ratio))
            idx.effector_spont.setdefault(key, []).append(m)
    return idx


def _effector_wells(idx: _Index, sample: str, treatment: str, ratio: float) -> list[Measurement]:
    """Effector-spontaneous wells for a test ratio: the treatment's own, else the untreated."""
    return idx.effector_spont.get((sample, treatment, ratio)) or idx.effector_spont.get(
        (sample, "none", ratio), []
    )


def _pick_controls(
    idx: _Index, role: str, sample: str, treatment: str
) -> tuple[list[Measurement], str]:
    for s, t in ((sample, treatment), (sample, "none"), ("", treatment), ("", "none")):
        wells = idx.controls.get((role, s, t))
        if wells:
            scope = f"sample {s}" if s else "plate-wide"
            return wells, f"{scope}, {t}"
    return [], "none found"


def _flag(
    check: str,
    passed: bool,
    reason: str,
    *,
    value: float | None = None,
    limit: float | None = None,
    blocking: bool = True,
) -> QCFlag:
    return QCFlag(check, passed, value, limit, reason, blocking)


def analyze_measurements(
    measurements: Sequence[Measurement],
    settings: CytotoxSettings | None = None,
    *,
    plate_id: str = "plate-1",
    assay: str = "release",
    reads_source: str = "memory",
    layout_source: str = "memory",
    unit: str | None = None,
    notes: Sequence[str] = (),
    failures: Mapping[str, Sequence[str]] | None = None,
    maximum_fixed: float | None = None,
    unit_word: str = "well",
    synthetic: bool = False,
) -> CytotoxResult:
    """Analyse wells (or tubes) that already carry their roles and values.

    The engine behind :func:`analyze_plate` and flow-based killing. With ``maximum_fixed``
    (flow: 100% dead) there are no maximum-release wells and no blank. ``unit_word`` names
    the units in messages (``"well"``, or ``"tube"`` for flow).
    """
    s = settings or CytotoxSettings()
    notes_out = list(notes)
    failed: dict[str, list[str]] = {k: list(v) for k, v in (failures or {}).items()}
    blank_wells = [m for m in measurements if m.role == "blank"]
    blank: float | None = None
    if maximum_fixed is None:
        usable = [m for m in blank_wells if m.problem is None and m.signal is not None]
        for m in blank_wells:
            if m.problem is not None:
                notes_out.append(f"{m.problem}; this blank well is left out of the blank mean")
        blank = _mean([float(m.signal) for m in usable if m.signal is not None])
        if blank is None:
            notes_out.append(
                "no medium-blank wells: signals are not background-corrected (this does not "
                "change % lysis; spontaneous/maximum is then computed on raw signals)"
            )
    idx = _index(measurements)
    order = list(dict.fromkeys([*idx.tests, *(k for k in failed if k)]))
    samples: list[SampleResult] = []
    for sample in order:
        reasons = list(failed.get(sample, []))
        tests = idx.tests.get(sample, [])
        treatments = list(dict.fromkeys(m.treatment.label for m in tests))
        treatments.sort(key=lambda t: t != "none")
        plan: list[tuple[str, list[Measurement], list[Measurement], list[Measurement], str]] = []
        for t in treatments:
            t_tests = [m for m in tests if m.treatment.label == t]
            spont, s_scope = _pick_controls(idx, "spontaneous", sample, t)
            maxi, m_scope = (
                _pick_controls(idx, "maximum", sample, t) if maximum_fixed is None else ([], "")
            )
            scope = (
                f"spontaneous: {s_scope}; maximum: {m_scope}"
                if maximum_fixed is None
                else f"targets alone: {s_scope}"
            )
            used = [*t_tests, *spont, *maxi]
            used += [
                m
                for ratio in {_key(m.ratio) for m in t_tests if m.ratio is not None}
                for m in _effector_wells(idx, sample, t, ratio)
            ]
            reasons += [m.problem for m in used if m.problem is not None]
            by_ratio: dict[float, list[Measurement]] = {}
            for m in t_tests:
                if m.ratio is not None:
                    by_ratio.setdefault(_key(m.ratio), []).append(m)
            for ratio, wells in by_ratio.items():
                ok = [m for m in wells if m.problem is None]
                if len(ok) < s.min_replicates and len(ok) == len(wells):
                    names = " ".join(m.unit_id for m in wells)
                    word = "replicate" if s.min_replicates == 1 else "replicates"
                    reasons.append(
                        f"{layout_source}: {unit_word} {names}: sample {sample}, {t}, "
                        f"{ratio_label(ratio)} has {len(ok)} well(s) where at least "
                        f"{s.min_replicates} {word} are needed"
                    )
            plan.append((t, t_tests, spont, maxi, scope))
        if reasons:
            failed[sample] = list(dict.fromkeys(reasons))
            continue
        conditions = [
            _condition(sample, t, tests_, spont, maxi, scope, idx, blank, s, maximum_fixed)
            for t, tests_, spont, maxi, scope in plan
        ]
        sup, sup_notes = _suppression(sample, conditions, s)
        samples.append(SampleResult(sample, tuple(conditions), tuple(sup), tuple(sup_notes)))
    failure_list = tuple(SampleFailure(k, tuple(dict.fromkeys(v))) for k, v in failed.items() if v)
    return CytotoxResult(
        plate_id=plate_id,
        assay=assay,
        reads_source=reads_source,
        layout_source=layout_source,
        unit=unit,
        samples=tuple(samples),
        failures=failure_list,
        notes=tuple(notes_out),
        blank_signal=blank,
        settings=s.as_dict(),
        synthetic=synthetic,
    )


def _well(m: Measurement, signal: float, lysis: float | None, outlier: bool) -> WellResult:
    assert m.signal is not None
    return WellResult(
        m.unit_id,
        m.role,
        m.sample,
        m.treatment.label,
        m.ratio,
        m.replicate,
        float(m.signal),
        signal,
        lysis,
        outlier,
    )


def _signal_cv_reason(cv: float, passed: bool, limit: str, signal_name: str) -> str:
    what = f"signal CV {cv:.1f}% (CV of {signal_name}"
    return f"{what}; limit {limit})" if passed else f"{what}) is above the {limit} limit"


def _control_checks(
    role: str,
    wells: Sequence[Measurement],
    corrected: list[float],
    s: CytotoxSettings,
    *,
    flow: bool = False,
) -> list[QCFlag]:
    if len(corrected) < 2:
        return []
    cv = replicate_stats(corrected).cv_percent
    if cv is None:
        return []
    passed = cv <= s.cv_limit_percent
    limit = f"{s.cv_limit_percent:g}%"
    unit_word = "tube" if flow else "well"
    signal_name = "the dead %" if flow else "the blank-corrected signals"
    return [
        _flag(
            f"{role}_replicate_signal_cv",
            passed,
            f"{role} {unit_word}s {' '.join(m.unit_id for m in wells)}: "
            + _signal_cv_reason(cv, passed, limit, signal_name),
            value=cv,
            limit=s.cv_limit_percent,
        )
    ]


def replicate_cv_flags(
    signal_cv_percent: float | None,
    lysis_cv_percent: float | None,
    mean_lysis_percent: float | None,
    *,
    limit_percent: float = 20.0,
    lysis_floor_percent: float = 10.0,
    signal_name: str = "the replicate wells' blank-corrected signals",
) -> list[QCFlag]:
    """The two replicate-precision checks of one ratio: signal CV (blocking), lysis CV (warning).

    Parameters
    ----------
    signal_cv_percent
        CV of the replicate wells' test signals after blank correction (before the
        spontaneous release is subtracted); ``None`` with fewer than two wells.
    lysis_cv_percent, mean_lysis_percent
        CV and mean of the same wells' % specific lysis; ``None`` when not computed.
    limit_percent
        The lab's replicate CV limit (``CytotoxSettings.cv_limit_percent``), used for both.
    lysis_floor_percent
        The lysis CV is judged only when the mean lysis is at least this (default 10%).
    signal_name
        What the signal CV is the CV of, for the reason text (for flow killing,
        ``"the replicate tubes' dead %"``).

    Returns
    -------
    list of QCFlag
        ``replicate_signal_cv`` (blocking) when the signal CV exists, and
        ``replicate_lysis_cv`` (non-blocking) when the lysis CV exists and the mean lysis is
        at least ``lysis_floor_percent``. Each reason names its CV and reads right whether
        the check passed or not.

    Notes
    -----
    With ``E`` a test well's blank-corrected signal, ``S`` and ``M`` the mean spontaneous and
    maximum release and ``ES`` the effector-spontaneous release subtracted at this ratio,
    lysis is ``100 (E − ES − S)/(M − S)`` (Brunner 1968), a linear map of ``E``. Its SD is
    ``100 SD(E)/(M − S)`` and so::

        CV(lysis) = CV(E) · Ē / (Ē − ES − S)

    The lysis CV is the signal CV magnified by the test signal over its net release. The
    signal CV judges the wells themselves (pipetting, counting) on any scale and stays
    bounded at any level of lysis, so it is the blocking check. The lysis CV judges the
    reported number, but it grows without bound as the mean lysis nears zero: at 5% lysis a
    spread of one percentage point is a CV of 20%. The rule here: **the lysis CV is flagged
    when it exceeds the limit while the mean lysis is at least the floor (10%)**. From 10% up
    a lysis CV above a 20% limit means an SD above 2 percentage points, a real disagreement
    between replicates about the reported value; it happens with a passing signal CV when
    spontaneous release makes up much of the test signal (a large ``Ē/(Ē − ES − S)``). It
    is a warning and does not block: the lab reviews the wells. The 10% floor is this
    package's choice, not a published criterion; labs set their own
    (``lysis_cv_floor_percent``).

    References
    ----------
    Brunner KT, Mauel J, Cerottini JC, Chapuis B. Quantitative assay of the lytic action of
    immune lymphoid cells on 51Cr-labelled allogeneic target cells in vitro. Immunology
    1968;14:181-196.

    Examples
    --------
    >>> # signals 580, 640, 700 (SD 60): signal CV 9.4%; S 400, M 2400 → lysis 9, 12, 15%
    >>> flags = replicate_cv_flags(100 * 60 / 640, 100 * 3 / 12, 12.0)
    >>> [(f.check, f.passed, f.blocking) for f in flags]
    [('replicate_signal_cv', True, True), ('replicate_lysis_cv', False, False)]
    """
    flags: list[QCFlag] = []
    limit = f"{limit_percent:g}%"
    if signal_cv_percent is not None:
        passed = signal_cv_percent <= limit_percent
        flags.append(
            _flag(
                "replicate_signal_cv",
                passed,
                _signal_cv_reason(signal_cv_percent, passed, limit, signal_name),
                value=signal_cv_percent,
                limit=limit_percent,
            )
        )
    if (
        lysis_cv_percent is not None
        and mean_lysis_percent is not None
        and mean_lysis_percent >= lysis_floor_percent
    ):
        passed = lysis_cv_percent <= limit_percent
        where = f"at a mean lysis of {mean_lysis_percent:.1f}%"
        flags.append(
            _flag(
                "replicate_lysis_cv",
                passed,
                f"% lysis CV {lysis_cv_percent:.1f}% {where} (limit {limit})"
                if passed
                else f"% lysis CV {lysis_cv_percent:.1f}% {where} is above the {limit} limit: "
                "the replicates disagree on the reported lysis; review the wells (a warning: "
                "reportability is decided by the signal CV)",
                value=lysis_cv_percent,
                limit=limit_percent,
                blocking=False,
            )
        )
    return flags


def _condition(
    sample: str,
    treatment: str,
    tests: list[Measurement],
    spont: list[Measurement],
    maxi: list[Measurement],
    scope: str,
    idx: _Index,
    blank: float | None,
    s: CytotoxSettings,
    maximum_fixed: float | None,
) -> ConditionResult:
    b = blank or 0.0
    flow = maximum_fixed is not None
    qc: list[QCFlag] = []
    s_sig = [float(m.signal) - b for m in spont if m.signal is not None]
    m_sig = [float(m.signal) - b for m in maxi if m.signal is not None]
    s_mean = _mean(s_sig)
    m_mean = maximum_fixed if flow else _mean(m_sig)
    s_name = "targets-alone" if flow else "spontaneous-release"
    if s_mean is None:
        qc.append(
            _flag(
                "controls_present",
                False,
                f"no {s_name} tubes for sample {sample} ({treatment})"
                if flow
                else f"no {s_name} wells for sample {sample} ({treatment}) nor plate-wide",
            )
        )
    if m_mean is None:
        qc.append(
            _flag(
                "controls_present",
                False,
                f"no maximum-release wells for sample {sample} ({treatment}) nor plate-wide",
            )
        )
    if s_mean is not None and m_mean is not None and not qc:
        qc.append(_flag("controls_present", True, "spontaneous and maximum wells present"))
    spm: float | None = None
    lysis_ok = s_mean is not None and m_mean is not None and m_mean > s_mean
    if s_mean is not None and m_mean is not None:
        if not flow:
            qc.append(
                _flag(
                    "maximum_above_spontaneous",
                    m_mean > s_mean,
                    f"maximum release {m_mean:.4g} is not above spontaneous {s_mean:.4g} "
                    f"({'after the medium blank' if blank is not None else 'as read'}): "
                    "% lysis is undefined"
                    if m_mean <= s_mean
                    else "maximum release is above spontaneous",
                    value=m_mean - s_mean,
                    limit=0.0,
                )
            )
        if m_mean > 0:
            spm = 100.0 * s_mean / m_mean
            what = "targets alone are" if flow else "spontaneous release is"
            unit = "% dead" if flow else "% of maximum"
            qc.append(
                _flag(
                    "spontaneous_release",
                    spm <= s.spontaneous_limit_percent,
                    f"{what} {spm:.1f}{unit} (limit {s.spontaneous_limit_percent:g}%)",
                    value=spm,
                    limit=s.spontaneous_limit_percent,
                )
            )
        elif not flow:  # the blank reads at or above the maximum: S/M cannot be judged
            qc.append(
                _flag(
                    "spontaneous_release",
                    False,
                    f"the maximum-release wells read {m_mean:.4g} after the medium blank, at or "
                    "below the blank itself (blank and maximum wells swapped?): spontaneous "
                    "release as a share of maximum cannot be judged",
                    value=m_mean,
                    limit=0.0,
                )
            )
    if not flow and blank is not None and s_mean is not None and s_mean < 0:
        qc.append(
            _flag(
                "spontaneous_above_blank",
                False,
                f"spontaneous release is below the medium blank by {-s_mean:.4g}: check the "
                "blank and spontaneous wells",
                value=s_mean,
                limit=0.0,
                blocking=False,
            )
        )
    qc += _control_checks("spontaneous", spont, s_sig, s, flow=flow)
    if not flow:
        qc += _control_checks("maximum", maxi, m_sig, s)

    # control wells: outliers on the scale of % of the maximum-spontaneous span
    control_out: dict[str, bool] = {}
    if lysis_ok and s_mean is not None and m_mean is not None:
        for sig, wells in ((s_sig, spont), (m_sig, maxi)):
            if not sig:
                continue
            pct = specific_lysis(np.asarray(sig), s_mean, m_mean)
            flags = robust_outliers(pct, z=s.outlier_z, floor=s.outlier_floor_percent)
            for m, f in zip(wells, flags.tolist(), strict=True):
                control_out[m.unit_id] = bool(f)
        bad = [k for k, v in control_out.items() if v]
        if bad:
            qc.append(
                _flag(
                    "control_outliers",
                    False,
                    f"control well(s) {' '.join(bad)} lie outside their replicates "
                    f"(modified z > {s.outlier_z:g} and > {s.outlier_floor_percent:g} points of "
                    "the span from the median); kept in the means",
                    blocking=False,
                )
            )
    s_wells = tuple(
        _well(m, float(m.signal) - b, None, control_out.get(m.unit_id, False))
        for m in spont
        if m.signal is not None
    )
    m_wells = tuple(
        _well(m, float(m.signal) - b, None, control_out.get(m.unit_id, False))
        for m in maxi
        if m.signal is not None
    )

    has_es = any(k[0] == sample and k[1] in (treatment, "none") for k in idx.effector_spont)
    by_ratio: dict[float, list[Measurement]] = {}
    for m in tests:
        if m.ratio is not None:
            by_ratio.setdefault(_key(m.ratio), []).append(m)
    ratios: list[RatioResult] = []
    fit_x: list[float] = []
    fit_y: list[float] = []
    for ratio in sorted(by_ratio, reverse=True):
        wells = by_ratio[ratio]
        rq: list[QCFlag] = [f for m in wells for f in m.qc]
        others = [len(w) for r, w in by_ratio.items() if r != ratio]
        rq += _replicates_typed_twice(wells, ratio, min(others, default=None))
        corrected = np.array([float(m.signal) - b for m in wells if m.signal is not None])
        es_wells = _effector_wells(idx, sample, treatment, ratio)
        es_mean = _mean([float(m.signal) - b for m in es_wells if m.signal is not None])
        if has_es and es_mean is None:
            rq.append(
                _flag(
                    "effector_spontaneous",
                    False,
                    f"no effector-spontaneous wells at {ratio_label(ratio)} while other ratios "
                    "have them: effector release is not subtracted here",
                )
            )
        net = corrected - (es_mean or 0.0)
        lysis: list[float | None]
        outliers = np.zeros(net.shape, dtype=bool)
        if lysis_ok and s_mean is not None and m_mean is not None:
            arr = specific_lysis(net, s_mean, m_mean)
            lysis = [float(v) for v in arr]
            outliers = robust_outliers(arr, z=s.outlier_z, floor=s.outlier_floor_percent)
            stats = replicate_stats(arr)
            kept = arr[~outliers]
            mean_wo: float | None = float(np.mean(kept)) if kept.size else None
            fit_x += [ratio] * arr.size
            fit_y += lysis  # type: ignore[arg-type]
            mean: float | None = stats.mean
            sd, cv = stats.sd, stats.cv_percent
        else:
            lysis = [None] * net.size
            mean = sd = cv = mean_wo = None
        sig_cv = replicate_stats(corrected).cv_percent if corrected.size >= 2 else None
        rq += replicate_cv_flags(
            sig_cv,
            cv,
            mean,
            limit_percent=s.cv_limit_percent,
            lysis_floor_percent=s.lysis_cv_floor_percent,
            signal_name="the replicate tubes' dead %"
            if flow
            else "the replicate wells' blank-corrected signals",
        )
        if outliers.any():
            names = " ".join(m.unit_id for m, o in zip(wells, outliers, strict=True) if o)
            rq.append(
                _flag(
                    "outliers",
                    False,
                    f"well(s) {names} lie outside their replicates (modified z > "
                    f"{s.outlier_z:g} and > {s.outlier_floor_percent:g} points from the median); "
                    "kept in the mean",
                    blocking=False,
                )
            )
        if mean is not None and mean > 100.0:
            rq.append(
                _flag(
                    "lysis_above_maximum",
                    False,
                    f"mean lysis {mean:.1f}% is above 100%: the wells released more than the "
                    "maximum-release wells, which is not possible (maximum release too low, "
                    "e.g. incomplete detergent lysis, or a mis-pipetted well): check the "
                    "maximum-release wells",
                    value=mean,
                    limit=100.0,
                )
            )
        if mean is not None and mean < 0:
            rq.append(
                _flag(
                    "negative_lysis",
                    False,
                    f"mean lysis {mean:.1f}% is below zero (less release than targets alone); "
                    "reported as measured",
                    value=mean,
                    limit=0.0,
                    blocking=False,
                )
            )
        ratios.append(
            RatioResult(
                sample,
                treatment,
                ratio,
                tuple(
                    _well(m, float(c), lv, bool(o))
                    for m, c, lv, o in zip(wells, corrected, lysis, outliers, strict=True)
                ),
                mean,
                sd,
                cv,
                sig_cv,
                mean_wo,
                tuple(rq),
            )
        )
    fit = fit_exponential(fit_x, fit_y) if fit_x else None
    highest = max(ratios, key=lambda r: r.ratio, default=None)
    lu = (
        lytic_units(
            fit,
            lysis_level_percent=s.lysis_level_percent,
            targets_per_well=s.targets_per_well,
            measured_at_highest=highest.mean_lysis_percent if highest else None,
        )
        if lysis_ok
        else None
    )
    if fit is not None and fit.r_squared is not None:
        qc.append(
            _flag(
                "fit_quality",
                fit.r_squared >= s.min_r_squared,
                f"exponential fit R² {fit.r_squared:.3f} (warning below {s.min_r_squared:g}); "
                f"RMSE {fit.rmse_percent:.2f} points",
                value=fit.r_squared,
                limit=s.min_r_squared,
                blocking=False,
            )
        )
    if (
        lu is not None
        and lu.ratio_at_level is not None
        and lu.extrapolated
        and lu.upper_bound_per_1e7 is None  # a bound in place of a value says so itself
        and fit is not None
    ):
        qc.append(
            _flag(
                "lytic_units_extrapolated",
                False,
                f"LU{lu.lysis_level_percent:g}: the model reaches {lu.lysis_level_percent:g}% at "
                f"{ratio_label(lu.ratio_at_level)}, outside the tested "
                f"{ratio_label(fit.ratio_min)}–{ratio_label(fit.ratio_max)}",
                value=lu.ratio_at_level,
                blocking=False,
            )
        )
    std = _standard_ratio(ratios, fit, s.standard_ratio, lysis_ok)
    if std.method == "extrapolated":
        qc.append(
            _flag(
                "standard_ratio_extrapolated",
                False,
                f"lysis at {ratio_label(s.standard_ratio)} is extrapolated from the fitted model "
                "beyond the tested ratios",
                value=std.lysis_percent,
                blocking=False,
            )
        )
    return ConditionResult(
        sample=sample,
        treatment=treatment,
        controls=scope,
        spontaneous_wells=s_wells,
        maximum_wells=m_wells,
        spontaneous_signal=s_mean,
        maximum_signal=m_mean,
        spontaneous_percent_of_maximum=spm,
        ratios=tuple(ratios),
        fit=fit,
        lytic_units=lu,
        standard_ratio=std,
        qc=tuple(qc),
    )


def _replicates_typed_twice(
    wells: Sequence[Measurement], ratio: float, fewest: int | None
) -> list[QCFlag]:
    """A ratio typed twice in a layout (25:1 wells marked "50:1") merges two ratios' wells
    into one, and the other ratio is gone (audit 20). Replicate numbers that repeat within the
    ratio say so for certain: withheld. Without replicate numbers, at least twice the wells of
    the condition's other ratio with the fewest (``fewest``) is a warning."""
    seen: dict[int, str] = {}
    for m in wells:
        if m.replicate is None:
            continue
        if m.replicate in seen:
            return [
                _flag(
                    "replicates_distinct",
                    False,
                    f"wells {seen[m.replicate]} and {m.unit_id} are both replicate "
                    f"{m.replicate} at {ratio_label(ratio)}: a ratio typed twice in the layout? "
                    "Their wells would be averaged as one ratio's",
                )
            ]
        seen[m.replicate] = m.unit_id
    if not seen and fewest and len(wells) >= 2 * fewest:
        return [
            _flag(
                "replicates_distinct",
                False,
                f"{len(wells)} wells at {ratio_label(ratio)}, where another ratio of the "
                f"condition has {fewest}: more replicates by design, or a ratio typed twice "
                "in the layout? (a replicate column would tell)",
                value=len(wells),
                limit=fewest,
                blocking=False,
            )
        ]
    return []


def _standard_ratio(
    ratios: Sequence[RatioResult],
    fit: object,
    standard: float,
    lysis_ok: bool,
) -> StandardRatioLysis:
    from nkpanel.cytotox.lytic import ExponentialFit

    for r in ratios:
        if math.isclose(r.ratio, standard, rel_tol=1e-9):
            if r.mean_lysis_percent is None:
                return StandardRatioLysis(standard, None, "unavailable", "no lysis computed")
            return StandardRatioLysis(standard, r.mean_lysis_percent, "measured")
    if not lysis_ok:
        return StandardRatioLysis(standard, None, "unavailable", "no lysis computed")
    if not isinstance(fit, ExponentialFit):
        return StandardRatioLysis(
            standard, None, "unavailable", "no fitted curve (no well with positive lysis)"
        )
    value = float(fit.predict(standard))
    method: Literal["interpolated", "extrapolated"] = (
        "interpolated" if fit.ratio_min <= standard <= fit.ratio_max else "extrapolated"
    )
    return StandardRatioLysis(
        standard,
        value,
        method,
        f"read off the fitted exponential model (tested {ratio_label(fit.ratio_min)}–"
        f"{ratio_label(fit.ratio_max)})",
    )


def _suppression(
    sample: str, conditions: Sequence[ConditionResult], s: CytotoxSettings
) -> tuple[list[SuppressionResult], list[str]]:
    ref = next((c for c in conditions if c.treatment == "none"), None)
    treated = [c for c in conditions if c.treatment != "none"]
    if not treated:
        return [], []
    if ref is None:
        return [], [
            f"sample {sample}: no untreated wells, so suppression by "
            f"{', '.join(c.treatment for c in treated)} is not computed"
        ]
    out: list[SuppressionResult] = []
    ref_by = {_key(r.ratio): r for r in ref.ratios}
    for c in treated:
        for r in c.ratios:
            r0 = ref_by.get(_key(r.ratio))
            if r0 is None:
                continue
            out.append(
                _one_suppression(
                    sample,
                    c.treatment,
                    r.ratio,
                    "measured",
                    r0.mean_lysis_percent,
                    r.mean_lysis_percent,
                    ref.reportable and c.reportable,
                )
            )
        measured = _key(s.standard_ratio) in ref_by and any(
            _key(r.ratio) == _key(s.standard_ratio) for r in c.ratios
        )
        if not measured:
            a, b = ref.standard_ratio, c.standard_ratio
            if a.lysis_percent is not None and b.lysis_percent is not None:
                beyond = (
                    f"read off a fitted curve beyond the tested ratios at "
                    f"{ratio_label(s.standard_ratio)}, not measured there"
                    if "extrapolated" in (a.method, b.method)
                    else None
                )
                out.append(
                    _one_suppression(
                        sample,
                        c.treatment,
                        s.standard_ratio,
                        "model",
                        a.lysis_percent,
                        b.lysis_percent,
                        ref.reportable and c.reportable,
                        beyond=beyond,
                    )
                )
    return out, []


def _one_suppression(
    sample: str,
    treatment: str,
    ratio: float,
    basis: Literal["measured", "model"],
    without: float | None,
    with_: float | None,
    reportable: bool,
    *,
    beyond: str | None = None,
) -> SuppressionResult:
    """``beyond``: where the ratio lies beyond the tested ones (read off fitted curves), the
    note that says so (audit 20: −4% where the wells measured +30%)."""
    value: float | None = None
    notes: list[str] = []
    if without is None or with_ is None:
        notes.append("lysis not computed for one of the conditions")
    elif without <= 0:
        notes.append(f"no lysis without treatment ({without:.1f}%): suppression is undefined")
    else:
        value = float(suppression_percent(without, with_))
    if not reportable:
        notes.append("a condition is not reportable (see its QC)")
    if beyond is not None:
        notes.append(beyond)
    return SuppressionResult(
        sample,
        treatment,
        "none",
        ratio,
        basis,
        without,
        with_,
        value,
        reportable,
        "; ".join(notes) or None,
        extrapolated=beyond is not None,
    )
