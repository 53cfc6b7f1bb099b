"""The evidence panel: a bundled file of sourced statements, and the choice of those relevant to
a case's results.

Each statement carries its source, and where the source gives them its design, size, effect and
confidence interval. :func:`select_evidence` keeps the statements whose ``show_when`` conditions
match the case (a measurand measured, a result flagged or near a limit, a pre-analytic caveat,
a patient on treatment), in the file's order grouped by topic.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nkpanel._toml import load_toml_or_bundled, refuse_duplicate_ids, validate_toml
from nkpanel.errors import ConfigError
from nkpanel.interpret.measurands import known_codes
from nkpanel.interpret.wording import SourceText, check_wording

__all__ = ["TOPICS", "EvidenceStatement", "load_evidence", "select_evidence"]

Topic = Literal[
    "prediction",
    "population",
    "reproducibility",
    "pre_analytic",
    "treatment_trial",
    "supportive_care",
    "guideline",
    "counterpoint",
]

#: Topic → heading, in the order the report shows them.
TOPICS: dict[str, str] = {
    "prediction": "What results have and have not been shown to predict",
    "population": "Values in patient groups",
    "reproducibility": "Reproducibility and timing",
    "pre_analytic": "Before the sample is taken",
    "treatment_trial": "What treatment trials found",
    "supportive_care": "The supportive-care baseline",
    "guideline": "Guideline positions",
    "counterpoint": "Counterpoint positions",
}


class EvidenceStatement(BaseModel):
    """One sourced statement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=80)
    topic: Topic
    measurands: tuple[str, ...] = ()
    show_when: tuple[str, ...] = ("always",)
    text: str = Field(min_length=10)
    plain: str = ""
    source: SourceText
    design: str | None = None
    size: str | None = None
    effect: str | None = None
    ci: str | None = None
    note: str = ""

    @field_validator("measurands")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return known_codes(v)

    @field_validator("show_when")
    @classmethod
    def _conditions(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for c in v:
            if c not in (
                "always",
                "measured",
                "flagged",
                "raised",
                "on_treatment",
                "pregnancy_loss",
            ) and not c.startswith("caveat:"):
                raise ValueError(f"unknown show_when condition {c!r}")
        return v

    @property
    def attributed(self) -> bool:
        """A body's position (guideline, counterpoint), which may report its recommendation."""
        return self.topic in ("guideline", "counterpoint")

    def wording_problems(self) -> list[str]:
        """Problems with the statement's wording (see :mod:`nkpanel.interpret.wording`)."""
        return check_wording(self.text, attributed=self.attributed) + check_wording(
            self.plain, attributed=self.attributed
        )


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_: int = Field(default=1, alias="schema")
    replace_bundled: bool = False
    statement: list[EvidenceStatement] = Field(default_factory=list)


def _read(path: Path | None) -> tuple[_File, str]:
    what = "evidence file"
    data, name = load_toml_or_bundled(
        path, package="nkpanel.interpret", resource="evidence.toml", what=what
    )
    return validate_toml(_File, data, name, what), name


def load_evidence(lab_file: Path | None = None) -> list[EvidenceStatement]:
    """The bundled statements, replaced or extended (same ``id``) by ``lab_file``.

    Raises
    ------
    ConfigError
        An invalid file, a duplicate id, or a statement whose wording diagnoses, prescribes or
        recommends in nkpanel's own voice.
    """
    files = [_read(None)] + ([_read(lab_file)] if lab_file is not None else [])
    out: dict[str, EvidenceStatement] = {}
    for f, name in files:
        if f.replace_bundled:
            out = {}
        refuse_duplicate_ids([s.id for s in f.statement], name, "evidence")
        for s in f.statement:
            problems = s.wording_problems()
            if problems:
                raise ConfigError(f"{name}: statement {s.id}: {'; '.join(problems)}")
            out[s.id] = s
    return list(out.values())


def select_evidence(
    statements: Sequence[EvidenceStatement],
    *,
    measured: Collection[str],
    flagged: Collection[str] = (),
    raised: Collection[str] = (),
    caveats: Collection[str] = (),
    on_treatment: bool = False,
    pregnancy_losses: int | None = None,
) -> list[EvidenceStatement]:
    """The statements relevant to a case, grouped by topic in :data:`TOPICS` order.

    Parameters
    ----------
    measured
        Measurand codes with a result in the report.
    flagged
        Measurand codes whose result is below or above its interval, or near a limit.
    raised
        Measurand codes whose result is above its interval or near its upper limit (what
        stress before a draw could explain; a low result it could not).
    caveats
        Codes of the pre-analytic caveats raised (e.g. ``"acute-exposure"``).
    on_treatment
        Whether a current corticosteroid or immunotherapy is recorded.
    pregnancy_losses
        The losses the case's indication records (None: not recorded). Statements about
        women with miscarriages (``show_when = ["pregnancy_loss"]``: the supportive-care
        baseline) are shown where at least one is recorded, or none is known: a patient with
        infertility and no loss was given another population's reassurance (audit 19).
    """

    def about(s: EvidenceStatement, codes: Collection[str]) -> bool:
        return not s.measurands or any(c in codes for c in s.measurands)

    def relevant(s: EvidenceStatement) -> bool:
        if s.measurands and not about(s, measured):
            return False
        for cond in s.show_when:
            if (
                cond == "always"
                or (cond == "measured" and about(s, measured))
                or (cond == "flagged" and about(s, flagged))
                or (cond == "raised" and about(s, raised))
                or (cond == "on_treatment" and on_treatment)
                or (cond == "pregnancy_loss" and (pregnancy_losses is None or pregnancy_losses > 0))
                or (cond.startswith("caveat:") and cond.split(":", 1)[1] in caveats)
            ):
                return True
        return False

    order = list(TOPICS)
    chosen = [s for s in statements if relevant(s)]
    return sorted(chosen, key=lambda s: order.index(s.topic))
