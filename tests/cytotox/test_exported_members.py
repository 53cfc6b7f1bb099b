"""The cytotox public surface is locked: a change to it is a deliberate change to this test."""

from __future__ import annotations

import nkpanel.cytotox as cytotox


def test_public_surface() -> None:
    assert sorted(cytotox.__all__) == sorted(
        [
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
    )
    for name in cytotox.__all__:
        assert getattr(cytotox, name) is not None
