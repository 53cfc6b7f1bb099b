"""The report document (JSON): ISO 15189 report elements, interpretation carried through,
the synthetic label, status and versions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from nkpanel.errors import ConfigError
from nkpanel.report import Amendment, LabInfo, build_reports, load_lab_info
from tests.interpret.summaries import summary
from tests.report.conftest import Reported


def test_iso_15189_report_elements(reported: Reported) -> None:
    doc = reported.doc
    r = doc["report"]
    # identification of the report, version, status, issue time, amendment history
    assert r["id"] == "NKR-SYNTH-EP-2" and r["version"] == 2 and r["status"] == "amended"
    assert r["issued"].startswith("2026-11-05T14:00")
    assert r["amendments"][0]["reason"] == "bead lot corrected"
    # laboratory, analyst, authoriser, requester
    assert doc["laboratory"]["name"] == "Synthetic Reproductive Immunology Lab"
    assert doc["laboratory"]["analyst"] and doc["laboratory"]["authoriser"]
    assert doc["episode"]["requester"].startswith("Dr C.")
    # patient and specimen identification, collection time
    assert doc["patient"]["id"] == "SYNTH-P1"
    kinds = {s["kind"] for s in doc["specimens"]}
    assert kinds == {"peripheral blood", "peripheral blood (NK activity)", "endometrial biopsy"}
    assert all(s["collected"] for s in doc["specimens"])
    # results with units, methods, intervals, flags, QC status, comments
    for res in doc["results"]:
        assert res["unit"] and res["method"] and res["qc_status"] in ("pass", "warn", "fail")
        assert res["flag"] and res["comment"]
        if res["interval"] is not None:
            assert res["interval"]["source"]
    assert doc["comments"] and doc["evidence"] and doc["synthetic"] is True


def test_interpretation_reaches_the_report(reported: Reported) -> None:
    by = {(r["code"], r["sample"]): r for r in reported.doc["results"]}
    nk = by[("pnk-pct-lymph", "tube1")]
    assert nk["display_value"] == "25.5" and nk["flag"] == "within"
    # 25.5 within counting uncertainty of 26.0: binomial CV √(0.745/(0.255·20000)) = 1.21%,
    # U = 2 × 1.21% × 25.5 = 0.62 ≥ 0.5
    assert nk["near_limit"] == 26.0
    assert {c["code"] for c in nk["caveats"]} >= {"acute-exposure", "on-treatment"}
    failed = by[("pnk-pct-lymph", "tube2")]
    assert failed["flag"] == "not_interpreted" and not failed["reportable"]
    assert failed["caveats"] == [] and "flow rate unstable" in failed["comment"]
    assert by[("nka-suppression-intralipid", "plate-1")]["flag"] == "reported_only"
    assert by[("unk-pct-stroma", "slide-1")]["interval"]["id"] == "lash-2016-lh7"
    assert reported.doc["failures"][0]["reason"] == "truncated FCS file"
    trend_codes = {t["code"] for t in reported.doc["trends"]}
    assert {"pnk-pct-lymph", "nka-lysis-50-1", "unk-pct-stroma"} <= trend_codes
    refs = [e["ref"] for e in reported.doc["evidence"]]
    assert refs == [f"E{i}" for i in range(1, len(refs) + 1)]
    assert set(nk["evidence_refs"]) <= set(refs) and nk["evidence_refs"]


def test_figure_files(reported: Reported) -> None:
    names = {p.name for p in reported.paths.figures}
    assert any(n.startswith("bar_") for n in names)
    assert {"trend_pnk-pct-lymph.svg", "lysis_plate-1.svg"} <= names
    for p in reported.paths.figures:
        text = p.read_text("utf-8")
        assert "<svg" in text and "<path" in text and "SYNTHETIC" in text
    sources = [f["source"] for f in reported.doc["figures"]["biomarker_figures"]]
    # the automated gates' plots the summary lists, in the order a reader follows the gating
    # (Lymphocytes before NK), without the Time plot, and without NK-like_T (not on disk)
    flow = [Path(s).name for s in sources if "/plots/" in s]
    assert flow == ["Lymphocytes.png", "NK.png"]
    assert any(s.endswith("overlay_field01.png") for s in sources)


@pytest.mark.parametrize(
    ("lab", "amendments", "status"),
    [
        (LabInfo(), [], "preliminary"),
        (LabInfo(authoriser="Dr X"), [], "final"),
        (
            LabInfo(authoriser="Dr X"),
            [Amendment(version=1, date=dt.datetime(2026, 1, 1), reason="typo fixed")],
            "amended",
        ),
    ],
)
def test_status(tmp_path: Path, lab: LabInfo, amendments: list[Amendment], status: str) -> None:
    paths = build_reports(
        summary(),
        tmp_path,
        lab=lab,
        amendments=amendments,
        version=len(amendments) + 1,
        pdf=False,
    )
    import json

    doc = json.loads(paths.json.read_text("utf-8"))
    assert doc["report"]["status"] == status
    assert paths.clinician_pdf is None and paths.clinician_html.is_file()


def test_version_must_exceed_amended_versions(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="version"):
        build_reports(
            summary(),
            tmp_path,
            version=1,
            pdf=False,
            amendments=[Amendment(version=1, date=dt.datetime(2026, 1, 1), reason="typo")],
        )


def test_lab_file(tmp_path: Path) -> None:
    f = tmp_path / "lab.toml"
    f.write_text('name = "Lab"\nauthoriser = "Dr Y"\ntimezone = "Europe/Berlin"\n', "utf-8")
    lab = load_lab_info(f)
    # accepted, but authorises nothing: a person authorises after review (audit 19)
    assert (lab.name, lab.timezone, lab.authoriser) == ("Lab", "Europe/Berlin", None)
    assert build_reports(summary(), tmp_path / "lib", lab=lab, pdf=False).preliminary
    f.write_text('name = "Lab"\nbogus = 1\n', "utf-8")
    with pytest.raises(ConfigError, match="bogus"):
        load_lab_info(f)
    with pytest.raises(ConfigError, match="time zone"):
        build_reports(summary(), tmp_path / "o", lab=LabInfo(timezone="Mars/Olympus"), pdf=False)


def test_serial_table_columns_are_episodes_and_cells_carry_their_dates(
    reported: Reported,
) -> None:
    """Blood and biopsy of one episode are taken on different days: the column is the
    episode, and each value carries its own specimen's date."""
    st = reported.doc["serial_table"]
    assert st["columns"] == ["SYNTH-EP-1", "SYNTH-EP-2 · this report"]
    rows = {r["code"]: r["cells"] for r in st["rows"]}
    assert rows["unk-pct-stroma"][0].endswith("(2026-05-20)")
    assert "(2026-06-01" in rows["pnk-pct-lymph"][0]


