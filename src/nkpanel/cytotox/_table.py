"""Reading a table of cells from CSV/TSV text or an XLSX sheet, with the row numbers a person sees.

Plate-reader and gamma-counter software export CSV (comma, semicolon or tab separated) or
XLSX; plate layouts come the same ways. This module only turns a file into rows of cells; what
the cells mean is decided by :mod:`nkpanel.cytotox.reads` and :mod:`nkpanel.cytotox.layout`.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

from nkpanel.errors import InputError, one_line, option_or_key

__all__ = ["Cell", "Table", "cell_text", "parse_number", "read_table"]

#: a cell as read: text (CSV, or text in a sheet), a number (a numeric XLSX cell), or empty
Cell = str | float | None
_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
_SHEET_SUFFIXES = (".xlsx", ".xlsm")


@dataclass(frozen=True)
class Table:
    """Rows of cells; ``row_numbers[i]`` is the 1-based line or sheet row of ``rows[i]``."""

    source: str
    rows: tuple[tuple[Cell, ...], ...]
    row_numbers: tuple[int, ...]
    decimal_comma: bool = False
    #: how the file's numbers were read, where that was a guess a person should check
    number_note: str | None = None
    #: read from a workbook's sheet (whose empty cells may be Excel errors or formulas)
    from_sheet: bool = False
    #: numbers whose dots may group thousands or mark decimals, the file not saying which:
    #: not read (:func:`parse_number` ``unsure_dots``)
    unsure_dots: bool = False

    def number(self, cell: Cell) -> float | None:
        """A cell's number as this table writes its numbers (:func:`parse_number`)."""
        return parse_number(cell, decimal_comma=self.decimal_comma, unsure_dots=self.unsure_dots)

    @property
    def says_synthetic(self) -> bool:
        """Whether the first rows carry a SYNTHETIC mark, as every table nkpanel generates
        does (:mod:`nkpanel.cytotox.simulate`), so that results from it are labelled so."""
        return any("SYNTHETIC" in cell_text(c).upper() for row in self.rows[:3] for c in row)


def cell_text(cell: Cell) -> str:
    """A cell as stripped text (``""`` when empty; numbers in ``%g`` form)."""
    if cell is None:
        return ""
    if isinstance(cell, float):
        return format(cell, "g")
    return cell.strip()


def parse_number(
    cell: Cell, *, decimal_comma: bool = False, unsure_dots: bool = False
) -> float | None:
    """A cell's number, ``None`` when the cell is empty.

    Raises
    ------
    ValueError
        The cell holds text that is not a finite number (e.g. ``"OVER"``, ``"n/a"``).

    Examples
    --------
    >>> parse_number("1234.5"), parse_number(""), parse_number("12,5", decimal_comma=True)
    (1234.5, None, 12.5)
    """
    if cell is None:
        return None
    if isinstance(cell, float):
        if not math.isfinite(cell):
            raise ValueError(str(cell))
        return cell
    text = cell.strip()
    if not text:
        return None
    if unsure_dots and "," not in text and _THOUSANDS.match(text):
        raise ValueError(text)  # "2.919": 2919 or 2.919, the file does not say
    if decimal_comma:
        # a European export: the comma is the decimal mark, a dot only groups thousands
        # ("1.336,87"; "6.000" is six thousand)
        if "." in text and not _THOUSANDS.match(text):
            raise ValueError(text)
        text = text.replace(".", "").replace(",", ".")
    value = float(text)  # raises ValueError for text
    if not math.isfinite(value):
        raise ValueError(text)
    return value


#: a number written with a comma decimal mark ("1336,87", "1.336,87")
_COMMA_DECIMAL = re.compile(r"^-?\d[\d.]*,\d+$")
#: a comma that may as well group thousands ("3,082", as Excel writes 3082 in tab text)
_COMMA_AMBIGUOUS = re.compile(r"^-?[1-9]\d{0,2},\d{3}$")
#: a number written with a dot decimal mark that cannot be a thousands group ("12.5", "0.875")
_DOT_DECIMAL = re.compile(r"^-?\d+\.\d+$")
#: dots grouping thousands ("6.000", "1.336,87")
_THOUSANDS = re.compile(r"^-?[1-9]\d{0,2}(\.\d{3})+(,\d+)?$")


