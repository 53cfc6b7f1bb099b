"""The FCS reader on real files from many instruments: fcsparser 0.2.8's test data
(:mod:`tests.instrument_files`).

Truth comes from outside: the values fcsparser's authors expect in the first rows of each file,
read from their own test module, and, for every file flowio reads, flowio's values for every
event. Both give stored channel values; :func:`scale_values` turns them into scale values by the
FCS 3.1 rules, written out here independently of the reader.
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from nkpanel.errors import InputError
from nkpanel.flow.sample import FlowSample, read_fcs

#: fcsparser's names for the files whose first rows its test module checks
CHECKED = (
    "mq fcs 2.0",
    "mq fcs 3.0",
    "mq fcs 3.1",
    "LSR II fcs 3.0",
    "Fortessa fcs 3.0",
    "large fake fcs",
    "fake bitmask error",
    "Cytek xP5",
)
#: fcsparser's two broken files and the cause nkpanel must name
BROKEN = {
    "corrupted/corrupted.fcs": "not an FCS file",
    # a SpectroFlo file cut inside its TEXT (the DATA it announces is not there either)
    "cytek-nl-2000/sample_header.fcs": "does not end with its delimiter",
}


@cache
def _fcsparser_expectations(
    module: Path,
) -> tuple[dict[str, tuple[str, ...]], dict[str, NDArray[np.float64]], dict[int, list[float]]]:
    """From fcsparser's test module: file name → path parts, file name → its expected first
    rows, and data set (from 0) → the expected first row of the Guava Muse file's data sets."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    paths: dict[str, tuple[str, ...]] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "FILE_IDENTIFIER_TO_PATH"
            and isinstance(node.value, ast.Dict)
        ):
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                assert isinstance(key, ast.Constant) and isinstance(value, ast.Call)
                paths[key.value] = tuple(ast.literal_eval(a) for a in value.args[1:])

    def array_literal(node: ast.AST) -> list[list[float]] | list[float] | None:
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "array":
            return ast.literal_eval(node.args[0])  # type: ignore[no-any-return]
        return None

    rows: dict[str, NDArray[np.float64]] = {}
    data_sets: dict[int, list[float]] = {}
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        arrays: dict[str, list[list[float]]] = {}
        data_set = None
        for stmt in fn.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
                target = stmt.targets[0]
                literal = array_literal(stmt.value)
                if literal is not None and isinstance(target, ast.Name):
                    arrays[target.id] = literal  # type: ignore[assignment]
                for kw in stmt.value.keywords:
                    if kw.arg == "data_set":
                        data_set = ast.literal_eval(kw.value)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                call = stmt.value
                name = getattr(call.func, "id", "")
                if name == "_assert_data_segment":
                    file_name = ast.literal_eval(call.args[0])
                    var = call.args[1]
                    assert isinstance(var, ast.Name)
                    rows[file_name] = np.asarray(arrays[var.id], dtype=np.float64)
                elif name == "assert_array_almost_equal" and data_set is not None:
                    literal = array_literal(call.args[1])
                    if literal is not None:
                        data_sets[data_set] = literal  # type: ignore[assignment]
    return paths, rows, data_sets


@pytest.fixture(scope="module")
def expectations(
    instrument_fcs: Path,
) -> tuple[dict[str, tuple[str, ...]], dict[str, NDArray[np.float64]], dict[int, list[float]]]:
    return _fcsparser_expectations(instrument_fcs.parents[1] / "test_fcs_reader.py")


def scale_values(stored: NDArray[np.float64], meta: Mapping[str, str]) -> NDArray[np.float64]:
    """Stored channel values → scale values, by FCS 3.1: integer data with $PnE f1,f2 (f1 > 0)
    is ``f2 · 10^(f1 · c / $PnR)`` (f2 = 0 read as 1); floating-point data is linear whatever
    $PnE says; every channel but Time is then divided by $PnG; Time is multiplied by
    $TIMESTEP."""
    out = np.array(stored, dtype=np.float64)
    integer = meta["datatype"].strip().upper() in ("I", "A")
    step = float(meta.get("timestep", "nan"))
    for j in range(out.shape[1]):
        n = j + 1
        f1, f2 = (float(v) for v in meta.get(f"p{n}e", "0,0").split(","))
        if integer and f1 > 0:
            out[:, j] = (f2 or 1.0) * 10.0 ** (f1 * out[:, j] / float(meta[f"p{n}r"]))
        if meta[f"p{n}n"].strip().lower() == "time":
            if math.isfinite(step) and step > 0 and not (integer and f1 > 0):
                out[:, j] *= step
        else:
            gain = float(meta.get(f"p{n}g", "1")) or 1.0
            out[:, j] /= gain
    return out


def _sample(folder: Path, parts: tuple[str, ...], dataset: int | None = None) -> FlowSample:
    return read_fcs(folder.joinpath(*parts), dataset=dataset)


@pytest.mark.parametrize("name", CHECKED)
def test_first_rows_match_fcsparser_authors(
    instrument_fcs: Path,
    expectations: tuple[dict[str, tuple[str, ...]], dict[str, NDArray[np.float64]], object],
    name: str,
) -> None:
    paths, rows, _ = expectations
    sample = _sample(instrument_fcs, paths[name])
    expected = scale_values(rows[name], sample.metadata)
    got = sample.events[: expected.shape[0]]
    # fcsparser asserts 4 decimals of the stored values
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)


def test_every_data_set_of_the_guava_file_matches_fcsparser_authors(
    instrument_fcs: Path,
    expectations: tuple[object, object, dict[int, list[float]]],
) -> None:
    _, _, data_sets = expectations
    assert sorted(data_sets) == [0, 1, 2, 3]
    for k, first in data_sets.items():
        sample = _sample(instrument_fcs, ("GuavaMuse", "Guava Muse.fcs"), dataset=k + 1)
        expected = scale_values(np.asarray([first]), sample.metadata)
        np.testing.assert_allclose(sample.events[:1], expected, rtol=1e-6, atol=1e-4)
        assert f"data set {k + 1} read" in " ".join(sample.notes)


def _flowio_stored(path: Path) -> NDArray[np.float64] | None:
    """flowio's stored values for every event, or None where flowio cannot read the file."""
    import flowio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fd = flowio.FlowData(str(path), ignore_offset_error=True)
            return np.asarray(fd.as_array(preprocess=False), dtype=np.float64)
        except Exception:
            return None


def _instrument_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".fcs", ".lmd"))


def test_every_instrument_file_is_read_or_refused_in_one_line(instrument_fcs: Path) -> None:
    files = _instrument_files(instrument_fcs)
    assert len(files) >= 17
    flowio_read = 0
    for path in files:
        key = path.relative_to(instrument_fcs).as_posix()
        if key in BROKEN:
            with pytest.raises(InputError) as info:
                read_fcs(path)
            message = str(info.value)
            assert message.startswith(str(path)) and "\n" not in message
            assert BROKEN[key] in message
            continue
        sample = read_fcs(path)
        assert sample.n_events == int(sample.metadata["tot"]) > 0, key
        assert np.isfinite(sample.events).all(), key
        theirs = _flowio_stored(path)
        if theirs is None:
            continue
        flowio_read += 1
        # every event, against flowio's stored values scaled by the rules above
        np.testing.assert_allclose(
            sample.events, scale_values(theirs, sample.metadata), rtol=1e-12, err_msg=key
        )
    assert flowio_read >= 10  # the files flowio reads too: the rest are checked above
