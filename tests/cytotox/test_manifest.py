"""The [[cytotoxicity]] table of a case manifest, and running a plate for a case."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from nkpanel.cytotox.manifest import CytotoxicityPlate, run_plate_for_case
from nkpanel.cytotox.simulate import (
    FlowKillingSpec,
    write_synthetic_flow_killing,
    write_synthetic_plate,
)
from nkpanel.errors import InputError

TOML = """
[[cytotoxicity]]
id = "nk-activity-1"
assay = "chromium51"
reads = "nk/plate_reads.csv"
layout = "nk/plate_layout.csv"
sample_id = "SYNTH-P01"
effector_cells = "pbmc"
assay_date = 2026-11-03
targets_per_well = 10000
reference_low_percent = 10
reference_high_percent = 20
reference_source = "SYNTHETIC example band"
"""


def plate_from_toml(text: str = TOML) -> CytotoxicityPlate:
    return CytotoxicityPlate.model_validate(tomllib.loads(text)["cytotoxicity"][0])


def test_the_manifest_table() -> None:
    plate = plate_from_toml()
    assert plate.effector_cells == "PBMC" and plate.assay_date is not None
    assert plate.model_config.get("extra") == "forbid" and plate.model_config.get("frozen")
    s = plate.settings()
    assert s.min_replicates == 2 and s.reference is not None and s.targets_per_well == 10000
    assert (s.cv_limit_percent, s.lysis_cv_floor_percent) == (20.0, 10.0)
    own = CytotoxicityPlate(reads=Path("r"), layout=Path("l"), lysis_cv_floor_percent=5)
    assert own.settings().lysis_cv_floor_percent == 5.0
    whole = CytotoxicityPlate(reads=Path("r"), layout=Path("l"), effector_cells="Whole_Blood")
    assert whole.effector_cells == "whole blood"
    flow = CytotoxicityPlate(assay="flow", tubes=Path("t.csv"))
    assert flow.settings().min_replicates == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reads": "r.csv", "layout": "l.csv", "colour": "red"}, "Extra inputs"),
        ({"reads": "r.csv"}, "needs layout"),
        ({"assay": "flow"}, "needs 'tubes'"),
        ({"assay": "flow", "tubes": "t", "reads": "r"}, "not 'reads'"),
        ({"reads": "r", "layout": "l", "tubes": "t"}, "for assay"),
        ({"reads": "r", "layout": "l", "reference_low_percent": 5}, "go together"),
        ({"reads": "r", "layout": "l", "lysis_level_percent": 100}, "less than 100"),
        ({"reads": "r", "layout": "l", "effector_cells": "spleen"}, "effector_cells"),
    ],
)
def test_invalid_entries(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CytotoxicityPlate.model_validate(fields)


def test_run_plate_for_case(tmp_path: Path) -> None:
    write_synthetic_plate(tmp_path / "nk")
    plate = plate_from_toml()
    out = tmp_path / "out" / "cytotoxicity" / plate.id
    summary = run_plate_for_case(plate, tmp_path, out, None)
    json.dumps(summary, allow_nan=False)  # JSON-ready
    assert summary["sample_id"] == "SYNTH-P01" and summary["synthetic"] is True
    assert [s["sample"] for s in summary["samples"]] == ["SYNTH-P01"]
    head = {h["treatment"]: h for h in summary["headline"]}
    assert set(head) == {"none", "IVIG 2 mg/mL", "intralipid 18 mg/mL"}
    assert head["none"]["lysis_at_standard_ratio_method"] == "measured"
    assert head["none"]["lu_per_1e7_effectors"] > 0
    assert head["IVIG 2 mg/mL"]["suppression_at_standard_ratio_percent"] > 0
    assert head["none"]["suppression_at_standard_ratio_percent"] is None
    for name in ("lysis.csv", "lysis.json", "conditions.csv", "suppression.csv", "summary.json"):
        assert (out / name).is_file()
    assert (out / "plots" / "SYNTH-P01.png").is_file()
    # the argument wins over the manifest's sample id; a sample not on the plate is an error
    other = run_plate_for_case(plate, tmp_path, tmp_path / "o2", "SYNTH-P02", plots=False)
    assert [s["sample"] for s in other["samples"]] == ["SYNTH-P02"]
    with pytest.raises(InputError, match="sample 'P99' is not on the plate"):
        run_plate_for_case(plate, tmp_path, tmp_path / "o3", "P99", plots=False)
    # no sample named for a plate of two: refused, not the first sample taken as the patient's
    anyone = plate.model_copy(update={"sample_id": None})
    with pytest.raises(
        InputError, match=r"holds 2 samples \(SYNTH-P01, SYNTH-P02\): set sample_id"
    ):
        run_plate_for_case(anyone, tmp_path, tmp_path / "o4", None, plots=False)
    assert not (tmp_path / "o4").exists()


def test_run_flow_killing_for_case(tmp_path: Path) -> None:
    write_synthetic_flow_killing(tmp_path / "nk", FlowKillingSpec(target_events=1200))
    plate = CytotoxicityPlate(assay="flow", tubes=Path("nk/tubes.csv"), sample_id="SYNTH-P01")
    summary = run_plate_for_case(plate, tmp_path, tmp_path / "out", None, plots=False)
    assert summary["assay"] == "flow" and summary["synthetic"] is True
    assert len(summary["flow_gating"]) == 10 and (tmp_path / "out" / "gating.csv").is_file()


def test_synthetic_case_assays_feed_a_case_manifest(tmp_path: Path) -> None:
    from nkpanel.cytotox.simulate import write_synthetic_case_assays

    text = write_synthetic_case_assays(tmp_path, flow=True)
    assert text.count("SYNTHETIC") == 2
    tables = tomllib.loads(text)["cytotoxicity"]
    plates = [CytotoxicityPlate.model_validate(t) for t in tables]
    assert [p.assay for p in plates] == ["chromium51", "flow"]
    for p in plates:
        summary = run_plate_for_case(p, tmp_path, tmp_path / "out" / p.id, None, plots=False)
        assert summary["synthetic"] is True and summary["headline"]
        assert not summary["failures"]
