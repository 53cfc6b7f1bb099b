"""The synthetic plate generator: labelled synthetic, and its truth recovered by the analysis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nkpanel.cytotox.analyze import CytotoxSettings, analyze_plate_files
from nkpanel.cytotox.layout import read_layout
from nkpanel.cytotox.reads import read_plate
from nkpanel.cytotox.simulate import (
    PlateSimulationSpec,
    SimulatedSample,
    simulate_plate,
    write_synthetic_plate,
)
from nkpanel.errors import ConfigError


def truth_lysis(truth: dict[str, object]) -> dict[tuple[str, str, float], float]:
    rows = truth["lysis"]
    assert isinstance(rows, list)
    return {(r["sample"], r["treatment"], r["ratio"]): r["lysis_percent"] for r in rows}


@pytest.mark.parametrize("kind", ["calcein", "ldh"])
def test_noise_free_plates_are_recovered_exactly(tmp_path: Path, kind: str) -> None:
    spec = PlateSimulationSpec(kind=kind, well_cv_percent=0.0)  # type: ignore[arg-type]
    reads, layout, truth_path = write_synthetic_plate(tmp_path, spec, form="long")
    truth = json.loads(truth_path.read_text())
    assert truth["synthetic"] is True and "SYNTHETIC" in reads.read_text().splitlines()[0]
    res = analyze_plate_files(reads, layout, kind=kind)  # type: ignore[arg-type]
    assert res.synthetic and not res.failures
    expected = truth_lysis(truth)
    rows = res.rows()
    assert len(rows) == len(expected)
    for row in rows:
        want = expected[(row["sample"], row["treatment"], row["ratio"])]
        # values are written with 4 decimals: lysis agrees to well under 0.01 points
        assert row["mean_lysis_percent"] == pytest.approx(want, abs=0.01)


def test_noisy_51cr_plate_is_close_to_its_truth(tmp_path: Path) -> None:
    reads, layout, truth_path = write_synthetic_plate(tmp_path, PlateSimulationSpec(seed=4))
    truth = json.loads(truth_path.read_text())
    res = analyze_plate_files(reads, layout, CytotoxSettings(targets_per_well=10_000))
    expected = truth_lysis(truth)
    for row in res.rows():
        assert row["mean_lysis_percent"] == pytest.approx(
            expected[(row["sample"], row["treatment"], row["ratio"])], abs=4.0
        )
    assert res.unit == "cpm" and res.synthetic


def test_xlsx_and_384_wells(tmp_path: Path) -> None:
    spec = PlateSimulationSpec(
        plate_format=384,
        replicates=4,
        samples=tuple(SimulatedSample(f"S{i}", 40.0, 0.02) for i in range(12)),
    )
    reads, layout, _ = write_synthetic_plate(tmp_path, spec, form="xlsx")
    assert reads.suffix == ".xlsx"
    res = analyze_plate_files(reads, layout)
    assert len(res.samples) == 12 and not res.failures and res.rows()[0]["n"] == 4
    # the workbook says SYNTHETIC on its first row, and so does each file on its own
    assert read_plate(reads).synthetic and read_layout(layout).synthetic and res.synthetic
    unmarked = tmp_path / "lab_layout.csv"
    unmarked.write_text("\n".join(layout.read_text().splitlines()[1:]) + "\n")
    assert not read_layout(unmarked).synthetic
    # marked workbook, unmarked layout: still synthetic (either file says so)
    assert analyze_plate_files(reads, unmarked).synthetic


def test_a_design_too_big_for_the_plate() -> None:
    spec = PlateSimulationSpec(samples=tuple(SimulatedSample(f"S{i}") for i in range(9)))
    with pytest.raises(ConfigError, match="more than the 96 wells"):
        simulate_plate(spec)
