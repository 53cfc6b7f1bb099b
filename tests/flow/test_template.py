"""Lab gating templates (Gating-ML 2.0, FlowJo 10) applied to FCS files.

Truth comes from outside: the Gating-ML 2.0 compliance suite's per-event results, the expert's
counts for the FlowSOM 68983 workspace (../shared/data/README.md) and the expert's per-event
labels in gatingResult.csv.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from nkpanel.errors import ConfigError, FCSFormatError, InputError, MarkerError
from nkpanel.flow.results import FlowResult
from nkpanel.flow.template import (
    Template,
    TemplateResult,
    apply_template,
    check_workspace_sample,
    load_template,
)
from tests.flow.fcs_bytes import build_fcs, data_span

# Each Results_<id>.txt of the compliance suite → the gate it is the truth for, and every gml
# file (gml_<stem>.xml) in which that gate is defined. Quadrant results are named after the
# quadrant; Results_ParQuadRect.txt is the rectangle ParRectangle1 whose parent is quadrant
# FL2P-FL4P. Two gml files have no Results file: gml_ellipse2_gate.xml (myEllipse2) and
# gml_range_gate_attr_testing.xml, which breaks the schema on purpose (tested below).
COMPLIANCE: dict[str, tuple[str, tuple[str, ...]]] = {
    "And1": ("And1", ("all_gates", "boolean_and1_gate")),
    "And2": ("And2", ("all_gates", "boolean_and2_gate")),
    "And3": ("And3", ("all_gates", "boolean_and3_complement_gate")),
    "And4": ("And4", ("all_gates", "boolean_and4_not_gate")),
    "Ellipse1": (
        "Ellipse1",
        (
            "all_gates",
            "boolean_and2_gate",
            "boolean_and3_complement_gate",
            "boolean_and4_not_gate",
            "boolean_not1_gate",
            "boolean_or1_gate",
            "ellipse1_gate",
            "parent_poly1_boolean_and2_gate",
            "parent_range1_boolean_and3_gate",
        ),
    ),
    "Ellipsoid3D": ("Ellipsoid3D", ("ellipsoid3d_gate",)),
    "FL2N-FL4N": (
        "FL2N-FL4N",
        ("all_gates", "boolean_or2_gate", "parent_quadrant_rect_gate", "quadrant1_gate"),
    ),
    "FL2N-FL4P": (
        "FL2N-FL4P",
        ("all_gates", "boolean_or2_gate", "parent_quadrant_rect_gate", "quadrant1_gate"),
    ),
    "FL2P-FL4N": (
        "FL2P-FL4N",
        ("all_gates", "boolean_or2_gate", "parent_quadrant_rect_gate", "quadrant1_gate"),
    ),
    "FL2P-FL4P": (
        "FL2P-FL4P",
        ("all_gates", "boolean_or2_gate", "parent_quadrant_rect_gate", "quadrant1_gate"),
    ),
    "FSCD-FL1P": ("FSCD-FL1P", ("all_gates", "quadrant2_gate")),
    "FSCD-SSCN-FL1N": ("FSCD-SSCN-FL1N", ("all_gates", "quadrant2_gate")),
    "FSCN-SSCN": ("FSCN-SSCN", ("all_gates", "quadrant2_gate")),
    "FSCN-SSCP-FL1P": ("FSCN-SSCP-FL1P", ("all_gates", "quadrant2_gate")),
    "FSCP-SSCN-FL1N": ("FSCP-SSCN-FL1N", ("all_gates", "quadrant2_gate")),
    "Not1": ("Not1", ("all_gates", "boolean_and4_not_gate", "boolean_not1_gate")),
    "Or1": ("Or1", ("all_gates", "boolean_or1_gate")),
    "Or2": ("Or2", ("all_gates", "boolean_or2_gate")),
    "ParAnd2": ("ParAnd2", ("all_gates", "parent_poly1_boolean_and2_gate")),
    "ParAnd3": ("ParAnd3", ("all_gates", "parent_range1_boolean_and3_gate")),
    "ParQuadRect": ("ParRectangle1", ("parent_quadrant_rect_gate",)),
    "Polygon1": (
        "Polygon1",
        (
            "all_gates",
            "boolean_and1_gate",
            "boolean_and2_gate",
            "boolean_and3_complement_gate",
            "boolean_and4_not_gate",
            "boolean_or1_gate",
            "parent_poly1_boolean_and2_gate",
            "parent_range1_boolean_and3_gate",
            "poly1_gate",
        ),
    ),
    "Polygon2": ("Polygon2", ("all_gates", "poly2_gate")),
    "Polygon3NS": ("Polygon3NS", ("all_gates", "poly3ns_gate")),
    "Polygon4": ("Polygon4", ("all_gates", "matrix_poly4_gate")),
    "Range1": (
        "Range1",
        (
            "all_gates",
            "boolean_and2_gate",
            "boolean_and3_complement_gate",
            "boolean_and4_not_gate",
            "boolean_or1_gate",
            "parent_poly1_boolean_and2_gate",
            "parent_range1_boolean_and3_gate",
            "range_gate",
        ),
    ),
    "Range2": ("Range2", ("all_gates", "boolean_and1_gate", "time_range_gate")),
    "RatRange1": ("RatRange1", ("all_gates", "ratio_range1_gate")),
    "RatRange1a": ("RatRange1a", ("all_gates", "log_ratio_range1_gate")),
    "RatRange2": ("RatRange2", ("all_gates", "ratio_range2_gate")),
    "Rectangle1": ("Rectangle1", ("all_gates", "rect1_gate")),
    "Rectangle2": ("Rectangle2", ("all_gates", "boolean_or2_gate", "rect2_gate")),
    "Rectangle3": ("Rectangle3", ("all_gates", "matrix_rect3_gate")),
    "Rectangle4": ("Rectangle4", ("all_gates", "matrix_rect4_gate")),
    "Rectangle5": ("Rectangle5", ("all_gates", "matrix_rect5_gate")),
    "ScalePar1": ("ScalePar1", ("all_gates", "parent_rect1_rect_par1_gate")),
    "ScaleRange1": ("ScaleRange1", ("all_gates", "transform_asinh_range1_gate")),
    "ScaleRange1c": ("ScaleRange1c", ("all_gates", "matrix_transform_asinh_range1c_gate")),
    "ScaleRange2": ("ScaleRange2", ("all_gates", "transform_hyperlog_range2_gate")),
    "ScaleRange2c": ("ScaleRange2c", ("all_gates", "matrix_transform_hyperlog_range2c_gate")),
    "ScaleRange3": ("ScaleRange3", ("all_gates", "transform_linear_range3_gate")),
    "ScaleRange3c": ("ScaleRange3c", ("all_gates", "matrix_transform_linear_range3c_gate")),
    "ScaleRange4": ("ScaleRange4", ("all_gates", "transform_logicle_range4_gate")),
    "ScaleRange4c": ("ScaleRange4c", ("all_gates", "matrix_transform_logicle_range4c_gate")),
    "ScaleRange5": ("ScaleRange5", ("all_gates", "transform_logicle_range5_gate")),
    "ScaleRange5c": ("ScaleRange5c", ("all_gates", "matrix_transform_logicle_range5c_gate")),
    "ScaleRange6": ("ScaleRange6", ("all_gates", "transform_log_range6_gate")),
    "ScaleRange6c": ("ScaleRange6c", ("all_gates", "matrix_transform_asinh_range6c_gate")),
    "ScaleRange7c": ("ScaleRange7c", ("all_gates", "matrix_transform_hyperlog_range7c_gate")),
    "ScaleRange8c": ("ScaleRange8c", ("all_gates", "matrix_transform_logicle_range8c_gate")),
    "ScaleRect1": (
        "ScaleRect1",
        ("all_gates", "matrix_transform_logicle_rect1_gate", "parent_rect1_rect_par1_gate"),
    ),
}
CASES = [
    pytest.param(results, gate, stem, id=f"{results}@{stem}")
    for results, (gate, stems) in COMPLIANCE.items()
    for stem in stems
]

#: the expert's counts for 68983.fcs (../shared/data/README.md)
EXPERT_COUNTS = {"Singlets2": 18_585, "NK1_1+": 923, "NK cells": 312, "NK T cells": 535}
#: the populations gatingResult.csv labels (each event carries its deepest labelled one)
CSV_LABELS = ("NK cells", "NK T cells", "B cells", "CD4 T cells", "CD8 T cells", "gd T cells")


@pytest.fixture(scope="session")
def compliance(shared_data: Path) -> Path:
    path = shared_data / "gatingml-2.0-compliance"
    if not (path / "data1.fcs").is_file():
        pytest.skip(f"Gating-ML 2.0 compliance suite not found at {path}")
    return path


@pytest.fixture(scope="session")
def gate_compliance_file(compliance: Path) -> Callable[[str], TemplateResult]:
    """data1.fcs gated with gml_<stem>.xml, each file read and applied once per session."""
    cache: dict[str, TemplateResult] = {}

    def run(stem: str) -> TemplateResult:
        if stem not in cache:
            template = load_template(compliance / "gml" / f"gml_{stem}.xml")
            cache[stem] = apply_template(template, compliance / "data1.fcs")
        return cache[stem]

    return run


def read_results(path: Path) -> NDArray[np.bool_]:
    values = np.loadtxt(path, dtype=np.int64)
    assert set(np.unique(values)) <= {0, 1}
    return values.astype(bool)


@pytest.mark.shared_data
def test_every_compliance_result_is_mapped(compliance: Path) -> None:
    on_disk = {
        p.name.removeprefix("Results_").removesuffix(".txt")
        for p in compliance.glob("truth/Results_*.txt")
    }
    assert on_disk == set(COMPLIANCE)
    for _gate, stems in COMPLIANCE.values():
        for stem in stems:
            assert (compliance / "gml" / f"gml_{stem}.xml").is_file(), stem


@pytest.mark.shared_data
@pytest.mark.parametrize(("results", "gate", "stem"), CASES)
def test_compliance_suite_event_for_event(
    compliance: Path,
    gate_compliance_file: Callable[[str], TemplateResult],
    results: str,
    gate: str,
    stem: str,
) -> None:
    truth = read_results(compliance / "truth" / f"Results_{results}.txt")
    result = gate_compliance_file(stem)
    got = result.membership[gate]
    assert got.shape == truth.shape == (result.n_events,)
    wrong = np.flatnonzero(got != truth)
    assert wrong.size == 0, f"{wrong.size} events differ, first {wrong[:10]}"
    assert result.counts[gate] == int(truth.sum())


@pytest.mark.shared_data
def test_quadrants_and_their_children_have_paths(
    gate_compliance_file: Callable[[str], TemplateResult],
) -> None:
    result = gate_compliance_file("parent_quadrant_rect_gate")
    assert set(result.membership) == {
        "/Quadrant1/FL2N-FL4N",
        "/Quadrant1/FL2N-FL4P",
        "/Quadrant1/FL2P-FL4N",
        "/Quadrant1/FL2P-FL4P",
        "/Quadrant1/FL2P-FL4P/ParRectangle1",
    }
    assert result.parents["ParRectangle1"] == "/Quadrant1/FL2P-FL4P"
    assert result.parents["FL2P-FL4P"] is None
    # the four quadrants split every event exactly once
    quads = [result.membership[q] for q in ("FL2N-FL4N", "FL2N-FL4P", "FL2P-FL4N", "FL2P-FL4P")]
    assert np.array_equal(np.sum(quads, axis=0), np.ones(result.n_events))


# ------------------------------------------------------------------------- FlowSOM 68983 workspace


@pytest.fixture(scope="session")
def flowsom(shared_data: Path) -> Path:
    path = shared_data / "flowsom-68983"
    if not (path / "gating.wsp").is_file() or not (path / "68983.fcs").is_file():
        pytest.skip(f"FlowSOM 68983 data not found at {path}")
    return path


@pytest.fixture(scope="session")
def wsp_template(flowsom: Path) -> Template:
    return load_template(flowsom / "gating.wsp")


@pytest.fixture(scope="session")
def wsp_result(flowsom: Path, wsp_template: Template) -> TemplateResult:
    return apply_template(wsp_template, flowsom / "68983.fcs")


@pytest.mark.shared_data
def test_workspace_reproduces_expert_counts(
    wsp_template: Template, wsp_result: TemplateResult
) -> None:
    assert wsp_template.kind == "flowjo"
    assert wsp_template.sample_names == ("68983.fcs",)
    assert wsp_result.sample == "68983.fcs"
    for gate, expected in EXPERT_COUNTS.items():
        assert wsp_result.counts[gate] == expected, gate
        assert int(wsp_result.membership[gate].sum()) == expected
    nk = "/Lymphocytes/Singlets/Singlets2/NK1_1+/NK cells"
    assert wsp_result.counts[nk] == EXPERT_COUNTS["NK cells"]
    assert wsp_result.parents[nk] == "/Lymphocytes/Singlets/Singlets2/NK1_1+"
    assert wsp_result.parents["Lymphocytes"] is None
    # NK and NK T cells split NK1.1+ between them (CD3− / CD3+), without overlap
    both = wsp_result.membership["NK cells"] & wsp_result.membership["NK T cells"]
    assert not both.any()


@pytest.mark.shared_data
def test_template_nk_percent_is_of_the_cleaned_lymphocytes(flowsom: Path) -> None:
    """The expert gates NK from Lymphocytes → Singlets → Singlets2; NK % of lymphocytes is
    of the 18,585 singlet lymphocytes NK is gated from (the expert's 1.68%), not of the
    19,225 events of the first lymphocyte gate, which still hold doublets (1.62%)."""
    from nkpanel.flow.analyze import FlowSettings, analyze_file

    a = analyze_file(flowsom / "68983.fcs", FlowSettings(template=flowsom / "gating.wsp"))
    assert int(a.membership["Lymphocytes"].sum()) == EXPERT_COUNTS["Singlets2"]
    nk = a.result.nk_percent_of_lymphocytes
    assert nk == pytest.approx(100 * EXPERT_COUNTS["NK cells"] / EXPERT_COUNTS["Singlets2"])
    assert a.result.template == "gating.wsp"
    assert a.result.template_roles["Lymphocytes"] == "/Lymphocytes/Singlets/Singlets2"
    # the template's own NK row has its % of lymphocytes too (it was left empty)
    row = a.result.population("/Lymphocytes/Singlets/Singlets2/NK1_1+/NK cells")
    assert row.percent_of_lymphocytes == pytest.approx(nk)
    # a lab that means its first gate says so, and gets it
    own = FlowSettings(
        template=flowsom / "gating.wsp", template_populations={"Lymphocytes": "/Lymphocytes"}
    )
    assert int(analyze_file(flowsom / "68983.fcs", own).membership["Lymphocytes"].sum()) == 19_225


@pytest.mark.shared_data
def test_workspace_agrees_with_expert_per_event_labels(
    flowsom: Path, wsp_result: TemplateResult
) -> None:
    with (flowsom / "gatingResult.csv").open(newline="") as fh:
        labels = np.array([row[0] for row in csv.reader(fh)])
    assert labels.size == wsp_result.n_events
    predicted = np.full(labels.size, "Unlabeled", dtype=object)
    for name in CSV_LABELS:
        predicted[wsp_result.membership[name]] = name
    # the NK read-outs agree event for event
    for name in ("NK cells", "NK T cells"):
        assert np.array_equal(labels == name, predicted == name), name
    # and the whole labelling nearly so: FlowJo and FlowKit may place an event lying on a gate
    # edge differently (the CSV came from the R evaluation of the same workspace)
    assert np.mean(labels == predicted) >= 0.999


@pytest.mark.shared_data
def test_workspace_sample_gates_apply_to_a_new_file(
    flowsom: Path, wsp_template: Template, wsp_result: TemplateResult, tmp_path: Path
) -> None:
    import flowio

    from nkpanel.flow.sample import read_fcs

    original = read_fcs(flowsom / "68983.fcs")
    # a "new patient": a synthetic file made of every third event of 68983, in reverse order
    picked = np.arange(original.n_events)[::3][::-1]
    new = tmp_path / "patient-2 (synthetic).fcs"
    with new.open("wb") as fh:
        flowio.create_fcs(fh, original.events[picked].ravel().tolist(), list(original.pnn))

    # the workspace holds one sample: its gates apply to the new file, and a note says whose
    result = apply_template(wsp_template, new)
    assert result.workspace_sample == "68983.fcs"
    assert "gates of the workspace sample '68983.fcs' applied" in result.notes
    named = apply_template(wsp_template, new, sample_id="68983.fcs")
    for applied in (result, named):
        assert applied.sample == new.name
        assert set(applied.membership) == set(wsp_result.membership)
        for path, events in wsp_result.membership.items():
            assert np.array_equal(applied.membership[path], events[picked]), path


@pytest.mark.shared_data
def test_acquisition_defined_compensation_is_the_new_files_own(
    flowsom: Path, wsp_template: Template, wsp_result: TemplateResult, tmp_path: Path
) -> None:
    """FlowJo's "Acquisition-defined" matrix is each file's own: a new patient's tube acquired
    after a new compensation run (PE into PE-Cy7 2% for 0.36), its $SPILL saying so, was
    compensated with the workspace sample's copy: NK 142 for 312 (NK 0.8% for 1.7),
    reportable (audit 39). SYNTHETIC file: the real 68983 events, spilled anew."""
    import flowio

    from nkpanel.flow.sample import read_fcs

    original = read_fcs(flowsom / "68983.fcs")
    spill = original.spillover
    assert spill is not None
    at = [original.pnn.index(c) for c in spill.channels]
    newer = spill.matrix.copy()
    newer[spill.channels.index("PE-A"), spill.channels.index("PE-Cy7-A")] = 0.02
    events = original.events.copy()
    events[:, at] = events[:, at] @ np.linalg.inv(spill.matrix) @ newer
    values = ",".join(format(float(v), ".6g") for v in newer.ravel())
    keyword = f"{len(spill.channels)},{','.join(spill.channels)},{values}"
    new = tmp_path / "patient-3 (synthetic).fcs"
    with new.open("wb") as fh:
        flowio.create_fcs(
            fh, events.ravel().tolist(), list(original.pnn), metadata_dict={"SPILL": keyword}
        )
    result = apply_template(wsp_template, new)
    for gate in ("NK cells", "NK T cells"):
        assert result.counts[gate] == EXPERT_COUNTS[gate], gate
    assert any("'Acquisition-defined', FlowJo's name" in n for n in result.notes)


def two_sample_workspace(flowsom: Path, folder: Path) -> Path:
    """gating.wsp with a second sample, "68983-b.fcs", a copy of the first (synthetic edit)."""
    text = (flowsom / "gating.wsp").read_text()
    start, end = text.index("<Sample>"), text.index("</Sample>") + len("</Sample>")
    copy = (
        text[start:end]
        .replace('sampleID="1"', 'sampleID="2"')
        .replace('name="68983.fcs"', 'name="68983-b.fcs"')
    )
    text = text[:end] + "\n" + copy + text[end:]
    text = text.replace(
        '<SampleRef sampleID="1" />', '<SampleRef sampleID="1" /><SampleRef sampleID="2" />', 1
    )
    out = folder / "two-samples-synthetic-edit.wsp"
    out.write_text(text)
    return out


@pytest.mark.shared_data
def test_flowjo_gatingml_export_is_not_valid_gatingml(flowsom: Path) -> None:
    # manualGating.xml is FlowJo's own Gating-ML export of the same gates; it omits the
    # compensation-ref that Gating-ML 2.0 requires, so FlowKit (and nkpanel) refuse it
    with pytest.raises(ConfigError, match="compensation-ref") as info:
        load_template(flowsom / "manualGating.xml")
    assert "manualGating.xml" in str(info.value)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------- bad inputs


def one_line(exc: pytest.ExceptionInfo[BaseException], path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message


def test_non_xml_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "template.xml"
    bad.write_bytes(b"FCS3.0    \x00\x01 not xml at all")
    with pytest.raises(ConfigError, match="not an XML document") as info:
        load_template(bad)
    one_line(info, bad)


def test_empty_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "empty.wsp"
    bad.write_bytes(b"")
    with pytest.raises(ConfigError, match="not an XML document") as info:
        load_template(bad)
    one_line(info, bad)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_template(tmp_path / "nope.xml")
    one_line(info, tmp_path / "nope.xml")


def test_xml_that_is_not_gating_ml_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "panel.xml"
    bad.write_text("<?xml version='1.0'?><panel><marker>CD56</marker></panel>")
    with pytest.raises(ConfigError, match=r"neither a Gating-ML 2\.0 document") as info:
        load_template(bad)
    one_line(info, bad)


def test_old_flowjo_workspace_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "old.wsp"
    bad.write_text("<?xml version='1.0'?><Workspace flowJoVersion='9.9.6'/>")
    with pytest.raises(ConfigError, match="only FlowJo 10") as info:
        load_template(bad)
    one_line(info, bad)


def test_entity_declarations_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "xxe.xml"
    bad.write_text(
        "<?xml version='1.0'?><!DOCTYPE g [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><g>&x;</g>"
    )
    with pytest.raises(ConfigError, match="entities") as info:
        load_template(bad)
    one_line(info, bad)


@pytest.mark.shared_data
def test_schema_breaking_gating_ml_names_the_problem(compliance: Path) -> None:
    bad = compliance / "gml" / "gml_range_gate_attr_testing.xml"
    with pytest.raises(ConfigError, match=r"not valid Gating-ML 2\.0 \(line 7") as info:
        load_template(bad)
    one_line(info, bad)


@pytest.mark.shared_data
def test_flowjos_gating_ml_export_points_to_the_workspace(flowsom: Path) -> None:
    """FlowJo's Gating-ML export (manualGating.xml beside the expert's workspace) leaves out
    each dimension's compensation-ref, which Gating-ML 2.0 requires (FlowKit refuses it too):
    the refusal says so and names the way that works, the .wsp (audit 17)."""
    bad = flowsom / "manualGating.xml"
    with pytest.raises(ConfigError, match=r"compensation-ref.*apply the FlowJo workspace") as info:
        load_template(bad)
    one_line(info, bad)
    # a schema problem in a file FlowJo did not write gets no such hint
    with pytest.raises(ConfigError) as other:
        load_template(
            flowsom.parent / "gatingml-2.0-compliance" / "gml" / "gml_range_gate_attr_testing.xml"
        )
    assert "FlowJo" not in str(other.value)


@pytest.mark.shared_data
def test_workspace_without_the_sample(
    compliance: Path, wsp_template: Template, flowsom: Path, tmp_path: Path
) -> None:
    data1 = compliance / "data1.fcs"
    two = load_template(two_sample_workspace(flowsom, tmp_path))
    assert len(two.strategies) == 2
    with pytest.raises(ConfigError, match=r"has no sample 'data1\.fcs'.*--template-sample") as info:
        apply_template(two, data1)
    one_line(info, two.source)
    with pytest.raises(ConfigError, match=r"has no sample 'other\.fcs'") as info:
        apply_template(wsp_template, data1, sample_id="other.fcs")
    one_line(info, flowsom / "gating.wsp")
    with pytest.raises(ConfigError, match=r"has no sample 'other\.fcs'.*68983-b\.fcs") as info:
        check_workspace_sample(two, "other.fcs")
    check_workspace_sample(two, "68983-b.fcs")
    # a renamed export keeps its $FIL, which the refusal names (audit 39 F4)
    renamed = tmp_path / "renamed (synthetic copy).fcs"
    renamed.write_bytes((flowsom / "68983.fcs").read_bytes())
    with pytest.raises(ConfigError, match=r"the file's \$FIL is '68983\.fcs', a sample"):
        apply_template(two, renamed)
    with pytest.raises(ConfigError, match="no sample group 'Controls'") as info:
        apply_template(wsp_template, flowsom / "68983.fcs", group="Controls")
    one_line(info, flowsom / "gating.wsp")


@pytest.mark.shared_data
def test_template_channels_missing_from_file(compliance: Path, wsp_template: Template) -> None:
    data1 = compliance / "data1.fcs"
    with pytest.raises(MarkerError, match="not channels of this file") as info:
        apply_template(wsp_template, data1, sample_id="68983.fcs")
    one_line(info, data1)
    assert isinstance(info.value, InputError)


@pytest.mark.shared_data
def test_unreadable_fcs_is_an_fcs_format_error(compliance: Path, tmp_path: Path) -> None:
    template = load_template(compliance / "gml" / "gml_range_gate.xml")
    bad = tmp_path / "broken.fcs"
    bad.write_bytes((compliance / "data1.fcs").read_bytes()[:2000])
    with pytest.raises(FCSFormatError) as info:
        apply_template(template, bad)
    one_line(info, bad)


@pytest.mark.shared_data
def test_unknown_gate_name_fails_loudly(
    gate_compliance_file: Callable[[str], TemplateResult],
) -> None:
    result = gate_compliance_file("boolean_and2_gate")
    with pytest.raises(KeyError, match="no gate 'NK cells'"):
        result.counts["NK cells"]
    assert "/Polygon1" in result.counts
    assert "Polygon1" in result.counts
    assert len(result.counts) == len(list(result.counts)) == 4


@pytest.mark.shared_data
def test_template_figures_reuse_the_gated_sample(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The figures of a template run draw from the FlowKit sample that was gated: the FCS file
    is read once for gating and not again for the figures."""
    import nkpanel.flow.template_plots as template_plots
    from nkpanel.flow.analyze import FlowSettings, analyze_file
    from nkpanel.flow.output import write_sample_outputs

    d = shared_data / "flowsom-68983"
    analysis = analyze_file(d / "68983.fcs", FlowSettings(template=d / "gating.wsp"))
    assert analysis.template_sample is not None

    def no_second_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("the FCS file was read again for the figures")

    monkeypatch.setattr(template_plots, "_load_fcs", no_second_read)
    written = write_sample_outputs(analysis, tmp_path, plots=True).paths
    assert len([p for p in written if p.suffix == ".png"]) == 15


