"""Writing a batch's outputs: the tidy table (CSV, Parquet, JSON), per-sample summaries, the
automated gates as Gating-ML, gating figures, and per-event membership on request. Every file is
written atomically, so an interrupted run leaves no half-written output."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nkpanel._atomic import (
    atomic_folder,
    remove_claimed,
    write_bytes,
    write_owned,
    write_text,
    write_with,
)
from nkpanel._names import file_stamp
from nkpanel.errors import interrupted, one_line, tracebacks_shown
from nkpanel.flow.analyze import FlowAnalysis
from nkpanel.flow.results import FlowResult

__all__ = [
    "BatchFailure",
    "SampleOutputs",
    "write_batch",
    "write_events",
    "write_sample_outputs",
]

EventFormat = Literal["parquet", "csv"]


@dataclass(frozen=True)
class BatchFailure:
    """A file that could not be analysed, and why (one line)."""

    source: str
    reason: str


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows)


def sample_dir(out_dir: Path, analysis: FlowAnalysis) -> Path:
    return out_dir / "samples" / analysis.result.sample


def write_events(analysis: FlowAnalysis, target: Path, fmt: EventFormat) -> Path:
    """One boolean column per population, one row per event in file order."""
    frame = _frame([])
    frame = frame.assign(
        **{name: np.asarray(m, dtype=bool) for name, m in analysis.membership.items()}
    )
    frame.insert(0, "event", np.arange(analysis.sample.n_events, dtype=np.int64))
    if fmt == "parquet":
        write_with(target, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        buf = io.StringIO()
        frame.to_csv(buf, index=False)
        write_text(target, buf.getvalue())
    return target


@dataclass(frozen=True)
class SampleOutputs:
    """What :func:`write_sample_outputs` wrote, and the sample's result as written: with a note
    where its figures could not be drawn."""

    paths: list[Path]
    result: FlowResult


def write_sample_outputs(
    analysis: FlowAnalysis,
    out_dir: Path,
    *,
    plots: bool = True,
    export_events: EventFormat | None = None,
) -> SampleOutputs:
    """Per-sample files: summary JSON, Gating-ML of the automated gates, figures, events.

    They are written into a new folder that then replaces the sample's folder whole, so that
    figures or events of an earlier run into the same ``out_dir`` are not left beside them.
    Figures that cannot be drawn leave the numbers standing: the sample is written without
    figures, its result noting why (a disk that cannot take files, an interrupt, or any fault
    under ``--debug`` still fails it)."""
    final = sample_dir(out_dir, analysis)
    with atomic_folder(final) as d:
        written, result = _write_sample_files(analysis, d, plots=plots, export_events=export_events)
    return SampleOutputs([final / p.relative_to(d) for p in written], result)


def _write_sample_files(
    analysis: FlowAnalysis,
    d: Path,
    *,
    plots: bool,
    export_events: EventFormat | None,
) -> tuple[list[Path], FlowResult]:
    written: list[Path] = []
    result = analysis.result
    if plots:  # first: a note on figures not drawn belongs in the summary
        try:
            drawn, not_drawn = _figures(analysis, d / "plots")
            written += drawn
            if not_drawn:  # gates a figure cannot show (audit 21: the notes were dropped)
                result = dataclasses.replace(result, notes=(*result.notes, *not_drawn))
        except OSError:
            raise  # a disk that cannot take files fails the sample's other files as well
        except Exception as exc:  # any drawing fault: said, and the numbers stand
            if interrupted() or tracebacks_shown():  # an interrupt turned into it; --debug
                raise
            shutil.rmtree(d / "plots", ignore_errors=True)  # the figures drawn before it
            written = []
            note = f"figures not drawn ({one_line(exc, limit=200)}); the results are not affected"
            result = dataclasses.replace(result, notes=(*result.notes, note))
    summary = result.summary()
    if analysis.sample.path is not None:  # which file, as it was: a later file at the same
        summary["source_file"] = file_stamp(analysis.sample.path)  # path is another's
    target = d / "summary.json"
    write_text(target, json.dumps(summary, indent=2, default=str))
    written.append(target)
    if analysis.tree is not None:
        from nkpanel.flow.gatingml import export_gatingml, matrix_to_embed

        target = d / "gates.gatingml.xml"
        # the matrix the gating used: the supplied one, else a reference to each file's own
        embed = matrix_to_embed(analysis.sample, analysis.values.spillover)
        markers = dict(analysis.markers.markers) if analysis.markers is not None else {}
        export_gatingml(analysis.tree, target, spillover=embed, markers=markers)
        written.append(target)
    if export_events is not None:
        written.append(write_events(analysis, d / f"events.{export_events}", export_events))
    return written, result


def _figures(analysis: FlowAnalysis, plot_dir: Path) -> tuple[list[Path], list[str]]:
    """The sample's figures, and notes on gates that have none."""
    written: list[Path] = []
    notes: list[str] = []
    if analysis.tree is not None and analysis.gating is not None:
        written += _plots(analysis, plot_dir)
    elif analysis.template is not None and analysis.sample.path is not None:
        from nkpanel.flow.template_plots import plot_template_gates

        figures, notes = plot_template_gates(
            analysis.template,
            analysis.sample.path,
            analysis.membership,
            analysis.parents,
            plot_dir,
            sample_id=analysis.workspace_sample,
            synthetic=analysis.sample.synthetic,
            flowkit_sample=analysis.template_sample,
            dataset=analysis.sample.dataset,
        )
        written += figures
    return written, notes


