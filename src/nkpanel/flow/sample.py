"""Reading FCS files into a :class:`FlowSample`: events on their linear scale plus the keywords.

FCS 2.0, 3.0 and 3.1 list-mode files with $DATATYPE I (integers of any whole number of bytes,
also mixed widths), F, D or A, in either byte order. This module checks the HEADER and the TEXT
keywords itself (offsets inside the file, segments that do not overlap, $PAR and $TOT that agree
with the size of the DATA segment, known data type and byte order, sane $PnB/$PnE/$PnG/$PnR), so
that every defect becomes one :class:`~nkpanel.errors.FCSFormatError` naming the file and the
cause, and no header value can make the reader allocate more memory than the file holds
(files in histogram mode are refused the same way). flowio parses the TEXT too, and its reading
of the critical keywords must agree with this module's (when a lab template is applied, FlowKit
reads the file through flowio wherever flowio reads the values nkpanel reads); NumPy then
decodes the DATA, which also reads what flowio
cannot: 3-byte integers (Cytek xP5). Deviations that real instruments write and other readers
accept are read, most with a note: blanks after the last TEXT delimiter (MACSQuant, CyFlow), an
$ENDDATA one byte past the data, blank HEADER DATA offsets, and a $SPILLOVER of channel names
only (MACSQuant). A TEXT segment without its last delimiter is refused: it cannot be told from
one cut short. Integer values are masked to the power of two at
or above $PnR, as flowio does. Channel values are converted to scale values here:

* $DATATYPE I with $PnE ``f1,f2`` and ``f1 > 0`` (log amplification): a channel value ``c`` in a
  range $PnR ``r`` becomes ``f2 · 10^(f1 · c / r)``, with ``f2 = 0`` read as 1 (FCS 3.1, $PnE);
* every parameter but Time is then divided by its gain $PnG (FCS 3.1, $PnG; a gain of 0 is read
  as 1 and noted), as FlowKit/flowio do;
* the parameter named ``Time`` (any case) is multiplied by $TIMESTEP and never divided by a gain,
  as FlowKit does;
* $DATATYPE F and D are linear by definition (FCS 3.1: "all parameters shall be stored as linear
  with $PnE/0,0/"), so a non-zero $PnE on floating-point data is ignored and recorded in
  :attr:`FlowSample.notes` (flowio/FlowKit would apply it; flowCore ignores it, as here).

References
----------
Spidlen J et al. Data File Standard for Flow Cytometry, version FCS 3.1. Cytometry A 2010;77:97-100.
Seamer LC et al. Proposed new data file standard for flow cytometry, version FCS 3.0.
Cytometry 1997;28:118-122.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import itertools
import os
import re
import stat
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import NDArray

from nkpanel._threads import for_row_blocks
from nkpanel.errors import CompensationError, FCSFormatError, one_line

__all__ = [
    "Channel",
    "FlowSample",
    "Spillover",
    "names_only_spillover",
    "on_file_channels",
    "parse_spillover",
    "read_fcs",
    "timestep",
    "unit_diagonal",
]

#: keywords (lower case, without "$") that may carry a spillover matrix, in order of preference;
#: $COMP (FCS 3.0) is used only when it is written in the $SPILLOVER layout (it usually is not)
SPILLOVER_KEYWORDS = ("spillover", "spill", "comp")
#: keywords kept as metadata in every result
KEPT_KEYWORDS = ("cyt", "date", "btim", "etim", "timestep", "tot", "par", "fil", "src", "cytsn")
#: an FCS file claiming more than this many events or parameters is refused before allocation
MAX_EVENTS = 200_000_000
_MAX_ASCII_CHARS = 64
MAX_PARAMETERS = 10_000
#: a $PnE claiming more decades than this is refused (real instruments use 4 to 6)
MAX_LOG_DECADES = 30.0

_HEADER_BYTES = 58
_VERSIONS = ("2.0", "3.0", "3.1", "3.2")
#: FCS 3.x headers write 0 for DATA offsets beyond this byte (FCS 3.1, HEADER segment)
_HEADER_OFFSET_LIMIT = 99_999_999
#: $PnB of integer values: whole bytes (Cytek xP5 writes 24 bits)
_INT_BITS = (8, 16, 24, 32, 40, 48, 56, 64)
#: bytes some writers leave after the last delimiter of TEXT, inside the TEXT offsets
_TEXT_PADDING = " \t\r\n\x00"
_PNN_KEY = re.compile(r"^p(\d+)n$", re.IGNORECASE)
#: delimiters flowio's TEXT parser cannot use: it builds a regular expression from the delimiter
#: escaping only | \\ and *, and deletes every "$" before splitting
_FLOWIO_BAD_DELIMITERS = frozenset(".^$+?()[]{}")


@dataclass(frozen=True)
class Channel:
    """One FCS parameter: its short name ($PnN), stain label ($PnS), amplification and range."""

    index: int
    pnn: str
    pns: str = ""
    pne: tuple[float, float] = (0.0, 0.0)
    png: float = 1.0
    pnr: float = 262144.0

    @property
    def is_log_amplified(self) -> bool:
        """True when $PnE says the instrument stored log-amplified values (decoded on read)."""
        return self.pne[0] > 0

    @property
    def top(self) -> float:
        """The largest value the channel can hold on the scale nkpanel reads it in: $PnR, or
        for log-amplified channels the value of the highest channel, f2 · 10^(f1 · (r − 1)/r)
        (a 4-decade, 1,024-channel amplifier decodes to 1…9,910, whatever its $PnR), divided
        by the gain."""
        f1, f2 = self.pne
        raw = f2 * 10.0 ** (f1 * (self.pnr - 1) / self.pnr) if self.is_log_amplified else self.pnr
        return raw / self.png if self.png > 0 else raw


@dataclass(frozen=True, eq=False)
class Spillover:
    """A spillover matrix: ``matrix[i, j]`` is the fraction of dye ``i`` seen in detector ``j``.

    Raises
    ------
    CompensationError
        The matrix is not ``n × n`` for ``n`` channels, names a channel twice, holds a non-finite
        value, or is singular (condition number above 1e12).
    """

    channels: tuple[str, ...]
    matrix: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.channels)
        try:
            arr = np.array(self.matrix, dtype=np.float64)
        except (TypeError, ValueError):
            raise CompensationError(None, "spillover matrix is not numeric") from None
        if arr.shape != (n, n):
            raise CompensationError(
                None, f"spillover matrix is {arr.shape}, expected {n}×{n} for {n} channels"
            )
        if len(set(self.channels)) != n:
            raise CompensationError(None, "spillover matrix names one channel twice")
        if not np.all(np.isfinite(arr)):
            raise CompensationError(None, "spillover matrix holds non-finite values")
        if n:
            with np.errstate(all="ignore"):
                cond = float(np.linalg.cond(arr))
            if not cond <= 1e12:  # also catches nan
                raise CompensationError(None, "spillover matrix is singular and cannot be inverted")
        arr.setflags(write=False)
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "matrix", arr)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spillover):
            return NotImplemented
        return self.channels == other.channels and bool(np.array_equal(self.matrix, other.matrix))

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class FlowSample:
    """Events of one FCS data set on their linear (uncompensated) scale.

    ``events`` has one row per event, in file order, and one column per channel; $PnE
    log amplification and $PnG gain are already decoded, and Time is in seconds where
    $TIMESTEP is given. ``metadata`` holds every TEXT keyword, lower case and without the
    leading ``$`` (``metadata["cyt"]``, ``metadata["p3n"]``). ``notes`` lists recoverable
    oddities met while reading (for the result's QC notes).
    """

    name: str
    channels: tuple[Channel, ...]
    events: NDArray[np.float64]
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    spillover: Spillover | None = None
    version: str = "3.1"
    path: Path | None = None
    notes: tuple[str, ...] = ()
    #: the compensated values of the detector channels (events × detectors, in the order of
    #: ``compensated_with.channels``), computed while the events were read (see
    #: :func:`read_fcs`); :mod:`nkpanel.flow.compensation` uses them
    detector_columns: NDArray[np.float64] | None = None
    compensated_with: Spillover | None = None
    #: which data set of its file these events are, counting from 1 (a file may hold several),
    #: and where it starts in the file (flowio's ``nextdata_offset``)
    dataset: int = 1
    dataset_offset: int = 0
    #: the largest value of each column of ``events``, found while they were read (see
    #: :meth:`column_maxima`)
    events_max: _ColumnMaxima | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # a sample made from another with other events (dataclasses.replace) does not keep
        # the other's events alive through their maxima
        if self.events_max is not None and self.events_max.events is not self.events:
            object.__setattr__(self, "events_max", None)

    @classmethod
    def from_fcs(cls, path: str | Path) -> FlowSample:
        """Read an FCS file; see :func:`read_fcs`."""
        return read_fcs(path)

    @classmethod
    def from_array(
        cls,
        events: NDArray[np.floating] | Sequence[Sequence[float]],
        pnn: Sequence[str],
        *,
        pns: Sequence[str] | None = None,
        name: str = "array",
        spillover: Spillover | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> FlowSample:
        """Wrap an events array (rows = events) with channel names."""
        arr = np.array(events, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(pnn):
            raise FCSFormatError(name, f"events of shape {arr.shape} do not fit {len(pnn)} names")
        if len(set(pnn)) != len(pnn):
            raise FCSFormatError(name, "two channels share one name")
        labels = list(pns) if pns is not None else [""] * len(pnn)
        chans = tuple(Channel(i, n, s) for i, (n, s) in enumerate(zip(pnn, labels, strict=True)))
        arr.setflags(write=False)
        return cls(name, chans, arr, MappingProxyType(dict(metadata or {})), spillover)

    @property
    def n_events(self) -> int:
        return int(self.events.shape[0])

    @property
    def pnn(self) -> tuple[str, ...]:
        return tuple(c.pnn for c in self.channels)

    @property
    def pns(self) -> tuple[str, ...]:
        return tuple(c.pns for c in self.channels)

    @property
    def source(self) -> str:
        """The file name for messages, or the sample name when it came from memory."""
        return str(self.path) if self.path is not None else self.name

    def index_of(self, pnn: str) -> int:
        """Column of the channel whose $PnN is ``pnn``."""
        for c in self.channels:
            if c.pnn == pnn:
                return c.index
        raise KeyError(pnn)

    def column(self, pnn: str) -> NDArray[np.float64]:
        return self.events[:, self.index_of(pnn)]

    def column_maxima(self) -> NDArray[np.float64] | None:
        """The largest value of each column of :attr:`events`, where the reader found them
        (in passing, while each block of rows was in the cache); ``None`` where it did not,
        or for events other than the ones it read."""
        found = self.events_max  # of these events (__post_init__ drops another array's)
        if found is None or self.events.flags.writeable:
            return None  # not found, or the events may have changed since (made writable)
        return found.values

    @property
    def synthetic(self) -> bool:
        """Whether nkpanel's simulator wrote the file (its NKPANEL_SYNTHETIC keyword)."""
        return self.metadata.get("nkpanel_synthetic", "") == "1"

    def label(self, pnn: str) -> str:
        """``CD56 (APC-A)``: the channel's $PnS and $PnN, or the $PnN alone without a $PnS."""
        pns = self.channels[self.index_of(pnn)].pns
        return f"{pns} ({pnn})" if pns else pnn


@dataclass(frozen=True, eq=False)
class _ColumnMaxima:
    """Each column's largest value, and the events array they were found in."""

    events: NDArray[np.float64]
    values: NDArray[np.float64]


def parse_spillover(
    text: str,
    pnn: Sequence[str],
    *,
    source: str | None = None,
    pns: Sequence[str] | None = None,
) -> Spillover:
    """Parse a $SPILLOVER / SPILL keyword value.

    The value is ``n, name_1 … name_n, m_11 … m_nn`` (row-major, FCS 3.1 $SPILLOVER); names may
    also be 1-based channel numbers, as some instruments write them, or (given ``pns``, the
    channels' stain labels in $PnN's order) the stain label of exactly one channel, as a
    matrix exported with stain names has them.

    Raises
    ------
    CompensationError
        The value does not start with a count, holds the wrong number of values, names a channel
        the file does not have, or gives a matrix :class:`Spillover` refuses.
    """
    parts = [p.strip() for p in text.split(",")]
    try:
        n = int(float(parts[0]))
    except (ValueError, IndexError, OverflowError):
        raise CompensationError(
            source, f"spillover keyword does not start with a count: {text[:40]!r}"
        ) from None
    if n < 1 or n > len(pnn) or len(parts) != 1 + n + n * n:
        raise CompensationError(
            source,
            f"spillover keyword declares {n} channels but holds {len(parts) - 1} values "
            f"(expected {n + n * n if 0 < n <= len(pnn) else 'n + n²'}) "
            f"for a file of {len(pnn)} channels",
        )
    stains = _by_stain(zip(pnn, pns or (), strict=False))
    names: list[str] = []
    for raw in parts[1 : 1 + n]:
        by_stain = stains.get(_stain_key(raw), [])
        if raw in pnn:
            names.append(raw)
        elif raw.isdigit() and 1 <= int(raw) <= len(pnn):
            names.append(pnn[int(raw) - 1])
        elif len(by_stain) == 1:
            names.append(by_stain[0])
        else:
            raise CompensationError(
                source, f"spillover names channel {raw[:40]!r}, not in the file"
            )
    try:
        values = np.array([float(v) for v in parts[1 + n :]], dtype=np.float64).reshape(n, n)
    except ValueError:
        raise CompensationError(source, "spillover matrix holds a non-numeric value") from None
    try:
        return Spillover(tuple(names), values)
    except CompensationError as exc:
        raise CompensationError(source, exc.cause) from None


def unit_diagonal(spill: Spillover, source: str | Path | None) -> tuple[Spillover, str | None]:
    """``spill`` with a diagonal of 1, as FCS 3.1 defines $SPILLOVER (each dye seen whole in
    its own detector), and a note when it had to be rescaled.

    A matrix written in percent (diagonal 100, as FlowJo and spreadsheets show spillover) is
    divided by 100. Any other diagonal is refused: applied as it is, it would scale every dye
    and misplace every gate.

    Raises
    ------
    CompensationError
        A diagonal that is neither all 1 nor all 100.
    """
    diag = np.diag(spill.matrix)
    if diag.size == 0 or np.allclose(diag, 1.0, rtol=0.0, atol=1e-3):
        return spill, None
    if np.allclose(diag, 100.0, rtol=0.0, atol=0.1):
        note = "spillover matrix in percent (diagonal 100): divided by 100"
        return Spillover(spill.channels, spill.matrix / 100.0), note
    raise CompensationError(
        source,
        f"spillover matrix diagonal runs from {diag.min():g} to {diag.max():g}, not 1 (each "
        "dye is seen whole in its own detector) nor 100 (percent)",
    )


def _stain_key(label: str) -> str:
    """A stain label as matrices name it, case and spacing aside ("CD16  PE" is "cd16 pe")."""
    return " ".join(label.casefold().split())


def _by_stain(channels: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The $PnN of the channels (``($PnN, $PnS)`` pairs) by their stain label's key."""
    stains: dict[str, list[str]] = {}
    for name, stain in channels:
        if stain.strip():
            stains.setdefault(_stain_key(stain), []).append(name)
    return stains


#: the channels of scatter and time, by the names instruments give them (not stained)
SCATTER_OR_TIME = re.compile(r"^(fsc|ssc|fs|ss|time)", re.IGNORECASE)


def on_file_channels(
    spill: Spillover, channels: Sequence[Channel], source: str | Path | None
) -> Spillover:
    """``spill`` with every channel it names given as the file's $PnN.

    A name that is no $PnN but the $PnS of exactly one channel ("CD3 FITC", as a matrix
    exported with stain names labels it) stands for that channel; names that match neither
    are left for :func:`~nkpanel.flow.compensation.unmixing` to refuse.
    """
    pnn = [c.pnn for c in channels]
    if all(name in pnn for name in spill.channels):
        return spill
    stains = _by_stain((c.pnn, c.pns) for c in channels)
    names = []
    for name in spill.channels:
        hits = stains.get(_stain_key(name), []) if name not in pnn else [name]
        names.append(hits[0] if len(hits) == 1 else name)
    try:
        return Spillover(tuple(names), spill.matrix)
    except CompensationError as exc:  # a stain name and its channel's $PnN both given
        raise CompensationError(source, exc.cause) from None


# ---------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class _Header:
    version: str
    text: tuple[int, int]
    data: tuple[int, int]
    analysis: tuple[int, int]  # -1 where the header field is not a number
    #: the HEADER as flowio must see it: blank DATA offset fields written as 0, which flowio
    #: cannot parse otherwise; ``None`` when the file's own HEADER serves
    for_flowio: bytes | None = None


@dataclass(frozen=True)
class _Layout:
    """What the TEXT keywords say about the DATA segment, after validation."""

    par: int
    tot: int
    datatype: str  # "I", "F" or "D"
    bits: tuple[int, ...]  # per parameter, as decoded
    order: Literal["<", ">"]  # byte order of binary values
    data: tuple[int, int]  # inclusive byte offsets of the DATA segment
    off_by_one: bool  # $ENDDATA points one byte past the data (common writer bug)
    header_zero: bool  # FCS 3.x HEADER gives 0 for DATA; $BEGINDATA/$ENDDATA are used


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return f"keyword {exc.args[0]!r} not found"
    return one_line(exc, limit=160)


def _short(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


class _FileBytes:
    """A file's bytes held in a NumPy array, sliced like ``bytes``.

    Reading a file into a NumPy buffer is about twice as fast as ``Path.read_bytes`` for the
    40 MB of a million-event file (the allocator hands NumPy large pages, so fewer page
    faults), and the DATA segment is then viewed in place, never copied as ``bytes``. Slices
    come back as ``bytes`` so the HEADER and TEXT are parsed exactly as before.
    """

    def __init__(self, data: bytes | NDArray[np.uint8]) -> None:
        self.array = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data

    def __len__(self) -> int:
        return int(self.array.shape[0])

    @overload
    def __getitem__(self, key: int) -> int: ...
    @overload
    def __getitem__(self, key: slice) -> bytes: ...
    def __getitem__(self, key: int | slice) -> int | bytes:
        if isinstance(key, slice):
            return self.array[key].tobytes()
        return int(self.array[key])

    def startswith(self, prefix: bytes) -> bool:
        return self[: len(prefix)] == prefix

    def tail(self, base: int) -> _FileBytes:
        """The bytes from ``base`` on (a later data set's, whose offsets count from there)."""
        return _FileBytes(self.array[base:])

    def read_into(self, offset: int, view: memoryview) -> int:
        """Copy the bytes from ``offset`` into ``view``; the number copied (fewer at the end)."""
        chunk = self.array[offset : offset + len(view)]
        n = int(chunk.shape[0])
        view[:n] = chunk.data
        return n

    def file(self, head: bytes | None = None) -> io.BufferedReader:
        """A read-only file object over the same bytes, for flowio (which closes it); ``head``,
        when given, stands in for the first bytes."""
        return io.BufferedReader(_ArrayFile(self, head))


class _OpenFile:
    """A regular file's bytes, sliced like ``bytes`` and read from the open file on demand.

    Only what the reader asks for is read: the HEADER and TEXT (the file's first 64 KiB are
    read at once and kept), single bytes, and the DATA segment block by block
    (:class:`_StreamedRows`), straight into the conversion instead of through a copy of the
    whole file, which for a 40 MB file cost as much as the conversion itself. :attr:`array`
    reads every byte, for the layouts decoded from the whole segment at once (ASCII data,
    3-byte or mixed integer widths, rows too wide for a block in the cache).
    """

    def __init__(
        self,
        fd: int,
        size: int,
        buffer: Callable[[int], NDArray[np.uint8]],
        p: Path,
        base: int = 0,
    ) -> None:
        self.fd, self.size, self.base, self._buffer, self.p = fd, size, base, buffer, p
        self._head = self._pread(min(len(self), _HEAD_BYTES), 0)
        self._array: NDArray[np.uint8] | None = None

    def _shrank(self) -> FCSFormatError:
        """The file is shorter than when it was opened: every read that comes back short of
        its size says so (its HEADER and TEXT were checked against the size at opening)."""
        return FCSFormatError(self.p, "the file ended inside its DATA segment while it was read")

    def _pread(self, size: int, offset: int) -> bytes:
        """``size`` bytes from ``offset`` (from ``base``), all of them within the file."""
        data = bytearray(size)
        self.read_into(offset, memoryview(data))  # a file that shrank: FCSFormatError
        return bytes(data)

    def __len__(self) -> int:
        return max(0, self.size - self.base)

    @overload
    def __getitem__(self, key: int) -> int: ...
    @overload
    def __getitem__(self, key: slice) -> bytes: ...
    def __getitem__(self, key: int | slice) -> int | bytes:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise ValueError("only contiguous slices of a file are read")
            if stop <= start:
                return b""
            if stop <= len(self._head):
                return self._head[start:stop]
            return self._pread(stop - start, start)
        index = key + len(self) if key < 0 else key
        if not 0 <= index < len(self):
            raise IndexError("file offset out of range")
        return self[index : index + 1][0]

    def startswith(self, prefix: bytes) -> bool:
        return self[: len(prefix)] == prefix

    def tail(self, base: int) -> _OpenFile:
        """The bytes from ``base`` on (a later data set's, whose offsets count from there)."""
        return _OpenFile(self.fd, self.size, self._buffer, self.p, self.base + base)

    def read_into(self, offset: int, view: memoryview) -> int:
        """Read the bytes from ``offset`` into ``view``; the number read (fewer only where
        ``view`` reaches past the end of the file)."""
        size = max(0, min(len(view), len(self) - offset))
        got = 0
        while got < size:
            n = os.preadv(self.fd, [view[got:size]], self.base + offset + got)
            if n <= 0:
                raise self._shrank()
            got += n
        return got

    @property
    def array(self) -> NDArray[np.uint8]:
        """Every byte (from ``base``), read once, in parts by a few threads."""
        if self._array is None:
            array = self._buffer(len(self))

            def read_part(start: int, stop: int) -> None:
                self.read_into(start, array.data[start:stop])

            for_row_blocks(len(self), read_part, align=1 << 20)
            self._array = array
        return self._array

    def file(self, head: bytes | None = None) -> io.BufferedReader:
        """A read-only file object over the same bytes, for flowio (which closes it); ``head``,
        when given, stands in for the first bytes."""
        return io.BufferedReader(_ArrayFile(self, head))


#: the bytes of a file read at once when it is opened (the HEADER and TEXT of nearly every
#: file; later parts are read as asked for)
_HEAD_BYTES = 1 << 16


#: a DATA block's rows are read into a scratch buffer of the conversion (a few MB), when a
#: block of rows is at most this size; wider rows are read with the whole file
_MAX_STREAMED_BLOCK_BYTES = 16 << 20


class _StreamedRows:
    """The DATA segment's binary rows (values of one width), read block by block from the
    file: ``rows.read(i, j, scratch)`` reads rows ``i`` to ``j`` into ``scratch`` (from
    :meth:`scratch`, one per thread of the conversion) and views them in their stored type."""

    def __init__(
        self, src: _OpenFile, start: int, tot: int, par: int, dtype: np.dtype[Any]
    ) -> None:
        self.src, self.start, self.dtype = src, start, dtype
        self.shape = (tot, par)
        self.row_bytes = dtype.itemsize * par

    def scratch(self, rows: int) -> NDArray[np.uint8]:
        """A buffer for ``rows`` rows."""
        return np.empty(rows * self.row_bytes, dtype=np.uint8)

    def read(self, i: int, j: int, scratch: NDArray[np.uint8]) -> NDArray[Any]:
        size = (j - i) * self.row_bytes
        buf = scratch[:size]
        self.src.read_into(self.start + i * self.row_bytes, buf.data)
        return buf.view(self.dtype).reshape(j - i, self.shape[1])

    def whole(self) -> NDArray[Any]:
        """Every row, in an array of its own."""
        out = np.empty(self.shape, dtype=self.dtype)
        self.src.read_into(self.start, out.reshape(-1).view(np.uint8).data)
        return out


class _ArrayFile(io.RawIOBase):
    """A raw, seekable, read-only file over a file's bytes (``head``, when given, is read in
    place of the first bytes)."""

    def __init__(self, source: _FileBytes | _OpenFile, head: bytes | None = None) -> None:
        super().__init__()
        self._source, self._pos = source, 0
        self._head = np.frombuffer(head or b"", dtype=np.uint8)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._source)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        n = self._source.read_into(self._pos, view) if self._pos < len(self._source) else 0
        h = self._head.shape[0]
        if self._pos < h and n:
            stop = min(h, self._pos + n)
            view[: stop - self._pos] = self._head[self._pos : stop].data
        self._pos += n
        return n


#: one buffer kept for the next file read (fresh memory must be zeroed by the kernel, which for
#: a 40 MB file costs as much as reading it); files larger than this get their own
_SCRATCH_MAX_BYTES = 256 << 20
_scratch_lock = threading.Lock()
_scratch_buffer: NDArray[np.uint8] | None = None


@contextlib.contextmanager
def _buffer(size: int) -> Iterator[NDArray[np.uint8]]:
    """A buffer of ``size`` bytes for reading one file, held until the file is parsed: the
    process's kept buffer when no other read holds it (so concurrent reads in many threads
    never keep more than one), else a new one. Nothing read from a file keeps a reference
    into the buffer: events, keywords and every other part of a sample are copies."""
    global _scratch_buffer
    if size <= _SCRATCH_MAX_BYTES and _scratch_lock.acquire(blocking=False):
        try:
            if _scratch_buffer is None or _scratch_buffer.shape[0] < size:
                _scratch_buffer = np.empty(size, dtype=np.uint8)
            yield _scratch_buffer[:size]
        finally:
            _scratch_lock.release()
    else:
        yield np.empty(size, dtype=np.uint8)


def _open_file(
    p: Path, buffer: Callable[[int], NDArray[np.uint8]], held: contextlib.ExitStack
) -> _FileBytes | _OpenFile:
    """The file's bytes: a regular file opened for reading on demand (closed when ``held``
    closes), anything else (a pipe, a special file: no size to go by) read to its end."""
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    held.callback(os.close, fd)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or not hasattr(os, "preadv"):
        with os.fdopen(os.dup(fd), "rb") as stream:
            return _FileBytes(stream.read())
    return _OpenFile(fd, info.st_size, buffer, p)


def _parse_header(buf: _FileBytes | _OpenFile, p: Path) -> _Header:
    size = len(buf)
    if size == 0:
        raise FCSFormatError(p, "file is empty")
    if not buf.startswith(b"FCS"):
        raise FCSFormatError(p, "not an FCS file (no FCS version in the first bytes)")
    version = buf[3:6].decode("ascii", "replace")
    if version not in _VERSIONS:
        raise FCSFormatError(p, f"unsupported FCS version {buf[:6].decode('ascii', 'replace')!r}")
    if size < _HEADER_BYTES:
        raise FCSFormatError(p, f"file is truncated inside its {_HEADER_BYTES}-byte header")

    def raw(i: int) -> bytes:  # HEADER offset field i: 0 TEXT start … 5 ANALYSIS end
        return buf[10 + 8 * i : 18 + 8 * i]

    def field(i: int) -> int:
        value = raw(i).strip()
        if not re.fullmatch(rb"[+-]?\d+", value):
            raise ValueError(value)
        return int(value)

    try:
        text = (field(0), field(1))
    except ValueError:
        raise FCSFormatError(p, "header TEXT offsets are not numbers") from None
    # FCS 3.x writes 0 where an offset does not fit the HEADER and gives it in TEXT; some
    # writers (BD FACSDiva exports of large files) leave the fields blank instead
    blank = [i for i in (2, 3) if version != "2.0" and not raw(i).strip()]
    try:
        data = (0 if 2 in blank else field(2), 0 if 3 in blank else field(3))
    except ValueError:
        raise FCSFormatError(p, "header DATA offsets are not numbers") from None
    for_flowio = None
    if blank:
        head = bytearray(buf[:_HEADER_BYTES])
        for i in blank:
            head[10 + 8 * i : 18 + 8 * i] = b"0".rjust(8)
        for_flowio = bytes(head)

    def loose(i: int) -> int:  # as flowio reads the ANALYSIS offsets: -1 when not a number
        try:
            return int(raw(i))
        except ValueError:
            return -1

    analysis = (loose(4), loose(5))
    if not _HEADER_BYTES <= text[0] < text[1] < size:
        raise FCSFormatError(
            p,
            f"header TEXT offsets {text[0]}–{text[1]} lie outside the file ({size} bytes)",
        )
    return _Header(version, text, data, analysis, for_flowio)


@dataclass(frozen=True)
class _Text:
    keywords: dict[str, str]  # as this module reads them
    closed: bool  # the segment ends with its delimiter, as FCS requires (padding aside)
    flowio_view: dict[str, str]  # as flowio will read them (for the cross-check)
    delimiter: str
    odd_run: bool  # an odd run of 3+ delimiters: a value starting or ending with one


def _split_text(segment: bytes) -> _Text:
    """Keyword → value from a TEXT segment; keys lower case without the leading ``$``.

    The first byte is the delimiter; a doubled delimiter inside a keyword or value stands for
    the character itself (FCS 3.1, TEXT segment). A keyword present both with and without
    ``$`` keeps the ``$`` one.

    flowio reads TEXT its own way (it deletes every ``$``, splits only at delimiters with no
    delimiter beside them, and lets the last of two equal keys win); ``flowio_view`` predicts its
    reading, so that a TEXT segment the two read differently is refused with a clear message:
    FlowKit reads the file through flowio when a lab template is applied, and would otherwise
    gate events decoded with settings the metadata does not show.
    """
    try:
        text = segment.decode("utf-8")
    except UnicodeDecodeError:
        text = segment.decode("latin-1")
    delim = text[0]
    # MACSQuant and CyFlow write TEXT offsets that take in the blanks padding the segment
    # after its last delimiter; flowio and fcsparser read past them, and so does this
    core = text[:1] + text[1:].rstrip("".join(set(_TEXT_PADDING) - {delim}))
    body = core[1:]
    tokens: list[str] = []
    cur: list[str] = []
    pos = 0
    odd_run = False
    for m in re.finditer(re.escape(delim) + "+", body):
        cur.append(body[pos : m.start()])
        run = m.end() - m.start()
        odd_run = odd_run or (run >= 3 and run % 2 == 1)
        cur.append(delim * (run // 2))
        if run % 2:
            tokens.append("".join(cur))
            cur = []
        pos = m.end()
    tail = "".join(cur) + body[pos:]
    if tail:
        tokens.append(tail)
    out: dict[str, str] = {}
    official: set[str] = set()
    for raw_key, value in zip(tokens[0::2], tokens[1::2], strict=False):
        key = raw_key.lower()
        is_official = key.startswith("$")
        key = key[1:] if is_official else key
        if key in official and not is_official:
            continue
        out[key] = value
        if is_official:
            official.add(key)

    d = re.escape(delim)
    theirs = re.split(f"(?<=[^{d}]){d}(?!{d})", text[1:-1].replace("$", ""))
    twice = delim * 2
    view = {
        k.lower().replace(twice, delim): v.replace(twice, delim)
        for k, v in zip(theirs[0::2], theirs[1::2], strict=False)
    }
    closed = len(core) > 1 and core.endswith(delim)
    return _Text(out, closed, view, delim, odd_run)


def _int_kw(text: Mapping[str, str], key: str, p: Path) -> int:
    if key not in text:
        raise FCSFormatError(p, f"TEXT lacks the required keyword ${key.upper()}")
    raw = text[key]
    try:
        return int(raw)
    except ValueError:
        raise FCSFormatError(p, f"${key.upper()} {_short(raw)} is not a whole number") from None


def _range_kw(text: Mapping[str, str], n: int, p: Path) -> float:
    """$PnR of integer or ASCII data: a positive whole number a float can hold."""
    value = _int_kw(text, f"p{n}r", p)
    if value <= 0:
        raise FCSFormatError(p, f"$P{n}R {_short(text[f'p{n}r'])} is not a positive range")
    if value > 2**64:  # wider than any value can be (and than a float can always hold)
        raise FCSFormatError(p, f"absurd $P{n}R {_short(text[f'p{n}r'])}")
    return float(value)


def _float_kw(text: Mapping[str, str], key: str, p: Path) -> float:
    raw = text[key]
    try:
        return float(raw)
    except ValueError:
        raise FCSFormatError(p, f"${key.upper()} {_short(raw)} is not a number") from None


def _byte_order(raw: str, bits: Sequence[int], p: Path) -> Literal["<", ">"]:
    """NumPy's byte-order mark for $BYTEORD: ``1,2,…`` is little-endian and ``…,2,1`` big-endian,
    whatever the value width (FCS 3.1 allows only 1,2,3,4 and 4,3,2,1; older files write the
    order for their own width); any other order is refused unless every value is one byte."""
    try:
        order = [int(v) for v in raw.split(",")]
    except ValueError:
        order = []
    if order and order == list(range(1, len(order) + 1)):
        return "<"
    if order and order == list(range(len(order), 0, -1)):
        return ">"
    if set(bits) == {8}:
        return "<"
    raise FCSFormatError(p, f"unsupported $BYTEORD {_short(raw)}")


def _check_keywords(
    text: Mapping[str, str], header: _Header, size: int, p: Path, notes: list[str]
) -> tuple[_Layout, list[Channel]]:
    par = _int_kw(text, "par", p)
    tot = _int_kw(text, "tot", p)
    if not 0 < par <= MAX_PARAMETERS:
        raise FCSFormatError(p, f"absurd $PAR value {par}")
    if not 0 <= tot <= MAX_EVENTS:
        raise FCSFormatError(p, f"absurd $TOT value {tot}")
    mode = text.get("mode")
    if mode is None:
        raise FCSFormatError(p, "TEXT lacks the required keyword $MODE")
    if mode.strip().upper() != "L":
        raise FCSFormatError(p, f"$MODE {_short(mode)}: only list-mode (L) data can be read")
    raw_type = text.get("datatype")
    if raw_type is None:
        raise FCSFormatError(p, "TEXT lacks the required keyword $DATATYPE")
    datatype = raw_type.upper()
    datatype = datatype.strip()
    if datatype not in ("I", "F", "D", "A"):
        raise FCSFormatError(p, f"unknown $DATATYPE {_short(raw_type)}")

    numbers = set()
    for key in text:
        m = _PNN_KEY.match(key)
        if m:
            numbers.add(int(m.group(1)))
    if numbers != set(range(1, par + 1)):
        extra = sorted(numbers - set(range(1, par + 1)))
        missing = sorted(set(range(1, par + 1)) - numbers)
        what = (
            f"$P{missing[0]}N is missing"
            if missing
            else f"$P{extra[0]}N is present (n must not exceed $PAR)"
        )
        raise FCSFormatError(p, f"$PAR says {par} parameters but {what}")

    channels: list[Channel] = []
    bits: list[int] = []
    for n in range(1, par + 1):
        for kw in ("b", "r"):
            if f"p{n}{kw}" not in text:
                raise FCSFormatError(p, f"TEXT lacks the required keyword $P{n}{kw.upper()}")
        if datatype == "A":
            # ASCII: $PnB is the number of characters of each value, or "*" when values are
            # separated by delimiters (FCS 3.1 §3.3.9); kept here as 8 × characters
            raw_b = text[f"p{n}b"].strip()
            chars = 0 if raw_b == "*" else _int_kw(text, f"p{n}b", p)
            if not 0 <= chars <= _MAX_ASCII_CHARS:
                raise FCSFormatError(p, f"$P{n}B {raw_b!r}: ASCII values need 1 to 64 characters")
            if raw_b != "*" and chars == 0:
                raise FCSFormatError(p, f"$P{n}B 0 is not a number of characters")
            rng = _range_kw(text, n, p)
            bits.append(8 * chars)
            b = 8 * chars
        else:
            b = _int_kw(text, f"p{n}b", p)
        if datatype == "A":
            pass
        elif datatype == "I":
            if b not in _INT_BITS:
                raise FCSFormatError(
                    p, f"$P{n}B {b}: integer values must fill whole bytes, 8 to 64 bits"
                )
            rng = _range_kw(text, n, p)
            bits.append(b)
        else:
            want = 32 if datatype == "F" else 64
            if b <= 0:
                raise FCSFormatError(p, f"$P{n}B {b} is not a positive number of bits")
            if b != want:
                notes.append(f"$P{n}B is {b} but $DATATYPE {datatype} values have {want} bits")
            rng = _float_kw(text, f"p{n}r", p)
            bits.append(want)
        pne = (0.0, 0.0)
        if f"p{n}e" in text:
            raw = text[f"p{n}e"]
            try:
                f1, f2 = (float(v) for v in raw.split(","))
            except ValueError:
                raise FCSFormatError(p, f"$P{n}E {_short(raw)} is not two numbers f1,f2") from None
            if not (np.isfinite(f1) and np.isfinite(f2)) or f1 < 0 or f2 < 0:
                raise FCSFormatError(p, f"$P{n}E {_short(raw)} holds a negative or infinite value")
            if f1 > MAX_LOG_DECADES:
                raise FCSFormatError(p, f"absurd $P{n}E {_short(raw)} ({f1:g} decades)")
            if f1 > 0 and f2 == 0:
                f2 = 1.0  # FCS 3.1: "4,0" is read as "4,1"
            if f1 > 0 and datatype not in ("I", "A"):
                notes.append(f"$P{n}E {raw} ignored: $DATATYPE {datatype} values are stored linear")
                f1, f2 = 0.0, 0.0
            pne = (f1, f2) if f1 > 0 else (0.0, 0.0)
        png = 1.0
        if f"p{n}g" in text:
            png = _float_kw(text, f"p{n}g", p)
            if not np.isfinite(png) or png < 0:
                raise FCSFormatError(p, f"$P{n}G {text[f'p{n}g']!r} is not a positive gain")
            if png == 0:
                notes.append(f"$P{n}G is 0; read as 1 (no gain)")
                png = 1.0
        pnn = text[f"p{n}n"].strip()
        if not pnn:
            raise FCSFormatError(p, f"$P{n}N is empty")
        pns = text.get(f"p{n}s", "").strip()
        channels.append(Channel(n - 1, pnn, pns, pne, png, rng))
    names = [c.pnn for c in channels]
    if len(set(names)) != len(names):
        dup = next(x for x in names if names.count(x) > 1)
        raise FCSFormatError(p, f"two parameters share the $PnN name {_short(dup)}")

    if "byteord" not in text:
        raise FCSFormatError(p, "TEXT lacks the required keyword $BYTEORD")
    # characters have no byte order
    order = _byte_order(text["byteord"], bits, p) if datatype != "A" else "<"

    data = _data_offsets(text, header, size, p)
    header_zero = header.version != "2.0" and header.data == (0, 0) and data != (0, 0)
    if header.for_flowio is not None:
        notes.append("HEADER leaves the DATA offsets blank; $BEGINDATA/$ENDDATA used")
    elif header_zero and data[1] <= _HEADER_OFFSET_LIMIT:
        notes.append("HEADER gives 0 for the DATA offsets; $BEGINDATA/$ENDDATA used")
    row_bytes = sum(bits) // 8
    expected = tot * row_bytes
    delimited = datatype == "A" and 0 in bits
    off_by_one = False
    if tot > 0:
        start, stop = data
        if not 0 < start <= stop:
            raise FCSFormatError(p, f"DATA offsets {start}–{stop} are not a byte range")
        if stop >= size:
            raise FCSFormatError(
                p, f"DATA segment ends at byte {stop} but the file has {size} bytes (truncated?)"
            )
        for name, (lo, hi) in (("HEADER", (0, _HEADER_BYTES - 1)), ("TEXT", header.text)):
            if start <= hi and lo <= stop:
                raise FCSFormatError(p, f"DATA segment {start}–{stop} overlaps the {name}")
        length = stop - start + 1
        off_by_one = length == expected + 1 and datatype != "A"
        if length != expected and not off_by_one and not delimited:
            raise FCSFormatError(
                p,
                f"DATA segment holds {length} bytes but $TOT {tot} × {row_bytes} bytes per "
                f"event ($PAR {par}) needs {expected}",
            )
        if off_by_one:
            notes.append("$ENDDATA points one byte past the data (read anyway)")

    if "timestep" in text and timestep(text) is None:
        notes.append(f"$TIMESTEP {_short(text['timestep'])} is not a positive number; ignored")
    layout = _Layout(par, tot, datatype, tuple(bits), order, data, off_by_one, header_zero)
    return layout, channels


def _data_offsets(text: Mapping[str, str], header: _Header, size: int, p: Path) -> tuple[int, int]:
    """The DATA byte range, refusing HEADER/TEXT disagreements (flowio, and so FlowKit in a
    template run, reads the range the same way)."""
    if header.version == "2.0":
        return header.data
    start = _int_kw(text, "begindata", p)
    stop = _int_kw(text, "enddata", p)
    h_start, h_stop = header.data
    if (h_start, h_stop) == (0, 0):
        return start, stop  # FCS 3.1: 0 in the HEADER means "see TEXT"
    big = h_start == 0 and stop > _HEADER_OFFSET_LIMIT
    if (start != h_start and not big) or (stop != h_stop and not (h_stop == 0 and big)):
        raise FCSFormatError(
            p,
            f"HEADER puts DATA at {h_start}–{h_stop} but $BEGINDATA/$ENDDATA say {start}–{stop}",
        )
    return start, stop


def _check_analysis(
    text: Mapping[str, str], header: _Header, buf: _FileBytes | _OpenFile, p: Path
) -> None:
    """flowio parses the ANALYSIS segment too (when FlowKit reads the file for a template);
    refuse what it would trip over."""
    size = len(buf)
    try:
        start = int(text["beginanalysis"]) if "beginanalysis" in text else None
        stop = int(text["endanalysis"]) if "endanalysis" in text else None
    except ValueError:
        raise FCSFormatError(p, "$BEGINANALYSIS/$ENDANALYSIS are not whole numbers") from None
    start = header.analysis[0] if start is None else start
    stop = header.analysis[1] if stop is None else stop
    if start == stop:
        return
    if not _HEADER_BYTES <= start < stop < size:
        raise FCSFormatError(
            p, f"ANALYSIS segment offsets {start}–{stop} lie outside the file ({size} bytes)"
        )
    delim = chr(buf[start])
    if delim in _FLOWIO_BAD_DELIMITERS:
        raise FCSFormatError(p, f"ANALYSIS delimiter {delim!r} cannot be parsed by flowio")


def _cross_check(text: Mapping[str, str], fd_text: Mapping[str, str], par: int, p: Path) -> None:
    """flowio parses TEXT its own way; both readings of the keywords that matter must agree."""
    keys = ["par", "tot", "datatype", "byteord", "mode", "nextdata", "begindata", "enddata"]
    keys += ["beginanalysis", "endanalysis", "timestep"]
    keys += [f"p{n}{k}" for n in range(1, par + 1) for k in "nbegr"]
    for key in keys:
        mine = text.get(key)
        theirs = fd_text.get(key)
        if mine is None and theirs is None:
            continue
        # blanks around a value do not change how either reads it
        if mine is None or theirs is None or mine.replace("$", "").strip() != theirs.strip():
            raise FCSFormatError(
                p,
                f"TEXT segment is ambiguous (a keyword given twice, or stray delimiters or $): "
                f"${key.upper()} reads {_short(mine) if mine is not None else 'absent'} here "
                f"but {_short(theirs) if theirs is not None else 'absent'} in flowio",
            )
    numbers = {int(m.group(1)) for k in fd_text if (m := _PNN_KEY.match(k))}
    if numbers != set(range(1, par + 1)):
        raise FCSFormatError(
            p,
            "TEXT segment is ambiguous (stray $ or delimiters): flowio finds parameters "
            f"{sorted(numbers)[:6]} for $PAR {par}",
        )


def names_only_spillover(value: str) -> int | None:
    """The channel count of a spillover keyword's ``value`` that holds that many names and no
    matrix, as MACSQuant writes $SPILLOVER; ``None`` for any other value."""
    parts = value.strip().split(",")
    count = parts[0].strip()
    if re.fullmatch(r"[1-9][0-9]{0,3}", count) and len(parts) == int(count) + 1:
        return int(count)
    return None


def timestep(text: Mapping[str, str]) -> float | None:
    """$TIMESTEP (seconds per Time tick) of TEXT keywords ``text``, or ``None`` when it is
    absent or no positive number (it is then ignored, with a note)."""
    try:
        step = float(text.get("timestep", "nan"))
    except ValueError:
        return None
    return step if np.isfinite(step) and step > 0 else None


def _linear_ops(
    channels: Sequence[Channel], text: Mapping[str, str]
) -> list[tuple[int, Literal["*", "/"], float]]:
    """The linear steps of decoding, per column: Time × $TIMESTEP, other channels ÷ $PnG."""
    step = timestep(text)
    ops: list[tuple[int, Literal["*", "/"], float]] = []
    for ch in channels:
        if ch.pnn.lower() == "time":
            if step is not None and ch.pne[0] == 0:
                ops.append((ch.index, "*", step))
        elif ch.png != 1.0:
            ops.append((ch.index, "/", ch.png))
    return ops


def _apply_linear(out: NDArray[np.float64], ops: Sequence[tuple[int, str, float]]) -> None:
    with np.errstate(all="ignore"):
        for col, op, value in ops:
            if op == "*":
                out[:, col] *= value
            else:
                out[:, col] /= value


def _log_scale(channel: NDArray[np.float64], f1: float, f2: float, r: float) -> NDArray[np.float64]:
    """Log-amplified channel values in a range ``r`` with $PnE ``f1,f2`` → scale values,
    ``f2 · 10^(f1 · c / r)`` (FCS 3.1, $PnE)."""
    return f2 * np.power(10.0, f1 * channel / r)


def _decode_ascii(
    raw: NDArray[np.float64], channels: Sequence[Channel], text: Mapping[str, str]
) -> NDArray[np.float64]:
    """ASCII channel values → scale values ($PnE, $PnG, $TIMESTEP; see the module docstring),
    in place: ``raw`` is a fresh array. Unlike binary integers, characters are not masked."""
    out = raw
    with np.errstate(all="ignore"):
        for ch in channels:
            f1, f2 = ch.pne
            if f1 > 0:
                out[:, ch.index] = _log_scale(out[:, ch.index], f1, f2, ch.pnr)
    _apply_linear(out, _linear_ops(channels, text))
    return out


def _flowio_text_check(
    buf: _FileBytes | _OpenFile,
    text: Mapping[str, str],
    layout: _Layout,
    header: _Header,
    p: Path,
) -> None:
    import flowio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fd = flowio.FlowData(
                buf.file(header.for_flowio),
                only_text=True,
                nextdata_offset=0,  # the data set chosen starts the buffer
                ignore_offset_error=layout.off_by_one,
                ignore_offset_discrepancy=layout.header_zero,
            )
    except (OSError, FCSFormatError):
        raise  # reading the file failed, or it shrank: said as such by the caller
    except Exception as exc:  # flowio raises many types; all mean "unreadable"
        raise FCSFormatError(p, f"flowio cannot parse its TEXT: {_one_line(exc)}") from None
    _cross_check(text, fd.text, layout.par, p)


def _ascii_data(buf: _FileBytes | _OpenFile, layout: _Layout, p: Path) -> NDArray[np.float64]:
    """$DATATYPE A: fixed-width character fields ($PnB characters each) or, where every $PnB
    is "*", numbers separated by spaces, tabs, commas or line breaks (FCS 3.1 §3.3.9)."""
    start, stop = layout.data
    segment = buf[start : stop + 1]
    try:
        text = segment.decode("ascii")
    except UnicodeDecodeError:
        raise FCSFormatError(p, "ASCII DATA segment holds non-ASCII bytes") from None
    n = layout.tot * layout.par
    widths = [b // 8 for b in layout.bits]
    try:
        if 0 in widths:
            tokens = [tok for tok in re.split(r"[\s,]+", text) if tok]
            if len(tokens) != n:
                raise FCSFormatError(
                    p, f"ASCII DATA holds {len(tokens)} values, not $TOT × $PAR = {n}"
                )
            values = np.array([float(tok) for tok in tokens], dtype=np.float64)
        else:
            row = sum(widths)
            edges = np.cumsum([0, *widths])
            values = np.array(
                [
                    float(text[i * row + a : i * row + b])
                    for i in range(layout.tot)
                    for a, b in itertools.pairwise(edges)
                ],
                dtype=np.float64,
            )
    except ValueError as exc:
        raise FCSFormatError(p, f"ASCII DATA holds a value that is not a number ({exc})") from None
    return values.reshape(layout.tot, layout.par)


def _binary_rows(buf: _FileBytes | _OpenFile, layout: _Layout) -> NDArray[Any] | _StreamedRows:
    """The DATA segment's binary values, one row per event, in their stored type: for 1-, 2-,
    4- or 8-byte values of one width, the rows as read block by block from an open file or
    a view of the bytes in memory; else unsigned 64-bit integers assembled byte by byte
    (3-byte values, or widths that differ between parameters)."""
    from nkpanel.flow.compensation import BLOCK_ROWS

    widths = [b // 8 for b in layout.bits]
    row = sum(widths)
    start = layout.data[0]
    kind = "u" if layout.datatype == "I" else "f"
    if len(set(widths)) == 1 and widths[0] in (1, 2, 4, 8):
        dtype = np.dtype(f"{layout.order}{kind}{widths[0]}")
        if isinstance(buf, _OpenFile) and row * BLOCK_ROWS <= _MAX_STREAMED_BLOCK_BYTES:
            return _StreamedRows(buf, start, layout.tot, layout.par, dtype)
        raw = buf.array[start : start + layout.tot * row]  # in the file: _check_keywords saw to it
        return raw.view(dtype).reshape(layout.tot, layout.par)
    raw = buf.array[start : start + layout.tot * row]
    cells = raw.reshape(layout.tot, row)
    out = np.zeros((layout.tot, layout.par), dtype=np.uint64)
    pos = 0
    for j, w in enumerate(widths):
        for k in range(w):
            shift = 8 * (k if layout.order == "<" else w - 1 - k)
            out[:, j] |= cells[:, pos + k].astype(np.uint64) << np.uint64(shift)
        pos += w
    return out


def _integer_steps(
    channels: Sequence[Channel], layout: _Layout
) -> tuple[list[tuple[int, int]], list[tuple[int, float, float, float]]]:
    """How integer channel values become scale values before any gain: the bit mask, as flowio
    applies it (the bits below the power of two at or above $PnR, where the values are wider),
    as ``(column, mask)``; and log amplification ($PnE ``f1,f2``: ``f2 · 10^(f1 · c / r)``)
    as ``(column, f1, f2, r)``."""
    masks: list[tuple[int, int]] = []
    logs: list[tuple[int, float, float, float]] = []
    for ch, b in zip(channels, layout.bits, strict=True):
        r = int(ch.pnr)  # a whole number: $PnR of integer data is read with _int_kw
        top = 1 << (r - 1).bit_length()
        if 2**b > top:
            masks.append((ch.index, top - 1))
        f1, f2 = ch.pne
        if f1 > 0:
            logs.append((ch.index, f1, f2, ch.pnr))
    return masks, logs


def _binary_data(
    buf: _FileBytes | _OpenFile,
    layout: _Layout,
    channels: Sequence[Channel],
    text: Mapping[str, str],
    unmix: tuple[list[int], NDArray[np.float64]] | None,
    p: Path,
    notes: list[str],
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None, NDArray[np.float64]]:
    """The binary DATA segment ($DATATYPE I, F or D) decoded into column-ordered float64 scale
    values, compensated with ``unmix`` when given, and each column's largest value. Integer
    values the bit mask changes are counted in ``notes``, per channel.

    Raises
    ------
    FCSFormatError
        A value that is not finite, in the file or once decoded.
    """
    rows = _binary_rows(buf, layout)
    ops = _linear_ops(channels, text)
    masks, logs = _integer_steps(channels, layout) if layout.datatype == "I" else ([], [])
    masked: list[tuple[int, int]] = []  # (column, values changed) per block

    def decode(stored: NDArray[Any], block: NDArray[np.float64]) -> None:
        for col, keep in masks:
            top = stored.dtype.type(keep)
            if stored[:, col].max() > top:  # values wider than the range: rare, so checked first
                block[:, col] = stored[:, col] & top
                masked.append((col, int(np.count_nonzero(stored[:, col] > top))))
        for col, f1, f2, r in logs:
            block[:, col] = _log_scale(block[:, col], f1, f2, r)

    decoded = [col for col, _ in masks] + [col for col, *_ in logs]
    done = _to_columns(rows, ops, unmix, decode, decoded)
    for col, keep in masks:
        changed = sum(n for c, n in masked if c == col)
        if changed:
            ch = channels[col]
            notes.append(
                f"{ch.pnn}: {changed} value(s) of {keep + 1} or more ($P{col + 1}R {ch.pnr:.0f}) "
                "lost their higher bits, as flowio and FlowKit read them"
            )
    if done is None:
        bad = 0
        if rows.dtype.kind == "f":
            stored = rows.whole() if isinstance(rows, _StreamedRows) else rows
            bad = int(np.count_nonzero(~np.isfinite(stored)))
        if bad:
            raise FCSFormatError(p, f"DATA segment holds {bad} non-finite values")
        raise FCSFormatError(
            p, "DATA values overflow once decoded with $PnE, $PnG or $TIMESTEP (not finite)"
        )
    return done


def _to_columns(
    rows: NDArray[Any] | _StreamedRows,
    ops: Sequence[tuple[int, str, float]],
    unmix: tuple[list[int], NDArray[np.float64]] | None,
    decode: Callable[[NDArray[Any], NDArray[np.float64]], None] | None = None,
    decoded: Sequence[int] = (),
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None, NDArray[np.float64]] | None:
    """Row-ordered file data → column-ordered float64 events, decoded with ``decode(stored,
    converted)`` (which may change the columns ``decoded``) and ``ops`` and, with ``unmix``,
    compensated too, with each column's largest value; ``None`` when a value is not finite.

    Block by block, by several threads: each block of rows (a few MB) is checked, converted,
    decoded and compensated while it is in the cache, which is what makes reading a million
    events a small multiple of copying their bytes. Each column's largest and smallest stored
    value in the block answer whether every value is finite (NaN makes both NaN, ±inf one of
    them) and give the column maxima the saturation check needs without another pass over
    the events; columns that decoding changes are looked at once decoded.
    """
    from nkpanel.flow.compensation import BLOCK_ROWS, unmix_block

    out = np.empty(rows.shape, dtype=np.float64, order="F")
    comp = None
    if unmix is not None:
        comp = np.empty((rows.shape[0], len(unmix[0])), dtype=np.float64, order="F")
    finite: list[bool] = []
    tops: list[NDArray[np.float64]] = []
    changed = sorted({col for col, _, _ in ops} | set(decoded))
    floats = rows.dtype.kind == "f"  # whole numbers are finite

    scratches: dict[int, NDArray[np.uint8]] = {}  # one per thread, for every range it takes

    def convert(start: int, stop: int) -> None:
        if isinstance(rows, _StreamedRows):
            scratch = scratches.get(threading.get_ident())
            if scratch is None:
                scratch = scratches[threading.get_ident()] = rows.scratch(
                    min(BLOCK_ROWS, rows.shape[0])
                )
            read = functools.partial(rows.read, scratch=scratch)
        else:
            read = functools.partial(_row_block, rows)
        for i in range(start, stop, BLOCK_ROWS):
            j = min(i + BLOCK_ROWS, stop)
            block = read(i, j)
            top = _column_extreme(block, np.maximum).astype(np.float64)
            ok = not floats or bool(
                np.isfinite(top).all() and np.isfinite(_column_extreme(block, np.minimum)).all()
            )
            out[i:j] = block
            if decode is not None:
                decode(block, out[i:j])
            _apply_linear(out[i:j], ops)
            for col in changed:  # decoding can overflow only the columns it changes
                values = out[i:j, col]
                top[col] = values.max()
                ok = ok and bool(np.isfinite(top[col]) and np.isfinite(values.min()))
            finite.append(ok)
            tops.append(top)
            if comp is not None and unmix is not None:
                unmix_block(out[i:j], comp[i:j], unmix[0], unmix[1])

    with np.errstate(invalid="ignore", over="ignore"):
        for_row_blocks(rows.shape[0], convert, align=BLOCK_ROWS)
    if not all(finite):
        return None
    return out, comp, np.maximum.reduce(tops, axis=0)


def _row_block(rows: NDArray[Any], i: int, j: int) -> NDArray[Any]:
    return rows[i:j]


#: rows whose values one step of :func:`_column_extreme` compares at a time
_EXTREME_ROWS = 256


def _column_extreme(block: NDArray[Any], ufunc: np.ufunc) -> NDArray[Any]:
    """Each column's largest (``np.maximum``) or smallest (``np.minimum``) value of a block of
    rows; NaN where the column holds one.

    Reduced down the rows, a row-ordered block of a few columns costs a short inner loop per
    row: taken :data:`_EXTREME_ROWS` rows at a time (a row of that many rows' values), the
    comparisons run over long rows instead, then the few partial results are reduced (the
    extremes, NaN included, are the same whatever the grouping)."""
    rows, cols = block.shape
    head = rows - rows % _EXTREME_ROWS
    parts: list[NDArray[Any]] = []
    if head:
        grouped = ufunc.reduce(block[:head].reshape(-1, _EXTREME_ROWS * cols), axis=0)
        parts.append(ufunc.reduce(grouped.reshape(_EXTREME_ROWS, cols), axis=0))
    if head < rows:
        parts.append(ufunc.reduce(block[head:], axis=0))
    if len(parts) == 1:
        return parts[0]
    extreme: NDArray[Any] = ufunc.reduce(parts, axis=0)
    return extreme


def _all_finite(events: NDArray[Any]) -> bool:
    """True when no value is NaN or infinite.

    NaN propagates through a sum and ±inf make it non-finite, so one reduction answers the
    common case without allocating a mask; only a sum that is not finite (which huge finite
    values can also give) is checked value by value."""
    with np.errstate(invalid="ignore", over="ignore"):
        if np.isfinite(np.add.reduce(events, axis=None)):
            return True
    return bool(np.isfinite(events).all())


#: channels exported with their values compensated ("Comp-FITC-A" from FACSDiva and FlowJo,
#: "FJComp-FITC-A" from FlowJo)
COMPENSATED_EXPORT = re.compile(r"^(?:FJ)?Comp-", re.IGNORECASE)


def _spillover_from_text(
    text: Mapping[str, str],
    channels: Sequence[Channel],
    p: Path,
    notes: list[str],
    supplied: bool = False,
) -> Spillover | None:
    """The file's spillover matrix, or ``None``. A keyword that cannot be used is an error,
    except where the file's channels are compensated exports of the channels it names (a stale
    matrix: used, it would compensate twice) or a matrix is supplied in its place (``supplied``):
    both said in a note (audit 33: either failed the file, even with --spillover)."""
    pnn = [c.pnn for c in channels]
    pns = [c.pns for c in channels]
    for key in SPILLOVER_KEYWORDS:
        value = text.get(key, "").strip()
        parts = value.split(",")
        if not value or parts[0].strip() in ("0", "0.0"):
            continue
        if (count := names_only_spillover(value)) is not None:
            # MACSQuant writes the channel names with no matrix
            notes.append(f"{spillover_keyword(key)} names {count} channels but holds no values")
            continue
        if key == "comp":
            try:
                spill = parse_spillover(value, pnn, source=str(p))
            except CompensationError:
                notes.append("$COMP (FCS 3.0 compensation) is not in $SPILLOVER form; not used")
                return None
        else:
            try:
                spill = parse_spillover(value, pnn, source=str(p), pns=pns)
            except CompensationError as exc:
                named = [x.strip() for x in parts[1:]]
                exported = [f for f in pnn if COMPENSATED_EXPORT.match(f)]
                if exported and any(COMPENSATED_EXPORT.sub("", f) in named for f in exported):
                    notes.append(
                        f"{spillover_keyword(key)} names the channels before compensation, "
                        f"which the file holds compensated ({exported[0]}…): not used"
                    )
                    return None
                if supplied:
                    notes.append(
                        f"{spillover_keyword(key)} cannot be used ({exc.cause}); the supplied "
                        "matrix is"
                    )
                    return None
                raise
        spill, note = unit_diagonal(spill, p)
        if note is not None:
            notes.append(f"{spillover_keyword(key)}: {note}")
        for other in SPILLOVER_KEYWORDS[SPILLOVER_KEYWORDS.index(key) + 1 :]:
            if _other_matrix(text.get(other, ""), pnn, spill):
                notes.append(
                    f"{spillover_keyword(other)} holds another matrix than "
                    f"{spillover_keyword(key)}, which is used"
                )
        return spill
    return None


def spillover_keyword(key: str) -> str:
    """A spillover keyword as files write it: ``$SPILLOVER``, ``SPILL`` (no "$": it was
    never a standard keyword), ``$COMP``."""
    return key.upper() if key == "spill" else f"${key.upper()}"


def _other_matrix(value: str, pnn: Sequence[str], used: Spillover) -> bool:
    """Whether a second spillover keyword holds a matrix that differs from ``used``."""
    if not value.strip() or names_only_spillover(value) is not None:
        return False
    try:
        other, _ = unit_diagonal(parse_spillover(value, pnn), None)
    except CompensationError:
        return False
    return other != used


def read_fcs(
    path: str | Path, *, compensate: bool | Spillover = False, dataset: int | None = None
) -> FlowSample:
    """Read one FCS file (2.0, 3.0, 3.1) into a :class:`FlowSample`.

    Parameters
    ----------
    path
        The FCS file.
    compensate
        Also compensate the detector channels while reading them: ``True`` with the file's own
        spillover matrix (when it has one), or with the matrix given. The values are kept in
        :attr:`FlowSample.detector_columns` for :mod:`nkpanel.flow.compensation`; for a large
        file this saves a second pass through memory.
    dataset
        Which data set of a file that holds several ($NEXTDATA), counting from 1. Default: the
        first, or the FCS 3 data set of a Beckman Coulter FCS 2 + FCS 3 pair; a note says
        which was read.

    Returns
    -------
    FlowSample
        Events converted to scale values ($PnE, $PnG, $TIMESTEP; see the module docstring),
        every TEXT keyword as metadata, the spillover matrix from $SPILLOVER or SPILL when
        present, and notes on recoverable oddities.

    Raises
    ------
    FCSFormatError
        Empty, not FCS, truncated, offsets outside the file or overlapping, $PAR or $TOT that
        disagree with the DATA segment, absurd keyword values, a data set the file does not
        hold, ASCII values that are not numbers, histogram data, or any other failure of the
        parser. The message starts with the path.
    CompensationError
        A spillover keyword that is present but cannot be used (wrong size, singular, naming a
        channel the file does not have), or a ``compensate`` matrix that does not fit.

    Examples
    --------
    >>> sample = read_fcs("68983.fcs")  # doctest: +SKIP
    >>> sample.events.shape  # doctest: +SKIP
    (19225, 18)
    """
    p = Path(path)
    with contextlib.ExitStack() as held:

        def buffer(size: int) -> NDArray[np.uint8]:
            return held.enter_context(_buffer(size))

        try:
            buf = _open_file(p, buffer, held)
            # the file is read as the reader goes (its DATA block by block): an error of the
            # file system can come up at any point
            return _read_buffer(buf, p, compensate, dataset)
        except OSError as exc:
            raise FCSFormatError(p, exc.strerror or _one_line(exc)) from None


#: a channel's $PnR is taken to be wrong where more than this share of its events lie above it
#: (saturated events pile at the top of a right range: a few percent, which the saturation
#: check judges; 1.2% of clumps just above it had re-ranged a tube's scatter: review 36)
RANGE_EXCEEDED_FRACTION = 0.10
#: a scatter channel's $PnR is taken to be wrong where all its data lie under this share of it
RANGE_FAR_ABOVE = 0.001
#: channels whose values all stay within this are taken as already transformed: raw (linear)
#: stained cells read in the thousands on a flow cytometer and hundreds of counts on a mass
#: cytometer, and scatter hundreds at least, while logicle and asinh scales end near 4.5 and 10
TRANSFORMED_MAX = 20.0


def _ranges_from_data(
    channels: Sequence[Channel],
    events: NDArray[np.float64],
    maxima: NDArray[np.float64] | None,
    notes: list[str],
) -> list[Channel]:
    """The channels, with the range of any whose values mostly lie beyond its $PnR taken from
    the data: the next power of two at or above its largest value, as instruments' ranges are.

    A program that rewrote the file can leave a range that is not the instrument's (a Cytek
    Aurora's 4,194,304 written as 262,144: audit 31). Left as it was, every event above it
    counted as saturated, the singlet gate found no event off the "pinned" top, and the
    logicle scale ended far below the data. A scatter channel's range more than a thousand
    times above all its data is taken from them likewise (:data:`RANGE_FAR_ABOVE`). Channels
    that shared a scatter's old range take its new one, never one below their own data.
    """
    out = list(channels)
    n = events.shape[0]
    if n == 0:
        return out
    tops = maxima if maxima is not None else events.max(axis=0)
    said: list[str] = []
    far: list[str] = []
    # a scatter's data fill a good part of its digitiser's range: where every scatter
    # channel's lie thousands of times below it, the range is no instrument's ($PnR 2^32 over
    # float data put every channel's logicle scale far above its data, and the side scatter
    # was taken for a dead detector: audit 33). One scatter near its range (a Guava Muse's
    # linear FSC beside its FSC in decades) says the range is the instrument's
    linear_scatter = [
        i for i, ch in enumerate(channels) if _scatter(ch) and not ch.is_log_amplified
    ]
    # (a scatter written already transformed, asinh or log10 values of 0-8, is no range
    # error: taken from the data, it was gated as linear and read NK 63.8% for 12.2: review 38)
    all_far = bool(linear_scatter) and all(
        TRANSFORMED_MAX < tops[i] < RANGE_FAR_ABOVE * channels[i].top for i in linear_scatter
    )
    for i, ch in enumerate(channels):
        if not _rangeable(ch):
            continue
        if all_far and i in linear_scatter:
            pnr = _range_of(ch, float(tops[i]))
            out[i] = dataclasses.replace(ch, pnr=pnr)
            far.append(f"{ch.pnn} ($P{ch.index + 1}R {ch.pnr:g}, data up to {tops[i]:.3g})")
            continue
        if not tops[i] > ch.top:
            continue
        above = int(np.count_nonzero(events[:, i] > ch.top))
        if above <= RANGE_EXCEEDED_FRACTION * n:
            continue  # a few values past the top are saturated events, as they are counted
        pnr = _range_of(ch, float(tops[i]))
        out[i] = dataclasses.replace(ch, pnr=pnr)
        said.append(
            f"{ch.pnn} ($P{ch.index + 1}R {ch.pnr:g}: {100 * above / n:.3g}% of events above "
            f"it, up to {tops[i]:.3g}; taken as {pnr:.0f})"
        )
    # the scatter channels read the instrument's digitiser: where their range was rewritten,
    # every channel that shared it had the instrument's range too (review 34: the Aurora's
    # CD3 and CD56 kept 262,144 beside scatter taken as 4,194,304, and NK-like T read 3.6%
    # for 5.8 with the file's ranges corrected by hand)
    scatter = [
        (channels[i].pnr, out[i].pnr)
        for i in range(len(out))
        if out[i].pnr != channels[i].pnr and _scatter(channels[i])
    ]
    shared: list[str] = []
    # the largest of the scatter's new ranges, where one old range gave several
    for old_range, new_range in sorted(dict(sorted(scatter, key=lambda r: r[1])).items()):
        for i, ch in enumerate(channels):
            if ch.pnr != old_range or not _rangeable(ch):
                continue
            # never below the channel's own data
            wanted = max(new_range, _range_of(ch, float(tops[i])))
            if out[i].pnr != wanted:
                out[i] = dataclasses.replace(ch, pnr=wanted)
                shared.append(ch.pnn)
    if said:
        notes.append(
            f"values lie above the file's range on {len(said)} channel"
            f"{'s' if len(said) > 1 else ''}: {'; '.join(said)}; "
            "each range is taken from its data (was the file rewritten by another program?)"
            + (
                f"; the scatter's range is taken for {', '.join(shared)}, which shared it"
                if shared
                else ""
            )
        )
    if far:
        notes.append(
            f"the file's range lies thousands of times above the scatter's data: "
            f"{'; '.join(far)}; the range is taken from the data"
            + (f", and for {', '.join(shared)}, which shared it" if shared and not said else "")
        )
    return out


def _range_of(channel: Channel, top: float) -> float:
    """The range an instrument would give data reaching ``top`` on ``channel``: the next
    power of two at or above it (on the scale before $PnG)."""
    gain = channel.png if channel.png > 0 else 1.0
    pnr = top * gain
    return float(2.0 ** np.ceil(np.log2(pnr))) if 0 < pnr < 2.0**1023 else pnr


def _rangeable(channel: Channel) -> bool:
    """Whether ``channel``'s range may be taken from its data: linear, and no time counter."""
    return not channel.is_log_amplified and channel.pnn.lower() != "time"


def _scatter(channel: Channel) -> bool:
    """Whether ``channel`` is a forward or side scatter, by its name (the digitiser's range)."""
    return re.match(r"(?i)(fsc|ssc)", channel.pnn) is not None


#: at most this many data sets are looked for in one file (a loop of $NEXTDATA is refused)
MAX_DATA_SETS = 1000


@dataclass(frozen=True)
class _DataSet:
    """One data set of a file: where it starts, and its HEADER and TEXT as parsed (offsets
    count from ``base``)."""

    base: int
    header: _Header
    text: _Text


def _data_sets(
    buf: _FileBytes | _OpenFile, p: Path, notes: list[str], wanted: int | None = None
) -> list[_DataSet]:
    """Each data set of the file: where it starts, its HEADER and its TEXT.

    $NEXTDATA is the offset of the next data set from the start of the current one (FCS 3.1
    §3.2.20); 0 ends the chain. Some instruments (Millipore/Guava) write $ENDDATA + 1 with no
    further data set: an offset at or past the end of the file, or to bytes that are no FCS
    header, ends the chain with a note. A later data set that cannot be parsed ends the chain
    with a note when an earlier one (``wanted``) is asked for, and is an error naming it
    otherwise.
    """
    sets: list[_DataSet] = []
    base = 0
    while True:
        k = len(sets) + 1
        view = buf if base == 0 else buf.tail(base)
        try:
            header = _parse_header(view, p)
            parsed = _split_text(view[header.text[0] : header.text[1] + 1])
        except FCSFormatError as exc:
            if k == 1:
                raise
            where = f"data set {k} (byte {base}, from $NEXTDATA of data set {k - 1})"
            if wanted is not None and wanted < k:
                notes.append(f"{where} cannot be read and was not asked for: {exc.cause}")
                return sets
            raise FCSFormatError(
                p, f"{where}: {exc.cause}; --dataset 1 reads the first alone"
            ) from None
        sets.append(_DataSet(base, header, parsed))
        raw = parsed.keywords.get("nextdata", "0")
        try:
            nextdata = int(raw.strip())
        except ValueError:
            raise FCSFormatError(p, f"$NEXTDATA {_short(raw)} is not a whole number") from None
        if nextdata == 0:
            return sets
        if nextdata < 0:
            raise FCSFormatError(p, f"$NEXTDATA {nextdata} points back into the file")
        following = base + nextdata
        if following >= len(buf) or buf[following : following + 3] != b"FCS":
            notes.append(
                f"$NEXTDATA of data set {len(sets)} points to byte {following}, where no "
                "further data set starts; ignored"
            )
            return sets
        if len(sets) >= MAX_DATA_SETS:
            raise FCSFormatError(p, f"more than {MAX_DATA_SETS} data sets ($NEXTDATA loop?)")
        base = following


def _choose_data_set(
    sets: Sequence[_DataSet], dataset: int | None, p: Path, notes: list[str]
) -> int:
    """The data set to read (``dataset`` counts from 1).

    By default the first; except in Beckman Coulter's list-mode files (Navios, Gallios), which
    hold the same events twice: an FCS 2.0 data set of compensated, log-scaled 10-bit values,
    then an FCS 3.0 data set of uncompensated full-resolution values (FlowKit issue #104). The
    analysis compensates and scales the events itself, so it reads the FCS 3 data set.
    """
    if dataset is not None:
        if not 1 <= dataset <= len(sets):
            raise FCSFormatError(p, f"data set {dataset} asked for, but the file holds {len(sets)}")
        chosen = dataset
    elif (
        len(sets) == 2
        and sets[0].header.version == "2.0"
        and sets[1].header.version.startswith("3.")
    ):
        chosen = 2
    else:
        chosen = 1
    if len(sets) > 1:
        kinds = ", ".join(f"{i} (FCS {s.header.version})" for i, s in enumerate(sets, start=1))
        why = (
            "as asked"
            if dataset is not None
            else (
                "the full-resolution FCS 3 data set of an FCS 2 + FCS 3 pair"
                if chosen == 2
                else "the first; choose another with --dataset"
            )
        )
        notes.append(
            f"the file holds {len(sets)} data sets: {kinds}; data set {chosen} read ({why})"
        )
    return chosen


def _read_buffer(
    data: bytes | _FileBytes | _OpenFile,
    p: Path,
    compensate: bool | Spillover = False,
    dataset: int | None = None,
) -> FlowSample:
    buf = data if isinstance(data, _FileBytes | _OpenFile) else _FileBytes(data)
    notes: list[str] = []
    sets = _data_sets(buf, p, notes, dataset)
    chosen = _choose_data_set(sets, dataset, p, notes)
    base, header, parsed = sets[chosen - 1].base, sets[chosen - 1].header, sets[chosen - 1].text
    if base:
        buf = buf.tail(base)  # every offset of a data set counts from its start
    text, delim = parsed.keywords, parsed.delimiter
    if delim in _FLOWIO_BAD_DELIMITERS:
        raise FCSFormatError(p, f"TEXT delimiter {delim!r} cannot be parsed by flowio")
    if not parsed.closed:
        # no tolerance here: a TEXT cut short reads as a whole one (keywords past the cut, the
        # spillover matrix among them, silently lost), and flowio would drop the last character
        raise FCSFormatError(
            p,
            f"TEXT segment {header.text[0]}–{header.text[1]} does not end with its delimiter "
            f"{delim!r} (wrong TEXT offsets or a truncated keyword)",
        )
    if parsed.odd_run:
        raise FCSFormatError(
            p,
            f"a TEXT keyword or value starts or ends with the delimiter {delim!r}, "
            "which flowio cannot parse",
        )
    layout, channels = _check_keywords(text, header, len(buf), p, notes)
    _check_analysis(text, header, buf, p)
    _cross_check(text, parsed.flowio_view, layout.par, p)

    spill = _spillover_from_text(
        text, channels, p, notes, supplied=isinstance(compensate, Spillover)
    )
    with_matrix = (
        on_file_channels(compensate, channels, p)
        if isinstance(compensate, Spillover)
        else spill
        if compensate
        else None
    )
    unmix = None
    if with_matrix is not None:
        from nkpanel.flow.compensation import unmixing

        unmix = unmixing(with_matrix, [c.pnn for c in channels], p)
    comp: NDArray[np.float64] | None = None
    events_max: NDArray[np.float64] | None = None
    if layout.tot == 0:
        events = np.zeros((0, layout.par), dtype=np.float64)
        notes.append("the file holds no events ($TOT 0)")
    elif layout.datatype == "A":
        # flowio does not decode ASCII data: its TEXT is still parsed and checked by flowio
        _flowio_text_check(buf, text, layout, header, p)
        events = np.asfortranarray(_decode_ascii(_ascii_data(buf, layout, p), channels, text))
        if not _all_finite(events):
            bad = int(np.count_nonzero(~np.isfinite(events)))
            raise FCSFormatError(p, f"DATA segment holds {bad} non-finite values")
    else:
        # flowio parses the TEXT (and must agree with nkpanel's reading of it); NumPy then
        # reads, decodes and compensates the DATA, validated against the TEXT and the file
        # size, straight into columns in one pass
        _flowio_text_check(buf, text, layout, header, p)
        events, comp, events_max = _binary_data(buf, layout, channels, text, unmix, p, notes)
    events.setflags(write=False)
    channels = _ranges_from_data(channels, events, events_max, notes)
    sample = FlowSample(
        name=p.stem,
        channels=tuple(channels),
        events=events,
        metadata=MappingProxyType(dict(text)),
        spillover=spill,
        version=header.version,
        path=p,
        notes=tuple(notes),
        dataset=chosen,
        dataset_offset=base,
        events_max=None if events_max is None else _ColumnMaxima(events, events_max),
    )
    if with_matrix is None or unmix is None:  # unmix is set whenever with_matrix is
        return sample
    if comp is None:
        from nkpanel.flow.compensation import detector_columns

        comp = detector_columns(events, unmix[0], unmix[1])
    comp.setflags(write=False)
    return dataclasses.replace(sample, detector_columns=comp, compensated_with=with_matrix)