def _compliance_applied(shared_data: Path, name: str) -> tuple[Path, Path, TemplateResult]:
    """A Gating-ML compliance file applied to the suite's data1.fcs."""
    gml = shared_data / "gatingml-2.0-compliance" / "gml" / name
    fcs = shared_data / "gatingml-2.0-compliance" / "data1.fcs"
    return gml, fcs, apply_template(load_template(gml), fcs)


def _plots(
    gml: Path, fcs: Path, applied: TemplateResult, out: Path
) -> tuple[list[Path], list[str]]:
    from nkpanel.flow.template_plots import plot_template_gates

    return plot_template_gates(
        gml, fcs, applied.membership, applied.parents, out, flowkit_sample=applied.flowkit_sample
    )


@pytest.mark.shared_data
def test_quadrant_gates_are_drawn_one_figure_per_quadrant(
    shared_data: Path, tmp_path: Path
) -> None:
    """gml_quadrant1_gate.xml divides FL2/FL4 into four quadrants: four figures, no note."""
    gml, fcs, applied = _compliance_applied(shared_data, "gml_quadrant1_gate.xml")
    quadrants = [k for k in applied.membership if k.count("/") == 2]
    assert len(quadrants) == 4
    files, notes = _plots(gml, fcs, applied, tmp_path)
    assert len([f for f in files if f.suffix == ".png"]) == 4
    assert notes == []


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name",
    ["gml_ratio_range1_gate.xml", "gml_ratio_range2_gate.xml", "gml_log_ratio_range1_gate.xml"],
)
def test_ratio_gates_are_drawn_on_the_ratio(shared_data: Path, tmp_path: Path, name: str) -> None:
    """A range gate on a ratio of two channels (fratio) is drawn on that ratio: the figure
    step raised AttributeError (a ratio dimension has no channel id), and the whole sample
    failed with its counts right. The drawn range holds the events FlowKit put in the gate."""
    gml, fcs, applied = _compliance_applied(shared_data, name)
    files, notes = _plots(gml, fcs, applied, tmp_path)
    drawn = [f for f in files if f.suffix == ".png"]
    assert len(drawn) == len(applied.membership) and notes == []
    strategy = load_template(gml).strategies[""]
    for gate_name, ancestors in strategy.get_gate_ids():
        gate = strategy.get_gate(gate_name, ancestors)
        (dim,) = gate.dimensions
        frame = strategy._preprocess_sample_events(applied.flowkit_sample, gate)
        x = np.asarray(frame[dim.ratio_ref], dtype=float)
        lo, hi = getattr(dim, "min", None), getattr(dim, "max", None)
        inside = np.ones(x.size, bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x < hi
        key = next(k for k in applied.membership if k.endswith(gate_name))
        np.testing.assert_array_equal(inside, np.asarray(applied.membership[key]))


@pytest.mark.shared_data
def test_ellipse_gate_is_drawn_from_its_own_outline(shared_data: Path, tmp_path: Path) -> None:
    """The drawn outline of gml_ellipse1_gate.xml holds the events FlowKit put in the gate."""
    from nkpanel.flow.gates import points_in_polygon
    from nkpanel.flow.template_plots import _ellipse_outline

    gml, fcs, applied = _compliance_applied(shared_data, "gml_ellipse1_gate.xml")
    files, notes = _plots(gml, fcs, applied, tmp_path)
    assert [f.name for f in files if f.suffix == ".png"] == ["Ellipse1.png"] and notes == []
    strategy = load_template(gml).strategies[""]
    (name, anc), *_ = strategy.get_gate_ids()
    gate = strategy.get_gate(name, anc)
    outline = np.asarray(
        _ellipse_outline(gate.coordinates, gate.covariance_matrix, 1.0 * gate.distance_square)
    )
    # every outline point lies on the ellipse: Mahalanobis distance² = d²
    diff = outline - np.asarray(gate.coordinates, dtype=float)
    inv = np.linalg.inv(np.asarray(gate.covariance_matrix, dtype=float))
    np.testing.assert_allclose(np.einsum("ij,jk,ik->i", diff, inv, diff), gate.distance_square)
    frame = strategy._preprocess_sample_events(applied.flowkit_sample, gate)
    x, y = (np.asarray(frame[d.id], dtype=float) for d in gate.dimensions)
    ours = points_in_polygon(x, y, outline)
    theirs = np.asarray(applied.membership[next(iter(applied.membership))])
    assert np.mean(ours == theirs) > 0.999  # a 120-gon inside the ellipse misses a sliver


def test_an_ellipse_without_a_positive_definite_covariance_has_no_outline() -> None:
    from nkpanel.flow.template_plots import _ellipse_outline

    assert _ellipse_outline([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]], 1.0) is None
    circle = np.asarray(_ellipse_outline([1.0, 2.0], [[4.0, 0.0], [0.0, 4.0]], 1.0))
    np.testing.assert_allclose(np.hypot(circle[:, 0] - 1.0, circle[:, 1] - 2.0), 2.0)


