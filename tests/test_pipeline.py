"""The flow batch: every file's result kept, bad files listed, no file's events kept."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import nkpanel.pipeline as pipeline
from nkpanel._names import unique_stems
from nkpanel.flow.analyze import FlowAnalysis, FlowSettings
from nkpanel.flow.results import FlowResult
from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs


def test_batch_keeps_results_not_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = [
        write_fcs(simulate_tube(SimulationSpec(seed=s, n_events=20_000)), tmp_path / f"t{s}.fcs")
        for s in (1, 2)
    ]
    bad = tmp_path / "bad.fcs"
    bad.write_bytes(b"not an FCS file at all")
    made: list[weakref.ref[FlowAnalysis]] = []
    real = pipeline.analyze_file

    def tracked(path: Path, settings: FlowSettings | None = None) -> FlowAnalysis:
        analysis = real(path, settings)
        made.append(weakref.ref(analysis))
        return analysis

    monkeypatch.setattr(pipeline, "analyze_file", tracked)
    outcome = pipeline.analyze_flow_batch(
        [good[0], bad, good[1]], FlowSettings(), tmp_path / "out", plots=False
    )
    assert [r.sample for r in outcome.results] == ["t1", "t2"]
    assert all(isinstance(r, FlowResult) for r in outcome.results)
    assert [f.source for f in outcome.failures] == [str(bad)]
    assert "not an FCS file" in outcome.failures[0].reason
    gc.collect()
    assert len(made) == 2 and all(ref() is None for ref in made)  # no analysis outlives its file
    assert (tmp_path / "out" / "flow_populations.csv").is_file()


def _one_name_in_two_folders(tmp_path: Path, folders: tuple[str, str], name: str) -> list[Path]:
    """Two simulated tubes (seeds 3 and 4) written as ``name`` in two folders."""
    paths = []
    for seed, folder in zip((3, 4), folders, strict=True):
        (tmp_path / folder).mkdir()
        tube = simulate_tube(SimulationSpec(seed=seed, n_events=20_000))
        paths.append(write_fcs(tube, tmp_path / folder / name))
    return paths


def test_files_of_one_name_from_two_folders_keep_their_own_outputs(tmp_path: Path) -> None:
    paths = _one_name_in_two_folders(tmp_path, ("episode-1", "episode-2"), "tube1.fcs")
    out = tmp_path / "out"
    outcome = pipeline.analyze_flow_batch(paths, FlowSettings(), out, plots=False)
    first, second = outcome.results
    assert (first.sample, second.sample) == ("tube1", "tube1-2")
    assert second.source == str(paths[1]) and "also called tube1" in second.file_notes[-1]
    for r in outcome.results:  # each sample's own summary, not overwritten by the other
        summary = (out / "samples" / r.sample / "summary.json").read_text()
        assert f'"source": "{r.source}"' in summary
    assert first.nk_percent_of_lymphocytes != second.nk_percent_of_lymphocytes


def test_a_later_batch_keeps_an_earlier_batchs_file_of_the_same_name(tmp_path: Path) -> None:
    """Instruments name files by tube: a second patient's Tube_001.fcs analysed into the same
    --out replaced the first patient's results, silently. It now takes Tube_001-2 (said in a
    note), the first stays, and analysing it again replaces its own folder, not a third."""
    paths = _one_name_in_two_folders(tmp_path, ("patient-1", "patient-2"), "Tube_001.fcs")
    out = tmp_path / "out"
    (first,) = pipeline.analyze_flow_batch(paths[:1], FlowSettings(), out, plots=False).results
    for _ in range(2):
        (second,) = pipeline.analyze_flow_batch(paths[1:], FlowSettings(), out, plots=False).results
        assert second.sample == "Tube_001-2"
        assert "earlier run's results of another file" in second.file_notes[-1]
        assert sorted(p.name for p in (out / "samples").iterdir()) == ["Tube_001", "Tube_001-2"]
    for r, path in ((first, paths[0]), (second, paths[1])):
        summary = (out / "samples" / r.sample / "summary.json").read_text()
        assert f'"source": "{path}"' in summary


def test_a_later_file_written_at_the_same_path_keeps_the_earlier_results(tmp_path: Path) -> None:
    """An export folder reused for each patient: patient B's Tube_001.fcs is written where
    patient A's was, and analysed into the same --out. A's results were replaced, silently;
    the folder's summary now records the file's size and time, and B takes Tube_001-2."""
    import os

    (tmp_path / "export").mkdir()
    path = tmp_path / "export" / "Tube_001.fcs"
    out = tmp_path / "out"
    write_fcs(simulate_tube(SimulationSpec(seed=3, n_events=20_000)), path)
    (a,) = pipeline.analyze_flow_batch([path], FlowSettings(), out, plots=False).results
    write_fcs(simulate_tube(SimulationSpec(seed=4, n_events=21_000)), path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    for _ in range(2):  # and again: B's own folder is replaced, no third one made
        (b,) = pipeline.analyze_flow_batch([path], FlowSettings(), out, plots=False).results
        assert b.sample == "Tube_001-2" and "as it was then" in b.file_notes[-1]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["Tube_001", "Tube_001-2"]
    kept = (out / "samples" / "Tube_001" / "summary.json").read_text()
    assert f'"nk_percent_of_lymphocytes": {a.nk_percent_of_lymphocytes}' in kept


def test_the_same_file_copied_again_keeps_its_name(tmp_path: Path) -> None:
    """Audit 18: the morning's export copied again (cp without -p: a new modification time)
    was taken for another file, and every sample became tube-2. The same content at the same
    path is the same file, whatever its time; another acquisition of the same size written
    there is still another file."""
    import os
    import shutil

    path = tmp_path / "export" / "t.fcs"
    path.parent.mkdir()
    write_fcs(simulate_tube(SimulationSpec(seed=3, n_events=20_000)), tmp_path / "t.fcs")
    shutil.copy(tmp_path / "t.fcs", path)
    out = tmp_path / "out"
    pipeline.analyze_flow_batch([path], FlowSettings(), out, plots=False)
    shutil.copy(tmp_path / "t.fcs", path)  # again, a second later
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    (again,) = pipeline.analyze_flow_batch([path], FlowSettings(), out, plots=False).results
    assert again.sample == "t" and not again.file_notes
    other = write_fcs(simulate_tube(SimulationSpec(seed=4, n_events=20_000)), tmp_path / "u.fcs")
    assert other.stat().st_size == path.stat().st_size
    shutil.copy(other, path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 2 * 10**9))
    (b,) = pipeline.analyze_flow_batch([path], FlowSettings(), out, plots=False).results
    assert b.sample == "t-2"
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["t", "t-2"]


def test_a_copy_of_a_file_is_analysed_once(tmp_path: Path) -> None:
    """A byte-for-byte copy ("tube1 copy.fcs") is the same tube: analysed twice it would be
    two samples. The copy is left out with a note naming both files; another file of the
    same size but other content is not."""
    import shutil

    a = write_fcs(simulate_tube(SimulationSpec(seed=3, n_events=20_000)), tmp_path / "t1.fcs")
    copy = tmp_path / "t1 copy.fcs"
    shutil.copy(a, copy)
    other = write_fcs(simulate_tube(SimulationSpec(seed=4, n_events=20_000)), tmp_path / "t2.fcs")
    assert other.stat().st_size == a.stat().st_size  # same size: compared by content
    outcome = pipeline.analyze_flow_batch(
        [a, copy, other], FlowSettings(), tmp_path / "out", plots=False
    )
    assert [r.sample for r in outcome.results] == ["t1", "t2"]
    assert outcome.notes == [f"{copy}: the same content as {a} (a copy): analysed once"]


def test_names_differing_in_letter_case_only_are_told_apart() -> None:
    names = unique_stems([Path("a/Tube1.fcs"), Path("b/tube1.fcs"), Path("c/TUBE1.fcs")])
    assert names == ["Tube1", "tube1-2", "TUBE1-3"]


def test_a_fault_of_nkpanels_on_one_file_stops_no_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception on one file (a bug, not bad input) is that file's failure,
    named as an internal error; the other files are analysed. With --debug it is raised."""
    from nkpanel.errors import show_tracebacks

    good = write_fcs(simulate_tube(SimulationSpec(seed=51, n_events=20_000)), tmp_path / "a.fcs")
    odd = write_fcs(simulate_tube(SimulationSpec(seed=52, n_events=20_000)), tmp_path / "b.fcs")
    real = pipeline.analyze_file

    def analyze(path: Path, settings: FlowSettings) -> FlowAnalysis:
        if Path(path).name == "b.fcs":
            raise ZeroDivisionError("division by zero")
        return real(path, settings)

    monkeypatch.setattr(pipeline, "analyze_file", analyze)
    out = pipeline.analyze_flow_batch([odd, good], FlowSettings(), tmp_path / "out", plots=False)
    assert [r.sample for r in out.results] == ["a"]
    (failure,) = out.failures
    assert failure.source == str(odd)
    assert failure.reason.startswith("internal error (ZeroDivisionError: division by zero)")
    assert not (tmp_path / "out" / "samples" / "b").exists()
    show_tracebacks(True)
    try:
        with pytest.raises(ZeroDivisionError):
            pipeline.analyze_flow_batch([odd], FlowSettings(), tmp_path / "o2", plots=False)
    finally:
        show_tracebacks(False)