def _number_format(rows: list[tuple[Cell, ...]], delim: str) -> tuple[bool, bool, str | None]:
    """How a text table writes its numbers: (decimal commas, dots left unread, a note).

    Decimal commas are possible wherever the delimiter is not a comma (semicolon and tab
    exports of European plate readers: audit 20 found tab files failing well by well). They
    are taken to be the decimal mark where the numbers that leave no doubt ("1336,87",
    "1.336,87"; not "3,082", which may group thousands) outnumber those with a dot decimal
    ("12.5") and those whose dots may group thousands ("1.250"): one stray cell (a version
    "3.12" in a header line) no longer decides a file (reviews 21, 22). Where a few sure
    commas stand beside many "2.919"-like numbers and no dot decimal, the file does not say
    whether those are thousands (counts) or decimals (absorbances): they are not read, and
    said (review 23). Where the choice is a guess, a note says so."""
    if delim == ",":  # the commonest case: no cell need be looked at
        return False, False, None
    cells = [c for row in rows for c in row if isinstance(c, str)]
    commas = [c for c in cells if _COMMA_DECIMAL.match(c)]
    sure = [c for c in commas if not _COMMA_AMBIGUOUS.match(c)]
    dots = [c for c in cells if _DOT_DECIMAL.match(c) and not _THOUSANDS.match(c)]
    grouped = [c for c in cells if _THOUSANDS.match(c) and "," not in c]
    if sure and len(sure) > len(dots) and len(sure) >= len(grouped):
        return True, False, None
    if sure and not dots:
        return (
            True,
            True,
            (
                f"numbers such as {grouped[0]!r} are not read: with decimal commas elsewhere in "
                f"the file ({sure[0]!r}) the dot would group thousands "
                f"({grouped[0].replace('.', '')}), without them it would be a decimal point "
                f"({float(grouped[0]):g}); export the file with one decimal mark and no thousands "
                "separator"
            ),
        )
    if sure:
        return (
            False,
            False,
            (
                f"numbers such as {sure[0]!r} have a decimal comma where more have a dot: read "
                "with the dot (cells with a comma are not read); check the file's number format"
            ),
        )
    if commas and not dots:
        return (
            False,
            False,
            (
                f"numbers such as {commas[0]!r} are not read: the comma may be a decimal mark or "
                "group thousands; export the file with one decimal mark and no thousands separator"
            ),
        )
    if delim == ";" and grouped and not dots:
        return (
            False,
            False,
            (
                f"numbers such as {grouped[0]!r} were read with '.' as the decimal point "
                f"({float(grouped[0]):g}); in a European export they may be thousands "
                f"({grouped[0].replace('.', '')}): check the file's number format"
            ),
        )
    return False, False, None


def _sniff_delimiter(lines: list[str]) -> str:
    sample = [ln for ln in lines[:50] if ln.strip()]
    best, best_score = ",", -1
    for delim in (",", ";", "\t"):
        counts = [ln.count(delim) for ln in sample]
        score = sum(1 for c in counts if c > 0)
        if score > best_score:
            best, best_score = delim, score
    return best