def test_clean_lymphocytes_stops_at_a_gate_that_chooses_by_marker() -> None:
    """Only gates that clean (singlets, live, time) move the NK % denominator; a viability
    gate that also drops CD14/CD19 or a dump channel chooses cells and is not one of them."""
    from nkpanel.flow.analyze import _clean_lymphocytes

    def chain(*gates: str) -> dict[str, str | None]:
        paths = ["/L", *("/L/" + "/".join(gates[: i + 1]) for i in range(len(gates)))]
        return {p: (paths[i - 1] if i else None) for i, p in enumerate(paths)}

    parents = chain("Singlets", "Live cells", "CD3-", "NK")
    assert _clean_lymphocytes("/L", "/L/Singlets/Live cells/CD3-/NK", parents) == (
        "/L/Singlets/Live cells"
    )
    dump = chain("Viable Dump-", "CD3-", "NK")
    assert _clean_lymphocytes("/L", "/L/Viable Dump-/CD3-/NK", dump) == "/L"
    mixed = chain("Singlets", "Live CD14-CD19-", "NK")
    assert _clean_lymphocytes("/L", "/L/Singlets/Live CD14-CD19-/NK", mixed) == "/L/Singlets"


@pytest.mark.parametrize(
    ("name", "cleans"),
    [
        ("Singlets2", True),
        ("FSC-A singlets", True),
        ("Singlets (FSC)", True),
        ("Live cells", True),
        ("live-dead neg", True),
        ("Zombie-", True),
        ("Time", True),
        ("Viable Dump-", False),
        ("Live CD14-CD19-", False),
        ("Lymphocytes", False),
        ("CD3-", False),
    ],
)
def test_clean_up_gate_names(name: str, cleans: bool) -> None:
    from nkpanel.flow.analyze import _CLEANUP_GATE

    assert bool(_CLEANUP_GATE.fullmatch(name)) is cleans


