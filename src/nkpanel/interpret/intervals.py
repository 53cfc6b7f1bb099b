"""Reference intervals and cutoffs are data: a bundled TOML file, replaced or extended by the
laboratory's own.

The bundled file (``reference_intervals.toml`` beside this module) holds every interval and
cutoff of the domain brief with its source, method and population, several per measurand where
sources disagree, and ``[defaults]`` naming the one the report applies. A lab file has the same
shape: an ``[[interval]]`` with a bundled ``id`` replaces it, a new ``id`` extends the set,
``[defaults]`` entries override, and ``replace_bundled = true`` starts from an empty set.

The text a report prints from a file (an interval's source, population, timing and note; the
sources of analytical CVs and sample-age limits) is held to nkpanel's wording rules
(:mod:`nkpanel.interpret.wording`) when the file is loaded: a file whose text diagnoses or
prescribes is refused with a :class:`~nkpanel.errors.ConfigError` naming the file and the entry.

Example::

    >>> from nkpanel.interpret import load_intervals
    >>> ivs = load_intervals()
    >>> ivs.default_for("pnk-per-ul").source
    'ARUP Laboratories, test 0092404'
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nkpanel._toml import load_toml_or_bundled, refuse_duplicate_ids, validate_toml
from nkpanel.errors import ConfigError
from nkpanel.interpret.measurands import MEASURANDS
from nkpanel.interpret.wording import SourceText, check_wording

__all__ = ["AnalyticalCV", "IntervalSet", "ReferenceInterval", "SampleAgeLimit", "load_intervals"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReferenceInterval(_Strict):
    """One interval or cutoff for one measurand, with where it comes from.

    Limits are inclusive: a value is *below* when it is less than ``lower`` and *above* when it
    is greater than ``upper``. A clinic cutoff such as ">12%" is ``upper = 12``.

    ``healthy_population`` is true only for a reference interval derived from healthy
    (reference) individuals; only then does the patient page say the range describes values
    seen in healthy adults.
    """

    id: str = Field(min_length=1, max_length=80)
    measurand: str
    kind: Literal["reference_interval", "clinic_cutoff"]
    lower: float | None = None
    upper: float | None = None
    unit: str
    method: str
    population: str
    source: SourceText
    cycle_timing: str | None = None
    lh_day_min: int | None = Field(default=None, ge=0, le=20)
    lh_day_max: int | None = Field(default=None, ge=0, le=20)
    cycle_day_min: int | None = Field(default=None, ge=1, le=60)
    cycle_day_max: int | None = Field(default=None, ge=1, le=60)
    #: the ages (years, inclusive) the interval's population covers, where its source says
    age_min: int | None = Field(default=None, ge=0, le=120)
    age_max: int | None = Field(default=None, ge=0, le=120)
    note: str = ""
    healthy_population: bool = False
    #: the upper limit itself lies outside ("normal <5%", Quenby 2005): a value equal to it is
    #: above; limits are otherwise inclusive
    upper_exclusive: bool = False

    @model_validator(mode="after")
    def _check(self) -> ReferenceInterval:
        if self.healthy_population and self.kind != "reference_interval":
            raise ValueError("healthy_population applies only to a reference_interval")
        if self.measurand not in MEASURANDS:
            raise ValueError(
                f"unknown measurand {self.measurand!r}; known: {', '.join(MEASURANDS)}"
            )
        expected = MEASURANDS[self.measurand].unit
        if self.unit != expected:
            raise ValueError(f"{self.measurand} is reported in {expected!r}, not {self.unit!r}")
        if self.lower is None and self.upper is None:
            raise ValueError("needs a lower limit, an upper limit, or both")
        if self.upper_exclusive and self.upper is None:
            raise ValueError("upper_exclusive needs an upper limit")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"lower {self.lower} is above upper {self.upper}")
        if (self.lh_day_min is None) != (self.lh_day_max is None):
            raise ValueError("lh_day_min and lh_day_max go together")
        if (self.cycle_day_min is None) != (self.cycle_day_max is None):
            raise ValueError("cycle_day_min and cycle_day_max go together")
        ages = (self.age_min, self.age_max)
        if ages[0] is not None and ages[1] is not None and ages[0] > ages[1]:
            raise ValueError(f"age_min {ages[0]} is above age_max {ages[1]}")
        return self

    @property
    def lh_window(self) -> tuple[int, int] | None:
        """The biopsy days (after the LH surge) to which the interval applies, if timed."""
        if self.lh_day_min is None or self.lh_day_max is None:
            return None
        return (self.lh_day_min, self.lh_day_max)

    @property
    def cycle_day_window(self) -> tuple[int, int] | None:
        """The cycle days to which the interval applies when only the cycle day is known."""
        if self.cycle_day_min is None or self.cycle_day_max is None:
            return None
        return (self.cycle_day_min, self.cycle_day_max)

    def describe(self, decimals: int = 1) -> str:
        """The interval as printed, e.g. ``"4.0–26.0 %"``, ``"≤ 12.0 % (clinic cutoff)"`` or,
        with its upper limit excluded, ``"< 5.0 % (clinic cutoff)"``."""
        unit = self.unit
        fmt = functools.partial(limit_text, decimals=decimals)
        if self.lower is not None and self.upper is not None:
            below = "under " if self.upper_exclusive else ""
            text = f"{fmt(self.lower)}–{below}{fmt(self.upper)} {unit}"
        elif self.upper is not None:
            text = f"{'<' if self.upper_exclusive else '≤'} {fmt(self.upper)} {unit}"
        else:
            assert self.lower is not None
            text = f"≥ {fmt(self.lower)} {unit}"
        return text + (" (clinic cutoff)" if self.kind == "clinic_cutoff" else "")


def limit_text(value: float, decimals: int) -> str:
    """A limit as printed: with the result's ``decimals``, or with its own digits where it was
    given more finely (a lab's upper limit 11.72 had been printed 11.7, and a result of 11.7
    compared with 11.72 read "within" against a limit the reader could not see: audit 32)."""
    for places in range(decimals, decimals + 7):
        text = f"{value:.{places}f}"
        if abs(float(text) - value) <= 1e-9 * max(1.0, abs(value)):
            return text
    return f"{value:.{decimals + 6}f}"


class AnalyticalCV(_Strict):
    """A measurand's analytical coefficient of variation, for "near a limit"."""

    measurand: str
    cv_percent: float = Field(gt=0, le=100)
    source: SourceText


