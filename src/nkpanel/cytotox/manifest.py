"""The ``[[cytotoxicity]]`` table of a case manifest, and running one plate for a case.

Example (paths relative to the manifest)::

    [[cytotoxicity]]
    id = "nk-activity-1"
    assay = "chromium51"              # chromium51, europium, calcein, ldh, release or flow
    reads = "nk/plate_reads.csv"      # the instrument's export (CSV/XLSX, long or plate grid)
    layout = "nk/plate_layout.csv"    # well,sample,role,ratio,treatment
    sample_id = "P01"                 # this patient's sample on the plate
    effector_cells = "PBMC"           # PBMC, whole blood, purified NK, other
    target_cells = "K562"
    assay_date = 2026-11-03
    targets_per_well = 10000          # for lytic units per 10^7 effectors
    lysis_level_percent = 20          # LU20
    standard_ratio = 50               # lysis also given at 50:1

    [[cytotoxicity]]
    id = "flow-killing-1"
    assay = "flow"
    tubes = "nk/tubes.csv"            # file,sample,role,ratio,treatment
    sample_id = "P01"
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nkpanel.errors import InputError

if TYPE_CHECKING:
    from nkpanel.cytotox.analyze import CytotoxSettings

__all__ = ["CytotoxicityPlate", "run_plate_for_case"]

_EFFECTORS = {
    "pbmc": "PBMC",
    "pbmcs": "PBMC",
    "wholeblood": "whole blood",
    "blood": "whole blood",
    "purifiednk": "purified NK",
    "nk": "purified NK",
    "enrichednk": "purified NK",
    "isolatednk": "purified NK",
    "other": "other",
}


class CytotoxicityPlate(BaseModel):
    """One NK-activity assay of a case: a release-assay plate, or a set of flow-killing tubes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default="plate-1", min_length=1, max_length=64)
    assay: Literal["chromium51", "europium", "calcein", "ldh", "release", "flow"] = "release"
    reads: Path | None = Field(default=None, description="plate export (release assays)")
    layout: Path | None = Field(default=None, description="plate layout (release assays)")
    tubes: Path | None = Field(default=None, description="tube list (flow-based killing)")
    sheet: str | None = Field(default=None, description="XLSX sheet of the reads")
    layout_sheet: str | None = None
    grid: int | None = Field(default=None, ge=1, description="which plate grid, if several")
    unit: str | None = Field(default=None, description="unit of the reads when the file is silent")
    sample_id: str | None = Field(default=None, description="this patient's sample on the plate")
    effector_cells: Literal["PBMC", "whole blood", "purified NK", "other"] = "PBMC"
    target_cells: str = Field(default="K562", min_length=1, max_length=64)
    assay_date: dt.date | None = None
    incubation_hours: float | None = Field(default=None, gt=0, le=48)
    targets_per_well: float | None = Field(default=None, gt=0)
    lysis_level_percent: float = Field(default=20.0, gt=0, lt=100)
    standard_ratio: float = Field(default=50.0, gt=0)
    spontaneous_limit_percent: float = Field(default=30.0, gt=0, le=100)
    cv_limit_percent: float = Field(default=20.0, gt=0)
    lysis_cv_floor_percent: float = Field(
        default=10.0, ge=0, lt=100, description="mean % lysis from which its CV is judged"
    )
    min_replicates: int | None = Field(default=None, ge=1, description="2 for plates, 1 for flow")
    reference_low_percent: float | None = None
    reference_high_percent: float | None = None
    reference_ratio: float = Field(default=50.0, gt=0)
    reference_source: str = ""
    label_channel: str | None = Field(default=None, description="flow: target-label channel")
    dead_channel: str | None = Field(default=None, description="flow: dead-cell dye channel")
    notes: str = ""

    @field_validator("effector_cells", mode="before")
    @classmethod
    def _effectors(cls, v: Any) -> Any:
        if isinstance(v, str):
            key = "".join(ch for ch in v.casefold() if ch.isalnum())
            return _EFFECTORS.get(key, v)
        return v

    @model_validator(mode="after")
    def _files(self) -> CytotoxicityPlate:
        if self.assay == "flow":
            if self.tubes is None:
                raise ValueError("a flow-killing assay needs 'tubes' (the tube list)")
            if self.reads is not None or self.layout is not None:
                raise ValueError("a flow-killing assay takes 'tubes', not 'reads'/'layout'")
        else:
            missing = [n for n in ("reads", "layout") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"a {self.assay} plate needs {' and '.join(missing)}")
            if self.tubes is not None:
                raise ValueError("'tubes' is for assay = \"flow\" only")
        low, high = self.reference_low_percent, self.reference_high_percent
        if (low is None) != (high is None):
            raise ValueError("reference_low_percent and reference_high_percent go together")
        if low is not None and high is not None and not (math.isfinite(low) and low <= high):
            raise ValueError("reference_low_percent must not exceed reference_high_percent")
        return self

    def settings(self) -> CytotoxSettings:
        """The :class:`~nkpanel.cytotox.analyze.CytotoxSettings` this entry asks for."""
        from nkpanel.cytotox.analyze import CytotoxSettings, ReferenceBand

        reference = ReferenceBand.from_limits(
            self.reference_low_percent,
            self.reference_high_percent,
            self.reference_ratio,
            self.reference_source,
        )
        return CytotoxSettings(
            spontaneous_limit_percent=self.spontaneous_limit_percent,
            cv_limit_percent=self.cv_limit_percent,
            lysis_cv_floor_percent=self.lysis_cv_floor_percent,
            min_replicates=self.min_replicates or (1 if self.assay == "flow" else 2),
            lysis_level_percent=self.lysis_level_percent,
            standard_ratio=self.standard_ratio,
            targets_per_well=self.targets_per_well,
            reference=reference,
        )


