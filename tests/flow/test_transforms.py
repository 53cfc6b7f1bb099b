"""Transforms against outside truth.

* Gating-ML 2.0 compliance suite (data1.fcs, one gate per file, per-event expected membership):
  every RectangleGate whose dimensions use logicle or fasinh must give exactly the truth.
* Logicle against an independent transcription of the closed-form inverse of Moore & Parks 2012
  (written here, solved with scipy), and against FlowKit's LogicleTransform as a second reference.
* asinh against hand values.

The small Gating-ML reader below is shared by test_sample.py and test_compensation.py.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.optimize import brentq

from nkpanel.errors import ConfigError
from nkpanel.flow.compensation import compensate
from nkpanel.flow.sample import FlowSample, Spillover, read_fcs
from nkpanel.flow.transforms import Asinh, Linear, Logicle

# --------------------------------------------------------------------------------------------
# a minimal reader for the compliance suite's single-gate files

GML_NS = {
    "gating": "http://www.isac-net.org/std/Gating-ML/v2.0/gating",
    "transforms": "http://www.isac-net.org/std/Gating-ML/v2.0/transformations",
    "data-type": "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes",
}
GML_DIR = "gatingml-2.0-compliance"
SUPPORTED_TRANSFORMS = ("logicle", "fasinh")


def _attr(el: ET.Element, ns: str, name: str) -> str | None:
    return el.get(f"{{{GML_NS[ns]}}}{name}")


@dataclass(frozen=True)
class GmlDim:
    name: str
    compensation: str
    transform: tuple[str, dict[str, float]] | None
    lo: float | None
    hi: float | None


@dataclass(frozen=True)
class GmlRectangle:
    gate_id: str
    dims: tuple[GmlDim, ...]
    fluorochromes: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    spectrum: NDArray[np.float64] | None = None


def read_rectangle(path: Path) -> GmlRectangle | None:
    """The file's one parentless RectangleGate, or None when it holds anything else."""
    root = ET.parse(path).getroot()
    gates = [el for el in root if el.tag.startswith(f"{{{GML_NS['gating']}}}")]
    if len(gates) != 1 or gates[0].tag != f"{{{GML_NS['gating']}}}RectangleGate":
        return None
    gate = gates[0]
    if _attr(gate, "gating", "parent_id"):
        return None
    transforms: dict[str, tuple[str, dict[str, float]]] = {}
    for tr in root.findall("transforms:transformation", GML_NS):
        (kind,) = list(tr)
        params = {k.split("}")[1]: float(v) for k, v in kind.attrib.items()}
        transforms[_attr(tr, "transforms", "id") or ""] = (kind.tag.split("}")[1], params)
    fluor: tuple[str, ...] = ()
    det: tuple[str, ...] = ()
    spectrum = None
    sm = root.find("transforms:spectrumMatrix", GML_NS)
    if sm is not None:

        def names(tag: str) -> tuple[str, ...]:
            block = sm.find(f"transforms:{tag}", GML_NS)
            assert block is not None
            return tuple(
                _attr(d, "data-type", "name") or ""
                for d in block.findall("data-type:fcs-dimension", GML_NS)
            )

        fluor, det = names("fluorochromes"), names("detectors")
        spectrum = np.array(
            [
                [float(c.get(f"{{{GML_NS['transforms']}}}value", "nan")) for c in row]
                for row in sm.findall("transforms:spectrum", GML_NS)
            ]
        )
    dims = []
    for d in gate.findall("gating:dimension", GML_NS):
        fcs = d.find("data-type:fcs-dimension", GML_NS)
        if fcs is None:
            return None  # ratio or other derived dimension
        tref = _attr(d, "gating", "transformation-ref")
        lo, hi = _attr(d, "gating", "min"), _attr(d, "gating", "max")
        dims.append(
            GmlDim(
                _attr(fcs, "data-type", "name") or "",
                _attr(d, "gating", "compensation-ref") or "uncompensated",
                transforms[tref] if tref else None,
                float(lo) if lo is not None else None,
                float(hi) if hi is not None else None,
            )
        )
    return GmlRectangle(_attr(gate, "gating", "id") or "", tuple(dims), fluor, det, spectrum)


