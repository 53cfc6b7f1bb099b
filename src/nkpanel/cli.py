"""The ``nkpanel`` command line.

Every error nkpanel raises on purpose becomes one line on stderr and a non-zero exit; a
traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

from nkpanel import __version__
from nkpanel._atomic import atomic_folder
from nkpanel._cli import (
    HistoryOption,
    IntervalsOption,
    JobsOption,
    LabOption,
    check_settings,
    expand_folders,
    fmt,
    fmt_ci,
    grouped,
    out_console,
    output_folder,
    parse_pairs,
    progress_steps,
    release_all,
    say,
    say_written,
)
from nkpanel.errors import (
    ConfigError,
    NkPanelError,
    interrupt,
    interrupt_exit_code,
    interrupted,
    one_line,
    quiet_swallowed_interrupts,
    show_tracebacks,
    tracebacks_shown,
)
from nkpanel.flow.qc import QCLimits

if TYPE_CHECKING:
    from nkpanel.case import Case
    from nkpanel.flow.output import BatchFailure
    from nkpanel.flow.results import FlowResult
    from nkpanel.pipeline import CaseOutcome
    from nkpanel.report.model import LabInfo

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="nkpanel: NK-cell testing from raw instrument files to measurements with QC.",
)
flow_app = typer.Typer(no_args_is_help=True, help="Peripheral-blood NK cells by flow cytometry.")
app.add_typer(flow_app, name="flow")


def _register_biomarkers() -> None:
    from nkpanel.cytotox.cli import app as cytotox_app

    app.add_typer(cytotox_app, name="cytotox")
    from nkpanel.uterine.cli import app as uterine_app

    app.add_typer(uterine_app, name="uterine")
    from nkpanel.report.cli import report as report_command

    # a command, not a group: a group would stop reading options after its first argument
    app.command("report")(report_command)


_register_biomarkers()

Cytometry = Literal["auto", "flow", "mass"]
EventFormat = Literal["parquet", "csv"]


def _print_version(asked: bool) -> None:
    if asked:
        version()
        raise typer.Exit()


def _options(pairs: Sequence[tuple[str, object]]) -> list[str]:
    """Command-line options as a person would type them again, shell-quoted; a value of None
    leaves its option out."""
    return [f"{name} {shlex.quote(str(value))}" for name, value in pairs if value is not None]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the nkpanel version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    show_tracebacks(debug)
    if not debug:
        # tifffile logs what it makes of a broken file ("<TiffPages @8> invalid page offset")
        # without naming the file; nkpanel's own one-line error names the file and the cause
        import logging

        logging.getLogger("tifffile").setLevel(logging.CRITICAL)


@app.command()
def version() -> None:
    """Print the nkpanel version."""
    typer.echo(__version__)


def _print_cytotoxicity(plates: list[dict[str, object]]) -> None:
    """NK activity headlines of a case: lysis at the standard ratio, LU, suppression."""
    rows = [
        (str(p.get("id")), h)
        for p in plates
        for h in p.get("headline", [])  # type: ignore[attr-defined]
        if isinstance(h, dict)
    ]
    if not rows:
        return
    table = Table(title="NK activity (K562 killing)")
    for col in ("plate", "sample", "treatment", "lysis % at std ratio", "LU/1e7", "suppr. %", "QC"):
        # whole names, folded, never cut; the QC word kept whole
        table.add_column(col, overflow="fold", no_wrap=col == "QC")

    for plate_id, h in rows:
        qc = "reportable" if h.get("reportable") else "NOT REPORTABLE"
        table.add_row(
            plate_id,
            str(h.get("sample")),
            str(h.get("treatment")),
            fmt(h.get("lysis_at_standard_ratio_percent")),
            fmt(h.get("lu_per_1e7_effectors")),
            fmt(h.get("suppression_at_standard_ratio_percent")),
            qc,
        )
    out_console.print(table)


def _print_results(results: Sequence[FlowResult], failures: Sequence[BatchFailure]) -> None:
    table = Table(title="Peripheral-blood NK cells", show_lines=False)
    for col in ("sample", "NK % lymph", "NK /µL", "CD56bright % NK", "NK-like T % lymph", "QC"):
        # whole names, folded, never cut; the QC word kept whole
        table.add_column(col, overflow="fold", no_wrap=col == "QC")
    for r in results:
        qc = "reportable" if r.reportable else "NOT REPORTABLE"
        table.add_row(
            r.sample,
            fmt(r.nk_percent_of_lymphocytes),
            fmt(r.nk_cells_per_ul, 0),
            fmt(r.cd56bright_percent_of_nk),
            fmt(r.nk_like_t_percent_of_lymphocytes),
            qc,
        )
    if results:
        out_console.print(table)
    # why a row is NOT REPORTABLE, a line each (in the table they folded a narrow terminal's
    # column into dozens of lines); what "reportable" leaves out: warnings, how the gates were
    # found (a cut without a valley…), how the file was read. A fact every file shares (no
    # beads per test given) is one line naming the samples, not one line per file.
    kinds = (
        ("not reportable:", "red", lambda r: r.not_reportable_reasons),
        ("warning:", "yellow", lambda r: [q.reason for q in r.qc if not (q.passed or q.blocking)]),
        ("note:", "yellow", lambda r: r.notes),
        ("read:", "cyan", lambda r: r.file_notes),
    )
    for flag, colour, texts in kinds:
        for line in grouped([(r.sample, t) for r in results for t in texts(r)]):
            say(line, flag=flag, colour=colour)
    for f in failures:
        say(f"{f.source}: {f.reason}", flag="failed:")


@flow_app.command("analyze")
def flow_analyze(
    files: Annotated[
        list[Path], typer.Argument(help="FCS files (2.0, 3.0, 3.1), or folders of them.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder.", callback=output_folder)
    ] = Path("nkpanel-flow"),
    template: Annotated[
        Path | None,
        typer.Option("--template", help="Gating-ML 2.0 (.xml) or FlowJo 10 (.wsp) template."),
    ] = None,
    template_sample: Annotated[
        str | None,
        typer.Option(
            "--template-sample",
            help="FlowJo workspace of several samples: the one whose gates to apply (default: "
            "the sample named like each file, else the workspace's only sample).",
        ),
    ] = None,
    population: Annotated[
        list[str] | None,
        typer.Option(
            "--population",
            help="With --template: the gate that plays a role, e.g. NK=NK_cells (roles: "
            "Lymphocytes, Leukocytes, NK, NK CD56bright, NK CD56dim, NK-like T, CD3+, B cells, "
            "Beads); gates are otherwise found by their names.",
        ),
    ] = None,
    beads: Annotated[
        float | None,
        typer.Option("--beads", "--beads-per-test", help="Counting beads per test (bead lot)."),
    ] = None,
    volume: Annotated[
        float | None, typer.Option("--volume", help="Sample volume in the tube, µL.")
    ] = None,
    lymphocytes_per_ul: Annotated[
        float | None,
        typer.Option("--lymphocytes-per-ul", help="Haematology lymphocyte count (dual platform)."),
    ] = None,
    marker: Annotated[
        list[str] | None,
        typer.Option("--marker", help="Map a marker to a channel label, e.g. CD56=NK1.1."),
    ] = None,
    aliases: Annotated[
        Path | None, typer.Option("--aliases", help="The lab's marker alias file (TOML).")
    ] = None,
    spillover: Annotated[
        Path | None,
        typer.Option("--spillover", help="Spillover matrix CSV to use instead of the file's."),
    ] = None,
    cytometry: Annotated[
        Cytometry,
        typer.Option(
            "--cytometry",
            help="auto (from $CYT and the channels), flow or mass (asinh, no scatter).",
        ),
    ] = "auto",
    asinh_cofactor: Annotated[
        float, typer.Option("--asinh-cofactor", min=0.01, help="asinh cofactor (mass cytometry).")
    ] = 5.0,
    logicle_m: Annotated[
        float, typer.Option("--logicle-m", min=2.0, max=7.0, help="Logicle decades M (flow).")
    ] = 4.5,
    cd45_dim_out: Annotated[
        bool,
        typer.Option(
            "--cd45-dim-out/--keep-cd45-dim",
            help="Leave CD45-dim events (basophils) out of the lymphocytes where they form a "
            "population of their own, or keep the lymphocyte gate on scatter alone.",
        ),
    ] = True,
    export_events: Annotated[
        EventFormat | None,
        typer.Option("--export-events", help="Write per-event gate membership."),
    ] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Gating figures.")] = True,
    jobs: JobsOption = None,
    dataset: Annotated[
        int | None,
        typer.Option(
            "--dataset",
            min=1,
            help="Data set to read from files that hold several (default: the first; the "
            "FCS 3 one of a Beckman Coulter LMD pair).",
        ),
    ] = None,
    min_lymphocytes: Annotated[
        int, typer.Option("--min-lymphocyte-events", min=0, help="QC: fewest gated lymphocytes.")
    ] = QCLimits.min_lymphocyte_events,
    min_nk: Annotated[
        int, typer.Option("--min-nk-events", min=0, help="QC: fewest NK events (CV 1/√n).")
    ] = QCLimits.min_nk_events,
    min_beads: Annotated[
        int, typer.Option("--min-bead-events", min=0, help="QC: fewest counting-bead events.")
    ] = QCLimits.min_bead_events,
    max_unstable: Annotated[
        float,
        typer.Option("--max-unstable-time", min=0, max=1, help="QC: unstable flow-rate fraction."),
    ] = QCLimits.max_unstable_time_fraction,
    max_saturated: Annotated[
        float,
        typer.Option("--max-saturated", min=0, max=1, help="QC: saturated-event fraction."),
    ] = QCLimits.max_saturated_fraction,
) -> None:
    """Analyse FCS files: automated NK gating (or a lab template), counts, QC, figures."""
    from nkpanel.flow.analyze import AbsoluteCountInputs, FlowSettings
    from nkpanel.flow.autogate import AutoGateSettings
    from nkpanel.flow.markers import load_aliases, normalise_label
    from nkpanel.pipeline import analyze_flow_batch

    check_settings(jobs)
    files = expand_folders(files, (".fcs", ".lmd"))
    if (beads is None) != (volume is None):
        raise ConfigError("--beads and --volume go together (bead-method absolute counts)")
    spill = None
    if spillover is not None:
        from nkpanel.flow.compensation import read_spillover_csv

        spill, spill_notes = read_spillover_csv(spillover)
        for note in spill_notes:
            say(f"{spillover}: {note}", flag="note:", colour="yellow")
    settings = FlowSettings(
        aliases=load_aliases(aliases) if aliases is not None else None,
        marker_overrides=parse_pairs(
            marker or [],
            option="--marker",
            form="MARKER=LABEL",
            hint=", e.g. CD56=NK1.1",
            convert=_marker_label,
            same_key=normalise_label,
        ),
        spillover=spill,
        template=template,
        template_sample=template_sample,
        template_populations=parse_pairs(
            population or [],
            option="--population",
            form="ROLE=GATE",
            hint=", e.g. NK=NK_cells",
            convert=lambda role, gate: gate,
            same_key=str.casefold,
        ),
        counts=AbsoluteCountInputs(beads, volume, lymphocytes_per_ul),
        qc=QCLimits(
            min_lymphocyte_events=min_lymphocytes,
            min_nk_events=min_nk,
            min_bead_events=min_beads,
            max_unstable_time_fraction=max_unstable,
            max_saturated_fraction=max_saturated,
        ),
        autogate=AutoGateSettings(
            cytometry=cytometry,
            asinh_cofactor=asinh_cofactor,
            logicle_m=logicle_m,
            cd45_dim_out=cd45_dim_out,
        ),
        dataset=dataset,
    )
    if template is not None:
        from nkpanel.flow.template import check_workspace_sample, load_template

        # a bad template, or a sample it does not hold, fails once, before any file is read
        check_workspace_sample(load_template(template), template_sample)
        if spill is not None:
            from nkpanel.flow.analyze import TEMPLATE_WITH_MATRIX

            raise ConfigError(f"--spillover with --template: {TEMPLATE_WITH_MATRIX}")
        # options of the automated gating: accepted, unused, and recorded as the settings
        # behind the results (audit 21)
        given = [
            name
            for name, used in (
                ("--marker", bool(marker)),
                ("--aliases", aliases is not None),
                ("--logicle-m", logicle_m != AutoGateSettings.logicle_m),
                ("--asinh-cofactor", asinh_cofactor != AutoGateSettings.asinh_cofactor),
                ("--keep-cd45-dim", not cd45_dim_out),
            )
            if used
        ]
        if given:
            raise ConfigError(
                f"{', '.join(given)} with --template: {'they set' if len(given) > 1 else 'it sets'}"
                " the automated gating; the template's gates name their channels and scales"
            )
    elif template_sample is not None:
        raise ConfigError("--template-sample names a sample of a --template workspace")
    elif population:
        raise ConfigError("--population names the gates of a --template")
    with progress_steps("analysing", len(files)) as step:
        outcome = analyze_flow_batch(
            files,
            settings,
            out,
            plots=plots,
            export_events=export_events,
            on_file=step,
            jobs=jobs,  # None: nkpanel chooses
        )
    _print_results(outcome.results, outcome.failures)
    for note in outcome.notes:  # the files were made distinct above: the batch's own notes
        say(note, flag="note:", colour="yellow")
    for folder in outcome.earlier:
        say(f"{folder}: from an earlier run into {out}; not in this run's tables", flag="warning:")
    say_written(out, bool(outcome.results), outcome.removed, "file")
    if outcome.results:  # the gates of every sample to look at before the results go out
        out_console.print(f"review the gates: {out / 'flow_review.html'}", soft_wrap=True)
    if outcome.failures:
        say(f"{len(outcome.failures)} of the {len(files)} distinct file(s) failed")
        raise typer.Exit(1)


def _marker_label(marker: str, label: str) -> str:
    """A ``--marker`` override's label, once its marker is one the flow analysis uses (a
    misspelt one, CD65 for CD56, would otherwise be ignored)."""
    from nkpanel.flow.analyze import OPTIONAL_MARKERS, REQUIRED_MARKERS, is_analysis_marker

    known = (*REQUIRED_MARKERS, *OPTIONAL_MARKERS)
    if not is_analysis_marker(marker):
        raise ConfigError(
            f"--marker {marker}={label}: {marker} is not a marker the NK analysis uses "
            f"({', '.join(known)})"
        )
    return label


@app.command()
def simulate(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the synthetic case.", callback=output_folder)
    ] = Path("nkpanel-synthetic"),
    n_events: Annotated[
        int, typer.Option("--events", min=1000, help="Events in the tube.")
    ] = 100_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 1,
    nk_percent: Annotated[
        float, typer.Option("--nk-percent", min=0.1, max=80, help="True NK % of lymphocytes.")
    ] = 14.0,
    bright_percent: Annotated[
        float, typer.Option("--cd56bright-percent", min=0, max=100, help="True CD56bright % of NK.")
    ] = 8.0,
) -> None:
    """Write a synthetic case: simulated FCS 3.1 tube(s) with truth files, and its case.toml."""
    from nkpanel.demo import write_synthetic_case

    # written whole beside --out, then moved in: a file there that nkpanel did not write (a
    # real tube of the same name) is refused before anything is replaced;
    # nothing else there is removed (an analysis's outputs, another simulator's files)
    with atomic_folder(out, prune=False) as staged:
        manifest = write_synthetic_case(
            staged,
            n_events=n_events,
            seed=seed,
            nk_percent=nk_percent,
            bright_percent=bright_percent,
        )
    out_console.print(f"synthetic case written: {out / manifest.relative_to(staged)}")


@app.command()
def run(
    case: Annotated[
        Path,
        typer.Argument(
            help="Case manifest (TOML; every key: docs/case-manifest.md in nkpanel's source)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder.", callback=output_folder)
    ] = Path("nkpanel-out"),
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Figures.")] = True,
    reports: Annotated[
        bool, typer.Option("--report/--no-report", help="Interpret and write the reports.")
    ] = True,
    history: HistoryOption = None,
    reference_intervals: IntervalsOption = None,
    lab_file: LabOption = None,
    jobs: JobsOption = None,
) -> None:
    """Run every biomarker a case manifest holds, then interpret and report."""
    from nkpanel.case import load_case
    from nkpanel.report.model import load_lab_info

    manifest = load_case(case)
    earlier = [_read_summary(p) for p in history or []]
    _check_history_first(manifest, history or [], earlier)
    # a run's report is preliminary: authorised after review (the lab file's authoriser is
    # not read)
    lab = load_lab_info(lab_file) if lab_file is not None else None
    outcome = _run_with_progress(
        manifest,
        out,
        plots=plots,
        reports=reports,
        history=earlier,
        intervals_path=reference_intervals,
        lab=lab,
        jobs=jobs,
    )
    again = _options(
        [("--history", p) for p in history or []]
        + [("--reference-intervals", reference_intervals), ("--lab", lab_file)]
    )
    _print_case(outcome, out, again)
    if outcome.failures:
        raise typer.Exit(1)


@dataclasses.dataclass(frozen=True)
class _Planned:
    """The episode a case manifest is about to make: who and when."""

    episode_id: str
    patient_id: str
    collected: dt.datetime | None


def _check_history_first(
    manifest: Case, paths: Sequence[Path], earlier: Sequence[dict[str, Any]]
) -> None:
    """The serial view's rules on the --history files, before any work, each refusal naming
    its file (the report checks them again, after the work, for ``nkpanel report``)."""
    from nkpanel.interpret.measurements import earliest, read_episode
    from nkpanel.interpret.panel import check_history

    # the episode's time as its summary will give it: every specimen's, a day alone too (a
    # plate's assay day, a biopsy's date), by the same rule (review 24: days were left out
    # here, and history after a day-only episode was refused only after all the work)
    times = [d.collected for d in manifest.blood_draws]
    times += [c.assay_date for c in manifest.cytotoxicity]
    times += [b.collected for b in manifest.endometrial]
    planned = _Planned(manifest.case.id, manifest.case.patient_id, earliest(times))
    check_history(planned, [read_episode(h) for h in earlier], [str(p) for p in paths])


def _read_summary(path: Path) -> dict[str, Any]:
    from nkpanel.report.cli import read_summary

    data = read_summary(path)
    if "case" not in data:
        raise ConfigError(f"{path}: not a case summary written by nkpanel run")
    return data


def _run_with_progress(
    manifest: Case,
    out: Path,
    *,
    plots: bool = True,
    reports: bool = True,
    history: Sequence[dict[str, Any]] = (),
    intervals_path: Path | None = None,
    lab: LabInfo | None = None,
    jobs: int | None = None,
) -> CaseOutcome:
    from nkpanel.pipeline import draw_files, run_case

    check_settings(jobs)
    # files as the run will find them (a folder entry stands for the files in it)
    total = sum(len(draw_files(manifest, d)[0]) for d in manifest.blood_draws)
    total += len(manifest.cytotoxicity)
    total += len(manifest.endometrial) + (1 if reports else 0)
    with progress_steps(f"case {manifest.case.id}", total) as step:
        return run_case(
            manifest,
            out,
            on_file=step,
            plots=plots,
            reports=reports,
            history=history,
            intervals_path=intervals_path,
            lab=lab,
            jobs=jobs,  # None: nkpanel chooses
        )


def _print_endometrial(biopsies: list[dict[str, Any]]) -> None:
    """Endometrial NK headlines of a case: CD56+ per 100 stromal cells and per mm², the
    across-field estimate beside its own 95% CI, and the whole stroma's apart."""
    from nkpanel.interpret.preanalytic import lh_label

    rows = [b for b in biopsies if isinstance(b.get("uterine"), dict)]
    if not rows:
        return
    table = Table(
        title="Endometrial NK cells (CD56 IHC)",
        caption="Across fields: the ratio over the fields (a slide's random ×400 fields, the "
        "standardised protocol, Lash 2016; each field image is one field) beside its own 95% CI. "
        "Whole stroma: all stroma analysed, no CI.",
    )
    cols = (
        "biopsy",
        "timing",
        "CD56+ /100 stromal, across fields (95% CI)",
        "CD56+ /mm², across fields (95% CI)",
        "whole stroma: /100; /mm²",
        "QC",
    )
    for col in cols:
        # whole names, folded, never cut; the QC word kept whole
        table.add_column(col, overflow="fold", no_wrap=col == "QC")

    for b in rows:
        u = b["uterine"]
        ci = u.get("across_fields_cd56_per_100_stromal_cells") or {}
        ci_mm2 = u.get("across_fields_cd56_per_mm2_stroma") or {}
        # each interval beside its own estimate
        shown = fmt_ci(ci.get("estimate"), ci.get("lower"), ci.get("upper"))
        if shown != "–" and ci.get("fields"):
            shown += f"\n{ci['fields']}"
        whole100 = u.get(
            "whole_stroma_cd56_per_100_stromal_cells", u.get("cd56_per_100_stromal_cells")
        )
        whole_mm2 = u.get("whole_stroma_cd56_per_mm2_stroma", u.get("cd56_per_mm2_stroma"))
        timing = (b.get("timing") or {}).get("lh_day")
        table.add_row(
            str(b.get("id")),
            lh_label(timing) if timing is not None else "not recorded",
            shown,
            fmt_ci(ci_mm2.get("estimate"), ci_mm2.get("lower"), ci_mm2.get("upper"), 0),
            f"{fmt(whole100, 1)}; {fmt(whole_mm2, 0)}",
            "reportable" if u.get("reportable") else "NOT REPORTABLE",
        )
    out_console.print(table)


