"""Fuzzing the FCS reader: mutated valid files either read into a valid FlowSample or raise an
nkpanel InputError that starts with the path — never another exception, a warning, a hang or a
large allocation.

Seeds are small synthetic files from :mod:`tests.flow.fcs_bytes` covering FCS 2.0/3.0/3.1,
$DATATYPE I (8, 16, 24, 32 and mixed bits), F and D, both byte orders, $PnE/$PnG/$TIMESTEP and
$SPILLOVER. Mutations: bit flips, truncations, insertions, deletions, HEADER offset edits,
in-place TEXT value edits (offsets left as they were) and rebuilt files with one keyword
replaced (offsets kept consistent, so the keyword checks themselves are reached).

The normal suite tries a fixed, derandomised 300 inputs; set NKPANEL_FUZZ_EXAMPLES for a long
run, e.g. ``NKPANEL_FUZZ_EXAMPLES=20000 pytest tests/flow/test_fuzz_fcs.py``. Deadlines are off
(timing on a shared 2-core machine is noise; a hang would show as a stuck test) and the
too_slow health check is suppressed for the same reason.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nkpanel.errors import InputError
from nkpanel.flow.sample import FlowSample, read_fcs
from tests.flow.fcs_bytes import build_fcs, edit_text_value, set_header_field

EXAMPLES = int(os.environ.get("NKPANEL_FUZZ_EXAMPLES", "300"))
#: most memory one read of a seed-sized (< 2 kB) input may take
PEAK_LIMIT = 16 * 2**20

_rng = np.random.default_rng(20261121)
_RAW = _rng.integers(0, 1024, size=(12, 4)).astype(np.float64)
_PNN = ["FSC-A", "SSC-A", "FL1-A", "Time"]

SEEDS: list[dict[str, Any]] = [
    dict(
        version="3.1",
        datatype="I",
        bits=16,
        pne=["0,0", "0,0", "4,1", "0,0"],
        png=["2", "1", "1", "1"],
        pnr=[1024] * 4,
        keywords={"$TIMESTEP": "0.01"},
    ),
    dict(
        version="2.0",
        datatype="I",
        bits=16,
        byteorder="big",
        pne=["0,0", "0,0", "4,0", "0,0"],
        png=["3.67", "8", "1", "1"],
        pnr=[1024] * 4,
    ),
    dict(
        version="3.0",
        datatype="F",
        byteorder="big",
        keywords={"$SPILLOVER": "2,SSC-A,FL1-A,1,0.1,0.05,1"},
    ),
    dict(version="3.1", datatype="D", delimiter="|", keywords={"SPILL": "1,FL1-A,1"}),
    dict(version="3.1", datatype="I", bits=[8, 16, 32, 16], pnr=[256, 1024, 1024, 1024]),
    dict(version="3.0", datatype="I", bits=8, pnr=[256] * 4, delimiter="\\"),
    dict(version="3.1", datatype="I", bits=32, pnr=[1024] * 4, byteorder="big"),
    # 3-byte integers (Cytek xP5), alone and among other widths
    dict(version="3.0", datatype="I", bits=24, pnr=[1024] * 4, byteorder="big"),
    dict(version="3.1", datatype="I", bits=[8, 24, 16, 32], pnr=[256, 2**24, 1000, 1024]),
    # blank HEADER DATA offsets (FACSDiva)
    dict(version="3.0", datatype="F", header_data=(" " * 8, " " * 8)),
]


def seed_events(spec: dict[str, Any]) -> np.ndarray:
    ev = _RAW.copy()
    bits = spec.get("bits")
    if bits == 8:
        ev = np.minimum(ev, 255)
    elif isinstance(bits, list):
        ev[:, 0] = np.minimum(ev[:, 0], 255)
    return ev


def build_seed(i: int, keywords: dict[str, str] | None = None) -> bytes:
    spec = dict(SEEDS[i])
    kw = dict(spec.pop("keywords", {}))
    kw.update(keywords or {})
    return build_fcs(seed_events(spec), _PNN, keywords=kw, **spec)


SEED_BYTES = [build_seed(i) for i in range(len(SEEDS))]

KEYS = [
    "$PAR",
    "$TOT",
    "$DATATYPE",
    "$BYTEORD",
    "$MODE",
    "$NEXTDATA",
    "$BEGINDATA",
    "$ENDDATA",
    "$BEGINANALYSIS",
    "$ENDANALYSIS",
    "$P1B",
    "$P2B",
    "$P3B",
    "$P1R",
    "$P3R",
    "$P3E",
    "$P1G",
    "$P1N",
    "$P2N",
    "$P5N",
    "$TIMESTEP",
    "$SPILLOVER",
    "SPILL",
    "$COMP",
]
INTERESTING = [
    "",
    " ",
    "0",
    "1",
    "-1",
    "2",
    "3",
    "4",
    "5",
    "8",
    "12",
    "13",
    "16",
    "24",
    "32",
    "64",
    "256",
    "1024",
    "65536",
    "4294967296",
    "99999999",
    "1000000000000",
    "-1000000000000",
    "1e308",
    "nan",
    "inf",
    "-inf",
    "4,1",
    "4,0",
    "0,0",
    "400,1",
    "-4,1",
    "1,2,3,4",
    "4,3,2,1",
    "3,4,1,2",
    "I",
    "F",
    "D",
    "A",
    "L",
    "C",
    "FSC-A",
    "Time",
    "2,FSC-A,SSC-A,1,0,0,1",
    "2,FSC-A,FSC-A,1,0,0,1",
    "2,FSC-A,SSC-A,1,1,1,1",
    "3,FSC-A,SSC-A,1,0",
    "/",
    "//",
    "|",
    "\\",
    "\x00",
    "é",
]
values = st.one_of(
    st.sampled_from(INTERESTING),
    st.integers(-(10**13), 10**13).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)
offsets = st.one_of(
    st.sampled_from([-1, 0, 1, 10, 57, 58, 59, 255, 256, 1000, 99999999]),
    st.integers(-(10**7) + 1, 10**8 - 1),
    st.text(alphabet="0123456789 -+xe", max_size=8),
)

mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.floats(0, 1, exclude_max=True), st.integers(1, 16)),
    st.tuples(st.just("header"), st.integers(0, 5), offsets),
    st.tuples(st.just("text"), st.sampled_from(KEYS), values),
)


def mutate(buf: bytes, m: tuple[Any, ...]) -> bytes:
    kind = m[0]
    n = len(buf)
    if kind == "flip":
        i = int(m[1] * n) if n else 0
        return buf[:i] + bytes([buf[i] ^ m[2]]) + buf[i + 1 :] if n else buf
    if kind == "truncate":
        return buf[: int(m[1] * n)]
    if kind == "insert":
        i = int(m[1] * n)
        return buf[:i] + m[2] + buf[i:]
    if kind == "delete":
        i = int(m[1] * n)
        return buf[:i] + buf[i + m[2] :]
    if kind == "header":
        return set_header_field(buf, m[1], m[2]) if n >= 58 else buf
    if kind == "text":
        try:
            return edit_text_value(buf, m[1], m[2])
        except (KeyError, ValueError):  # key absent, or the HEADER no longer locates TEXT
            return buf
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "mutant.fcs"


def check(path: Path) -> str:
    """Read ``path``; return "ok" or the error's first words, failing on anything else."""
    tracemalloc.start()
    try:
        try:
            sample = read_fcs(path)
        except InputError as exc:
            msg = str(exc)
            assert msg.startswith(f"{path}: "), msg
            assert "\n" not in msg, msg
            return "error: " + exc.cause.split(" ")[0]
        finally:
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{peak / 2**20:.1f} MiB for a {path.stat().st_size}-byte input"
    assert isinstance(sample, FlowSample)
    tot, par = int(sample.metadata["tot"]), int(sample.metadata["par"])
    assert sample.events.shape == (tot, par)
    assert sample.events.dtype == np.float64
    assert np.all(np.isfinite(sample.events))
    assert len(sample.channels) == par
    return "ok"