def gml_truth(folder: Path, gate_id: str) -> NDArray[np.bool_]:
    text = (folder / "truth" / f"Results_{gate_id}.txt").read_text()
    return np.array([line.strip() == "1" for line in text.split()], dtype=bool)


def fasinh(x: NDArray[np.float64], t: float, m: float, a: float) -> NDArray[np.float64]:
    """Gating-ML 2.0 §5.3.3 fasinh written through nkpanel's Asinh:
    fasinh(x) = (asinh(x · sinh(M ln10) / T) + A ln10) / ((M + A) ln10)."""
    ln10 = math.log(10.0)
    return (Asinh(cofactor=t / math.sinh(m * ln10))(x) + a * ln10) / ((m + a) * ln10)


def evaluate_rectangle(sample: FlowSample, gate: GmlRectangle) -> NDArray[np.bool_]:
    """Membership with nkpanel's reader, compensation and transforms (lower bound inside,
    upper bound outside, as Gating-ML 2.0 says)."""
    comp = None
    if gate.spectrum is not None:
        comp = compensate(sample, Spillover(gate.detectors, gate.spectrum))
    inside = np.ones(sample.n_events, dtype=bool)
    for dim in gate.dims:
        if dim.compensation in ("uncompensated", "FCS"):  # data1.fcs holds no spillover
            values = sample.column(dim.name)
        else:
            assert comp is not None
            det = gate.detectors[gate.fluorochromes.index(dim.name)]
            values = comp[:, sample.index_of(det)]
        if dim.transform is not None:
            kind, p = dim.transform
            if kind == "logicle":
                values = Logicle(t=p["T"], w=p["W"], m=p["M"], a=p["A"])(values)
            elif kind == "fasinh":
                values = fasinh(values, p["T"], p["M"], p["A"])
            else:
                raise AssertionError(kind)
        if dim.lo is not None:
            inside &= values >= dim.lo
        if dim.hi is not None:
            inside &= values < dim.hi
    return inside


def compliance_gates(
    folder: Path, *, transformed: bool | None = None, compensated: bool | None = None
) -> list[GmlRectangle]:
    """Single rectangle gates with a truth file, filtered by whether they transform/compensate."""
    out = []
    for path in sorted((folder / "gml").glob("gml_*.xml")):
        gate = read_rectangle(path)
        if gate is None or not (folder / "truth" / f"Results_{gate.gate_id}.txt").exists():
            continue
        kinds = {d.transform[0] for d in gate.dims if d.transform}
        if kinds - set(SUPPORTED_TRANSFORMS):
            continue
        comp = any(d.compensation not in ("uncompensated", "FCS") for d in gate.dims)
        if transformed is not None and bool(kinds) != transformed:
            continue
        if compensated is not None and comp != compensated:
            continue
        out.append(gate)
    return out


# --------------------------------------------------------------------------------------------
# Gating-ML 2.0 compliance: logicle and fasinh gates


@pytest.fixture(scope="module")
def compliance(shared_data: Path) -> Path:
    folder = shared_data / GML_DIR
    if not (folder / "data1.fcs").is_file():
        pytest.skip(f"Gating-ML 2.0 compliance suite not found in {folder}")
    return folder


@pytest.fixture(scope="module")
def data1(compliance: Path) -> FlowSample:
    return read_fcs(compliance / "data1.fcs")


@pytest.mark.shared_data
def test_compliance_suite_has_the_transform_gates(compliance: Path) -> None:
    ids = {g.gate_id for g in compliance_gates(compliance, transformed=True)}
    # logicle: ScaleRange4, 5 and compensated 4c, 5c, 8c; fasinh: ScaleRange1, 1c, 6c
    expected = {"ScaleRange4", "ScaleRange5", "ScaleRange4c", "ScaleRange5c", "ScaleRange8c"}
    expected |= {"ScaleRange1", "ScaleRange1c", "ScaleRange6c"}
    assert expected <= ids


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "gate_id",
    [
        "ScaleRange1",
        "ScaleRange1c",
        "ScaleRange4",
        "ScaleRange4c",
        "ScaleRange5",
        "ScaleRange5c",
        "ScaleRange6c",
        "ScaleRange8c",
    ],
)
def test_transform_gates_match_gatingml_truth(
    compliance: Path, data1: FlowSample, gate_id: str
) -> None:
    (gate,) = [g for g in compliance_gates(compliance, transformed=True) if g.gate_id == gate_id]
    truth = gml_truth(compliance, gate_id)
    got = evaluate_rectangle(data1, gate)
    assert truth.shape == (data1.n_events,)
    assert 0 < truth.sum() < truth.size  # a gate that says something
    np.testing.assert_array_equal(got, truth)


