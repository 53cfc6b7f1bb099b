"""Typed result records of the NK-activity biomarker, and their tidy-table forms.

A plate (or a set of flow-killing tubes) gives one :class:`CytotoxResult`: per sample, per
treatment (a *condition*), per effector:target ratio the replicate wells' % specific lysis with
mean, SD, CV and flags; per condition the controls, the exponential fit, lytic units and lysis at
the standard ratio; per sample the suppression by each treatment. Samples that could not be
analysed are listed with one line per cause.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from nkpanel.cytotox.layout import Role
from nkpanel.cytotox.lytic import ExponentialFit, LyticUnits
from nkpanel.flow.qc import QCFlag

__all__ = [
    "ConditionResult",
    "CytotoxResult",
    "RatioResult",
    "SampleFailure",
    "SampleResult",
    "StandardRatioLysis",
    "SuppressionResult",
    "WellResult",
    "ratio_label",
]


def ratio_label(ratio: float) -> str:
    """``50.0`` → ``"50:1"``, ``1.5625`` → ``"1.5625:1"``; a ratio read off a curve (not a
    dilution of four decimals at most) to four significant digits: ``52.4999`` → ``"52.5:1"``."""
    return f"{ratio:g}:1" if ratio == round(ratio, 4) else f"{ratio:.4g}:1"


def _failed(qc: tuple[QCFlag, ...]) -> str:
    return "; ".join(f"{f.check}: {f.reason}" for f in qc if not f.passed)


@dataclass(frozen=True)
class WellResult:
    """One well (or flow tube): its signal as read, after blank correction, and its lysis.

    For flow-based killing ``raw_signal`` and ``signal`` are the dead % of the gated targets.
    """

    well: str
    role: Role
    sample: str
    treatment: str
    ratio: float | None
    replicate: int | None
    raw_signal: float
    signal: float
    lysis_percent: float | None
    outlier: bool


@dataclass(frozen=True)
class RatioResult:
    """Replicate wells of one sample, treatment and ratio: % specific lysis and its QC.

    ``mean_lysis_percent`` uses every well, outliers included (they are flagged, never
    dropped); ``mean_lysis_excluding_outliers_percent`` is given beside it for review.
    ``cv_lysis_percent`` is the CV of the wells' % lysis, ``signal_cv_percent`` the CV of their
    blank-corrected signals. The signal CV is the blocking replicate check (the CV of lysis
    grows without bound as lysis nears zero); the lysis CV is flagged as a warning above the
    same limit when the mean lysis is at least 10%
    (:func:`~nkpanel.cytotox.analyze.replicate_cv_flags`).
    """

    sample: str
    treatment: str
    ratio: float
    wells: tuple[WellResult, ...]
    mean_lysis_percent: float | None
    sd_lysis_percent: float | None
    cv_lysis_percent: float | None
    signal_cv_percent: float | None
    mean_lysis_excluding_outliers_percent: float | None
    qc: tuple[QCFlag, ...] = ()

    @property
    def n(self) -> int:
        return len(self.wells)

    @property
    def outlier_wells(self) -> tuple[str, ...]:
        return tuple(w.well for w in self.wells if w.outlier)

    @property
    def reportable(self) -> bool:
        return all(f.passed or not f.blocking for f in self.qc)


@dataclass(frozen=True)
class StandardRatioLysis:
    """Lysis at the standard ratio: measured there, or read off the fitted model."""

    ratio: float
    lysis_percent: float | None
    method: Literal["measured", "interpolated", "extrapolated", "unavailable"]
    reason: str | None = None


@dataclass(frozen=True)
class ConditionResult:
    """One sample under one treatment: its controls, its ratios, the fit and lytic units.

    ``spontaneous_signal`` and ``maximum_signal`` are blank-corrected means (for flow killing:
    dead % of targets alone, and 100). ``controls`` says which wells served as controls.
    """

    sample: str
    treatment: str
    controls: str
    spontaneous_wells: tuple[WellResult, ...]
    maximum_wells: tuple[WellResult, ...]
    spontaneous_signal: float | None
    maximum_signal: float | None
    spontaneous_percent_of_maximum: float | None
    ratios: tuple[RatioResult, ...]
    fit: ExponentialFit | None
    lytic_units: LyticUnits | None
    standard_ratio: StandardRatioLysis
    qc: tuple[QCFlag, ...] = ()

    @property
    def reportable(self) -> bool:
        """No blocking check failed, for the controls or for any ratio."""
        return all(f.passed or not f.blocking for f in self.qc) and all(
            r.reportable for r in self.ratios
        )

    @property
    def not_reportable_reasons(self) -> tuple[str, ...]:
        out = [f.reason for f in self.qc if f.blocking and not f.passed]
        for r in self.ratios:
            out += [
                f"{ratio_label(r.ratio)}: {f.reason}" for f in r.qc if f.blocking and not f.passed
            ]
        return tuple(out)


@dataclass(frozen=True)
class SuppressionResult:
    """Suppression of one sample's lysis by a treatment at one ratio, as measured.

    ``basis`` is ``"measured"`` for a ratio tested under both conditions, ``"model"`` at the
    standard ratio when it was read off each condition's fitted curve. No pass/fail criterion is
    given: none has been validated.
    """

    sample: str
    treatment: str
    reference_treatment: str
    ratio: float
    basis: Literal["measured", "model"]
    lysis_without_percent: float | None
    lysis_with_percent: float | None
    suppression_percent: float | None
    reportable: bool
    note: str | None = None
    #: read off fitted curves beyond the tested ratios (``basis`` "model" only)
    extrapolated: bool = False


@dataclass(frozen=True)
class SampleResult:
    """Every condition of one sample, and the suppression by each treatment."""

    sample: str
    conditions: tuple[ConditionResult, ...]
    suppression: tuple[SuppressionResult, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def reportable(self) -> bool:
        return all(c.reportable for c in self.conditions)

    @property
    def not_reportable_reasons(self) -> tuple[str, ...]:
        return tuple(
            f"{c.treatment}: {reason}"
            for c in self.conditions
            for reason in c.not_reportable_reasons
        )

    def condition(self, treatment: str) -> ConditionResult:
        for c in self.conditions:
            if c.treatment == treatment:
                return c
        raise KeyError(treatment)

    def suppression_at(self, ratio: float, treatment: str | None = None) -> list[SuppressionResult]:
        """The suppression results at ``ratio`` (by each treatment, or by ``treatment`` only).

        Ratios are compared with :func:`math.isclose`: a ratio given in a file as 12.5 and one
        computed as 50 / 4 are the same ratio."""
        return [
            x
            for x in self.suppression
            if math.isclose(x.ratio, ratio) and treatment in (None, x.treatment)
        ]


@dataclass(frozen=True)
class SampleFailure:
    """A sample that could not be analysed; each reason is one line naming file, well, cause.

    ``sample`` is ``""`` for problems that belong to no sample (a layout row without a sample
    id or with an unknown role).
    """

    sample: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class CytotoxResult:
    """The NK-activity results of one plate or one set of flow-killing tubes."""

    plate_id: str
    assay: str
    reads_source: str
    layout_source: str
    unit: str | None
    samples: tuple[SampleResult, ...]
    failures: tuple[SampleFailure, ...] = ()
    notes: tuple[str, ...] = ()
    blank_signal: float | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    synthetic: bool = False

    def sample(self, name: str) -> SampleResult:
        for s in self.samples:
            if s.sample == name:
                return s
        raise KeyError(name)

    def rows(self) -> list[dict[str, Any]]:
        """The tidy table: one row per sample × treatment × ratio."""
        out: list[dict[str, Any]] = []
        for s in self.samples:
            for c in s.conditions:
                for r in c.ratios:
                    flags = [x for x in (_failed(c.qc), _failed(r.qc)) if x]
                    out.append(
                        {
                            "plate": self.plate_id,
                            "assay": self.assay,
                            "sample": s.sample,
                            "treatment": c.treatment,
                            "ratio": r.ratio,
                            "ratio_label": ratio_label(r.ratio),
                            "n": r.n,
                            "mean_lysis_percent": r.mean_lysis_percent,
                            "sd_lysis_percent": r.sd_lysis_percent,
                            "cv_lysis_percent": r.cv_lysis_percent,
                            "signal_cv_percent": r.signal_cv_percent,
                            "mean_lysis_excluding_outliers_percent": (
                                r.mean_lysis_excluding_outliers_percent
                            ),
                            "wells": " ".join(w.well for w in r.wells),
                            "outlier_wells": " ".join(r.outlier_wells),
                            "spontaneous_percent_of_maximum": c.spontaneous_percent_of_maximum,
                            "reportable": c.reportable and r.reportable,
                            "flags": "; ".join(flags),
                            "synthetic": self.synthetic,
                        }
                    )
        return out

    def condition_rows(self) -> list[dict[str, Any]]:
        """One row per sample × treatment: controls, fit, lytic units, standard-ratio lysis."""
        out: list[dict[str, Any]] = []
        for s in self.samples:
            for c in s.conditions:
                fit, lu, std = c.fit, c.lytic_units, c.standard_ratio
                out.append(
                    {
                        "plate": self.plate_id,
                        "assay": self.assay,
                        "sample": s.sample,
                        "treatment": c.treatment,
                        "controls": c.controls,
                        "spontaneous_signal": c.spontaneous_signal,
                        "maximum_signal": c.maximum_signal,
                        "spontaneous_percent_of_maximum": c.spontaneous_percent_of_maximum,
                        "fit_plateau_percent": fit.plateau_percent if fit else None,
                        "fit_rate_per_ratio": fit.rate_per_ratio if fit else None,
                        "fit_plateau_fixed": fit.plateau_fixed if fit else None,
                        "fit_r_squared": fit.r_squared if fit else None,
                        "fit_rmse_percent": fit.rmse_percent if fit else None,
                        "fit_n_points": fit.n_points if fit else 0,
                        "lysis_level_percent": lu.lysis_level_percent if lu else None,
                        "ratio_at_lysis_level": lu.ratio_at_level if lu else None,
                        "targets_per_well": lu.targets_per_well if lu else None,
                        "lu_per_1e7_effectors": lu.lu_per_1e7_effectors if lu else None,
                        "lu_extrapolated": lu.extrapolated if lu else None,
                        "lu_upper_bound_per_1e7": lu.upper_bound_per_1e7 if lu else None,
                        "lu_note": lu.reason if lu else None,
                        "standard_ratio": std.ratio,
                        "standard_ratio_lysis_percent": std.lysis_percent,
                        "standard_ratio_method": std.method,
                        "reportable": c.reportable,
                        "not_reportable_reasons": "; ".join(c.not_reportable_reasons),
                        "synthetic": self.synthetic,
                    }
                )
        return out

    def suppression_rows(self) -> list[dict[str, Any]]:
        """One row per sample × treatment × ratio with both conditions measured."""
        return [
            {"plate": self.plate_id, **asdict(x), "synthetic": self.synthetic}
            for s in self.samples
            for x in s.suppression
        ]

    def well_rows(self) -> list[dict[str, Any]]:
        """Every well used, with its signal and lysis (the audit trail)."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for s in self.samples:
            for c in s.conditions:
                wells = [*c.spontaneous_wells, *c.maximum_wells]
                wells += [w for r in c.ratios for w in r.wells]
                for w in wells:
                    key = f"{w.well}|{c.sample}|{c.treatment}"
                    if key in seen:
                        continue
                    seen.add(key)
                    out.append(
                        {
                            "plate": self.plate_id,
                            "for_sample": s.sample,
                            "for_treatment": c.treatment,
                            **asdict(w),
                            "synthetic": self.synthetic,
                        }
                    )
        return out

    def summary(self, *, sample: str | None = None) -> dict[str, Any]:
        """A JSON-ready summary; with ``sample``, only that sample's results (and failure)."""
        samples = [s for s in self.samples if sample is None or s.sample == sample]
        failures = [f for f in self.failures if sample is None or f.sample in (sample, "")]
        return {
            "plate": self.plate_id,
            "assay": self.assay,
            "synthetic": self.synthetic,
            "reads": self.reads_source,
            "layout": self.layout_source,
            "unit": self.unit,
            "blank_signal": self.blank_signal,
            "settings": dict(self.settings),
            "samples": [_sample_summary(s) for s in samples],
            "failures": [{"sample": f.sample, "reasons": list(f.reasons)} for f in failures],
            "notes": list(self.notes),
        }


