"""Hand-made case summaries (synthetic) in the shape ``nkpanel run`` writes, including the
cytotoxicity and endometrial sections the other biomarkers will add
(:mod:`nkpanel.interpret.measurements` documents that contract)."""

from __future__ import annotations

from typing import Any


def flow_entry(
    *,
    sample: str = "tube1",
    nk_pct: float | None = 14.0,
    per_ul: float | None = 280.0,
    bright: float | None = 5.0,
    dim: float | None = 94.0,
    nklt: float | None = 4.0,
    n_lymph: int = 20_000,
    n_nk: int = 2_800,
    n_beads: int = 10_000,
    failed_check: str | None = None,
    warn_check: str | None = None,
    count_method: str = "bead",
    figures: list[str] | None = None,
) -> dict[str, Any]:
    """A flow result as :meth:`FlowResult.summary` writes it, with the ``figures`` the case
    pipeline adds."""
    qc: list[dict[str, Any]] = [
        {
            "check": "lymphocyte events",
            "passed": True,
            "value": n_lymph,
            "limit": 2000,
            "reason": f"{n_lymph} gated lymphocyte events (minimum 2000)",
            "blocking": True,
        },
        {
            "check": "NK events",
            "passed": True,
            "value": n_nk,
            "limit": 100,
            "reason": f"{n_nk} gated NK events (minimum 100 for a count CV ≤ 10%)",
            "blocking": True,
        },
        {
            "check": "bead events",
            "passed": True,
            "value": n_beads,
            "limit": 1000,
            "reason": f"{n_beads} counting-bead events (minimum 1000)",
            "blocking": True,
        },
    ]
    if failed_check:
        qc.append(
            {
                "check": "flow rate",
                "passed": False,
                "value": 0.2,
                "limit": 0.05,
                "reason": failed_check,
                "blocking": True,
            }
        )
    if warn_check:
        qc.append(
            {
                "check": "compensation",
                "passed": False,
                "value": None,
                "limit": None,
                "reason": warn_check,
                "blocking": False,
            }
        )
    reasons = [failed_check] if failed_check else []
    return {
        "sample": sample,
        "source": f"/data/{sample}.fcs",
        "gating": "automated",
        "cytometry": "flow",
        "n_events": 100_000,
        "reportable": not reasons,
        "not_reportable_reasons": reasons,
        "nk_percent_of_lymphocytes": nk_pct,
        "nk_percent_of_leukocytes": None if nk_pct is None else nk_pct / 3,
        "cd56bright_percent_of_nk": bright,
        "cd56dim_percent_of_nk": dim,
        "cd56bright_to_dim_ratio": None,
        "nk_like_t_percent_of_lymphocytes": nklt,
        "nk_cells_per_ul": per_ul,
        "absolute_count_method": count_method,
        "qc": qc,
        "notes": [],
        "metadata": {"cyt": "hand-made test summary (synthetic)"},
        "template": None,
        "template_roles": {},
        "file_notes": [],
        "markers": {"CD3": "FITC-A", "CD16": "PE-A", "CD56": "APC-A"},
        "figures": figures or [],
    }


