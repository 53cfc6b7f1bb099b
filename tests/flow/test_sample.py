"""Reading FCS files: decoded values against hand calculations, FlowKit and the Gating-ML 2.0
compliance results; the real public files; and one clear error line for every kind of bad input.

Synthetic files come from :mod:`tests.flow.fcs_bytes` (labelled synthetic in $CYT).
"""

from __future__ import annotations

import math
import os
import sys
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from nkpanel.errors import CompensationError, FCSFormatError, InputError
from nkpanel.flow.sample import FlowSample, read_fcs
from tests.flow.fcs_bytes import (
    build_fcs,
    data_span,
    edit_text_value,
    set_header_field,
    text_span,
)
from tests.flow.test_transforms import GML_DIR, compliance_gates, evaluate_rectangle, gml_truth

PNN = ["FSC-A", "CD3", "CD56", "Time"]
PNS = ["", "CD3 FITC", "CD56 PE", ""]
# stored channel values; with $PnR 1024 and $PnE 4,x the chosen values decode to round numbers
RAW = np.array(
    [
        [0, 0, 0, 0],
        [100, 256, 512, 10],
        [1000, 512, 768, 20],
        [1023, 768, 256, 1023],
        [7, 1023, 1, 500],
    ],
    dtype=np.float64,
)


