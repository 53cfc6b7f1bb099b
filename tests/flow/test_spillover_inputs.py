"""Spillover matrices as labs supply them: spreadsheet CSVs, percent, stain names, part-matrices.

Truth is the matrix written in each test by hand: every spelling of it must read back as the same
fractions, and an analysis with it must equal the analysis with the canonical form.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nkpanel.errors import CompensationError
from nkpanel.flow.compensation import read_spillover_csv
from nkpanel.flow.sample import FlowSample, Spillover, read_fcs
from tests.flow.fcs_bytes import build_fcs

#: FITC into PE 12.5%, PE into FITC 2%, PE into PE-Cy7 4%
CHANNELS = ("FITC-A", "PE-A", "PE-Cy7-A")
MATRIX = np.array([[1.0, 0.125, 0.0], [0.02, 1.0, 0.04], [0.0, 0.0, 1.0]])


def _csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("FITC-A,PE-A,PE-Cy7-A\n1,0.125,0\n0.02,1,0.04\n0,0,1\n", "utf-8"),
        # Excel "CSV UTF-8": a byte-order mark before the first channel name
        ("FITC-A,PE-A,PE-Cy7-A\n1,0.125,0\n0.02,1,0.04\n0,0,1\n", "utf-8-sig"),
        # European Excel: semicolons, decimal commas
        ("FITC-A;PE-A;PE-Cy7-A\n1;0,125;0\n0,02;1;0,04\n0;0;1\n", "utf-8"),
        ("FITC-A\tPE-A\tPE-Cy7-A\n1\t0.125\t0\n0.02\t1\t0.04\n0\t0\t1\n", "utf-8"),
        # a first column naming each row, as FlowJo and spreadsheets lay a matrix out
        (",FITC-A,PE-A,PE-Cy7-A\nFITC-A,1,0.125,0\nPE-A,0.02,1,0.04\nPE-Cy7-A,0,0,1\n", "utf-8"),
        # a corner label of its own, and the empty cells a spreadsheet leaves at row ends
        (
            "Fluorochrome,FITC-A,PE-A,PE-Cy7-A,\nFITC-A,1,0.125,0,\nPE-A,0.02,1,0.04,\n"
            "PE-Cy7-A,0,0,1,\n,,,,\n",
            "utf-8",
        ),
        # percent
        ("FITC-A,PE-A,PE-Cy7-A\n100,12.5,0\n2,100,4\n0,0,100\n", "utf-8"),
    ],
    ids=["plain", "bom", "semicolon-decimal-comma", "tab", "row-names", "corner-label", "percent"],
)
def test_every_spreadsheet_spelling_reads_as_the_same_fractions(
    tmp_path: Path, text: str, encoding: str
) -> None:
    spill, notes = read_spillover_csv(_csv(tmp_path / "m.csv", text, encoding))
    assert spill.channels == CHANNELS
    np.testing.assert_allclose(spill.matrix, MATRIX, rtol=0, atol=1e-15)
    assert bool(notes) == text.startswith("FITC-A,PE-A,PE-Cy7-A\n100")


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("FITC-A;PE-A\n1;0,1\n0;x\n", "holds 'x' at row 3, column 2, not a number"),
        ("FITC-A,PE-A\n1,0.1\n0,n/a\n", "(a file separated by ';' or tabs is read too)"),
        (",FITC-A,PE-A\nPE-A,1,0.1\nFITC-A,0,1\n", "rows are named ['PE-A', 'FITC-A']"),
        ("FITC-A,PE-A\n0.5,0.1\n0,1\n", "diagonal runs from 0.5 to 1, not 1"),
        ("FITC-A,PE-A\n1,0.1\n", "is (1, 2), expected 2×2"),
        ("FITC-A,PE-A\n", "needs a header of channel names and rows"),
        ("FITC-A,PE-A\n,,\n,,\n", "needs a header of channel names and rows"),
    ],
)
def test_bad_matrix_files_get_one_line_naming_file_and_cause(
    tmp_path: Path, text: str, cause: str
) -> None:
    path = _csv(tmp_path / "bad.csv", text)
    with pytest.raises(CompensationError) as info:
        read_spillover_csv(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and cause in message, message


def _fcs_with_spillover(tmp_path: Path, value: str) -> Path:
    rng = np.random.default_rng(0)
    events = rng.uniform(0, 1000, size=(200, 3))
    data = build_fcs(events, CHANNELS, pns=("CD3", "CD16", "CD19"), keywords={"$SPILLOVER": value})
    path = tmp_path / "tube-synthetic.fcs"
    path.write_bytes(data)
    return path


def test_a_files_spillover_in_percent_is_divided_by_100_with_a_note(tmp_path: Path) -> None:
    percent = "3,FITC-A,PE-A,PE-Cy7-A,100,12.5,0,2,100,4,0,0,100"
    sample = read_fcs(_fcs_with_spillover(tmp_path, percent))
    assert sample.spillover == Spillover(CHANNELS, MATRIX)
    assert any("in percent (diagonal 100): divided by 100" in n for n in sample.notes)


def test_a_files_spillover_with_another_diagonal_is_refused(tmp_path: Path) -> None:
    path = _fcs_with_spillover(tmp_path, "2,FITC-A,PE-A,0.5,0.1,0,1")
    with pytest.raises(CompensationError, match=r"diagonal runs from 0\.5 to 1") as info:
        read_fcs(path)
    assert str(path) in str(info.value)


def test_stain_names_stand_for_their_channels(tmp_path: Path) -> None:
    """A matrix labelled with $PnS names compensates exactly as the one labelled with $PnN."""
    from nkpanel.flow.compensation import compensate
    from nkpanel.flow.sample import on_file_channels

    sample = read_fcs(_fcs_with_spillover(tmp_path, "3,FITC-A,PE-A,PE-Cy7-A,1,0,0,0,1,0,0,0,1"))
    by_stain = on_file_channels(Spillover(("cd3", "CD16", "CD19 "), MATRIX), sample.channels, None)
    assert by_stain == Spillover(CHANNELS, MATRIX)
    np.testing.assert_array_equal(
        compensate(sample, by_stain), compensate(sample, Spillover(CHANNELS, MATRIX))
    )
    # a name that is neither is left for compensation to refuse, naming it
    unknown = on_file_channels(Spillover(("CD3", "CD4", "CD19"), MATRIX), sample.channels, None)
    with pytest.raises(CompensationError, match="names channel 'CD4', not in the file"):
        compensate(sample, unknown)


def test_a_supplied_matrix_leaving_out_gated_detectors_is_flagged(tmp_path: Path) -> None:
    """The simulated tube's own matrix covers five detectors; a supplied matrix of its first
    three leaves two gated ones uncompensated: the result is withheld, naming them (a warning
    alone left B cells at 0.01% of lymphocytes for 11.9, reportable: audit 33)."""
    from nkpanel.flow.analyze import FlowSettings, analyze_file
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs

    tube = simulate_tube(SimulationSpec(n_events=30_000, seed=5))
    path = write_fcs(tube, tmp_path / "tube-synthetic.fcs")
    own = tube.spillover
    part = Spillover(own.channels[:3], own.matrix[:3, :3])
    result = analyze_file(path, FlowSettings(spillover=part)).result
    flag = next(f for f in result.qc if f.check == "compensation")
    assert not flag.passed and flag.blocking and not result.reportable
    for ch in own.channels[3:]:
        assert ch in flag.reason
    full = analyze_file(path, FlowSettings(spillover=own)).result
    assert next(f for f in full.qc if f.check == "compensation").passed


def test_a_second_keyword_with_another_matrix_is_noted(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = build_fcs(
        rng.uniform(0, 1000, size=(100, 3)),
        CHANNELS,
        keywords={
            "$SPILLOVER": "3,FITC-A,PE-A,PE-Cy7-A,1,0.125,0,0.02,1,0.04,0,0,1",
            "SPILL": "3,FITC-A,PE-A,PE-Cy7-A,1,0.2,0,0.02,1,0.04,0,0,1",
        },
    )
    path = tmp_path / "two-matrices-synthetic.fcs"
    path.write_bytes(data)
    sample = read_fcs(path)
    assert sample.spillover == Spillover(CHANNELS, MATRIX)
    assert "SPILL holds another matrix than $SPILLOVER, which is used" in sample.notes


def test_a_left_out_dye_that_spills_into_a_gated_channel_is_flagged() -> None:
    """From MATRIX by hand: PE spills 2% into FITC and 4% into PE-Cy7, so a matrix that leaves
    PE out matters even when PE itself is not gated; PE-Cy7 spills into nothing, so leaving it
    out does not matter when it is not gated."""
    from nkpanel.flow.analyze import FlowSettings, _compensation_flag

    sample = FlowSample.from_array(
        np.zeros((3, 3)), list(CHANNELS), spillover=Spillover(CHANNELS, MATRIX)
    )
    partial = Spillover(("FITC-A", "PE-Cy7-A"), np.array([[1.0, 0.01], [0.0, 1.0]]))
    s = FlowSettings(spillover=partial)
    # PE-A left out, not gated, spills 0.02 into FITC-A and 0.04 into PE-Cy7-A (both gated)
    flag = _compensation_flag(sample, partial, s, {"FITC-A", "PE-Cy7-A"})
    assert not flag.passed and "leaves out PE-A" in flag.reason
    # PE-Cy7-A left out: spills nothing (its row is 0, 0, 1); gated only FITC-A and PE-A
    no_cy7 = Spillover(("FITC-A", "PE-A"), MATRIX[:2, :2])
    flag = _compensation_flag(sample, no_cy7, FlowSettings(spillover=no_cy7), {"FITC-A", "PE-A"})
    assert flag.passed


@pytest.mark.parametrize("matrix", ["identity", "three of five"])
def test_a_file_matrix_that_leaves_gated_dyes_uncompensated_withholds(
    tmp_path: Path, matrix: str
) -> None:
    """A file whose $SPILLOVER is the identity (no compensation set up at acquisition), or
    covers three of its five gated dyes, is as uncompensated as one with no matrix: it gave
    CD56bright 0.0% of NK for 9.6 and B cells 0.04% for 11.8, reportable (audit 33). Withheld,
    as a file without a matrix is; with its right matrix the same events pass."""
    from nkpanel.flow.analyze import analyze_file, analyze_sample
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs
    from tests.flow.samples import rebuilt

    tube = simulate_tube(SimulationSpec(n_events=30_000, seed=31, spillover_scale=2.0))
    own = tube.spillover
    wrong = (
        Spillover(own.channels, np.eye(len(own.channels)))
        if matrix == "identity"
        else Spillover(own.channels[:3], own.matrix[:3, :3])
    )
    path = write_fcs(tube, tmp_path / "tube-synthetic.fcs")
    assert analyze_file(path).result.reportable
    result = analyze_sample(rebuilt(read_fcs(path), spillover=wrong)).result
    flag = next(f for f in result.qc if f.check == "compensation")
    assert flag.blocking and not flag.passed and not result.reportable
    assert ("identity" in flag.reason) == (matrix == "identity")
    if matrix != "identity":
        assert all(ch in flag.reason for ch in own.channels[3:])


def test_a_spillover_keyword_naming_stains_is_read(tmp_path: Path) -> None:
    """A $SPILLOVER written with the stain labels ("CD3 FITC", as a CSV may be) failed the file
    with "names channel 'CD3 FITC', not in the file", though that is FITC-A's $PnS (audit 33)."""
    rng = np.random.default_rng(1)
    values = ",".join(format(v, "g") for v in MATRIX.ravel())
    data = build_fcs(
        rng.uniform(0, 1000, size=(100, 3)),
        CHANNELS,
        pns=["CD3 FITC", "CD16 PE", "CD19 PE-Cy7"],
        keywords={"$SPILLOVER": f"3,cd3 fitc,CD16  PE,CD19 PE-Cy7,{values}"},
    )
    path = tmp_path / "stain-names-synthetic.fcs"
    path.write_bytes(data)
    assert read_fcs(path).spillover == Spillover(CHANNELS, MATRIX)


