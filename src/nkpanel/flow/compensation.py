"""Spillover compensation: observed = true · S, so true = observed · S⁻¹.

``S[i, j]`` is the fraction of dye ``i``'s signal seen in detector ``j`` (the $SPILLOVER layout of
FCS 3.1 and the ``spectrumMatrix`` of Gating-ML 2.0, one row per dye).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from nkpanel._threads import for_row_blocks
from nkpanel.errors import CompensationError
from nkpanel.flow.sample import (
    COMPENSATED_EXPORT,
    SCATTER_OR_TIME,
    SPILLOVER_KEYWORDS,
    FlowSample,
    Spillover,
    names_only_spillover,
    spillover_keyword,
    unit_diagonal,
)

__all__ = [
    "ANALOG_CYTOMETERS",
    "BLOCK_ROWS",
    "CompensatedColumns",
    "analog_compensation",
    "compensate",
    "detector_columns",
    "read_spillover_csv",
    "spectral_unmixing",
    "unlisted_compensation",
    "unmixing",
]

#: instruments whose signal electronics subtract spillover before the values are recorded, so
#: their files carry no spillover matrix: BD's analog FACScan, FACSort and FACSCalibur
#: (CellQuest), by $CYT
#: (whole words: the digital FACSCanto is no FACScan)
ANALOG_CYTOMETERS = re.compile(r"\bFACS\s*(?:Calibur|can|ort)\b", re.IGNORECASE)


def analog_compensation(sample: FlowSample) -> str | None:
    """How ``sample``'s fluorescence was compensated by the instrument at acquisition, or
    ``None`` when nothing says it was.

    Analog instruments (BD FACScan, FACSort, FACSCalibur) subtract spillover in their signal
    electronics, with the percentages set on the instrument, and record compensated values
    with no spillover keyword; FlowJo Collector's Edition on upgraded analog cytometers (Cytek
    xP5) writes the matrix it applied as ``ANALOG_COMP``. nkpanel can neither redo nor check
    such compensation.
    """
    if "analog_comp" in sample.metadata:
        return "compensated at acquisition by the instrument (ANALOG_COMP in the file)"
    cyt = sample.metadata.get("cyt", "")
    if ANALOG_CYTOMETERS.search(cyt):
        return f"compensated at acquisition by the {cyt.strip()}'s analog electronics"
    # every fluorescence channel a compensated export ("Comp-FITC-A"): compensated before
    # the file was written, as analog data are (audit 33: withheld as "uncompensated")
    fluor = [c.pnn for c in sample.channels if not SCATTER_OR_TIME.match(c.pnn)]
    if fluor and all(COMPENSATED_EXPORT.match(f) for f in fluor):
        return (
            f"compensated before export (channels named {fluor[0]}…, as FACSDiva and FlowJo "
            "write compensated values)"
        )
    return None


#: full-spectrum cytometers, whose software unmixes each event's spectrum into dye abundances
#: before export (Cytek Aurora and Northern Lights, NL-3000, with SpectroFlo; Sony ID7000,
#: SP6500/SP6800; BD FACSDiscover and FACSymphony A5 SE): their fluorescence channels are
#: unmixed, not raw detectors a spillover matrix would compensate
_SPECTRAL_CYTOMETERS = re.compile(
    r"\baurora\b|northern\s*lights|\bnl-\d{4}\b|\bid7000\b|\bsp6[58]00\b|facsdiscover"
    r"|symphony\s*a5\s*se\b",
    re.IGNORECASE,
)


def spectral_unmixing(sample: FlowSample) -> str | None:
    """How ``sample``'s fluorescence was unmixed by a spectral cytometer's software, or
    ``None`` when its $CYT names no such instrument."""
    cyt = sample.metadata.get("cyt", "")
    if _SPECTRAL_CYTOMETERS.search(cyt):
        return (
            f"unmixed by the spectral software of the {cyt.strip()} (no spillover matrix applies)"
        )
    return None


def unlisted_compensation(sample: FlowSample) -> str | None:
    """What ``sample``'s file says about a compensation whose matrix it does not hold, or
    ``None``: MACSQuant writes $SPILLOVER as the names of the channels compensated at
    acquisition, with no matrix (FCS 3.1 wants the matrix), so nkpanel can neither redo nor
    check it; data that were not compensated need the matrix supplied."""
    for key in SPILLOVER_KEYWORDS:
        n = names_only_spillover(sample.metadata.get(key, ""))
        if n is not None:
            return (
                f"{spillover_keyword(key)} names {n} channels but holds no matrix, as "
                "MACSQuant writes for channels it compensated at acquisition"
            )
    return None


def read_spillover_csv(path: Path) -> tuple[Spillover, tuple[str, ...]]:
    """A spillover matrix from a CSV file a lab supplies, and notes on how it was read.

    The first row names the channels ($PnN, or each channel's $PnS), one row per dye follows,
    in the same order. Read as spreadsheets write it: with or without a byte-order mark, comma,
    semicolon or tab separated (decimal commas with the latter two), with or without a first
    column repeating the channel names, in fractions or percent (diagonal 100).

    Raises
    ------
    CompensationError
        One line naming the file and the cause: unreadable, not a square table of numbers
        (the first value that is not one named by row and column), row names that differ from
        the header, or a matrix :class:`~nkpanel.flow.sample.Spillover` refuses.
    """
    try:
        text = path.read_text("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except (OSError, UnicodeDecodeError) as exc:
        raise CompensationError(path, f"cannot read spillover matrix ({exc})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        raise CompensationError(path, "spillover CSV needs a header of channel names and rows")
    # the separator the header uses most: commas, semicolons or tabs
    delimiter = max((";", "\t", ","), key=lambda d: lines[0].count(d))
    rows = [_trimmed([c.strip() for c in r]) for r in csv.reader(lines, delimiter=delimiter)]
    rows = [r for r in rows if r]  # rows of separators only, as spreadsheets leave them
    if len(rows) < 2:
        raise CompensationError(path, "spillover CSV needs a header of channel names and rows")
    header, body = rows[0], rows[1:]
    firsts = [r[0].casefold() for r in body if r]
    # a first column naming the rows: under an empty corner or a label of its own
    # ("Fluorochrome"), or with the header naming only the columns of numbers
    cornered = len(header) > 1 and firsts == [h.casefold() for h in header[1:]]
    labelled = (
        (bool(header) and header[0] == "")
        or cornered
        or all(len(r) == len(header) + 1 and not _is_number(r[0], delimiter) for r in body)
    )
    names = tuple(header[1:] if header and (header[0] == "" or cornered) else header)
    if labelled:
        labels = [r[0] for r in body]
        if [lb.casefold() for lb in labels] != [n.casefold() for n in names]:
            raise CompensationError(
                path, f"spillover CSV rows are named {labels}, not as its columns {list(names)}"
            )
        body = [r[1:] for r in body]
    values: list[list[float]] = []
    for i, r in enumerate(body, start=2):
        row = []
        for j, cell in enumerate(r, start=1):
            if not _is_number(cell, delimiter):
                where = f"row {i}, column {j + labelled}"
                hint = "" if delimiter != "," else " (a file separated by ';' or tabs is read too)"
                raise CompensationError(
                    path, f"spillover CSV holds {cell[:30]!r} at {where}, not a number{hint}"
                )
            row.append(_number(cell, delimiter))
        values.append(row)
    if len({len(r) for r in values}) > 1:
        raise CompensationError(path, "spillover CSV rows have different numbers of values")
    try:
        spill, note = unit_diagonal(Spillover(names, np.array(values, dtype=np.float64)), path)
    except CompensationError as exc:
        raise CompensationError(path, exc.cause) from None
    return spill, (note,) if note else ()


def _trimmed(cells: list[str]) -> list[str]:
    """A row without the empty cells a spreadsheet leaves after its last value."""
    while cells and cells[-1] == "":
        cells.pop()
    return cells


def _number(cell: str, delimiter: str) -> float:
    # "0,125" is a decimal comma where commas do not separate the values
    return float(cell.replace(",", ".") if delimiter != "," else cell)


def _is_number(cell: str, delimiter: str) -> bool:
    try:
        _number(cell, delimiter)
    except ValueError:
        return False
    return True


def compensate(sample: FlowSample, spillover: Spillover | None = None) -> NDArray[np.float64]:
    """Compensated events of ``sample``, read-only (other channels are copied unchanged).

    When the sample was read with :func:`~nkpanel.flow.sample.read_fcs` ``compensate=`` the
    same matrix, the detector columns it compensated while reading are used.

    Each event's detector values ``o`` (a row over the spillover's channels) are replaced by the
    dye amounts ``x`` that solve ``x · S = o``.

    Parameters
    ----------
    sample
        The sample whose events are compensated.
    spillover
        A matrix to use instead of the file's own ($SPILLOVER / SPILL).

    Returns
    -------
    numpy.ndarray
        Events × channels, in the sample's column order.

    Raises
    ------
    CompensationError
        No matrix is given or in the file, or it names channels the file does not have.

    References
    ----------
    Bagwell CB, Adams EG. Fluorescence spectral overlap compensation for any number of flow
    cytometry parameters. Ann N Y Acad Sci 1993;677:167-184.
    Roederer M. Spectral compensation for flow cytometry: visualization artifacts, limitations,
    and caveats. Cytometry 2001;45:194-205.

    Examples
    --------
    >>> s = FlowSample.from_array([[1.05, 0.7]], ["FL1", "FL2"])  # true (1, 0.5) · S
    >>> spill = Spillover(("FL1", "FL2"), np.array([[1.0, 0.2], [0.1, 1.0]]))
    >>> compensate(s, spill).round(12).tolist()
    [[1.0, 0.5]]
    """
    spill = spillover if spillover is not None else sample.spillover
    if spill is None:
        raise CompensationError(sample.source, "no spillover matrix in the file and none supplied")
    # the detector columns (those read with the file when it was compensated then), and the
    # other channels copied beside them, column-ordered
    return CompensatedColumns(sample, spill).matrix()


#: events compensated per block: each block's detector values are read from memory once and
#: stay in the cache for all the channels' products
BLOCK_ROWS = 65_536


def unmixing(
    spill: Spillover, pnn: Sequence[str], source: str | Path | None
) -> tuple[list[int], NDArray[np.float64]]:
    """The columns of the spillover's channels among ``pnn``, and the inverse matrix.

    x = o · S⁻¹: the inverse of the small matrix is formed once (a matrix with a condition
    number above 1e12 is refused when it is parsed), then one product per channel; solving
    against a million right-hand sides instead (as flowutils does) takes five times as long
    and agrees to within 1e-15 relative.

    Raises
    ------
    CompensationError
        The matrix names a channel that is not among ``pnn``.
    """
    column = {name: i for i, name in enumerate(pnn)}
    missing = [ch for ch in spill.channels if ch not in column]
    if missing:
        raise CompensationError(
            source,
            f"spillover matrix names channel {missing[0]!r}, not in the file "
            f"(channels: {', '.join(pnn)})",
        )
    inverse = np.asarray(np.linalg.inv(spill.matrix), dtype=np.float64)
    return [column[ch] for ch in spill.channels], inverse


def detector_columns(
    events: NDArray[np.float64], idx: Sequence[int], inverse: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The compensated values of the detector columns ``idx`` only (events × len(idx), in
    column order), block by block as :func:`compensate` computes them (bit for bit)."""
    out = np.empty((events.shape[0], len(idx)), dtype=np.float64, order="F")

    def work(start: int, stop: int) -> None:
        for i in range(start, stop, BLOCK_ROWS):
            j = min(i + BLOCK_ROWS, stop)
            unmix_block(events[i:j], out[i:j], idx, inverse)

    for_row_blocks(events.shape[0], work, align=BLOCK_ROWS)
    out.setflags(write=False)
    return out


