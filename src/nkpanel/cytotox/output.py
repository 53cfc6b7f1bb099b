"""Writing NK-activity outputs: the tidy table (CSV and JSON), per-condition and suppression
tables, the per-well audit trail, a summary JSON and the figures. Every file is written
atomically, so an interrupted run leaves no half-written output.

Files, in the output folder:

``lysis.csv`` / ``lysis.json``
    The tidy table: sample × treatment × ratio with mean % lysis, its SD and CV
    (``cv_lysis_percent``), the CV of the blank-corrected signals (``signal_cv_percent``),
    n, flags.
``conditions.csv``
    Sample × treatment: controls, spontaneous/maximum, fit, lytic units, standard-ratio lysis.
``suppression.csv``
    Sample × treatment × ratio: suppression against the untreated wells, as measured.
``wells.csv``
    Every well used: raw and blank-corrected signal, lysis, outlier flag.
``summary.json``
    Everything above nested per sample, with QC, failures and notes.
``plots/<sample>.png`` and ``.svg``
    Lysis against E:T per condition.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nkpanel._atomic import claim, listed, remove_claimed, write_text
from nkpanel.cytotox.results import CytotoxResult

__all__ = ["CytotoxOutputs", "clean_json", "write_outputs"]


@dataclass
class CytotoxOutputs:
    """The files written, and per sample its figures as a report embeds them (PNG)."""

    files: list[Path] = field(default_factory=list)
    figures: dict[str, list[Path]] = field(default_factory=dict)


def clean_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    buf = io.StringIO()
    cols = list(columns or (rows[0].keys() if rows else []))
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if v is None else v) for k, v in clean_json(row).items()})
    return buf.getvalue()


_LYSIS_COLUMNS = (
    "plate",
    "assay",
    "sample",
    "treatment",
    "ratio",
    "ratio_label",
    "n",
    "mean_lysis_percent",
    "sd_lysis_percent",
    "cv_lysis_percent",
    "signal_cv_percent",
    "mean_lysis_excluding_outliers_percent",
    "wells",
    "outlier_wells",
    "spontaneous_percent_of_maximum",
    "reportable",
    "flags",
    "synthetic",
)


def write_outputs(
    result: CytotoxResult,
    out_dir: Path,
    *,
    plots: bool = True,
    reference: object | None = None,
    extra: dict[str, Any] | None = None,
    extra_tables: Mapping[str, Sequence[dict[str, Any]]] | None = None,
    on_sample: Callable[[str], None] | None = None,
) -> CytotoxOutputs:
    """Write every output of ``result`` into ``out_dir``; return the files written and each
    sample's figures.

    ``extra`` is merged into ``summary.json`` (e.g. flow gating); ``extra_tables`` are written
    as further CSV files (name → rows).
    """
    out_dir = Path(out_dir)
    written: list[Path] = []
    figures: dict[str, list[Path]] = {}

    def put(name: str, text: str) -> None:
        target = out_dir / name
        write_text(target, text)
        written.append(target)

    rows = result.rows()
    put("lysis.csv", _csv(rows, _LYSIS_COLUMNS))
    put("lysis.json", json.dumps(clean_json(rows), indent=2) + "\n")
    conditions = result.condition_rows()
    put("conditions.csv", _csv(conditions))
    suppression = result.suppression_rows()
    sup_cols = [
        "plate",
        "sample",
        "treatment",
        "reference_treatment",
        "ratio",
        "basis",
        "lysis_without_percent",
        "lysis_with_percent",
        "suppression_percent",
        "reportable",
        "note",
        "extrapolated",
        "synthetic",
    ]
    put("suppression.csv", _csv(suppression, sup_cols))
    put("wells.csv", _csv(result.well_rows()))
    for name, table in (extra_tables or {}).items():
        put(name, _csv(list(table)))
    summary = result.summary()
    if extra:
        summary.update(extra)
    if reference is not None:
        summary["reference_band"] = asdict(reference)  # type: ignore[call-overload]
    put("summary.json", json.dumps(clean_json(summary), indent=2, default=str) + "\n")
    if plots:
        from nkpanel.cytotox.plots import plot_sample

        for s in result.samples:
            if on_sample is not None:
                on_sample(s.sample)
            drawn = plot_sample(
                s,
                out_dir / "plots",
                assay=result.assay,
                reference=reference,
                synthetic=result.synthetic,
            )
            written += drawn
            figures[s.sample] = [f for f in drawn if f.suffix == ".png"]
    return CytotoxOutputs(written, figures)


#: the files an NK-activity analysis may write in its output folder (besides ``plots/``)
OUTPUT_TABLES = frozenset(
    {
        "lysis.csv",
        "lysis.json",
        "conditions.csv",
        "suppression.csv",
        "wells.csv",
        "summary.json",
        "gating.csv",
    }
)


def replace_earlier(out_dir: Path, written: Sequence[Path]) -> None:
    """Remove the NK-activity outputs an earlier run wrote into ``out_dir`` that this one did
    not write again (audit 20: a first plate's figures, a flow run's gating.csv, stayed beside
    the next run's tables), then list this run's files as nkpanel's. Only files nkpanel
    listed there and nobody changed since are removed, and only its own kinds (the tables
    above and ``plots/``): another command's outputs in the same folder stay. For a run that
    writes in place (``nkpanel cytotox analyze``); a case's plate folder is written whole by
    :func:`~nkpanel._atomic.atomic_folder`, which lists its files itself."""
    names = {str(p.relative_to(out_dir)) for p in written}
    earlier = {n for n in listed(out_dir) if n in OUTPUT_TABLES or n.startswith("plots/")}
    remove_claimed(out_dir, earlier - names)
    claim(out_dir, sorted(names))
