"""The case manifest: one patient's test episode, as a TOML file a lab writes or nkpanel generates.

Example::

    [case]
    id = "EP-2026-0042"            # this test episode
    patient_id = "PSN-7F3A"        # pseudonymous; never a name or a national number
    age_years = 34

    [indication]
    pregnancy_losses = 3
    failed_ivf_cycles = 0
    unexplained_infertility = false

    [[blood_draws]]
    id = "draw-1"
    collected = 2026-11-02T08:30:00
    fcs = ["blood/tube1.fcs"]      # paths relative to this file
    bead_lot = "TRUCOUNT-12345"
    beads_per_test = 50000         # from the bead lot's certificate
    sample_volume_ul = 50.0
    lymphocytes_per_ul = 1800      # optional: haematology analyser, for dual-platform counts

Later sections (``[[cytotoxicity]]`` plates, ``[[endometrial]]`` biopsies) are accepted and kept
for the biomarkers that read them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nkpanel._toml import load_toml, refuse_duplicate_ids, validate_toml
from nkpanel.cytotox.manifest import CytotoxicityPlate
from nkpanel.errors import ConfigError
from nkpanel.interpret.preanalytic import PreAnalytic
from nkpanel.uterine.manifest import EndometrialBiopsy

__all__ = [
    "BloodDraw",
    "Case",
    "CaseInfo",
    "CytotoxicityPlate",
    "EndometrialBiopsy",
    "Indication",
    "load_case",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaseInfo(_Strict):
    id: str = Field(min_length=1, max_length=64)
    patient_id: str = Field(min_length=1, max_length=64, description="pseudonymous patient id")
    age_years: int | None = Field(default=None, ge=10, le=70)
    synthetic: bool = Field(default=False, description="true for data nkpanel generated")


class Indication(_Strict):
    pregnancy_losses: int = Field(default=0, ge=0, le=50)
    failed_ivf_cycles: int = Field(default=0, ge=0, le=50)
    unexplained_infertility: bool = False


class BloodDraw(_Strict):
    id: str = "draw-1"
    #: a time, or a day when the time was not recorded (then no sample age is worked out)
    collected: dt.datetime | dt.date | None = None
    received: dt.datetime | None = None
    fcs: tuple[Path, ...] = Field(min_length=1)
    bead_lot: str | None = None
    beads_per_test: float | None = Field(default=None, gt=0)
    sample_volume_ul: float | None = Field(default=None, gt=0)
    lymphocytes_per_ul: float | None = Field(default=None, gt=0, le=100_000)
    template: Path | None = None
    #: a FlowJo template of several samples: the one whose gates to apply
    template_sample: str | None = None
    #: with a template: role → the gate that plays it (NK = "NK_cells"), as ``--population``
    populations: dict[str, str] = Field(default_factory=dict)
    #: which data set of FCS files that hold several (default: see nkpanel.flow.sample.read_fcs)
    dataset: int | None = Field(default=None, ge=1)
    #: marker → the label of the channel that carries it, as ``--marker`` (CD56 = "NK1.1")
    markers: dict[str, str] = Field(default_factory=dict)
    #: the lab's spillover matrix (CSV, as --spillover), used instead of the files' own
    spillover: Path | None = None
    #: the lab's marker alias file (TOML, as --aliases)
    aliases: Path | None = None
    #: flow or mass cytometry, as --cytometry (default: told from each file)
    cytometry: Literal["auto", "flow", "mass"] | None = None
    notes: str = ""
    pre_analytic: PreAnalytic = PreAnalytic()

    @field_validator("fcs", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _consistent(self) -> BloodDraw:
        if (self.beads_per_test is None) != (self.sample_volume_ul is None):
            raise ValueError(
                "beads_per_test and sample_volume_ul go together (bead-method absolute counts)"
            )
        if self.template_sample is not None and self.template is None:
            raise ValueError("template_sample names a sample of the draw's template workspace")
        if self.populations and self.template is None:
            raise ValueError("populations name the gates of the draw's template")
        if self.markers and self.template is not None:  # audit 21: accepted, and unused
            raise ValueError(
                "markers map channels for the automated gating; a template's gates name "
                "their channels themselves"
            )
        if self.aliases is not None and self.template is not None:
            raise ValueError(
                "aliases name markers for the automated gating; a template's gates name "
                "their channels themselves"
            )
        if self.collected is not None:
            for name, when in (
                ("received", self.received),
                ("pre_analytic.processed", self.pre_analytic.processed),
            ):
                if when is not None and _before(when, self.collected):
                    raise ValueError(f"{name} ({when}) is before collected ({self.collected})")
        processed = self.pre_analytic.processed
        if (
            processed is not None
            and self.received is not None
            and _before(processed, self.received)
        ):
            raise ValueError(
                f"pre_analytic.processed ({processed}) is before received ({self.received})"
            )
        return self

    @field_validator("markers")
    @classmethod
    def _known_markers(cls, v: dict[str, str]) -> dict[str, str]:
        from nkpanel.flow.analyze import is_analysis_marker
        from nkpanel.flow.markers import normalise_label

        seen: set[str] = set()
        for marker, label in v.items():
            if not is_analysis_marker(marker):
                raise ValueError(f"{marker} is not a marker the NK analysis uses")
            if normalise_label(marker) in seen:
                raise ValueError(f"{marker} is mapped twice")
            seen.add(normalise_label(marker))
            if not label.strip():
                raise ValueError(f"{marker} is mapped to an empty label")
        return v


def _before(later: dt.datetime, earlier: dt.datetime | dt.date) -> bool:
    """Whether ``later`` is before ``earlier`` (by day when ``earlier`` is a day only; times
    with and without a time zone are not compared)."""
    if not isinstance(earlier, dt.datetime):
        return later.date() < earlier
    if (later.tzinfo is None) != (earlier.tzinfo is None):
        return False
    return later < earlier


class Case(_Strict):
    case: CaseInfo
    indication: Indication = Indication()
    blood_draws: tuple[BloodDraw, ...] = ()
    cytotoxicity: tuple[CytotoxicityPlate, ...] = ()
    endometrial: tuple[EndometrialBiopsy, ...] = ()
    pre_analytic: PreAnalytic = PreAnalytic()
    base_dir: Path = Path(".")

    def resolve(self, path: Path) -> Path:
        """A path from the manifest, relative to the manifest's folder."""
        return path if path.is_absolute() else self.base_dir / path


