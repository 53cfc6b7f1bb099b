"""``nkpanel uterine``: endometrial NK cells on CD56 immunohistochemistry.

Registered by the root command line as a sub-application::

    nkpanel uterine analyze IMAGES… [--pixel-size MICRONS] [--regions GEOJSON] --out DIR
    nkpanel uterine simulate --out DIR

Errors nkpanel raises on purpose propagate to the root command line, which prints one line and
exits 2; in a batch, a bad image is listed and the others still run (exit 1 when any failed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer
from rich.table import Table
from rich.text import Text

from nkpanel._atomic import atomic_folder
from nkpanel._cli import (
    fmt,
    fmt_ci,
    out_console,
    output_folder,
    progress,
    progress_steps,
    say,
    say_written,
    starting,
)
from nkpanel.errors import ConfigError
from nkpanel.flow.qc import QCFlag
from nkpanel.uterine import options
from nkpanel.uterine.options import Compartment, Stains

if TYPE_CHECKING:
    from nkpanel.uterine.results import RatioCI, UterineResult

__all__ = ["app"]

app = typer.Typer(
    no_args_is_help=True,
    help="Endometrial (uterine) NK cells: CD56+ cells per 100 stromal cells and per mm² stroma.",
)


def _estimate(ci: RatioCI, decimals: int) -> str:
    """An across-field estimate with its own 95% CI (``"–"`` where there is no estimate)."""
    return fmt_ci(ci.estimate, ci.lower, ci.upper, decimals)


def _fields(r: UterineResult) -> str:
    """The fields of a row, short: "10 ×400", "3 images", "4 ×400 + 1 image"."""
    lash, images = r.field_kinds
    if r.kind == "slide" and not lash:
        return "none fitted"
    parts = [f"{lash} ×400"] if lash else []
    parts += [f"{images} image{'' if images == 1 else 's'}"] if images else []
    return " + ".join(parts) or "none"


#: what the table's two estimates are, printed under it
TABLE_CAPTION = (
    "/100: CD56+ per 100 stromal cells (first line); /mm²: per mm² of stroma (second). "
    "Across fields: the ratio over the fields, beside its own 95% CI (×400: a slide's random "
    "×400 fields, the standardised protocol, Lash 2016; each field image is one field). "
    "Whole stroma: all stroma analysed, no CI; CD56+ / stromal are its counts."
)


def _print_results(batch: object, out: Path) -> None:
    from nkpanel.uterine.batch import UterineBatch

    assert isinstance(batch, UterineBatch)
    table = Table(title="Endometrial NK cells (CD56)", caption=TABLE_CAPTION)
    for col in (
        "image",
        "CD56+ / stromal",
        "fields",
        "across fields (95% CI): /100; /mm²",
        "whole stroma: /100; /mm²",
        "glands excluded by",
        "QC",
    ):
        # whole names, folded, never cut; the QC word kept whole
        table.add_column(col, overflow="fold", no_wrap=col == "QC")
    # the biopsy's row always: its QC (e.g. too few stromal cells over all images) can differ
    # from a single image's
    rows = list(batch.results) + ([batch.pooled] if batch.pooled else [])
    for r in rows:
        qc = "reportable" if r.reportable else "NOT REPORTABLE"
        name = r.sample + (" (synthetic)" if r.synthetic else "")
        label = Text(f"{name} (all images)", style="bold") if r.kind == "biopsy" else Text(name)
        o = r.overall
        table.add_row(
            label,
            f"{o.cd56_positive_cells} / {o.stromal_cells}",
            _fields(r),
            f"{_estimate(r.per_100_ci, 2)}\n{_estimate(r.per_mm2_ci, 0)}",
            f"{fmt(o.cd56_per_100_stromal_cells, 2)}\n{fmt(o.cd56_per_mm2_stroma, 0)}",
            r.exclusion_source,
            qc,
        )
    if rows:
        out_console.print(table)
    if any(r.synthetic for r in rows):
        out_console.print(
            "SYNTHETIC DATA: images labelled synthetic were simulated by nkpanel, not a patient."
        )
    for r in rows:  # why a row is NOT REPORTABLE, a line each
        for reason in r.not_reportable_reasons:
            say(f"{r.sample}: {reason}", flag="not reportable:")
    checked = [Checked.of(r) for r in batch.results]
    pooled = Checked.of(batch.pooled) if batch.pooled else None
    for flag, line in console_lines(checked, pooled):
        say(line, flag=flag, colour="yellow")
    for f in batch.failures:
        say(f"{f.source}: {f.reason}", flag="failed:")
    for folder in batch.earlier:
        say(
            f"{folder}: from an earlier run into {out}; not in this run's tables",
            flag="warning:",
            colour="yellow",
        )
    say_written(out, bool(batch.results), batch.removed, "image")


#: notes that say how an image was read or analysed and leave nothing in doubt (printed as
#: "note:"); every other note (ink left out, JPEG colour subsampling, CMYK converted without
#: colour management, estimated stain vectors refused, region features skipped, a pixel size
#: that disagrees with the file…) may have moved the count and is printed as a warning
INFORMATIONAL_NOTES = (
    "excluded automatically (no regions given)",  # analyze.py: glands found automatically
    "of the slide is fill (exactly",  # analyze.py: unscanned fill kept out of the white point
    # images.py: the range 16-bit samples were scaled from, found in the data (its other
    # note, tiles too large to find that range, is a warning: a 12-bit slide then reads dark)
    "16-bit samples hold 0–",
    "pyramid levels stored as JPEG",  # images.py: the level read for its full-resolution colour
    "is not a microscope scale (ignored)",  # images.py: implausible metadata, another source used
)
#: analyze.py's note on a slide where fewer ×400 fields fit than asked: says what the failed
#: "×400 fields" check says, so it is left out where that check is printed
FIELDS_NOTE = " ×400 fields with at least "


class Checked(NamedTuple):
    """What a result says beyond its numbers: its name, its checks and its notes."""

    sample: str
    qc: tuple[QCFlag, ...]
    notes: tuple[str, ...]

    @classmethod
    def of(cls, result: UterineResult) -> Checked:
        return cls(result.sample, tuple(result.qc), tuple(result.notes))

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> Checked:
        """From :meth:`UterineResult.summary` as a case summary holds it."""
        qc = tuple(
            QCFlag(
                str(q.get("check", "")),
                bool(q.get("passed", True)),
                q.get("value"),
                q.get("limit"),
                str(q.get("reason", "")),
                bool(q.get("blocking", True)),
            )
            for q in summary.get("qc") or []
            if isinstance(q, Mapping)
        )
        return cls(str(summary.get("sample", "")), qc, tuple(map(str, summary.get("notes") or [])))


def is_warning_note(note: str) -> bool:
    """Whether a result's note is a warning (see :data:`INFORMATIONAL_NOTES`)."""
    return not any(marker in note for marker in INFORMATIONAL_NOTES)


