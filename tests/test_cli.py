"""The command line as a user meets it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs


def nkpanel(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "nkpanel", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


def test_demo_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = nkpanel("demo", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "SYNTHETIC" in proc.stdout
    current = out / "results" / "episode-2-2026-11"
    summary = json.loads((current / "case_summary.json").read_text())
    assert summary["synthetic"] is True
    assert summary["pre_analytic"]["current_corticosteroid"] is True
    flow = summary["blood_draws"][0]["flow"][0]
    case_dir = out / "synthetic-cases" / "episode-2-2026-11"
    truth = json.loads((case_dir / "blood" / "tbnk_tube1.truth.json").read_text())
    assert truth["synthetic"] is True
    assert abs(flow["nk_percent_of_lymphocytes"] - truth["nk_percent_of_lymphocytes"]) < 1.0
    assert summary["cytotoxicity"] and "error" not in summary["cytotoxicity"][0]
    biopsy = summary["endometrial"][0]
    assert biopsy["synthetic"] is True and not biopsy["failures"]
    assert 4.0 < biopsy["uterine"]["cd56_per_100_stromal_cells"] < 12.0  # simulated at 8
    plots = list((current / "flow" / "draw-1" / "samples" / "tbnk_tube1" / "plots").glob("*.png"))
    assert len(plots) >= 8
    report = current / "report"
    for name in ("report.html", "patient.html", "report.json", "report.fhir.json"):
        assert (report / name).stat().st_size > 0, name
    doc = json.loads((report / "report.json").read_text())
    # the earlier episode is there as history for the serial view
    assert "2026-06-01" in json.dumps(doc)
    assert "Endometrial NK cells" in proc.stdout and "NK activity" in proc.stdout
    for line in ("clinician report:", "patient page:", "FHIR bundle:"):
        assert line in proc.stdout
    assert "report.html" in proc.stdout and "patient.html" in proc.stdout  # as README says
    # a preliminary report is said, with the way it is authorised: after review, by nkpanel
    # report on this case summary (run has no --authoriser: review 18; a lab file's
    # authoriser does not authorise: audit 19)
    summary_path = current / "case_summary.json"
    earlier = out / "results" / "episode-1-2026-06" / "case_summary.json"
    expected = (
        "note: the report is PRELIMINARY: no authoriser (authorise it after review: nkpanel "
        f"report {summary_path} --out {current / 'report'} --history {earlier} --authoriser NAME"
    )
    assert expected in proc.stderr
    # the way said works, and keeps the serial view
    signed = nkpanel(
        "report",
        str(summary_path),
        "--out",
        str(current / "report"),
        "--history",
        str(earlier),
        "--authoriser",
        "Dr Test",
        "--no-pdf",
    )
    assert signed.returncode == 0, signed.stderr
    again = json.loads((current / "report" / "report.json").read_text())
    assert again["report"]["status"] == "final" and again["trends"]


def test_batch_with_bad_files_reports_each_and_analyses_the_rest(tmp_path: Path) -> None:
    good = write_fcs(simulate_tube(SimulationSpec(seed=31, n_events=30_000)), tmp_path / "good.fcs")
    empty = tmp_path / "empty.fcs"
    empty.write_bytes(b"")
    text = tmp_path / "notes.fcs"
    text.write_text("this is not an FCS file\n")
    truncated = tmp_path / "truncated.fcs"
    truncated.write_bytes(good.read_bytes()[:5000])
    out = tmp_path / "out"
    proc = nkpanel(
        "flow",
        "analyze",
        str(empty),
        str(text),
        str(good),
        str(truncated),
        "--out",
        str(out),
        "--no-plots",
        "--export-events",
        "csv",
    )
    assert proc.returncode == 1
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("failed:")]
    assert len(err_lines) == 3
    for bad in (empty, text, truncated):
        assert any(str(bad) in ln for ln in err_lines)
    assert "Traceback" not in proc.stderr
    summary = json.loads((out / "flow_summary.json").read_text())
    assert [s["sample"] for s in summary["samples"]] == ["good"]
    # what every result rests on beyond the files (audit 18: an audit trail)
    from nkpanel import __version__

    assert summary["settings"]["nkpanel"] == __version__
    assert "beads_per_test" in summary["settings"] and "marker_overrides" in summary["settings"]
    assert len(summary["failures"]) == 3
    events = (out / "samples" / "good" / "events.csv").read_text().splitlines()
    assert len(events) == 30_000 + 1
    assert not list(out.rglob("*.part"))
    # every file bad: nothing written, not empty tables
    none = tmp_path / "none"
    proc = nkpanel("flow", "analyze", str(empty), str(text), "--out", str(none))
    assert proc.returncode == 1 and "no file could be analysed: nothing written" in proc.stderr
    assert not none.exists()


def test_reused_output_folder_holds_only_this_runs_results(tmp_path: Path) -> None:
    """A second run into the same --out: each sample's folder holds only this run's files, a
    sample folder the run did not write is pointed out, and when every file fails the earlier
    batch tables go (they would pass for this run's)."""
    a = write_fcs(simulate_tube(SimulationSpec(seed=41, n_events=30_000)), tmp_path / "a.fcs")
    b = write_fcs(simulate_tube(SimulationSpec(seed=42, n_events=30_000)), tmp_path / "b.fcs")
    out = tmp_path / "out"
    first = nkpanel("flow", "analyze", str(a), str(b), "--out", str(out), "--export-events", "csv")
    assert first.returncode == 0, first.stderr
    assert (out / "samples" / "a" / "events.csv").is_file()
    assert list((out / "samples" / "a" / "plots").glob("*.png"))

    second = nkpanel("flow", "analyze", str(a), "--out", str(out), "--no-plots")
    assert second.returncode == 0, second.stderr
    assert sorted(p.name for p in (out / "samples" / "a").iterdir()) == [
        ".nkpanel-files",
        "gates.gatingml.xml",
        "summary.json",
    ]
    assert f"warning: {out / 'samples' / 'b'}: from an earlier run" in second.stderr
    summary = json.loads((out / "flow_summary.json").read_text())
    assert [s["sample"] for s in summary["samples"]] == ["a"]
    assert summary["earlier_sample_folders"] == [str(out / "samples" / "b")]
    assert not [p for p in out.rglob("*") if p.name.endswith((".part", ".old"))]

    a.write_bytes(a.read_bytes()[:5000])  # the file is now cut short
    third = nkpanel("flow", "analyze", str(a), "--out", str(out))
    assert third.returncode == 1
    assert "the earlier run's batch tables were removed" in third.stderr
    assert not list(out.glob("flow_*"))


def test_marker_override_and_bad_marker_syntax(tmp_path: Path) -> None:
    proc = nkpanel("flow", "analyze", "x.fcs", "--marker", "CD56", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:")
    assert "MARKER=LABEL" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    # a misspelt marker is named, not ignored
    proc = nkpanel("flow", "analyze", "x.fcs", "--marker", "CD65=NK1.1", "--out", str(tmp_path))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "CD65 is not a marker the NK analysis uses" in proc.stderr
    # two labels for one marker: refused, not the last one kept
    args = ("--marker", "CD3=FL1", "--marker", "CD3=FL2", "--out", str(tmp_path))
    proc = nkpanel("flow", "analyze", "x.fcs", *args)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--marker CD3 is given twice" in proc.stderr
    # one marker under two spellings the alias table takes for one
    args = ("--marker", "CD56=FL1", "--marker", "cd-56=FL2", "--out", str(tmp_path))
    proc = nkpanel("flow", "analyze", "x.fcs", *args)
    assert proc.returncode == 2 and "--marker cd-56 is given twice" in proc.stderr


def test_marker_override_names_are_compared_as_the_alias_table_compares_them(
    tmp_path: Path,
) -> None:
    """ "cd-56" names CD56 in the alias table, so --marker takes it too (it was refused)."""
    fcs = write_fcs(simulate_tube(SimulationSpec(n_events=20_000, seed=8)), tmp_path / "t.fcs")
    args = ("flow", "analyze", str(fcs), "--no-plots", "--out", str(tmp_path / "o"))
    proc = nkpanel(*args, "--marker", "cd-56=CD56")
    assert proc.returncode == 0, proc.stderr


def test_keep_cd45_dim_gates_the_lymphocytes_on_scatter_alone(tmp_path: Path) -> None:
    """--keep-cd45-dim leaves the CD45-dim events (basophils) in the lymphocyte gate: no
    "Lymphocyte scatter" gate above the lymphocytes, as there is by default."""
    fcs = write_fcs(simulate_tube(SimulationSpec(n_events=30_000, seed=8)), tmp_path / "t.fcs")

    def populations(*extra: str) -> str:
        out = tmp_path / ("o" + "".join(extra))
        proc = nkpanel("flow", "analyze", str(fcs), "--no-plots", "--out", str(out), *extra)
        assert proc.returncode == 0, proc.stderr
        return (out / "flow_populations.csv").read_text("utf-8")

    assert ",Lymphocyte scatter," in populations()
    assert ",Lymphocyte scatter," not in populations("--keep-cd45-dim")


@pytest.mark.parametrize(
    ("counts", "said"),
    [
        (("--beads", "-50000", "--volume", "50"), "beads per test must be a positive number"),
        (("--beads", "50000", "--volume", "0"), "sample volume (µL) must be a positive number"),
        (("--lymphocytes-per-ul", "-3"), "lymphocytes per µL must be a positive number"),
    ],
)
def test_impossible_count_inputs_are_refused(
    tmp_path: Path, counts: tuple[str, ...], said: str
) -> None:
    """A negative bead count once gave NK cells/µL of −258, 'reportable'."""
    proc = nkpanel("flow", "analyze", "x.fcs", *counts, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and not (tmp_path / "o").exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ("flow", "analyze", "x.fcs"),
        ("cytotox", "analyze", "r.csv", "--layout", "l.csv"),
        ("uterine", "analyze", "a.png"),
        ("report", "summary.json"),
        ("run", "case.toml"),
        ("simulate",),
        ("demo",),
    ],
)
def test_an_output_folder_that_is_a_file_is_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    taken = tmp_path / "results.txt"
    taken.write_text("a file a user already has")
    for out, why in ((taken, "not a folder"), (taken / "sub", "cannot be made in it")):
        proc = nkpanel(*command, "--out", str(out))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"error: {taken}: the output folder (--out) is a file")
        assert why in lines[0]
    assert taken.read_text() == "a file a user already has"


