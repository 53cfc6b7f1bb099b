"""Microplate wells: names, and the geometry of 96- and 384-well plates.

A well is named by its row letter and column number. Instruments write ``A1``, ``A01``,
``a 1`` or ``A-01``; nkpanel normalises every form to ``A1``. A 96-well plate has rows A–H and
columns 1–12; a 384-well plate rows A–P and columns 1–24 (ANSI/SLAS 4-2004, well positions).
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["PLATE_SHAPES", "PlateFormat", "normalise_well", "plate_format_of", "well_name"]

PlateFormat = Literal[96, 384]
#: rows × columns of each plate format (ANSI/SLAS 4-2004)
PLATE_SHAPES: dict[int, tuple[int, int]] = {96: (8, 12), 384: (16, 24)}
_ROWS = "ABCDEFGHIJKLMNOP"
_WELL = re.compile(r"^\s*([A-Pa-p])\s*[-_ ]?\s*0*(\d{1,2})\s*$")


def well_name(row: int, column: int) -> str:
    """``(0, 0)`` → ``"A1"``: a zero-based row and column as a well name.

    Examples
    --------
    >>> well_name(7, 11)
    'H12'
    """
    return f"{_ROWS[row]}{column + 1}"


def normalise_well(text: str) -> str | None:
    """A well name in canonical form (``"a01"`` → ``"A1"``), or ``None`` when it is not one.

    Rows A–P and columns 1–24 are accepted (the largest plate nkpanel reads is 384 wells).

    Examples
    --------
    >>> normalise_well(" b-03 "), normalise_well("Z9"), normalise_well("A25")
    ('B3', None, None)
    """
    m = _WELL.match(text)
    if m is None:
        return None
    column = int(m.group(2))
    if not 1 <= column <= 24:
        return None
    return f"{m.group(1).upper()}{column}"


def plate_format_of(wells: list[str] | tuple[str, ...] | set[str]) -> PlateFormat:
    """The smallest plate format that holds every (canonical) well name given."""
    for fmt in (96, 384):
        n_rows, n_cols = PLATE_SHAPES[fmt]
        if all(_ROWS.index(w[0]) < n_rows and int(w[1:]) <= n_cols for w in wells):
            return 96 if fmt == 96 else 384
    return 384
