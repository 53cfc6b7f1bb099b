"""Gating-ML 2.0 export of nkpanel's gates, checked against FlowKit's evaluation of the file.

FlowKit's gate evaluation is itself checked event for event against the Gating-ML 2.0 compliance
suite (tests/flow/test_template.py), so agreement here means the exported document says what
nkpanel's gates mean. The transform identities are checked by hand against the formulas of the
Gating-ML 2.0 specification (section 6).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from nkpanel.errors import ConfigError
from nkpanel.flow.compensation import compensate
from nkpanel.flow.gates import Dimension, GateTree, PolygonGate, RangeGate
from nkpanel.flow.gatingml import asinh_as_fasinh, export_gatingml, gate_ids
from nkpanel.flow.sample import FlowSample, Spillover, read_fcs
from nkpanel.flow.template import NKPANEL_NS, apply_template, load_template
from nkpanel.flow.transforms import Asinh, Linear, Logicle

GATING = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
DATATYPE = "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"
TRANSFORMS = "http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")


# ------------------------------------------------------------------------------ transform mapping


@settings(max_examples=200, deadline=None)
@given(
    cofactor=st.floats(0.5, 5000.0),
    top=st.floats(1e3, 1e7),
    x=st.floats(-1e6, 1e6, allow_nan=False),
)
def test_fasinh_equals_asinh_over_cofactor_up_to_the_scale(
    cofactor: float, top: float, x: float
) -> None:
    # Gating-ML 2.0 section 6.5, with A = 0, written out by hand
    p = asinh_as_fasinh(cofactor, top=top)
    assert p.a == 0.0
    assert math.sinh(p.m * math.log(10)) / p.t == pytest.approx(1 / cofactor, rel=1e-12)
    fasinh = (math.asinh(x * math.sinh(p.m * math.log(10)) / p.t) + p.a * math.log(10)) / (
        (p.m + p.a) * math.log(10)
    )
    assert fasinh * p.scale == pytest.approx(math.asinh(x / cofactor), rel=1e-12, abs=1e-12)


def test_fasinh_maps_top_of_scale_to_one() -> None:
    p = asinh_as_fasinh(150.0, top=262144.0)
    # fasinh(T) = 1 by construction of M = asinh(T / cofactor) / ln 10
    assert math.asinh(p.t / 150.0) / p.scale == pytest.approx(1.0, rel=1e-15)


def test_flowkit_fasinh_and_flin_match_nkpanel_transforms() -> None:
    from flowkit import transforms as fkx

    x = np.array([-5000.0, -10.0, 0.0, 3.0, 150.0, 1e4, 262143.0])
    p = asinh_as_fasinh(5.0)
    got = fkx.AsinhTransform(p.t, p.m, p.a).apply(x.reshape(-1, 1)).ravel() * p.scale
    np.testing.assert_allclose(got, Asinh(5.0)(x), rtol=1e-13, atol=1e-13)
    lin = fkx.LinearTransform(1024.0, 0.0).apply(x.reshape(-1, 1)).ravel()
    np.testing.assert_array_equal(lin, Linear(1024.0)(x))
    logicle = fkx.LogicleTransform(262144.0, 0.7, 4.5, 0.0).apply(x.reshape(-1, 1)).ravel()
    np.testing.assert_array_equal(logicle, Logicle(w=0.7)(x))


@pytest.mark.parametrize(
    ("cofactor", "top"), [(0.0, 262144.0), (-5.0, 262144.0), (math.nan, 1.0), (5.0, 0.0)]
)
def test_bad_asinh_parameters_raise(cofactor: float, top: float) -> None:
    with pytest.raises(ConfigError):
        asinh_as_fasinh(cofactor, top=top)


def test_gate_ids_are_unique_xml_names() -> None:
    names = ["CD56+ NK", "CD56− NK", "CD56- NK", "3rd gate", "NK/bright", "+", "CD56pos_NK"]
    ids = gate_ids(names)
    assert ids["CD56+ NK"] == "CD56pos_NK"
    assert ids["CD56− NK"] == "CD56neg_NK"
    assert ids["CD56- NK"] == "CD56-_NK"
    assert all(NCNAME.match(i) for i in ids.values())
    assert len(set(ids.values())) == len(names)


# --------------------------------------------------------------------------------------- the trees


def nk_tree_for_68983() -> GateTree:
    """Scatter polygon → singlets polygon → CD45+ → CD19− → CD3−/CD3+ → NK1.1 (NK1.1 ≈ CD56).

    Coordinates were placed by looking at the file's distributions, on values no event can equal
    exactly (linear coordinates are not multiples of 1/262144).
    """
    lin = Linear(262144.0)
    fsc_a = Dimension("FSC-A", lin, compensated=False)
    ssc_a = Dimension("SSC-A", lin, compensated=False)
    fsc_h = Dimension("FSC-H", lin)  # "compensated" scatter: no matrix covers it
    fsc_w = Dimension("FSC-W", None, compensated=False)
    cd45 = Dimension("Alexa Fluor 700-A", Asinh(200.0), compensated=False)
    cd19 = Dimension("PE-Cy5-A", Logicle(w=0.7))
    cd3 = Dimension("PE-Cy7-A", Logicle())
    nk11 = Dimension("PE-A", Asinh(150.0))
    return GateTree(
        (
            PolygonGate(
                "Lymphocytes",
                None,
                (fsc_a, ssc_a),
                ((0.2051, 0.0453), (0.5153, 0.0551), (0.5307, 0.2049), (0.3303, 0.2901)),
            ),
            PolygonGate(
                "Singlets",
                "Lymphocytes",
                (fsc_a, fsc_h),
                ((0.1903, 0.2401), (0.5507, 0.2603), (0.5509, 0.3397), (0.1901, 0.2999)),
            ),
            RangeGate("CD45+", "Singlets", (cd45,), (3.3031,), (None,)),
            RangeGate("CD19−", "CD45+", (cd19, fsc_w), (None, None), (0.3103, None)),
            RangeGate("CD3−", "CD19−", (cd3,), (None,), (0.4201,)),
            RangeGate("CD3+", "CD19−", (cd3,), (0.4201,), (None,)),
            RangeGate("NK1.1+ NK", "CD3−", (nk11,), (2.1003,), (None,)),
            PolygonGate(
                "NK1.1 bright",
                "NK1.1+ NK",
                (nk11, cd3),
                ((2.9007, -0.1003), (7.1009, -0.0997), (7.2011, 0.4199), (3.1013, 0.4103)),
            ),
            RangeGate("NK1.1+ T", "CD3+", (nk11, cd3), (2.1003, 0.4201), (7.0007, 0.9001)),
        )
    )


def simulated_like_events(n: int = 6000, seed: int = 20240601) -> tuple[FlowSample, Spillover]:
    """A synthetic (simulated) NK-panel tube: scatter, CD3, CD56, CD16 with spillover.

    Values are rounded to float32, as FlowKit stores an in-memory array as float32 FCS data.
    """
    rng = np.random.default_rng(seed)
    pop = rng.choice(4, size=n, p=[0.15, 0.55, 0.12, 0.18])  # debris, T, NK, B
    fsc = np.where(pop == 0, rng.normal(20000, 8000, n), rng.normal(80000, 9000, n))
    ssc = np.where(pop == 0, rng.normal(15000, 6000, n), rng.normal(25000, 5000, n))
    doublet = rng.random(n) < 0.05
    fsc_h = fsc * np.where(doublet, 0.55, 0.85) + rng.normal(0, 1500, n)
    cd3 = np.where(pop == 1, rng.lognormal(9.0, 0.4, n), rng.normal(100, 150, n))
    cd56 = np.where(pop == 2, rng.lognormal(7.5, 0.7, n), rng.normal(40, 60, n))
    cd16 = np.where(pop == 2, rng.lognormal(8.0, 0.8, n), rng.normal(60, 80, n))
    true = np.column_stack([cd3, cd56, cd16])
    spill = np.array([[1.0, 0.12, 0.02], [0.05, 1.0, 0.21], [0.0, 0.08, 1.0]])
    observed = true @ spill
    time = np.sort(rng.uniform(0, 120, n))
    events = np.column_stack([fsc, fsc_h, ssc, observed, time]).astype(np.float32)
    pnn = ["FSC-A", "FSC-H", "SSC-A", "FL1-A", "FL2-A", "FL3-A", "Time"]
    spillover = Spillover(("FL1-A", "FL2-A", "FL3-A"), spill)
    sample = FlowSample.from_array(
        events.astype(np.float64), pnn, name="simulated (synthetic)", spillover=spillover
    )
    return sample, spillover


def nk_tree_for_simulated() -> GateTree:
    lin = Linear(262144.0)
    fsc_a = Dimension("FSC-A", lin, compensated=False)
    ssc_a = Dimension("SSC-A", lin, compensated=False)
    fsc_h = Dimension("FSC-H", lin, compensated=False)
    cd3 = Dimension("FL1-A", Logicle())
    cd56 = Dimension("FL2-A", Asinh(150.0))
    cd16 = Dimension("FL3-A", Logicle(w=0.8))
    return GateTree(
        (
            PolygonGate(
                "Lymphocytes",
                None,
                (fsc_a, ssc_a),
                ((0.2003, 0.0301), (0.4507, 0.0303), (0.4509, 0.1601), (0.2011, 0.1597)),
            ),
            PolygonGate(
                "Singlets",
                "Lymphocytes",
                (fsc_a, fsc_h),
                ((0.1501, 0.1101), (0.5003, 0.3901), (0.5007, 0.4899), (0.1503, 0.1499)),
            ),
            RangeGate("CD3−", "Singlets", (cd3,), (None,), (0.4003,)),
            RangeGate("CD56+", "CD3−", (cd56,), (1.5007,), (None,)),
            RangeGate("CD56+ CD16+", "CD56+", (cd56, cd16), (1.5007, 0.4501), (9.0001, None)),
            PolygonGate(
                "CD56bright",
                "CD56+",
                (cd56, cd16),
                ((3.1003, -0.2003), (6.0007, -0.1999), (6.0011, 0.4503), (3.1009, 0.4497)),
            ),
        )
    )


# ------------------------------------------------------------------------------------- evaluation


def nkpanel_membership(tree: GateTree, sample: FlowSample) -> dict[str, NDArray[np.bool_]]:
    column = {c.pnn: c.index for c in sample.channels}
    return tree.evaluate(compensate(sample), sample.events, column)


def flowkit_membership(xml: Path, fk_sample: Any, tree: GateTree) -> dict[str, NDArray[np.bool_]]:
    """FlowKit's own evaluation of the exported document (gate ids → nkpanel names)."""
    import flowkit

    strategy = flowkit.parse_gating_xml(str(xml))
    results = strategy.gate_sample(fk_sample)
    ids = gate_ids(tree.names)
    return {name: np.asarray(results.get_gate_membership(ids[name])) for name in tree.names}


