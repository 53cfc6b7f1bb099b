"""From a real run: a synthetic case through the flow pipeline, then its case_summary.json
through the reports. Checks the contract between the summary the pipeline writes and what
interpretation reads, and that the gating plots the pipeline drew are embedded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nkpanel.case import load_case
from nkpanel.demo import write_synthetic_case
from nkpanel.interpret import read_episode
from nkpanel.pipeline import run_case
from nkpanel.report import build_reports
from tests.interpret.summaries import flow_entry


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pipeline")
    manifest = write_synthetic_case(out / "case", n_events=30_000, seed=11, nk_percent=14.0)
    run_case(load_case(manifest), out / "results")
    return out / "results"


def test_hand_made_flow_entries_have_the_pipelines_shape(run_dir: Path) -> None:
    summary = json.loads((run_dir / "case_summary.json").read_text("utf-8"))
    real = summary["blood_draws"][0]["flow"][0]
    assert set(flow_entry()) == set(real)
    checks = {q["check"] for q in real["qc"]}
    assert {"lymphocyte events", "NK events", "bead events"} <= checks  # counting CVs need them


def test_reports_from_a_real_case_summary(run_dir: Path, tmp_path: Path) -> None:
    summary = json.loads((run_dir / "case_summary.json").read_text("utf-8"))
    episode = read_episode(summary)
    nk = next(m for m in episode.measurements if m.code == "pnk-pct-lymph")
    assert nk.value == pytest.approx(
        summary["blood_draws"][0]["flow"][0]["nk_percent_of_lymphocytes"]
    )
    assert nk.counting_cv_percent is not None and nk.counting_cv_percent > 0
    # the pipeline lists each sample's gating plots, relative to the case folder
    listed = summary["blood_draws"][0]["flow"][0]["figures"]
    assert listed and all(f.endswith(".png") and not Path(f).is_absolute() for f in listed)
    assert all((run_dir / f).is_file() for f in listed)
    paths = build_reports(summary, tmp_path / "report", results_dir=run_dir, pdf=False)
    doc = json.loads(paths.json.read_text("utf-8"))
    sources = [f["source"] for f in doc["figures"]["biomarker_figures"]]
    assert any(s.endswith("/plots/NK.png") for s in sources)
    assert any(s.endswith("/plots/Lymphocytes.png") for s in sources)
    html = paths.clinician_html.read_text("utf-8")
    embedded = html.count("data:image/png;base64,") + html.count("data:image/jpeg;base64,")
    assert embedded == len(sources)
    assert doc["synthetic"] is True and "SYNTHETIC DATA" in html


def test_a_relative_output_folder_keeps_every_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nkpanel run case.toml --out relout` (a relative folder, the default) once lost the
    plate's lysis curves and the biopsy's overlays from the report."""
    manifest = write_synthetic_case(tmp_path / "case", n_events=20_000, seed=12)
    monkeypatch.chdir(tmp_path)
    outcome = run_case(load_case(manifest), Path("relout"), reports=False)
    summary = outcome.summary
    listed = [f for v in summary["cytotoxicity"][0]["figures"].values() for f in v]
    listed += summary["endometrial"][0]["figures"]
    assert len(listed) >= 2
    for f in listed:  # relative to the case folder, and there
        assert not Path(f).is_absolute() and (tmp_path / "relout" / f).is_file(), f
    monkeypatch.chdir(tmp_path / "case")  # the report is made from elsewhere
    paths = build_reports(summary, tmp_path / "rep", results_dir=tmp_path / "relout", pdf=False)
    titles = [
        f["title"]
        for f in json.loads(paths.json.read_text("utf-8"))["figures"]["biomarker_figures"]
    ]
    assert any("lysis curves" in t for t in titles) and any("CD56 overlay" in t for t in titles)
    assert any("NK gate" in t for t in titles)
    overlays = [t for t in titles if "CD56 overlay" in t]
    assert len(set(overlays)) == len(overlays) == 3  # each names its field image
    # three 1.3 MB overlays embedded as 1,000-pixel JPEGs: the report stays small
    assert paths.clinician_html.stat().st_size < 3_000_000  # was 5.8 MB