# --------------------------------------------------------------------------------------------
# logicle against the closed form of Moore & Parks 2012


def moore_parks_inverse(
    y: NDArray[np.float64], t: float, w: float, m: float, a: float
) -> NDArray[np.float64]:
    """B(y): the scale value whose logicle is y, transcribed from Moore & Parks 2012:
    w = W/(M+A), x2 = A/(M+A), x1 = x2 + w, x0 = x2 + 2w, b = (M+A) ln10, d solves
    2(ln d − ln b) + w(b + d) = 0, c/a = e^(x0(b+d)), f/a = −(e^(b·x1) − (c/a)·e^(−d·x1)),
    a = T / (e^b + f/a − (c/a)·e^(−d)); B(y) = a·e^(by) − c·e^(−dy) + f for y ≥ x1 (so that
    B(x1) = 0 and B(1) = T), and B(y) = −B(2·x1 − y) below x1."""
    ln10 = math.log(10.0)
    w_ = w / (m + a)
    x2 = a / (m + a)
    x1 = x2 + w_
    x0 = x2 + 2 * w_
    b = (m + a) * ln10

    def solve_for(d: float) -> float:
        return 2 * (math.log(d) - math.log(b)) + w_ * (b + d)

    d = b if w_ == 0 else brentq(solve_for, 1e-12, b)
    c_a = math.exp(x0 * (b + d))
    f_a = -(math.exp(b * x1) - c_a * math.exp(-d * x1))
    a_ = t / (math.exp(b) + f_a - c_a * math.exp(-d))
    c_ = c_a * a_
    f_ = f_a * a_

    def biex(v: NDArray[np.float64]) -> NDArray[np.float64]:
        return a_ * np.exp(b * v) - c_ * np.exp(-d * v) + f_

    y = np.asarray(y, dtype=np.float64)
    return np.where(y >= x1, biex(y), -biex(2 * x1 - y))


LOGICLE_PARAMS = [
    (262144.0, 0.5, 4.5, 0.0),
    (10000.0, 0.5, 4.5, 0.0),
    (10000.0, 1.0, 4.0, 0.5),
    (262144.0, 0.0, 4.5, 0.0),
    (1000.0, 1.5, 4.0, -0.5),
]


@pytest.mark.parametrize(("t", "w", "m", "a"), LOGICLE_PARAMS)
def test_logicle_matches_moore_parks_closed_form(t: float, w: float, m: float, a: float) -> None:
    y = np.linspace(0.02, 1.1, 60)
    x = moore_parks_inverse(y, t, w, m, a)
    got = Logicle(t=t, w=w, m=m, a=a)(x)
    np.testing.assert_allclose(got, y, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("t", "w", "m", "a"), LOGICLE_PARAMS)
def test_logicle_fixed_points(t: float, w: float, m: float, a: float) -> None:
    """Gating-ML 2.0: logicle(T) = 1 and logicle(0) = (W + A) / (M + A)."""
    lg = Logicle(t=t, w=w, m=m, a=a)
    got = lg(np.array([t, 0.0]))
    np.testing.assert_allclose(got, [1.0, (w + a) / (m + a)], atol=1e-12)


@pytest.mark.parametrize(("t", "w", "m", "a"), LOGICLE_PARAMS)
def test_logicle_agrees_with_flowkit(t: float, w: float, m: float, a: float) -> None:
    flowkit = pytest.importorskip("flowkit")
    x = np.concatenate([-np.logspace(0, 3, 20), [0.0], np.logspace(-1, math.log10(t) + 1, 40)])
    ref = flowkit.transforms.LogicleTransform(t, w, m, a).apply(x.reshape(-1, 1)).ravel()
    np.testing.assert_allclose(Logicle(t=t, w=w, m=m, a=a)(x), ref, rtol=1e-12, atol=1e-12)