def test_a_case_rerun_names_what_the_earlier_run_left(tmp_path: Path) -> None:
    """Run 1: a second draw lists one FCS file twice (by two spellings) and one that is not
    there. Run 2, into the same folder, drops that draw and writes no report: the draw's
    folder and the old report are named as the earlier run's, not removed (nkpanel cannot
    tell them from a lab's own folders of those names)."""
    from nkpanel.case import load_case
    from nkpanel.demo import write_synthetic_case

    manifest = write_synthetic_case(
        tmp_path / "case", n_events=30_000, cytotoxicity=False, endometrial=False
    )
    first_text = manifest.read_text()
    manifest.write_text(
        first_text
        + '\n[[blood_draws]]\nid = "draw-2"\n'
        + 'fcs = ["blood/tbnk_tube1.fcs", "./blood/tbnk_tube1.fcs", "blood/missing.fcs"]\n'
    )
    out = tmp_path / "out"
    run1 = pipeline.run_case(load_case(manifest), out, plots=False)
    draw2 = run1.draws["draw-2"]
    assert [r.sample for r in draw2.results] == ["tbnk_tube1"]  # once, not tube1 and tube1-2
    assert draw2.notes == [
        f"{tmp_path / 'case' / 'blood' / 'tbnk_tube1.fcs'}: given twice: analysed once"
    ]
    (missing,) = draw2.failures
    assert missing.source.endswith("missing.fcs")
    assert missing.reason == "no such file (listed under blood draw 'draw-2' of the case manifest)"
    # the draw's review page names its draw and case, and says what its batch said (review 30)
    page = (out / "flow" / "draw-2" / "flow_review.html").read_text("utf-8")
    case_id = load_case(manifest).case.id
    assert f"<h1>Peripheral-blood NK cells: batch review, blood draw draw-2 of case {case_id}" in (
        page
    )
    assert "missing.fcs" in page and "given twice" in page
    assert (out / "report" / "report.html").is_file()
    assert not [p for p in out.rglob("*") if p.name.endswith((".part", ".old"))]

    manifest.write_text(first_text)
    run2 = pipeline.run_case(load_case(manifest), out, plots=False, reports=False)
    assert sorted(run2.earlier) == sorted([out / "flow" / "draw-2", out / "report"])
    assert (out / "flow" / "draw-2").is_dir() and (out / "report" / "report.html").is_file()