def _said(r: Checked, again: Iterable[str], fields_check: str) -> Iterable[tuple[str, str]]:
    """``(flag, text)`` of one result: its failed non-blocking checks (except those in
    ``again``), then its notes; a note a failed check already says is left out."""
    failed = [q for q in r.qc if not q.passed]
    reasons = {q.reason for q in failed}
    fields_failed = any(q.check == fields_check for q in failed)
    for q in failed:
        if not q.blocking and q.check not in again:
            yield "warning:", q.reason
    for note in r.notes:
        if note in reasons or (fields_failed and FIELDS_NOTE in note):
            continue
        yield ("warning:" if is_warning_note(note) else "note:"), note


def console_items(
    images: Sequence[Checked], biopsy: Checked | None, *, notes: bool = True
) -> list[tuple[str, tuple[str, ...], str]]:
    """What a console prints after a biopsy's table: ``(flag, whose, text)``, warnings first.

    Each failed non-blocking check and each note is said once, with whose it is (the names of
    the images it was said of, or the biopsy's). The biopsy's result repeats its images' checks
    and notes with the image's name in front (``"img: reason"``): those are the image's own,
    not said again. The checks the biopsy makes again over all its images
    (:data:`~nkpanel.uterine.batch.POOLED_AGAIN`: stromal cells, ×400 fields) are left to
    the biopsy. One text said of several images is one item naming them all.

    Parameters
    ----------
    images, biopsy
        The per-image results and the pooled one.
    notes
        Whether informational notes (``"note:"``) are included; warnings always are.

    Examples
    --------
    >>> def q(reason: str) -> QCFlag:
    ...     return QCFlag("pixel size agrees with the file", False, 0.3, None, reason, False)
    >>> a = Checked("a", (q("off by 1.44×"),), ("off by 1.44×",))
    >>> b = Checked("biopsy", (q("a: off by 1.44×"),), ("a: off by 1.44×",))
    >>> console_items([a], b)
    [('warning:', ('a',), 'off by 1.44×')]
    """
    from nkpanel.uterine.batch import FIELDS_CHECK, POOLED_AGAIN

    again = POOLED_AGAIN if biopsy is not None else ()
    said: dict[tuple[str, str], list[str]] = {}
    for r in images:
        for flag, text in _said(r, again, FIELDS_CHECK):
            said.setdefault((flag, text), []).append(r.sample)
    known = {r.sample for r in images}
    if biopsy is not None:
        for flag, text in _said(biopsy, (), FIELDS_CHECK):
            whose, rest = _prefixed(text, known)
            if not whose:
                said.setdefault((flag, text), []).append(biopsy.sample)
            else:
                said.setdefault((flag, rest), []).extend(whose)
    items = [
        (flag, tuple(dict.fromkeys(whose)), text)
        for (flag, text), whose in said.items()
        if notes or flag == "warning:"
    ]
    return sorted(items, key=lambda item: item[0] != "warning:")  # stable: warnings first


