"""Plate reads: the instrument's export of one value per well, as a long table or a plate grid.

Two layouts are read, from CSV/TSV or XLSX:

* **long**: a header row naming a well column (``well``, ``well id``, ``position``…) and a value
  column (``value``, ``signal``, or a unit such as ``cpm``, ``counts``, ``RFU``, ``OD``), then
  one row per well. A unit may be given in the value header (``value (cpm)``) or a ``unit``
  column. The plain form ``well,value`` always works.
* **grid**: the plate as instrument software draws it: a row of column numbers ``1 … 12`` (96
  wells) or ``1 … 24`` (384 wells), and beneath it one row per plate row, headed by its letter.
  Lines above the grid (instrument, protocol, ``Unit: cpm``) are allowed.

A cell that cannot be used (text such as ``OVER`` in a numeric cell, a well listed twice, an empty
value in a long table) does not stop the plate: it is kept in :attr:`PlateReads.bad_cells`, and
only the samples that need that well fail, each with one line naming the file, the well and the
cause.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from nkpanel.cytotox._table import Cell, Table, cell_text, parse_number, read_table
from nkpanel.cytotox.wells import PLATE_SHAPES, PlateFormat, normalise_well, plate_format_of
from nkpanel.errors import InputError

__all__ = [
    "ASSAY_UNITS",
    "AssayKind",
    "PlateReads",
    "normalise_unit",
    "read_plate",
]

#: release assays nkpanel reads from plate exports; ``release`` when the kind is not stated
AssayKind = Literal["chromium51", "europium", "calcein", "ldh", "release"]

_UNIT_ALIASES: dict[str, tuple[str, ...]] = {
    "cpm": ("cpm", "ccpm", "counts per minute", "counts/min", "counts/minute"),
    "cps": ("cps", "counts per second", "counts/s", "counts/sec"),
    "dpm": ("dpm", "disintegrations per minute"),
    "counts": ("counts", "count", "trf counts", "trf", "tr-f counts", "time-resolved counts"),
    "rfu": ("rfu", "fluorescence", "fluorescence units", "relative fluorescence units", "fu"),
    "absorbance": ("absorbance", "od", "abs", "optical density", "a.u. (absorbance)"),
}
_ABSORBANCE = re.compile(r"^(od|a|abs|absorbance)\s*[-@ ]?\s*\d{3}(\s*nm)?$")
#: the units that fit each assay (51Cr: gamma counts; europium: time-resolved fluorescence
#: counts; calcein: fluorescence; LDH: absorbance of the formazan product)
ASSAY_UNITS: dict[str, frozenset[str]] = {
    "chromium51": frozenset({"cpm", "cps", "dpm", "counts"}),
    "europium": frozenset({"counts", "cps", "rfu"}),
    "calcein": frozenset({"rfu"}),
    "ldh": frozenset({"absorbance"}),
    "release": frozenset(_UNIT_ALIASES),
}
_WELL_HEADERS = ("well", "wellid", "wellposition", "wellname", "position", "pos")
_VALUE_HEADERS = ("value", "signal", "result", "reading", "raw", "measurement", "rawdata")
_HEADER_UNIT = re.compile(r"^(.*?)\s*[\(\[]\s*(.+?)\s*[\)\]]\s*$")
_UNIT_LINE = re.compile(r"^\s*units?\s*[:=]\s*(.+?)\s*$", re.IGNORECASE)


def _key(text: str) -> str:
    return re.sub(r"[\s_\-.:/]+", "", text).casefold()


def normalise_unit(text: str) -> str | None:
    """The canonical unit for an instrument's unit text, or ``None`` when it is unknown.

    Examples
    --------
    >>> normalise_unit("CPM"), normalise_unit("OD 490 nm"), normalise_unit("furlongs")
    ('cpm', 'absorbance', None)
    """
    t = " ".join(text.strip().casefold().split())
    for unit, aliases in _UNIT_ALIASES.items():
        if t in aliases or _key(t) in {_key(a) for a in aliases}:
            return unit
    if _ABSORBANCE.match(t):
        return "absorbance"
    return None


def _known_units() -> str:
    return "cpm, cps, dpm, counts, RFU, absorbance (OD, A490)"


@dataclass(frozen=True)
class PlateReads:
    """One value per well from a plate export.

    ``values`` holds every usable well (canonical names, e.g. ``"B3"``); ``bad_cells`` every
    well whose cell could not be used, with the cause in one line; ``notes`` the oddities that
    did not cost a well (rows that name no well, lines above a grid).
    """

    source: str
    values: Mapping[str, float]
    bad_cells: Mapping[str, str] = field(default_factory=dict)
    unit: str | None = None
    plate_format: PlateFormat = 96
    form: Literal["grid", "long", "memory"] = "memory"
    notes: tuple[str, ...] = ()

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, float], *, source: str = "memory", unit: str | None = None
    ) -> PlateReads:
        """Reads from a ``well → value`` mapping (well names in any accepted form).

        Raises
        ------
        InputError
            A key that is not a well name, or two keys naming one well.
        """
        out: dict[str, float] = {}
        for raw, value in values.items():
            well = normalise_well(raw)
            if well is None:
                raise InputError(source, f"{raw!r} is not a well name")
            if well in out:
                raise InputError(source, f"well {well}: given twice")
            out[well] = float(value)
        return cls(
            source,
            MappingProxyType(out),
            MappingProxyType({}),
            unit,
            plate_format_of(set(out)),
            "memory",
        )


@dataclass(frozen=True)
class _Grid:
    header_index: int  # index into table.rows
    label_col: int
    n_cols: int


def _int_cell(cell: Cell) -> int | None:
    text = cell_text(cell)
    if re.fullmatch(r"0*\d{1,2}(\.0+)?", text):
        return int(float(text))
    return None


def _grid_headers(table: Table) -> list[_Grid]:
    found: list[_Grid] = []
    for i, row in enumerate(table.rows):
        for j, cell in enumerate(row):
            if _int_cell(cell) != 1 or j == 0:
                continue
            run = 0
            while j + run < len(row) and _int_cell(row[j + run]) == run + 1:
                run += 1
            # a header is followed by the row headed A (a row of data 1 … 12 is not a header)
            nxt = table.rows[i + 1] if i + 1 < len(table.rows) else ()
            label = cell_text(nxt[j - 1]).upper() if j - 1 < len(nxt) else ""
            if run in (12, 24) and label == "A":
                found.append(_Grid(i, j - 1, run))
            break
    return found


def _unit_from_lines(rows: tuple[tuple[Cell, ...], ...]) -> str | None:
    for row in rows:
        texts = [cell_text(c) for c in row]
        for k, text in enumerate(texts):
            m = _UNIT_LINE.match(text)
            if m:
                return m.group(1)
            if _key(text) in ("unit", "units") and k + 1 < len(texts) and texts[k + 1]:
                return texts[k + 1]
    return None


def _read_grid(table: Table, grid: _Grid) -> tuple[dict[str, float], dict[str, str], list[str]]:
    values: dict[str, float] = {}
    bad: dict[str, str] = {}
    notes: list[str] = []
    max_rows = PLATE_SHAPES[384 if grid.n_cols == 24 else 96][0]
    letters = "ABCDEFGHIJKLMNOP"[:max_rows]
    n_rows = 0
    for k in range(grid.header_index + 1, len(table.rows)):
        row = table.rows[k]
        label = cell_text(row[grid.label_col]).upper() if grid.label_col < len(row) else ""
        if n_rows >= len(letters) or label != letters[n_rows]:
            break
        line = table.row_numbers[k]
        for c in range(grid.n_cols):
            col = grid.label_col + 1 + c
            cell = row[col] if col < len(row) else None
            well = f"{letters[n_rows]}{c + 1}"
            try:
                value = parse_number(cell, decimal_comma=table.decimal_comma)
            except ValueError:
                bad[well] = f"text {cell_text(cell)[:30]!r} in a numeric cell (line {line})"
                continue
            if value is not None:
                values[well] = value
        n_rows += 1
    if n_rows == 0:
        raise InputError(
            table.source,
            f"a row of column numbers 1–{grid.n_cols} (line "
            f"{table.row_numbers[grid.header_index]}) is not followed by a row headed A",
        )
    if n_rows < len(letters):
        notes.append(
            f"the plate grid has rows A–{letters[n_rows - 1]} only "
            f"(a {96 if grid.n_cols == 12 else 384}-well plate has A–{letters[-1]})"
        )
    return values, bad, notes


def _header_name_and_unit(text: str) -> tuple[str, str | None]:
    m = _HEADER_UNIT.match(text)
    if m:
        return _key(m.group(1)), m.group(2)
    return _key(text), None


def _find_long_header(table: Table) -> tuple[int, int, int, int | None, str | None] | None:
    """(row index, well column, value column, unit column, unit from the header) or None."""
    unit_keys = {_key(a) for aliases in _UNIT_ALIASES.values() for a in aliases}
    for i, row in enumerate(table.rows[:50]):
        texts = [cell_text(c) for c in row]
        well_cols = [j for j, t in enumerate(texts) if _key(t) in _WELL_HEADERS]
        if not well_cols:
            continue
        parsed = [_header_name_and_unit(t) for t in texts]
        value_cols = [j for j, (name, _) in enumerate(parsed) if name in _VALUE_HEADERS]
        if not value_cols:
            value_cols = [
                j
                for j, (name, _) in enumerate(parsed)
                if name in unit_keys or _ABSORBANCE.match(texts[j].casefold())
            ]
        if not value_cols:
            continue
        if len(value_cols) > 1:
            names = ", ".join(texts[j] for j in value_cols)
            raise InputError(
                table.source,
                f"line {table.row_numbers[i]}: several value columns ({names}); keep one, "
                "or name the one to use 'value'",
            )
        vcol = value_cols[0]
        name, unit = parsed[vcol]
        if unit is None and name not in _VALUE_HEADERS:
            unit = texts[vcol]  # the column is named by its unit, e.g. "CPM"
        unit_cols = [j for j, t in enumerate(texts) if _key(t) in ("unit", "units")]
        return i, well_cols[0], vcol, (unit_cols[0] if unit_cols else None), unit
    return None


def _read_long(
    table: Table, header: tuple[int, int, int, int | None, str | None]
) -> tuple[dict[str, float], dict[str, str], list[str], str | None]:
    start, wcol, vcol, ucol, unit = header
    values: dict[str, float] = {}
    bad: dict[str, str] = {}
    notes: list[str] = []
    seen: dict[str, int] = {}
    units: set[str] = set()
    for k in range(start + 1, len(table.rows)):
        row = table.rows[k]
        line = table.row_numbers[k]
        raw_well = cell_text(row[wcol]) if wcol < len(row) else ""
        cell = row[vcol] if vcol < len(row) else None
        if not raw_well:
            if cell_text(cell):
                notes.append(f"line {line}: a value without a well name; line ignored")
            continue
        well = normalise_well(raw_well)
        if well is None:
            notes.append(f"line {line}: {raw_well[:30]!r} is not a well name; line ignored")
            continue
        if well in seen:
            bad[well] = f"listed twice (lines {seen[well]} and {line})"
            values.pop(well, None)
            continue
        seen[well] = line
        if ucol is not None and ucol < len(row) and cell_text(row[ucol]):
            units.add(cell_text(row[ucol]))
        try:
            value = parse_number(cell, decimal_comma=table.decimal_comma)
        except ValueError:
            bad[well] = f"text {cell_text(cell)[:30]!r} in a numeric cell (line {line})"
            continue
        if value is None:
            bad[well] = f"the value cell is empty (line {line})"
            continue
        values[well] = value
    if len(units) > 1:
        raise InputError(table.source, f"mixed units in one plate: {', '.join(sorted(units))}")
    if units:
        (col_unit,) = units
        if unit is not None and normalise_unit(unit) != normalise_unit(col_unit):
            raise InputError(
                table.source, f"the value header says {unit!r} but the unit column {col_unit!r}"
            )
        unit = col_unit
    return values, bad, notes, unit


def _resolve_unit(source: str, found: str | None, given: str | None, kind: AssayKind) -> str | None:
    def canon(text: str, where: str) -> str:
        unit = normalise_unit(text)
        if unit is None:
            raise InputError(
                source, f"unknown unit {text!r} ({where}); known units: {_known_units()}"
            )
        return unit

    unit_found = canon(found, "in the file") if found is not None else None
    unit_given = canon(given, "given") if given is not None else None
    if unit_found and unit_given and unit_found != unit_given:
        raise InputError(source, f"the file says {found!r} but {given!r} was given")
    unit = unit_found or unit_given
    if unit is not None and unit not in ASSAY_UNITS[kind]:
        allowed = ", ".join(sorted(ASSAY_UNITS[kind]))
        raise InputError(
            source, f"unit {unit!r} does not fit a {kind} assay (expected one of: {allowed})"
        )
    return unit


def read_plate(
    path: str | Path,
    *,
    kind: AssayKind = "release",
    unit: str | None = None,
    sheet: str | None = None,
    grid: int | None = None,
) -> PlateReads:
    """Read a plate export (long table or plate grid; CSV, TSV or XLSX).

    Parameters
    ----------
    path
        The instrument's export.
    kind
        The assay, used to check the unit (51Cr in cpm, calcein in RFU, LDH in absorbance…).
    unit
        The unit of the values when the file does not say; when it does, the two must agree.
    sheet
        XLSX only: the sheet to read (the first by default).
    grid
        When a file holds several plate grids (several reads), the 1-based one to use.

    Returns
    -------
    PlateReads
        Usable values, unusable cells with their causes, the unit (``None`` when not stated).

    Raises
    ------
    InputError
        Unreadable or empty file or sheet; neither a grid nor a long table; several grids and no
        ``grid`` chosen; several value columns; an unknown unit, mixed units, or a unit that
        does not fit the assay; no well with a value. The message starts with the file.

    Examples
    --------
    >>> reads = read_plate("reads.csv", kind="chromium51", unit="cpm")  # doctest: +SKIP
    >>> reads.values["A1"]  # doctest: +SKIP
    412.0
    """
    table = read_table(path, sheet=sheet)
    grids = _grid_headers(table)
    notes: list[str] = []
    found_unit: str | None
    form: Literal["grid", "long"]
    if grids:
        if len(grids) > 1 and grid is None:
            lines = ", ".join(str(table.row_numbers[g.header_index]) for g in grids)
            raise InputError(
                table.source,
                f"holds {len(grids)} plate grids (header lines {lines}); choose one with "
                "--grid N or export one read per file",
            )
        if grid is not None and not 1 <= grid <= len(grids):
            raise InputError(
                table.source, f"grid {grid} asked for, but the file holds {len(grids)}"
            )
        chosen = grids[(grid or 1) - 1]
        values, bad, notes = _read_grid(table, chosen)
        found_unit = _unit_from_lines(table.rows[: chosen.header_index])
        form = "grid"
        fmt: PlateFormat = 96 if chosen.n_cols == 12 else 384
    else:
        header = _find_long_header(table)
        if header is None:
            raise InputError(
                table.source,
                "neither a plate grid (a row of column numbers 1–12 or 1–24 with row letters "
                "beside the rows) nor a long table (a header with a well column and a value "
                "column)",
            )
        values, bad, notes, found_unit = _read_long(table, header)
        form = "long"
        fmt = plate_format_of(set(values) | set(bad))
    if not values and not bad:
        raise InputError(table.source, "no well holds a value (empty plate)")
    resolved = _resolve_unit(table.source, found_unit, unit, kind)
    return PlateReads(
        source=table.source,
        values=MappingProxyType(values),
        bad_cells=MappingProxyType(bad),
        unit=resolved,
        plate_format=fmt,
        form=form,
        notes=tuple(notes),
    )