def assert_same_membership(
    ours: dict[str, NDArray[np.bool_]],
    theirs: Any,
    tree: GateTree,
) -> None:
    for gate in tree.gates:
        mismatched = np.flatnonzero(ours[gate.name] != np.asarray(theirs[gate.name]))
        assert mismatched.size == 0, f"{gate.name}: events {mismatched[:10]} differ"


def gate_paths(tree: GateTree) -> list[str]:
    paths: dict[str, str] = {}
    for gate in tree.gates:
        paths[gate.name] = (paths[gate.parent] if gate.parent else "") + "/" + gate.name
    return list(paths.values())


def assert_gates_are_informative(ours: dict[str, NDArray[np.bool_]], tree: GateTree) -> None:
    """Every gate keeps some events and drops some of its parent's: no test passes vacuously."""
    n = next(iter(ours.values())).size
    for gate in tree.gates:
        parent = ours[gate.parent].sum() if gate.parent is not None else n
        assert 0 < ours[gate.name].sum() < parent, gate.name


@pytest.fixture(scope="module")
def file_68983(shared_data: Path) -> Path:
    path = shared_data / "flowsom-68983" / "68983.fcs"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.mark.shared_data
@pytest.mark.parametrize("explicit_matrix", [False, True], ids=["FCS-spill", "exported-matrix"])
def test_export_matches_flowkit_on_real_file(
    file_68983: Path, tmp_path: Path, explicit_matrix: bool
) -> None:
    import flowkit

    sample = read_fcs(file_68983)
    assert sample.spillover is not None  # the file carries a SPILL keyword
    tree = nk_tree_for_68983()
    ours = nkpanel_membership(tree, sample)
    assert_gates_are_informative(ours, tree)

    xml = export_gatingml(
        tree, tmp_path / "nk.xml", spillover=sample.spillover if explicit_matrix else None
    )
    fk_sample = flowkit.Sample(str(file_68983))
    assert_same_membership(ours, flowkit_membership(xml, fk_sample, tree), tree)

    # round trip through nkpanel's own template reader
    result = apply_template(load_template(xml), file_68983)
    assert_same_membership(ours, result.membership, tree)
    keys = list(result.membership)
    assert sorted(keys) == sorted(gate_paths(tree))
    for key, parent in result.parents.items():  # parents come before their children
        assert parent is None or keys.index(parent) < keys.index(key)
    for gate in tree.gates:
        assert result.counts[gate.name] == int(ours[gate.name].sum())
        parent = result.parents[gate.name]
        assert (parent is None) == (gate.parent is None)
        if gate.parent is not None:
            assert parent is not None and parent.endswith("/" + gate.parent)