_FSC_OVER_1000 = """<?xml version="1.0" encoding="UTF-8"?>
<gating:Gating-ML
    xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating"
    xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">
  <gating:RectangleGate gating:id="Big">
    <gating:dimension gating:compensation-ref="uncompensated" gating:min="1000">
      <data-type:fcs-dimension data-type:name="FSC"/>
    </gating:dimension>
  </gating:RectangleGate>
</gating:Gating-ML>
"""


#: stored FSC values of the files below; ≥ 1000 by hand: events 3, 4 and 5
_FSC = np.array([5, 999, 1000, 70000, 1001, 0], dtype=np.float64)


def _gate_fsc_over_1000(tmp_path: Path, data: bytes) -> TemplateResult:
    """Apply the FSC ≥ 1000 template to the FCS ``data`` and check membership by hand."""
    fcs = tmp_path / "odd.fcs"
    fcs.write_bytes(data)
    gml = tmp_path / "big.xml"
    gml.write_text(_FSC_OVER_1000)
    result = apply_template(load_template(gml), fcs)
    assert result.membership["Big"].tolist() == [v >= 1000 for v in _FSC]
    return result


@pytest.mark.parametrize("kind", ["24-bit integers", "ENDDATA one past the data"])
def test_template_applies_to_a_file_flowio_cannot_read(tmp_path: Path, kind: str) -> None:
    """Cytek xP5 (3-byte integers) and MACSQuant (an $ENDDATA one byte past the data) files
    are read by nkpanel but not by flowio; the template is applied to nkpanel's reading."""
    raw = np.column_stack([_FSC, np.arange(6)])
    if kind == "24-bit integers":
        data = build_fcs(raw, ["FSC", "SSC"], datatype="I", bits=24, pnr=[2**24, 2**24])
    else:
        good = build_fcs(raw, ["FSC", "SSC"], datatype="F", trailer=b"\x00")
        begin, end = data_span(good)
        data = build_fcs(
            raw,
            ["FSC", "SSC"],
            datatype="F",
            trailer=b"\x00",
            keywords={"$ENDDATA": str(end + 1)},
            header_data=(begin, end + 1),
        )
    result = _gate_fsc_over_1000(tmp_path, data)
    assert any("FlowKit cannot read the file" in note for note in result.notes)