def unmix_block(
    observed: NDArray[np.float64],
    out: NDArray[np.float64],
    idx: Sequence[int],
    inverse: NDArray[np.float64],
) -> None:
    """Compensated detector values of a block of events: ``out[:, k]`` for detector ``idx[k]``
    (``out``'s columns contiguous, as in a column-ordered array)."""
    if not idx:
        return
    # the block's detector values as one compact array (a view into the full columns would
    # leave BLAS a stride of a whole column), then one matrix-vector product per channel (a
    # matrix-matrix product would start BLAS's own threads inside these)
    dyes = observed[:, idx]
    for k in range(len(idx)):
        np.dot(dyes, inverse[:, k], out=out[:, k])


class CompensatedColumns:
    """A sample's compensated events without copying the channels compensation leaves alone.

    :meth:`column` gives a detector's compensated column, or the sample's own column for any
    other channel; :meth:`matrix` builds the whole events × channels array (once, when asked).
    The detector columns come from :func:`~nkpanel.flow.sample.read_fcs` when it compensated
    with the same matrix, else they are computed on first use. Without a matrix, the events
    themselves.
    """

    def __init__(self, sample: FlowSample, spillover: Spillover | None) -> None:
        self.sample, self.spillover = sample, spillover
        self._full: NDArray[np.float64] | None = None
        self._detectors: dict[int, int] = {}
        self._values: NDArray[np.float64] | None = None
        if spillover is not None:
            idx, self._inverse = unmixing(spillover, sample.pnn, sample.source)
            self._idx = idx
            self._detectors = {col: k for k, col in enumerate(idx)}
            if sample.detector_columns is not None and sample.compensated_with == spillover:
                self._values = sample.detector_columns

    @classmethod
    def of_matrix(cls, sample: FlowSample, matrix: NDArray[np.float64]) -> CompensatedColumns:
        """Values already compensated (or needing none): ``matrix``, events × channels."""
        out = cls(sample, None)
        full = np.asarray(matrix, dtype=np.float64).view()
        full.setflags(write=False)  # a read-only view: the caller's array is left as it is
        out._full = full
        return out

    def _detector_values(self) -> NDArray[np.float64]:
        if self._values is None:
            events = np.asarray(self.sample.events, dtype=np.float64)
            self._values = detector_columns(events, self._idx, self._inverse)
        return self._values

    def column(self, j: int) -> NDArray[np.float64]:
        """Channel ``j`` (a column index), compensated where compensation changes it."""
        if self._full is not None:
            return self._full[:, j]
        k = self._detectors.get(j)
        if k is None:
            return np.asarray(self.sample.events[:, j], dtype=np.float64)
        return self._detector_values()[:, k]

    def matrix(self) -> NDArray[np.float64]:
        """Every channel, every event (read-only; built once)."""
        if self._full is None:
            events = np.asarray(self.sample.events, dtype=np.float64)
            if not self._detectors:
                full = events
            else:
                full = np.empty(events.shape, dtype=np.float64, order="F")
                values = self._detector_values()
                for j in range(events.shape[1]):
                    k = self._detectors.get(j)
                    full[:, j] = events[:, j] if k is None else values[:, k]
                full.setflags(write=False)
            self._full = full
        return self._full