def test_brackets_in_names_are_printed_as_they_are(tmp_path: Path) -> None:
    """Rich reads [b] as bold and [/i] as a closing tag: names are never read as markup."""
    tube = write_fcs(simulate_tube(SimulationSpec(n_events=20_000, seed=5)), tmp_path / "t.fcs")
    named = tube.rename(tmp_path / "tube[b]1.fcs")
    missing = tmp_path / "gone[/i].fcs"
    proc = nkpanel(
        "flow", "analyze", str(named), str(missing), "--no-plots", "--out", str(tmp_path / "o")
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "tube[b]1" in proc.stdout
    assert f"failed: {missing}: No such file or directory" in proc.stderr


def test_a_folder_of_fcs_files_is_analysed_file_by_file(tmp_path: Path) -> None:
    folder = tmp_path / "tubes"
    folder.mkdir()
    for seed in (6, 7):
        tube = simulate_tube(SimulationSpec(n_events=20_000, seed=seed))
        write_fcs(tube, folder / f"tube{seed}.FCS")
    (folder / "notes.txt").write_text("not a tube")
    proc = nkpanel("flow", "analyze", str(folder), "--no-plots", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert f"review the gates: {tmp_path / 'o' / 'flow_review.html'}" in proc.stdout
    summary = json.loads((tmp_path / "o" / "flow_summary.json").read_text())
    assert [s["sample"] for s in summary["samples"]] == ["tube6", "tube7"]
    # a file given again (in its folder, and by another spelling of its path) counts once
    again = folder / ".." / "tubes" / "tube6.FCS"
    proc = nkpanel(
        "flow", "analyze", str(folder), str(again), "--no-plots", "--out", str(tmp_path / "t")
    )
    assert proc.returncode == 0, proc.stderr
    assert f"note: {again}: given twice (also as {folder / 'tube6.FCS'}): analysed once" in (
        proc.stderr
    )
    summary = json.loads((tmp_path / "t" / "flow_summary.json").read_text())
    assert [s["sample"] for s in summary["samples"]] == ["tube6", "tube7"]
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = nkpanel("flow", "analyze", str(empty), "--out", str(tmp_path / "e"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: {empty}: the folder holds no .fcs / .lmd file"
    proc = nkpanel("flow", "analyze", str(tmp_path), "--out", str(tmp_path / "e"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith(
        f"error: {tmp_path}: the folder holds no .fcs / .lmd file itself, but its subfolders "
        "hold 2: give the subfolders"
    )


def test_bad_manifest_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "case.toml"
    p.write_text("[case]\nid = 'x'\n")
    proc = nkpanel("run", str(p), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(p) in lines[0] and "patient_id" in lines[0]


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (("simulate", "--events", "5000"), "blood/tbnk_tube1.fcs"),
        (("simulate", "--events", "5000"), "case.toml"),
        (("cytotox", "simulate"), "plate_reads.csv"),
        (("uterine", "simulate", "--fields", "1"), "synthetic_field_01.tif"),
    ],
)
def test_simulators_never_overwrite_a_users_file(
    tmp_path: Path, command: tuple[str, ...], name: str
) -> None:
    """A simulator writing into a folder that holds a file of the same name that nkpanel did
    not write (a real tube, a lab's plate reads) refuses in one line and writes nothing; it
    silently replaced the file (audit 17). Its own earlier output it replaces."""
    out = tmp_path / "out"
    mine = out / name
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"PRECIOUS REAL DATA")
    proc = nkpanel(*command, "--out", str(out))
    assert proc.returncode == 2
    said = [ln for ln in proc.stderr.splitlines() if not ln.startswith("simulating ")]
    assert said == [  # besides the progress line, off a terminal, of the field simulated
        f"error: {mine}: exists and was not written by nkpanel, or was changed since: it is "
        "not overwritten (move it, or choose another --out)"
    ]
    assert mine.read_bytes() == b"PRECIOUS REAL DATA"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == sorted(
        {name, *(q.as_posix() for q in Path(name).parents if q != Path("."))}
    )
    again = tmp_path / "again"
    assert nkpanel(*command, "--out", str(again)).returncode == 0
    assert nkpanel(*command, "--out", str(again), "--seed", "2").returncode == 0


def test_a_simulator_removes_nothing_already_in_its_folder(tmp_path: Path) -> None:
    """Written into a folder holding nkpanel's outputs of another command (a case run's
    summary, another simulator's files), a simulator adds its files beside them and removes
    none: it had deleted a run's case_summary.json with exit 0 (review 18)."""
    out = tmp_path / "out"
    assert nkpanel("simulate", "--out", str(out), "--events", "5000").returncode == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert nkpanel("cytotox", "simulate", "--out", str(out)).returncode == 0
    after = {p.relative_to(out) for p in out.rglob("*") if p.is_file()}
    assert set(before) <= after and Path("plate_reads.csv") in after
    # the second simulator's files are nkpanel's too: a third run replaces them
    assert nkpanel("cytotox", "simulate", "--out", str(out), "--seed", "2").returncode == 0


def test_a_case_run_says_why_each_withheld_result_is(tmp_path: Path) -> None:
    """In a case run, a withheld biopsy said only NOT REPORTABLE in its table, and an LU of
    "–" nothing at all (review 18): each reason is a line under the tables."""
    case = tmp_path / "c"
    assert nkpanel("simulate", "--out", str(case), "--events", "5000").returncode == 0
    toml = case / "case.toml"
    text = toml.read_text().replace("lh_day = 7\n", "lh_day = 7\npixel_size_um = 1.0\n")
    toml.write_text("\n".join(x for x in text.splitlines() if "targets_per_well" not in x))
    proc = nkpanel("run", str(toml), "--out", str(tmp_path / "o"), "--no-report", "--no-plots")
    lines = proc.stderr.splitlines()
    assert any(
        x.startswith("not reportable: endometrial biopsy biopsy-1: ") and "pixel size" in x
        for x in lines
    )
    assert "note: NK activity nk-activity-51cr: LU/10⁷ –: targets per well not given" in (
        proc.stderr
    )
    # each blood draw's gates to look at, named (review 30: the pages were nowhere said)
    page = tmp_path / "o" / "flow" / "draw-1" / "flow_review.html"
    assert f"review the gates of blood draw draw-1: {page}" in proc.stdout and page.is_file()


def test_the_episodes_lh_day_times_a_biopsy_that_gives_none(tmp_path: Path) -> None:
    """An LH day in the episode's [pre_analytic] (and none in the biopsy's table): the report
    used it, while the biopsy's summary said "biopsy timing not given" (review 18)."""
    case = tmp_path / "c"
    assert nkpanel("simulate", "--out", str(case), "--events", "5000").returncode == 0
    toml = case / "case.toml"
    text = toml.read_text().replace("lh_day = 7\n", "")
    text = text.replace("[[blood_draws]]", "[pre_analytic]\nlh_day = 8\n\n[[blood_draws]]", 1)
    toml.write_text(text)
    out = tmp_path / "o"
    proc = nkpanel("run", str(toml), "--out", str(out), "--no-report", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    (biopsy,) = json.loads((out / "case_summary.json").read_text())["endometrial"]
    assert biopsy["timing"]["lh_day"] == 8 and biopsy["timing"]["in_mid_luteal_window"]


def test_history_that_breaks_the_serial_views_rules_is_refused_before_any_work(
    tmp_path: Path,
) -> None:
    """--history of another patient, of the episode itself, given twice, or collected after
    this episode: refused in one line naming the file before anything is analysed; it was
    refused only after every biomarker had run, naming "case summary" and leaving results
    with no report (audit 17, review 18)."""
    case = tmp_path / "c"
    assert nkpanel("simulate", "--out", str(case), "--events", "5000").returncode == 0

    def summary(name: str, patient: str, episode: str, collected: str) -> Path:
        path = tmp_path / f"{name}.json"
        draw = {"id": "draw-1", "collected": collected, "flow": []}
        path.write_text(
            json.dumps({"case": {"id": episode, "patient_id": patient}, "blood_draws": [draw]})
        )
        return path

    before = "2026-06-01T08:30:00"
    other = summary("other", "OTHER-9", "EP-0", before)
    itself = summary("itself", "SYNTH-0001", "SYNTH-EP-0001", before)
    old = summary("old", "SYNTH-0001", "EP-OLD", before)
    later = summary("later", "SYNTH-0001", "EP-LATER", "2026-11-20T08:30:00")
    for given, file, why in (
        ([other], other, "is of patient OTHER-9, not SYNTH-0001"),
        ([itself], itself, "is the episode being reported"),
        ([old, old], old, "given twice: EP-OLD"),
        ([later], later, "was collected 2026-11-20, after this episode (2026-11-02)"),
    ):
        out = tmp_path / f"out-{file.stem}"
        args = [a for p in given for a in ("--history", str(p))]
        proc = nkpanel("run", str(case / "case.toml"), "--out", str(out), *args)
        assert proc.returncode == 2
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(f"error: {file}: ") and why in line, line
        assert not out.exists()
    # an episode recorded by days alone (no draw time): its days count, as in its summary
    # (review 24: the check before the work saw no time and let the later episode through)
    manifest = case / "case.toml"
    text = manifest.read_text("utf-8")
    manifest.write_text(text.replace("collected = 2026-11-02T08:30:00", "collected = 2026-11-22"))
    out = tmp_path / "out-days"
    proc = nkpanel("run", str(manifest), "--out", str(out), "--history", str(later))
    assert proc.returncode == 2 and not out.exists()
    assert "was collected 2026-11-20, after this episode (2026-11-02)" in proc.stderr


def test_a_folder_another_run_writes_to_is_refused(tmp_path: Path) -> None:
    """Two runs into one --out at once mixed their samples' tables, gates and plots (audit
    18): while one run holds the folder, another is refused in one line before any work, and
    the folder holds no lock file afterwards."""
    from nkpanel._cli import hold_folder

    out = tmp_path / "out"
    release = hold_folder(out)
    try:
        proc = nkpanel("simulate", "--out", str(out), "--events", "5000")
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [
            f"error: {out}: another nkpanel run is writing to this output folder (--out): "
            "wait for it to finish, or choose another folder"
        ]
        assert not any(out.iterdir())
    finally:
        release()
    assert not out.exists()  # made by the hold, left empty: removed
    assert nkpanel("simulate", "--out", str(out), "--events", "5000").returncode == 0
    assert not [p for p in out.iterdir() if "lock" in p.name]


def test_a_usage_error_after_out_leaves_no_folder(tmp_path: Path) -> None:
    """--out is taken as it is parsed; a later option that fails to parse left the folder (and
    the folders above it that were made for it) empty behind (review 19)."""
    out = tmp_path / "new" / "out"
    proc = nkpanel("simulate", "--out", str(out), "--events", "5")
    assert proc.returncode == 2
    assert not (tmp_path / "new").exists()


def test_a_file_system_without_locks_runs_unlocked_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On NFS a folder cannot be flock-ed (EBADF): every run was refused as if another held
    the folder (review 19). It runs unlocked, saying so; only a held lock refuses."""
    import errno
    import fcntl

    from nkpanel._cli import hold_folder

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    release = hold_folder(tmp_path / "share")
    release()
    release()  # a second release closes nothing (its descriptor number may be another's)
    assert not (tmp_path / "share").exists()


def test_an_output_folder_this_user_cannot_write_to_is_refused_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only --out gave an internal error for every file (audit 18): refused once, before
    any work. (Permissions are asked of os.access, as root passes every chmod.)"""
    import os

    from nkpanel._cli import hold_folder
    from nkpanel.errors import InputError

    out = tmp_path / "ro"
    out.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != out)
    with pytest.raises(InputError, match="is not writable by this user"):
        hold_folder(out)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_an_interrupted_run_says_so_and_leaves_nothing_half_written(
    tmp_path: Path, signame: str
) -> None:
    """Ctrl-C exited 130 without a word, and SIGTERM (a scheduler, `kill`) ended the run at
    once, leaving half-built temporary folders that a complete re-run kept for an hour (audit
    18). Both now stop through the run's clean-up and say so."""
    import signal
    import time

    out = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nkpanel", "demo", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (out / "synthetic-cases").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the run has started (its folder is made once --out is taken)
    time.sleep(1.0)
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=120)
    # 128 + the signal's number, as a shell reports it: a scheduler tells its stop from Ctrl-C
    assert proc.returncode == {"SIGINT": 130, "SIGTERM": 143}[signame], err
    assert err.strip().splitlines()[-1].startswith("aborted: interrupted: every file written")
    assert not [p for p in out.rglob("*") if ".part" in p.name]


def _worker_batch(
    tmp_path: Path, n_files: int, n_events: int
) -> tuple[subprocess.Popen[str], Path]:
    """``nkpanel flow analyze`` of ``n_files`` different synthetic tubes in two worker
    processes, started in a process group of its own (as a terminal's job); its --out."""
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs

    files = [  # different tubes (one tube n times would be re-analysed in the parent)
        write_fcs(simulate_tube(SimulationSpec(seed=i, n_events=n_events)), tmp_path / f"t{i}.fcs")
        for i in range(n_files)
    ]
    out = tmp_path / "out"
    args = ["flow", "analyze", *map(str, files), "--jobs", "2", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "nkpanel", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        start_new_session=True,
    )
    return proc, out


def _stderr_of(proc: subprocess.Popen[str]) -> str:
    """The run's stderr once it ends; a run that hangs is not left running after its test."""
    import signal

    try:
        return proc.communicate(timeout=120)[1]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


@pytest.mark.parametrize(
    ("signame", "whom"), [("SIGINT", "group"), ("SIGTERM", "group"), ("SIGTERM", "parent")]
)
def test_an_interrupted_batch_in_worker_processes_stops_whole(
    tmp_path: Path, signame: str, whom: str
) -> None:
    """--jobs: Ctrl-C (the terminal signals the whole process group) or SIGTERM to nkpanel
    alone (a scheduler, `kill`) stops a batch analysed in worker processes: its status, no
    half-written folder, and no worker process left behind."""
    import signal
    import time

    proc, out = _worker_batch(tmp_path, 6, 60_000)
    deadline = time.monotonic() + 120
    while not list(out.glob("samples/*")) and time.monotonic() < deadline:
        time.sleep(0.05)  # workers are writing samples
    sig = getattr(signal, signame)
    if whom == "group":
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    err = _stderr_of(proc)
    assert proc.returncode in (128 + sig, -sig), err  # a shell reports both as 128 + sig
    assert err.strip().splitlines()[-1].startswith("aborted: interrupted"), err
    assert "Traceback" not in err  # a worker between files says nothing
    assert not [p for p in out.rglob("*") if ".part" in p.name or ".old" in p.name]
    for folder in out.glob("samples/*"):  # each sample folder whole
        assert (folder / "summary.json").is_file() and (folder / "plots").is_dir()
    # nothing of the run's process group is left running (one still exiting, for a moment,
    # shows as R)
    deadline = time.monotonic() + 10
    while (running := _running_in_session(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running == []


@pytest.mark.parametrize("after", [0.4, 0.8, 1.2])
def test_an_interrupt_while_the_workers_start_prints_no_traceback(
    tmp_path: Path, after: float
) -> None:
    """Review 25: Ctrl-C in the first seconds of a worker batch, while the worker processes
    import nkpanel, printed their tracebacks (12 of 12 runs in that window)."""
    import signal
    import time

    proc, _ = _worker_batch(tmp_path, 4, 20_000)
    time.sleep(after)
    os.killpg(proc.pid, signal.SIGINT)
    err = _stderr_of(proc)
    assert "Traceback" not in err and "Fatal Python error" not in err, err
    if proc.returncode != 0:  # stopped (not finished before the signal came); ended by the
        # signal itself (-2, once in ~30 runs) is what a shell reports as 130 too
        assert proc.returncode in (130, -signal.SIGINT) and "aborted: interrupted" in err, err


@contextlib.contextmanager
def _killed_on_failure(proc: subprocess.Popen[str]) -> Iterator[None]:
    """The run's process group killed when the test fails within (not left running)."""
    import signal

    try:
        yield
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise


def _workers_of(proc: subprocess.Popen[str]) -> list[int]:
    """The worker processes of ``proc`` (a batch in two), once both are running."""
    import time

    workers: list[int] = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        # the workers are the grandchildren (forked by the forkserver, a child): found by
        # process ids alone, as a command line is cut to the terminal's width (COLUMNS)
        rows = subprocess.run(
            ["ps", "-o", "pid=,ppid=", "-g", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        parent_of = dict(zip(map(int, rows[::2]), map(int, rows[1::2]), strict=True))
        workers = [p for p, pp in parent_of.items() if parent_of.get(pp) == proc.pid]
    assert len(workers) >= 2, f"no two workers seen; run ended {proc.poll()}"
    return workers


def _running_in_session(sid: int) -> list[str]:
    """The processes of session ``sid`` not yet ended (an exited process this sandbox's init
    has not reaped shows as Z)."""
    listed = subprocess.run(
        ["ps", "-o", "pid=,stat=,args=", "-g", str(sid)], capture_output=True, text=True
    ).stdout.splitlines()
    return [p for p in listed if p.split()[1][0] != "Z"]


@pytest.mark.parametrize("after", [0.3, 1.5])
def test_workers_end_when_their_run_is_killed(tmp_path: Path, after: float) -> None:
    """Audit 27: a run killed outright (kill -9, a wrapper's time limit, SIGHUP to it alone)
    left its two workers (~285 MB each), the forkserver and the resource tracker running for
    good, the workers waiting for work; now they stop through their clean-up (no .part)."""
    import signal
    import time

    proc, out = _worker_batch(tmp_path, 6, 60_000)
    with _killed_on_failure(proc):
        _workers_of(proc)
        time.sleep(after)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()  # not its stderr: a worker left running holds it open
        deadline = time.monotonic() + 20
        while (left := _running_in_session(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == []
        proc.communicate()  # its stderr, closed by all now
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    for folder in out.glob("samples/*"):  # each sample folder whole
        assert (folder / "summary.json").is_file() and (folder / "plots").is_dir()


def test_a_worker_process_that_dies_costs_the_batch_no_file(tmp_path: Path) -> None:
    """A worker killed under a batch (the system's OOM killer, `kill -9`): the files it may
    have held are analysed again, one at a time, and the run ends as if nothing had happened
    but for one note line (audit 27: it stopped, exit 2, with no batch tables)."""
    import signal
    import time

    proc, out = _worker_batch(tmp_path, 6, 60_000)
    with _killed_on_failure(proc):
        workers = _workers_of(proc)
        time.sleep(0.5)
        os.kill(workers[0], signal.SIGKILL)
    err = _stderr_of(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    said = [line for line in err.splitlines() if "a worker process ended" in line]
    assert len(said) == 1 and "analysed again, each in a worker of its own" in said[0], err
    # only the files that can have been in a worker (two workers, one file queued): not
    # every file handed out (review 28: 8 files of 12 analysed again one at a time)
    again = said[0].split("): ")[1].split(" analysed again")[0].split(", ")
    assert 1 <= len(again) <= 3, said[0]
    rows = json.loads((out / "flow_summary.json").read_text())["samples"]
    assert [r["sample"] for r in rows] == [f"t{i}" for i in range(6)]
    assert not list((out / "samples").glob(".*"))  # no half-built folder left


@pytest.mark.parametrize("after", [0.03, 0.06, 0.1])
def test_an_interrupt_while_the_program_loads_is_quiet(tmp_path: Path, after: float) -> None:
    """The flake loop of session 15: a Ctrl-C in the first ~0.1 s, while the command line was still
    being imported, printed Python's KeyboardInterrupt traceback (3 of 3 runs at 0.03–0.07 s
    here). Nothing has started then: the run ends quietly with 130."""
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "nkpanel", "flow", "analyze", "x.fcs", "--out", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(after)
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert "Traceback" not in err, err
    # before Python has set its own handler, the system's default ends it by the signal
    assert proc.returncode in (130, -signal.SIGINT), err


def test_an_interrupt_caught_in_string_code_keeps_the_exit_code(tmp_path: Path) -> None:
    """Audit 27: SIGTERM in the first half second (while dataclasses build their methods from
    strings, on import) ended `python -m nkpanel` by SIGINT (exit 130, -2 to subprocess), not
    143: CPython took the KeyboardInterrupt raised in string code for unhandled although it
    was caught. The run's own way out still gives 128 + the signal."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "__main__.py").write_text(
        "import signal\n"
        "from nkpanel import cli, errors\n"
        "try:\n"
        "    exec('raise KeyboardInterrupt', {})  # as a signal landing in string code\n"
        "except KeyboardInterrupt:\n"
        "    pass\n"
        "errors._INTERRUPTED.append(int(signal.SIGTERM))\n"
        "cli._stopping()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    proc = subprocess.run(
        [sys.executable, "-m", "probe"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 143, proc.stderr
    assert "aborted: interrupted" in proc.stderr


def test_the_paths_said_at_the_end_are_not_cut(tmp_path: Path) -> None:
    """The demo's "review the gates" line broke its path in two at 80 columns (a pipe or a
    log: no terminal width); paths are said on one line each, to be copied whole."""
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs

    tube = write_fcs(simulate_tube(SimulationSpec(n_events=5_000)), tmp_path / "t.fcs")
    out = tmp_path / ("a long folder name " * 4) / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "nkpanel", "flow", "analyze", str(tube), "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "60"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"outputs written to {out}\n" in proc.stdout
    assert f"review the gates: {out / 'flow_review.html'}\n" in proc.stdout


def test_debug_after_the_command_shows_the_traceback(tmp_path: Path) -> None:
    """Error lines ask for --debug; given after the command, where a user adds it, it works
    as given first (it was "No such option: --debug", exit 2)."""
    from nkpanel.cli import _debug_first

    assert _debug_first(["run", "c.toml", "--debug"]) == ["--debug", "run", "c.toml"]
    assert _debug_first(["run", "--", "--debug"]) == ["run", "--", "--debug"]  # a file name
    p = tmp_path / "case.toml"
    p.write_text("[case]\nid = 'x'\n")
    plain = nkpanel("run", str(p), "--out", str(tmp_path / "o"))
    shown = nkpanel("run", str(p), "--out", str(tmp_path / "o"), "--debug")
    assert "Traceback" not in plain.stderr and plain.returncode == 2
    assert "No such option" not in shown.stderr
    assert "Traceback" in shown.stderr and "ConfigError" in shown.stderr


@pytest.mark.shared_data
def test_template_from_flowjo_workspace(shared_data: Path, tmp_path: Path) -> None:
    d = shared_data / "flowsom-68983"
    proc = nkpanel(
        "flow",
        "analyze",
        str(d / "68983.fcs"),
        "--template",
        str(d / "gating.wsp"),
        "--out",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "flow_populations.json").read_text())
    counts = {r["population"]: r["count"] for r in rows}
    assert counts["NK"] == 312
    # every rectangle and polygon gate of the workspace is drawn (15 in this tree)
    plots = sorted((tmp_path / "samples" / "68983" / "plots").glob("*.png"))
    assert len(plots) == 15
    assert (tmp_path / "samples" / "68983" / "plots" / "NK_cells.svg").stat().st_size > 0
    # the template recorded by name and content, not by a path on the lab's machine
    import hashlib

    run = json.loads((tmp_path / "flow_summary.json").read_text())["settings"]
    assert run["template"] == "gating.wsp" and str(d) not in json.dumps(run)
    assert run["template_sha256"] == hashlib.sha256((d / "gating.wsp").read_bytes()).hexdigest()


@pytest.mark.shared_data
def test_workspace_template_on_a_new_patients_file(shared_data: Path, tmp_path: Path) -> None:
    """A lab's one-sample template workspace gates a file of another name (here the same
    events copied under a new name), with figures; --template-sample is checked before any
    file is read."""
    import shutil

    d = shared_data / "flowsom-68983"
    new = tmp_path / "patient 0042.fcs"
    shutil.copyfile(d / "68983.fcs", new)
    wsp = str(d / "gating.wsp")
    proc = nkpanel("flow", "analyze", str(new), "--template", wsp, "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "o" / "flow_populations.json").read_text())
    assert {r["population"]: r["count"] for r in rows}["NK"] == 312
    assert "gates of the workspace sample '68983.fcs' applied" in proc.stderr
    assert len(list((tmp_path / "o" / "samples" / "patient 0042" / "plots").glob("*.png"))) == 15

    for extra, cause in (
        (["--template", wsp, "--template-sample", "other.fcs"], "has no sample 'other.fcs'"),
        (["--template-sample", "68983.fcs"], "--template-sample names a sample"),
    ):
        proc = nkpanel("flow", "analyze", str(new), *extra, "--out", str(tmp_path / "x"))
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and cause in lines[0], proc.stderr
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_qc_limits_are_set_on_the_command_line(tmp_path: Path) -> None:
    tube = write_fcs(simulate_tube(SimulationSpec(seed=32, n_events=30_000)), tmp_path / "t.fcs")
    out = tmp_path / "out"
    proc = nkpanel(
        "flow", "analyze", str(tube), "--out", str(out), "--no-plots", "--min-nk-events", "100000"
    )
    assert proc.returncode == 0, proc.stderr  # analysed, but not reportable
    sample = json.loads((out / "flow_summary.json").read_text())["samples"][0]
    assert sample["reportable"] is False
    flag = next(f for f in sample["qc"] if f["check"] == "NK events")
    assert flag["limit"] == 100000 and not flag["passed"]


def test_warnings_and_how_the_file_was_read_are_printed(tmp_path: Path) -> None:
    """The table says "reportable"; the lines under it say what that leaves out."""
    from nkpanel.flow.sample import read_fcs
    from tests.flow.fcs_bytes import edit_text_value

    spec = SimulationSpec(n_events=20_000, seed=9, with_cd45=False)  # a gating note
    fcs = write_fcs(simulate_tube(spec), tmp_path / "t.fcs")
    bad = "x" * len(read_fcs(fcs).metadata["timestep"])  # same length: offsets stay right
    fcs.write_bytes(edit_text_value(fcs.read_bytes(), "$TIMESTEP", bad))
    proc = nkpanel("flow", "analyze", str(fcs), "--no-plots", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert f"read: t: $TIMESTEP '{bad}' is not a positive number; ignored" in proc.stderr
    # how the gates were found
    assert "note: t: no CD45: leukocytes taken from scatter alone" in proc.stderr


def test_spillover_with_a_template_is_refused_before_any_file_is_read(tmp_path: Path) -> None:
    tube = write_fcs(simulate_tube(SimulationSpec(seed=43, n_events=20_000)), tmp_path / "t.fcs")
    out = tmp_path / "out"
    first = nkpanel("flow", "analyze", str(tube), "--out", str(out), "--no-plots")
    assert first.returncode == 0, first.stderr
    matrix = tmp_path / "m.csv"
    matrix.write_text("FITC-A,PE-A\n1,0.1\n0,1\n")
    xml = out / "samples" / "t" / "gates.gatingml.xml"
    proc = nkpanel(
        "flow",
        "analyze",
        str(tube),
        "--template",
        str(xml),
        "--spillover",
        str(matrix),
        "--out",
        str(tmp_path / "x"),
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--spillover with --template" in lines[0], proc.stderr
    assert not (tmp_path / "x").exists()
    # the automated gating's options: accepted, unused and recorded as the settings behind
    # the results (audit 21)
    for given, said in (
        (["--marker", "CD56=FITC-A"], "--marker with --template: it sets"),
        (["--logicle-m", "3", "--keep-cd45-dim"], "--logicle-m, --keep-cd45-dim with"),
    ):
        proc = nkpanel(
            "flow",
            "analyze",
            str(tube),
            "--template",
            str(xml),
            *given,
            "--out",
            str(tmp_path / "x"),
        )
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr
        assert not (tmp_path / "x").exists()


def test_a_case_with_two_draws_names_the_draw_of_each_row(tmp_path: Path) -> None:
    from nkpanel.demo import write_synthetic_case

    manifest = write_synthetic_case(
        tmp_path / "case", n_events=20_000, cytotoxicity=False, endometrial=False
    )
    manifest.write_text(
        manifest.read_text() + '\n[[blood_draws]]\nid = "draw-2"\nfcs = ["blood/tbnk_tube1.fcs"]\n'
    )
    proc = nkpanel("run", str(manifest), "--out", str(tmp_path / "out"), "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "draw-1/tbnk_tube1" in proc.stdout and "draw-2/tbnk_tube1" in proc.stdout
    # a failure says its draw too: one file in two draws, each with its own template, failed
    # as the same file (audit 21)
    (tmp_path / "case" / "lab.xml").write_text("<not-closed>")
    manifest.write_text(manifest.read_text() + 'template = "lab.xml"\n')
    proc = nkpanel("run", str(manifest), "--out", str(tmp_path / "out2"), "--no-report")
    failed = [ln for ln in proc.stderr.splitlines() if ln.startswith("failed:")]
    assert failed and all(ln.startswith("failed: blood draw draw-2: ") for ln in failed), failed


def test_a_labs_own_file_of_a_table_name_is_never_touched(tmp_path: Path) -> None:
    """--out holds the lab's own flow_summary.json: the run is refused before any work, in one
    line, and the file is left as it was (a failed run used to delete it)."""
    tube = write_fcs(simulate_tube(SimulationSpec(seed=44, n_events=20_000)), tmp_path / "t.fcs")
    lab = tmp_path / "lab"
    lab.mkdir()
    theirs = lab / "flow_summary.json"
    theirs.write_text('{"the lab": "notes"}')
    for target in (tube, tmp_path / "missing.fcs"):
        proc = nkpanel("flow", "analyze", str(target), "--out", str(lab))
        assert proc.returncode == 2
        (line,) = proc.stderr.strip().splitlines()
        assert str(theirs) in line and "was not written by nkpanel" in line
    assert theirs.read_text() == '{"the lab": "notes"}'
    assert sorted(p.name for p in lab.iterdir()) == ["flow_summary.json"]


def test_version_flag_and_every_option_has_help() -> None:
    """``nkpanel --version`` prints what ``nkpanel version`` prints; and no option of any
    command is listed in --help without a word of what it does (audit 17 found 13)."""
    import typer

    from nkpanel import __version__
    from nkpanel.cli import app

    proc = nkpanel("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == __version__
    bare: list[str] = []

    def walk(cmd: Any, path: str) -> None:  # typer's own click (typer._click) since 0.2x
        for p in cmd.params:
            option = p.param_type_name == "option" and not p.hidden
            if option and not (p.help or "").strip():
                bare.append(f"{path} {p.opts[0]}")
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "nkpanel")
    assert not bare, bare


def test_a_batch_off_a_terminal_says_each_file_as_it_starts_and_shared_notes_once(
    tmp_path: Path,
) -> None:
    """Audit 18: a logged batch was silent until its table, and the same note ("counting-bead
    events found, but no beads per test…") came once per file. Off a terminal each file is a
    plain line as it starts; a fact every file shares is one line naming them, its differing
    numbers as a range."""
    files = []
    for seed in (1, 2, 3):
        tube = simulate_tube(SimulationSpec(n_events=20_000, seed=seed))
        files.append(str(write_fcs(tube, tmp_path / f"t{seed}.fcs")))
    proc = nkpanel("flow", "analyze", *files, "--out", str(tmp_path / "out"), "--no-plots")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert [ln for ln in lines if ln.startswith("analysing")] == [
        "analysing 1/3: t1.fcs",
        "analysing 2/3: t2.fcs",
        "analysing 3/3: t3.fcs",
    ]
    beads = [ln for ln in lines if "counting-bead events found" in ln]
    assert len(beads) == 1, beads
    assert beads[0].startswith("note: t1, t2, t3: ")


def test_grouped_lines_keep_what_differs() -> None:
    """Hand-made lines: numbers that differ become their range, equal ones stay, numbers
    inside names (CD3, tube1) are words; different facts stay apart, in order of first
    appearance; more than four samples are counted."""
    from nkpanel._cli import grouped

    lines = [
        ("a", "17240 beads on CD3, 2.5% kept"),
        ("b", "cut at the tail of CD56"),
        ("b", "17607 beads on CD3, 2.5% kept"),
        ("c", "9 beads on CD3, 2.5% kept"),
        ("c", "read tube1.fcs"),
    ]
    assert grouped(lines) == [
        "a, b, c: 9–17607 beads on CD3, 2.5% kept",
        "b: cut at the tail of CD56",
        "c: read tube1.fcs",
    ]
    many = [(f"s{i}", "no beads per test") for i in range(6)]
    assert grouped(many) == ["6 samples (s0 … s5): no beads per test"]
    # two numbers differing stay apart: which CV goes with which ratio would be lost, and a
    # range 12.5–50:1 would take in 25:1 (review 21); a comma after a number is no digit
    ratios = [
        ("P1 (none)", "50:1: % lysis CV 30.0% at a mean lysis of 40.0%"),
        ("P1 (none)", "12.5:1: % lysis CV 30.0% at a mean lysis of 20.0%"),
    ]
    assert grouped(ratios) == [f"{who}: {text}" for who, text in ratios]
    assert grouped([("t1", "17240, then -3.2"), ("t2", "17607, then -3.2")]) == [
        "t1, t2: 17240–17607, then -3.2"
    ]
    # a value quoted as read is no measure (audit 27: "$TIMESTEP '-0.01–0'")
    quoted = [("a", "$TIMESTEP '-0.01' is not positive"), ("b", "$TIMESTEP '0' is not positive")]
    assert grouped(quoted) == [f"{who}: {text}" for who, text in quoted]
    same = [("a", "$TIMESTEP '0' is not"), ("b", "$TIMESTEP '0' is not")]
    assert grouped(same) == ["a, b: $TIMESTEP '0' is not"]


def test_a_case_runs_report_is_preliminary_whatever_the_lab_file_says(tmp_path: Path) -> None:
    """Audit 19: a lab file naming an authoriser made every case run's report "final" and
    "Authorised by", even one whose results failed QC. A run's report is preliminary until a
    person authorises it after review (nkpanel report --authoriser)."""
    from nkpanel.demo import write_synthetic_case

    manifest = write_synthetic_case(
        tmp_path / "case", n_events=20_000, cytotoxicity=False, endometrial=False
    )
    lab = tmp_path / "lab.toml"
    lab.write_text('name = "Test Lab"\nauthoriser = "Dr Q. Audit"\n', "utf-8")
    out = tmp_path / "out"
    proc = nkpanel("run", str(manifest), "--out", str(out), "--no-plots", "--lab", str(lab))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "report" / "report.json").read_text("utf-8"))
    assert doc["report"]["status"] == "preliminary"
    assert "Dr Q. Audit" not in (out / "report" / "report.html").read_text("utf-8")
    assert "note: the report is PRELIMINARY" in proc.stderr
    # authorised as the console says, after review; a later run into the folder still works
    # (review 22: the report's files, written in place, were refused by it as not nkpanel's)
    signed = nkpanel(
        "report",
        str(out / "case_summary.json"),
        "--out",
        str(out / "report"),
        "--lab",
        str(lab),
        "--authoriser",
        "Dr Q. Audit",
        "--no-pdf",
    )
    assert signed.returncode == 0, signed.stderr
    doc = json.loads((out / "report" / "report.json").read_text("utf-8"))
    assert doc["report"]["status"] == "final"
    again = nkpanel("run", str(manifest), "--out", str(out), "--no-plots", "--lab", str(lab))
    assert again.returncode == 0, again.stderr
