"""``nkpanel cytotox``: NK-cell activity from plate reads or flow-killing tubes.

The root command line registers :data:`app` as ``nkpanel cytotox``; errors nkpanel raises on
purpose propagate to it, which prints them as one line and exits 2. A plate on which some
samples fail prints each failure and exits 1 after writing the others' results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

from nkpanel._atomic import atomic_folder
from nkpanel._cli import fmt, grouped, out_console, output_folder, progress_steps, say

if TYPE_CHECKING:
    from nkpanel.cytotox.analyze import CytotoxSettings
    from nkpanel.cytotox.results import CytotoxResult

__all__ = ["app"]

app = typer.Typer(
    no_args_is_help=True,
    help="NK-cell activity (cytotoxicity): release-assay plates and flow-based killing.",
)

ReleaseAssay = Literal["chromium51", "europium", "calcein", "ldh"]
Assay = Literal[ReleaseAssay, "release"]
SimAssay = Literal[ReleaseAssay, "flow"]
ReadsForm = Literal["grid", "long", "xlsx"]


def _settings(options: Mapping[str, Any]) -> CytotoxSettings:
    """The analysis settings from the options every analysis command takes.

    ``options`` is the command's ``ctx.params``: the values by parameter name
    (``targets_per_well``, ``lysis_level``, ``standard_ratio``, ``spontaneous_limit``,
    ``cv_limit``, ``lysis_cv_floor``, ``min_replicates`` and the ``reference_*`` band).
    """
    from nkpanel.cytotox.analyze import CytotoxSettings, ReferenceBand

    reference = ReferenceBand.from_limits(
        options["reference_low"],
        options["reference_high"],
        options["reference_ratio"],
        options["reference_source"],
    )
    return CytotoxSettings(
        spontaneous_limit_percent=options["spontaneous_limit"],
        cv_limit_percent=options["cv_limit"],
        lysis_cv_floor_percent=options["lysis_cv_floor"],
        min_replicates=options["min_replicates"],
        lysis_level_percent=options["lysis_level"],
        standard_ratio=options["standard_ratio"],
        targets_per_well=options["targets_per_well"],
        reference=reference,
    )


def _write_and_report(
    result: CytotoxResult,
    out: Path,
    settings: CytotoxSettings,
    *,
    plots: bool,
    extra: dict[str, Any] | None = None,
    extra_tables: Mapping[str, Sequence[dict[str, Any]]] | None = None,
) -> None:
    """Write the outputs (a progress bar over the samples' figures), then print the results.

    ``extra`` and ``extra_tables`` go to :func:`~nkpanel.cytotox.output.write_outputs`.
    """
    from nkpanel.cytotox.output import replace_earlier, write_outputs

    with progress_steps("figures", len(result.samples)) as step:
        written = write_outputs(
            result,
            out,
            plots=plots,
            reference=settings.reference,
            extra=extra,
            extra_tables=extra_tables,
            on_sample=step,
        )
    replace_earlier(out, written.files)
    _report(result, out)


def _report(result: CytotoxResult, out: Path) -> None:
    from nkpanel.cytotox.results import ratio_label

    table = Table(
        title=f"NK activity ({result.assay})" + (" SYNTHETIC" if result.synthetic else "")
    )
    # flow killing has no maximum release: its control is the dead % of targets alone
    control = "targets alone dead %" if result.assay == "flow" else "S/M %"
    for col in ("sample", "treatment", "lysis at std ratio %", "LU/10⁷", control, "QC"):
        # whole names, folded, never cut; the QC word kept whole
        table.add_column(col, overflow="fold", no_wrap=col == "QC")
    for s in result.samples:
        for c in s.conditions:
            std = c.standard_ratio
            at = fmt(std.lysis_percent)
            if std.lysis_percent is not None:
                at += f" at {ratio_label(std.ratio)}" + (
                    "" if std.method == "measured" else f" ({std.method})"
                )
            lu = c.lytic_units.lu_per_1e7_effectors if c.lytic_units else None
            lu_text = fmt(lu)
            if lu is not None and c.lytic_units is not None and c.lytic_units.extrapolated:
                lu_text += " (extrapolated)"  # beyond the tested ratios: the model, not wells
            qc = "reportable" if c.reportable else "NOT REPORTABLE"
            table.add_row(
                s.sample, c.treatment, at, lu_text, fmt(c.spontaneous_percent_of_maximum), qc
            )
    if result.samples:
        out_console.print(table)
    withheld = [  # why a row is NOT REPORTABLE, a line each
        f"{s.sample} ({c.treatment}): {reason}"
        for s in result.samples
        for c in s.conditions
        for reason in c.not_reportable_reasons
    ]
    for line in _capped(withheld):
        say(line, flag="not reportable:")
    # what "reportable" leaves out: the failed warnings (an outlier well, negative lysis, a
    # high lysis CV…), which were only in the tables (audit 20)
    warned = [
        (f"{s.sample} ({c.treatment})", f.reason)
        for s in result.samples
        for c in s.conditions
        for f in c.qc
        if not (f.passed or f.blocking)
    ] + [
        # the ratio with the condition, not in the text: lines of two ratios merged into a
        # range of ratios that took in one that passed (review 22)
        (f"{s.sample} ({c.treatment}) at {ratio_label(r.ratio)}", f.reason)
        for s in result.samples
        for c in s.conditions
        for r in c.ratios
        for f in r.qc
        if not (f.passed or f.blocking)
    ]
    for line in _capped(grouped(warned)):
        say(line, flag="warning:", colour="yellow")
    # why a condition's LU/10⁷ reads "–" (results CSV: lu_note): targets per well not given
    # once for the plate, with the option that gives them; a condition's own reason naming it
    # (conditions alike but for one number on one line)
    no_lu = [
        (f"{s.sample} ({c.treatment})", c.lytic_units)
        for s in result.samples
        for c in s.conditions
        if c.lytic_units is not None
        and c.lytic_units.lu_per_1e7_effectors is None
        and c.lytic_units.reason
    ]
    from nkpanel.cytotox.lytic import NO_TARGETS

    if any(lu.reason == NO_TARGETS for _, lu in no_lu):
        say(f"note: LU/10⁷ –: {NO_TARGETS} (--targets-per-well N)")
    own = [(who, lu.reason) for who, lu in no_lu if lu.reason and lu.reason != NO_TARGETS]
    for line in grouped(own):
        say(f"note: LU/10⁷ –: {line}")
    std_ratio = float(result.settings.get("standard_ratio", 50.0))
    for s in result.samples:
        for x in s.suppression_at(std_ratio):
            if x.suppression_percent is not None:
                basis = (
                    "read off each condition's fitted curve"
                    if x.basis == "model"
                    else "from the measured wells"
                )
                if x.extrapolated:
                    basis += ", beyond the tested ratios"
                out_console.print(
                    f"{s.sample}: {x.treatment} suppression at {ratio_label(x.ratio)}: "
                    f"{x.suppression_percent:.1f}% ({basis}; no validated criterion)",
                    highlight=False,
                )
    for note in _capped(list(result.notes)):
        say(f"note: {note}")
    for f in result.failures:
        who = f"sample {f.sample}" if f.sample else "no sample"
        for reason in _capped(list(f.reasons)):
            say(f"({who}): {reason}", flag="failed")
    out_console.print(f"outputs written to {out}")


#: a plate read against the wrong layout fails on every well: show a few, count the rest
MAX_LINES = 5


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    # distinct causes (a duplicate well, text in a cell) before the run of missing wells
    lines = sorted(lines, key=lambda line: "no value" in line)
    rest = len(lines) - MAX_LINES
    return [*lines[:MAX_LINES], f"… and {rest} more (all listed in summary.json)"]


TargetsOpt = Annotated[
    float | None,
    typer.Option("--targets-per-well", min=1, help="Target cells per well (for LU per 10⁷)."),
]
LevelOpt = Annotated[
    float, typer.Option("--lysis-level", min=0.1, max=99.9, help="Lysis level of one LU (%).")
]
StdOpt = Annotated[
    float, typer.Option("--standard-ratio", min=0.01, help="Report lysis at this E:T ratio.")
]
SpontOpt = Annotated[
    float,
    typer.Option(
        "--spontaneous-limit", min=0.1, max=100, help="Max spontaneous release, % of maximum."
    ),
]
#: flow killing's control is the dead % of the targets alone (no maximum release)
FlowSpontOpt = Annotated[
    float,
    typer.Option("--spontaneous-limit", min=0.1, max=100, help="Max dead % of the targets alone."),
]
CvOpt = Annotated[float, typer.Option("--cv-limit", min=0.1, help="Max replicate CV (%).")]
CvFloorOpt = Annotated[
    float,
    typer.Option(
        "--lysis-cv-floor",
        min=0.0,
        max=99.9,
        help="Mean % lysis from which the CV of % lysis is judged.",
    ),
]
RefLowOpt = Annotated[float | None, typer.Option("--reference-low", help="Reference band low %.")]
RefHighOpt = Annotated[
    float | None, typer.Option("--reference-high", help="Reference band high %.")
]
RefRatioOpt = Annotated[
    float, typer.Option("--reference-ratio", min=0.01, help="E:T ratio of the reference band.")
]
RefSourceOpt = Annotated[str, typer.Option("--reference-source", help="Where the band is from.")]
PlotsOpt = Annotated[bool, typer.Option("--plots/--no-plots", help="Lysis figures.")]


@app.command("analyze")
def analyze(
    ctx: typer.Context,
    plate: Annotated[Path, typer.Argument(help="Plate export: CSV/TSV/XLSX, long or grid.")],
    layout: Annotated[
        Path, typer.Option("--layout", help="Layout: well,sample,role,ratio,treatment.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder.", callback=output_folder)
    ] = Path("nkpanel-cytotox"),
    assay: Annotated[Assay, typer.Option("--assay", help="Release assay kind.")] = "release",
    unit: Annotated[
        str | None, typer.Option("--unit", help="Unit when the file is silent.")
    ] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="XLSX sheet of the reads.")] = None,
    layout_sheet: Annotated[
        str | None, typer.Option("--layout-sheet", help="XLSX sheet of the layout.")
    ] = None,
    grid: Annotated[int | None, typer.Option("--grid", min=1, help="Which plate grid.")] = None,
    plate_id: Annotated[
        str | None, typer.Option("--plate-id", help="Plate name (default: the reads file's name).")
    ] = None,
    # the analysis settings, read by name from ctx.params in _settings
    targets_per_well: TargetsOpt = None,
    lysis_level: LevelOpt = 20.0,
    standard_ratio: StdOpt = 50.0,
    spontaneous_limit: SpontOpt = 30.0,
    cv_limit: CvOpt = 20.0,
    lysis_cv_floor: CvFloorOpt = 10.0,
    min_replicates: Annotated[
        int, typer.Option("--min-replicates", min=1, help="Fewest replicate wells.")
    ] = 2,
    reference_low: RefLowOpt = None,
    reference_high: RefHighOpt = None,
    reference_ratio: RefRatioOpt = 50.0,
    reference_source: RefSourceOpt = "",
    plots: PlotsOpt = True,
) -> None:
    """Analyse a release-assay plate: % specific lysis, QC, lytic units, suppression."""
    from nkpanel.cytotox.analyze import analyze_plate_files

    settings = _settings(ctx.params)
    result = analyze_plate_files(
        plate,
        layout,
        settings,
        kind=assay,
        unit=unit,
        sheet=sheet,
        layout_sheet=layout_sheet,
        grid=grid,
        plate_id=plate_id,
    )
    _write_and_report(result, out, settings, plots=plots)
    if result.failures:
        say(_failure_count(result))
        raise typer.Exit(1)


def _failure_count(result: CytotoxResult) -> str:
    """The closing line of a run with problems: samples not analysed, problems that belong to
    no sample (a layout row with an unknown role), and the conditions they left unreportable
    (a layout slip that loses the controls fails no sample but every condition).

    Examples
    --------
    >>> from nkpanel.cytotox.results import CytotoxResult, SampleFailure
    >>> loose = (SampleFailure("", ("A1: unknown role", "A2: unknown role")),)
    >>> r = CytotoxResult("p", "release", "reads.csv", "layout.csv", None, (), loose)
    >>> _failure_count(r)
    '2 problem(s) in no sample'
    """
    samples = [f for f in result.failures if f.sample]
    loose = sum(len(f.reasons) for f in result.failures if not f.sample)
    parts = []
    if samples:
        n = sum(len(f.reasons) for f in samples)
        parts.append(f"{len(samples)} sample(s) not analysed ({n} problem(s))")
    if loose:
        parts.append(f"{loose} problem(s) in no sample")
    unreportable = [(s.sample, c) for s in result.samples for c in s.conditions if not c.reportable]
    if unreportable:
        parts.append(
            f"{len(unreportable)} condition(s) of {len({s for s, _ in unreportable})} "
            "analysed sample(s) not reportable"
        )
    return "; ".join(parts)


@app.command("flow")
def flow(
    ctx: typer.Context,
    tubes: Annotated[Path, typer.Argument(help="Tube list: file,sample,role,ratio,treatment.")],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder.", callback=output_folder)
    ] = Path("nkpanel-killing"),
    label_channel: Annotated[
        str | None, typer.Option("--label-channel", help="Target-label channel, e.g. FITC-A.")
    ] = None,
    dead_channel: Annotated[
        str | None, typer.Option("--dead-channel", help="Dead-cell dye channel, e.g. PE-A.")
    ] = None,
    min_target_events: Annotated[
        int, typer.Option("--min-target-events", min=1, help="Fewest target events per tube.")
    ] = 1000,
    # the analysis settings, read by name from ctx.params in _settings
    targets_per_well: TargetsOpt = None,
    lysis_level: LevelOpt = 20.0,
    standard_ratio: StdOpt = 50.0,
    spontaneous_limit: FlowSpontOpt = 30.0,
    cv_limit: CvOpt = 20.0,
    lysis_cv_floor: CvFloorOpt = 10.0,
    min_replicates: Annotated[
        int, typer.Option("--min-replicates", min=1, help="Fewest tubes per ratio.")
    ] = 1,
    reference_low: RefLowOpt = None,
    reference_high: RefHighOpt = None,
    reference_ratio: RefRatioOpt = 50.0,
    reference_source: RefSourceOpt = "",
    plots: PlotsOpt = True,
) -> None:
    """Flow-based killing: gate labelled targets and their dead fraction in each tube."""
    from dataclasses import asdict

    from nkpanel.cytotox.flowkill import FlowKillingSettings, analyze_flow_killing, read_tube_list

    settings = _settings(ctx.params)
    fk_settings = FlowKillingSettings(
        label_channel=label_channel,
        dead_channel=dead_channel,
        min_target_events=min_target_events,
        cytotox=settings,
    )
    tube_list = read_tube_list(tubes)
    with progress_steps("tubes", len(tube_list.entries)) as step:
        fk = analyze_flow_killing(tube_list, fk_settings, on_tube=step)
    gating = [asdict(g) for g in fk.gating]
    _write_and_report(
        fk.result,
        out,
        settings,
        plots=plots,
        extra={"flow_gating": gating},
        extra_tables={"gating.csv": gating},
    )
    if fk.result.failures:
        say(_failure_count(fk.result))
        raise typer.Exit(1)


@app.command("simulate")
def simulate(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the synthetic files.", callback=output_folder)
    ] = Path("nkpanel-synthetic-cytotox"),
    assay: Annotated[
        SimAssay, typer.Option("--assay", help="Release assay kind, or flow for killing tubes.")
    ] = "chromium51",
    form: Annotated[
        ReadsForm, typer.Option("--form", help="Reads as grid, long or xlsx.")
    ] = "grid",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 1,
    wells: Annotated[int, typer.Option("--wells", help="Plate format: 96 or 384.")] = 96,
) -> None:
    """Write a SYNTHETIC plate (reads, layout, truth) or flow-killing tubes (FCS, tube list)."""
    from nkpanel.cytotox.simulate import (
        FlowKillingSpec,
        PlateSimulationSpec,
        write_synthetic_flow_killing,
        write_synthetic_plate,
    )
    from nkpanel.errors import ConfigError

    if wells not in (96, 384):
        raise ConfigError(f"--wells {wells}: a plate has 96 or 384 wells")
    # written whole beside --out, then moved in: a file there that nkpanel did not write (a
    # lab's own plate_reads.csv) is refused before anything is replaced;
    # nothing else there is removed (an analysis's outputs, another simulator's files)
    if assay == "flow":
        with atomic_folder(out, prune=False) as staged:
            written = write_synthetic_flow_killing(staged, FlowKillingSpec(seed=seed))
        tubes, truth = (out / p.relative_to(staged) for p in written)
        out_console.print(
            "SYNTHETIC flow-killing tubes written (not from a patient):\n"
            f"tube list: {tubes}\ntruth: {truth}\n"
            f"analyse with: nkpanel cytotox flow {tubes} --out DIR"
        )
        return
    spec = PlateSimulationSpec(seed=seed, kind=assay, plate_format=96 if wells == 96 else 384)
    with atomic_folder(out, prune=False) as staged:
        files = write_synthetic_plate(staged, spec, form=form)
    reads, layout, truth = (out / p.relative_to(staged) for p in files)
    out_console.print(
        "SYNTHETIC plate written (not from a patient):\n"
        f"reads: {reads}\nlayout: {layout}\ntruth: {truth}\n"
        f"analyse with: nkpanel cytotox analyze {reads} --layout {layout} --assay {assay} "
        f"--targets-per-well {spec.targets_per_well} --out DIR"
    )