def _condition_name(plate: dict[str, Any], sample: object, treatment: object) -> str:
    """An NK-activity condition of a case as console lines name it: plate, sample and, where
    one was added, the treatment."""
    with_ = "" if treatment in (None, "none") else f" with {treatment}"
    return f"NK activity {plate.get('id')}, sample {sample}{with_}"


def _cytotoxicity_warnings(plates: list[dict[str, Any]]) -> list[str]:
    """The failed non-blocking checks of a case's NK-activity plates, one line each, naming
    the plate, the sample, the treatment and (for a ratio's check) the E:T ratio."""
    lines = []
    for plate in plates:
        for s in plate.get("samples") or []:
            for c in s.get("conditions") or []:
                who = _condition_name(plate, s.get("sample"), c.get("treatment"))
                checks = [(who, q) for q in c.get("qc") or []]
                checks += [
                    (f"{who} at {r.get('ratio_label', r.get('ratio'))}", q)
                    for r in c.get("ratios") or []
                    for q in r.get("qc") or []
                ]
                lines += [
                    f"{where}: {q.get('reason')}"
                    for where, q in checks
                    if not q.get("passed", True) and not q.get("blocking", True)
                ]
    return lines


def _endometrial_warnings(biopsies: list[dict[str, Any]]) -> list[str]:
    """The warnings of a case's endometrial biopsies (failed non-blocking checks and the
    notes that may have moved a count), each once, naming the biopsy and its image: a check
    the biopsy repeats from an image is the image's (:func:`nkpanel.uterine.cli.console_items`).
    """
    from nkpanel.uterine.cli import Checked, console_items

    lines = []
    for b in biopsies:
        pooled = b.get("uterine")
        images = [Checked.from_summary(r) for r in b.get("images") or [] if isinstance(r, dict)]
        biopsy = Checked.from_summary(pooled) if isinstance(pooled, dict) else None
        specimen = f"endometrial biopsy {b.get('id')}"
        for _, whose, text in console_items(images, biopsy, notes=False):
            own = biopsy is not None and whose == (biopsy.sample,)
            lines.append(
                f"{specimen}: {text}" if own else f"{specimen}, {', '.join(whose)}: {text}"
            )
    return lines


