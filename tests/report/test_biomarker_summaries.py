"""The NK-activity and endometrial sections as their own packages write them
(:func:`run_plate_for_case`, :func:`run_biopsy_for_case`), read into the report: the contract
between those summaries and interpretation, on synthetic plates and fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nkpanel.cytotox.manifest import CytotoxicityPlate, run_plate_for_case
from nkpanel.cytotox.simulate import write_synthetic_plate
from nkpanel.interpret import interpret_case
from nkpanel.report import build_reports
from nkpanel.uterine.cli import app as uterine_app
from nkpanel.uterine.manifest import EndometrialBiopsy, run_biopsy_for_case
from tests.interpret.summaries import summary


@pytest.fixture(scope="module")
def sections(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    d = tmp_path_factory.mktemp("biomarkers")
    write_synthetic_plate(d / "nk")
    plate = CytotoxicityPlate.model_validate(
        {
            "id": "nk-activity-1",
            "assay": "chromium51",
            "reads": "nk/plate_reads.csv",
            "layout": "nk/plate_layout.csv",
            "sample_id": "SYNTH-P01",
            "effector_cells": "pbmc",
            "targets_per_well": 10000,
        }
    )
    cyto = run_plate_for_case(plate, d, d / "results" / "cytotoxicity" / plate.id, None)
    res = CliRunner().invoke(
        uterine_app, ["simulate", "--out", str(d / "ut"), "--fields", "1", "--seed", "3"]
    )
    assert res.exit_code == 0, res.output
    biopsy = EndometrialBiopsy.model_validate(
        {
            "id": "biopsy-1",
            "lh_day": 8,
            "images": ["ut/synthetic_field_01.tif"],
            "collected": "2026-10-20",
        }
    )
    endo = run_biopsy_for_case(biopsy, d, d / "results" / "uterine" / "biopsy-1")
    return d, json.loads(json.dumps(cyto)), json.loads(json.dumps(endo))


def test_native_sections_become_measurements(
    sections: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    _, cyto, endo = sections
    reading = interpret_case(summary(cytotoxicity=[cyto], endometrial=[endo]))
    by = {r.measurand.code: r for r in reading.results}
    head = {h["treatment"]: h for h in cyto["headline"]}
    assert by["nka-lysis-50-1"].measurement.value == head["none"]["lysis_at_standard_ratio_percent"]
    assert by["nka-lu"].measurement.value == head["none"]["lu_per_1e7_effectors"]
    assert (
        by["nka-suppression-ivig"].measurement.value
        == (head["IVIG 2 mg/mL"]["suppression_at_standard_ratio_percent"])
    )
    assert by["nka-suppression-ivig"].flag == "reported_only"
    assert len(by["nka-lysis-50-1"].measurement.curve) >= 3
    # the across-field estimate (for a field image, one field: the whole stroma's value too)
    u = endo["uterine"]
    pct = u["across_fields_cd56_per_100_stromal_cells"]["estimate"]
    assert by["unk-pct-stroma"].measurement.value == pct == u["cd56_per_100_stromal_cells"]
    assert by["unk-per-mm2"].measurement.value == u["across_fields_cd56_per_mm2_stroma"]["estimate"]
    assert by["unk-pct-stroma"].measurement.estimate == "1 field image (each image one field)"
    assert by["unk-pct-stroma"].measurement.also == ()  # the field is the whole stroma
    assert by["unk-pct-stroma"].measurement.pre_analytic.lh_day == 8
    assert by["unk-pct-stroma"].flag in ("below", "within", "above")  # LH+8: the range applies
    assert all(r.measurement.figures for r in by.values() if r.measurand.biomarker != "flow")


def test_reports_embed_the_biomarkers_figures(
    sections: tuple[Path, dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    d, cyto, endo = sections
    paths = build_reports(
        summary(cytotoxicity=[cyto], endometrial=[endo]),
        tmp_path,
        results_dir=d / "results",
        pdf=False,
    )
    doc = json.loads(paths.json.read_text("utf-8"))
    titles = [f["title"] for f in doc["figures"]["biomarker_figures"]]
    assert any("lysis curves" in t for t in titles)
    assert any("CD56 overlay" in t for t in titles)
    assert {"tang-2011-nka", "tang-2011-unk", "roussev-2007"} <= {e["id"] for e in doc["evidence"]}


def test_plate_qc_of_the_real_summary_is_kept_whole(
    sections: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    # every check nkpanel.cytotox recorded for the patient's sample (per condition and per
    # ratio) reaches the report's QC record; none is dropped
    _, cyto, _ = sections
    (sample,) = [s for s in cyto["samples"] if s["sample"] == cyto["sample_id"]]
    expected = [len(c["qc"]) + sum(len(r["qc"]) for r in c["ratios"]) for c in sample["conditions"]]
    reading = interpret_case(summary(cytotoxicity=[cyto]))
    groups = [q for q in reading.episode.qc if q.biomarker == "cytotoxicity"]
    assert [len(q.checks) for q in groups] == expected
    assert all(any(c.check == "spontaneous_release" for c in q.checks) for q in groups)
    for q, c in zip(groups, sample["conditions"], strict=True):
        assert q.reportable is c["reportable"]
        label = "no additive" if c["treatment"] == "none" else f"with {c['treatment']}"
        assert label in q.sample


def test_a_template_runs_gating_plots_reach_the_report(tmp_path: Path) -> None:
    """A lab template names its own gates: its plots are shown as the summary lists them (in
    gate order), at most MAX_TEMPLATE_PLOTS of them; files not on disk are skipped."""
    from nkpanel.interpret.measurements import read_episode
    from nkpanel.report.figures import MAX_TEMPLATE_PLOTS, biomarker_figures
    from tests.interpret.summaries import flow_entry
    from tests.report.conftest import _png

    # a lab's gates, some named like nkpanel's own (Lymphocytes, NK): all are the template's
    gates = ["Lymphocytes", "NK", *(f"gate {i}" for i in range(MAX_TEMPLATE_PLOTS))]
    listed = [f"flow/d1/samples/tube1/plots/{g}.png" for g in gates]
    for rel in listed[1:]:  # the first one was listed but not written
        _png(tmp_path / rel, (90, 90, 90))
    entry = flow_entry(figures=listed) | {"gating": "template"}
    episode = read_episode(summary(flow=[entry]))
    figures = biomarker_figures(episode.measurements, tmp_path)
    assert [Path(f.source).stem for f in figures] == gates[1:MAX_TEMPLATE_PLOTS]
    assert figures[0].title == "tube1: NK gate"


def test_a_summary_written_before_figures_were_listed_keeps_its_gating_plots(
    tmp_path: Path,
) -> None:
    from nkpanel.interpret.measurements import read_episode
    from nkpanel.report.figures import biomarker_figures
    from tests.interpret.summaries import flow_entry
    from tests.report.conftest import _png

    plots = tmp_path / "flow" / "draw-1" / "samples" / "tube1" / "plots"
    for g in ("NK", "Lymphocytes", "Time"):
        _png(plots / f"{g}.png", (90, 90, 90))
    old = flow_entry()
    del old["figures"]
    figures = biomarker_figures(read_episode(summary(flow=[old])).measurements, tmp_path)
    assert [Path(f.source).stem for f in figures] == ["Lymphocytes", "NK"]


def test_a_withheld_samples_gating_plots_say_so(tmp_path: Path) -> None:
    """Audit 19: a tube that failed QC had its gating plots embedded unlabelled, their titles
    giving the withheld counts ("NK: 262 of CD3-"). Each is now marked not reportable; a
    reportable sample's are not."""
    from nkpanel.interpret.measurements import read_episode
    from nkpanel.report.figures import biomarker_figures
    from tests.interpret.summaries import flow_entry
    from tests.report.conftest import _png

    for sample in ("bad", "good"):
        for g in ("Lymphocytes", "NK"):
            _png(tmp_path / "flow" / "d1" / "samples" / sample / "plots" / f"{g}.png", (9, 9, 9))
    entries = [
        flow_entry(
            sample=name,
            failed_check="lymphocyte_events" if name == "bad" else None,
            figures=[f"flow/d1/samples/{name}/plots/{g}.png" for g in ("Lymphocytes", "NK")],
        )
        for name in ("bad", "good")
    ]
    figures = biomarker_figures(read_episode(summary(flow=entries)).measurements, tmp_path)
    titles = [f.title for f in figures]
    assert titles == [
        "bad: Lymphocytes gate (NOT REPORTABLE: for review only; its counts are withheld)",
        "bad: NK gate (NOT REPORTABLE: for review only; its counts are withheld)",
        "good: Lymphocytes gate",
        "good: NK gate",
    ]
