"""Method notes: how far nkpanel's own measurement methods have been validated, as data.

A note belongs to one or more measurands and, optionally, to the results whose method text
contains a phrase (``"automated"``: the uNK image-analysis count, not a lab's manual count). Every
result it applies to carries it as a caveat: the clinician report prints the note with its
source, the patient page a plain version. The numbers live in the bundled
``method_notes.toml`` with their source, never in a template.

Example::

    >>> from nkpanel.interpret.method_notes import load_method_notes
    >>> [n.id for n in load_method_notes()]
    ['unk-automated-count-not-validated']
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nkpanel._toml import load_bundled_toml, refuse_duplicate_ids, validate_toml
from nkpanel.errors import ConfigError
from nkpanel.interpret.measurands import known_codes
from nkpanel.interpret.wording import SourceText, check_wording

__all__ = ["MethodFigure", "MethodNote", "load_method_notes", "notes_for"]


class MethodFigure(BaseModel):
    """One figure of merit behind a note: what was measured, the value, and the goal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    what: str = Field(min_length=3)
    measured: float
    goal: float | None = None


class MethodNote(BaseModel):
    """One note on a method's validation, with its source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=80)
    measurands: tuple[str, ...] = Field(min_length=1)
    method_contains: str = ""
    text: str = Field(min_length=10)
    plain: str = Field(min_length=10)
    source: SourceText
    figures: tuple[MethodFigure, ...] = ()

    @field_validator("measurands")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return known_codes(v)

    def applies_to(self, code: str, method: str) -> bool:
        """Whether the note concerns a result of ``code`` measured by ``method``."""
        return code in self.measurands and self.method_contains.casefold() in method.casefold()


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_: int = Field(default=1, alias="schema")
    note: list[MethodNote] = Field(default_factory=list)


@cache
def load_method_notes() -> tuple[MethodNote, ...]:
    """The bundled method notes.

    Raises
    ------
    ConfigError
        An invalid file, a duplicate id, or a note whose wording diagnoses or prescribes.
    """
    what = "method-notes file"
    data, name = load_bundled_toml("nkpanel.interpret", "method_notes.toml", what)
    f = validate_toml(_File, data, name, what)
    refuse_duplicate_ids([n.id for n in f.note], name, "method-note")
    for n in f.note:
        problems = check_wording(n.text) + check_wording(n.plain)
        if problems:
            raise ConfigError(f"{name}: note {n.id}: {'; '.join(problems)}")
    return tuple(f.note)


def notes_for(
    code: str, method: str, notes: Sequence[MethodNote] | None = None
) -> list[MethodNote]:
    """The notes that apply to a result of ``code`` measured by ``method``."""
    return [
        n for n in (load_method_notes() if notes is None else notes) if n.applies_to(code, method)
    ]