def test_the_draws_stress_is_not_printed_on_the_biopsy(tmp_path: Path) -> None:
    """Audit 19: the episode's "stress, 10 min before the draw" was printed on an endometrial
    biopsy taken 12 days later (report and FHIR Specimen.note). The blood specimen keeps it;
    the biopsy keeps what is its own (its day, the corticosteroid)."""
    import json

    from tests.interpret.summaries import biopsy, flow_entry

    s = summary(
        flow=[flow_entry()],
        endometrial=[biopsy()],
        pre_analytic={
            "acute_exposure": "stress",
            "minutes_since_exposure": 10,
            "current_corticosteroid": True,
        },
    )
    paths = build_reports(s, tmp_path, pdf=False)
    doc = json.loads(paths.json.read_text("utf-8"))
    lines = {sp["kind"]: sp["pre_analytic_lines"] for sp in doc["specimens"]}
    assert "stress/exercise/adrenaline: stress, 10 min before the draw" in lines["peripheral blood"]
    biopsy_lines = lines["endometrial biopsy"]
    assert not any("stress" in x for x in biopsy_lines)
    assert "current corticosteroid: yes" in biopsy_lines


@pytest.mark.parametrize(("age", "banded"), [(34, True), (67, False)])
def test_a_trend_bands_only_the_interval_todays_result_was_compared_with(
    tmp_path: Path, age: int, banded: bool
) -> None:
    """Audit 19: the trend figure drew the default interval as "the interval applied today"
    for a woman of 67, whom the results table did not compare with ARUP's 16–64 interval."""
    from tests.interpret.summaries import flow_entry

    now = summary(flow=[flow_entry(nk_pct=13.0)])
    now["case"]["age_years"] = age
    before = summary(
        episode="SYNTH-EP-1", collected="2026-06-01T08:30:00", flow=[flow_entry(nk_pct=21.0)]
    )
    paths = build_reports(now, tmp_path, history=[before], pdf=False)
    svg = (tmp_path / "figures" / "trend_pnk-pct-lymph.svg").read_text("utf-8")
    assert ("interval 4.0–26.0" in svg) is banded, paths


