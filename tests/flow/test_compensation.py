"""Compensation against hand-built examples, FlowKit, and the Gating-ML 2.0 compliance suite."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from nkpanel.errors import CompensationError, InputError
from nkpanel.flow.compensation import compensate
from nkpanel.flow.sample import FlowSample, Spillover, parse_spillover, read_fcs
from tests.flow.test_transforms import GML_DIR, compliance_gates, evaluate_rectangle, gml_truth

# --------------------------------------------------------------------------------------------
# hand-built examples: observed = true · S, worked out by hand in the comments


def test_two_channel_hand_example() -> None:
    # S: dye 1 gives 20 % of its signal to detector 2, dye 2 gives 10 % to detector 1.
    # true (100, 50): o1 = 100·1 + 50·0.1 = 105, o2 = 100·0.2 + 50·1 = 70
    # true (0, 200):  o1 = 20,  o2 = 200
    # true (−10, 0):  o1 = −10, o2 = −2
    spill = Spillover(("FL1", "FL2"), np.array([[1.0, 0.2], [0.1, 1.0]]))
    s = FlowSample.from_array([[105.0, 70.0], [20.0, 200.0], [-10.0, -2.0]], ["FL1", "FL2"])
    np.testing.assert_allclose(
        compensate(s, spill), [[100.0, 50.0], [0.0, 200.0], [-10.0, 0.0]], atol=1e-12
    )


def test_three_channel_hand_example_in_another_column_order() -> None:
    # The Gating-ML compliance matrix (rows = dyes FITC, PE, PerCP on FL1, FL2, FL3):
    #   [1, .02, .06], [.11, 1, .07], [.09, .01, 1]
    # true (FITC, PE, PerCP) = (1000, 200, 50):
    #   FL1 = 1000 + 200·0.11 + 50·0.09 = 1026.5
    #   FL2 = 1000·0.02 + 200 + 50·0.01 = 220.5
    #   FL3 = 1000·0.06 + 200·0.07 + 50 = 124
    spill = Spillover(
        ("FL1", "FL2", "FL3"),
        np.array([[1.0, 0.02, 0.06], [0.11, 1.0, 0.07], [0.09, 0.01, 1.0]]),
    )
    # file order differs from the matrix order; FSC and Time are not in the matrix
    s = FlowSample.from_array(
        [[5000.0, 124.0, 1026.5, 7.0, 220.5]], ["FSC-A", "FL3", "FL1", "Time", "FL2"]
    )
    got = compensate(s, spill)
    np.testing.assert_allclose(got, [[5000.0, 50.0, 1000.0, 7.0, 200.0]], rtol=1e-13)
    assert got is not s.events and not np.shares_memory(got, s.events)
    np.testing.assert_array_equal(s.events, [[5000.0, 124.0, 1026.5, 7.0, 220.5]])


def test_identity_matrix_changes_nothing() -> None:
    rng = np.random.default_rng(7)
    ev = rng.normal(1000, 300, size=(50, 3))
    s = FlowSample.from_array(ev, ["A", "B", "C"])
    got = compensate(s, Spillover(("B", "A"), np.eye(2)))
    np.testing.assert_array_equal(got, ev)


def test_file_spillover_is_used_by_default() -> None:
    spill = Spillover(("FL1", "FL2"), np.array([[1.0, 0.2], [0.1, 1.0]]))
    s = FlowSample.from_array([[105.0, 70.0]], ["FL1", "FL2"], spillover=spill)
    np.testing.assert_allclose(compensate(s), [[100.0, 50.0]], atol=1e-12)


def test_no_events() -> None:
    s = FlowSample.from_array(np.empty((0, 2)), ["FL1", "FL2"])
    assert compensate(s, Spillover(("FL1", "FL2"), np.eye(2))).shape == (0, 2)


# --------------------------------------------------------------------------------------------
# real data: 68983.fcs against FlowKit, and the compliance suite


@pytest.fixture(scope="module")
def file_68983(shared_data: Path) -> Path:
    p = shared_data / "flowsom-68983" / "68983.fcs"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p


@pytest.mark.shared_data
def test_68983_matches_flowkit_compensation(file_68983: Path) -> None:
    flowkit = pytest.importorskip("flowkit")
    sample = read_fcs(file_68983)
    assert sample.spillover is not None
    assert len(sample.spillover.channels) == 11  # the SPILL keyword's 11 fluorescence channels
    ours = compensate(sample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fk = flowkit.Sample(str(file_68983))
        fk.apply_compensation(fk.metadata["spill"])
        ref = fk.get_events(source="comp")
    assert ref.shape == ours.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    # and compensation did something: the spillover is far from the identity
    assert not np.allclose(ours, sample.events)
    # scatter and time are untouched
    for ch in ("Time", "FSC-A", "SSC-A"):
        i = sample.index_of(ch)
        np.testing.assert_array_equal(ours[:, i], sample.events[:, i])


@pytest.mark.shared_data
def test_68983_spillover_keyword_parsed_by_hand(file_68983: Path) -> None:
    """First row of the SPILL keyword, read here by splitting the text ourselves."""
    sample = read_fcs(file_68983)
    parts = sample.metadata["spill"].split(",")
    n = int(parts[0])
    assert sample.spillover is not None
    assert sample.spillover.channels == tuple(parts[1 : 1 + n])
    first_row = [float(v) for v in parts[1 + n : 1 + 2 * n]]
    np.testing.assert_array_equal(sample.spillover.matrix[0], first_row)


@pytest.fixture(scope="module")
def compliance(shared_data: Path) -> Path:
    folder = shared_data / GML_DIR
    if not (folder / "data1.fcs").is_file():
        pytest.skip(f"Gating-ML 2.0 compliance suite not found in {folder}")
    return folder


@pytest.mark.shared_data
@pytest.mark.parametrize("gate_id", ["Rectangle3", "Rectangle4", "Rectangle5"])
def test_compensated_gates_match_gatingml_truth(compliance: Path, gate_id: str) -> None:
    gates = [g for g in compliance_gates(compliance, transformed=False, compensated=True)]
    (gate,) = [g for g in gates if g.gate_id == gate_id]
    sample = read_fcs(compliance / "data1.fcs")
    truth = gml_truth(compliance, gate_id)
    assert 0 < truth.sum() < truth.size
    np.testing.assert_array_equal(evaluate_rectangle(sample, gate), truth)


# --------------------------------------------------------------------------------------------
# errors: one clear line naming the file


def test_no_matrix_anywhere() -> None:
    s = FlowSample.from_array([[1.0, 2.0]], ["FL1", "FL2"], name="tube7")
    with pytest.raises(CompensationError, match=r"^tube7: no spillover matrix"):
        compensate(s)


def test_matrix_naming_a_channel_the_file_lacks() -> None:
    s = FlowSample.from_array([[1.0, 2.0]], ["FL1", "FL2"], name="tube7")
    spill = Spillover(("FL1", "FL9"), np.eye(2))
    with pytest.raises(CompensationError, match=r"^tube7: .*'FL9', not in the file"):
        compensate(s, spill)


PNN = ["FSC-A", "FL1-A", "FL2-A", "FL3-A"]


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("2,FL1-A,FL2-A,1,0,0,0", "singular"),  # a zero row
        ("2,FL1-A,FL2-A,1,2,0.5,1", "singular"),  # rows proportional: det = 1 − 1 = 0
        ("2,FL1-A,FL2-A,1,0.1,0.2", "declares 2 channels but holds 5"),  # one value short
        ("2,FL1-A,FL2-A,1,0.1,0.2,1,0", "declares 2 channels but holds 7"),  # one too many
        ("3,FL1-A,FL2-A,1,0,0,1", "declares 3 channels"),
        ("9,FL1-A,FL2-A,1,0,0,1", "declares 9 channels"),  # more than the file has
        ("2,FL1-A,FL7-A,1,0,0,1", "'FL7-A', not in the file"),
        ("2,FL1-A,9,1,0,0,1", "'9', not in the file"),  # channel number out of range
        ("2,FL1-A,FL1-A,1,0,0,1", "names one channel twice"),
        ("2,FL1-A,FL2-A,1,x,0,1", "non-numeric"),
        ("2,FL1-A,FL2-A,1,nan,0,1", "non-finite"),
        ("2,FL1-A,FL2-A,1,inf,0,1", "non-finite"),
        ("two,FL1-A,FL2-A,1,0,0,1", "does not start with a count"),
        ("inf,FL1-A", "does not start with a count"),
        ("nan,FL1-A", "does not start with a count"),
        ("-1", "declares -1 channels"),
        ("", "does not start with a count"),
        ("1e300,FL1-A", "declares"),
    ],
)
def test_bad_spillover_keywords(text: str, cause: str) -> None:
    with pytest.raises(CompensationError) as info:
        parse_spillover(text, PNN, source="/data/tube.fcs")
    msg = str(info.value)
    assert isinstance(info.value, InputError)
    assert msg.startswith("/data/tube.fcs: ")
    assert cause in msg
    assert "\n" not in msg


def test_spillover_by_channel_number_and_spaces() -> None:
    sp = parse_spillover(" 2, 2 ,FL2-A, 1, 0.25, 0.0, 1 ", PNN)
    assert sp.channels == ("FL1-A", "FL2-A")  # "2" is the 1-based channel number of FL1-A
    np.testing.assert_array_equal(sp.matrix, [[1.0, 0.25], [0.0, 1.0]])


def test_spillover_record() -> None:
    a = Spillover(("A", "B"), np.array([[1.0, 0.1], [0.0, 1.0]]))
    b = Spillover(("A", "B"), [[1.0, 0.1], [0.0, 1.0]])  # type: ignore[arg-type]
    assert a == b
    assert a != Spillover(("B", "A"), np.eye(2))
    assert not a.matrix.flags.writeable
    with pytest.raises(CompensationError, match="expected 2×2"):
        Spillover(("A", "B"), np.eye(3))
    with pytest.raises(CompensationError, match="singular"):
        Spillover(("A", "B"), np.array([[1.0, 1.0], [1.0, 1.0 + 1e-15]]))


# --------------------------------------------------------------------------------------------
# compensating while reading: the same numbers as compensating afterwards


def _tube_file(tmp_path: Path, n_events: int = 300_000) -> Path:
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs

    return write_fcs(simulate_tube(SimulationSpec(seed=9, n_events=n_events)), tmp_path / "t.fcs")


def test_compensating_while_reading_equals_compensating_after(tmp_path: Path) -> None:
    from nkpanel.flow.compensation import CompensatedColumns

    path = _tube_file(tmp_path)
    plain = read_fcs(path)
    fused = read_fcs(path, compensate=True)
    assert plain.detector_columns is None
    assert fused.detector_columns is not None and fused.compensated_with == plain.spillover
    assert not fused.detector_columns.flags.writeable
    assert np.array_equal(fused.events, plain.events)
    full = compensate(plain)
    assert np.array_equal(compensate(fused), full)  # bit for bit
    columns = CompensatedColumns(fused, fused.spillover)
    assert np.array_equal(columns.matrix(), full)
    for j in range(full.shape[1]):
        assert np.array_equal(columns.column(j), full[:, j])
    # a detector column is the one read, not computed again
    first = plain.index_of(plain.spillover.channels[0])  # type: ignore[union-attr]
    fresh = CompensatedColumns(fused, fused.spillover)
    assert np.shares_memory(fresh.column(first), fused.detector_columns)


def test_compensating_while_reading_with_a_supplied_matrix(tmp_path: Path) -> None:
    path = _tube_file(tmp_path, 20_000)
    plain = read_fcs(path)
    assert plain.spillover is not None
    other = Spillover(plain.spillover.channels, np.eye(len(plain.spillover.channels)) * 1.0)
    fused = read_fcs(path, compensate=other)
    assert fused.compensated_with == other
    assert np.array_equal(compensate(fused, other), plain.events)  # the identity changes nothing
    # a different matrix asked of compensate() is computed, not taken from what was read
    assert np.array_equal(compensate(fused), compensate(plain))


def test_compensating_while_reading_integer_data(tmp_path: Path) -> None:
    """Data flowio decodes (16-bit integers) is compensated after reading, to the same end."""
    from tests.flow.fcs_bytes import build_fcs

    rng = np.random.default_rng(3)
    events = rng.integers(0, 1000, size=(500, 2)).astype(float)
    spill = "2,FL1,FL2,1,0.2,0.1,1"
    path = tmp_path / "int.fcs"
    path.write_bytes(
        build_fcs(events, ["FL1", "FL2"], datatype="I", bits=16, keywords={"$SPILLOVER": spill})
    )
    fused = read_fcs(path, compensate=True)
    assert fused.detector_columns is not None
    np.testing.assert_array_equal(compensate(fused), compensate(read_fcs(path)))


def test_a_supplied_matrix_that_does_not_fit_names_the_file(tmp_path: Path) -> None:
    path = _tube_file(tmp_path, 2_000)
    wrong = Spillover(("FL9-A", "FL8-A"), np.eye(2))
    with pytest.raises(CompensationError, match=r"t\.fcs.*FL9-A"):
        read_fcs(path, compensate=wrong)