def _prefixed(text: str, known: set[str]) -> tuple[list[str], str]:
    """``"a, b: text"`` → (["a", "b"], "text") when every name before the first such ": " is
    one of ``known`` (the biopsy names the images a check or note came from); else ([], text)."""
    start = 0
    while (at := text.find(": ", start)) != -1:
        parts = text[:at].split(", ")
        if all(p in known for p in parts):
            return parts, text[at + 2 :]
        start = at + 1
    return [], text


def console_lines(
    images: Sequence[Checked], biopsy: Checked | None, *, notes: bool = True
) -> list[tuple[str, str]]:
    """:func:`console_items` as ``(flag, "whose: text")`` lines."""
    return [
        (flag, f"{', '.join(whose)}: {text}")
        for flag, whose, text in console_items(images, biopsy, notes=notes)
    ]


@app.command("analyze")
def analyze(
    images: Annotated[
        list[Path],
        typer.Argument(
            help="Field images (TIFF, PNG, JPEG) or whole slides (SVS, NDPI, TIFF…), or folders."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder.", callback=output_folder)
    ] = Path("nkpanel-uterine"),
    pixel_size: Annotated[
        float | None,
        typer.Option(
            "--pixel-size",
            min=0.01,
            max=50.0,
            help="Microns per pixel at full resolution (overrides the file's metadata).",
        ),
    ] = None,
    regions: Annotated[
        list[Path] | None,
        typer.Option(
            "--regions",
            help="QuPath GeoJSON regions (Stroma to count; Gland, "
            "Epithelium, Ignore… to exclude): one per image, or a folder of "
            "<image name>.geojson.",
        ),
    ] = None,
    stains: Annotated[
        Stains, typer.Option("--stains", help="Standard Ruifrok vectors or estimated per image.")
    ] = options.STAINS,
    qupath_stains: Annotated[
        str | None,
        typer.Option(
            "--qupath-stains",
            help="Stain vectors pasted from QuPath's setColorDeconvolutionStains(...).",
        ),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option("--threshold", min=0.001, help="CD56+ threshold, DAB OD (QuPath units)."),
    ] = options.POSITIVE_THRESHOLD_OD,
    dab_background: Annotated[
        float,
        typer.Option(
            "--dab-background",
            min=0.0,
            max=500.0,
            help="Block size (µm) of the stroma's own DAB background, judged above "
            "(red cells read as DAB); 0 judges cells on their DAB alone, as QuPath does.",
        ),
    ] = options.DAB_BACKGROUND_UM,
    white_point: Annotated[
        str | None,
        typer.Option(
            "--white-point",
            help="Glass colour R,G,B (1-255) for fields without glass, e.g. 242,240,236 "
            "(QuPath's 'Set background'); default: estimated from the image.",
        ),
    ] = None,
    compartment: Annotated[
        Compartment, typer.Option("--compartment", help="Where DAB is measured.")
    ] = options.COMPARTMENT,
    fields: Annotated[
        int, typer.Option("--fields", min=1, help="Random ×400 fields per slide.")
    ] = options.N_FIELDS,
    field_diameter: Annotated[
        float, typer.Option("--field-diameter", min=50.0, help="×400 field diameter, µm.")
    ] = options.FIELD_DIAMETER_UM,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the random field choice.")
    ] = options.SEED,
    sample: Annotated[str, typer.Option("--sample", help="Name of the pooled biopsy.")] = "biopsy",
    overlays: Annotated[
        bool, typer.Option("--overlays/--no-overlays", help="Overlay images of every cell.")
    ] = True,
    detections: Annotated[
        bool, typer.Option("--detections/--no-detections", help="QuPath GeoJSON of the cells.")
    ] = True,
) -> None:
    """Count CD56+ uNK cells per 100 stromal cells and per mm² of stroma, with overlays."""
    from nkpanel.uterine.batch import analyze_batch

    settings = options.uterine_settings(
        stains=stains,
        qupath_stains=qupath_stains,
        positive_threshold_od=threshold,
        compartment=compartment,
        dab_background_um=dab_background,
        n_fields=fields,
        field_diameter_um=field_diameter,
        seed=seed,
        white_point=white_point,
    )
    from nkpanel.uterine.batch import gather_images

    images, paired, gathered = gather_images(images, regions or [])
    for note in gathered:
        say(note, flag="note:", colour="yellow")
    if not images:
        raise ConfigError("no image given")
    with progress() as bar:
        task = bar.add_task("images", total=len(images), current="")
        tiles = bar.add_task("tiles", total=None, current="")

        started = [0]

        def on_image(name: str) -> None:
            started[0] += 1
            starting(bar, task, "images", started[0], len(images), name)
            bar.reset(tiles, total=None)

        def on_tile(done: int, total: int) -> None:
            bar.update(tiles, completed=done, total=total, current="")

        batch = analyze_batch(
            images,
            out,
            settings,
            pixel_size_um=pixel_size,
            regions=paired,
            sample=sample,
            overlays=overlays,
            detections=detections,
            on_image=on_image,
            on_tile=on_tile,
        )
        bar.update(task, completed=len(images), current="")
    _print_results(batch, out)
    if batch.failures:
        say(f"{len(batch.failures)} of {len(images)} image(s) failed")
        raise typer.Exit(1)