def _plots(analysis: FlowAnalysis, plot_dir: Path) -> list[Path]:
    from nkpanel.flow.plots import plot_gates

    sample = analysis.sample
    gating = analysis.gating
    if gating is None or analysis.tree is None:
        return []
    scales = gating.scales

    def values(ch: str) -> Any:
        # one compensated column at a time, not the whole compensated matrix
        return analysis.values.column(sample.index_of(ch))

    def scale_for(ch: str) -> Any:
        return scales.get(ch, lambda v: v)

    markers = dict(analysis.markers.markers) if analysis.markers else {}
    if analysis.markers:
        markers.update(analysis.markers.channels)
    synthetic = sample.synthetic
    return plot_gates(
        sample_name=sample.name,
        gates=analysis.tree.gates,
        membership=analysis.membership,
        values=values,
        scale_for=scale_for,
        label_for=sample.label,
        channel_for_marker=markers,
        out_dir=plot_dir,
        synthetic=synthetic,
    )


#: the batch-level files :func:`write_batch` writes
BATCH_TABLES = (
    "flow_populations.csv",
    "flow_populations.parquet",
    "flow_populations.json",
    "flow_summary.json",
    "flow_review.html",
)


def remove_batch_tables(out_dir: Path) -> list[Path]:
    """Remove the batch tables an earlier run of nkpanel left in ``out_dir`` (only those it
    wrote and nobody changed since); return those removed."""
    return remove_claimed(out_dir, BATCH_TABLES)


def write_batch(
    results: Sequence[FlowResult],
    failures: Sequence[BatchFailure],
    out_dir: Path,
    *,
    earlier: Sequence[Path] = (),
    settings: Mapping[str, Any] | None = None,
    figures: Mapping[str, Sequence[Path]] | None = None,
    synthetic: Sequence[str] = (),
    notes: Sequence[str] = (),
    title: str = "",
) -> list[Path]:
    """The batch-level tidy table in three formats, the run summary (which also lists the
    ``earlier`` sample folders a previous run left in ``out_dir``, and the ``settings`` every
    sample was analysed with: nkpanel's version, the absolute-count inputs…) and the review
    page (:mod:`nkpanel.flow.review`: each sample's ``figures``, the ``synthetic`` sources
    marked, the batch's ``notes``, its ``title``)."""
    from nkpanel.flow.review import render_review

    rows = [row for r in results for row in r.rows()]
    frame = _frame(rows)
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    summary = {
        "settings": dict(settings or {}),
        "samples": [r.summary() for r in results],
        "failures": [{"source": f.source, "reason": f.reason} for f in failures],
        "earlier_sample_folders": [str(p) for p in earlier],
    }
    writers: dict[str, Callable[[Path], object]] = {
        "flow_populations.csv": lambda t: write_text(t, buf.getvalue()),
        "flow_populations.parquet": lambda t: write_with(
            t, lambda tmp: frame.to_parquet(tmp, index=False)
        ),
        "flow_populations.json": lambda t: write_bytes(
            t, json.dumps(rows, indent=1, default=_json_default).encode()
        ),
        "flow_summary.json": lambda t: write_text(
            t, json.dumps(summary, indent=2, default=_json_default)
        ),
        "flow_review.html": lambda t: write_text(
            t,
            render_review(
                results,
                failures,
                out_dir,
                figures=figures or {},
                synthetic=synthetic,
                earlier=earlier,
                settings=settings,
                notes=notes,
                title=title,
            ),
        ),
    }
    # each listed as nkpanel's as soon as it is written (a failure after it leaves it ours)
    return [write_owned(out_dir / name, writers[name]) for name in BATCH_TABLES]


def _json_default(obj: object) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)