def test_a_case_run_into_its_own_folder_removes_nothing_of_the_lab(tmp_path: Path) -> None:
    """--out is the folder of the manifest, whose FCS file sits in flow/<day>/ and whose lab
    letter sits in report/: run twice, both survive; the report's own files are replaced."""
    from nkpanel.case import load_case
    from nkpanel.demo import write_synthetic_case

    case_dir = tmp_path / "case"
    manifest = write_synthetic_case(
        case_dir, n_events=30_000, cytotoxicity=False, endometrial=False
    )
    day = case_dir / "flow" / "2026-11-02"
    day.mkdir(parents=True)
    (case_dir / "blood" / "tbnk_tube1.fcs").rename(day / "tbnk_tube1.fcs")
    manifest.write_text(
        manifest.read_text().replace("blood/tbnk_tube1.fcs", "flow/2026-11-02/tbnk_tube1.fcs")
    )
    (case_dir / "report").mkdir()
    letter = case_dir / "report" / "referral_letter.txt"
    letter.write_text("from the referring clinic")
    for _ in range(2):
        run = pipeline.run_case(load_case(manifest), case_dir, plots=False)
        assert not run.failures
    assert (day / "tbnk_tube1.fcs").is_file() and letter.read_text() == "from the referring clinic"
    assert (case_dir / "report" / "report.html").is_file()
    assert run.earlier == [day]  # named, not removed


def test_a_sample_folder_holding_the_input_keeps_it(tmp_path: Path) -> None:
    """--out is a folder whose samples/<stem>/ holds the FCS file itself and a note."""
    folder = tmp_path / "data" / "samples" / "tube"
    folder.mkdir(parents=True)
    fcs = write_fcs(simulate_tube(SimulationSpec(seed=53, n_events=20_000)), folder / "tube.fcs")
    (folder / "operator_notes.txt").write_text("run by A.B.")
    for _ in range(2):
        out = pipeline.analyze_flow_batch([fcs], FlowSettings(), tmp_path / "data", plots=False)
        assert not out.failures
    before = {"tube.fcs", "tube.labels.csv.gz", "tube.truth.json", "operator_notes.txt"}
    ours = {".nkpanel-files", "gates.gatingml.xml", "summary.json"}
    assert {p.name for p in folder.iterdir()} == before | ours


def test_a_stem_is_never_a_path_of_its_own() -> None:
    """ "..fcs" has the stem ".": as a folder name it would be samples/ itself."""
    assert unique_stems(["a/..fcs", "b/...fcs", "c/.hidden.fcs", "d/x.fcs"]) == [
        "sample",
        "sample-2",
        "hidden",
        "x",
    ]


def test_one_file_by_two_names_is_one_file(tmp_path: Path) -> None:
    """A hard link (as a case-insensitive disk shows Tube1.fcs and tube1.fcs) is the same file."""
    from nkpanel._names import distinct_files

    a = tmp_path / "tube1.fcs"
    a.write_bytes(b"FCS3.1")
    b = tmp_path / "Tube1.fcs"
    b.hardlink_to(a)
    kept, notes = distinct_files([a, b])
    assert kept == [a] and notes == [f"{b}: given twice (also as {a}): analysed once"]


def test_a_biopsy_that_cannot_be_analysed_stops_no_case(tmp_path: Path) -> None:
    """Stain vectors that do not parse fail the biopsy, named as such; the blood draw is still
    analysed and the report still written."""
    from nkpanel.case import load_case
    from nkpanel.demo import write_synthetic_case

    manifest = write_synthetic_case(tmp_path / "case", n_events=20_000, cytotoxicity=False)
    text = manifest.read_text().replace(
        'id = "biopsy-1"', 'id = "biopsy-1"\nqupath_stains = "not a QuPath stain line"'
    )
    manifest.write_text(text)
    run = pipeline.run_case(load_case(manifest), tmp_path / "out", plots=False)
    (failure,) = run.failures
    assert failure.source == "endometrial biopsy biopsy-1"
    assert run.draws["draw-1"].results and run.report is not None


def _blood_only_case(tmp_path: Path, patient: str) -> Path:
    """A SYNTHETIC case of one blood draw for ``patient``; its manifest."""
    from nkpanel.demo import write_synthetic_case

    return write_synthetic_case(
        tmp_path / patient, n_events=20_000, cytotoxicity=False, endometrial=False, patient=patient
    )