def _exported(tmp_path: Path, *, spillover: str | None) -> Path:
    """A SYNTHETIC tube as FlowJo exports it compensated: each fluorescence channel named
    FJComp-…, values compensated, and the matrix dropped or kept under its old names."""
    from nkpanel.flow.compensation import compensate
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube

    tube = simulate_tube(SimulationSpec(n_events=30_000, seed=9))
    sample = tube.to_sample()
    fluor = set(tube.spillover.channels)
    names = [f"FJComp-{n}" if n in fluor else n for n in tube.pnn]
    keywords = {"$TIMESTEP": "1"}
    if spillover is not None:
        keywords["$SPILLOVER"] = spillover
    data = build_fcs(
        compensate(sample, sample.spillover), names, pns=list(tube.pns), keywords=keywords
    )
    path = tmp_path / "flowjo-export-synthetic.fcs"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("matrix", ["dropped", "kept under the old names"])
def test_a_compensated_export_is_not_called_uncompensated(tmp_path: Path, matrix: str) -> None:
    """FlowJo's compensated export (FJComp-FITC-A…) was withheld as "fluorescence is
    uncompensated" without a matrix, and failed outright with its old $SPILLOVER, even with
    --spillover (audit 33). Its data are compensated: reportable, with a warning that the
    compensation cannot be checked here; a matrix applied on top is refused, as it would
    subtract spillover twice."""
    from nkpanel.flow.analyze import FlowSettings, analyze_file

    stale = "2,FITC-A,PE-A,1,0.1,0.02,1" if matrix != "dropped" else None
    path = _exported(tmp_path, spillover=stale)
    result = analyze_file(path).result
    assert result.reportable, result.not_reportable_reasons
    flag = next(f for f in result.qc if f.check == "compensation")
    assert "compensated before export" in flag.reason and not flag.blocking
    if stale is not None:
        assert any("names the channels before compensation" in n for n in result.file_notes)
    again = Spillover(("FJComp-FITC-A", "FJComp-PE-A"), np.array([[1.0, 0.1], [0.02, 1.0]]))
    twice = analyze_file(path, FlowSettings(spillover=again)).result
    flag = next(f for f in twice.qc if f.check == "compensation")
    assert flag.blocking and "twice" in flag.reason