@pytest.mark.parametrize(
    ("keywords", "why"),
    [
        ({"$BYTEORD": "4, 3, 2, 1"}, "flowio would read $BYTEORD '4, 3, 2, 1'"),
        ({"$P1E": "4,1"}, "flowio would apply $P1E 4,1 to floating-point values"),
    ],
    ids=["byte order with blanks", "log PnE on float data"],
)
def test_template_gates_the_values_nkpanel_reads_where_flowio_would_read_others(
    tmp_path: Path, keywords: dict[str, str], why: str
) -> None:
    """flowio reads such a file without complaint but into other numbers (byte-swapped, or
    exponentiated where FCS 3.1 says floating-point values are linear): the template gets
    nkpanel's values instead, and says so."""
    raw = np.column_stack([_FSC, np.arange(6)])
    byteorder = "big" if keywords.get("$BYTEORD", "").startswith("4") else "little"
    data = build_fcs(raw, ["FSC", "SSC"], datatype="F", byteorder=byteorder, keywords=keywords)
    result = _gate_fsc_over_1000(tmp_path, data)
    assert any(note.startswith(why) for note in result.notes), result.notes


def test_an_open_bound_is_not_drawn() -> None:
    """An exported gate that bounds nothing carries -1e300 (Gating-ML needs a bound): drawn,
    it stretched a figure's axis to -1e300 and hid every event."""
    from nkpanel.flow.template_plots import _drawn_bound

    assert _drawn_bound(-1e300) is None and _drawn_bound(None) is None
    assert _drawn_bound(float("inf")) is None
    assert _drawn_bound(1000.0) == 1000.0


@pytest.mark.shared_data
def test_template_axes_are_labelled_in_the_channels_values(shared_data: Path) -> None:
    """A template's logicle axis gets decade ticks from FlowKit's own transform: the tick for
    10³ sits where FlowKit puts 1000; a linear axis keeps matplotlib's ticks."""
    from flowkit import transforms

    from nkpanel.flow.plots import decade_ticks
    from nkpanel.flow.template_plots import _axis_scale, _identity

    strategy = load_template(
        shared_data
        / "gatingml-2.0-compliance"
        / "gml"
        / "gml_matrix_transform_logicle_rect1_gate.xml"
    ).strategies[""]
    (ref, transform), *_ = (
        (r, t)
        for r, t in strategy.transformations.items()
        if isinstance(t, transforms.LogicleTransform)
    )
    scale = _axis_scale(strategy, ref)
    ticks = decade_ticks(scale, float(transform.apply(np.array([-100.0]))[0]), 1.0)
    assert ticks is not None
    labels = {label: p for p, label in ticks[0]}
    assert labels["10³"] == pytest.approx(float(transform.apply(np.array([1000.0]))[0]))
    assert scale.inverse(labels["10³"]) == pytest.approx(1000.0)
    assert _axis_scale(strategy, "linear") is _identity
    assert _axis_scale(strategy, None) is _identity