def test_one_case_never_writes_over_anothers_results(tmp_path: Path) -> None:
    """Patient B's case run into patient A's output folder is refused before any work."""
    from nkpanel.case import load_case
    from nkpanel.errors import ConfigError

    a, b = (_blood_only_case(tmp_path, p) for p in ("SYNTH-A", "SYNTH-B"))
    out = tmp_path / "out"
    pipeline.run_case(load_case(a), out, plots=False, reports=False)
    before = (out / "case_summary.json").read_text()
    with pytest.raises(
        ConfigError,
        match=r"holds the results of case .* \(patient SYNTH-A\), not of .* \(patient SYNTH-B\)",
    ):
        pipeline.run_case(load_case(b), out, plots=False, reports=False)
    assert (out / "case_summary.json").read_text() == before
    pipeline.run_case(load_case(a), out, plots=False, reports=False)  # its own folder: fine


def test_a_plate_that_fails_on_a_rerun_leaves_no_earlier_result(tmp_path: Path) -> None:
    """The NK-activity plate's reads are cut short after a first run: its earlier lysis table
    and figures go (they would pass for this run's); the case records the failure."""
    from nkpanel.case import load_case
    from nkpanel.demo import write_synthetic_case

    manifest = write_synthetic_case(tmp_path / "case", n_events=20_000, endometrial=False)
    out = tmp_path / "out"
    first = pipeline.run_case(load_case(manifest), out, plots=True, reports=False)
    (plate,) = first.cytotoxicity
    folder = out / "cytotoxicity" / plate["id"]
    assert (folder / "lysis.csv").is_file()
    assert all((out / f).is_file() for figs in plate["figures"].values() for f in figs)
    reads = tmp_path / "case" / "nk-activity" / "plate" / "plate_reads.csv"
    reads.write_text("well,value\n")
    second = pipeline.run_case(load_case(manifest), out, plots=True, reports=False)
    assert "error" in second.cytotoxicity[0]
    assert not folder.exists()


def test_a_copied_output_folder_can_be_run_again(tmp_path: Path) -> None:
    """Results restored from a backup (new modification times): the listed content still
    says they are nkpanel's, and the case runs again in place."""
    import shutil

    from nkpanel.case import load_case
    from nkpanel.demo import write_synthetic_case

    manifest = write_synthetic_case(
        tmp_path / "case", n_events=20_000, cytotoxicity=False, endometrial=False
    )
    out = tmp_path / "out"
    pipeline.run_case(load_case(manifest), out, plots=False, reports=False)
    copy = tmp_path / "restored"
    shutil.copytree(out, copy, copy_function=shutil.copy)  # times not kept
    run = pipeline.run_case(load_case(manifest), copy, plots=False, reports=False)
    assert not run.failures


def test_the_folders_case_is_known_before_its_summary_is_written(tmp_path: Path) -> None:
    """A run killed before its summary (here: the summary removed) still marks the folder as
    its case's: another patient's run is refused."""
    from nkpanel.case import load_case
    from nkpanel.errors import ConfigError

    a, b = (_blood_only_case(tmp_path, p) for p in ("SYNTH-A", "SYNTH-B"))
    out = tmp_path / "out"
    pipeline.run_case(load_case(a), out, plots=False, reports=False)
    (out / "case_summary.json").unlink()
    with pytest.raises(ConfigError, match=r"\(patient SYNTH-A\)"):
        pipeline.run_case(load_case(b), out, plots=False, reports=False)


def test_a_batch_that_fails_while_writing_its_tables_does_not_lock_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills while the Parquet table is written: the CSV already replaced is still
    nkpanel's, and the next run goes through."""
    import pandas as pd

    tube = write_fcs(simulate_tube(SimulationSpec(seed=54, n_events=20_000)), tmp_path / "t.fcs")
    out = tmp_path / "out"
    pipeline.analyze_flow_batch([tube], FlowSettings(), out, plots=False)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(pd.DataFrame, "to_parquet", full)
        with pytest.raises(OSError, match="No space left"):
            pipeline.analyze_flow_batch([tube], FlowSettings(), out, plots=False)
    again = pipeline.analyze_flow_batch([tube], FlowSettings(), out, plots=False)
    assert [r.sample for r in again.results] == ["t"]


def test_files_left_in_subfolders_are_said(tmp_path: Path) -> None:
    """A draw's folder holding tubes in a subfolder too read only the top level, silently;
    subfolders are still not searched (earlier outputs may lie there), but a note says how
    many files were left."""
    from nkpanel._names import files_in_folders

    (tmp_path / "sub").mkdir()
    for f in ("a.fcs", "sub/b.fcs", "sub/c.FCS", "sub/notes.txt"):
        (tmp_path / f).write_bytes(b"x")
    notes: list[str] = []
    assert files_in_folders([tmp_path], (".fcs",), notes) == [tmp_path / "a.fcs"]
    assert notes == [
        f"{tmp_path}: 2 file(s) in its subfolders (counted one level down) were not read "
        "(subfolders are not searched; give them to read them)"
    ]


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_same_events_exported_twice_are_said(tmp_path: Path, jobs: int) -> None:
    """One tube exported twice (another $DATE or byte order: not a byte copy) was counted as
    two samples with no word. Both are still listed, each named, and the second says it holds
    the first's events; another tube says nothing. In worker processes too, where the second
    is analysed before the batch knows the first's events."""
    from tests.flow.fcs_bytes import edit_text_value

    tube = simulate_tube(SimulationSpec(seed=3, n_events=20_000))
    a = write_fcs(tube, tmp_path / "a.fcs")
    again = tmp_path / "a_again.fcs"
    again.write_bytes(edit_text_value(a.read_bytes(), "$DATE", "16-JAN-2024"))
    other = write_fcs(simulate_tube(SimulationSpec(seed=4, n_events=20_000)), tmp_path / "b.fcs")
    results = pipeline.analyze_flow_batch(
        [a, again, other], FlowSettings(), tmp_path / "out", plots=False, jobs=jobs
    ).results
    assert [r.sample for r in results] == ["a", "a_again", "b"]
    written = json.loads((tmp_path / "out" / "samples" / "a_again" / "summary.json").read_text())
    assert any("same events as a" in n for n in written["file_notes"])
    said = [[n for n in r.file_notes if "same events" in n] for r in results]
    assert said == [
        [],
        ["holds the same events as a (exported twice?): both are listed, but they are one tube"],
        [],
    ]


