"""Who issues a report and which version it is: the laboratory, its analyst and authoriser,
and the amendment history (ISO 15189:2022 §7.4.1: a report identifies the laboratory, the
authoriser, the report's date and, for an amended report, what changed)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from nkpanel._toml import load_toml, validate_toml

__all__ = ["Amendment", "LabInfo", "ReportPaths", "load_lab_info"]


class Amendment(BaseModel):
    """One earlier version of the report and why it was replaced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    date: dt.datetime
    reason: str = Field(min_length=3, max_length=500)
    by: str = ""


class LabInfo(BaseModel):
    """The issuing laboratory and the people who sign a report.

    A report without an ``authoriser`` is issued as *preliminary*; one with amendments is
    *amended*; otherwise *final*.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="Laboratory name not configured", min_length=1, max_length=200)
    address: str = ""
    accreditation: str = Field(default="", description="e.g. an ISO 15189 accreditation number")
    contact: str = ""
    analyst: str | None = None
    authoriser: str | None = None
    requester: str | None = Field(default=None, description="the requesting clinician or unit")
    timezone: str = Field(
        default="UTC",
        description="IANA zone of the lab: naive times in a case summary are read in it",
    )


def load_lab_info(path: Path) -> LabInfo:
    """Read a lab file (TOML with the :class:`LabInfo` fields at the top level), less its
    ``authoriser``.

    A report is authorised by a person after reviewing it (ISO 15189 has results reviewed
    before they are released), not by a name in the lab's configuration: with an authoriser in
    the lab file, every run was issued "final", even one whose results failed QC (audit 19).
    The field is accepted (a lab's existing file still loads) and dropped here, so that no
    caller, the command line's or a library's, authorises by it; ``nkpanel report
    CASE_SUMMARY --authoriser NAME`` authorises after review.

    Raises
    ------
    ConfigError
        Unreadable file, invalid TOML or invalid fields; the message names the file.
    """
    lab = validate_toml(LabInfo, load_toml(path, "lab file"), path, "lab file")
    return lab.model_copy(update={"authoriser": None})


@dataclass(frozen=True)
class ReportPaths:
    """The files one report run wrote."""

    clinician_html: Path
    clinician_pdf: Path | None
    patient_html: Path
    patient_pdf: Path | None
    json: Path
    fhir: Path
    figures: tuple[Path, ...] = field(default=())
    #: no authoriser: the report is preliminary
    preliminary: bool = False
    #: no lab file: the report names no laboratory
    lab_unnamed: bool = False

    def lines(self) -> list[str]:
        """Where each report is, as the command line prints it: HTML, and PDF when made."""

        def both(html: Path, pdf: Path | None) -> str:
            return f"{html}" + (f" (PDF: {pdf})" if pdf is not None else "")

        return [
            f"clinician report: {both(self.clinician_html, self.clinician_pdf)}",
            f"patient page:     {both(self.patient_html, self.patient_pdf)}",
            f"FHIR bundle:      {self.fhir}",
        ]

    def moved(self, old: Path, new: Path) -> ReportPaths:
        """The same files after the folder ``old`` they were written in became ``new``."""

        def at(p: Path) -> Path:
            return new / p.relative_to(old)

        # the paths moved; every other field (the report's status…) kept as it is
        return dataclasses.replace(
            self,
            clinician_html=at(self.clinician_html),
            clinician_pdf=None if self.clinician_pdf is None else at(self.clinician_pdf),
            patient_html=at(self.patient_html),
            patient_pdf=None if self.patient_pdf is None else at(self.patient_pdf),
            json=at(self.json),
            fhir=at(self.fhir),
            figures=tuple(at(f) for f in self.figures),
        )

    def notes(self, authoriser: str) -> list[str]:
        """What the command line says of the report beside its paths, ``authoriser`` naming
        how the calling command takes one: the pages say it too, but a lab should not learn
        it from them."""
        out = []
        if self.preliminary:
            out.append(f"the report is PRELIMINARY: no authoriser ({authoriser})")
        if self.lab_unnamed:
            out.append("no laboratory is named on the report (a --lab file: name = …)")
        return out

    def all(self) -> list[Path]:
        """Every file written, in a stable order."""
        files = [self.clinician_html, self.clinician_pdf, self.patient_html, self.patient_pdf]
        return [p for p in files if p is not None] + [self.json, self.fhir, *self.figures]