def test_logicle_inverse_round_trip_and_monotone() -> None:
    lg = Logicle()
    x = np.concatenate([-np.logspace(3, 0, 30), [0.0], np.logspace(0, 5.4, 60)])
    y = lg(x)
    assert np.all(np.diff(y) > 0)
    np.testing.assert_allclose(lg.inverse(y), x, rtol=1e-9, atol=1e-9)


def test_logicle_keeps_shape_and_non_finite_values() -> None:
    lg = Logicle(t=10000.0)
    x = np.array([[np.nan, np.inf], [-np.inf, 10000.0]])
    got = lg(x)
    assert got.shape == (2, 2)
    assert np.isnan(got[0, 0])
    assert got[0, 1] == np.inf and got[1, 0] == -np.inf
    assert got[1, 1] == pytest.approx(1.0, abs=1e-12)
    assert lg(np.empty((0, 3))).shape == (0, 3)
    assert np.shape(lg(10000.0)) == ()
    before = x.copy()
    lg(x)
    np.testing.assert_array_equal(x, before)  # input untouched


@pytest.mark.parametrize(
    ("t", "w", "m", "a"),
    [
        (0.0, 0.5, 4.5, 0.0),  # T must be positive
        (-1.0, 0.5, 4.5, 0.0),
        (262144.0, 0.5, 0.0, 0.0),  # M must be positive
        (262144.0, -0.1, 4.5, 0.0),  # W ≥ 0
        (262144.0, 3.0, 4.5, 0.0),  # W ≤ M/2
        (262144.0, 0.5, 4.5, -1.0),  # A ≥ −W
        (262144.0, 0.5, 4.5, 4.0),  # A ≤ M − 2W
        (float("nan"), 0.5, 4.5, 0.0),
        (float("inf"), 0.5, 4.5, 0.0),
    ],
)
def test_logicle_refuses_parameters_outside_gatingml(
    t: float, w: float, m: float, a: float
) -> None:
    with pytest.raises(ConfigError, match="logicle"):
        Logicle(t=t, w=w, m=m, a=a)


# --------------------------------------------------------------------------------------------
# asinh and linear: hand values


def test_asinh_hand_values() -> None:
    tr = Asinh(5.0)
    # asinh(1) = ln(1 + √2); asinh(−1) = −ln(1 + √2); asinh(0) = 0
    ln1sqrt2 = math.log(1 + math.sqrt(2))
    np.testing.assert_allclose(
        tr(np.array([5.0, -5.0, 0.0])), [ln1sqrt2, -ln1sqrt2, 0.0], rtol=1e-15, atol=0
    )
    # x = c·sinh(2) maps to exactly 2; sinh(2) = (e² − e⁻²)/2
    c = 150.0
    x = c * (math.e**2 - math.e**-2) / 2
    assert Asinh(c)(np.array([x]))[0] == pytest.approx(2.0, rel=1e-14)
    # large x: asinh(x/c) ≈ ln(2x/c)
    assert Asinh(5.0)(np.array([5e6]))[0] == pytest.approx(math.log(2e6), rel=1e-12)
    np.testing.assert_allclose(tr.inverse(tr(np.array([-3.0, 0.5, 1e4]))), [-3.0, 0.5, 1e4])


@pytest.mark.parametrize("cofactor", [0.0, -5.0, float("nan"), float("inf")])
def test_asinh_refuses_bad_cofactor(cofactor: float) -> None:
    with pytest.raises(ConfigError, match="cofactor"):
        Asinh(cofactor)


def test_linear_hand_values() -> None:
    tr = Linear(1024.0)
    np.testing.assert_array_equal(tr(np.array([0.0, 512.0, 1024.0])), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(tr.inverse(np.array([0.25])), [256.0])
    with pytest.raises(ConfigError):
        Linear(0.0)


def test_fasinh_helper_is_the_gatingml_formula() -> None:
    """The fasinh used above, checked at T (→ 1) and 0 (→ A/(M+A)) as Gating-ML 2.0 states."""
    got = fasinh(np.array([10000.0, 0.0]), 10000.0, 4.0, 1.0)
    np.testing.assert_allclose(got, [1.0, 1.0 / 5.0], rtol=1e-12)
