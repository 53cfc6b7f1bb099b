"""Reading plate exports: long tables and plate grids, CSV and XLSX, 96 and 384 wells."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nkpanel.cytotox.reads import PlateReads, normalise_unit, read_plate
from nkpanel.cytotox.wells import normalise_well, well_name
from nkpanel.errors import InputError


def grid_lines(n_rows: int, n_cols: int, value: str = "{w}") -> list[str]:
    lines = ["," + ",".join(str(c + 1) for c in range(n_cols))]
    for r in range(n_rows):
        cells = [value.format(w=(r * n_cols + c + 1)) for c in range(n_cols)]
        lines.append("ABCDEFGHIJKLMNOP"[r] + "," + ",".join(cells))
    return lines


def test_plain_long_form(tmp_path: Path) -> None:
    p = tmp_path / "reads.csv"
    p.write_text("well,value\nA1,412\nA02,  398.5\nb3,1e3\n")
    reads = read_plate(p)
    assert dict(reads.values) == {"A1": 412.0, "A2": 398.5, "B3": 1000.0}
    assert reads.form == "long" and reads.plate_format == 96 and reads.unit is None


def test_long_form_with_unit_in_header_and_a_vendor_layout(tmp_path: Path) -> None:
    p = tmp_path / "victor.csv"
    p.write_text(
        "Plate,Repeat,Well,Type,Signal (CPM)\n1,1,A01,M,500\n1,1,A02,M,510\nAverage,,,,505\n"
    )
    reads = read_plate(p, kind="chromium51")
    assert dict(reads.values) == {"A1": 500.0, "A2": 510.0}
    assert reads.unit == "cpm"
    # the summary line is not a well: a note, not a silent drop
    assert reads.notes == ("line 4: a value without a well name; line ignored",)


def test_value_column_named_by_its_unit_and_a_unit_column(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text("Well ID,OD490\nA1,0.25\n")
    assert read_plate(p, kind="ldh").unit == "absorbance"
    q = tmp_path / "q.csv"
    q.write_text("well,value,unit\nA1,10,RFU\nA2,11,RFU\n")
    assert read_plate(q, kind="calcein").unit == "rfu"


def test_96_well_grid_with_lines_above(tmp_path: Path) -> None:
    p = tmp_path / "grid.csv"
    p.write_text("\n".join(["Gamma counter export", "Unit: cpm", "", *grid_lines(8, 12)]) + "\n")
    reads = read_plate(p, kind="chromium51")
    assert reads.form == "grid" and reads.plate_format == 96 and reads.unit == "cpm"
    assert len(reads.values) == 96
    # row-major numbering written into the cells: H12 is 8 × 12 = 96, B1 is 13
    assert reads.values["H12"] == 96.0 and reads.values["B1"] == 13.0


def test_384_well_grid_semicolon_and_decimal_comma(tmp_path: Path) -> None:
    lines = [";" + ";".join(str(c + 1) for c in range(24))]
    for r in range(16):
        lines.append(
            "ABCDEFGHIJKLMNOP"[r] + ";" + ";".join(f"{r * 24 + c + 1},5" for c in range(24))
        )
    p = tmp_path / "grid384.csv"
    p.write_text("\n".join(lines) + "\n")
    reads = read_plate(p)
    assert reads.plate_format == 384 and len(reads.values) == 384
    assert reads.values["P24"] == 384.5 and reads.values["A1"] == 1.5


def test_grid_in_xlsx_and_sheet_choice(tmp_path: Path) -> None:
    p = tmp_path / "reads.xlsx"
    rows: list[list[object]] = [["Unit", "RFU"], [None, *range(1, 13)]]
    for r in range(8):
        rows.append(["ABCDEFGH"[r], *[float(r * 12 + c + 1) for c in range(12)]])
    book = openpyxl.Workbook()
    cover = book.active
    assert cover is not None
    cover.title = "Cover"
    sheet = book.create_sheet("Results")
    for row in rows:
        sheet.append(row)
    book.save(p)
    with pytest.raises(InputError, match=r"sheet Cover\]: the sheet is empty.*'Results'"):
        read_plate(p)
    reads = read_plate(p, sheet="Results", kind="calcein")
    assert reads.values["C5"] == 29.0 and reads.unit == "rfu"


def test_two_grids_need_a_choice(tmp_path: Path) -> None:
    p = tmp_path / "two.csv"
    p.write_text("\n".join([*grid_lines(8, 12), "", *grid_lines(8, 12, "{w}0")]) + "\n")
    with pytest.raises(InputError, match="2 plate grids"):
        read_plate(p)
    assert read_plate(p, grid=2).values["A2"] == 20.0


def test_text_cells_and_duplicates_are_kept_per_well(tmp_path: Path) -> None:
    p = tmp_path / "reads.csv"
    p.write_text("well,value\nA1,OVER\nA2,5\nA3,7\nA3,8\nA4,\n")
    reads = read_plate(p)
    assert dict(reads.values) == {"A2": 5.0}
    assert "text 'OVER'" in reads.bad_cells["A1"]
    assert "listed twice (lines 4 and 5)" in reads.bad_cells["A3"]
    assert "empty" in reads.bad_cells["A4"]
    g = tmp_path / "grid.csv"
    g.write_text("\n".join(grid_lines(8, 12, "{w}")).replace(",14,", ",****,") + "\n")
    assert "text '****'" in read_plate(g).bad_cells["B2"]


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("", {}, "empty"),
        ("\n\n,,\n", {}, "empty"),
        ("name,score\nx,1\n", {}, "neither a plate grid"),
        ("well,value (furlongs)\nA1,3\n", {}, "unknown unit 'furlongs'"),
        ("well,value\nA1,3\n", {"unit": "bananas"}, "unknown unit 'bananas'"),
        ("well,value (cpm)\nA1,3\n", {"kind": "ldh"}, "does not fit a ldh assay"),
        ("well,value (cpm)\nA1,3\n", {"unit": "RFU"}, "says 'cpm' but 'RFU' was given"),
        ("well,value,unit\nA1,3,cpm\nA2,4,cps\n", {}, "mixed units"),
        ("well,cpm,ccpm\nA1,3,4\n", {}, "several value columns"),
        ("well,value\n", {}, "no well holds a value"),
    ],
)
def test_bad_files_fail_with_one_line_naming_the_file(
    tmp_path: Path, content: str, kwargs: dict[str, str], message: str
) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read_plate(p, **kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(str(p)) and "\n" not in str(info.value)


def test_missing_legacy_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_plate(tmp_path / "nope.csv")
    for name, msg in (("old.xls", "legacy .xls"), ("x.pdf", "unknown file type"), ("b.xlsx", "")):
        p = tmp_path / name
        p.write_bytes(b"\x00\x01garbage")
        with pytest.raises(InputError, match=msg or "not a readable XLSX"):
            read_plate(p)


def test_from_mapping() -> None:
    reads = PlateReads.from_mapping({"a01": 1.0, "P24": 2.0})
    assert reads.plate_format == 384 and set(reads.values) == {"A1", "P24"}
    with pytest.raises(InputError, match="given twice"):
        PlateReads.from_mapping({"A1": 1.0, "A01": 2.0})


@given(row=st.integers(0, 15), col=st.integers(0, 23), pad=st.booleans(), lower=st.booleans())
def test_well_names_round_trip(row: int, col: int, pad: bool, lower: bool) -> None:
    name = well_name(row, col)
    text = f"{name[0]}{int(name[1:]):02d}" if pad else name
    assert normalise_well(text.lower() if lower else text) == name


@pytest.mark.parametrize("text", ["", "A0", "A25", "Q1", "AA1", "1A", "A1B"])
def test_not_well_names(text: str) -> None:
    assert normalise_well(text) is None


def test_units() -> None:
    assert normalise_unit("Counts per minute") == "cpm"
    assert normalise_unit("A490") == "absorbance"
    assert normalise_unit("OD 450 nm") == "absorbance"
    assert normalise_unit("TRF counts") == "counts"
    assert normalise_unit("%") is None


def test_a_folder_or_a_sheet_of_a_csv_is_said_as_such(tmp_path: Path) -> None:
    """A folder given for the reads was "file not found", and --sheet on a CSV was ignored
    without a word (audit 17)."""
    with pytest.raises(InputError, match="is a folder: give the file"):
        read_plate(tmp_path)
    p = tmp_path / "reads.csv"
    p.write_text("well,value\nA1,100\nA2,110\n")
    with pytest.raises(InputError, match=r"a sheet \('Sheet2'\) was named by --sheet/"):
        read_plate(p, sheet="Sheet2")
    assert len(read_plate(p).values) == 2


def test_european_number_formats(tmp_path: Path) -> None:
    """Audit 20: decimal commas were read only in semicolon files (a tab export failed well by
    well as "text in a numeric cell"), and a thousands dot ("6.000") was read as 6.0 with no
    word. By hand: 1.336,87 is 1336.87 and 6.000 is 6000 where commas are the decimal mark; a
    semicolon file whose dots all group thousands is read as before, and said."""
    tab = tmp_path / "tab.txt"
    tab.write_text("well\tvalue\nA1\t1336,86984\nA2\t85\nA3\t1.336,87\nA4\t6.000\n")
    reads = read_plate(tab)
    assert dict(reads.values) == {
        "A1": pytest.approx(1336.86984),
        "A2": 85.0,
        "A3": pytest.approx(1336.87),
        "A4": 6000.0,
    }
    assert not reads.bad_cells and not reads.notes
    semi = tmp_path / "semi.csv"
    semi.write_text("well;value\nA1;6.000\nA2;13.369\nA3;85\n")
    guessed = read_plate(semi)
    assert dict(guessed.values) == {"A1": 6.0, "A2": 13.369, "A3": 85.0}
    (note,) = guessed.notes
    assert note.startswith("numbers such as '6.000' were read with '.' as the decimal point")
    plain = tmp_path / "plain.csv"  # English decimals in a semicolon file: no note
    plain.write_text("well;value\nA1;1336.87\nA2;12.5\n")
    assert read_plate(plain).notes == ()


def test_numbered_positions_are_said_not_called_an_empty_plate(tmp_path: Path) -> None:
    """Audit 20: a gamma-counter export with numbered positions (Pos 1–96) was refused as an
    "empty plate"; the lines' own notes, which said why, were dropped."""
    p = tmp_path / "gamma.csv"
    p.write_text("Rack,Pos,Sample,CPM\n1,1,A,512\n1,2,B,600\n1,3,C,640\n")
    with pytest.raises(InputError) as info:
        read_plate(p)
    assert str(info.value) == (
        f"{p}: no well holds a value: line 2: '1' is not a well name; line ignored (and 2 more "
        "like it); the well column needs well names such as A1 (positions 1–96 are not)"
    )