def test_seeds_are_valid(fuzz_file: Path) -> None:
    for i, data in enumerate(SEED_BYTES):
        fuzz_file.write_bytes(data)
        assert check(fuzz_file) == "ok", SEEDS[i]
        assert read_fcs(fuzz_file).events.shape == (12, 4)


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ_SETTINGS
@given(seed=st.integers(0, len(SEEDS) - 1), mutations=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_bytes(fuzz_file: Path, seed: int, mutations: list[tuple[Any, ...]]) -> None:
    buf = SEED_BYTES[seed]
    for m in mutations:
        buf = mutate(buf, m)
    fuzz_file.write_bytes(buf)
    event(check(fuzz_file))


@FUZZ_SETTINGS
@given(
    seed=st.integers(0, len(SEEDS) - 1),
    edits=st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=3),
)
def test_rebuilt_with_edited_keywords(fuzz_file: Path, seed: int, edits: dict[str, str]) -> None:
    """Keywords replaced while HEADER and $BEGINDATA/$ENDDATA stay consistent with the layout."""
    if any(k in edits for k in ("$BEGINDATA", "$ENDDATA")) and SEEDS[seed]["version"] != "2.0":
        # keep HEADER and TEXT in agreement, so the TEXT value itself is what is tested
        buf = build_seed(seed, edits)
        try:
            b, e = int(edits.get("$BEGINDATA", buf[26:34])), int(edits.get("$ENDDATA", buf[34:42]))
            buf = set_header_field(set_header_field(buf, 2, b), 3, e)
        except ValueError:
            pass
    else:
        buf = build_seed(seed, edits)
    fuzz_file.write_bytes(buf)
    event(check(fuzz_file))