def _read_text(path: Path) -> Table:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the file ({exc.strerror or exc})") from None
    for encoding in ("utf-8-sig", "utf-16", "latin-1"):
        if encoding == "utf-16" and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            continue
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - latin-1 decodes every byte
        raise InputError(path, "not a text file")
    if "\x00" in text:
        raise InputError(path, "not a text table (binary content); export CSV or XLSX")
    lines = text.splitlines()
    delim = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(lines)
    rows: list[tuple[Cell, ...]] = []
    numbers: list[int] = []
    for i, row in enumerate(csv.reader(lines, delimiter=delim), start=1):
        cells: tuple[Cell, ...] = tuple(c.strip() or None for c in row)
        if any(c is not None for c in cells):
            rows.append(cells)
            numbers.append(i)
    comma, unsure, note = _number_format(rows, delim)
    return Table(
        str(path),
        tuple(rows),
        tuple(numbers),
        decimal_comma=comma,
        number_note=note,
        unsure_dots=unsure,
    )


def _xlsx_cell(value: object) -> Cell:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        v = float(value)
        return None if math.isnan(v) else v
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    text = str(value).strip()
    return text or None


def _read_sheet(path: Path, sheet: str | None) -> Table:
    import zipfile

    import pandas as pd

    if not zipfile.is_zipfile(path):  # pandas' own message asks to choose an "engine"
        why = "not a zip archive: empty, damaged, or another kind of file named .xlsx"
        raise InputError(path, f"not a readable XLSX workbook ({why})")
    try:
        book = pd.read_excel(path, sheet_name=None, header=None, dtype=object)
    except ImportError as exc:
        raise InputError(path, f"reading XLSX needs openpyxl ({exc})") from None
    except Exception as exc:  # zip, XML and openpyxl errors all mean "unreadable"
        msg = one_line(exc)[:120]
        raise InputError(path, f"not a readable XLSX workbook ({msg})") from None
    names = list(book)
    if not names:
        raise InputError(path, "the workbook holds no sheet")
    if sheet is None:
        chosen = names[0]
    elif sheet in book:
        chosen = sheet
    else:
        raise InputError(path, f"no sheet named {sheet!r}; sheets are {', '.join(names)}")
    frame = book[chosen]
    rows: list[tuple[Cell, ...]] = []
    numbers: list[int] = []
    for i, values in enumerate(frame.itertuples(index=False, name=None), start=1):
        cells = tuple(_xlsx_cell(v) for v in values)
        if any(c is not None for c in cells):
            rows.append(cells)
            numbers.append(i)
    source = f"{path} [sheet {chosen}]"
    if not rows:
        others = [n for n in names if n != chosen and not book[n].dropna(how="all").empty]
        hint = f"; data found on sheet {others[0]!r} (choose it with --sheet)" if others else ""
        raise InputError(source, f"the sheet is empty{hint}")
    return Table(source, tuple(rows), tuple(numbers), from_sheet=True)


def read_table(path: str | Path, *, sheet: str | None = None) -> Table:
    """Read a CSV/TSV/TXT file or one XLSX sheet into rows of cells; empty rows are skipped.

    Parameters
    ----------
    path
        The file; its suffix decides how it is read.
    sheet
        XLSX only: the sheet to read (the first sheet by default).

    Raises
    ------
    InputError
        Missing or unreadable file, an unsupported format (``.xls``: save as XLSX or CSV), or a
        file or sheet without any non-empty cell.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        raise InputError(p, "is a folder: give the file (CSV, TSV, TXT or XLSX)")
    if not p.is_file():
        raise InputError(p, "file not found")
    if suffix in _SHEET_SUFFIXES:
        return _read_sheet(p, sheet)
    if sheet is not None:
        named = option_or_key("--sheet/--layout-sheet", "sheet/layout_sheet")
        raise InputError(
            p, f"a sheet ({sheet!r}) was named by {named}, but only an XLSX workbook has sheets"
        )
    if suffix == ".xls":
        raise InputError(p, "legacy .xls workbooks are not read; save the sheet as XLSX or CSV")
    if suffix not in _TEXT_SUFFIXES:
        raise InputError(p, f"unknown file type {p.suffix!r}; expected CSV, TSV, TXT or XLSX")
    table = _read_text(p)
    if not table.rows:
        raise InputError(p, "the file is empty (no cell holds a value)")
    return table