def _case_withheld(outcome: CaseOutcome) -> tuple[list[str], list[str]]:
    """Why each NK-activity condition and endometrial biopsy of a case is NOT REPORTABLE, a
    line each (the flow rows say theirs with :func:`_print_results`); and why a condition's
    LU/10⁷ reads "–", once per reason."""
    lines = []
    no_lu = []
    for p in outcome.cytotoxicity:
        for h in p.get("headline") or []:
            who = _condition_name(p, h.get("sample"), h.get("treatment"))
            lines += [f"{who}: {r}" for r in h.get("not_reportable_reasons") or []]
        for s in p.get("samples") or []:
            for c in s.get("conditions") or []:
                lu = c.get("lytic_units") or {}
                if lu.get("lu_per_1e7_effectors") is None and lu.get("reason"):
                    no_lu.append(f"NK activity {p.get('id')}: LU/10⁷ –: {lu['reason']}")
    for b in outcome.endometrial:
        pooled = b.get("uterine") or {}
        for r in pooled.get("not_reportable_reasons") or []:
            lines.append(f"endometrial biopsy {b.get('id')}: {r}")
    return lines, list(dict.fromkeys(no_lu))


def _print_case(outcome: CaseOutcome, out: Path, again: Sequence[str] = ()) -> None:
    """A case run's tables, warnings and outputs; ``again``: the options the run's report
    was written with (history, intervals, lab), repeated in the way to authorise it."""
    labelled = list(outcome.summary.get("synthetic_inputs") or [])
    if labelled and not outcome.case.case.synthetic:
        shown = ", ".join(labelled[:3]) + (
            f" and {len(labelled) - 3} more" if len(labelled) > 3 else ""
        )
        say(
            f"{shown}: written by nkpanel's simulator (labelled synthetic), although the case "
            "manifest does not say synthetic = true: the case and its report are labelled "
            "SYNTHETIC",
            flag="warning:",
            colour="yellow",
        )
    # with several blood draws, each row says its draw (two draws may hold one file name)
    several = len(outcome.draws) > 1
    results = [
        dataclasses.replace(r, sample=f"{draw}/{r.sample}") if several else r
        for draw, o in outcome.draws.items()
        for r in o.results
    ]
    _print_cytotoxicity(outcome.cytotoxicity)
    _print_endometrial(outcome.endometrial)
    _print_results(results, ())  # the flow rows, and their own warnings and notes
    withheld, no_lu = _case_withheld(outcome)
    for line in withheld:
        say(line, flag="not reportable:")
    for line in no_lu:
        say(line, flag="note:", colour="yellow")
    for line in dict.fromkeys(
        [*_cytotoxicity_warnings(outcome.cytotoxicity), *_endometrial_warnings(outcome.endometrial)]
    ):
        say(line, flag="warning:", colour="yellow")
    for f in outcome.failures:
        say(f"{f.source}: {f.reason}", flag="failed:")
    for draw, batch in outcome.draws.items():
        for note in batch.notes:
            say(f"blood draw {draw}: {note}", flag="note:", colour="yellow")
    for b in outcome.endometrial:  # a folder's images read; an image listed twice
        for note in b.get("notes") or ():
            say(f"endometrial biopsy {b.get('id')}: {note}", flag="note:", colour="yellow")
    if outcome.removed:
        gone = ", ".join(str(p.relative_to(out)) for p in outcome.removed)
        say(f"removed nkpanel's files of an earlier run: {gone}", flag="note:", colour="yellow")
    for folder in outcome.earlier:
        say(f"{folder}: from an earlier run into {out}; not part of this run", flag="warning:")
    # the case summary, whatever failed; each path on one line, to be copied whole
    out_console.print(f"outputs written to {out}", soft_wrap=True)
    out_console.print(f"case summary: {outcome.summary_path}", soft_wrap=True)
    for draw, batch in outcome.draws.items():  # each draw's gates, to look at (review 30)
        if batch.results:
            page = out / "flow" / draw / "flow_review.html"
            out_console.print(f"review the gates of blood draw {draw}: {page}", soft_wrap=True)
    if outcome.report is not None:
        r = outcome.report
        for line in r.lines():
            out_console.print(line, soft_wrap=True)
        # a run's report is preliminary: a person authorises it after review (audit 19)
        # the serial view and intervals kept
        said = _options([("report", outcome.summary_path), ("--out", r.clinician_html.parent)])
        how = (
            f"authorise it after review: nkpanel {' '.join([*said, *again])} --authoriser "
            "NAME; a lab file's authoriser does not"
        )
        for note in r.notes(authoriser=how):
            say(note, flag="note:", colour="yellow")


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Output folder.", callback=output_folder)
    ] = Path("demo-output"),
) -> None:
    """Simulate a synthetic patient's two episodes, run both, report the second (the first as
    its history) and say where everything is."""

    from nkpanel.case import load_case
    from nkpanel.demo import DEMO_EPISODES, write_synthetic_case

    history: list[dict[str, Any]] = []
    earlier: list[Path | None] = []  # their case summaries, for the way to authorise
    outcome: CaseOutcome | None = None
    for i, ep in enumerate(DEMO_EPISODES):
        last = i == len(DEMO_EPISODES) - 1
        case_dir = out / "synthetic-cases" / ep.folder
        with atomic_folder(case_dir, prune=False) as staged:
            manifest = write_synthetic_case(
                staged,
                seed=ep.seed,
                nk_percent=ep.nk_percent,
                bright_percent=ep.bright_percent,
                collected=ep.collected,
                episode=ep.episode,
                pre_analytic=ep.pre_analytic,
            )
        result = _run_with_progress(
            load_case(case_dir / manifest.relative_to(staged)),
            out / "results" / ep.folder,
            reports=last,
            history=list(history),
        )
        if last:
            out_console.rule(f"current episode {ep.episode} (earlier episodes as history)")
            since = _options([("--history", p) for p in earlier])
            _print_case(result, out / "results" / ep.folder, since)
        history.append(result.summary)
        earlier.append(result.summary_path)
        outcome = result
    out_console.print(
        "SYNTHETIC DATA: the demo patient and every file were generated by nkpanel; "
        "no patient or instrument is involved."
    )
    if outcome is not None and outcome.failures:
        raise typer.Exit(1)