@app.command("simulate")
def simulate(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the synthetic fields.", callback=output_folder)
    ] = Path("nkpanel-uterine-synthetic"),
    n_fields: Annotated[
        int, typer.Option("--fields", min=1, max=100, help="Fields to simulate.")
    ] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 1,
    unk_percent: Annotated[
        float, typer.Option("--unk-percent", min=0.0, max=60.0, help="CD56+ % of stromal cells.")
    ] = 5.0,
    dab_od: Annotated[
        float, typer.Option("--dab-od", min=0.05, max=2.0, help="DAB OD of CD56+ cells.")
    ] = 0.8,
    glands: Annotated[int, typer.Option("--glands", min=0, max=10, help="Glands per field.")] = 1,
    density: Annotated[
        float, typer.Option("--density", min=500, max=20000, help="Stromal cells per mm².")
    ] = 5000.0,
) -> None:
    """Write synthetic CD56 fields (labelled SYNTHETIC) with truth files and glands drawn."""
    from nkpanel.uterine.simulate import FieldSpec, simulate_field, write_field

    written = []
    # written whole beside --out, then moved in: a file there that nkpanel did not write is
    # refused before anything is replaced; nothing else there is removed
    with progress_steps("simulating", n_fields) as step, atomic_folder(out, prune=False) as staged:
        for i in range(n_fields):
            step(f"field {i + 1}")
            spec = FieldSpec(
                seed=seed * 1000 + i,
                unk_percent_of_stromal=unk_percent,
                dab_od=dab_od,
                n_glands=glands,
                stromal_cells_per_mm2=density,
            )
            field = simulate_field(spec)
            written += write_field(field, staged / f"synthetic_field_{i + 1:02d}.tif")
    out_console.print(
        f"SYNTHETIC DATA: {n_fields} simulated CD56 field(s) written to {out} "
        f"({len(written)} files: images, truth JSON, gland regions GeoJSON)"
    )
