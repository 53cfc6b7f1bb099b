"""A biopsy's images analysed in turn, one bad file never stopping the others, and pooled.

Output folder layout::

    OUT/
      uterine_results.csv          one row per image and one for the pooled biopsy
      biopsy_summary.json          the pooled biopsy (every field of every image), failures
      images/<image>/summary.json  per image: counts, fields, CI, stain vectors, QC, settings
      images/<image>/cells.csv     every counted cell
      images/<image>/detections.geojson   QuPath cell objects (Positive/Negative)
      images/<image>/overlay*.png  review overlays (one per ×400 field on a slide)
      images/<image>/overview.png  slides: tissue, exclusions and fields

Each image's folder holds only the files of the latest run: its outputs are written into a
fresh hidden folder beside it that replaces the old one when the image has been analysed, and
an image that fails leaves no folder (an earlier run's results would look current beside a
table that lists the image as failed: nkpanel's own files of it are removed, never a file
someone else put there). Image folders of an earlier run into the same folder that this run
did not write are named in :attr:`UterineBatch.earlier` and in ``biopsy_summary.json``
(``earlier_image_folders``), never removed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nkpanel._atomic import (
    atomic_folder,
    check_ours,
    earlier_folders,
    remove_claimed,
    remove_owned,
    write_owned,
    write_text,
)
from nkpanel._names import array_digest, unique_stems
from nkpanel.errors import ConfigError, batch_failure, option_or_key
from nkpanel.uterine.analyze import (
    NO_REGIONS_NOTE,
    AnalysisPlan,
    TileSink,
    UterineSettings,
    analyze_image,
)
from nkpanel.uterine.output import (
    GeoJSONWriter,
    OverlayCanvas,
    overlay_sinks,
    write_batch_table,
    write_image_outputs,
)
from nkpanel.uterine.results import (
    Exclusion,
    FieldCount,
    UterineQC,
    UterineResult,
    across_fields_qc,
    few_positives_qc,
    fields_qc,
    pooled_merged_nuclei_qc,
    ratio_ci,
    stromal_cells_qc,
)

__all__ = [
    "ImageFailure",
    "NoRegionsFile",
    "UterineBatch",
    "analyze_batch",
    "gather_images",
    "pair_regions",
    "pool_results",
]


#: the batch-level files :func:`analyze_batch` writes beside ``images/``
BATCH_TABLES = ("uterine_results.csv", "biopsy_summary.json")

#: an image's checks the biopsy's result makes again over all its images; every other check
#: an image fails (its regions, borderline staining…) is repeated on the biopsy's result
FIELDS_CHECK = "×400 fields"
#: pooled over the biopsy's images (their estimated missed nuclei summed), not repeated
MERGED_CHECK = "merged nuclei"
POOLED_AGAIN = (
    "stromal cells counted",
    FIELDS_CHECK,
    "fewer CD56+ than published",
    "sparse fields",
    "outlier field",
    MERGED_CHECK,
)


@dataclass(frozen=True)
class ImageFailure:
    """An image that could not be analysed, and why (one line)."""

    source: str
    reason: str


@dataclass
class UterineBatch:
    """Per-image results, failures, the pooled biopsy result, the files written (and which
    of them are the review overlays) and the image folders an earlier run into the same output
    folder left there (not this run's, not in its tables; kept)."""

    results: list[UterineResult] = field(default_factory=list)
    failures: list[ImageFailure] = field(default_factory=list)
    pooled: UterineResult | None = None
    written: list[Path] = field(default_factory=list)
    overlays: list[Path] = field(default_factory=list)
    earlier: list[Path] = field(default_factory=list)
    #: the batch tables of an earlier run into the same folder, removed when every image of
    #: this one failed (they would pass for this run's)
    removed: list[Path] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The biopsy's pooled summary, each image's, the failures and the earlier image
        folders (named, never removed): ``biopsy_summary.json``, and a case's biopsy entry."""
        return {
            "biopsy": self.pooled.summary() if self.pooled is not None else None,
            "images": [r.summary() for r in self.results],
            "failures": [{"source": f.source, "reason": f.reason} for f in self.failures],
            "earlier_image_folders": [str(d) for d in self.earlier],
        }


@dataclass(frozen=True)
class NoRegionsFile:
    """A regions folder was given but holds no regions file for an image."""

    folder: Path
    tried: tuple[str, ...]

    @property
    def warning(self) -> str:
        return (
            f"no regions file for this image in {self.folder} (looked for "
            f"{', '.join(self.tried)}): glands and epithelium were excluded automatically; "
            "check the excluded area on the overlay"
        )


def _regions_names(image: Path) -> tuple[str, ...]:
    """Names a regions file of ``image`` may have, most specific first: QuPath's image name
    (``a.tif.geojson``, as ``exportObjectsToGeoJson`` scripts name it after the project
    entry), then the stem (``a.regions.geojson``, ``a.geojson``)."""
    return (f"{image.name}.geojson", f"{image.stem}.regions.geojson", f"{image.stem}.geojson")


def gather_images(
    entries: Sequence[Path], regions: Sequence[Path]
) -> tuple[list[Path], list[Path | NoRegionsFile | None], list[str]]:
    """Images as given (a folder replaced by the images in it), each image once, with the
    regions paired with them (:func:`pair_regions`), and notes saying what was done.

    An image listed twice (by two spellings of its path, or as a byte-for-byte copy) would be
    pooled twice: two "fields" of identical counts, and a CI across fields narrower than the
    data allow. Of the listings of one image, one that has a regions file is kept.

    Raises
    ------
    ConfigError
        Regions given one per image while an image entry is a folder (give a regions folder),
        or numbers that do not match.
    """
    from nkpanel._names import distinct_files, files_in_folders
    from nkpanel.uterine.images import IMAGE_SUFFIXES

    folders = [p for p in entries if p.is_dir()]
    if folders and len(regions) > 1:
        raise ConfigError(
            f"images include the folder {folders[0]}: give regions as one folder holding "
            "<image name>.geojson files, not one file per image"
        )
    notes: list[str] = []
    expanded: list[Path] = []
    for entry in entries:  # each folder listed once, its count read off what it gave
        found = files_in_folders([entry], IMAGE_SUFFIXES, notes)
        if entry.is_dir():
            notes.append(f"{entry}: a folder; its {len(found)} image(s) read")
        expanded += found
    paired = pair_regions(expanded, regions)
    # listings with a regions file first, so that of two listings of one image (a copy that
    # sorts before its original, say) the one with regions is the one kept
    order = sorted(range(len(expanded)), key=lambda i: not isinstance(paired[i], Path))
    kept, twice = distinct_files([expanded[i] for i in order])
    kept_ids = {id(p) for p in kept}
    keep = [i for i in range(len(expanded)) if id(expanded[i]) in kept_ids]
    return [expanded[i] for i in keep], [paired[i] for i in keep], notes + twice


def pair_regions(
    images: Sequence[Path], regions: Sequence[Path]
) -> list[Path | NoRegionsFile | None]:
    """Match regions files to images: one per image in order, or a folder searched for
    ``<image name>.geojson`` (``a.tif.geojson``), ``<image stem>.regions.geojson`` or
    ``<image stem>.geojson``. An image the folder holds no file for gets a
    :class:`NoRegionsFile`, which :func:`analyze_batch` turns into a warning.

    Raises
    ------
    ConfigError
        When the numbers do not match.
    """
    if not regions:
        return [None] * len(images)
    if len(regions) == 1 and regions[0].is_dir():
        folder = regions[0]
        out: list[Path | NoRegionsFile | None] = []
        for img in images:
            names = _regions_names(img)
            hit = next((folder / n for n in names if (folder / n).is_file()), None)
            out.append(hit if hit is not None else NoRegionsFile(folder, names))
        return out
    if len(regions) != len(images):
        raise ConfigError(
            f"{option_or_key('--regions', 'regions')}: {len(regions)} file(s) for "
            f"{len(images)} image(s); give one per image in the same order, or a folder holding "
            "<image name>.geojson files"
        )
    return list(regions)


def pool_results(
    results: Sequence[UterineResult],
    sample: str,
    min_cells: int = 500,
    failed: Sequence[ImageFailure] = (),
    protocol_fields: int | None = None,
) -> UterineResult:
    """Pool images of one biopsy: every field of every image is a field of the biopsy.

    Images of the biopsy that could not be analysed (``failed``) are named in a warning: the
    result stands for the images counted, which the reader must know are fewer. Field images
    are the biopsy's fields: fewer than ``protocol_fields`` (the standardised protocol's ten
    random ×400 fields, Lash et al. 2016) is a warning too."""
    fields: list[FieldCount] = []
    for r in results:
        for f in r.fields:
            name = f"{r.sample}/{f.field}" if f.kind == "lash-field" else r.sample
            fields.append(replace(f, field=name))
    pos = sum(r.overall.cd56_positive_cells for r in results)
    cells = sum(r.overall.stromal_cells for r in results)
    area = sum(r.overall.stromal_area_mm2 for r in results)
    sources = tuple(s for r in results for s in r.sources)
    excl = {r.exclusion_source for r in results}
    exclusion: Exclusion = next(iter(excl)) if len(excl) == 1 else "mixed"
    sizes = {r.pixel_size_um for r in results}
    # a field with no CD56+ cell is common; a biopsy with none is not (few_positives_qc)
    qc = [stromal_cells_qc(cells, min_cells, where=" in the biopsy"), few_positives_qc(pos, cells)]
    # field images are the biopsy's ×400 fields, counted again here; a slide's own random
    # fields are its own check, repeated like any other
    fields_again = (
        protocol_fields is not None and bool(results) and all(r.kind == "field" for r in results)
    )
    again = {*POOLED_AGAIN} if fields_again else {*POOLED_AGAIN} - {FIELDS_CHECK}
    for r in results:
        for q in r.qc:
            if not q.passed and q.check not in again:
                qc.append(replace(q, reason=f"{r.sample}: {q.reason}"))
    if fields_again and protocol_fields is not None:
        qc.append(fields_qc(len(results), protocol_fields))
    merged = pooled_merged_nuclei_qc(
        [
            (r.sample, q, r.overall.stromal_cells)
            for r in results
            for q in r.qc
            if q.check == MERGED_CHECK
        ]
    )
    if merged is not None:
        qc.append(merged)
    # every field of the biopsy, against their median and against the others' CD56+ rate
    qc += across_fields_qc(fields)
    if failed:
        n = len(results) + len(failed)
        missing = "; ".join(f"{Path(f.source).name}: {f.reason}" for f in failed)
        qc.append(
            UterineQC(
                "images analysed",
                False,
                float(len(results)),
                float(n),
                f"{len(results)} of {n} images analysed; not counted: {missing}",
                blocking=False,
            )
        )
    # a note several images share is one note naming them (three field images each "glands
    # excluded automatically" read as three warnings in a report)
    by_text: dict[str, list[str]] = {}
    for r in results:
        for note in r.notes:
            by_text.setdefault(note, []).append(r.sample)
    notes = tuple(f"{', '.join(samples)}: {note}" for note, samples in by_text.items())
    return UterineResult(
        sample=sample,
        sources=sources,
        kind="biopsy",
        synthetic=bool(results) and all(r.synthetic for r in results),
        pixel_size_um=next(iter(sizes)) if len(sizes) == 1 else None,
        pixel_size_source=None,
        analysis_pixel_size_um=None,
        stains={"per_image": {r.sample: r.stains.get("source") for r in results}},
        stain_estimate_check=None,
        exclusion_source=exclusion,
        tissue_area_mm2=sum(r.tissue_area_mm2 for r in results),
        excluded_area_mm2=sum(r.excluded_area_mm2 for r in results),
        overall=FieldCount("biopsy", "whole-stroma", pos, cells, area),
        fields=tuple(fields),
        per_100_ci=ratio_ci(
            [f.cd56_positive_cells for f in fields], [f.stromal_cells for f in fields], scale=100.0
        ),
        per_mm2_ci=ratio_ci(
            [f.cd56_positive_cells for f in fields], [f.stromal_area_mm2 for f in fields]
        ),
        qc=tuple(qc),
        notes=notes,
        settings=results[0].settings if results else {},
    )


U8 = NDArray[np.uint8]

#: two images whose thumbnails (below) differ by less than this mean (grey levels, over pixels
#: either shows as tissue) are one picture: JPEG at quality 50 of a synthetic field differed
#: from its TIFF by 2.8, two different fields by 53
SAME_PICTURE_GREY = 8.0
#: pixels darker than this (of 255, mean of R, G and B) are tissue for that comparison
_TISSUE_GREY = 220.0
#: the side (pixels) of the square thumbnails images are compared by, whatever their size: a
#: copy saved at half size is the same picture
THUMBNAIL_PX = 64
#: ... and whose detail thumbnails (:data:`DETAIL_PX`) differ by less than this: at 256 px
#: two synthetic serial sections of one block (same outline, other cells) differed by 28, a
#: JPEG (quality 50) or half-size copy of one by 1.8–2.8 (audit 18). A copy cropped by a few
#: pixels is rescaled by a fraction of a pixel there and differs as much as a section (27 for
#: 8 px of 2000): it is counted as another picture, pooled twice (its own counts again, so the
#: ratio barely moves), where taking a section for a copy dropped it from the biopsy
SAME_DETAIL_GREY = 12.0
DETAIL_PX = 256
#: images whose width:height ratios differ by more than this share are not compared
_ASPECT_TOLERANCE = 0.05
#: two pictures alike in their thumbnails are one only where they show as much tissue: their
#: widths and heights in microns (pixels × pixel size) agree within this share. Whole slides
#: of one block (serial sections) look alike at 64 px against their glass (audit 18: two
#: slides of 2.5 × 3 and 3 × 3.5 mm, 4.05 and 9.66 per 100, taken for one picture and the
#: second dropped from the pool); a copy saved at another size keeps its extent when its
#: pixel size is said (and a copy's is the same as its original's)
_EXTENT_TOLERANCE = 0.05
#: file types whose compression loses detail: of a picture saved twice, another is kept
_LOSSY_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")


@dataclass(frozen=True)
class _Look:
    """What an image looks like, to tell a copy of it: its thumbnail and its shape."""

    name: str
    aspect: float
    thumbnail: U8
    lossy: bool
    #: width and height in microns
    extent_um: tuple[float, float]
    #: a finer thumbnail (:data:`DETAIL_PX`)
    detail: U8


def _look(name: str, path: Path, overview: U8, size: tuple[int, int], pixel_um: float) -> _Look:
    from nkpanel.uterine.images import _resize

    picture = np.ascontiguousarray(overview)
    thumb = _resize(picture, THUMBNAIL_PX, THUMBNAIL_PX)
    detail = _resize(picture, DETAIL_PX, DETAIL_PX)
    lossy = path.suffix.lower() in _LOSSY_SUFFIXES
    extent = (size[0] * pixel_um, size[1] * pixel_um)
    return _Look(name, size[0] / max(1, size[1]), thumb, lossy, extent, detail)


def _same_picture(a: _Look, b: _Look) -> float | None:
    """The mean difference of ``a``'s and ``b``'s thumbnails over the tissue when they show
    one picture (:data:`SAME_PICTURE_GREY`), else None.

    A field saved both as TIFF and as JPEG (microscope software often writes both) has
    different pixels, so the exact digest misses it, and it was pooled as another field: two
    fields of 20% and 3% CD56+ and the JPEG of the first read 15.1 per 100 for 12.2 (audit 8);
    a copy saved at half size, or cropped, was missed too (audit 9). A field captured twice
    with the stage moved further than a few percent of its width is not recognised.
    """
    if abs(a.aspect / b.aspect - 1.0) > _ASPECT_TOLERANCE:
        return None
    (wa, ha), (wb, hb) = a.extent_um, b.extent_um
    known = min(wa, ha, wb, hb) > 0
    if known and (abs(wa / wb - 1) > _EXTENT_TOLERANCE or abs(ha / hb - 1) > _EXTENT_TOLERANCE):
        return None  # as much tissue in microns, or another piece (a serial section)
    diff = _thumbnail_difference(a.thumbnail, b.thumbnail)
    if diff is None or diff >= SAME_PICTURE_GREY:
        return None
    # alike at 64 px: alike in their detail too (a whole slide's 64 px are a millimetre's
    # outline; two sections of one block share it, not their cells)
    detail = _detail_difference(a.detail, b.detail)
    return diff if detail is not None and detail < SAME_DETAIL_GREY else None


def _detail_difference(x: U8, y: U8, shift: int = 2) -> float | None:
    """:func:`_thumbnail_difference` of two detail thumbnails at the best of the offsets up
    to ``shift`` pixels: a copy cropped by a few pixels (0.4% of a field) is shifted by one
    pixel at 256 px and was no longer taken for the same picture (review 19)."""
    n = x.shape[0]
    found = [
        _thumbnail_difference(
            x[max(0, dy) : n + min(0, dy), max(0, dx) : n + min(0, dx)],
            y[max(0, -dy) : n + min(0, -dy), max(0, -dx) : n + min(0, -dx)],
        )
        for dy in range(-shift, shift + 1)
        for dx in range(-shift, shift + 1)
    ]
    known = [d for d in found if d is not None]
    return min(known) if known else None


def _thumbnail_difference(x8: U8, y8: U8) -> float | None:
    """Mean absolute difference of two thumbnails over the pixels either shows as tissue;
    None where tissue covers under 1% of them (glass does not tell pictures apart)."""
    x, y = x8.astype(np.float32), y8.astype(np.float32)
    tissue = (x.mean(axis=2) < _TISSUE_GREY) | (y.mean(axis=2) < _TISSUE_GREY)
    if np.count_nonzero(tissue) < 0.01 * tissue.size:
        return None
    return float(np.abs(x - y)[tissue].mean())


def _copies(looks: Sequence[_Look]) -> dict[str, tuple[str, float]]:
    """Image → (the image kept in its place, mean difference), for every image that repeats
    another's picture; of a picture saved twice, a losslessly saved one is kept, else the one
    given first."""
    out: dict[str, tuple[str, float]] = {}
    kept: list[_Look] = []  # one of each picture so far
    for b in looks:
        for k, a in enumerate(kept):
            diff = _same_picture(a, b)
            if diff is None:
                continue
            if a.lossy and not b.lossy:  # b keeps the picture's place
                out[a.name] = (b.name, diff)
                out.update({n: (b.name, d) for n, (m, d) in out.items() if m == a.name})
                kept[k] = b
            else:
                out[b.name] = (a.name, diff)
            break
        else:
            kept.append(b)
    return out


def analyze_batch(
    images: Sequence[Path],
    out_dir: Path,
    settings: UterineSettings | None = None,
    *,
    pixel_size_um: float | None = None,
    regions: Sequence[Path | NoRegionsFile | None] | None = None,
    sample: str = "biopsy",
    overlays: bool = True,
    detections: bool = True,
    on_image: Callable[[str], None] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> UterineBatch:
    """Analyse each image; a bad one is recorded as a failure and the rest still run.

    Writes the per-image outputs, the batch table and the pooled biopsy summary (see the
    module docstring for the layout). An image given a :class:`NoRegionsFile` (see
    :func:`pair_regions`) is analysed with automatic exclusion and a warning.
    """
    settings = settings or UterineSettings()
    check_ours(out_dir, BATCH_TABLES)  # a lab's own file of one of their names: refused now
    batch = UterineBatch()
    regs = list(regions) if regions is not None else [None] * len(images)
    if len(regs) != len(images):
        raise ConfigError(f"{len(regs)} regions file(s) for {len(images)} image(s)")
    images_dir = out_dir / "images"
    done: set[str] = set()  # the image folders this run wrote
    kept: list[Path] = []  # folders of failed images still holding files
    seen: dict[str, str] = {}  # pixels fingerprint → the image that holds them
    # each image's thumbnail (a slide's overview is hundreds of MB), to tell copies
    looks: list[_Look] = []
    twice: set[str] = set()
    for path, reg, name in zip(images, regs, unique_stems(images), strict=True):
        if on_image is not None:
            on_image(str(path))
        final_dir = images_dir / name
        sinks: list[TileSink] = []
        missing = reg if isinstance(reg, NoRegionsFile) else None
        reg_file = None if isinstance(reg, NoRegionsFile) else reg
        try:
            # this run's outputs go to a fresh folder that replaces the old one on success
            with atomic_folder(final_dir) as img_dir:

                def make_sinks(
                    plan: AnalysisPlan, img_dir: Path = img_dir, sinks: list[TileSink] = sinks
                ) -> list[TileSink]:
                    made: list[TileSink] = []
                    if overlays:
                        made.extend(overlay_sinks(plan, img_dir))
                    if detections:
                        made.append(GeoJSONWriter(img_dir / "detections.geojson"))
                    sinks.extend(made)
                    return made

                analysis = analyze_image(
                    path,
                    settings,
                    pixel_size_um=pixel_size_um,
                    regions=reg_file,
                    sink_factory=make_sinks,
                    on_tile=on_tile,
                )
                result = analysis.result
                if name != result.sample:
                    result = replace(result, sample=name)
                if missing is not None:
                    warning = UterineQC("regions file", False, None, None, missing.warning, False)
                    # the warning says what the analysis's own note says, and why
                    notes = [n for n in result.notes if n != NO_REGIONS_NOTE]
                    result = replace(
                        result, qc=(*result.qc, warning), notes=(*notes, missing.warning)
                    )
                # the overview (2 µm/px) and full size: the same picture saved with another
                # compression or other tags gives the same digest
                plan = analysis.plan
                pixels = array_digest(plan.overview, label=plan.level0_size)
                seen_as = seen.setdefault(pixels, name)
                if seen_as != name:  # the same picture saved twice (another encoding, tags)
                    again = (
                        f"the same pixels as {seen_as} (the image saved twice?): counted in its "
                        "own row, not pooled again"
                    )
                    result = replace(result, notes=(*result.notes, again))
                    twice.add(name)
                else:  # compared with the others once all are read
                    looks.append(
                        _look(
                            name, path, plan.overview, plan.level0_size, result.pixel_size_um or 0
                        )
                    )
                analysis = replace(analysis, result=result)
                written = [
                    p.relative_to(img_dir) for p in write_image_outputs(analysis, img_dir, sinks)
                ]
                canvases = [
                    sk.target.relative_to(img_dir) for sk in sinks if isinstance(sk, OverlayCanvas)
                ]
        except Exception as exc:  # one image's fault, nkpanel's included, stops no batch
            for sk in sinks:
                if isinstance(sk, GeoJSONWriter):
                    sk.abort()
            # an earlier run's outputs of this image must not look current; only nkpanel's
            # own files go (those its list in the folder names)
            if not remove_owned(final_dir) and final_dir.exists():
                kept.append(final_dir)  # files nkpanel did not write (or list): named, kept
            reason = batch_failure(exc, source=Path(path))
            batch.failures.append(ImageFailure(str(path), reason))
            continue
        batch.written += [final_dir / p for p in written]
        batch.overlays += [final_dir / p for p in canvases]
        batch.results.append(result)
        done.add(name)
    batch.earlier = sorted(set(earlier_folders(images_dir, done)) | set(kept))
    copies = _copies(looks)
    for k, r in enumerate(batch.results):
        if r.sample in copies:
            keep, diff = copies[r.sample]
            again = (
                f"the same picture as {keep} (mean difference {diff:.1f} grey levels over the "
                "tissue: saved twice, at another size or compression?): counted in its own row, "
                f"not pooled again; {keep} is pooled"
            )
            batch.results[k] = replace(r, notes=(*r.notes, again))
            twice.add(r.sample)
    if not batch.results:  # every image failed: no empty tables, and none of an earlier run
        batch.removed = remove_claimed(out_dir, BATCH_TABLES)
        with contextlib.suppress(OSError):  # the images folder this run made, if left empty
            images_dir.rmdir()
        return batch
    batch.pooled = pool_results(
        [r for r in batch.results if r.sample not in twice],
        sample,
        settings.min_stromal_cells,
        failed=batch.failures,
        protocol_fields=settings.n_fields,
    )
    rows = [*batch.results, batch.pooled]
    # each table listed as nkpanel's as soon as it is written (a failure after it leaves it ours)
    batch.written.append(
        write_owned(out_dir / "uterine_results.csv", lambda t: write_batch_table(rows, t))
    )
    text = json.dumps(batch.summary(), indent=2, default=str)
    batch.written.append(
        write_owned(out_dir / "biopsy_summary.json", lambda t: write_text(t, text))
    )
    return batch
