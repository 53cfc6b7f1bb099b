"""Typed result records of the flow biomarker, and their tidy-table form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from nkpanel.flow.qc import QCFlag

__all__ = ["FlowResult", "PopulationCount"]


@dataclass(frozen=True)
class PopulationCount:
    """One gated population of one sample."""

    population: str
    parent: str | None
    count: int
    parent_count: int
    percent_of_parent: float | None
    percent_of_lymphocytes: float | None
    percent_of_leukocytes: float | None
    cells_per_ul: float | None
    #: a template's role row (``"NK"``) repeats the events of its gate (``"/…/NK cells"``):
    #: that gate's path, so that summing counts can leave the repeats out; None otherwise
    same_events_as: str | None = None


@dataclass(frozen=True)
class FlowResult:
    """Peripheral-blood NK measurements of one FCS file, with their quality checks.

    ``reportable`` is false when any blocking check failed; the measurements are then kept for
    review but must not be reported, and ``not_reportable_reasons`` says why.
    """

    sample: str
    source: str
    gating: Literal["automated", "template"]
    cytometry: Literal["flow", "mass"]
    n_events: int
    populations: tuple[PopulationCount, ...]
    qc: tuple[QCFlag, ...]
    notes: tuple[str, ...]
    nk_percent_of_lymphocytes: float | None
    nk_percent_of_leukocytes: float | None
    cd56bright_percent_of_nk: float | None
    cd56dim_percent_of_nk: float | None
    cd56bright_to_dim_ratio: float | None
    nk_like_t_percent_of_lymphocytes: float | None
    nk_cells_per_ul: float | None
    absolute_count_method: Literal["bead", "dual-platform", "none"]
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: a template run's template file, and which of its gates plays each role ("NK" → gate
    #: path); part of the method, so kept apart from the notes
    template: str | None = None
    template_roles: Mapping[str, str] = field(default_factory=dict)
    #: how the file was read (the data set chosen, writer quirks tolerated, a template applied
    #: to nkpanel's reading, a name changed in a batch): provenance, kept apart from the notes,
    #: which are about the quality of the measurement
    file_notes: tuple[str, ...] = ()
    #: the channel ($PnN) that carried each marker of the automated gating ("CD16" and "CD56"
    #: on one channel: a TBNK kit's combined CD16+56); empty for a template run
    markers: Mapping[str, str] = field(default_factory=dict)

    @property
    def reportable(self) -> bool:
        return all(f.passed or not f.blocking for f in self.qc)

    @property
    def not_reportable_reasons(self) -> tuple[str, ...]:
        return tuple(f.reason for f in self.qc if f.blocking and not f.passed)

    def population(self, name: str) -> PopulationCount:
        for p in self.populations:
            if p.population == name:
                return p
        raise KeyError(name)

    def rows(self) -> list[dict[str, Any]]:
        """The tidy table: one row per population, QC status repeated on each row."""
        flags = "; ".join(f.label for f in self.qc if not f.passed)
        return [
            {
                "sample": self.sample,
                **asdict(p),
                "gating": self.gating,
                "reportable": self.reportable,
                "qc_flags": flags,
            }
            for p in self.populations
        ]

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary of the headline measurements, QC and notes."""
        return {
            "sample": self.sample,
            "source": self.source,
            "gating": self.gating,
            "cytometry": self.cytometry,
            "n_events": self.n_events,
            "reportable": self.reportable,
            "not_reportable_reasons": list(self.not_reportable_reasons),
            "nk_percent_of_lymphocytes": self.nk_percent_of_lymphocytes,
            "nk_percent_of_leukocytes": self.nk_percent_of_leukocytes,
            "cd56bright_percent_of_nk": self.cd56bright_percent_of_nk,
            "cd56dim_percent_of_nk": self.cd56dim_percent_of_nk,
            "cd56bright_to_dim_ratio": self.cd56bright_to_dim_ratio,
            "nk_like_t_percent_of_lymphocytes": self.nk_like_t_percent_of_lymphocytes,
            "nk_cells_per_ul": self.nk_cells_per_ul,
            "absolute_count_method": self.absolute_count_method,
            "qc": [asdict(f) for f in self.qc],
            "notes": list(self.notes),
            "metadata": dict(self.metadata),
            "template": self.template,
            "template_roles": dict(self.template_roles),
            "file_notes": list(self.file_notes),
            "markers": dict(self.markers),
        }