def test_the_same_file_given_from_another_folder_replaces_its_own_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file given by a relative path, then again from another working folder, was taken for
    another file (its recorded path resolved from the new folder) and written beside as -2.
    The folder records the resolved path."""
    (tmp_path / "export").mkdir()
    path = write_fcs(
        simulate_tube(SimulationSpec(seed=3, n_events=20_000)), tmp_path / "export" / "t.fcs"
    )
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    pipeline.analyze_flow_batch([Path("export/t.fcs")], FlowSettings(), out, plots=False)
    monkeypatch.chdir(tmp_path / "export")
    (again,) = pipeline.analyze_flow_batch(
        [Path("t.fcs")], FlowSettings(), out, plots=False
    ).results
    assert again.sample == "t" and path.is_file()
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["t"]


def test_an_image_in_two_biopsies_of_a_case_is_said(tmp_path: Path) -> None:
    """One picture listed under two biopsies (a copy-and-paste slip in a manifest) was counted
    in both with nothing said (audit 9); each later biopsy gets a note naming the first."""
    from nkpanel.pipeline import _images_in_two_biopsies

    shared = tmp_path / "field.tif"
    entries: list[dict[str, Any]] = [
        {"id": "b1", "images": [{"sources": [str(shared)]}], "notes": []},
        {"id": "b2", "images": [{"sources": [str(tmp_path / "." / "field.tif")]}]},
        {"id": "b3", "images": [{"sources": [str(tmp_path / "other.tif")]}], "notes": []},
    ]
    _images_in_two_biopsies(entries)
    assert entries[0]["notes"] == [] and entries[2]["notes"] == []
    (note,) = entries[1]["notes"]
    assert note.endswith("also an image of biopsy b1; one picture counted in two biopsies")


def test_files_alike_in_their_opening_block_are_told_apart_by_the_rest(tmp_path: Path) -> None:
    """Equal-sized files are compared by their first 64 KiB, and whole only where those agree:
    two fields that differ after the opening block are both kept, a true copy is dropped."""
    from nkpanel._names import distinct_files

    head = bytes(range(256)) * 256  # 64 KiB alike
    a, b, c = tmp_path / "a.tif", tmp_path / "b.tif", tmp_path / "c.tif"
    a.write_bytes(head + b"A" * 1000)
    b.write_bytes(head + b"B" * 1000)
    c.write_bytes(head + b"A" * 1000)
    kept, notes = distinct_files([a, b, c])
    assert kept == [a, b]
    assert notes == [f"{c}: the same content as {a} (a copy): analysed once"]


def test_a_figure_that_cannot_be_drawn_leaves_the_results_standing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drawing fault (here made to happen) failed the whole sample as an internal error,
    its numbers lost. The sample's results are written without figures (those drawn before
    the fault too), with a note saying why; the other outputs are there, written once, and
    nothing is half-written."""
    import json

    import nkpanel.flow.output as output
    import nkpanel.flow.plots as plots

    def broken(*, out_dir: Path, **_: Any) -> list[Path]:
        out_dir.mkdir(parents=True)
        (out_dir / "first_gate.png").write_bytes(b"drawn before the fault")
        raise ValueError("Axis limits cannot be NaN or Inf")

    summaries: list[Path] = []
    write_text = output.write_text

    def counted(target: Path, text: str) -> None:
        summaries.append(target)
        write_text(target, text)

    monkeypatch.setattr(output, "write_text", counted)

    monkeypatch.setattr(plots, "plot_gates", broken)
    path = write_fcs(simulate_tube(SimulationSpec(seed=3, n_events=20_000)), tmp_path / "t.fcs")
    out = tmp_path / "out"
    outcome = pipeline.analyze_flow_batch([path], FlowSettings(), out, plots=True)
    assert not outcome.failures
    (r,) = outcome.results
    assert r.notes[-1] == (
        "figures not drawn (Axis limits cannot be NaN or Inf); the results are not affected"
    )
    assert r.nk_percent_of_lymphocytes is not None
    folder = out / "samples" / "t"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".nkpanel-files",
        "gates.gatingml.xml",
        "summary.json",
    ]
    assert r.notes[-1] in json.loads((folder / "summary.json").read_text())["notes"]
    assert [p.name for p in summaries].count("summary.json") == 1  # the sample written once
    assert (out / "flow_populations.csv").is_file()
    assert not list(out.rglob("*.part"))


