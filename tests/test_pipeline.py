"""The flow batch: every file's result kept, bad files listed, no file's events kept."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

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


def test_files_of_one_name_from_two_folders_keep_their_own_outputs(tmp_path: Path) -> None:
    paths = []
    for seed, folder in ((3, "episode-1"), (4, "episode-2")):
        (tmp_path / folder).mkdir()
        tube = simulate_tube(SimulationSpec(seed=seed, n_events=20_000))
        paths.append(write_fcs(tube, tmp_path / folder / "tube1.fcs"))
    out = tmp_path / "out"
    outcome = pipeline.analyze_flow_batch(paths, FlowSettings(), out, plots=False)
    first, second = outcome.results
    assert (first.sample, second.sample) == ("tube1", "tube1-2")
    assert second.source == str(paths[1]) and "also called tube1" in second.file_notes[-1]
    for r in outcome.results:  # each sample's own summary, not overwritten by the other
        summary = (out / "samples" / r.sample / "summary.json").read_text()
        assert f'"source": "{r.source}"' in summary
    assert first.nk_percent_of_lymphocytes != second.nk_percent_of_lymphocytes


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


def test_a_case_rerun_leaves_nothing_of_the_earlier_run_that_could_pass_for_this_one(
    tmp_path: Path,
) -> None:
    """Run 1: a second draw lists one FCS file twice (by two spellings) and one that is not
    there. Run 2, into the same folder, drops that draw and writes no report: the draw's
    folder and the old report go, and the run says so."""
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
    assert (out / "report").is_dir() and (out / "flow" / "draw-2").is_dir()

    manifest.write_text(first_text)
    run2 = pipeline.run_case(load_case(manifest), out, plots=False, reports=False)
    assert sorted(run2.removed) == sorted([out / "flow" / "draw-2", out / "report"])
    assert not (out / "flow" / "draw-2").exists() and not (out / "report").exists()
    assert (out / "flow" / "draw-1" / "flow_summary.json").is_file()