def _fit_dict(fit: ExponentialFit | None) -> dict[str, Any] | None:
    if fit is None:
        return None
    return {
        "model": "lysis% = A·(1 − exp(−k·ratio)) (Pross 1981; Bryant 1992)",
        **asdict(fit),
    }


def _sample_summary(s: SampleResult) -> dict[str, Any]:
    return {
        "sample": s.sample,
        "reportable": s.reportable,
        "not_reportable_reasons": list(s.not_reportable_reasons),
        "conditions": [
            {
                "treatment": c.treatment,
                "controls": c.controls,
                "spontaneous_signal": c.spontaneous_signal,
                "maximum_signal": c.maximum_signal,
                "spontaneous_percent_of_maximum": c.spontaneous_percent_of_maximum,
                "reportable": c.reportable,
                "not_reportable_reasons": list(c.not_reportable_reasons),
                "ratios": [
                    {
                        "ratio": r.ratio,
                        "ratio_label": ratio_label(r.ratio),
                        "n": r.n,
                        "wells": [w.well for w in r.wells],
                        "lysis_percent": [w.lysis_percent for w in r.wells],
                        "mean_lysis_percent": r.mean_lysis_percent,
                        "sd_lysis_percent": r.sd_lysis_percent,
                        "cv_lysis_percent": r.cv_lysis_percent,
                        "signal_cv_percent": r.signal_cv_percent,
                        "mean_lysis_excluding_outliers_percent": (
                            r.mean_lysis_excluding_outliers_percent
                        ),
                        "outlier_wells": list(r.outlier_wells),
                        "reportable": r.reportable,
                        "qc": [asdict(f) for f in r.qc],
                    }
                    for r in c.ratios
                ],
                "fit": _fit_dict(c.fit),
                "lytic_units": asdict(c.lytic_units) if c.lytic_units else None,
                "standard_ratio": asdict(c.standard_ratio),
                "qc": [asdict(f) for f in c.qc],
            }
            for c in s.conditions
        ],
        "suppression": [
            {**asdict(x), "criterion": "none validated; reported as measured"}
            for x in s.suppression
        ],
        "notes": list(s.notes),
    }
