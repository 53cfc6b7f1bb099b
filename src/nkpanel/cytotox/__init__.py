"""NK-cell activity (cytotoxicity): the second biomarker.

Patient effector cells kill K562 targets at several effector:target ratios; nkpanel turns the
instrument's export into % specific lysis per ratio with replicate statistics and QC, lytic
units from the exponential model, lysis at the standard ratio, and suppression by IVIG or
intralipid, reported as measured (domain brief §2).

Inputs: release assays (51Cr, europium, calcein, LDH) as plate exports (:func:`read_plate`) with
a layout (:func:`read_layout`), analysed by :func:`analyze_plate`; or flow-killing FCS tubes
(:func:`analyze_flow_killing`). Outputs: :func:`write_outputs`. Case manifests:
:class:`CytotoxicityPlate` and :func:`run_plate_for_case`.

Modules: ``wells`` (plate geometry), ``reads`` and ``layout`` (input files), ``lysis`` and
``lytic`` (numeric kernels), ``analyze`` (the analysis), ``results`` (typed records),
``flowkill`` (flow-based killing), ``output`` and ``plots`` (files), ``simulate`` (synthetic
data), ``manifest`` (case manifests), ``cli`` (``nkpanel cytotox``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nkpanel._lazy import lazy_exports

if TYPE_CHECKING:
    from nkpanel.cytotox.analyze import (
        CytotoxSettings,
        ReferenceBand,
        analyze_plate,
        analyze_plate_files,
    )
    from nkpanel.cytotox.flowkill import FlowKillingSettings, analyze_flow_killing
    from nkpanel.cytotox.layout import PlateLayout, Treatment, read_layout
    from nkpanel.cytotox.lysis import (
        flow_specific_killing,
        replicate_stats,
        robust_outliers,
        specific_lysis,
        suppression_percent,
    )
    from nkpanel.cytotox.lytic import ExponentialFit, LyticUnits, fit_exponential, lytic_units
    from nkpanel.cytotox.manifest import CytotoxicityPlate, run_plate_for_case
    from nkpanel.cytotox.output import write_outputs
    from nkpanel.cytotox.reads import PlateReads, read_plate
    from nkpanel.cytotox.results import (
        ConditionResult,
        CytotoxResult,
        RatioResult,
        SampleFailure,
        SampleResult,
        SuppressionResult,
    )

__all__ = [
    "ConditionResult",
    "CytotoxResult",
    "CytotoxSettings",
    "CytotoxicityPlate",
    "ExponentialFit",
    "FlowKillingSettings",
    "LyticUnits",
    "PlateLayout",
    "PlateReads",
    "RatioResult",
    "ReferenceBand",
    "SampleFailure",
    "SampleResult",
    "SuppressionResult",
    "Treatment",
    "analyze_flow_killing",
    "analyze_plate",
    "analyze_plate_files",
    "fit_exponential",
    "flow_specific_killing",
    "lytic_units",
    "read_layout",
    "read_plate",
    "replicate_stats",
    "robust_outliers",
    "run_plate_for_case",
    "specific_lysis",
    "suppression_percent",
    "write_outputs",
]

#: where each public name lives; modules are imported on first use, so that ``nkpanel --help``
#: and the case manifest do not pay for numpy, scipy and matplotlib before they need them
_HOME = {
    "CytotoxSettings": "analyze",
    "ReferenceBand": "analyze",
    "analyze_plate": "analyze",
    "analyze_plate_files": "analyze",
    "FlowKillingSettings": "flowkill",
    "analyze_flow_killing": "flowkill",
    "PlateLayout": "layout",
    "Treatment": "layout",
    "read_layout": "layout",
    "flow_specific_killing": "lysis",
    "replicate_stats": "lysis",
    "robust_outliers": "lysis",
    "specific_lysis": "lysis",
    "suppression_percent": "lysis",
    "ExponentialFit": "lytic",
    "LyticUnits": "lytic",
    "fit_exponential": "lytic",
    "lytic_units": "lytic",
    "CytotoxicityPlate": "manifest",
    "run_plate_for_case": "manifest",
    "write_outputs": "output",
    "PlateReads": "reads",
    "read_plate": "reads",
    "ConditionResult": "results",
    "CytotoxResult": "results",
    "RatioResult": "results",
    "SampleFailure": "results",
    "SampleResult": "results",
    "SuppressionResult": "results",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
