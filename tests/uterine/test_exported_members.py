"""The public surface of nkpanel.uterine is locked: changing it is a deliberate change here."""

from __future__ import annotations

import nkpanel.uterine


def test_public_surface() -> None:
    assert sorted(nkpanel.uterine.__all__) == sorted(
        [
            "CellTable",
            "DetectionSettings",
            "EndometrialBiopsy",
            "FieldCount",
            "StainVectors",
            "UterineAnalysis",
            "UterineBatch",
            "UterineResult",
            "UterineSettings",
            "analyze_batch",
            "analyze_image",
            "deconvolve",
            "detect_cells",
            "estimate_macenko",
            "ruifrok_hdab",
            "run_biopsy_for_case",
        ]
    )
    for name in nkpanel.uterine.__all__:
        assert hasattr(nkpanel.uterine, name)


def test_cli_app_is_a_typer_app() -> None:
    import typer

    from nkpanel.uterine.cli import app

    assert isinstance(app, typer.Typer)
    names = {c.name for c in app.registered_commands}
    assert names == {"analyze", "simulate"}