def _resolve(base_dir: Path, path: Path) -> Path:
    return path if path.is_absolute() else base_dir / path


def run_plate_for_case(
    plate: CytotoxicityPlate,
    base_dir: Path,
    out_dir: Path,
    sample_id: str | None,
    *,
    plots: bool = True,
) -> dict[str, Any]:
    """Analyse one ``[[cytotoxicity]]`` entry, write its outputs, return a JSON-ready summary.

    Parameters
    ----------
    plate
        The manifest entry.
    base_dir
        The manifest's folder; relative paths are resolved against it.
    out_dir
        Where this plate's outputs go (tidy tables, summary, figures).
    sample_id
        The patient's sample on the plate; ``None`` uses ``plate.sample_id``. When that is
        also ``None`` the plate must hold one sample only.

    Returns
    -------
    dict
        ``id``, ``assay``, effector and target cells, date, ``sample_id``, ``synthetic``,
        ``outputs``, ``files``, ``figures`` (per sample, the PNG figures a report embeds, as
        absolute paths),
        ``headline`` (for the sample: per treatment, lysis at the standard ratio,
        lytic units, reportable, and suppression at the standard ratio), and the full summary
        (``samples``, ``failures`` with one line per cause, ``notes``).

    Raises
    ------
    InputError
        A file cannot be read, the layout belongs to another plate, ``sample_id`` is not on
        the plate, or none is given for a plate of several samples.
    ConfigError
        Invalid settings.
    """
    from nkpanel.cytotox.analyze import analyze_plate_files
    from nkpanel.cytotox.output import clean_json, write_outputs

    settings = plate.settings()
    sid = sample_id if sample_id is not None else plate.sample_id
    extra: dict[str, Any] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    if plate.assay == "flow":
        from nkpanel.cytotox.flowkill import FlowKillingSettings, analyze_flow_killing

        assert plate.tubes is not None
        fk = analyze_flow_killing(
            _resolve(base_dir, plate.tubes),
            FlowKillingSettings(
                label_channel=plate.label_channel,
                dead_channel=plate.dead_channel,
                cytotox=settings,
            ),
            plate_id=plate.id,
        )
        result = fk.result
        tables["gating.csv"] = [asdict(g) for g in fk.gating]
        extra["flow_gating"] = tables["gating.csv"]
        source = str(plate.tubes)
    else:
        assert plate.reads is not None and plate.layout is not None
        result = analyze_plate_files(
            _resolve(base_dir, plate.reads),
            _resolve(base_dir, plate.layout),
            settings,
            kind=plate.assay,
            unit=plate.unit,
            sheet=plate.sheet,
            layout_sheet=plate.layout_sheet,
            grid=plate.grid,
            plate_id=plate.id,
        )
        source = str(_resolve(base_dir, plate.layout))
    on_plate = {s.sample for s in result.samples} | {f.sample for f in result.failures if f.sample}
    names = ", ".join(sorted(on_plate)) or "none"
    if sid is not None and sid not in on_plate:
        raise InputError(source, f"sample {sid!r} is not on the plate (samples: {names})")
    if sid is None and len(on_plate) > 1:
        # whose is it? a case must not take another patient's sample for its own
        raise InputError(
            source,
            f"the plate holds {len(on_plate)} samples ({names}): set sample_id to the "
            "patient's in the case manifest",
        )
    outputs = write_outputs(
        result, out_dir, plots=plots, reference=settings.reference, extra=extra, extra_tables=tables
    )
    summary = result.summary(sample=sid)
    headline: list[dict[str, Any]] = []
    for s in result.samples:
        if sid is not None and s.sample != sid:
            continue
        for c in s.conditions:
            lu = c.lytic_units
            headline.append(
                {
                    "sample": s.sample,
                    "treatment": c.treatment,
                    "standard_ratio": c.standard_ratio.ratio,
                    "lysis_at_standard_ratio_percent": c.standard_ratio.lysis_percent,
                    "lysis_at_standard_ratio_method": c.standard_ratio.method,
                    "lu_level_percent": lu.lysis_level_percent if lu else None,
                    "lu_per_1e7_effectors": lu.lu_per_1e7_effectors if lu else None,
                    "reportable": c.reportable,
                    "not_reportable_reasons": list(c.not_reportable_reasons),
                    "suppression_at_standard_ratio_percent": next(
                        (
                            x.suppression_percent
                            for x in s.suppression_at(c.standard_ratio.ratio, c.treatment)
                        ),
                        None,
                    ),
                }
            )
    out: dict[str, Any] = clean_json(
        {
            "id": plate.id,
            "assay": plate.assay,
            "effector_cells": plate.effector_cells,
            "target_cells": plate.target_cells,
            "assay_date": plate.assay_date.isoformat() if plate.assay_date else None,
            "incubation_hours": plate.incubation_hours,
            "sample_id": sid,
            "synthetic": result.synthetic,
            "outputs": str(out_dir),
            "files": [str(p) for p in outputs.files],
            "figures": {
                name: [str(p.resolve()) for p in paths]
                for name, paths in outputs.figures.items()
                if sid is None or name == sid
            },
            "headline": headline,
            **extra,
            **{k: v for k, v in summary.items() if k not in ("plate", "assay", "synthetic")},
        }
    )
    return out