def test_a_broken_workbook_and_error_cells_are_said_plainly(tmp_path: Path) -> None:
    """Audit 20: an empty .xlsx got pandas' advice ("you must specify an engine manually"),
    and an Excel error cell (#DIV/0!) or a formula never calculated was "no value"."""
    empty = tmp_path / "empty.xlsx"
    empty.write_bytes(b"")
    with pytest.raises(InputError) as info:
        read_plate(empty)
    assert str(info.value) == (
        f"{empty}: not a readable XLSX workbook (not a zip archive: empty, damaged, or another "
        "kind of file named .xlsx)"
    )
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in (["well", "value"], ["A1", 512], ["A2", "=1/0"]):
        sheet.append(row)
    path = tmp_path / "errors.xlsx"
    book.save(path)
    reads = read_plate(path)
    assert dict(reads.values) == {"A1": 512.0}
    assert reads.bad_cells["A2"] == (
        "the value cell is empty, or holds an Excel error or a formula without a saved value "
        "(line 3)"
    )


def test_an_ambiguous_comma_is_not_taken_for_a_decimal_mark(tmp_path: Path) -> None:
    """Review 21: one "3,082" (Excel's tab text of 3082) switched a tab file to decimal commas
    and read it as 3.082; one "0,5" in a file of dot decimals turned "1.250" into 1250. A comma
    with three digits after it may group thousands: such a cell is not read (as before); a
    file with both marks is read with the dot, and said."""
    thousands = tmp_path / "thousands.tsv"
    thousands.write_text("well\tvalue\nA1\t335\nA2\t3,082\n")
    reads = read_plate(thousands)
    assert dict(reads.values) == {"A1": 335.0}
    assert reads.bad_cells["A2"] == "text '3,082' in a numeric cell (line 3)"
    mixed = tmp_path / "mixed.tsv"
    mixed.write_text("dilution\t0,5\nwell\tvalue\nA1\t1.250\nA2\t0.875\n")
    reads = read_plate(mixed)
    assert dict(reads.values) == {"A1": 1.25, "A2": 0.875}
    (note,) = reads.notes
    assert note.startswith("numbers such as '0,5' have a decimal comma where more have a dot")
    # one stray dot (a software version in a header line) does not undo a decimal-comma file,
    # and values that all look like thousands are not read as such for one comma (review 22)
    versioned = tmp_path / "versioned.tsv"
    versioned.write_text("Reader\t3.12\nwell\tvalue\nA1\t512,5\nA2\t600,25\n")
    assert dict(read_plate(versioned).values) == {"A1": 512.5, "A2": 600.25}
    # a "0,5" beside "1.250"-like values: counts in thousands, or absorbances? The file does
    # not say (reviews 22 and 23 found either reading wrong for one kind): not read, and said
    dotted = tmp_path / "dotted.tsv"
    dotted.write_text("dilution\t0,5\nwell\tvalue\nA1\t1.250\nA2\t2.125\nA3\t1.875\n")
    reads = read_plate(dotted)
    assert not reads.values and set(reads.bad_cells) == {"A1", "A2", "A3"}
    assert reads.notes[-1].startswith(
        "numbers such as '1.250' are not read: with decimal commas elsewhere in the file ('0,5')"
    )
    # commas that may group thousands, and nothing else: not read, and said
    grouped = tmp_path / "grouped.csv"
    grouped.write_text("well;value\nA1;1,250\nA2;2,125\n")
    reads = read_plate(grouped)
    assert not reads.values and set(reads.bad_cells) == {"A1", "A2"}
    assert reads.notes[-1].startswith("numbers such as '1,250' are not read: the comma may be")