def test_simulated_inputs_label_the_case_synthetic_whatever_the_manifest_says(
    tmp_path: Path,
) -> None:
    """Audit 19: a simulated case whose manifest said synthetic = false (or nothing) gave a
    report, patient page and FHIR bundle with no SYNTHETIC label at all, though the FCS file,
    the plate and the images say they are synthetic. Any such input labels the case."""
    import json

    from nkpanel.case import load_case
    from nkpanel.demo import write_synthetic_case

    manifest = write_synthetic_case(tmp_path / "case", n_events=20_000, endometrial=False)
    text = manifest.read_text()
    assert "synthetic = true" in text
    manifest.write_text(text.replace("synthetic = true", "synthetic = false"))
    run = pipeline.run_case(load_case(manifest), tmp_path / "out", plots=False)
    assert run.summary["synthetic"] is True
    assert run.summary["synthetic_inputs"] == [
        str(manifest.parent / "blood" / "tbnk_tube1.fcs"),
        "cytotoxicity plate nk-activity-51cr",
    ]
    assert run.report is not None
    doc = json.loads(run.report.json.read_text())
    assert doc["synthetic"] is True
    assert "SYNTHETIC" in run.report.clinician_html.read_text()
    assert "SYNTHETIC" in run.report.patient_html.read_text()
    fhir = json.loads(run.report.fhir.read_text())
    assert fhir["meta"]["security"][0]["code"] == "HTEST"


def test_a_case_rerun_keeps_a_plate_whose_folder_holds_a_labs_file(tmp_path: Path) -> None:
    """Review 21: a plate's outputs listed themselves as nkpanel's inside the case's staging
    folder, and that list named itself; a re-run with a lab's file in the plate folder then
    refused the list as not nkpanel's, failed the plate and removed its results."""
    from nkpanel.case import load_case

    manifest = write_case(tmp_path)
    out = tmp_path / "out"
    first = pipeline.run_case(load_case(manifest), out, plots=False, reports=False)
    assert not first.failures
    (plate_dir,) = (out / "cytotoxicity").iterdir()
    owned = [ln.split("\t")[0] for ln in (plate_dir / ".nkpanel-files").read_text().splitlines()]
    assert ".nkpanel-files" not in owned and "lysis.csv" in owned
    (plate_dir / "notes.txt").write_text("the lab's")
    again = pipeline.run_case(load_case(manifest), out, plots=False, reports=False)
    assert not again.failures
    assert (plate_dir / "notes.txt").read_text() == "the lab's"
    assert (plate_dir / "lysis.csv").is_file()


def write_case(tmp_path: Path) -> Path:
    """A SYNTHETIC case of one blood draw and one NK-activity plate; its manifest."""
    from nkpanel.demo import write_synthetic_case

    return write_synthetic_case(tmp_path / "case", n_events=20_000, endometrial=False)


def test_files_analysed_in_worker_processes_give_the_same_outcome(tmp_path: Path) -> None:
    """--jobs: files analysed at once, each in a worker process, give what one after another
    gives: the same results in the order given, the same failures, the same files with the
    same bytes (tables, summaries, gates, figures), and a fault that stops nothing."""
    import hashlib

    files = [
        write_fcs(simulate_tube(SimulationSpec(seed=s, n_events=8_000)), tmp_path / f"t{s}.fcs")
        for s in (5, 6, 7)
    ]
    bad = tmp_path / "broken.fcs"
    bad.write_bytes(b"FCS3.1    not really")
    given = [files[0], bad, files[1], files[2]]
    outcomes = {}
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        seen: list[str] = []
        outcomes[jobs] = (
            pipeline.analyze_flow_batch(given, FlowSettings(), out, jobs=jobs, on_file=seen.append),
            {
                str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(out.rglob("*"))
                if p.is_file() and p.name != ".nkpanel-files"  # its file times differ
            },
            seen,
        )
    (one, one_files, one_seen), (two, two_files, two_seen) = outcomes[1], outcomes[2]
    assert [r.sample for r in two.results] == ["t5", "t6", "t7"]
    assert two.results == one.results
    assert [f.source for f in two.failures] == [str(bad)]
    assert two.failures == one.failures
    assert two_seen == one_seen == [str(p) for p in given]
    assert len([f for f in two_files if f.endswith(".png")]) >= 3 * 8
    assert two_files == one_files
    assert not list((tmp_path / "out2").rglob("*.part"))


