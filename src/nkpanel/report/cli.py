"""``nkpanel report``: a case summary in, the clinician report, patient page, report JSON and
FHIR bundle out.

:data:`app` is a one-command Typer app (``python -m``-style use and tests). On the main command
line the command function is registered directly, so options may follow the argument::

    from nkpanel.report.cli import report as report_command
    app.command("report")(report_command)

(``app.add_typer(...)`` would make ``report`` a group, and a click group stops parsing options
at its first argument.)
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from nkpanel._atomic import atomic_folder
from nkpanel._cli import (
    HistoryOption,
    IntervalsOption,
    LabOption,
    output_folder,
    parse_pairs,
    say,
)
from nkpanel.errors import ConfigError, InputError

__all__ = ["app", "read_summary", "report"]

app = typer.Typer(
    add_completion=False,
    help="Write the clinician report, patient page, report JSON and FHIR bundle of a case.",
)


def read_summary(path: Path) -> dict[str, Any]:
    """Read a case summary JSON file.

    Raises
    ------
    InputError
        Unreadable file, invalid JSON, or not a JSON object (names the file).
    """
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise InputError(path, f"cannot read case summary ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"case summary is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(path, "case summary must be a JSON object")
    return data


def _amendment(text: str, version: int, now: dt.datetime, by: str) -> Any:
    from nkpanel.report.model import Amendment

    reason = text.strip()
    if len(reason) < 3:
        raise ConfigError(f"--amendment {text!r}: give the reason for the amendment")
    return Amendment(version=version, date=now, reason=reason, by=by)


@app.command()
def report(
    case_summary: Annotated[
        Path, typer.Argument(help="case_summary.json written by `nkpanel run` or `nkpanel demo`.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the report files.", callback=output_folder)
    ],
    history: HistoryOption = None,
    reference_intervals: IntervalsOption = None,
    lab_file: LabOption = None,
    analyst: Annotated[
        str | None, typer.Option("--analyst", help="Who performed the analysis.")
    ] = None,
    authoriser: Annotated[
        str | None,
        typer.Option("--authoriser", help="Who authorises the report (else: preliminary)."),
    ] = None,
    amendment: Annotated[
        list[str] | None,
        typer.Option(
            "--amendment",
            help="Why an earlier version is replaced (repeatable, oldest first); "
            "each one raises the version by one.",
        ),
    ] = None,
    analytical_cv: Annotated[
        list[str] | None,
        typer.Option("--analytical-cv", help="CODE=PERCENT, e.g. pnk-pct-lymph=4 (repeatable)."),
    ] = None,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also write PDFs.")] = True,
) -> None:
    """Interpret a case summary and write its reports."""
    from nkpanel.interpret.flags import InterpretSettings
    from nkpanel.interpret.measurands import MEASURANDS
    from nkpanel.report.build import build_reports
    from nkpanel.report.model import LabInfo, load_lab_info

    summary = read_summary(case_summary)
    earlier = [read_summary(p) for p in history or []]
    # authorised by --authoriser, after review; a lab file's authoriser does not authorise
    lab = load_lab_info(lab_file) if lab_file is not None else LabInfo()
    updates = {k: v for k, v in (("analyst", analyst), ("authoriser", authoriser)) if v}
    if updates:
        lab = lab.model_copy(update=updates)

    def cv_percent(code: str, value: str) -> float:
        cv = float(value)
        if code not in MEASURANDS or not 0 < cv <= 100:
            raise ValueError(value)
        return cv

    cvs = parse_pairs(
        analytical_cv or [],
        option="--analytical-cv",
        form="CODE=PERCENT",
        hint=f" with a known measurand code and 0 < PERCENT ≤ 100 (codes: {', '.join(MEASURANDS)})",
        convert=cv_percent,
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # amended now, by whoever signs this version
    by = lab.authoriser or lab.analyst or ""
    amendments = [_amendment(t, i + 1, now, by) for i, t in enumerate(amendment or [])]
    # written beside --out and moved in, listed as nkpanel's: written in place, the files were
    # not nkpanel's to the next run, which then refused them after all its work (review 22).
    # Nothing else in --out is removed: it may be the run's own folder, holding the case
    # summary this report is made from (review 23)
    with atomic_folder(out, prune=False) as staged:
        written = build_reports(
            summary,
            staged,
            history=earlier,
            intervals_path=reference_intervals,
            lab=lab,
            results_dir=case_summary.resolve().parent,
            settings=InterpretSettings(analytical_cv=cvs),
            version=len(amendments) + 1,
            amendments=amendments,
            pdf=pdf,
        )
    paths = written.moved(staged, out)
    if summary.get("synthetic"):
        typer.echo("SYNTHETIC DATA: this case was generated by nkpanel and is not from a patient.")
    clinician, patient, _ = paths.lines()
    typer.echo(clinician)
    typer.echo(patient)
    typer.echo(f"report JSON:      {paths.json}")
    typer.echo(f"FHIR R4 bundle:   {paths.fhir}")
    for note in paths.notes(
        authoriser="--authoriser NAME, after review; a lab file's authoriser does not authorise"
    ):
        say(note, flag="note:", colour="yellow")