def _debug_first(args: list[str]) -> list[str]:
    """``--debug`` is the app's own option, but error lines ask for it after the command that
    failed (``nkpanel flow analyze … --debug``): wherever it is given (before a ``--``), it
    is taken as given first."""
    end = args.index("--") if "--" in args else len(args)
    if "--debug" not in args[:end]:
        return args
    return ["--debug", *(a for i, a in enumerate(args) if i >= end or a != "--debug")]


#: said when a run is interrupted (Ctrl-C, or SIGTERM from a scheduler or `kill`)
INTERRUPTED = (
    "interrupted: every file written so far is whole (none is left half-written); run the "
    "same command again to finish"
)


#: set once the interrupted run has said so (:func:`_stopping`)
_STOPPED: list[bool] = []


def _stopping() -> None:
    """Said once a run is interrupted; a second Ctrl-C or SIGTERM while it is said (a
    scheduler that signals twice) no longer ends the process by the signal itself."""
    import signal

    _STOPPED.append(True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    say(INTERRUPTED, flag="aborted:")
    # CPython notes a KeyboardInterrupt that ended code run from a string (dataclasses and
    # namedtuples make their methods so, on import) as unhandled, even once it is caught, and
    # a `python -m` run then ends by SIGINT whatever its exit code (audit 27: 130, not 143,
    # for a SIGTERM in the first half second). Running a string resets that note
    exec("None")
    sys.exit(interrupt_exit_code())


def main() -> None:
    """Entry point: run the app, turning nkpanel errors into one line and a non-zero exit."""
    import signal

    # SIGTERM as Ctrl-C: the run stops through its own clean-up (temporary folders removed,
    # helper threads waited for), where Python's default for SIGTERM ended it at once
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    quiet_swallowed_interrupts()
    try:
        _main()
    except KeyboardInterrupt:  # an interrupt that came while another was being handled
        _stopping()
    except SystemExit:
        if interrupted() and not _STOPPED:  # swallowed where it was raised
            _stopping()
        raise
    if interrupted():  # swallowed where it was raised, and the work done all the same
        _stopping()


def _main() -> None:
    try:
        rc = app(args=_debug_first(sys.argv[1:]), standalone_mode=False)
        # without standalone mode a typer.Exit comes back as its exit code; typer turns
        # Ctrl-C into exit code 130 with no word
        if rc == 130:
            _stopping()
        if isinstance(rc, int) and rc != 0:
            sys.exit(rc)
    except NkPanelError as exc:
        if tracebacks_shown():
            raise
        say(f"error: {one_line(exc)}")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _stopping()
    except typer.exceptions.TyperException as exc:  # usage errors: typer prints its own help
        release_all()  # an --out taken before a later option failed to parse
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            say(f"error: {exc.format_message()}")
        sys.exit(exc.exit_code or 2)
    except Exception as exc:
        if interrupted():  # an interrupt turned into another error where it was raised
            _stopping()
        if tracebacks_shown():
            raise
        say(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        sys.exit(3)