def test_a_failed_file_is_named_by_its_file_name_and_the_patient_told_which_test(
    tmp_path: Path,
) -> None:
    """Audit 19: the report printed full local paths (a path may hold a patient's name), and
    the patient page said only "1 measurement file could not be analysed"."""
    import json

    failure = {"source": "/home/lab/Smith_Jane/blood/tbnk_tube1.fcs", "reason": "truncated"}
    paths = build_reports(summary(flow=[], failures=[failure]), tmp_path, pdf=False)
    doc = json.loads(paths.json.read_text("utf-8"))
    (f,) = doc["failures"]
    assert f["source"] == "tbnk_tube1.fcs" and doc["failed_tests_plain"] == ["NK cells in blood"]
    for page in (paths.clinician_html, paths.patient_html):
        assert "Smith_Jane" not in page.read_text("utf-8")
    assert "not in this report (NK cells in blood)" in paths.patient_html.read_text("utf-8")


def test_a_plate_the_run_could_not_analyse_is_a_failure_not_a_reportable_specimen(
    tmp_path: Path,
) -> None:
    """Review 21: a plate whose reads file was garbage was listed in the clinician report's QC
    as "reportable … No checks recorded", and the patient page did not say the killing test
    was missing."""
    import json

    s = summary(
        cytotoxicity=[{"id": "p1", "assay": "chromium51", "error": "reads.csv: not a table"}]
    )
    paths = build_reports(s, tmp_path, pdf=False)
    doc = json.loads(paths.json.read_text("utf-8"))
    assert [f["source"] for f in doc["failures"]] == ["cytotoxicity plate p1"]
    assert doc["failed_tests_plain"] == ["NK-cell activity (killing test)"]
    assert not [q for q in doc["qc"] if q["specimen_id"] == "p1"]
    assert "NK-cell activity (killing test)" in paths.patient_html.read_text("utf-8")


def test_report_json_gives_trend_values_as_the_report_prints_them(tmp_path: Path) -> None:
    """Review 21: once the series kept values as measured (for the change), report.json's
    trend points gave 13.2308 where the report prints 13.2. The change is worked out from the
    measured values (13.2308 − 20.9601 = −7.7293) and given as printed, −7.7."""
    import json

    from tests.interpret.summaries import flow_entry

    now = summary(flow=[flow_entry(nk_pct=13.2308)])
    before = summary(
        episode="SYNTH-EP-1", collected="2026-06-01T08:30:00", flow=[flow_entry(nk_pct=20.9601)]
    )
    paths = build_reports(now, tmp_path, history=[before], pdf=False)
    doc = json.loads(paths.json.read_text("utf-8"))
    (t,) = [t for t in doc["trends"] if t["code"] == "pnk-pct-lymph"]
    assert [p["value"] for p in t["points"]] == [21.0, 13.2] and t["change"] == -7.7


@pytest.mark.parametrize("combined", [True, False])
def test_nk_like_t_is_named_as_the_panel_gated_it(tmp_path: Path, combined: bool) -> None:
    """With CD16 and CD56 on one channel (a TBNK kit's CD16+56), the NK-like T cells are CD3+
    CD16/56+, not CD3+ CD56+ as the report had named them (audit 33 finding 11): the row's
    label and the method say so; a panel with its own CD56 channel keeps the catalogue's.
    Synthetic tube (nkpanel's simulator) through the analysis and its summary."""
    import json

    from nkpanel.flow.analyze import analyze_sample
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube

    tube = simulate_tube(SimulationSpec(n_events=40_000, seed=5, combined_cd16_cd56=combined))
    entry = analyze_sample(tube.to_sample()).result.summary() | {"figures": []}
    paths = build_reports(summary(flow=[entry]), tmp_path, pdf=False)
    doc = json.loads(paths.json.read_text("utf-8"))
    (row,) = [r for r in doc["results"] if r["code"] == "pnk-nklike-t-pct-lymph"]
    assert ("CD3+ CD16/56+" in row["label"]) is combined
    assert ("CD3+ CD16/56+" in row["method"]) is combined
    assert row["label"].startswith("NK-like T cells (CD3+ C")