def test_a_supplied_matrix_stands_in_for_a_keyword_that_cannot_be_used(tmp_path: Path) -> None:
    """A $SPILLOVER naming a channel the file lacks failed the file even with --spillover,
    whose help says it is used instead of the file's (audit 33). With a matrix supplied the
    keyword is said in a note; without one it is still an error naming the file."""
    rng = np.random.default_rng(2)
    values = ",".join(format(v, "g") for v in MATRIX.ravel())
    data = build_fcs(
        rng.uniform(0, 1000, size=(100, 3)),
        CHANNELS,
        keywords={"$SPILLOVER": f"3,FITC-A,PE-A,APC-A,{values}"},
    )
    path = tmp_path / "stale-synthetic.fcs"
    path.write_bytes(data)
    with pytest.raises(CompensationError, match=r"stale-synthetic\.fcs: spillover names channel"):
        read_fcs(path)
    sample = read_fcs(path, compensate=Spillover(CHANNELS, MATRIX))
    assert sample.spillover is None
    assert any("cannot be used" in n and "the supplied matrix is" in n for n in sample.notes)


def test_a_comp_keyword_it_cannot_use_is_named_in_the_reason() -> None:
    """A $COMP in FCS 3.0's own layout (no channel names) is not used; the result was withheld
    as "no spillover matrix in the file", though the file holds one (audit 33)."""
    from nkpanel.flow.analyze import FlowSettings, _compensation_flag

    sample = FlowSample.from_array(
        np.zeros((3, 3)), list(CHANNELS), metadata={"comp": "3,1,0.125,0,0.02,1,0.04,0,0,1"}
    )
    flag = _compensation_flag(sample, None, FlowSettings(), set(CHANNELS))
    assert flag.blocking and "no spillover matrix it could use in the file ($COMP" in flag.reason
    plain = FlowSample.from_array(np.zeros((3, 3)), list(CHANNELS))
    flag = _compensation_flag(plain, None, FlowSettings(), set(CHANNELS))
    assert flag.reason.startswith("no spillover matrix in the file and none supplied")


