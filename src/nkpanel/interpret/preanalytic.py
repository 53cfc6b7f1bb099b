"""Pre-analytic facts about a specimen, as the case manifest records them, and the caveats they
raise.

A case summary carries them under ``pre_analytic``: at the top level for the whole episode
(e.g. current medication) and on each blood draw, plate or biopsy for that specimen; a
specimen's own fields win over the episode's. Every field is optional: an unrecorded fact
raises no caveat, except the LH day of an endometrial biopsy, without which an LH-timed
interval cannot be applied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nkpanel.errors import InputError

__all__ = ["PreAnalytic", "lh_label", "merge_pre_analytic", "parse_pre_analytic"]

Exposure = Literal["none", "stress", "exercise", "adrenaline"]


def lh_label(day: int | float) -> str:
    """A biopsy's day after the LH surge as written: ``LH+7``, ``LH+0``, ``LH−2`` (before it)."""
    n = int(day)
    return f"LH+{n}" if n >= 0 else f"LH\u2212{-n}"


class PreAnalytic(BaseModel):
    """What happened to the patient and the specimen before the measurement.

    Attributes
    ----------
    acute_exposure
        Stress, exercise or adrenaline shortly before the blood draw (``"none"`` when the
        patient was asked and had none). Adrenaline mobilises NK cells into blood within 5 min,
        peaking at 15–30 min and back to baseline by 60–120 min (Schedlowski 1993, J Clin
        Immunol 13:344).
    minutes_since_exposure
        Minutes between the exposure and the draw; unknown counts as "shortly before".
    current_corticosteroid, current_immunotherapy
        The patient takes a corticosteroid (e.g. prednisolone) or an immunotherapy (e.g. IVIG,
        intralipid) at the time of the specimen.
    medication_note
        Free text, shown as recorded.
    anticoagulant
        Blood tube anticoagulant: the acceptable sample age depends on it (LabCorp: EDTA 1 day,
        ACD 2 days at room temperature).
    storage
        How the blood was kept until analysis; refrigerated or frozen blood is unacceptable
        for NK immunophenotyping to ARUP and LabCorp.
    processed
        When the assay started; with the collection time it gives the sample age.
    lh_day
        Day of the endometrial biopsy after the LH surge (LH+7 → 7).
    cycle_day
        Day of the menstrual cycle of the biopsy, when the LH day is not known (less precise:
        LH+7 to LH+9 is about cycle day 19–23 of a 28-day cycle; domain brief §3).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    acute_exposure: Exposure | None = None
    minutes_since_exposure: float | None = Field(default=None, ge=0, le=7 * 24 * 60)
    current_corticosteroid: bool | None = None
    current_immunotherapy: bool | None = None
    medication_note: str = Field(default="", max_length=500)
    anticoagulant: Literal["EDTA", "ACD", "heparin", "other"] | None = None
    storage: Literal["room_temperature", "refrigerated", "frozen"] | None = None
    processed: dt.datetime | None = None
    lh_day: int | None = Field(default=None, ge=-5, le=20)
    cycle_day: int | None = Field(default=None, ge=1, le=60)

    @property
    def on_treatment(self) -> bool:
        """True when a corticosteroid or an immunotherapy is recorded as current."""
        return bool(self.current_corticosteroid or self.current_immunotherapy)


def parse_pre_analytic(data: Mapping[str, Any] | None, *, where: str) -> PreAnalytic:
    """Validate a ``pre_analytic`` mapping from a case summary.

    Raises
    ------
    InputError
        Naming ``where`` (e.g. ``"case summary: blood_draws[0].pre_analytic"``) and each
        offending field.
    """
    if data is None:
        return PreAnalytic()
    try:
        return PreAnalytic.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(where, f"invalid pre_analytic: {problems}") from None


def merge_pre_analytic(episode: PreAnalytic, specimen: PreAnalytic) -> PreAnalytic:
    """The specimen's record, with the episode's fields filling what the specimen left unset."""
    merged = episode.model_dump()
    for name, value in specimen.model_dump().items():
        if value is not None and value != "":
            merged[name] = value
    return PreAnalytic.model_validate(merged)