@pytest.mark.shared_data
def test_export_refers_to_fcs_spill_or_matrix(file_68983: Path, tmp_path: Path) -> None:
    sample = read_fcs(file_68983)
    tree = nk_tree_for_68983()
    for spill, comp in ((None, "FCS"), (sample.spillover, "spillover")):
        root = ET.parse(export_gatingml(tree, tmp_path / "x.xml", spillover=spill)).getroot()
        refs = {
            (fcs.get(f"{{{DATATYPE}}}name"), d.get(f"{{{GATING}}}compensation-ref"))
            for d in root.iter(f"{{{GATING}}}dimension")
            for fcs in d.iter(f"{{{DATATYPE}}}fcs-dimension")
        }
        assert ("PE-Cy7-A", comp) in refs  # compensated fluorescence
        assert ("Alexa Fluor 700-A", "uncompensated") in refs  # compensated=False
        assert ("FSC-A", "uncompensated") in refs
        matrices = root.findall(f"{{{TRANSFORMS}}}spectrumMatrix")
        assert len(matrices) == (0 if spill is None else 1)


def test_export_matches_flowkit_on_simulated_array(tmp_path: Path) -> None:
    import flowkit

    sample, spillover = simulated_like_events()
    tree = nk_tree_for_simulated()
    ours = nkpanel_membership(tree, sample)
    assert_gates_are_informative(ours, tree)

    xml = export_gatingml(tree, tmp_path / "sim.xml", spillover=spillover)
    fk_sample = flowkit.Sample(sample.events, sample_id="sim", channel_labels=list(sample.pnn))
    assert_same_membership(ours, flowkit_membership(xml, fk_sample, tree), tree)