class SampleAgeLimit(_Strict):
    """The oldest a specimen may be for a biomarker's assay (optionally per anticoagulant)."""

    biomarker: Literal["flow", "cytotoxicity"]
    anticoagulant: Literal["EDTA", "ACD", "heparin", "other"] | None = None
    max_hours: float = Field(gt=0)
    source: SourceText


class _File(_Strict):
    schema_: int = Field(default=1, alias="schema")
    replace_bundled: bool = False
    defaults: dict[str, str] = Field(default_factory=dict)
    interval: list[ReferenceInterval] = Field(default_factory=list)
    analytical_cv: list[AnalyticalCV] = Field(default_factory=list)
    sample_age: list[SampleAgeLimit] = Field(default_factory=list)


@dataclass(frozen=True)
class IntervalSet:
    """All intervals the report may use, the lab's default per measurand, and the files read."""

    intervals: Mapping[str, ReferenceInterval]
    defaults: Mapping[str, str]
    analytical_cv: Mapping[str, AnalyticalCV]
    sample_age: tuple[SampleAgeLimit, ...]
    files: tuple[str, ...] = field(default=())

    def for_measurand(self, code: str) -> list[ReferenceInterval]:
        """Every interval of a measurand, the default first."""
        default = self.defaults.get(code)
        ivs = [iv for iv in self.intervals.values() if iv.measurand == code]
        return sorted(ivs, key=lambda iv: (iv.id != default, iv.kind, iv.id))

    def default_for(self, code: str) -> ReferenceInterval | None:
        """The interval the lab applies to ``code``, or ``None`` when it chose none."""
        chosen = self.defaults.get(code)
        return self.intervals[chosen] if chosen is not None else None

    def cv_for(self, code: str) -> AnalyticalCV | None:
        return self.analytical_cv.get(code)

    def sample_age_limit(self, biomarker: str, anticoagulant: str | None) -> SampleAgeLimit | None:
        """The limit for this anticoagulant, else the biomarker's general limit."""
        own = [s for s in self.sample_age if s.biomarker == biomarker]
        exact = [s for s in own if anticoagulant is not None and s.anticoagulant == anticoagulant]
        general = [s for s in own if s.anticoagulant is None]
        found = exact or general
        return found[0] if found else None


