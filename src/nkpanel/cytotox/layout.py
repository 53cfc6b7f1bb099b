"""Plate layouts: what each well holds (its role, sample, effector:target ratio and treatment).

A layout is a table (CSV, TSV or XLSX) with one row per used well. The plain form always works::

    well,sample,role,ratio,treatment
    A1,,spontaneous,,none
    A4,,maximum,,none
    B1,P01,test,50,none
    B4,P01,test,50,IVIG 2 mg/mL

Columns (names are matched ignoring case, spaces and punctuation):

``well`` (required)
    ``A1``, ``A01``, ``a 1`` … (96- or 384-well plates).
``role`` (required)
    ``spontaneous`` (targets alone), ``maximum`` (targets with detergent), ``test`` (effectors
    + targets), ``blank`` (medium alone), ``effector_spontaneous`` (effectors alone, at a ratio;
    LDH and calcein assays), or ``empty``/blank cell for an unused well.
``sample``
    The effector sample (one plate may hold several patients). Spontaneous and maximum wells
    without a sample are plate-wide controls shared by every sample; blank wells are always
    pooled plate-wide (medium alone belongs to no sample).
``ratio``
    Effectors per target: ``50`` or ``50:1``. Required on test wells.
``treatment``
    ``none`` or an agent with its concentration: ``IVIG 2 mg/mL``, ``intralipid 18 mg/mL``
    (mg/mL, g/L or µg/mL). Controls without a treatment serve every treatment of their sample.
``replicate``
    The replicate number (optional; wells of one sample, treatment and ratio are replicates).

A row that cannot be used does not stop the plate: it is recorded as a
:class:`LayoutProblem` naming the well and the cause, and only the samples that need it fail.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nkpanel.cytotox._table import Cell, Table, cell_text, parse_number, read_table
from nkpanel.errors import InputError

__all__ = [
    "LayoutProblem",
    "LayoutWell",
    "PlateLayout",
    "Role",
    "Treatment",
    "parse_ratio",
    "parse_role",
    "parse_treatment",
    "read_layout",
]

Role = Literal["spontaneous", "maximum", "test", "blank", "effector_spontaneous"]

_ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "spontaneous": (
        "spontaneous",
        "spont",
        "s",
        "sr",
        "targets alone",
        "target alone",
        "targets only",
        "target only",
        "target spontaneous",
        "spontaneous release",
        "minimum",
        "min",
    ),
    "maximum": (
        "maximum",
        "max",
        "m",
        "mr",
        "maximal",
        "maximum release",
        "total",
        "total release",
        "detergent",
        "triton",
        "target maximum",
    ),
    "test": ("test", "e", "experimental", "effector+target", "effectors+targets", "et", "tested"),
    "blank": ("blank", "medium", "media", "medium blank", "background", "bkg", "culture medium"),
    "effector_spontaneous": (
        "effector spontaneous",
        "effector_spontaneous",
        "effectors alone",
        "effector alone",
        "effector control",
        "effectors only",
    ),
}
_UNUSED = ("", "empty", "unused", "none", "-", "na", "n/a")
_NO_TREATMENT = (
    "",
    "none",
    "no",
    "untreated",
    "medium",
    "media",
    "-",
    "nil",
    "no treatment",
    "control",
    "0",
)
_AGENTS = {
    "ivig": "IVIG",
    "igiv": "IVIG",
    "intravenousimmunoglobulin": "IVIG",
    "intralipid": "intralipid",
    "intralipid20": "intralipid",
    "lipidemulsion": "intralipid",
}
#: concentration units → factor to mg/mL
_CONC_UNITS = {
    "mg/ml": 1.0,
    "g/l": 1.0,
    "mg/cc": 1.0,
    "µg/ml": 1e-3,
    "μg/ml": 1e-3,
    "ug/ml": 1e-3,
    "mcg/ml": 1e-3,
    "mg/l": 1e-3,
}
_TREATMENT = re.compile(
    r"^(?P<agent>.*?\S)(?:\s+|\s*[(\[]\s*)(?P<num>\d+(?:[.,]\d+)?)\s*"
    r"(?P<unit>[^()\[\]]*?)\s*[)\]]?$"
)
_HEADERS: dict[str, tuple[str, ...]] = {
    "well": ("well", "wellid", "wellposition", "wellname", "position", "pos"),
    "role": ("role", "type", "welltype", "content", "wellrole"),
    "sample": ("sample", "sampleid", "patient", "patientid", "donor", "effector", "effectors"),
    "ratio": (
        "ratio",
        "et",
        "etratio",
        "effectortarget",
        "effectortotarget",
        "effectortargetratio",
    ),
    "treatment": ("treatment", "condition", "additive", "agent"),
    "replicate": ("replicate", "rep", "replicatenumber", "repl"),
}


def _key(text: str) -> str:
    return re.sub(r"[\s_\-.:/+]+", "", text).casefold()


def parse_role(text: str) -> Role | None:
    """The role a layout cell names, ``None`` for an unused well.

    Raises
    ------
    ValueError
        Text that names no role.

    Examples
    --------
    >>> parse_role("Targets alone"), parse_role("MAX"), parse_role("")
    ('spontaneous', 'maximum', None)
    """
    t = " ".join(text.strip().casefold().split())
    if t in _UNUSED:
        return None
    for role, aliases in _ROLE_ALIASES.items():
        if t in aliases or _key(t) in {_key(a) for a in aliases}:
            return role  # type: ignore[return-value]
    raise ValueError(
        f"unknown role {text.strip()[:30]!r} (expected spontaneous, maximum, test, blank, "
        "effector_spontaneous or empty)"
    )


def parse_ratio(text: str | float) -> float:
    """Effectors per target from ``50``, ``"50"``, ``"50:1"`` or ``"12.5:1"``.

    Raises
    ------
    ValueError
        Not a positive finite number or ``E:T`` pair.

    Examples
    --------
    >>> parse_ratio("12.5:1"), parse_ratio(25.0)
    (12.5, 25.0)
    """
    if isinstance(text, float | int):
        value = float(text)
    else:
        t = text.strip().replace(",", ".")
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*[:/]\s*(\d+(?:\.\d+)?)", t)
        if m:
            den = float(m.group(2))
            if den <= 0:
                raise ValueError(f"ratio {text!r} divides by zero")
            value = float(m.group(1)) / den
        else:
            try:
                value = float(t)
            except ValueError:
                raise ValueError(
                    f"ratio {text.strip()[:30]!r} is not a number or E:T pair"
                ) from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"ratio {text!r} is not a positive number")
    return value


@dataclass(frozen=True)
class Treatment:
    """What was added to the wells: ``none``, or an agent and its concentration in mg/mL."""

    agent: str = "none"
    mg_per_ml: float | None = None

    @property
    def is_none(self) -> bool:
        return self.agent == "none"

    @property
    def label(self) -> str:
        """``"none"``, ``"IVIG 2 mg/mL"``, or the agent alone when no concentration is given."""
        if self.mg_per_ml is None:
            return self.agent
        return f"{self.agent} {self.mg_per_ml:g} mg/mL"


def parse_treatment(text: str) -> Treatment:
    """A treatment from a layout cell: ``none``, ``IVIG 2 mg/mL``, ``Intralipid (18 mg/ml)``.

    Concentrations in g/L are read as mg/mL (equal), and µg/mL are converted.

    Raises
    ------
    ValueError
        A concentration without a unit, or a unit that is not a mass concentration (e.g. ``%``:
        give the concentration in the well in mg/mL).

    Examples
    --------
    >>> parse_treatment("ivig 2000 ug/ml").label, parse_treatment("Untreated").label
    ('IVIG 2 mg/mL', 'none')
    """
    t = " ".join(text.strip().split())
    if t.casefold() in _NO_TREATMENT:
        return Treatment()
    m = _TREATMENT.match(t)
    if m is None:
        agent = _AGENTS.get(_key(t), t)
        return Treatment(agent, None)
    agent_text = m.group("agent").strip()
    agent = _AGENTS.get(_key(agent_text), agent_text)
    unit_text = m.group("unit").replace(" ", "").casefold()
    if not unit_text:
        raise ValueError(f"treatment {t!r}: concentration {m.group('num')} has no unit (mg/mL)")
    factor = _CONC_UNITS.get(unit_text)
    if factor is None:
        raise ValueError(
            f"treatment {t!r}: unknown concentration unit {m.group('unit').strip()!r} "
            "(expected mg/mL, g/L or µg/mL)"
        )
    value = float(m.group("num").replace(",", ".")) * factor
    return Treatment(agent, value)


@dataclass(frozen=True)
class LayoutWell:
    """One used well of the layout."""

    well: str
    role: Role
    sample: str
    treatment: Treatment
    ratio: float | None
    replicate: int | None
    line: int


@dataclass(frozen=True)
class LayoutProblem:
    """A layout row that cannot be used: the well (when known), its sample, and the cause."""

    well: str | None
    sample: str
    cause: str
    line: int | None = None


@dataclass(frozen=True)
class PlateLayout:
    """A plate's wells with their roles, and the rows that could not be used."""

    source: str
    wells: tuple[LayoutWell, ...]
    problems: tuple[LayoutProblem, ...] = ()
    notes: tuple[str, ...] = ()
    #: the file says it was generated by nkpanel (a SYNTHETIC line at its top)
    synthetic: bool = False

    @classmethod
    def from_rows(
        cls, rows: Iterable[Mapping[str, object]], *, source: str = "memory"
    ) -> PlateLayout:
        """A layout from dictionaries keyed by column name (``well``, ``role``, ``sample``…)."""
        rows = list(rows)
        columns: list[str] = []
        for r in rows:
            columns += [str(k) for k in r if str(k) not in columns]
        cells: list[tuple[Cell, ...]] = [tuple(columns)]
        for r in rows:
            cells.append(tuple(_as_cell(r.get(c)) for c in columns))
        table = Table(source, tuple(cells), tuple(range(1, len(cells) + 1)))
        return _parse_layout(table)

    @property
    def samples(self) -> tuple[str, ...]:
        """Samples with test wells, in layout order."""
        return tuple(dict.fromkeys(w.sample for w in self.wells if w.role == "test"))