def test_round_trip_on_simulated_fcs(tmp_path: Path) -> None:
    import flowio

    sample, spillover = simulated_like_events(n=3000, seed=7)
    tree = nk_tree_for_simulated()
    ours = nkpanel_membership(tree, sample)
    fcs = tmp_path / "simulated-synthetic.fcs"
    with fcs.open("wb") as fh:
        flowio.create_fcs(fh, sample.events.ravel().tolist(), list(sample.pnn))
    xml = export_gatingml(tree, tmp_path / "sim.xml", spillover=spillover)
    template = load_template(xml)
    assert dict(template.gate_names) == {v: k for k, v in gate_ids(tree.names).items()}
    result = apply_template(template, fcs)
    assert result.n_events == sample.n_events
    assert_same_membership(ours, result.membership, tree)


def test_exported_document_names_gates_and_provenance(tmp_path: Path) -> None:
    tree = nk_tree_for_simulated()
    root = ET.parse(export_gatingml(tree, tmp_path / "g.xml")).getroot()
    names = [e.text for e in root.iter(f"{{{NKPANEL_NS}}}gate-name")]
    assert names == list(tree.names)
    prov = root.find(f"{{*}}custom_info/{{{NKPANEL_NS}}}provenance")
    assert prov is not None and "not drawn by a person" in (prov.text or "")
    fasinh = root.find(f"{{{TRANSFORMS}}}transformation/{{{TRANSFORMS}}}fasinh")
    assert fasinh is not None
    p = asinh_as_fasinh(150.0)
    assert float(fasinh.get(f"{{{TRANSFORMS}}}M", "nan")) == p.m
    assert float(fasinh.get(f"{{{TRANSFORMS}}}T", "nan")) == 262144.0
    assert float(fasinh.get(f"{{{TRANSFORMS}}}A", "nan")) == 0.0


