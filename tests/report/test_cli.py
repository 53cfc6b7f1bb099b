"""``nkpanel report`` as a user meets it, standalone and registered on a parent app the way
the main command line registers it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from nkpanel.errors import ConfigError, InputError
from nkpanel.report.cli import app, report
from tests.interpret.summaries import flow_entry, summary


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), "utf-8")
    return path


def test_report_command_mounted_like_the_main_cli(tmp_path: Path) -> None:
    parent = typer.Typer()

    @parent.command()
    def version() -> None:  # a second command, so "report" is a subcommand as in nkpanel
        typer.echo("0")

    parent.command("report")(report)
    current = write(tmp_path / "case_summary.json", summary(episode="EP-2"))
    earlier = write(
        tmp_path / "earlier.json",
        summary(episode="EP-1", collected="2026-06-01T08:00:00", flow=[flow_entry(nk_pct=20.0)]),
    )
    lab = tmp_path / "lab.toml"
    lab.write_text('name = "CLI Test Lab"\nanalyst = "A. Analyst"\n', "utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        parent,
        [
            "report",
            str(current),
            "--out",
            str(out),
            "--history",
            str(earlier),
            "--lab",
            str(lab),
            "--authoriser",
            "Dr Z",
            "--amendment",
            "wrong bead lot",
            "--analytical-cv",
            "pnk-pct-lymph=5",
            "--no-pdf",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC DATA" in result.output and "FHIR R4 bundle" in result.output
    doc = json.loads((out / "report.json").read_text("utf-8"))
    assert doc["laboratory"]["name"] == "CLI Test Lab"
    assert doc["laboratory"]["authoriser"] == "Dr Z"
    assert doc["report"]["version"] == 2 and doc["report"]["status"] == "amended"
    (amended,) = doc["report"]["amendments"]
    assert amended["version"] == 1 and amended["reason"] == "wrong bead lot"
    assert amended["by"] == "Dr Z"  # amended now, by the one who signs this version
    assert doc["trends"] and doc["trends"][0]["code"] == "pnk-pct-lymph"
    nk = next(r for r in doc["results"] if r["code"] == "pnk-pct-lymph")
    assert "analytical CV 5% (laboratory setting)" in nk["uncertainty"]["basis"]
    assert (out / "report.fhir.json").is_file() and (out / "patient.html").is_file()
    assert not (out / "report.pdf").exists()


def test_reference_intervals_option(tmp_path: Path) -> None:
    lab = tmp_path / "intervals.toml"
    lab.write_text('[defaults]\n"pnk-pct-lymph" = "baystate-tbnk-pct"\n', "utf-8")
    current = write(tmp_path / "s.json", summary())
    result = CliRunner().invoke(
        app,
        [str(current), "--out", str(tmp_path / "o"), "--reference-intervals", str(lab), "--no-pdf"],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "o" / "report.json").read_text("utf-8"))
    nk = next(r for r in doc["results"] if r["code"] == "pnk-pct-lymph")
    assert nk["interval"]["source"] == "Baystate Health laboratory, TBNK panel"
    assert str(lab) in doc["interval_files"]


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        ("{not json", InputError, "not valid JSON"),
        ("[1, 2]", InputError, "must be a JSON object"),
        (None, InputError, "cannot read"),
    ],
)
def test_bad_summary_files(
    tmp_path: Path, content: str | None, error: type[Exception], match: str
) -> None:
    path = tmp_path / "s.json"
    if content is not None:
        path.write_text(content, "utf-8")
    result = CliRunner().invoke(app, [str(path), "--out", str(tmp_path / "o"), "--no-pdf"])
    assert isinstance(result.exception, error)
    assert match in str(result.exception) and str(path) in str(result.exception)


@pytest.mark.parametrize("pair", ["pnk-pct-lymph", "bogus=3", "pnk-pct-lymph=abc", "nka-lu=0"])
def test_bad_analytical_cv(tmp_path: Path, pair: str) -> None:
    current = write(tmp_path / "s.json", summary())
    result = CliRunner().invoke(
        app, [str(current), "--out", str(tmp_path / "o"), "--analytical-cv", pair, "--no-pdf"]
    )
    assert isinstance(result.exception, ConfigError)
    assert "--analytical-cv" in str(result.exception)


def _nkpanel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nkpanel", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=300,
        check=False,
    )


def test_free_text_in_the_case_never_stops_the_report(tmp_path: Path) -> None:
    # the reviewer's case: a manifest's medication note with a dose used to end in
    # "internal error … exit 3" with no report; it is the lab's record, quoted as such
    note = "prednisolone 20 mg daily"
    s = summary(pre_analytic={"current_corticosteroid": True, "medication_note": note})
    s["blood_draws"][0]["flow"][0]["qc"].append(
        {"check": "operator", "passed": False, "blocking": False, "reason": "give 2 mg re-run"}
    )
    current = write(tmp_path / "s.json", s)
    proc = _nkpanel("report", str(current), "--out", str(tmp_path / "o"), "--no-pdf")
    assert proc.returncode == 0, proc.stderr
    clinician = (tmp_path / "o" / "report.html").read_text("utf-8")
    assert f"medication recorded: “{note}”" in clinician
    assert "20 mg" not in (tmp_path / "o" / "patient.html").read_text("utf-8")


def test_a_lab_interval_file_breaking_the_wording_rules_is_one_config_error(
    tmp_path: Path,
) -> None:
    lab = tmp_path / "intervals.toml"
    lab.write_text(
        '[defaults]\n"pnk-pct-lymph" = "lab-x"\n[[interval]]\nid = "lab-x"\n'
        'measurand = "pnk-pct-lymph"\nkind = "reference_interval"\nlower = 5.0\nupper = 20.0\n'
        'unit = "%"\nmethod = "TBNK"\npopulation = "women without immune infertility"\n'
        'source = "Lab study 2026 (synthetic)"\n',
        "utf-8",
    )
    current = write(tmp_path / "s.json", summary())
    proc = _nkpanel(
        "report", str(current), "--out", str(tmp_path / "o"), "--reference-intervals", str(lab)
    )
    assert proc.returncode not in (0, 3), proc.stderr
    assert "internal error" not in proc.stderr and "AssertionError" not in proc.stderr
    assert str(lab) in proc.stderr and "interval 'lab-x' population" in proc.stderr
    assert not (tmp_path / "o" / "report.html").exists()


def test_a_preliminary_report_in_no_laboratorys_name_is_said_on_the_command_line(
    tmp_path: Path,
) -> None:
    """Without an authoriser the report is preliminary, and without a lab file it names no
    laboratory: both were said only on the pages (audit 17)."""
    current = write(tmp_path / "s.json", summary())
    bare = _nkpanel("report", str(current), "--out", str(tmp_path / "a"), "--no-pdf")
    assert bare.returncode == 0, bare.stderr
    assert "note: the report is PRELIMINARY: no authoriser" in bare.stderr
    assert "note: no laboratory is named on the report" in bare.stderr
    lab = tmp_path / "lab.toml"
    lab.write_text('name = "Test Lab"\nauthoriser = "Dr B"\n', "utf-8")
    # the lab file's authoriser does not authorise a report (audit 19: every run with it was
    # "final", even one whose results failed QC); --authoriser, given after review, does
    named = _nkpanel(
        "report", str(current), "--out", str(tmp_path / "b"), "--no-pdf", "--lab", str(lab)
    )
    assert named.returncode == 0, named.stderr
    notes = [ln for ln in named.stderr.splitlines() if ln.startswith("note:")]
    assert notes == [
        "note: the report is PRELIMINARY: no authoriser (--authoriser NAME, after review; a lab "
        "file's authoriser does not authorise)"
    ]
    signed = _nkpanel(
        "report",
        str(current),
        "--out",
        str(tmp_path / "c"),
        "--no-pdf",
        "--lab",
        str(lab),
        "--authoriser",
        "Dr B",
    )
    assert signed.returncode == 0, signed.stderr
    assert "note:" not in signed.stderr
    doc = json.loads((tmp_path / "c" / "report.json").read_text("utf-8"))
    assert doc["report"]["status"] == "final"


def test_a_report_into_the_case_summarys_own_folder_removes_nothing(tmp_path: Path) -> None:
    """Review 23: `nkpanel report RUN/case_summary.json --out RUN` removed the case summary it
    was made from (nkpanel's own file in --out, not written again). Nothing in --out is
    removed; the report's files are written there."""
    from nkpanel._atomic import write_owned, write_text

    run = tmp_path / "run"
    run.mkdir()
    current = write_owned(run / "case_summary.json", lambda t: write_text(t, json.dumps(summary())))
    proc = _nkpanel("report", str(current), "--out", str(run), "--no-pdf")
    assert proc.returncode == 0, proc.stderr
    assert current.is_file() and (run / "report.html").is_file()