def test_more_workers_than_cpus_are_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit 27: --jobs 100 (or NKPANEL_JOBS copied from a larger machine) started 20 workers
    on 2 CPUs without a word, slower than one and 8× the memory: a note says so."""
    import nkpanel._threads

    files = _tubes(tmp_path, 5, 6)
    monkeypatch.setattr(nkpanel._threads, "usable_cpus", lambda: 1)
    notes = pipeline.analyze_flow_batch(
        files, FlowSettings(), tmp_path / "out", plots=False, jobs=100
    ).notes
    assert notes == [
        "2 worker processes on 1 CPU: more processes than CPUs only share them, and each "
        "holds a whole file in memory (--jobs)"
    ]
    monkeypatch.setattr(nkpanel._threads, "usable_cpus", lambda: 2)
    again = pipeline.analyze_flow_batch(
        files, FlowSettings(), tmp_path / "out", plots=False, jobs=2
    )
    assert again.notes == []


def test_the_same_events_in_two_blood_draws_withhold_the_later(tmp_path: Path) -> None:
    """Audit 27: one FCS file attached to two blood draws of a case (a copy under another
    name) read as two draws' results that agreed, with no word: the later draw's is withheld,
    naming the earlier; a draw of its own tube is not."""
    import re
    import shutil

    from nkpanel.case import load_case

    manifest = _blood_only_case(tmp_path, "P1")
    text = manifest.read_text()
    (fcs,) = re.findall(r'fcs = \["([^"]+)"\]', text)
    shutil.copy(manifest.parent / fcs, manifest.parent / "draw2.fcs")
    other = write_fcs(simulate_tube(SimulationSpec(seed=9, n_events=20_000)), tmp_path / "o.fcs")
    draw = text[text.index("[[blood_draws]]") :].split("\n[", 1)[0]
    second = draw.replace('id = "draw-1"', 'id = "draw-2"').replace(fcs, "draw2.fcs")
    third = draw.replace('id = "draw-1"', 'id = "draw-3"').replace(fcs, str(other))
    manifest.write_text(text.replace(draw, f"{draw}\n{second}\n{third}"))
    run = pipeline.run_case(load_case(manifest), tmp_path / "out", plots=False, reports=False)
    first, copy, own = (run.draws[d].results[0] for d in ("draw-1", "draw-2", "draw-3"))
    assert first.reportable and own.reportable
    assert not copy.reportable
    assert copy.not_reportable_reasons == (
        f"holds the same events as {first.sample} of blood draw draw-1: two blood draws cannot "
        "hold the same events (the same file given for both?)",
    )


class _StandInPool:
    """What a stand-in for ProcessPoolExecutor needs beside ``submit``; ``n`` numbers the
    pools of its kind made so far, from 1."""

    made = 0

    def __init_subclass__(cls) -> None:
        cls.made = 0

    def __init__(self) -> None:
        type(self).made += 1
        self.n = type(self).made

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _tubes(folder: Path, *seeds: int) -> list[Path]:
    """Small synthetic tubes ``t<seed>.fcs`` in ``folder``."""
    return [
        write_fcs(simulate_tube(SimulationSpec(seed=s, n_events=5_000)), folder / f"t{s}.fcs")
        for s in seeds
    ]


def _in_stand_in_pools(
    monkeypatch: pytest.MonkeyPatch, pool: Callable[[], Any], files: list[Path], out: Path
) -> pipeline.BatchOutcome:
    """``files`` analysed in two workers' worth of stand-in pools made by ``pool``."""
    import nkpanel._workers

    monkeypatch.setattr(nkpanel._workers, "process_pool", lambda jobs: pool())
    return pipeline.analyze_flow_batch(files, FlowSettings(), out, plots=False, jobs=2)


def _breaking_pools(monkeypatch: pytest.MonkeyPatch, breaks: Callable[[str, int], bool]) -> None:
    """Stand-in worker pools, run in this process: a file's worker "dies" (its future gets
    BrokenProcessPool) when ``breaks(file name, how many pools so far)``, the check that a
    new worker works when ``breaks("check", …)``; the other files' results come back."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    import nkpanel._workers

    class Pool(_StandInPool):
        def submit(self, fn: Any, *args: Any) -> Future[Any]:
            future: Future[Any] = Future()
            if fn is not nkpanel._workers.run_in_worker:  # the check that a worker works
                if breaks("check", self.n):
                    future.set_exception(BrokenProcessPool("a worker died as it started"))
                else:
                    future.set_result(fn(*args))
                return future
            analyse, known = args
            if breaks(analyse.__self__.path.name, self.n):
                future.set_exception(BrokenProcessPool("a worker died"))
            else:
                future.set_result(analyse(known))
            return future

    monkeypatch.setattr(nkpanel._workers, "process_pool", lambda jobs: Pool())


def test_a_worker_that_ends_costs_the_batch_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit 27: a worker that ended (out of memory, `kill`) stopped the batch, which wrote no
    tables for the files it had finished. The file it held is analysed again alone, and the
    batch goes on: every file written, in order, the batch tables too, with a note."""
    _breaking_pools(monkeypatch, lambda name, pool: name == "t5.fcs" and pool == 1)
    files = _tubes(tmp_path, 5, 6, 7)
    out = tmp_path / "out"
    done = pipeline.analyze_flow_batch(files, FlowSettings(), out, plots=False, jobs=2)
    assert [r.sample for r in done.results] == ["t5", "t6", "t7"] and not done.failures
    assert done.notes == [
        "a worker process ended before finishing its file (stopped by a signal, or out of "
        "memory): t5.fcs analysed again, each in a worker of its own"
    ]
    rows = json.loads((out / "flow_summary.json").read_text())["samples"]
    assert [r["sample"] for r in rows] == ["t5", "t6", "t7"]


def test_workers_that_do_not_start_leave_the_files_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool broken before it took any file (its workers could not start) is not started
    again and again: the files are analysed here, one after another, said in a note."""
    from concurrent.futures.process import BrokenProcessPool

    class Pool(_StandInPool):
        def submit(self, *args: Any) -> None:
            raise BrokenProcessPool("a child process terminated abruptly")

    done = _in_stand_in_pools(monkeypatch, Pool, _tubes(tmp_path, 5, 6, 7), tmp_path / "o")
    assert [r.sample for r in done.results] == ["t5", "t6", "t7"] and not done.failures
    assert done.notes == [
        "worker processes could not be started: the files were analysed one after another in "
        "this process (a script that asks for them runs its work under `if __name__ == "
        '"__main__":`)'
    ]


def test_a_retry_worker_that_ends_as_it_starts_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 29: a retry worker killed as it started sent the rest of the batch into this
    process, said as workers that cannot start. It is started again; only where no worker of
    the batch has worked and two in a row end is the batch analysed here."""
    _breaking_pools(
        monkeypatch,
        lambda what, pool: (what == "t5.fcs" and pool == 1) or (what == "check" and pool == 2),
    )
    files = _tubes(tmp_path, 5, 6)
    done = pipeline.analyze_flow_batch(files, FlowSettings(), tmp_path / "o", plots=False, jobs=2)
    assert [r.sample for r in done.results] == ["t5", "t6"] and not done.failures
    assert len(done.notes) == 1 and done.notes[0].startswith("a worker process ended")