def test_a_left_out_dye_withholds_whether_its_channel_is_labelled_or_not() -> None:
    """A supplied matrix that leaves out a dye withholds, labelled or not: a stained channel
    need not carry a $PnS, and letting unlabelled ones only warn gave NK 7.2% for 12.3,
    reportable (review 35). The reason says how to include a detector that held no dye."""
    from nkpanel.flow.analyze import FlowSettings, _compensation_flag

    partial = Spillover(("FITC-A", "PE-Cy7-A"), np.array([[1.0, 0.01], [0.0, 1.0]]))
    s = FlowSettings(spillover=partial)
    for pns in (["CD3 FITC", "", "CD19 PE-Cy7"], ["CD3", "CD16", "CD19"]):
        sample = FlowSample.from_array(
            np.zeros((3, 3)), list(CHANNELS), pns=pns, spillover=Spillover(CHANNELS, MATRIX)
        )
        flag = _compensation_flag(sample, partial, s, {"FITC-A", "PE-Cy7-A"})
        assert not flag.passed and flag.blocking and "PE-A" in flag.reason
        assert "can go into the supplied matrix as the file's matrix has it" in flag.reason


def test_an_identity_matrix_on_a_spectral_instrument_needs_the_data_to_bear_it_out() -> None:
    """An identity $SPILLOVER is right over unmixed channels, but uncompensated detector values
    from an instrument named spectral (FACSymphony A5 SE) read CD56bright 0.0% for 9.6,
    reportable, with warnings only (review 35): where the check in the data does not pass,
    the result is withheld."""
    import dataclasses

    from nkpanel.flow.analyze import analyze_sample
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube

    tube = simulate_tube(SimulationSpec(n_events=30_000, seed=31, spillover_scale=2.0))
    sample = tube.to_sample()
    identity = Spillover(tube.spillover.channels, np.eye(len(tube.spillover.channels)))
    named = dataclasses.replace(
        sample, spillover=identity, metadata={**sample.metadata, "cyt": "FACSymphony A5 SE"}
    )
    result = analyze_sample(named).result
    assert not result.reportable
    flag = next(f for f in result.qc if f.check == "compensation")
    assert flag.blocking and "the data do not look compensated" in flag.reason