def test_a_linearly_rescaled_axis_is_labelled_in_the_channels_values(
    wsp_template: Template,
) -> None:
    """Audit 21 C1: FlowJo's workspace scales scatter linearly to 0–1, and the figures read
    "FSC-A 0.3" where FlowJo shows 78K; the ticks are now at round values of the channel
    (tick 50K where FlowKit's transform puts 50,000)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from flowkit import transforms

    from nkpanel.flow.plots import _data_ticks
    from nkpanel.flow.template_plots import _axis_scale

    strategy = next(iter(wsp_template.strategies.values()))
    (ref, transform), *_ = (
        (r, t)
        for r, t in strategy.transformations.items()
        if isinstance(t, transforms.LinearTransform) and r.startswith("FSC-A")
    )
    fig, ax = plt.subplots()
    try:
        limits = (float(transform.apply(np.array([20_000.0]))[0]), 0.6)
        _data_ticks(ax.xaxis, _axis_scale(strategy, ref), limits)
        ticks = {
            t.get_text(): p for p, t in zip(ax.get_xticks(), ax.get_xticklabels(), strict=True)
        }
    finally:
        plt.close(fig)
    assert "50K" in ticks and "150K" in ticks, ticks
    assert ticks["50K"] == pytest.approx(float(transform.apply(np.array([50_000.0]))[0]))


@pytest.mark.shared_data
def test_template_run_checks_the_lymphosum(flowsom: Path) -> None:
    """The expert's workspace gates T cells (inside NK1.1-), B cells, NK and NK T cells: the
    lymphosum check runs on a template too. From the expert's per-event labels, T subsets + B +
    NK + NK T make up 13,671 of the 18,585 cleaned lymphocytes (73.6%); the workspace's T-cell
    gate also holds its DN and DP T cells, so the check must find a little more, and warn
    without withholding the result (a lab's own gates are not blocked on it)."""
    from nkpanel.flow.analyze import FlowSettings, analyze_file

    with (flowsom / "gatingResult.csv").open(newline="") as fh:
        labels = [row[0] for row in csv.reader(fh)]
    labelled = sum(label != "Unlabeled" for label in labels)
    assert labelled == 13_671
    result = analyze_file(flowsom / "68983.fcs", FlowSettings(template=flowsom / "gating.wsp"))
    flag = next(f for f in result.result.qc if f.check == "lymphosum")
    counts = {p.population.rsplit("/", 1)[-1]: p.count for p in result.result.populations}
    union = counts["T cells"] + counts["B cells"] + counts["NK cells"] + counts["NK T cells"]
    lymphosum = union / EXPERT_COUNTS["Singlets2"]
    assert labelled / EXPERT_COUNTS["Singlets2"] <= lymphosum < 0.80
    assert flag.value == pytest.approx(1 - lymphosum, abs=5e-5)
    assert not flag.passed and not flag.blocking
    assert result.result.reportable


# ---- a lab's hand edits of nkpanel's own exported gates (audit 21) ---------------------------


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A synthetic tube and the Gating-ML text of the gates nkpanel's automated gating found
    on it: the template a lab edits by hand."""
    from nkpanel.flow.analyze import FlowSettings, analyze_file
    from nkpanel.flow.gatingml import export_gatingml
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs

    folder = tmp_path_factory.mktemp("exported")
    tube = write_fcs(simulate_tube(SimulationSpec(seed=2, n_events=40_000)), folder / "s.fcs")
    analysis = analyze_file(tube, FlowSettings())
    assert analysis.tree is not None
    export_gatingml(analysis.tree, folder / "gates.xml", spillover=None)
    return tube, (folder / "gates.xml").read_text("utf-8")


def _edited(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _swapped_time_range(text: str) -> str:
    """The Time gate's range typed the wrong way round (its maximum as the minimum)."""
    import re

    m = re.search(r'gating:min="([^"]+)" gating:max="([^"]+)"', text)
    assert m is not None
    return text.replace(m.group(0), f'gating:min="{m.group(2)}" gating:max="{m.group(1)}"', 1)


def _undefined_transformation(text: str) -> str:
    old = '<gating:dimension gating:compensation-ref="uncompensated" gating:min='
    at = text.index(old)  # the Time gate's, the file's first dimension
    return (
        text[:at]
        + old.replace(
            "<gating:dimension ", '<gating:dimension gating:transformation-ref="Logicle_APC" '
        )
        + text[at + len(old) :]
    )


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        # a range typed the wrong way round holds no event: CD56bright 0.0%, reportable
        (_swapped_time_range, "gate 'Time', dimension 'Time': its minimum 19.98"),
        (
            lambda t: _edited(
                t,
                'gating:id="Beads" gating:parent_id="Time">',
                'gating:id="Beads" gating:parent_id="Tme">',
            ),
            "it refers to 'Tme', which it does not define (a gate's parent_id?)",
        ),
        (
            lambda t: t.replace(  # the first of them: the bead gate's
                '<gating:dimension gating:compensation-ref="FCS" gating:min="',
                '<gating:dimension gating:compensation-ref="MyMatrix" gating:min="',
                1,
            ),
            "gate 'Beads', dimension 'PE-Cy7-A': compensation 'MyMatrix' is not a matrix",
        ),
        (_undefined_transformation, "transformation 'Logicle_APC' is not defined"),
    ],
)
def test_a_hand_edit_that_breaks_a_gate_is_refused_when_the_template_loads(
    exported: tuple[Path, str], tmp_path: Path, edit: Callable[[str], str], said: str
) -> None:
    """Audit 21: a minimum above the maximum gave an empty gate, reported as 0.0%; a missing
    parent, transformation or matrix failed as a bare name ('CD3minus'), file by file."""
    _, text = exported
    bad = tmp_path / "edited.xml"
    bad.write_text(edit(text), "utf-8")
    with pytest.raises(ConfigError) as info:
        load_template(bad)
    one_line(info, bad)
    assert said in str(info.value)


def _template_run(tube: Path, template: Path, **populations: str) -> FlowResult:
    from nkpanel.flow.analyze import FlowSettings, analyze_file

    roles = {k.replace("_", " "): v for k, v in populations.items()}
    return analyze_file(tube, FlowSettings(template=template, template_populations=roles)).result