def write(tmp_path: Path, data: bytes, name: str = "t.fcs") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def flowkit_events(path: Path) -> NDArray[np.float64]:
    flowkit = pytest.importorskip("flowkit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(flowkit.Sample(str(path)).get_events(source="raw"), dtype=np.float64)


# --------------------------------------------------------------------------------------------
# decoding by hand: every version × integer width × float type × byte order

INT_LAYOUTS = [8, 16, 32, (8, 16, 32, 16)]


@pytest.mark.parametrize("version", ["2.0", "3.0", "3.1"])
@pytest.mark.parametrize("bits", INT_LAYOUTS, ids=lambda b: f"I{b}")
@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_integer_data_decoded_by_hand(
    tmp_path: Path, version: str, bits: int | tuple[int, ...], byteorder: str
) -> None:
    # $PnR 1024 for 16/32 bits; 8-bit values only reach 255, so their range is 256
    eight = bits == 8
    rng = 256 if eight else 1024
    raw = np.minimum(RAW, 255) if eight or isinstance(bits, tuple) else RAW.copy()
    if isinstance(bits, tuple):
        raw[:, 1:] = RAW[:, 1:]  # only the first parameter is 8-bit
    pnr = [256 if (eight or (isinstance(bits, tuple) and i == 0)) else rng for i in range(4)]
    data = build_fcs(
        raw,
        PNN,
        version=version,
        datatype="I",
        bits=list(bits) if isinstance(bits, tuple) else bits,
        byteorder=byteorder,
        pns=PNS,
        pne=["0,0", "4,1", "4,0", "0,0"],  # FCS 3.1: "4,0" is read as "4,1"
        png=["2", "1", "1", "5"],  # gain divides linear values; Time ignores its gain
        pnr=pnr,
        keywords={"$TIMESTEP": "0.01"},
    )
    path = write(tmp_path, data)
    s = read_fcs(path)
    assert s.version == version
    assert s.events.shape == (5, 4)
    assert s.notes == ()
    # hand: FSC-A = c / 2; CD3 = 10^(4c/R) · 1; CD56 = 10^(4c/R); Time = c · 0.01
    r2 = pnr[1]
    expected = np.column_stack(
        [
            raw[:, 0] / 2,
            10.0 ** (4 * raw[:, 1] / r2),
            10.0 ** (4 * raw[:, 2] / r2),
            raw[:, 3] * 0.01,
        ]
    )
    np.testing.assert_allclose(s.events, expected, rtol=1e-13)
    if not eight:
        # spot values: c = 256, 512, 768 of 1024 with 4 decades are 10, 100, 1000
        assert s.events[1, 1] == pytest.approx(10.0, rel=1e-14)
        assert s.events[2, 1] == pytest.approx(100.0, rel=1e-14)
        assert s.events[3, 1] == pytest.approx(1000.0, rel=1e-14)
        assert s.events[1, 3] == pytest.approx(0.1)  # 10 ticks × 0.01 s
    np.testing.assert_allclose(s.events, flowkit_events(path), rtol=1e-13)


@pytest.mark.parametrize("version", ["2.0", "3.0", "3.1"])
@pytest.mark.parametrize("datatype", ["F", "D"])
@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_float_data_decoded_by_hand(
    tmp_path: Path, version: str, datatype: str, byteorder: str
) -> None:
    raw = RAW * 1.5 - 100.0  # negative and fractional values are legal in float data
    data = build_fcs(
        raw,
        PNN,
        version=version,
        datatype=datatype,
        byteorder=byteorder,
        pns=PNS,
        png=["2", "1", "4", "5"],
        keywords={"$TIMESTEP": "0.5"},
    )
    path = write(tmp_path, data)
    s = read_fcs(path)
    expected = np.column_stack([raw[:, 0] / 2, raw[:, 1], raw[:, 2] / 4, raw[:, 3] * 0.5])
    np.testing.assert_allclose(s.events, expected, rtol=1e-7 if datatype == "F" else 1e-15)
    np.testing.assert_allclose(s.events, flowkit_events(path), rtol=1e-13)


def test_log_pne_on_float_data_is_ignored_with_a_note(tmp_path: Path) -> None:
    """FCS 3.1: floating-point parameters "shall be stored as linear with $PnE/0,0/".

    A writer that puts "4,1" on float data still stored linear values; nkpanel keeps them as
    stored (as flowCore does) and notes it, where FlowKit/flowio would exponentiate them.
    """
    data = build_fcs(RAW, PNN, datatype="F", pne=["0,0", "4,1", "0,0", "0,0"])
    path = write(tmp_path, data)
    s = read_fcs(path)
    np.testing.assert_array_equal(s.events[:, 1], RAW[:, 1])
    assert s.channels[1].pne == (0.0, 0.0)
    assert s.notes == ("$P2E 4,1 ignored: $DATATYPE F values are stored linear",)
    fk = flowkit_events(path)
    assert fk[1, 1] == pytest.approx(10.0 ** (4 * 256 / 262144))  # FlowKit's reading differs


def test_pne_with_other_log_zero_and_decades(tmp_path: Path) -> None:
    # $PnE 3,0.01 with R 1024: value = 0.01 · 10^(3c/1024); c = 512 → 0.01 · 10^1.5
    raw = np.array([[512.0], [0.0], [1023.0]])
    data = build_fcs(raw, ["FL1-H"], datatype="I", bits=16, pne=["3,0.01"], pnr=[1024])
    s = read_fcs(write(tmp_path, data))
    np.testing.assert_allclose(
        s.events[:, 0], [0.01 * 10**1.5, 0.01, 0.01 * 10 ** (3 * 1023 / 1024)], rtol=1e-14
    )
    assert s.channels[0].is_log_amplified


def test_integer_bits_above_the_range_are_masked(tmp_path: Path) -> None:
    """FCS 3.1 $PnR: bits above the range are ignored (1029 in a 1024 range reads as 5)."""
    raw = np.array([[1029.0, 5.0], [2047.0, 1.0], [65535.0, 0.0]])
    data = build_fcs(raw, ["FL1-H", "FL2-H"], datatype="I", bits=16, pnr=[1024, 1024])
    path = write(tmp_path, data)
    s = read_fcs(path)
    np.testing.assert_array_equal(s.events, [[5.0, 5.0], [1023.0, 1.0], [1023.0, 0.0]])
    np.testing.assert_array_equal(s.events, flowkit_events(path))


def test_missing_pne_and_png_are_linear(tmp_path: Path) -> None:
    raw = np.array([[3.0, 4.0]])
    data = build_fcs(raw, ["A", "B"], datatype="I", drop=["$P1E", "$P2E"])
    s = read_fcs(write(tmp_path, data))
    np.testing.assert_array_equal(s.events, raw)
    assert s.channels[0].pne == (0.0, 0.0) and s.channels[0].png == 1.0


def test_keywords_are_kept_as_metadata(tmp_path: Path) -> None:
    data = build_fcs(
        RAW,
        PNN,
        datatype="I",
        pns=PNS,
        pne=["0,0", "4,1", "4,0", "0,0"],
        png=["2", "1", "1", "1"],
        keywords={
            "$CYT": "FACSCanto II (synthetic)",
            "$DATE": "21-NOV-2026",
            "$BTIM": "09:15:02",
            "$ETIM": "09:16:40",
            "$TIMESTEP": "0.01",
            "$SPILLOVER": "2,CD3,CD56,1,0.1,0.02,1",
            "SPILL": "2,CD3,CD56,1,0.5,0.5,1",
            "LAB NOTE": "FcγRIII panel",
        },
    )
    s = read_fcs(write(tmp_path, data))
    md = s.metadata
    assert md["cyt"] == "FACSCanto II (synthetic)"
    assert (md["date"], md["btim"], md["etim"], md["timestep"]) == (
        "21-NOV-2026",
        "09:15:02",
        "09:16:40",
        "0.01",
    )
    assert (md["p2n"], md["p2s"], md["p2e"], md["p1g"]) == ("CD3", "CD3 FITC", "4,1", "2")
    assert md["spillover"].startswith("2,CD3") and md["spill"].startswith("2,CD3")
    assert md["lab note"] == "FcγRIII panel"
    assert s.pns == ("", "CD3 FITC", "CD56 PE", "")
    assert s.pnn == tuple(PNN)
    # $SPILLOVER is preferred over SPILL
    assert s.spillover is not None
    np.testing.assert_array_equal(s.spillover.matrix, [[1.0, 0.1], [0.02, 1.0]])
    with pytest.raises(TypeError):
        md["cyt"] = "x"  # type: ignore[index]
    assert not s.events.flags.writeable


@pytest.mark.parametrize(
    ("keywords", "channels", "note"),
    [
        ({"SPILL": "2,2,3,1,0.1,0,1"}, ("CD3", "CD56"), None),  # 1-based channel numbers
        ({"$SPILLOVER": "0"}, None, None),  # "no compensation"
        ({"$COMP": "2,1,0.1,0,1"}, None, "$COMP (FCS 3.0 compensation)"),  # no names: not used
        ({"$COMP": "2,CD3,CD56,1,0.1,0,1"}, ("CD3", "CD56"), None),  # written as $SPILLOVER
    ],
)
def test_spillover_keyword_forms(
    tmp_path: Path, keywords: dict[str, str], channels: tuple[str, ...] | None, note: str | None
) -> None:
    s = read_fcs(write(tmp_path, build_fcs(RAW, PNN, keywords=keywords)))
    assert (s.spillover.channels if s.spillover else None) == channels
    assert any(note in n for n in s.notes) if note else s.notes == ()


@pytest.mark.parametrize("delimiter", ["/", "|", "\\", "*", "\x0c", "\t", "!"])
def test_text_delimiters_and_escaped_delimiters(tmp_path: Path, delimiter: str) -> None:
    pns = ["", f"CD16{delimiter}56 PE", "CD56", ""]
    data = build_fcs(RAW, PNN, pns=pns, delimiter=delimiter, keywords={"$CYT": "a b"})
    s = read_fcs(write(tmp_path, data))
    assert s.pns[1] == f"CD16{delimiter}56 PE"  # a doubled delimiter is the character itself
    np.testing.assert_array_equal(s.events, RAW)


@pytest.mark.parametrize(
    ("datatype", "bits", "byteord"),
    [("D", None, "1,2,3,4,5,6,7,8"), ("I", 8, "1"), ("I", 8, "4,3,2,1"), ("F", None, "1, 2, 3, 4")],
)
def test_other_byte_order_spellings(
    tmp_path: Path, datatype: str, bits: int | None, byteord: str
) -> None:
    """Little-endian orders written longhand, and any order for one-byte values."""
    if bits != 8 and sys.byteorder != "little":
        pytest.skip("flowio reads longhand byte orders in the machine's order")
    raw = np.minimum(RAW, 255)
    data = build_fcs(
        raw, PNN, datatype=datatype, bits=bits, pnr=[256] * 4, keywords={"$BYTEORD": byteord}
    )
    np.testing.assert_array_equal(read_fcs(write(tmp_path, data)).events, raw)


def test_latin1_text_is_read(tmp_path: Path) -> None:
    data = build_fcs(RAW, PNN, keywords={"$CYT": "ZZZ"})
    data = data.replace(b"ZZZ", "µ°Ä".encode("latin-1"))  # same length: offsets stay right
    s = read_fcs(write(tmp_path, data))
    assert s.metadata["cyt"] == "µ°Ä"


def test_no_events(tmp_path: Path) -> None:
    s = read_fcs(write(tmp_path, build_fcs(np.empty((0, 4)), PNN)))
    assert s.events.shape == (0, 4)
    assert s.notes == ("the file holds no events ($TOT 0)",)


def test_enddata_one_past_the_data_is_read_with_a_note(tmp_path: Path) -> None:
    good = build_fcs(RAW, PNN, datatype="F", trailer=b"\x00")
    begin, end = int(good[26:34]), int(good[34:42])
    data = build_fcs(
        RAW,
        PNN,
        datatype="F",
        trailer=b"\x00",
        keywords={"$ENDDATA": str(end + 1)},
        header_data=(begin, end + 1),
    )
    s = read_fcs(write(tmp_path, data))
    np.testing.assert_array_equal(s.events, RAW)
    assert s.notes == ("$ENDDATA points one byte past the data (read anyway)",)


def test_enddata_one_past_8_bit_data_is_read_with_a_note(tmp_path: Path) -> None:
    s = read_fcs(write(tmp_path, _off_by_one_8bit()))
    np.testing.assert_array_equal(s.events, np.minimum(RAW, 255))
    assert s.notes == ("$ENDDATA points one byte past the data (read anyway)",)


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_24_bit_integers_are_read_byte_by_byte(tmp_path: Path, byteorder: str) -> None:
    """Cytek xP5 files store 3-byte integers; flowio cannot read them."""
    # one value per byte position, and one that needs all three bytes
    raw = np.array([[1, 256, 65536], [0xABCDEF, 2, 3], [0, 0, 0xFFFFFF]], dtype=np.float64)
    data = build_fcs(
        raw,
        ["FSC", "FL1", "FL2"],
        datatype="I",
        bits=24,
        byteorder=byteorder,
        pnr=[2**24, 2**24, 2**24],
    )
    s = read_fcs(write(tmp_path, data))
    np.testing.assert_array_equal(s.events, raw)
    assert s.notes == ()


def test_integer_values_are_masked_to_their_range(tmp_path: Path) -> None:
    """Bits above the power of two at or above $PnR are ignored, as flowio and FlowKit do:
    0xABCDEF in a range of 1024 is 0xABCDEF mod 1024 = 0x1EF = 495; a range of 1000 masks
    to 1024 too; a range wider than the values (2^30 on 24 bits) masks nothing."""
    raw = np.array([[0xABCDEF, 0xABCDEF, 0xABCDEF], [1023, 1500, 7]], dtype=np.float64)
    data = build_fcs(
        raw, ["FSC", "FL1", "FL2"], datatype="I", bits=[24, 24, 24], pnr=[1024, 1000, 2**30]
    )
    s = read_fcs(write(tmp_path, data))
    np.testing.assert_array_equal(s.events, [[495, 495, 0xABCDEF], [1023, 1500 - 1024, 7]])
    assert s.notes == (
        "FSC: 1 value(s) of 1024 or more ($P1R 1024) lost their higher bits, "
        "as flowio and FlowKit read them",
        "FL1: 2 value(s) of 1024 or more ($P2R 1000) lost their higher bits, "
        "as flowio and FlowKit read them",
    )


def test_mixed_integer_widths_with_24_bits(tmp_path: Path) -> None:
    raw = np.array([[200, 70000, 1, 0x01020304], [7, 3, 0xFFFF, 5]], dtype=np.float64)
    data = build_fcs(
        raw,
        ["A", "B", "C", "D"],
        datatype="I",
        bits=[8, 24, 16, 32],
        byteorder="big",
        pnr=[256, 2**24, 2**16, 2**32],
    )
    s = read_fcs(write(tmp_path, data))
    np.testing.assert_array_equal(s.events, raw)


def test_blank_header_data_offsets_defer_to_text(tmp_path: Path) -> None:
    """BD FACSDiva writes blanks, not 0, for DATA offsets it does not put in the HEADER."""
    data = build_fcs(RAW, PNN, datatype="F", header_data=(" " * 8, " " * 8))
    s = read_fcs(write(tmp_path, data))
    np.testing.assert_array_equal(s.events, RAW)
    assert s.notes == ("HEADER leaves the DATA offsets blank; $BEGINDATA/$ENDDATA used",)


def _text_padded(pad: bytes, *, last_delimiter: bool = True) -> bytes:
    """A file whose TEXT offsets take in ``pad`` after the last delimiter (MACSQuant, CyFlow),
    with the last delimiter itself left out when ``last_delimiter`` is false. The TEXT is
    moved back so that it still ends where it did; DATA stays where it was."""
    good = build_fcs(RAW, PNN, datatype="F", text_start=512)
    t0, t1 = text_span(good)
    text = good[t0 : t1 + 1]
    text = (text if last_delimiter else text[:-1]) + pad
    start = t1 + 1 - len(text)
    out = bytearray(good)
    out[58:start] = b" " * (start - 58)
    out[start : t1 + 1] = text
    return set_header_field(bytes(out), 0, start)


@pytest.mark.parametrize("pad", [b"    ", b"\x00\x00", b" \r\n"], ids=["spaces", "nul", "crlf"])
def test_text_padded_after_its_last_delimiter_is_read(tmp_path: Path, pad: bytes) -> None:
    s = read_fcs(write(tmp_path, _text_padded(pad)))
    np.testing.assert_array_equal(s.events, RAW)
    assert s.notes == ()


def test_text_without_its_last_delimiter_is_refused(tmp_path: Path) -> None:
    """A TEXT cut short would read like a whole one, with the keywords past the cut lost."""
    path = write(tmp_path, _text_padded(b" \n", last_delimiter=False))
    with pytest.raises(FCSFormatError, match="does not end with its delimiter '/'"):
        read_fcs(path)


def test_huge_finite_doubles_are_read(tmp_path: Path) -> None:
    """Values near the largest double are finite, though a column's sum overflows."""
    raw = np.array([[1e308, 1.0], [1e308, 2.0]])
    s = read_fcs(write(tmp_path, build_fcs(raw, ["A", "B"], datatype="D")))
    np.testing.assert_array_equal(s.events, raw)


def test_values_mostly_above_the_range_give_the_range_from_the_data(tmp_path: Path) -> None:
    """A file whose $PnR was rewritten below its data (a Cytek Aurora's 4,194,304 as 262,144:
    audit 31) had every event called saturated and no singlet gate. Where more than 10% of a
    channel's events lie above its range, the range is the next power of two at or above its
    largest value, said in a note; a few values past the top stay saturated events. Where a
    scatter channel's range was rewritten, every channel that shared it takes the scatter's
    (review 34: CD3 and CD56 of the Aurora file kept 262,144 beside scatter at 4,194,304)."""
    rng = np.random.default_rng(0)
    raw = np.column_stack(
        [
            rng.uniform(2_000, 50_000, 1000),  # all above a $PnR of 1024
            np.r_[np.full(5, 3_000.0), rng.uniform(0, 1000, 995)],  # 0.5% above 1024
            rng.uniform(0, 1000, 1000),
            rng.uniform(0, 1000, 1000),
        ]
    )
    names = ["FSC-A", "CD3", "CD56", "CD16"]
    pnr = [1024, 2048, 1024, 2048]  # CD56 shared the scatter's range; CD3, CD16 did not
    s = read_fcs(write(tmp_path, build_fcs(raw, names, pnr=pnr)))
    assert [c.pnr for c in s.channels] == [65536, 2048, 65536, 2048]  # 2^16 ≥ 50,000 > 2^15
    (note,) = [n for n in s.notes if "above the file's range" in n]
    assert "FSC-A ($P1R 1024: 100% of events above it" in note and "taken as 65536" in note
    assert "CD3" not in note and "the scatter's range is taken for CD56, which shared it" in note
    np.testing.assert_array_equal(s.events, raw.astype(np.float32))


def test_saturated_clumps_just_above_the_range_leave_it_as_it_is(tmp_path: Path) -> None:
    """1.2% of events (clumps) a little above the scatter's $PnR re-ranged it, and every
    channel that shared it: the clumps no longer counted as saturated and the leukocyte gate
    collapsed (review 36). Saturated events are a few percent at most, for the saturation
    check to judge; only a range most events exceed is taken from the data."""
    rng = np.random.default_rng(3)
    raw = rng.uniform(1_000, 200_000, size=(5_000, 3))
    raw[rng.choice(5_000, 60, replace=False), 0] = 262_150.0  # 1.2% just above 262,144
    s = read_fcs(write(tmp_path, build_fcs(raw, ["FSC-A", "SSC-A", "CD3"], pnr=[262144] * 3)))
    assert [c.pnr for c in s.channels] == [262144] * 3
    assert not any("above the file's range" in n for n in s.notes)


def test_a_range_thousands_of_times_above_the_scatter_is_taken_from_the_data(
    tmp_path: Path,
) -> None:
    """$PnR 2^32 over float data (audit 33) put every channel's logicle scale far above its
    data, and the side scatter, its median under 0.5% of that range, was taken for a dead
    detector: a right tube withheld. Where every linear scatter channel's data lie under
    0.1% of its range, the range is taken from them, and for the channels that shared it
    (never below their own data). A scatter near its range keeps every range: a Guava
    Muse writes FSC in decades (0-4) beside a linear FSC, both with $PnR 10,000."""
    rng = np.random.default_rng(2)
    raw = np.column_stack(
        [
            rng.uniform(10_000, 200_000, 1000),  # FSC-A
            rng.uniform(5_000, 250_000, 1000),  # SSC-A
            rng.uniform(0, 100_000, 1000),  # CD3
            np.r_[rng.uniform(0, 100_000, 999), 300_000.0],  # CD56, one value above 2^18
        ]
    )
    names = ["FSC-A", "SSC-A", "CD3", "CD56"]
    s = read_fcs(write(tmp_path, build_fcs(raw, names, pnr=[2**32] * 4)))
    assert [c.pnr for c in s.channels] == [262144, 262144, 262144, 524288]
    (note,) = [n for n in s.notes if "thousands of times above" in n]
    assert "FSC-A ($P1R 4.29497e+09, data up to 2e+05)" in note and "CD3, CD56" in note
    guava = np.column_stack([rng.uniform(10, 900, 1000), rng.uniform(0, 1.2, 1000)])
    g = read_fcs(write(tmp_path, build_fcs(guava, ["FSC-HLin", "FSC-HLog"], pnr=[10_000] * 2)))
    assert [c.pnr for c in g.channels] == [10_000, 10_000]
    assert not any("thousands of times above" in n for n in g.notes)


def test_spillover_of_names_only_is_noted_not_used(tmp_path: Path) -> None:
    """MACSQuant writes $SPILLOVER as a channel count and names, with no matrix."""
    data = build_fcs(RAW, PNN, datatype="F", keywords={"$SPILLOVER": "2,CD3,CD56"})
    s = read_fcs(write(tmp_path, data))
    assert s.spillover is None
    assert s.notes == ("$SPILLOVER names 2 channels but holds no values",)


def test_analysis_segment_is_tolerated(tmp_path: Path) -> None:
    s = read_fcs(write(tmp_path, with_analysis(b"/GATE 1/CD3-CD56+/")))
    np.testing.assert_array_equal(s.events[:, 0], RAW[:, 0])


def test_zero_header_data_offsets_mean_see_text(tmp_path: Path) -> None:
    """FCS 3.1 HEADER: 0 for the DATA offsets defers to $BEGINDATA/$ENDDATA."""
    s = read_fcs(write(tmp_path, good(header_data=(0, 0))))
    assert s.events.shape == (5, 4)
    assert s.notes == ("HEADER gives 0 for the DATA offsets; $BEGINDATA/$ENDDATA used",)


def test_from_array() -> None:
    s = FlowSample.from_array([[1, 2], [3, 4]], ["A", "B"], pns=["CD3", ""])
    assert s.events.dtype == np.float64 and s.n_events == 2
    assert s.column("B").tolist() == [2.0, 4.0]
    assert s.source == "array"
    with pytest.raises(FCSFormatError, match="do not fit 3 names"):
        FlowSample.from_array([[1, 2]], ["A", "B", "C"])
    with pytest.raises(FCSFormatError, match="share one name"):
        FlowSample.from_array([[1, 2]], ["A", "A"])
    with pytest.raises(KeyError):
        s.index_of("Z")


# --------------------------------------------------------------------------------------------
# the real public files


@pytest.fixture(scope="module")
def real(shared_data: Path) -> Path:
    return shared_data


def _need(p: Path) -> Path:
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p


@pytest.mark.shared_data
def test_68983(real: Path) -> None:
    p = _need(real / "flowsom-68983" / "68983.fcs")
    s = read_fcs(p)
    assert s.version == "3.0"
    assert s.events.shape == (19225, 18)  # README: 19,225 events
    assert s.metadata["datatype"] == "F" and s.metadata["timestep"] == "0.01"
    labels = dict(zip(s.pnn, s.pns, strict=True))
    assert labels["PE-A"] == "NK1/1"
    assert labels["PE-Cy7-A"] == "CD3"
    assert labels["Alexa Fluor 700-A"] == "CD45"
    assert labels["PE-Cy5-A"] == "CD19"
    assert labels["FSC-A"] == ""  # " " in the file
    assert s.spillover is not None and s.spillover.channels[0] == "FITC-A"
    np.testing.assert_array_equal(s.events, flowkit_events(p))


@pytest.mark.shared_data
def test_data1(real: Path) -> None:
    p = _need(real / GML_DIR / "data1.fcs")
    s = read_fcs(p)
    assert s.version == "2.0"
    assert s.events.shape == (13367, 8)
    assert s.metadata["cyt"] == "FACSCalibur"
    assert s.pns[:5] == ("FSC-Height", "SSC-Height", "CD4 FITC", "CD8 B PE", "CD3 PerCP")
    assert s.channels[0].png == 3.67 and s.channels[2].pne == (4.0, 1.0)  # file: $P3E 4,0
    np.testing.assert_array_equal(s.events, flowkit_events(p))
    # 16-bit values in a 1024 range, log over 4 decades: FL1-H lies in [1, 10^(4·1023/1024)]
    fl1 = s.column("FL1-H")
    assert fl1.min() >= 1.0 and fl1.max() <= 10 ** (4 * 1023 / 1024) * (1 + 1e-12)


@pytest.mark.shared_data
def test_cytonorm(real: Path) -> None:
    files = sorted((real / "cytonorm-cytof").glob("*.fcs"))
    if not files:
        pytest.skip("cytonorm-cytof files not found")
    assert len(files) == 6
    for p in files:
        s = read_fcs(p)
        assert s.events.shape == (1000, 55), p.name  # README: 1,000 events each
        assert s.metadata["cyt"] == "DVSSCIENCES-CYTOF"
        for marker in ("CD45", "CD3", "CD56", "CD16", "CD19", "CD14"):
            assert marker in s.pns
        np.testing.assert_array_equal(s.events, flowkit_events(p))


@pytest.mark.shared_data
@pytest.mark.parametrize("gate_id", ["Range1", "Range2", "Rectangle1", "Rectangle2"])
def test_decoding_matches_gatingml_truth(real: Path, gate_id: str) -> None:
    """Range1 needs $P1G 3.67 applied, Rectangle1/2 $P2G 8 and $P3E 4,0; Range2 is on Time."""
    folder = real / GML_DIR
    _need(folder / "data1.fcs")
    (gate,) = [
        g
        for g in compliance_gates(folder, transformed=False, compensated=False)
        if g.gate_id == gate_id
    ]
    truth = gml_truth(folder, gate_id)
    assert 0 < truth.sum() < truth.size
    np.testing.assert_array_equal(evaluate_rectangle(read_fcs(folder / "data1.fcs"), gate), truth)


# --------------------------------------------------------------------------------------------
# bad input: one InputError line that starts with the path and states the cause


def good(**kw: object) -> bytes:
    """A valid 16-bit FCS 3.1 file (overridable)."""
    args: dict[str, object] = {
        "version": "3.1",
        "datatype": "I",
        "bits": 16,
        "pne": ["0,0", "4,1", "4,1", "0,0"],
        "pns": PNS,
    }
    args.update(kw)
    return build_fcs(RAW, PNN, **args)  # type: ignore[arg-type]


def _ascii_with_text_cell() -> bytes:
    """A valid fixed-width ASCII file whose first value is replaced by text."""
    buf = good(datatype="A", bits=8)
    start, _ = data_span(buf)
    return buf[:start] + b"     abc" + buf[start + 8 :]


@dataclass(frozen=True)
class Bad:
    kind: str
    make: Callable[[], bytes]
    cause: str
    error: type[InputError] = FCSFormatError


def _nan_float() -> bytes:
    ev = RAW.copy()
    ev[2, 1] = np.nan
    return build_fcs(ev, PNN, datatype="F")


def _inf_double() -> bytes:
    ev = RAW.copy()
    ev[0, 0] = np.inf
    return build_fcs(ev, PNN, datatype="D", byteorder="big")


def _header_data_shift(delta: int) -> bytes:
    b = good()
    s, e = data_span(b)
    return good(header_data=(s + delta, e + delta))


def _truncated_text() -> bytes:
    b = good()
    t0, t1 = text_span(b)
    return b[: (t0 + t1) // 2]


def _enddata_beyond() -> bytes:
    kw = {"$ENDDATA": "99999990"}
    s, _ = data_span(good(keywords=kw))
    return good(keywords=kw, header_data=(s, 99999990))


def _beginanalysis_outside() -> bytes:
    b = good()
    return good(
        keywords={"$BEGINANALYSIS": str(len(b) - 2), "$ENDANALYSIS": str(len(b) + 500)},
        header_analysis=(len(b) - 2, len(b) + 500),
    )


def _unescaped_delimiter() -> bytes:
    return good(pns=["", "CD16/56", "CD56", ""], escape=False)


def _data_larger_than_tot() -> bytes:
    b = good(trailer=b"\x00" * 8)
    s, e = data_span(b)
    return good(trailer=b"\x00" * 8, keywords={"$ENDDATA": str(e + 8)}, header_data=(s, e + 8))


def _off_by_one_8bit() -> bytes:
    ev = np.minimum(RAW, 255)
    b = build_fcs(ev, PNN, datatype="I", bits=8, pnr=[256] * 4, trailer=b"\x00")
    s, e = data_span(b)
    return build_fcs(
        ev,
        PNN,
        datatype="I",
        bits=8,
        pnr=[256] * 4,
        trailer=b"\x00",
        keywords={"$ENDDATA": str(e + 1)},
        header_data=(s, e + 1),
    )


def with_analysis(segment: bytes) -> bytes:
    """good() with an ANALYSIS segment after DATA (offsets zero-padded so TEXT keeps its size)."""
    pad = "0" * 8
    kw = {"$BEGINANALYSIS": pad, "$ENDANALYSIS": pad}
    start = len(good(keywords=kw))
    end = start + len(segment) - 1
    kw = {"$BEGINANALYSIS": f"{start:08d}", "$ENDANALYSIS": f"{end:08d}"}
    return good(keywords=kw, header_analysis=(start, end), trailer=segment)


def _spill(value: str) -> Callable[[], bytes]:
    return lambda: good(keywords={"$SPILLOVER": value})


def _set(key: str, value: str, **extra: object) -> Callable[[], bytes]:
    return lambda: good(keywords={key: value}, **extra)


BAD = [
    Bad("empty file", lambda: b"", "file is empty"),
    Bad("text file", lambda: b"CD3,CD56\n1,2\n", "not an FCS file"),
    Bad("png image", lambda: b"\x89PNG\r\n\x1a\n" + bytes(200), "not an FCS file"),
    Bad("FCS 4.0", lambda: b"FCS4.0" + good()[6:], "unsupported FCS version 'FCS4.0'"),
    Bad("truncated in HEADER", lambda: good()[:30], "truncated inside its 58-byte header"),
    Bad("truncated in TEXT", _truncated_text, "lie outside the file"),
    Bad("truncated in DATA", lambda: good()[:-5], "DATA segment ends at byte"),
    Bad(
        "header TEXT offsets not numbers",
        lambda: set_header_field(good(), 0, "abc"),
        "TEXT offsets are not numbers",
    ),
    Bad(
        "header TEXT end beyond file",
        lambda: set_header_field(good(), 1, 99999999),
        "lie outside the file",
    ),
    Bad(
        "header TEXT start negative",
        lambda: set_header_field(good(), 0, -58),
        "lie outside the file",
    ),
    Bad(
        "header TEXT start inside HEADER",
        lambda: set_header_field(good(), 0, 10),
        "lie outside the file",
    ),
    Bad(
        "header DATA offsets not numbers",
        lambda: set_header_field(good(version="2.0"), 2, "x"),
        "DATA offsets are not numbers",
    ),
    Bad(
        "2.0 DATA offset into TEXT",
        lambda: good(version="2.0", header_data=(70, 70 + 5 * 8 - 1)),
        "overlaps the TEXT",
    ),
    Bad(
        "2.0 DATA start negative",
        lambda: good(version="2.0", header_data=(-20, 19)),
        "are not a byte range",
    ),
    Bad(
        "2.0 DATA end beyond file",
        lambda: good(version="2.0", header_data=(1000, 99999999)),
        "DATA segment ends at byte 99999999",
    ),
    Bad("3.1 HEADER/TEXT DATA disagree", lambda: _header_data_shift(4), "HEADER puts DATA at"),
    Bad(
        "3.1 $BEGINDATA negative",
        lambda: good(keywords={"$BEGINDATA": "-10"}, header_data=(-10, data_span(good())[1])),
        "are not a byte range",
    ),
    Bad("3.1 $ENDDATA beyond file", _enddata_beyond, "DATA segment ends at byte 99999990"),
    Bad(
        "3.1 $BEGINDATA missing",
        lambda: good(drop=["$BEGINDATA"]),
        "lacks the required keyword $BEGINDATA",
    ),
    Bad(
        "3.1 $BEGINDATA not a number",
        _set("$BEGINDATA", "12a"),
        "$BEGINDATA '12a' is not a whole number",
    ),
    Bad(
        "DATA longer than $TOT needs",
        _data_larger_than_tot,
        "DATA segment holds 48 bytes but $TOT 5",
    ),
    Bad(
        "$PAR above the parameters", _set("$PAR", "5"), "$PAR says 5 parameters but $P5N is missing"
    ),
    Bad(
        "$PAR below the parameters", _set("$PAR", "3"), "$PAR says 3 parameters but $P4N is present"
    ),
    Bad("$PAR 0", _set("$PAR", "0"), "absurd $PAR value 0"),
    Bad("$PAR absurd", _set("$PAR", "1000000000"), "absurd $PAR value 1000000000"),
    Bad("$PAR not a number", _set("$PAR", "four"), "$PAR 'four' is not a whole number"),
    Bad("$PAR missing", lambda: good(drop=["$PAR"]), "lacks the required keyword $PAR"),
    Bad("$TOT 10^12", _set("$TOT", "1000000000000"), "absurd $TOT value 1000000000000"),
    Bad(
        "$TOT one more than the data",
        _set("$TOT", "6"),
        "DATA segment holds 40 bytes but $TOT 6 × 8 bytes per event ($PAR 4) needs 48",
    ),
    Bad("$TOT one less than the data", _set("$TOT", "4"), "needs 32"),
    Bad("$TOT 200 million on a tiny file", _set("$TOT", "200000000"), "needs 1600000000"),
    Bad("$TOT negative", _set("$TOT", "-5"), "absurd $TOT value -5"),
    Bad("$TOT not a whole number", _set("$TOT", "5.0"), "$TOT '5.0' is not a whole number"),
    Bad("$TOT missing", lambda: good(drop=["$TOT"]), "lacks the required keyword $TOT"),
    Bad(
        "$PnB 0 on integer data",
        _set("$P2B", "0"),
        "$P2B 0: integer values must fill whole bytes, 8 to 64 bits",
    ),
    Bad(
        "$SPILLOVER count in superscript digits",
        _set("$SPILLOVER", "²,CD3,CD56"),
        "spillover",
        CompensationError,
    ),
    Bad(
        "$SPILLOVER count of 5000 digits",
        _set("$SPILLOVER", "9" * 5000 + ",CD3"),
        "spillover",
        CompensationError,
    ),
    Bad("$PnR of 400 digits", _set("$P2R", "9" * 400), "absurd $P2R"),
    Bad(
        "$PnB 12 on integer data",
        lambda: good(bits=12, data=bytes(5 * 4 * 2)),
        "$P1B 12: integer values must fill whole bytes",
    ),
    Bad(
        "$PnB 0 on float data",
        lambda: good(datatype="F", keywords={"$P3B": "0"}),
        "$P3B 0 is not a positive number of bits",
    ),
    Bad("$PnB not a number", _set("$P1B", "sixteen"), "$P1B 'sixteen' is not a whole number"),
    Bad("$PnB missing", lambda: good(drop=["$P2B"]), "lacks the required keyword $P2B"),
    Bad("$PnE one number", _set("$P2E", "4"), "$P2E '4' is not two numbers"),
    Bad("$PnE not numbers", _set("$P2E", "a,b"), "$P2E 'a,b' is not two numbers"),
    Bad("$PnE negative", _set("$P2E", "-1,1"), "$P2E '-1,1' holds a negative or infinite value"),
    Bad("$PnE infinite", _set("$P2E", "inf,1"), "holds a negative or infinite value"),
    Bad("$PnE absurd decades", _set("$P2E", "400,1"), "absurd $P2E '400,1' (400 decades)"),
    Bad("$PnG negative", _set("$P1G", "-2"), "$P1G '-2' is not a positive gain"),
    Bad("$PnG nan", _set("$P1G", "nan"), "$P1G 'nan' is not a positive gain"),
    Bad("$PnG not a number", _set("$P1G", "x2"), "$P1G 'x2' is not a number"),
    Bad("$PnR 0 on integer data", _set("$P2R", "0"), "$P2R '0' is not a positive range"),
    Bad(
        "$PnR not a number",
        lambda: good(datatype="F", keywords={"$P2R": "big"}),
        "$P2R 'big' is not a number",
    ),
    Bad("$PnR missing", lambda: good(drop=["$P3R"]), "lacks the required keyword $P3R"),
    Bad(
        "$DATATYPE A with a non-number",
        lambda: _ascii_with_text_cell(),
        "ASCII DATA holds a value that is not a number",
    ),
    Bad("$DATATYPE unknown", _set("$DATATYPE", "Q"), "unknown $DATATYPE 'Q'"),
    Bad(
        "$DATATYPE missing",
        lambda: good(drop=["$DATATYPE"]),
        "lacks the required keyword $DATATYPE",
    ),
    Bad("$MODE C (histogram)", _set("$MODE", "C"), "only list-mode (L) data can be read"),
    Bad("$MODE missing", lambda: good(drop=["$MODE"]), "lacks the required keyword $MODE"),
    Bad("$BYTEORD mixed", _set("$BYTEORD", "3,4,1,2"), "unsupported $BYTEORD '3,4,1,2'"),
    Bad("$BYTEORD missing", lambda: good(drop=["$BYTEORD"]), "lacks the required keyword $BYTEORD"),
    Bad("$PnN missing", lambda: good(drop=["$P2N"]), "$PAR says 4 parameters but $P2N is missing"),
    Bad("$PnN duplicated", _set("$P3N", "CD3"), "two parameters share the $PnN name 'CD3'"),
    Bad("$PnN blank", _set("$P3N", "  "), "$P3N is empty"),
    Bad("$NEXTDATA negative", _set("$NEXTDATA", "-58"), "$NEXTDATA -58 points back into the file"),
    Bad(
        "$NEXTDATA not a number",
        _set("$NEXTDATA", "next"),
        "$NEXTDATA 'next' is not a whole number",
    ),
    Bad("NaN in float data", _nan_float, "DATA segment holds 1 non-finite values"),
    Bad("inf in double data", _inf_double, "DATA segment holds 1 non-finite values"),
    Bad("ANALYSIS outside the file", _beginanalysis_outside, "ANALYSIS segment offsets"),
    Bad(
        "ANALYSIS delimiter flowio cannot use",
        lambda: with_analysis(b"[NOTE[x["),
        "ANALYSIS delimiter '[' cannot be parsed by flowio",
    ),
    Bad(
        "$BEGINANALYSIS not a number",
        _set("$BEGINANALYSIS", "x"),
        "$BEGINANALYSIS/$ENDANALYSIS are not whole numbers",
    ),
    Bad("unescaped delimiter in a value", _unescaped_delimiter, "$PAR says 4 parameters but"),
    Bad(
        "a lone $ as a value (flowio deletes every $)",
        _set("$TIMESTEP", "$"),
        "TEXT segment is ambiguous (a keyword given twice, or stray delimiters or $): "
        "$BEGINDATA reads",
    ),
    Bad(
        "custom TOT beside $TOT",
        _set("TOT", "3"),
        "TEXT segment is ambiguous (a keyword given twice, or stray delimiters or $): "
        "$TOT reads '5' here but '3' in flowio",
    ),
    Bad(
        "value ending in the delimiter",
        _set("$CYT", "ACME/"),
        "starts or ends with the delimiter '/', which flowio cannot parse",
    ),
    Bad(
        "TEXT delimiter flowio cannot use",
        lambda: good(delimiter="("),
        "TEXT delimiter '(' cannot be parsed by flowio",
    ),
    Bad(
        "TEXT delimiter flowio reads as a pattern",
        lambda: good(delimiter="."),
        "TEXT delimiter '.' cannot be parsed by flowio",
    ),
    Bad("spillover singular", _spill("2,CD3,CD56,1,1,1,1"), "singular", CompensationError),
    Bad(
        "spillover mis-sized",
        _spill("2,CD3,CD56,1,0.1,0.2"),
        "declares 2 channels but holds 5",
        CompensationError,
    ),
    Bad(
        "spillover larger than the file",
        _spill("5,CD3,CD56,A,B,C" + ",0" * 25),
        "declares 5 channels",
        CompensationError,
    ),
    Bad(
        "spillover naming an unknown channel",
        _spill("2,CD3,CD19,1,0,0,1"),
        "'CD19', not in the file",
        CompensationError,
    ),
    Bad("spillover non-numeric", _spill("2,CD3,CD56,1,a,0,1"), "non-numeric", CompensationError),
    Bad(
        "spillover count not a number",
        _spill("x,CD3"),
        "does not start with a count",
        CompensationError,
    ),
    Bad(
        "spillover count infinite",
        _spill("inf,CD3"),
        "does not start with a count",
        CompensationError,
    ),
]


def test_bad_kinds_are_distinct() -> None:
    assert len({b.kind for b in BAD}) == len(BAD)


@pytest.mark.parametrize("bad", BAD, ids=[b.kind for b in BAD])
def test_bad_input_gives_one_clear_line(tmp_path: Path, bad: Bad) -> None:
    path = write(tmp_path, bad.make(), "bad input.fcs")
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as info:
            read_fcs(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    err = info.value
    msg = str(err)
    assert type(err) is bad.error, msg
    assert msg.startswith(f"{path}: "), msg
    assert "\n" not in msg and len(msg) < 400, msg
    assert bad.cause in msg, msg
    assert peak < 16 * 2**20, (
        f"{peak / 2**20:.1f} MiB allocated for a {path.stat().st_size}-byte file"
    )


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FCSFormatError, match=r"nope\.fcs: No such file or directory$"):
        read_fcs(tmp_path / "nope.fcs")
    with pytest.raises(FCSFormatError, match="Is a directory"):
        read_fcs(tmp_path)


def test_edit_text_value_helper_breaks_offsets(tmp_path: Path) -> None:
    """The helper used by the fuzz test: a longer value shifts DATA away from its offsets."""
    b = edit_text_value(good(), "$CYT", "a much longer instrument name")
    with pytest.raises(FCSFormatError, match="overlaps the TEXT"):
        read_fcs(write(tmp_path, b))
    same = edit_text_value(good(), "$CYT", "X" * len("nkpanel-test-synthetic"))
    assert read_fcs(write(tmp_path, same)).metadata["cyt"] == "X" * 22


def test_decoded_values_never_overflow(tmp_path: Path) -> None:
    """30 decades (the most accepted) at full range stays finite without warnings."""
    raw = np.array([[65535.0]])
    data = build_fcs(raw, ["FL1"], datatype="I", bits=16, pnr=[65536], pne=["30,1"])
    s = read_fcs(write(tmp_path, data))
    assert math.isfinite(s.events[0, 0]) and s.events[0, 0] > 1e29


# --------------------------------------------------------------------------------------------
# ASCII data ($DATATYPE A), which flowio does not decode


def test_ascii_fixed_width_decodes_like_integers(tmp_path: Path) -> None:
    raw = np.array([[5, 256, 512, 7], [1023, 768, 0, 9]], dtype=np.int64)
    path = tmp_path / "ascii.fcs"
    path.write_bytes(
        build_fcs(
            raw, PNN, version="3.0", datatype="A", bits=6, pne=["0,0", "4,1", "4,1", "0,0"], pns=PNS
        )
    )
    s = read_fcs(path)
    assert s.n_events == 2
    # $PnE 4,1 over $PnR 1024: 10^(4·c/1024), so 256 → 10, 512 → 100, 768 → 1000, 0 → 1
    np.testing.assert_allclose(s.events[:, 1], [10.0, 1000.0])
    np.testing.assert_allclose(s.events[:, 2], [100.0, 1.0])
    np.testing.assert_array_equal(s.events[:, 0], [5.0, 1023.0])
    np.testing.assert_array_equal(s.events[:, 3], [7.0, 9.0])


def test_ascii_delimited_values(tmp_path: Path) -> None:
    body = b"5 256,512\t7\n1023 768 0 9\n"
    path = tmp_path / "ascii_delimited.fcs"
    path.write_bytes(
        build_fcs(
            np.zeros((2, 4)),
            PNN,
            version="3.1",
            datatype="A",
            bits=8,
            keywords={f"$P{i}B": "*" for i in range(1, 5)},
            data=body,
            pns=PNS,
        )
    )
    s = read_fcs(path)
    np.testing.assert_array_equal(s.events[:, 0], [5.0, 1023.0])
    np.testing.assert_array_equal(s.events[:, 3], [7.0, 9.0])


def test_ascii_delimited_value_count_must_fit(tmp_path: Path) -> None:
    path = tmp_path / "short.fcs"
    path.write_bytes(
        build_fcs(
            np.zeros((2, 4)),
            PNN,
            version="3.1",
            datatype="A",
            bits=8,
            keywords={f"$P{i}B": "*" for i in range(1, 5)},
            data=b"1 2 3 4 5 6 7",
            pns=PNS,
        )
    )
    with pytest.raises(FCSFormatError, match="7 values, not"):
        read_fcs(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_reads_from_a_named_pipe(tmp_path: Path) -> None:
    """A pipe has no size to go by: it is read to its end, not taken for an empty file."""
    import threading

    data = build_fcs(np.arange(40.0).reshape(20, 2), ["FSC-A", "SSC-A"])
    pipe = tmp_path / "pipe.fcs"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_bytes, args=(data,))
    writer.start()
    sample = read_fcs(pipe)
    writer.join(timeout=10)
    assert sample.events.shape == (20, 2)
    assert np.array_equal(sample.events[:, 1], np.arange(1.0, 40.0, 2.0))


def test_concurrent_reads_do_not_share_a_buffer(tmp_path: Path) -> None:
    """Reads in several threads at once: each gets its own buffer (one is the kept one), so
    every sample holds its own file's events."""
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for k in range(4):
        events = np.arange(k, k + 2 * 50_000, dtype=np.float64).reshape(50_000, 2)
        paths.append(tmp_path / f"f{k}.fcs")
        paths[-1].write_bytes(build_fcs(events, ["FSC-A", "SSC-A"]))
    with ThreadPoolExecutor(4) as pool:
        samples = list(pool.map(read_fcs, paths * 5))
    for i, sample in enumerate(samples):
        k = i % 4
        assert sample.events[0, 0] == k and sample.events[-1, 1] == k + 2 * 50_000 - 1


# -- files with several data sets ($NEXTDATA) -------------------------------------------------


def _chained(first: dict[str, object], second: dict[str, object]) -> tuple[bytes, bytes]:
    """Two data sets in one file: the first's $NEXTDATA (written at a fixed width, so the
    TEXT keeps its length) points to where the second begins."""
    width = {"$NEXTDATA": "0" * 10}
    a = good(keywords=width, **first)
    a = good(keywords={"$NEXTDATA": f"{len(a):010d}"}, **first)
    return a, good(**second)


def _alone(tmp_path: Path, name: str, data: bytes) -> FlowSample:
    """A data set read as a file of its own: the truth for reading it out of a chain."""
    p = tmp_path / name
    p.write_bytes(data)
    return read_fcs(p)


def test_a_second_data_set_is_read_when_asked_for(tmp_path: Path) -> None:
    a, _ = _chained({}, {})
    b = good(datatype="F", bits=32, pne=["0,0"] * 4, pnr=[262144] * 4)  # other values
    p = tmp_path / "two.fcs"
    p.write_bytes(a + b)
    first, second = read_fcs(p), read_fcs(p, dataset=2)
    assert np.array_equal(first.events, _alone(tmp_path, "a.fcs", a).events)
    assert np.array_equal(second.events, _alone(tmp_path, "b.fcs", b).events)
    assert not np.array_equal(first.events, second.events)
    assert any("holds 2 data sets" in n and "data set 1 read" in n for n in first.notes)
    assert any("data set 2 read (as asked)" in n for n in second.notes)
    with pytest.raises(FCSFormatError, match="data set 3 asked for, but the file holds 2"):
        read_fcs(p, dataset=3)


def test_beckman_coulter_fcs2_and_fcs3_pair_reads_the_fcs3_data_set(tmp_path: Path) -> None:
    """Navios/Gallios list-mode files: FCS 2.0 (compensated, log-scaled 10-bit) then FCS 3.0
    (uncompensated, full resolution) of the same events; the analysis wants the second."""
    a, _ = _chained({"version": "2.0"}, {})
    b = good(version="3.0", datatype="F", bits=32, pne=["0,0"] * 4, pnr=[262144] * 4)
    p = tmp_path / "navios.LMD"
    p.write_bytes(a + b)
    s = read_fcs(p)
    assert s.version == "3.0"
    assert np.array_equal(s.events, _alone(tmp_path, "b.fcs", b).events)
    assert any("FCS 2 + FCS 3 pair" in n for n in s.notes)
    assert read_fcs(p, dataset=1).version == "2.0"


def test_nextdata_past_the_end_is_a_note_not_an_error(tmp_path: Path) -> None:
    """Millipore/Guava write $NEXTDATA = $ENDDATA + 1 with no data set there."""
    data = good(keywords={"$NEXTDATA": "100000"})
    s = _alone(tmp_path, "guava.fcs", data)
    assert np.array_equal(s.events, _alone(tmp_path, "plain.fcs", good()).events)
    assert any("where no further data set starts" in n for n in s.notes)


def test_a_broken_later_data_set_is_named_and_the_first_still_readable(tmp_path: Path) -> None:
    a, _ = _chained({}, {})
    p = tmp_path / "broken_second.fcs"
    p.write_bytes(a + b"FCS3.1    garbage that is no header")
    with pytest.raises(FCSFormatError) as info:
        read_fcs(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}: data set 2 (byte {len(a)}, from $NEXTDATA of data set 1)")
    assert msg.endswith("--dataset 1 reads the first alone")
    first = read_fcs(p, dataset=1)
    assert np.array_equal(first.events, _alone(tmp_path, "a.fcs", a).events)
    assert any("data set 2" in n and "not asked for" in n for n in first.notes)


def test_a_blank_nextdata_is_not_a_number(tmp_path: Path) -> None:
    p = tmp_path / "blank.fcs"
    p.write_bytes(good(keywords={"$NEXTDATA": " "}))
    with pytest.raises(FCSFormatError, match=r"\$NEXTDATA ' ' is not a whole number"):
        read_fcs(p)


# -- the DATA segment read block by block from the file ---------------------------------------


@pytest.mark.parametrize(
    ("datatype", "bits", "byteorder", "pne", "png"),
    [
        ("F", 32, "little", None, None),
        ("F", 32, "big", None, [2.0, 1.0, 0.5, 1.0]),
        ("D", 64, "big", None, None),
        ("I", 16, "little", ["0,0", "4,1", "0,0", "0,0"], None),
        ("I", 32, "big", None, [1.0, 3.0, 1.0, 1.0]),
        ("I", 8, "little", None, None),
        ("I", 24, "big", None, None),
    ],
)
@pytest.mark.parametrize("n", [1, 70_000, 150_001])
def test_a_file_read_block_by_block_equals_its_bytes_read_at_once(
    tmp_path: Path,
    datatype: str,
    bits: int,
    byteorder: str,
    pne: list[str] | None,
    png: list[float] | None,
    n: int,
) -> None:
    """read_fcs reads a file's DATA block by block as it converts it (several blocks, several
    threads): the same events, compensated values, notes and keywords as the same bytes read
    whole (as from a pipe)."""
    from nkpanel.flow.sample import _read_buffer

    rng = np.random.default_rng(n)
    top = 256 if bits == 8 else 1024
    raw = rng.integers(0, top, (n, 4)).astype(np.float64)
    if bits != 8:
        raw[: min(n, 2), 0] = 5000  # masked to $PnR 1024 for integers
    data = build_fcs(
        raw,
        ["FSC-A", "FL1-A", "FL2-A", "Time"],
        datatype=datatype,
        bits=bits,
        byteorder=byteorder,
        pne=pne,
        png=png,
        pnr=[top] * 4,
        keywords={"$TIMESTEP": "0.01", "$SPILLOVER": "2,FL1-A,FL2-A,1,0.1,0.2,1"},
    )
    path = write(tmp_path, data)
    for compensate in (False, True):
        streamed = read_fcs(path, compensate=compensate)
        whole = _read_buffer(data, path, compensate)
        assert np.array_equal(streamed.events, whole.events)
        assert streamed.events.flags.f_contiguous and not streamed.events.flags.writeable
        if compensate:
            assert streamed.detector_columns is not None
            assert whole.detector_columns is not None
            assert np.array_equal(streamed.detector_columns, whole.detector_columns)
        assert streamed.notes == whole.notes
        assert streamed.metadata == whole.metadata


def test_rows_too_wide_for_a_block_are_read_with_the_whole_file(tmp_path: Path) -> None:
    """300 parameters of 4 bytes: a block of rows would not fit the cache, so the file is read
    whole first, with the same events."""
    from nkpanel.flow.sample import _read_buffer

    raw = np.random.default_rng(2).normal(100.0, 10.0, (70, 300)).astype(np.float32)
    data = build_fcs(raw, [f"P{i}" for i in range(300)])
    s = read_fcs(write(tmp_path, data))
    assert np.array_equal(s.events, raw.astype(np.float64))
    assert np.array_equal(s.events, _read_buffer(data, tmp_path / "t.fcs").events)


def test_a_file_that_ends_while_its_data_are_read_is_refused(tmp_path: Path) -> None:
    """A file cut short after its TEXT was checked (still being written, or truncated by
    another program): the DATA read stops short and the reader says so, naming the file."""
    import contextlib

    from nkpanel.flow.sample import _open_file, _OpenFile, _StreamedRows

    raw = np.arange(2_000.0).reshape(1_000, 2)
    path = write(tmp_path, build_fcs(raw, ["FSC-A", "SSC-A"]))
    start, _ = data_span(path.read_bytes())
    with contextlib.ExitStack() as held:
        opened = _open_file(path, lambda size: np.empty(size, dtype=np.uint8), held)
        assert isinstance(opened, _OpenFile)
        rows = _StreamedRows(opened, start, 1_000, 2, np.dtype("<f4"))
        scratch = rows.scratch(1_000)
        assert np.array_equal(rows.read(10, 20, scratch), raw[10:20])
        os.truncate(path, start + 4_000)
        with pytest.raises(FCSFormatError, match=r"t\.fcs.*ended inside its DATA"):
            rows.read(0, 1_000, scratch)
        with pytest.raises(FCSFormatError, match="ended inside its DATA"):
            rows.whole()


@pytest.mark.parametrize(
    "layout",
    [
        dict(pnn=["A", "B", "C", "D"]),  # 4-byte floats: read block by block
        dict(pnn=["A", "B", "C", "D"], datatype="I", bits=24, pnr=[1024] * 4),  # 3-byte
        dict(pnn=["A", "B"], datatype="I", bits=[8, 16], pnr=[256, 1024]),  # mixed widths
        dict(pnn=[f"P{i}" for i in range(80)]),  # rows too wide for a block: read whole
    ],
)
def test_a_file_cut_short_after_its_text_was_checked_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: dict[str, object]
) -> None:
    """However the DATA segment is read (block by block, or whole for 3-byte and mixed
    integer widths and wide rows), a file that shrinks after its HEADER and TEXT were checked
    against its size is refused naming the file; the whole-file reads gave a ValueError from
    reshape (review 14)."""
    import nkpanel.flow.sample as sample_module

    pnn = list(layout.pop("pnn"))  # type: ignore[call-overload]
    events = np.random.default_rng(0).integers(0, 200, (3_000, len(pnn))).astype(np.float64)
    data = build_fcs(events, pnn, **layout)  # type: ignore[arg-type]
    path = write(tmp_path, data)
    start, stop = data_span(data)
    checked = sample_module._check_keywords

    def check_then_cut(*args: object, **kwargs: object) -> object:
        out = checked(*args, **kwargs)  # type: ignore[arg-type]
        os.truncate(path, start + (stop - start) // 2)  # cut short after the TEXT was checked
        return out

    monkeypatch.setattr(sample_module, "_check_keywords", check_then_cut)
    with pytest.raises(FCSFormatError, match=r"t\.fcs.*ended inside its DATA segment"):
        read_fcs(path)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd (Linux)")
def test_reading_a_pipe_leaves_no_file_descriptor_open(tmp_path: Path) -> None:
    """A pipe is read to its end through a copy of its descriptor; the descriptor opened
    first was left open on every read (review 14: 20 reads, 20 descriptors)."""
    import threading

    data = build_fcs(np.arange(40.0).reshape(20, 2), ["FSC-A", "SSC-A"])
    pipe = tmp_path / "pipe.fcs"
    os.mkfifo(pipe)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        writer = threading.Thread(target=pipe.write_bytes, args=(data,))
        writer.start()
        read_fcs(pipe)
        writer.join(timeout=10)
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("rows_per_block", [7, 300, 10**6])
def test_column_maxima_found_while_reading_are_the_events_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows_per_block: int
) -> None:
    """Each column's largest value, found while the events are read (the saturation check
    reads no column that stays below its top), is the decoded events' own maximum: float data
    with a gain and Time × $TIMESTEP, and integer data masked to $PnR and log-amplified; in
    one block of rows or many, of 256-row groups and a remainder. Truth: NumPy's max."""
    import dataclasses

    import nkpanel.flow.compensation as compensation

    monkeypatch.setattr(compensation, "BLOCK_ROWS", rows_per_block)
    rng = np.random.default_rng(1)
    ev = rng.uniform(-50.0, 1000.0, (1000, 3))
    ev[:, 2] = np.arange(1000)
    floats = build_fcs(
        ev, ["FL1", "FL2", "Time"], png=[1.0, 2.5, 1.0], keywords={"$TIMESTEP": "0.01"}
    )
    ints = build_fcs(
        rng.integers(0, 4096, (1000, 2)),
        ["FL1", "FL2"],
        datatype="I",
        bits=16,
        pne=["0,0", "4,1"],
        pnr=[1024, 1024],
    )
    for name, data in (("floats.fcs", floats), ("ints.fcs", ints)):
        s = read_fcs(write(tmp_path, data, name))
        assert np.array_equal(s.column_maxima(), s.events.max(axis=0)), name
        # only for the events they were found in
        other = dataclasses.replace(s, events=s.events[:10])
        assert other.column_maxima() is None
        # ... which it does not keep alive (review 17: 160 MB for a 1M × 20 tube)
        assert other.events_max is None
    assert FlowSample.from_array(ev, ["a", "b", "c"]).column_maxima() is None
    # events made writable may have changed since they were read: not trusted (review 17)
    s.events.setflags(write=True)
    assert s.column_maxima() is None


def test_negative_infinity_in_float_data_is_refused(tmp_path: Path) -> None:
    ev = RAW.copy()
    ev[1, 2] = -np.inf
    with pytest.raises(FCSFormatError, match="DATA segment holds 1 non-finite values"):
        read_fcs(write(tmp_path, build_fcs(ev, PNN, datatype="F")))