def test_a_worker_that_ends_between_files_is_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 29: a pool that broke with every result back (a worker killed while idle) was
    said as "…: analysed again" naming no file."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    import nkpanel._workers

    class Pool(_StandInPool):
        def submit(self, fn: Any, *args: Any) -> Future[Any]:
            ours = self.n == 1 and fn is nkpanel._workers.run_in_worker
            if ours and args[0].__self__.path.name == "t7.fcs":  # broken by now
                raise BrokenProcessPool("a worker died")
            future: Future[Any] = Future()
            future.set_result(fn(*args))
            return future

    done = _in_stand_in_pools(monkeypatch, Pool, _tubes(tmp_path, 5, 6, 7), tmp_path / "o")
    assert [r.sample for r in done.results] == ["t5", "t6", "t7"] and not done.failures
    assert done.notes == [
        "a worker process ended between files (stopped by a signal, or out of memory): the "
        "batch went on in new ones"
    ]


def test_only_a_script_of_its_own_is_told_of_the_main_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review 29: the note for workers that cannot start spoke of "a script" on nkpanel's own
    command line."""
    import importlib.machinery
    import types

    def main(file: str | None, spec: str | None) -> bool:
        module = types.ModuleType("__main__")
        module.__file__ = file
        module.__spec__ = importlib.machinery.ModuleSpec(spec, None) if spec else None
        monkeypatch.setitem(sys.modules, "__main__", module)
        return pipeline._run_as_script()

    assert not main("/venv/lib/nkpanel/__main__.py", "nkpanel.__main__")  # python -m nkpanel
    assert not main("/venv/bin/nkpanel", None)  # the console script
    assert main("/lab/scripts/nightly.py", None)


def test_a_file_that_ends_its_worker_twice_is_its_failure_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose worker ends again when it is analysed alone is that file's failure; the
    files before and after it are written, with the batch tables."""
    _breaking_pools(monkeypatch, lambda name, pool: name == "t5.fcs")
    files = _tubes(tmp_path, 4, 5, 6, 7)
    out = tmp_path / "out"
    done = pipeline.analyze_flow_batch(files, FlowSettings(), out, plots=False, jobs=2)
    assert [r.sample for r in done.results] == ["t4", "t6", "t7"]
    assert [(Path(f.source).name, f.reason) for f in done.failures] == [
        (
            "t5.fcs",
            "its worker process ended before finishing it, with no other file beside it (out "
            "of memory? stopped by a signal?)",
        )
    ]
    assert not (out / "samples" / "t5").exists()
    summary = json.loads((out / "flow_summary.json").read_text())
    assert "t5.fcs" in json.dumps(summary["failures"])
    assert [r["sample"] for r in summary["samples"]] == ["t4", "t6", "t7"]


def test_a_script_without_a_main_guard_still_gets_its_batch(tmp_path: Path) -> None:
    """Worker processes import the program's main module: a script that asks for workers
    outside `if __name__ == "__main__":` made every worker fail as it started (review 28:
    every file then failed as "out of memory", and an earlier run's tables were removed).
    The files are analysed in the script's own process instead, said in a note."""
    files = _tubes(tmp_path, 5, 6, 7)
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import json, sys\n"
        "from pathlib import Path\n"
        "from nkpanel.flow.analyze import FlowSettings\n"
        "from nkpanel.pipeline import analyze_flow_batch\n"
        f"files = [Path(p) for p in {[str(f) for f in files]!r}]\n"
        f"out = Path({str(tmp_path / 'out')!r})\n"
        "done = analyze_flow_batch(files, FlowSettings(), out, plots=False, jobs=2)\n"
        "print(json.dumps([[r.sample for r in done.results], len(done.failures), done.notes]))\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    samples, failures, notes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert samples == ["t5", "t6", "t7"] and failures == 0
    assert len(notes) == 1 and notes[0].startswith("worker processes could not be started")


def test_worker_batches_say_a_file_when_those_before_it_are_done(tmp_path: Path) -> None:
    """Audit 27: the progress bar counted the files handed to the workers as done, running
    ahead of the work; each file is now said, as one after another says it, once every file
    before it is written."""
    files = _tubes(tmp_path, 5, 6, 7, 8)
    out = tmp_path / "out"
    written_before: list[list[str]] = []

    def on_file(path: str) -> None:
        written = {p.parent.name for p in out.glob("samples/*/summary.json")}
        written_before.append(sorted(w for w in written if not w.startswith(".")))  # not .part

    pipeline.analyze_flow_batch(files, FlowSettings(), out, plots=False, jobs=2, on_file=on_file)
    names = ["t5", "t6", "t7", "t8"]
    assert len(written_before) == 4
    for k, written in enumerate(written_before):  # later ones may be written already
        assert set(names[:k]) <= set(written), (k, written)