def test_nk_gated_outside_the_lymphocytes_is_withheld(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    """Audit 21: NK hung from the leukocytes (a hand edit, or a lab tree with CD45+ >
    Lymphocytes beside CD45+ > CD3- > NK) read 201% of lymphocytes, reportable, every check
    passed. The lab's own tree, unedited, stays reportable."""
    tube, text = exported
    as_found = tmp_path / "as_found.xml"
    as_found.write_text(text, "utf-8")
    good = _template_run(tube, as_found)
    assert good.reportable and good.nk_percent_of_lymphocytes is not None
    moved = tmp_path / "moved.xml"
    moved.write_text(
        _edited(
            text,
            'gating:id="CD3-" gating:parent_id="Lymphocytes"',
            'gating:id="CD3-" gating:parent_id="Leukocytes"',
        ),
        "utf-8",
    )
    r = _template_run(tube, moved)
    assert not r.reportable and r.nk_percent_of_lymphocytes is None
    (flag,) = [q for q in r.qc if q.check == "population roles"]
    assert flag.blocking and "lie outside the gate playing Lymphocytes" in flag.reason
    assert "/Leukocytes/CD3-/NK" in flag.reason


def test_two_gates_named_as_nk_are_not_chosen_between(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    """Audit 21: with a CD3+ gate named "NK cells" before the CD3- one, the first in the file
    was NK (3.96% for 6.2%, "within"). Both are named and --population decides."""
    tube, text = exported
    two = tmp_path / "two.xml"
    two.write_text(
        _edited(
            text,
            "<nkpanel:gate-name>NK-like T</nkpanel:gate-name>",
            "<nkpanel:gate-name>NK cells</nkpanel:gate-name>",
        ),
        "utf-8",
    )
    with pytest.raises(ConfigError, match=r"2 gates of the template are named as the NK \(") as e:
        _template_run(tube, two)
    assert "/CD3+/NK cells" in str(e.value) and "/CD3-/NK," in str(e.value) + ","
    nk = next(p for p in str(e.value).split("(")[1].split(", ") if p.endswith("/CD3-/NK"))
    assert _template_run(tube, two, NK=nk).reportable


def test_a_leukocyte_gate_inside_the_lymphocytes_is_withheld(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    """Audit 21: Lymphocytes > CD45+ (a common naming) took the CD45+ gate as the leukocytes:
    NK % of leukocytes 6.21 for 1.85, and every % of leukocytes of the tables likewise."""
    tube, text = exported
    for old, new in (
        ("Leukocytes</nkpanel:gate-name>", "WBC</nkpanel:gate-name>"),
        ("Lymphocyte scatter</nkpanel:gate-name>", "Lymphs</nkpanel:gate-name>"),
        ("<nkpanel:gate-name>Lymphocytes<", "<nkpanel:gate-name>CD45+<"),
    ):
        text = _edited(text, old, new)
    renamed = tmp_path / "renamed.xml"
    renamed.write_text(text, "utf-8")
    r = _template_run(tube, renamed)
    assert r.template_roles["Leukocytes"].endswith("/Lymphs/CD45+")
    assert not r.reportable
    (flag,) = [q for q in r.qc if q.check == "population roles"]
    assert "the gate playing Leukocytes" in flag.reason and "lies inside" in flag.reason


def test_a_boolean_nk_gate_without_a_parent_is_counted_where_its_events_are(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    """Audit 21: NK as a Boolean gate (legal Gating-ML without a parent) lost its NK/µL and
    % of lymphocytes without a word: its events all lie within the lymphocytes."""
    from nkpanel.flow.analyze import AbsoluteCountInputs, FlowSettings, analyze_file

    tube, text = exported
    boolean = (
        '  <gating:BooleanGate gating:id="NK_any">\n'
        "    <gating:or>\n"
        '      <gating:gateReference gating:ref="NK_CD56bright" />\n'
        '      <gating:gateReference gating:ref="NK_CD56dim" />\n'
        "    </gating:or>\n"
        "  </gating:BooleanGate>\n"
    )
    path = tmp_path / "boolean.xml"
    path.write_text(_edited(text, "</gating:Gating-ML>", boolean + "</gating:Gating-ML>"))
    counts = AbsoluteCountInputs(beads_per_test=50_000, sample_volume_ul=50)
    results = [
        analyze_file(tube, FlowSettings(template=path, template_populations=roles, counts=counts))
        for roles in ({}, {"NK": "NK_any"})
    ]
    by_tree, boolean_nk = (r.result for r in results)
    nk = boolean_nk.population("NK")
    assert boolean_nk.nk_cells_per_ul is not None and nk.percent_of_lymphocytes is not None
    # the same events as the tree's own NK subsets together
    expected = sum(p.count for p in by_tree.populations if p.population.startswith("NK CD56"))
    assert nk.count == expected
    assert boolean_nk.nk_cells_per_ul == pytest.approx(
        by_tree.nk_cells_per_ul * expected / by_tree.population("NK").count
    )


@pytest.mark.shared_data
def test_gates_without_a_figure_are_named_in_the_result(compliance: Path, tmp_path: Path) -> None:
    """Audit 21: 35 figures for 49 gates, and the note naming the others was dropped."""
    from nkpanel.flow.analyze import FlowSettings, analyze_file
    from nkpanel.flow.output import write_sample_outputs

    settings = FlowSettings(template=compliance / "gml" / "gml_all_gates.xml")
    written = write_sample_outputs(analyze_file(compliance / "data1.fcs", settings), tmp_path)
    (note,) = [n for n in written.result.notes if n.startswith("template gates not drawn: ")]
    assert "/Or1 (BooleanGate)" in note and "/Quadrant2 (QuadrantGate)" in note
    summary = (tmp_path / "samples" / "data1" / "summary.json").read_text("utf-8")
    assert "/Or1 (BooleanGate)" in summary


def test_compensation_a_templates_gates_leave_out_is_said(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    """Audit 21: gates referring to the file's own matrix on a file without one were applied
    to raw data, silently (the automated analysis withholds such a result); a gate that left
    compensated channels uncompensated gave NK 6.4% for 6.2%, reportable, without a word."""
    tube, text = exported
    template = tmp_path / "gates.xml"
    template.write_text(text, "utf-8")
    bare = tmp_path / "no_matrix.fcs"
    raw = tube.read_bytes()
    assert raw.count(b"$SPILLOVER") == 1
    bare.write_bytes(raw.replace(b"$SPILLOVER", b"$XPILLOVER"))  # the keyword unread
    r = _template_run(bare, template)
    (flag,) = [q for q in r.qc if q.check == "compensation" and not q.passed]
    assert flag.blocking and not r.reportable
    assert "with the file's own matrix, but the file holds none" in flag.reason
    assert "(APC-A)" in flag.reason and "(FSC-A)" not in flag.reason
    # the NK gate alone on uncompensated values: said, not withheld (a lab may draw so)
    nk = text.index('gating:id="NK" gating:parent_id="CD3-"')
    end = text.index("</gating:PolygonGate>", nk)
    raw_nk = (
        text[:nk]
        + text[nk:end].replace('compensation-ref="FCS"', 'compensation-ref="uncompensated"')
        + text[end:]
    )
    uncompensated = tmp_path / "nk_uncompensated.xml"
    uncompensated.write_text(raw_nk, "utf-8")
    r = _template_run(tube, uncompensated)
    (flag,) = [q for q in r.qc if q.check == "compensation" and not q.passed]
    assert not flag.blocking and "uncompensated, though the file's spillover matrix" in flag.reason
    assert r.reportable
    assert not [q for q in _template_run(tube, template).qc if q.check == "compensation"]


def test_a_template_matrix_the_data_show_wrong_withholds_the_result(tmp_path: Path) -> None:
    """Audit 21: a template's own matrix one coefficient off (PE into PE-Cy7, 0.02 for 0.10)
    moved CD16-bright NK cells into the CD19 gate (here NK 4.8% for 12.2%), reportable with
    only a warning that the matrices differ: the automated analysis's in-data check (two
    CD19-negative populations apart on CD19) now runs on template runs too, and with the
    matrix known to differ it withholds; so does the "NK cells among B cells" check, with the
    template's own NK gate. The file's own matrix passes both."""
    from nkpanel.flow.analyze import FlowSettings, analyze_file
    from nkpanel.flow.gatingml import export_gatingml
    from nkpanel.flow.sample import Spillover
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs

    tube = write_fcs(simulate_tube(SimulationSpec(seed=3, n_events=40_000)), tmp_path / "t.fcs")
    automated = analyze_file(tube, FlowSettings())
    assert automated.tree is not None and automated.sample.spillover is not None
    own = automated.sample.spillover
    off = own.matrix.copy()
    off[own.channels.index("PE-A"), own.channels.index("PE-Cy7-A")] = 0.02
    results = {}
    for name, matrix in (("own", own), ("off", Spillover(own.channels, off))):
        export_gatingml(automated.tree, tmp_path / f"{name}.xml", spillover=matrix)
        results[name] = _template_run(tube, tmp_path / f"{name}.xml")
    assert results["own"].reportable
    assert not [q for q in results["own"].qc if q.check.startswith("compensation") and not q.passed]
    wrong = results["off"]
    assert wrong.nk_percent_of_lymphocytes < 0.5 * results["own"].nk_percent_of_lymphocytes
    assert not wrong.reportable
    (seen,) = [q for q in wrong.qc if q.check == "compensation in the data"]
    assert seen.blocking and "CD19-negative" in seen.reason
    assert seen.reason.endswith("the template's own matrix differs from the file's")
    # and the B-gate events the template's own NK gate shape takes, as the automated check
    (crossed,) = [q for q in wrong.qc if q.check == "NK cells among B cells"]
    assert crossed.blocking and crossed.value is not None and crossed.value > 1
    (fine,) = [q for q in results["own"].qc if q.check == "NK cells among B cells"]
    assert fine.passed


def test_a_template_cut_short_is_said_to_be_no_well_formed_xml(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    """Audit 21: a Gating-ML file cut short failed as "cannot build its gates: Couldn't find
    end of Start Tag…"; the cause is the XML itself."""
    _, text = exported
    bad = tmp_path / "cut.xml"
    bad.write_text(text[: len(text) // 2], "utf-8")
    with pytest.raises(ConfigError, match=r"not well-formed XML \(.*line \d+") as info:
        load_template(bad)
    one_line(info, bad)


def test_a_template_applied_to_another_panels_file_is_withheld(tmp_path: Path) -> None:
    """Audit 21: a template is matched to a file by detector names, so a file whose FITC
    carries CD8 where the gates were drawn with CD3 was gated as if it were CD3, reportable.
    nkpanel's export records each marker's channel; another panel's file is withheld, the
    same panel's passes, and a file that does not name the channel's marker is not judged."""
    from nkpanel.flow.analyze import FlowSettings, analyze_file
    from nkpanel.flow.output import write_sample_outputs
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs
    from tests.flow.fcs_bytes import edit_text_value

    tube = write_fcs(simulate_tube(SimulationSpec(seed=5, n_events=30_000)), tmp_path / "t.fcs")
    write_sample_outputs(analyze_file(tube, FlowSettings()), tmp_path / "auto", plots=False)
    template = tmp_path / "auto" / "samples" / "t" / "gates.gatingml.xml"
    assert 'name="CD3" channel="FITC-A"' in template.read_text("utf-8")
    raw = tube.read_bytes()
    assert b"CD3 FITC" in raw
    for name, label, reportable in (
        ("same", "CD3 FITC", True),
        ("other", "CD8 FITC", False),
        ("unnamed", "FITC dye", True),  # the same length: offsets unchanged
    ):
        path = tmp_path / f"{name}.fcs"
        path.write_bytes(edit_text_value(raw, "$P5S", label))
        r = _template_run(path, template)
        flags = [q for q in r.qc if q.check == "template panel"]
        assert r.reportable is reportable, (name, flags)
        if not reportable:
            (flag,) = flags
            assert "CD3 was on FITC-A; this file's FITC-A is 'CD8 FITC'" in flag.reason


def test_a_time_gate_from_another_tube_is_said(exported: tuple[Path, str], tmp_path: Path) -> None:
    """Audit 21: nkpanel's exported Time gate holds the seconds of the tube it was found on;
    applied to a longer tube it left half of it unanalysed, unsaid."""
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs

    tube, text = exported
    template = tmp_path / "gates.xml"
    template.write_text(text, "utf-8")
    assert not [q for q in _template_run(tube, template).qc if q.check == "time gate"]
    longer = write_fcs(simulate_tube(SimulationSpec(seed=7, n_events=120_000)), tmp_path / "l.fcs")
    (flag,) = [q for q in _template_run(longer, template).qc if q.check == "time gate"]
    assert not flag.blocking and flag.value is not None and flag.value < 0.95
    assert flag.reason.startswith("the template's gate /Time on acquisition time keeps ")


def test_untransformed_fluorescence_is_drawn_on_a_logicle_display(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    """Audit 21: nkpanel's own exported gates have no transform, so their figures drew
    fluorescence on linear axes, the events squashed against them; shown on a logicle display
    as FlowJo does, labelled so and with the stain, with scatter left linear."""
    from nkpanel.flow.analyze import FlowSettings, analyze_file
    from nkpanel.flow.output import write_sample_outputs

    tube, text = exported
    template = tmp_path / "gates.xml"
    template.write_text(text, "utf-8")
    analysis = analyze_file(tube, FlowSettings(template=template))
    paths = write_sample_outputs(analysis, tmp_path / "out").paths
    svg = {p.stem: p.read_text("utf-8") for p in paths if p.suffix == ".svg"}
    assert "CD56 APC (APC-A, logicle display)" in svg["NK"]
    assert "CD16 PE (PE-A, logicle display)" in svg["NK"]
    assert "FSC-A (linear)" in svg["Lymphocyte_scatter"]
    assert "(logicle display)" not in svg["Lymphocyte_scatter"]


def test_a_subset_outside_nk_leaves_out_its_percentage_alone(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    """Review 25: a CD56bright gate with events outside NK withheld the whole result, though
    NK % and NK/µL stood; its own percentage is left out, the rest reportable."""
    tube, text = exported
    moved = tmp_path / "moved.xml"
    moved.write_text(
        _edited(
            text,
            'gating:id="NK_CD56bright" gating:parent_id="NK"',
            'gating:id="NK_CD56bright" gating:parent_id="Lymphocytes"',
        ),
        "utf-8",
    )
    r = _template_run(tube, moved)
    (flag,) = [q for q in r.qc if q.check == "population roles"]
    assert not flag.blocking and "NK CD56bright" in flag.reason and "is not given" in flag.reason
    assert r.reportable and r.nk_percent_of_lymphocytes is not None
    assert r.cd56bright_percent_of_nk is None and r.cd56dim_percent_of_nk is not None


def test_a_file_recording_heights_beside_areas_takes_the_template(
    exported: tuple[Path, str], tmp_path: Path
) -> None:
    """A cytometer recording each detector's height (FITC-H beside FITC-A, both "CD3 FITC")
    writes its $SPILLOVER over the areas: the template failed ("Labels in FCS file not found in
    comp matrix", FlowKit's refusal) and the automated gating refused every marker as on
    several channels. Both now gate the areas, as on the file without heights."""
    import dataclasses

    from nkpanel.flow.analyze import FlowSettings, analyze_file
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs

    tube, text = exported
    sim = simulate_tube(SimulationSpec(seed=2, n_events=40_000))  # the fixture's tube
    areas = [i for i, n in enumerate(sim.pnn) if n.endswith("-A") and n[:3] not in ("FSC", "SSC")]
    assert len(areas) >= 4
    with_heights = write_fcs(
        dataclasses.replace(
            sim,
            events=np.hstack([sim.events, sim.events[:, areas] * np.float32(0.7)]),
            pnn=(*sim.pnn, *(sim.pnn[i][:-2] + "-H" for i in areas)),
            pns=(*sim.pns, *(sim.pns[i] for i in areas)),
        ),
        tmp_path / "heights.fcs",
    )
    template = tmp_path / "gates.xml"
    template.write_text(text, "utf-8")
    for settings in (FlowSettings(template=template), FlowSettings()):
        plain = analyze_file(tube, settings).result
        heights = analyze_file(with_heights, settings).result
        assert heights.reportable, heights.not_reportable_reasons
        assert heights.nk_percent_of_lymphocytes == plain.nk_percent_of_lymphocytes
        assert heights.cd56bright_percent_of_nk == plain.cd56bright_percent_of_nk


@pytest.mark.shared_data
def test_a_gate_named_with_a_slash_is_found_by_its_name(flowsom: Path, tmp_path: Path) -> None:
    """FlowJo users name gates "CD3-/CD56+"; such a gate could not be named with --population
    (its path was split on "/"), and the error listed "NK1.1+" for it (audit 39 F3).
    SYNTHETIC edit of the expert's workspace: the two NK gates renamed so."""
    from nkpanel.flow.analyze import FlowSettings, analyze_file

    text = (flowsom / "gating.wsp").read_text()
    text = text.replace('name="NK cells"', 'name="CD3-/NK1.1+"')
    text = text.replace('name="NK T cells"', 'name="CD3+/NK1.1+"')
    edited = tmp_path / "slash-names-synthetic-edit.wsp"
    edited.write_text(text)
    named = {"NK": "CD3-/NK1.1+", "NK-like T": "CD3+/NK1.1+"}
    settings = FlowSettings(template=edited, template_populations=named)
    r = analyze_file(flowsom / "68983.fcs", settings).result
    nk = r.nk_percent_of_lymphocytes
    assert nk == pytest.approx(100 * EXPERT_COUNTS["NK cells"] / EXPERT_COUNTS["Singlets2"])
    wrong = FlowSettings(template=edited, template_populations={"NK": "CD3-/NK1.2+"})
    with pytest.raises(InputError, match=r"its gates: .*CD3-/NK1\.1\+, CD3\+/NK1\.1\+"):
        analyze_file(flowsom / "68983.fcs", wrong)


@pytest.mark.shared_data
def test_a_workspaces_own_sample_is_checked_against_flowjos_stored_counts(
    wsp_template: Template, wsp_result: TemplateResult
) -> None:
    """FlowJo stores each gate's count in the workspace: for the workspace's own sample they are
    a check of the whole import, said in a note (audit 39 F2). On the expert's file the NK and
    NK-like T gates hold FlowJo's counts exactly; 9 gates hold 1-13 events more (events on a
    polygon's edge, which FlowJo rasterises at its gate resolution, and FlowKit does not)."""
    total, stored = wsp_template.stored_counts["68983.fcs"]
    assert total == wsp_result.n_events == 19_225
    for gate in ("NK cells", "NK T cells", "NK1_1+"):
        path = next(p for p in stored if p.endswith("/" + gate))
        assert wsp_result.counts[path] == stored[path], gate
    differ = [p for p in stored if wsp_result.counts[p] != stored[p]]
    assert len(differ) == 9 and all(0 < wsp_result.counts[p] - stored[p] <= 13 for p in differ)
    assert "6 of 15 gates hold the events FlowJo stored for this sample" in " ".join(
        wsp_result.notes
    )


def test_the_stored_counts_note_says_when_a_gap_is_more_than_edges() -> None:
    """Edge events explain a few per thousand; a 50% gap (another file under the workspace
    sample's name) was put down to them too, and a workspace with no counts stored read "all
    0 gates" (review 41)."""
    from nkpanel.flow.template import _against_stored_counts

    (edges,) = _against_stored_counts({"/a": 1000, "/b": 7}, {"/a": 998, "/b": 7})
    assert edges.startswith("1 of 2 gates hold the events FlowJo stored")
    assert "(1,000 here, 998 in FlowJo: 0.20%; events on a polygon's edge" in edges
    (gap,) = _against_stored_counts({"/a": 50}, {"/a": 100})
    assert "50.00%; more than edge events: check that this is the workspace's own file" in gap
    assert _against_stored_counts({"/a": 1}, {}) == ()