def test_gating_on_compensated_copies_beside_raw_channels_says_so(tmp_path: Path) -> None:
    """A file holding raw channels (with $SPILLOVER) and FlowJo's compensated copies (Comp-…),
    gated on the copies with --marker: the flag said "compensated with the file's matrix",
    though no matrix touched those channels (audit 33 finding 19). SYNTHETIC tube."""
    from nkpanel.flow.analyze import FlowSettings, analyze_file
    from nkpanel.flow.compensation import compensate
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube

    tube = simulate_tube(SimulationSpec(n_events=30_000, seed=9))
    sample = tube.to_sample()
    fluor = list(tube.spillover.channels)
    done = compensate(sample, sample.spillover)
    copies = done[:, [tube.pnn.index(c) for c in fluor]]
    values = ",".join(format(float(v), ".10g") for v in tube.spillover.matrix.ravel())
    data = build_fcs(
        np.column_stack([sample.events, copies]),
        [*tube.pnn, *(f"Comp-{c}" for c in fluor)],
        pns=[*tube.pns, *([""] * len(fluor))],
        keywords={"$TIMESTEP": "1", "$SPILLOVER": f"{len(fluor)},{','.join(fluor)},{values}"},
    )
    path = tmp_path / "raw-and-comp-synthetic.fcs"
    path.write_bytes(data)
    stains = {p.split()[0]: c for p, c in zip(tube.pns, tube.pnn, strict=True) if p}
    overrides = {m: f"Comp-{c}" for m, c in stains.items()}
    copied = analyze_file(path, FlowSettings(marker_overrides=overrides)).result
    flag = next(f for f in copied.qc if f.check == "compensation")
    assert flag.passed and "compensated before export" in flag.reason
    assert "file's matrix" not in flag.reason
    raw = analyze_file(path).result  # the raw channels, compensated here
    flag = next(f for f in raw.qc if f.check == "compensation")
    assert flag.passed and flag.reason == "compensated with the file's matrix"
    assert copied.nk_percent_of_lymphocytes == pytest.approx(raw.nk_percent_of_lymphocytes)