def _as_cell(value: object) -> Cell:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    return text or None


def _find_columns(table: Table) -> tuple[int, dict[str, int], list[str]]:
    for i, row in enumerate(table.rows[:20]):
        keys = [_key(cell_text(c)) for c in row]
        found: dict[str, int] = {}
        for name, aliases in _HEADERS.items():
            for j, k in enumerate(keys):
                if k in aliases and name not in found:
                    found[name] = j
        if "well" in found and "role" in found:
            known = set(found.values())
            extra = [cell_text(row[j]) for j in range(len(row)) if j not in known and keys[j]]
            return i, found, extra
    first = ", ".join(cell_text(c) for c in table.rows[0] if cell_text(c))[:120]
    raise InputError(
        table.source,
        f"no header with 'well' and 'role' columns (first row: {first}); a layout needs at least "
        "well,role and, for test wells, sample and ratio",
    )


def _parse_layout(table: Table) -> PlateLayout:
    from nkpanel.cytotox.wells import normalise_well

    start, cols, extra = _find_columns(table)
    notes = [f"column(s) not used: {', '.join(extra)}"] if extra else []
    wells: list[LayoutWell] = []
    problems: list[LayoutProblem] = []
    first_line: dict[str, int] = {}
    first_sample: dict[str, str] = {}
    duplicated: set[str] = set()

    def get(row: tuple[Cell, ...], name: str) -> Cell:
        j = cols.get(name)
        return row[j] if j is not None and j < len(row) else None

    for k in range(start + 1, len(table.rows)):
        row = table.rows[k]
        line = table.row_numbers[k]
        raw_well = cell_text(get(row, "well"))
        sample = cell_text(get(row, "sample"))
        if not raw_well:
            if any(cell_text(c) for c in row):
                problems.append(LayoutProblem(None, sample, "a row without a well name", line))
            continue
        well = normalise_well(raw_well)
        if well is None:
            problems.append(
                LayoutProblem(None, sample, f"{raw_well[:30]!r} is not a well name", line)
            )
            continue
        if well in first_line:
            duplicated.add(well)
            problems.append(
                LayoutProblem(
                    well, sample, f"assigned twice (lines {first_line[well]} and {line})", line
                )
            )
            if first_sample[well] != sample:
                problems.append(
                    LayoutProblem(
                        well,
                        first_sample[well],
                        f"assigned twice (lines {first_line[well]} and {line})",
                        first_line[well],
                    )
                )
            continue
        first_line[well] = line
        first_sample[well] = sample
        try:
            role = parse_role(cell_text(get(row, "role")))
        except ValueError as exc:
            problems.append(LayoutProblem(well, sample, str(exc), line))
            continue
        if role is None:
            continue
        ratio: float | None = None
        ratio_cell = get(row, "ratio")
        if role in ("test", "effector_spontaneous"):
            if not cell_text(ratio_cell):
                problems.append(
                    LayoutProblem(well, sample, f"{role} well without an E:T ratio", line)
                )
                continue
            try:
                ratio = parse_ratio(
                    ratio_cell if isinstance(ratio_cell, float) else cell_text(ratio_cell)
                )
            except ValueError as exc:
                problems.append(LayoutProblem(well, sample, str(exc), line))
                continue
        if role in ("test", "effector_spontaneous") and not sample:
            problems.append(LayoutProblem(well, "", f"{role} well without a sample id", line))
            continue
        try:
            treatment = parse_treatment(cell_text(get(row, "treatment")))
        except ValueError as exc:
            problems.append(LayoutProblem(well, sample, str(exc), line))
            continue
        replicate: int | None = None
        rep_cell = get(row, "replicate")
        try:
            rep = parse_number(rep_cell)
        except ValueError:
            rep = math.nan
        if rep is not None:
            if not (math.isfinite(rep) and rep >= 1 and rep == int(rep)):
                problems.append(
                    LayoutProblem(
                        well,
                        sample,
                        f"replicate {cell_text(rep_cell)[:20]!r} is not a whole number ≥ 1",
                        line,
                    )
                )
                continue
            replicate = int(rep)
        wells.append(LayoutWell(well, role, sample, treatment, ratio, replicate, line))
    wells = [w for w in wells if w.well not in duplicated]
    if not wells and not problems:
        raise InputError(table.source, "the layout assigns no well (every role is empty)")
    return PlateLayout(
        table.source, tuple(wells), tuple(problems), tuple(notes), table.says_synthetic
    )


def read_layout(path: str | Path, *, sheet: str | None = None) -> PlateLayout:
    """Read a plate layout (CSV, TSV or XLSX; see the module docstring for its columns).

    Raises
    ------
    InputError
        Unreadable or empty file, no header with ``well`` and ``role`` columns, or no used
        well. Problems of single rows are returned in :attr:`PlateLayout.problems`.

    Examples
    --------
    >>> layout = read_layout("layout.csv")  # doctest: +SKIP
    >>> layout.samples  # doctest: +SKIP
    ('P01', 'P02')
    """
    return _parse_layout(read_table(path, sheet=sheet))