def test_asinh_coordinates_are_divided_by_m_ln10(tmp_path: Path) -> None:
    dim = Dimension("FL2-A", Asinh(5.0), compensated=False)
    tree = GateTree((RangeGate("CD56+", None, (dim,), (1.5,), (4.0,)),))
    root = ET.parse(export_gatingml(tree, tmp_path / "a.xml", asinh_top=10000.0)).getroot()
    d = root.find(f"{{{GATING}}}RectangleGate/{{{GATING}}}dimension")
    assert d is not None
    scale = math.asinh(10000.0 / 5.0)  # M·ln 10 with M = asinh(T / cofactor) / ln 10
    assert float(d.get(f"{{{GATING}}}min", "nan")) == pytest.approx(1.5 / scale, rel=1e-15)
    assert float(d.get(f"{{{GATING}}}max", "nan")) == pytest.approx(4.0 / scale, rel=1e-15)


@pytest.mark.parametrize("transform", [None, Asinh(5.0)], ids=["linear", "asinh"])
def test_a_gate_that_bounds_nothing_keeps_every_event_in_flowkit(
    tmp_path: Path, transform: Asinh | None
) -> None:
    """Lymphocytes with no scatter to separate them, or an open Time gate: Gating-ML needs a
    bound, and the one written keeps every event."""
    import flowkit

    dim = Dimension("FL1-A", transform, compensated=False)
    gate = RangeGate("Everything", None, (dim, Dimension("FL2-A")), (None, None), (None, None))
    xml = export_gatingml(GateTree((gate,)), tmp_path / "open.xml")
    events = np.array([[-1e30, 0.0], [-5.0, 1.0], [0.0, 2.0], [1e30, -1e30]])
    fk = flowkit.Sample(events, sample_id="open", channel_labels=["FL1-A", "FL2-A"])
    member = flowkit_membership(xml, fk, GateTree((gate,)))
    assert list(member) == ["Everything"] and member["Everything"].tolist() == [True] * 4


# -------------------------------------------------------------------------------------- bad gates


@pytest.mark.parametrize(
    "gate",
    [
        RangeGate("nan", None, (Dimension("FL1-A"),), (math.nan,), (None,)),
        PolygonGate(
            "inf", None, (Dimension("FL1-A"), Dimension("FL2-A")), ((0, 0), (1, math.inf), (1, 0))
        ),
        PolygonGate("line", None, (Dimension("FL1-A"), Dimension("FL2-A")), ((0, 0), (1, 1))),
    ],
    ids=lambda g: g.name,
)
def test_inexpressible_gates_raise_config_error(
    gate: RangeGate | PolygonGate, tmp_path: Path
) -> None:
    target = tmp_path / "bad.xml"
    with pytest.raises(ConfigError, match=repr(gate.name)):
        export_gatingml(GateTree((gate,)), target)
    assert not target.exists()  # nothing half-written