def load_case(path: str | Path) -> Case:
    """Read and validate a case manifest.

    Raises
    ------
    ConfigError
        Unreadable file, invalid TOML, or fields that fail validation; the message names the
        file and each offending field. Two specimens of a kind with one id (their outputs
        would overwrite each other), or an id that is not a plain folder name.
    """
    p = Path(path)
    data = load_toml(p, "case manifest")
    data["base_dir"] = p.resolve().parent
    case = validate_toml(Case, data, p, "case manifest")
    sections = (
        ("blood draw", [d.id for d in case.blood_draws]),
        ("cytotoxicity plate", [c.id for c in case.cytotoxicity]),
        ("endometrial biopsy", [b.id for b in case.endometrial]),
    )
    for what, ids in sections:
        # in any letter case: Draw-1 and draw-1 are one folder on macOS and Windows
        refuse_duplicate_ids([i.casefold() for i in ids], str(p), what)
        for i in ids:
            if not i.strip() or i in (".", "..") or Path(i).name != i or "\\" in i:
                raise ConfigError(f"{p}: {what} id {i!r} must be a plain name (it names a folder)")
    if not (case.blood_draws or case.cytotoxicity or case.endometrial):
        raise ConfigError(
            f"{p}: the case holds no specimen: add [[blood_draws]], [[cytotoxicity]] or "
            "[[endometrial]]"
        )
    _refuse_future_dates(case, p)
    from nkpanel.flow.analyze import named_roles  # numpy and the flow stack: only when read

    for d in case.blood_draws:  # roles in any letter case, as --population takes them
        named_roles(d.populations, f"{p}: blood draw {d.id} populations")
    return case


def _refuse_future_dates(case: Case, p: Path) -> None:
    """A specimen dated after tomorrow is a typo (2031 for 2021): its result would be read as
    the newest of the patient's and sorted wrongly in the serial view."""
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    dates: list[tuple[str, dt.date | dt.datetime | None]] = []
    for d in case.blood_draws:
        dates += [(f"blood draw {d.id} collected", d.collected)]
        dates += [(f"blood draw {d.id} received", d.received)]
    dates += [(f"cytotoxicity plate {c.id} assay_date", c.assay_date) for c in case.cytotoxicity]
    dates += [(f"endometrial biopsy {b.id} collected", b.collected) for b in case.endometrial]
    for what, when in dates:
        day = when.date() if isinstance(when, dt.datetime) else when
        if day is not None and day > tomorrow:
            raise ConfigError(f"{p}: {what} {day.isoformat()} is in the future (a typo?)")
