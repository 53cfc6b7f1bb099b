"""Reading FCS files into a :class:`FlowSample`: events on their linear scale plus the keywords.

FCS 2.0, 3.0 and 3.1 with every data type are parsed by flowio; this module validates what it
returns and turns every failure into a one-line :class:`~nkpanel.errors.FCSFormatError` naming the
file and the cause.

References
----------
Spidlen J et al. Data File Standard for Flow Cytometry, version FCS 3.1. Cytometry A 2010;77:97-100.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from nkpanel.errors import CompensationError, FCSFormatError

__all__ = ["Channel", "FlowSample", "Spillover", "parse_spillover", "read_fcs"]

#: keywords (lower case, without "$") that may carry a spillover matrix, in order of preference
SPILLOVER_KEYWORDS = ("spillover", "spill", "comp")
#: keywords kept as metadata in every result
KEPT_KEYWORDS = ("cyt", "date", "btim", "etim", "timestep", "tot", "par", "fil", "src", "cytsn")
#: an FCS file claiming more than this many events or parameters is refused before allocation
MAX_EVENTS = 200_000_000
MAX_PARAMETERS = 10_000


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


@dataclass(frozen=True)
class Spillover:
    """A spillover matrix: ``matrix[i, j]`` is the fraction of dye ``i`` seen in detector ``j``."""

    channels: tuple[str, ...]
    matrix: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.channels)
        if self.matrix.shape != (n, n):
            raise CompensationError(
                None, f"spillover matrix is {self.matrix.shape}, expected {n}×{n} for {n} channels"
            )
        if not np.all(np.isfinite(self.matrix)):
            raise CompensationError(None, "spillover matrix holds non-finite values")
        if n and np.linalg.cond(self.matrix) > 1e12:
            raise CompensationError(None, "spillover matrix is singular and cannot be inverted")


@dataclass(frozen=True, eq=False)
class FlowSample:
    """Events of one FCS data set on their linear (uncompensated) scale.

    ``events`` has one row per event, in file order, and one column per channel; $PnE
    log amplification and $PnG gain are already decoded, and Time is in seconds where
    $TIMESTEP is given.
    """

    name: str
    channels: tuple[Channel, ...]
    events: NDArray[np.float64]
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    spillover: Spillover | None = None
    version: str = "3.1"
    path: Path | None = None

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
        arr = np.asarray(events, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(pnn):
            raise FCSFormatError(name, f"events of shape {arr.shape} do not fit {len(pnn)} names")
        labels = list(pns) if pns is not None else [""] * len(pnn)
        chans = tuple(Channel(i, n, s) for i, (n, s) in enumerate(zip(pnn, labels, strict=True)))
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


def parse_spillover(text: str, pnn: Sequence[str], *, source: str | None = None) -> Spillover:
    """Parse a $SPILLOVER / SPILL keyword value.

    The value is ``n, name_1 … name_n, m_11 … m_nn`` (row-major); names may also be 1-based
    channel numbers, as some instruments write them.
    """
    parts = [p.strip() for p in text.split(",")]
    try:
        n = int(float(parts[0]))
    except (ValueError, IndexError):
        raise CompensationError(
            source, f"spillover keyword does not start with a count: {text[:40]!r}"
        ) from None
    if n < 1 or n > len(pnn) or len(parts) != 1 + n + n * n:
        raise CompensationError(
            source,
            f"spillover keyword declares {n} channels but holds {len(parts) - 1} values "
            f"(expected {n + n * n}) for a file of {len(pnn)} channels",
        )
    names: list[str] = []
    for raw in parts[1 : 1 + n]:
        if raw in pnn:
            names.append(raw)
        elif raw.isdigit() and 1 <= int(raw) <= len(pnn):
            names.append(pnn[int(raw) - 1])
        else:
            raise CompensationError(source, f"spillover names channel {raw!r}, not in the file")
    try:
        values = np.array([float(v) for v in parts[1 + n :]], dtype=np.float64).reshape(n, n)
    except ValueError:
        raise CompensationError(source, "spillover matrix holds a non-numeric value") from None
    try:
        return Spillover(tuple(names), values)
    except CompensationError as exc:
        raise CompensationError(source, exc.cause) from None


def _fcs_error(path: Path, cause: str) -> FCSFormatError:
    return FCSFormatError(path, cause)


def _check_header(path: Path, head: bytes, size: int) -> None:
    if size == 0:
        raise _fcs_error(path, "file is empty")
    if not head.startswith(b"FCS"):
        raise _fcs_error(path, "not an FCS file (no FCS version in the first bytes)")
    version = head[3:6].decode("ascii", "replace")
    if version not in ("2.0", "3.0", "3.1", "3.2"):
        raise _fcs_error(path, f"unsupported FCS version {head[:6].decode('ascii', 'replace')!r}")
    if size < 58:
        raise _fcs_error(path, "file is truncated inside its 58-byte header")
    try:
        text_start, text_end = int(head[10:18]), int(head[18:26])
    except ValueError:
        raise _fcs_error(path, "header TEXT offsets are not numbers") from None
    if not 0 < text_start <= text_end < size:
        raise _fcs_error(
            path, f"header TEXT offsets {text_start}–{text_end} lie outside the file ({size} bytes)"
        )


def read_fcs(path: str | Path) -> FlowSample:
    """Read one FCS file (2.0, 3.0, 3.1) into a :class:`FlowSample`.

    Parameters
    ----------
    path
        The FCS file.

    Returns
    -------
    FlowSample
        Events with $PnE/$PnG decoded (flowio's preprocessing), keywords as metadata, and the
        spillover matrix from $SPILLOVER, SPILL or $COMP when present.

    Raises
    ------
    FCSFormatError
        Empty, not FCS, truncated, offsets outside the file, $PAR or $TOT that disagree with the
        data, absurd header values, or any other failure of the parser.
    CompensationError
        A spillover keyword that is present but cannot be used.
    """
    import flowio

    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as fh:
            head = fh.read(58)
    except OSError as exc:
        raise _fcs_error(p, exc.strerror or str(exc)) from None
    _check_header(p, head, size)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fd = flowio.FlowData(str(p))
    except Exception as exc:  # flowio raises many types; all mean "unreadable"
        raise _fcs_error(p, f"unreadable FCS data: {_one_line(exc)}") from None

    text: dict[str, str] = {str(k).lower().lstrip("$"): str(v) for k, v in fd.text.items()}
    try:
        n_par = int(text.get("par", "-1"))
        n_tot = int(text.get("tot", "-1"))
    except ValueError:
        raise _fcs_error(p, "$PAR or $TOT is not a number") from None
    if not 0 < n_par <= MAX_PARAMETERS:
        raise _fcs_error(p, f"absurd $PAR value {n_par}")
    if not 0 <= n_tot <= MAX_EVENTS:
        raise _fcs_error(p, f"absurd $TOT value {n_tot}")
    if fd.channel_count != n_par:
        raise _fcs_error(p, f"$PAR says {n_par} parameters but {fd.channel_count} are described")

    channels: list[Channel] = []
    for i in range(n_par):
        meta = fd.channels.get(i + 1) or fd.channels.get(str(i + 1)) or {}
        pnn = str(meta.get("pnn") or text.get(f"p{i + 1}n") or f"P{i + 1}").strip()
        pns = str(meta.get("pns") or text.get(f"p{i + 1}s") or "").strip()
        pne_raw = meta.get("pne", (0.0, 0.0))
        pne = (float(pne_raw[0]), float(pne_raw[1])) if pne_raw else (0.0, 0.0)
        png = float(meta.get("png", 1.0) or 1.0)
        pnr = float(meta.get("pnr", 262144.0) or 262144.0)
        channels.append(Channel(i, pnn, pns, pne, png, pnr))
    if len({c.pnn for c in channels}) != len(channels):
        raise _fcs_error(p, "two parameters share one $PnN name")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            events = np.ascontiguousarray(fd.as_array(preprocess=True), dtype=np.float64)
    except Exception as exc:
        raise _fcs_error(p, f"cannot decode the DATA segment: {_one_line(exc)}") from None
    if events.ndim != 2 or events.shape[1] != n_par:
        raise _fcs_error(p, f"DATA segment does not hold {n_par} parameters per event")
    if n_tot >= 0 and events.shape[0] != n_tot:
        raise _fcs_error(
            p, f"$TOT says {n_tot} events but the DATA segment holds {events.shape[0]}"
        )
    if events.size and not np.all(np.isfinite(events)):
        bad = int(np.count_nonzero(~np.isfinite(events)))
        raise _fcs_error(p, f"DATA segment holds {bad} non-finite values")
    events.setflags(write=False)

    spill = None
    pnn_list = [c.pnn for c in channels]
    for key in SPILLOVER_KEYWORDS:
        if text.get(key, "").strip():
            spill = parse_spillover(text[key], pnn_list, source=str(p))
            break

    return FlowSample(
        name=p.stem,
        channels=tuple(channels),
        events=events,
        metadata=MappingProxyType(text),
        spillover=spill,
        version=str(fd.version),
        path=p,
    )


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if len(msg) <= 160 else msg[:157] + "..."