def test_exported_gates_compensate_each_new_file_with_its_own_matrix(tmp_path: Path) -> None:
    """The automated gates of one tube, re-applied as a template to the next patient's tube
    acquired with another compensation matrix, are compensated with that tube's own $SPILLOVER:
    FlowKit on the export gives exactly nkpanel's gates on the new tube compensated with its own
    matrix, and not what the first tube's matrix would give. A supplied matrix is embedded."""
    import flowkit

    from nkpanel.flow.analyze import FlowSettings, analyze_file
    from nkpanel.flow.output import write_sample_outputs
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs

    first = write_fcs(
        simulate_tube(SimulationSpec(n_events=20_000, seed=3)), tmp_path / "a-synthetic.fcs"
    )
    spec_b = SimulationSpec(n_events=20_000, seed=4, spillover_scale=1.8)
    second = write_fcs(simulate_tube(spec_b), tmp_path / "b-synthetic.fcs")
    analysis = analyze_file(first, FlowSettings())
    assert analysis.tree is not None
    write_sample_outputs(analysis, tmp_path / "out", plots=False)
    xml = next((tmp_path / "out").rglob("gates.gatingml.xml"))
    root = ET.parse(xml).getroot()
    refs = {d.get(f"{{{GATING}}}compensation-ref") for d in root.iter(f"{{{GATING}}}dimension")}
    assert "FCS" in refs and "spillover" not in refs
    assert root.findall(f"{{{TRANSFORMS}}}spectrumMatrix") == []

    tree = analysis.tree
    new = read_fcs(second)
    own = nkpanel_membership(tree, new)
    theirs = flowkit_membership(xml, flowkit.Sample(str(second)), tree)
    assert_same_membership(own, theirs, tree)
    first_matrix = read_fcs(first).spillover
    assert first_matrix is not None and new.spillover is not None
    column = {c.pnn: c.index for c in new.channels}
    frozen = tree.evaluate(compensate(new, first_matrix), new.events, column)
    assert any(not np.array_equal(frozen[g], own[g]) for g in tree.names)

    supplied = Spillover(first_matrix.channels, first_matrix.matrix * 1.01)
    with_matrix = analyze_file(first, FlowSettings(spillover=supplied))
    write_sample_outputs(with_matrix, tmp_path / "out2", plots=False)
    root = ET.parse(next((tmp_path / "out2").rglob("gates.gatingml.xml"))).getroot()
    assert len(root.findall(f"{{{TRANSFORMS}}}spectrumMatrix")) == 1


def test_a_templates_own_matrix_that_differs_from_the_files_is_pointed_out(
    tmp_path: Path,
) -> None:
    """Gates exported with a supplied matrix embed it; applied as a template to a tube recorded
    with other compensation, FlowKit compensates with the template's matrix (as FlowJo would),
    and a warning gives the largest difference, computed here by hand. A supplied matrix is
    refused with a template: it would be silently ignored."""
    from nkpanel.errors import ConfigError
    from nkpanel.flow.analyze import TEMPLATE_MATRIX_TOLERANCE, FlowSettings, analyze_file
    from nkpanel.flow.output import write_sample_outputs
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs

    tube_a = simulate_tube(SimulationSpec(n_events=20_000, seed=3))
    first = write_fcs(tube_a, tmp_path / "a-synthetic.fcs")
    tube_b = simulate_tube(SimulationSpec(n_events=20_000, seed=4, spillover_scale=1.5))
    second = write_fcs(tube_b, tmp_path / "b-synthetic.fcs")
    lab = Spillover(tube_a.spillover.channels, np.round(tube_a.spillover.matrix, 2))
    write_sample_outputs(analyze_file(first, FlowSettings(spillover=lab)), tmp_path, plots=False)
    xml = next(tmp_path.rglob("gates.gatingml.xml"))

    applied = analyze_file(second, FlowSettings(template=xml))
    flags = [f for f in applied.result.qc if f.check == "compensation"]
    assert len(flags) == 1 and not flags[0].passed and not flags[0].blocking
    expected = float(np.abs(lab.matrix - tube_b.spillover.matrix).max())
    assert expected > TEMPLATE_MATRIX_TOLERANCE
    assert flags[0].value == pytest.approx(expected, abs=5e-5)

    with pytest.raises(ConfigError, match="does not apply with a template"):
        analyze_file(second, FlowSettings(template=xml, spillover=lab))


@pytest.mark.shared_data
def test_a_workspace_matrix_equal_to_the_files_is_not_flagged(file_68983: Path) -> None:
    """FlowJo kept 68983's acquisition matrix in the workspace (to about 1e-8): no warning."""
    from nkpanel.flow.analyze import FlowSettings, analyze_file

    wsp = file_68983.parent / "gating.wsp"
    result = analyze_file(file_68983, FlowSettings(template=wsp)).result
    assert not [f for f in result.qc if f.check == "compensation"]