def _wording_problems(f: _File) -> list[str]:
    """Each printed text of the file that breaks the wording rules, naming its entry."""
    found = []
    for iv in f.interval:
        for name in ("source", "population", "cycle_timing", "note"):
            text = getattr(iv, name) or ""
            for problem in check_wording(text):
                found.append(f"interval {iv.id!r} {name}: {problem}")
    for cv in f.analytical_cv:
        for problem in check_wording(cv.source):
            found.append(f"analytical_cv for {cv.measurand} source: {problem}")
    for age in f.sample_age:
        for problem in check_wording(age.source):
            found.append(f"sample_age for {age.biomarker} source: {problem}")
    return found


def _read(path: Path | None) -> tuple[_File, str]:
    what = "reference-interval file"
    data, name = load_toml_or_bundled(
        path, package="nkpanel.interpret", resource="reference_intervals.toml", what=what
    )
    f = validate_toml(_File, data, name, what)
    problems = _wording_problems(f)
    if problems:
        raise ConfigError(
            f"{name}: text the report would print breaks nkpanel's wording rules (it must not "
            f"diagnose or prescribe): {'; '.join(problems)}"
        )
    return f, name


def load_intervals(lab_file: Path | None = None) -> IntervalSet:
    """The bundled intervals, with ``lab_file`` (if given) replacing or extending them.

    Raises
    ------
    ConfigError
        An unreadable or invalid file, a duplicate ``id`` within one file, a default that
        names no interval of its measurand, or printed text that diagnoses or prescribes; the
        message names the file (and the entry).
    """
    files = [_read(None)]
    if lab_file is not None:
        files.append(_read(lab_file))
    intervals: dict[str, ReferenceInterval] = {}
    defaults: dict[str, str] = {}
    cvs: dict[str, AnalyticalCV] = {}
    ages: list[SampleAgeLimit] = []
    for f, name in files:
        if f.replace_bundled:
            intervals, defaults, cvs, ages = {}, {}, {}, []
        refuse_duplicate_ids([iv.id for iv in f.interval], name, "interval")
        for iv in f.interval:
            intervals[iv.id] = iv
        for code, chosen in f.defaults.items():
            if code not in MEASURANDS:
                raise ConfigError(f"{name}: [defaults] names unknown measurand {code!r}")
            defaults[code] = chosen
        for cv in f.analytical_cv:
            if cv.measurand not in MEASURANDS:
                raise ConfigError(f"{name}: analytical_cv for unknown measurand {cv.measurand!r}")
            cvs[cv.measurand] = cv
        if f.sample_age:
            keys = {(s.biomarker, s.anticoagulant) for s in f.sample_age}
            ages = [s for s in ages if (s.biomarker, s.anticoagulant) not in keys]
            ages += f.sample_age
    for code, chosen in list(defaults.items()):
        if chosen == "":
            del defaults[code]  # a lab may withdraw a default with an empty string
            continue
        found = intervals.get(chosen)
        if found is None or found.measurand != code:
            raise ConfigError(
                f"{files[-1][1]}: default for {code} is {chosen!r}, which is not an interval "
                f"of that measurand"
            )
    return IntervalSet(
        intervals=intervals,
        defaults=defaults,
        analytical_cv=cvs,
        sample_age=tuple(ages),
        files=tuple(name for _, name in files),
    )
