"""A tiny FCS writer for tests only: synthetic FCS 2.0/3.0/3.1 files, good and deliberately broken.

Everything it writes is synthetic (``$CYT/nkpanel-test-synthetic/``). Values are written as given:
``events`` are channel values exactly as they are to be stored (integers for $DATATYPE I, before
any $PnE/$PnG decoding), so a test can compute the expected scale values by hand.

The layout is HEADER (58 bytes), TEXT, DATA, in that order, with $BEGINDATA/$ENDDATA in TEXT for
FCS 3.x. ``keywords`` override or add TEXT keywords after the defaults are filled in (so a test
can write an absurd $TOT while the offsets stay right); ``drop`` leaves keywords out; and the
``header_*`` arguments overwrite HEADER fields after layout. Reference: FCS 3.1 (Spidlen et al.,
Cytometry A 2010;77:97-100).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

HEADER_BYTES = 58


def _escape(text: str, delim: str) -> str:
    return text.replace(delim, delim * 2)


def _pack_data(events: np.ndarray, datatype: str, bits: Sequence[int], byteorder: str) -> bytes:
    bo = "<" if byteorder == "little" else ">"
    n_ev = events.shape[0]
    if n_ev == 0:
        return b""
    if datatype == "F":
        return events.astype(f"{bo}f4").tobytes()
    if datatype == "D":
        return events.astype(f"{bo}f8").tobytes()
    if datatype == "A":
        rows = []
        for row in events:
            rows.append("".join(str(int(v)).rjust(b) for v, b in zip(row, bits, strict=True)))
        return "".join(rows).encode("ascii")
    if datatype == "I":
        if len(set(bits)) == 1 and bits[0] in (8, 16, 32, 64):
            width = bits[0] // 8
            return events.astype(np.int64).astype(f"{bo}u{width}").tobytes()
        if set(bits) <= {8, 16, 32}:
            codes = {8: "B", 16: "H", 32: "I"}
            fmt = bo + "".join(codes[b] for b in bits)
            return b"".join(struct.pack(fmt, *(int(v) for v in row)) for row in events)
        # other whole-byte widths (24 bits: Cytek xP5), one value at a time
        order = "little" if byteorder == "little" else "big"
        return b"".join(
            int(v).to_bytes(b // 8, order) for row in events for v, b in zip(row, bits, strict=True)
        )
    raise ValueError(f"unknown datatype {datatype}")


def build_fcs(
    events: ArrayLike,
    pnn: Sequence[str],
    *,
    version: str = "3.1",
    datatype: str = "F",
    bits: int | Sequence[int] | None = None,
    byteorder: str = "little",
    pns: Sequence[str] | None = None,
    pne: Sequence[str] | None = None,
    png: Sequence[str | float] | None = None,
    pnr: Sequence[str | float] | None = None,
    keywords: Mapping[str, str] | None = None,
    drop: Iterable[str] = (),
    delimiter: str = "/",
    escape: bool = True,
    text_start: int = HEADER_BYTES,
    data: bytes | None = None,
    header_text: tuple[int | str, int | str] | None = None,
    header_data: tuple[int | str, int | str] | None = None,
    header_analysis: tuple[int | str, int | str] | None = None,
    trailer: bytes = b"",
) -> bytes:
    """Bytes of one FCS file.

    Parameters
    ----------
    events
        Stored channel values, one row per event.
    pnn
        $PnN names.
    version
        "2.0", "3.0" or "3.1".
    datatype
        "I", "F", "D" or "A".
    bits
        $PnB for every parameter (one int) or per parameter; defaults 16 (I), 32 (F), 64 (D),
        8 characters (A).
    byteorder
        "little" ($BYTEORD 1,2,3,4) or "big" (4,3,2,1).
    pns, pne, png, pnr
        Per-parameter $PnS, $PnE (e.g. "4,1"), $PnG and $PnR; $PnE defaults to "0,0" and $PnR to
        1024 (I) or 262144.
    keywords
        TEXT keywords to add or override, written as they go in the file (``{"$TOT": "5"}``).
    drop
        Keywords (as written, e.g. "$P2N") to leave out.
    delimiter, escape
        The TEXT delimiter, and whether a delimiter inside a keyword or value is doubled (as
        FCS requires); ``escape=False`` writes a deliberately ambiguous TEXT.
    data
        DATA bytes to write instead of the packed events (offsets follow their length).
    header_text, header_data, header_analysis
        Overwrite the HEADER offset fields (ints or raw 8-character strings).
    trailer
        Bytes appended after DATA (outside every segment).
    """
    arr = np.asarray(events, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(pnn):
        raise ValueError("events must be events × len(pnn)")
    n_ev, n_par = arr.shape
    default_bits = {"I": 16, "F": 32, "D": 64, "A": 8}[datatype]
    if bits is None:
        bit_list = [default_bits] * n_par
    elif isinstance(bits, int):
        bit_list = [bits] * n_par
    else:
        bit_list = list(bits)
    payload = data if data is not None else _pack_data(arr, datatype, bit_list, byteorder)

    kw: dict[str, str] = {
        "$BYTEORD": "1,2,3,4" if byteorder == "little" else "4,3,2,1",
        "$DATATYPE": datatype,
        "$MODE": "L",
        "$NEXTDATA": "0",
        "$PAR": str(n_par),
        "$TOT": str(n_ev),
        "$CYT": "nkpanel-test-synthetic",
    }
    if version != "2.0":
        kw["$BEGINANALYSIS"] = "0"
        kw["$ENDANALYSIS"] = "0"
        kw["$BEGINSTEXT"] = "0"
        kw["$ENDSTEXT"] = "0"
    for i in range(n_par):
        n = i + 1
        kw[f"$P{n}N"] = pnn[i]
        kw[f"$P{n}B"] = str(bit_list[i])
        kw[f"$P{n}E"] = pne[i] if pne is not None else "0,0"
        default_range = 1024 if datatype in ("I", "A") else 262144
        kw[f"$P{n}R"] = str(pnr[i]) if pnr is not None else str(default_range)
        if pns is not None and pns[i]:
            kw[f"$P{n}S"] = pns[i]
        if png is not None:
            kw[f"$P{n}G"] = str(png[i])
    if keywords:
        kw.update(keywords)
    dropped = set(drop)
    for key in dropped:
        kw.pop(key, None)

    def text_for(begin: int, end: int) -> bytes:
        items = dict(kw)
        if version != "2.0":
            for key, val in (("$BEGINDATA", begin), ("$ENDDATA", end)):
                if key not in dropped:
                    items.setdefault(key, str(val))
        d = delimiter

        def esc(t: str) -> str:
            return _escape(t, d) if escape else t

        body = d + "".join(f"{esc(k)}{d}{esc(v)}{d}" for k, v in items.items())
        return body.encode("utf-8")

    # offsets depend on the TEXT length, which depends on the offsets: iterate to a fixed point
    begin = end = 0
    for _ in range(10):
        text = text_for(begin, end)
        new_begin = text_start + len(text)
        new_end = new_begin + len(payload) - 1 if payload else 0
        if not payload:
            new_begin = 0
        if (new_begin, new_end) == (begin, end):
            break
        begin, end = new_begin, new_end
    text = text_for(begin, end)
    t0, t1 = text_start, text_start + len(text) - 1

    def field(v: int | str) -> bytes:
        s = v if isinstance(v, str) else str(v)
        return s.rjust(8)[:8].encode("ascii")

    hdr_text = header_text if header_text is not None else (t0, t1)
    hdr_data = header_data if header_data is not None else (begin, end)
    hdr_an = header_analysis if header_analysis is not None else (0, 0)
    header = (
        f"FCS{version}".encode("ascii")
        + b"    "
        + b"".join(field(v) for v in (*hdr_text, *hdr_data, *hdr_an))
    )
    assert len(header) == HEADER_BYTES
    pad = b" " * (text_start - HEADER_BYTES)
    return header + pad + text + payload + trailer


def set_header_field(buf: bytes, index: int, value: int | str) -> bytes:
    """Overwrite HEADER offset field ``index`` (0 TEXT start … 5 ANALYSIS end)."""
    s = value if isinstance(value, str) else str(value)
    raw = s.rjust(8)[:8].encode("ascii")
    at = 10 + 8 * index
    return buf[:at] + raw + buf[at + 8 :]


def text_span(buf: bytes) -> tuple[int, int]:
    """Inclusive byte offsets of the TEXT segment as the HEADER gives them."""
    return int(buf[10:18]), int(buf[18:26])


def data_span(buf: bytes) -> tuple[int, int]:
    """Inclusive byte offsets of the DATA segment as the HEADER gives them."""
    return int(buf[26:34]), int(buf[34:42])


def edit_text_value(buf: bytes, key: str, value: str) -> bytes:
    """Replace one TEXT keyword's value in place, leaving every offset as it was.

    The TEXT segment changes length when ``value`` does, so the DATA offsets then point to the
    wrong bytes: a deliberately broken file unless the lengths match.
    """
    t0, t1 = text_span(buf)
    seg = buf[t0 : t1 + 1]
    d = seg[:1]
    needle = d + key.encode("utf-8") + d
    at = seg.find(needle)
    if at < 0:
        raise KeyError(key)
    v0 = at + len(needle)
    v1 = seg.find(d, v0)
    new_seg = seg[:v0] + value.encode("utf-8") + seg[v1:]
    shift = len(new_seg) - len(seg)
    out = buf[:t0] + new_seg + buf[t1 + 1 :]
    return set_header_field(out, 1, t1 + shift)