def summary(
    *,
    episode: str = "SYNTH-EP-2",
    collected: str = "2026-11-02T08:30:00",
    flow: list[dict[str, Any]] | None = None,
    cytotoxicity: list[dict[str, Any]] | None = None,
    endometrial: list[dict[str, Any]] | None = None,
    pre_analytic: dict[str, Any] | None = None,
    draw_pre_analytic: dict[str, Any] | None = None,
    failures: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A whole case summary; flow defaults to one reportable tube."""
    draw: dict[str, Any] = {
        "id": "draw-1",
        "collected": collected,
        "bead_lot": "SYNTHETIC-LOT-1",
        "flow": [flow_entry()] if flow is None else flow,
        "failures": failures or [],
    }
    if draw_pre_analytic is not None:
        draw["pre_analytic"] = draw_pre_analytic
    out: dict[str, Any] = {
        "case": {"id": episode, "patient_id": "SYNTH-P1", "age_years": 34, "synthetic": True},
        "indication": {
            "pregnancy_losses": 3,
            "failed_ivf_cycles": 1,
            "unexplained_infertility": False,
        },
        "synthetic": True,
        "blood_draws": [draw],
    }
    if cytotoxicity is not None:
        out["cytotoxicity"] = cytotoxicity
    if endometrial is not None:
        out["endometrial"] = endometrial
    if pre_analytic is not None:
        out["pre_analytic"] = pre_analytic
    return out


def plate(
    *,
    lysis: float | None = 18.0,
    lu: float | None = 35.0,
    ivig: float | None = 41.0,
    intralipid: float | None = None,
    reportable: bool = True,
    collected: str = "2026-11-02T08:30:00",
) -> dict[str, Any]:
    """An NK-activity plate in the documented cytotoxicity shape."""
    supp: dict[str, float] = {}
    if ivig is not None:
        supp["IVIG"] = ivig
    if intralipid is not None:
        supp["intralipid"] = intralipid
    return {
        "id": "plate-1",
        "sample": "plate-1",
        "collected": collected,
        "method": "51Cr release, K562 targets, PBMC effectors",
        "reportable": reportable,
        "not_reportable_reasons": [] if reportable else ["spontaneous release 45% of maximum"],
        "specific_lysis_percent_at_50_1": lysis,
        "lytic_units_per_1e7_effectors": lu,
        "suppression_percent": supp,
        "lysis_by_ratio": [
            {"effector_to_target": 50, "specific_lysis_percent": lysis or 0.0},
            {"effector_to_target": 25, "specific_lysis_percent": (lysis or 0.0) * 0.7},
            {"effector_to_target": 12.5, "specific_lysis_percent": (lysis or 0.0) * 0.45},
        ],
        "qc": [],
    }


def biopsy(
    *,
    pct: float | None = 3.0,
    per_mm2: float | None = 250.0,
    lh_day: int | None = 8,
    reportable: bool = True,
    collected: str = "2026-10-20T10:00:00",
    figures: list[str] | None = None,
) -> dict[str, Any]:
    """An endometrial biopsy in the documented endometrial shape."""
    return {
        "id": "biopsy-1",
        "sample": "slide-1",
        "collected": collected,
        "lh_day": lh_day,
        "method": "CD56 IHC, % of stromal cells, 10 fields ×400",
        "reportable": reportable,
        "not_reportable_reasons": [] if reportable else ["fewer than 10 fields of stroma"],
        "unk_percent_of_stromal_cells": pct,
        "unk_per_mm2_stroma": per_mm2,
        "figures": figures or [],
        "qc": [],
    }


def _check(check: str, passed: bool, reason: str, *, blocking: bool = True) -> dict[str, Any]:
    return {
        "check": check,
        "passed": passed,
        "value": None,
        "limit": None,
        "reason": reason,
        "blocking": blocking,
    }


def native_plate(
    *,
    lu_extrapolated: bool = False,
    outlier_at: float | None = None,
    ivig_fit_warning: bool = False,
) -> dict[str, Any]:
    """A plate summary as :func:`nkpanel.cytotox.manifest.run_plate_for_case` writes it (the
    fields interpretation reads; hand-made, synthetic), one sample with and without IVIG."""

    def ratios(treatment: str) -> list[dict[str, Any]]:
        out = []
        for ratio, lysis in ((50.0, 30.0), (25.0, 18.0), (12.5, 11.0)):
            qc = [_check("replicate_cv", True, f"replicate signals vary with CV 4.{int(ratio)}%")]
            if outlier_at is not None and ratio == outlier_at and treatment == "none":
                qc.append(
                    _check(
                        "outliers",
                        False,
                        f"well(s) B{int(ratio)} lie outside their replicates; kept in the mean",
                        blocking=False,
                    )
                )
            out.append(
                {
                    "ratio": ratio,
                    "ratio_label": f"{ratio:g}:1",
                    "mean_lysis_percent": lysis,
                    "cv_lysis_percent": 6.0,
                    "qc": qc,
                }
            )
        return out

    def condition(treatment: str) -> dict[str, Any]:
        qc = [
            _check(
                "spontaneous_release", True, "spontaneous release is 12.0% of maximum (limit 30%)"
            ),
            _check("fit_quality", True, "exponential fit R² 0.98", blocking=False),
        ]
        if treatment == "none" and lu_extrapolated:
            qc.append(
                _check(
                    "lytic_units_extrapolated",
                    False,
                    "LU20: the model reaches 20% at 60:1, outside the tested 12.5:1–50:1",
                    blocking=False,
                )
            )
        if treatment != "none" and ivig_fit_warning:
            qc[1] = _check("fit_quality", False, "exponential fit R² 0.61", blocking=False)
        return {
            "treatment": treatment,
            "spontaneous_percent_of_maximum": 12.0,
            "reportable": True,
            "not_reportable_reasons": [],
            "ratios": ratios(treatment),
            "lytic_units": {"extrapolated": treatment == "none" and lu_extrapolated},
            "qc": qc,
        }

    def head(treatment: str, suppression: float | None) -> dict[str, Any]:
        return {
            "sample": "SYNTH-P01",
            "treatment": treatment,
            "standard_ratio": 50.0,
            "lysis_at_standard_ratio_percent": 30.0 if treatment == "none" else 20.0,
            "lysis_at_standard_ratio_method": "measured",
            "lu_level_percent": 20.0,
            "lu_per_1e7_effectors": 30.0 if treatment == "none" else 15.0,
            "reportable": True,
            "not_reportable_reasons": [],
            "suppression_at_standard_ratio_percent": suppression,
        }

    return {
        "id": "plate-native",
        "assay": "chromium51",
        "effector_cells": "PBMC",
        "target_cells": "K562",
        "sample_id": "SYNTH-P01",
        "synthetic": True,
        "files": [],
        "headline": [head("none", None), head("IVIG 2 mg/mL", 33.3)],
        "samples": [
            {
                "sample": "SYNTH-P01",
                "reportable": True,
                "not_reportable_reasons": [],
                "conditions": [condition("none"), condition("IVIG 2 mg/mL")],
                "notes": [],
            }
        ],
        "failures": [],
        "notes": [],
    }
