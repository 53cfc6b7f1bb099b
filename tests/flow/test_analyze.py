"""Counts, absolute counts and quality checks of one analysis, checked by hand."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from nkpanel.errors import InputError, MarkerError
from nkpanel.flow.analyze import AbsoluteCountInputs, FlowSettings, analyze_file, analyze_sample
from nkpanel.flow.qc import QCLimits
from nkpanel.flow.sample import Spillover, read_fcs
from nkpanel.flow.simulate import SimulationSpec, simulate_tube
from nkpanel.flow.transforms import Asinh, Logicle
from tests.flow.fcs_bytes import build_fcs


@pytest.fixture(scope="module")
def tube():  # type: ignore[no-untyped-def]
    return simulate_tube(SimulationSpec(seed=21))


def test_percentages_and_counts_follow_from_membership(tube) -> None:  # type: ignore[no-untyped-def]
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)))
    m = {k: int(v.sum()) for k, v in a.membership.items()}
    r = a.result
    assert r.nk_percent_of_lymphocytes == pytest.approx(100 * m["NK"] / m["Lymphocytes"])
    assert r.nk_percent_of_leukocytes == pytest.approx(100 * m["NK"] / m["Leukocytes"])
    assert r.cd56bright_percent_of_nk == pytest.approx(100 * m["NK CD56bright"] / m["NK"])
    assert r.cd56bright_to_dim_ratio == pytest.approx(m["NK CD56bright"] / m["NK CD56dim"])
    # single platform, BD Trucount formula: cells/µL = cells/beads × beads per test / volume
    assert r.nk_cells_per_ul == pytest.approx(m["NK"] / m["Beads"] * 50_000 / 50)
    assert r.absolute_count_method == "bead"
    nk = r.population("NK")
    assert nk.parent == "CD3-"
    assert nk.percent_of_parent == pytest.approx(100 * m["NK"] / m["CD3-"])
    assert r.reportable
    # populations that hold debris, beads or doublets are not cells of the blood: no % of
    # leukocytes (Time once showed 129%) and no cells/µL
    for outside in ("Time", "Singlets", "Beads"):
        row = r.population(outside)
        assert row.percent_of_leukocytes is None and row.cells_per_ul is None, outside
    assert r.population("Lymphocytes").cells_per_ul == pytest.approx(
        m["Lymphocytes"] / m["Beads"] * 50_000 / 50
    )


def test_dual_platform_count(tube) -> None:  # type: ignore[no-untyped-def]
    a = analyze_sample(
        tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(lymphocytes_per_ul=1800))
    )
    r = a.result
    assert r.absolute_count_method == "dual-platform"
    assert r.nk_percent_of_lymphocytes is not None
    assert r.nk_cells_per_ul == pytest.approx(r.nk_percent_of_lymphocytes / 100 * 1800)
    # populations outside the lymphocytes get no dual-platform count
    assert r.population("Beads").cells_per_ul is None


def test_too_few_events_is_not_reportable(tube) -> None:  # type: ignore[no-untyped-def]
    limits = QCLimits(min_lymphocyte_events=10**7)
    a = analyze_sample(tube.to_sample(), FlowSettings(qc=limits))
    assert not a.result.reportable
    assert any("lymphocyte events" in r for r in a.result.not_reportable_reasons)
    # the numbers are still there for review, just flagged
    assert a.result.nk_percent_of_lymphocytes is not None


def test_clog_fails_flow_rate_check() -> None:
    tube = simulate_tube(SimulationSpec(seed=22, clog_at=0.4))
    a = analyze_sample(tube.to_sample())
    flag = next(f for f in a.result.qc if f.check == "flow rate")
    assert not flag.passed
    assert not a.result.reportable


def test_a_pause_is_not_an_unstable_flow_rate(tmp_path: Path) -> None:
    # no events for a fifth of the acquisition (paused, or blocked outright), steady either
    # side: nothing acquired is wrong, so the rate is judged where events were acquired
    from nkpanel.flow.gatingml import export_gatingml
    from nkpanel.flow.simulate import write_fcs

    spec = SimulationSpec(seed=22, clog_at=0.4, clog_duration_fraction=0.2, clog_rate_factor=0.0)
    tube = simulate_tube(spec)
    t0, t1 = tube.truth["acquisition"]["clog_window_s"]
    pause = (t1 - t0) / tube.truth["acquisition"]["duration_s"]
    assert pause == pytest.approx(0.2, abs=0.005)  # by construction (to the last arrival)
    fcs = write_fcs(tube, tmp_path / "pause.fcs")
    a = analyze_file(fcs)
    flag = next(f for f in a.result.qc if f.check == "flow rate")
    assert flag.passed and a.result.reportable
    (note,) = [n for n in a.result.notes if n.startswith("no events over")]
    empty = float(note.split("over ")[1].split("%")[0]) / 100
    # whole 1%-bins inside the pause: one or two bins at its edges hold events
    assert pause - 0.025 <= empty <= pause
    # a template run (no time gate of nkpanel's) says it in its flow-rate check
    assert a.tree is not None
    template = tmp_path / "lab.xml"
    export_gatingml(a.tree, template, spillover=a.values.spillover)
    rate = next(
        f
        for f in analyze_file(fcs, FlowSettings(template=template)).result.qc
        if f.check == "flow rate"
    )
    assert rate.passed and "no events over" in rate.reason


@pytest.mark.parametrize("tick_s", [0.1, 1.0])
@pytest.mark.parametrize("clog", [False, True])
def test_a_coarse_time_counter_is_binned_in_whole_ticks(tick_s: float, clog: bool) -> None:
    # an older instrument's clock ticks every 0.1 s or 1 s over a ~25 s tube: bins of 2 and
    # 3 ticks in turn once read as a rate jumping by half (a steady tube withheld, 41% unstable)
    spec = SimulationSpec(seed=5, clog_at=0.4 if clog else None, clog_duration_fraction=0.2)
    sample = simulate_tube(spec).to_sample()
    col = [c.pnn for c in sample.channels].index("Time")
    events = sample.events.copy()
    events[:, col] = np.floor(events[:, col] / tick_s) * tick_s
    a = analyze_sample(dataclasses.replace(sample, events=events))
    flag = next(f for f in a.result.qc if f.check == "flow rate")
    assert flag.passed is not clog
    assert not any(n.startswith("no events over") for n in a.result.notes)


def test_steady_flow_passes(tube) -> None:  # type: ignore[no-untyped-def]
    a = analyze_sample(tube.to_sample())
    assert next(f for f in a.result.qc if f.check == "flow rate").passed


def test_missing_compensation_is_not_reportable(tube) -> None:  # type: ignore[no-untyped-def]
    sample = dataclasses.replace(tube.to_sample(), spillover=None)
    a = analyze_sample(sample)
    flag = next(f for f in a.result.qc if f.check == "compensation")
    assert not flag.passed and flag.blocking
    assert "uncompensated" in flag.reason


def test_saturation_check() -> None:
    tube = simulate_tube(SimulationSpec(seed=23, saturate_fraction=0.05))
    a = analyze_sample(tube.to_sample())
    flag = next(f for f in a.result.qc if f.check == "saturation")
    assert not flag.passed
    expected = float(np.mean(tube.labels[a.membership["Time"]] == "saturated"))
    assert flag.value == pytest.approx(expected, abs=0.01)


def test_a_time_counter_past_its_range_is_not_saturation() -> None:
    """A time counter is no detector: a real Aurora export's Time reached 4.5x its $PnR, and
    once a time gate took Time among the gated channels, 78% of the events of a (synthetic)
    bootstrap of it were "at the top of a gated channel's range": a right result withheld."""
    sample = simulate_tube(SimulationSpec(seed=23)).to_sample()
    plain = analyze_sample(sample)
    t = sample.index_of("Time")
    chans = list(sample.channels)
    chans[t] = dataclasses.replace(chans[t], pnr=float(np.quantile(sample.events[:, t], 0.2)))
    short = analyze_sample(dataclasses.replace(sample, channels=tuple(chans)))
    assert "Time" in short.membership
    flags = [next(f for f in a.result.qc if f.check == "saturation") for a in (plain, short)]
    assert flags[1].passed and flags[1].value == flags[0].value
    assert short.result.reportable, short.result.not_reportable_reasons


def test_bead_method_without_beads_says_so() -> None:
    tube = simulate_tube(SimulationSpec(seed=24, with_beads=False))
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)))
    assert a.result.nk_cells_per_ul is None
    flag = next(f for f in a.result.qc if f.check == "bead events")
    assert not flag.passed and "no counting-bead population" in flag.reason
    # the count is withheld; the percentages, which need no beads, are still reported
    assert a.result.reportable and a.result.nk_percent_of_lymphocytes is not None
    assert a.result.absolute_count_method == "bead"
    assert all(p.cells_per_ul is None for p in a.result.populations)
    # the report says why the count asked for is missing
    from nkpanel.interpret import read_episode

    summary = {
        "case": {"id": "E", "patient_id": "P"},
        "blood_draws": [{"id": "d", "flow": [a.result.summary()]}],
    }
    per_ul = next(m for m in read_episode(summary).measurements if m.code == "pnk-per-ul")
    assert (
        not per_ul.reportable and "no counting-bead population" in per_ul.not_reportable_reasons[0]
    )
    pct = next(m for m in read_episode(summary).measurements if m.code == "pnk-pct-lymph")
    assert pct.reportable


def test_missing_marker_names_file_wanted_and_found(tube) -> None:  # type: ignore[no-untyped-def]
    from nkpanel.errors import MarkerError

    sample = tube.to_sample()
    channels = tuple(
        dataclasses.replace(c, pns="") if "CD56" in c.pns else c for c in sample.channels
    )
    broken = dataclasses.replace(sample, channels=channels, name="no-cd56")
    with pytest.raises(MarkerError) as info:
        analyze_sample(broken)
    msg = str(info.value)
    assert "no-cd56" in msg and "CD56" in msg and "APC-A" in msg


def test_a_cytometry_setting_that_does_not_fit_the_file_is_a_warning(tube) -> None:  # type: ignore[no-untyped-def]
    from nkpanel.flow.autogate import AutoGateSettings

    as_mass = FlowSettings(autogate=AutoGateSettings(cytometry="mass"))
    a = analyze_sample(tube.to_sample(), as_mass)
    flag = next(f for f in a.result.qc if f.check == "cytometry")
    assert not flag.passed and not flag.blocking
    assert "analysed as mass cytometry as asked, but the file looks like flow" in flag.reason
    assert not any(f.check == "cytometry" for f in analyze_sample(tube.to_sample()).result.qc)


def test_bead_and_haematology_counts_both_given_says_which_is_used(tube) -> None:  # type: ignore[no-untyped-def]
    both = AbsoluteCountInputs(50_000.0, 50.0, lymphocytes_per_ul=1800)
    r = analyze_sample(tube.to_sample(), FlowSettings(counts=both)).result
    assert r.absolute_count_method == "bead"
    assert any("cells/µL by the bead method" in n for n in r.notes)


def test_too_few_beads_with_a_lymphocyte_count_falls_back_to_dual_platform() -> None:
    """A tube without beads, both counts given: the haematology count gives cells/µL
    (NK % × lymphocytes/µL, by hand), and a note says why."""
    tube = simulate_tube(SimulationSpec(seed=24, with_beads=False))
    both = AbsoluteCountInputs(50_000.0, 50.0, lymphocytes_per_ul=1800.0)
    r = analyze_sample(tube.to_sample(), FlowSettings(counts=both)).result
    assert r.absolute_count_method == "dual-platform"
    assert r.nk_percent_of_lymphocytes is not None
    assert r.nk_cells_per_ul == pytest.approx(r.nk_percent_of_lymphocytes / 100 * 1800)
    assert any("too few counting beads (0) for the bead method" in n for n in r.notes)
    # beads asked for and nothing else: withheld, not replaced
    beads_only = AbsoluteCountInputs(50_000.0, 50.0)
    r = analyze_sample(tube.to_sample(), FlowSettings(counts=beads_only)).result
    assert r.absolute_count_method == "bead" and r.nk_cells_per_ul is None


def test_beads_in_the_tube_without_a_bead_lot_say_why_there_is_no_count(tube) -> None:  # type: ignore[no-untyped-def]
    r = analyze_sample(tube.to_sample()).result
    assert r.nk_cells_per_ul is None and r.absolute_count_method == "none"
    note = next(n for n in r.notes if "counting-bead events found" in n)
    beads = next(p.count for p in r.populations if p.population == "Beads")
    assert note.startswith(f"{beads} counting-bead events found, but no beads per test")


def test_a_template_run_checks_flow_rate_and_saturation_too(tmp_path: Path) -> None:
    """A lab template has no time gate of nkpanel's: the clog is still found, and the
    channels the template gates on are checked for saturation."""
    from nkpanel.flow.gatingml import export_gatingml
    from nkpanel.flow.simulate import write_fcs

    fcs = write_fcs(simulate_tube(SimulationSpec(seed=22, clog_at=0.4)), tmp_path / "clog.fcs")
    auto = analyze_file(fcs)
    assert auto.tree is not None
    template = tmp_path / "lab.xml"
    export_gatingml(auto.tree, template, spillover=auto.values.spillover)
    a = analyze_file(fcs, FlowSettings(template=template))
    checks = {f.check: f for f in a.result.qc}
    assert not checks["flow rate"].passed and not a.result.reportable
    assert checks["saturation"].passed


def test_dual_platform_count_of_a_tube_without_beads() -> None:
    """Dual platform needs no beads (a bead check once withheld it too)."""
    tube = simulate_tube(SimulationSpec(seed=24, with_beads=False))
    counts = AbsoluteCountInputs(lymphocytes_per_ul=1800.0)
    r = analyze_sample(tube.to_sample(), FlowSettings(counts=counts)).result
    assert r.absolute_count_method == "dual-platform"
    assert r.nk_percent_of_lymphocytes is not None
    assert r.nk_cells_per_ul == pytest.approx(r.nk_percent_of_lymphocytes / 100 * 1800)


@pytest.mark.parametrize("time_name", ["Time", "HDR-T"])  # MACSQuant: HDR-T
def test_a_template_without_a_time_gate_is_flagged_for_a_clog_at_the_start(
    tmp_path: Path, time_name: str
) -> None:
    from nkpanel.flow.gates import GateTree
    from nkpanel.flow.gatingml import export_gatingml
    from nkpanel.flow.simulate import write_fcs

    spec = SimulationSpec(seed=25, clog_at=0.0, clog_duration_fraction=0.3)
    tube = simulate_tube(spec)
    tube = dataclasses.replace(tube, pnn=tuple(time_name if n == "Time" else n for n in tube.pnn))
    fcs = write_fcs(tube, tmp_path / "clog_start.fcs")
    auto = analyze_file(fcs)
    assert auto.tree is not None
    # the lab's template: the same gates without nkpanel's time gate
    gates = tuple(
        g if g.parent != "Time" else dataclasses.replace(g, parent=None)
        for g in auto.tree.gates
        if g.name != "Time"
    )
    template = tmp_path / "lab.xml"
    export_gatingml(GateTree(gates), template, spillover=auto.values.spillover)
    a = analyze_file(fcs, FlowSettings(template=template))
    flag = next(f for f in a.result.qc if f.check == "flow rate")
    assert not flag.passed and not a.result.reportable


def test_lymphocytes_that_cannot_be_separated_are_not_reportable(tube) -> None:  # type: ignore[no-untyped-def]
    """Without SSC, CD45 or CD14 (a Guava Muse file, say) the "Lymphocytes" gate keeps every
    leukocyte: NK % of lymphocytes would be NK % of all cells, so the result is withheld."""
    full = tube.to_sample()
    keep = [i for i, ch in enumerate(full.channels) if not ch.pnn.startswith("SSC")]
    keep = [i for i in keep if "CD45" not in (full.channels[i].pns or full.channels[i].pnn)]
    cut = type(full).from_array(
        full.events[:, keep],
        [full.channels[i].pnn for i in keep],
        pns=[full.channels[i].pns for i in keep],
        spillover=None,
    )
    a = analyze_sample(cut, FlowSettings())
    flag = next(f for f in a.result.qc if f.check == "lymphocyte gate")
    assert not flag.passed and flag.blocking
    assert "no side-scatter channel" in flag.reason
    assert not a.result.reportable
    assert a.tree is not None
    parent = next(g.parent for g in a.tree.gates if g.name == "Lymphocytes")
    assert parent is not None
    assert a.membership["Lymphocytes"].sum() == a.membership[parent].sum()


def _renamed(sample, names: dict[str, str | None]):  # type: ignore[no-untyped-def]
    """``sample`` with channels renamed ($PnN) as ``names`` says; a channel mapped to None is
    left out."""
    from tests.flow.samples import rebuilt

    keep = [i for i, ch in enumerate(sample.channels) if names.get(ch.pnn, ch.pnn) is not None]
    pnn = [names.get(sample.channels[i].pnn) or sample.channels[i].pnn for i in keep]
    spill = sample.spillover
    if spill is not None:
        spill = type(spill)(tuple(names.get(c) or c for c in spill.channels), spill.matrix)
    pns = [sample.channels[i].pns for i in keep]
    return rebuilt(sample, events=sample.events[:, keep], pnn=pnn, pns=pns, spillover=spill)


def test_flow_data_without_side_scatter_are_not_reportable_even_with_cd45(tube) -> None:  # type: ignore[no-untyped-def]
    """A flow file whose side scatter is missing (not exported, or named so that nkpanel does
    not know it) still has CD45: CD45 alone leaves monocytes and granulocytes among the
    "lymphocytes", and CD16+ neutrophils counted as NK gave 64% NK of lymphocytes (truth 12%)
    as reportable. Flow data without side scatter are withheld, with how to name the channel."""
    cut = _renamed(tube.to_sample(), {"SSC-A": None, "SSC-H": None})
    a = analyze_sample(cut, FlowSettings())
    flag = next(f for f in a.result.qc if f.check == "lymphocyte gate")
    assert not flag.passed and flag.blocking
    assert "--marker SSC-A=NAME" in flag.reason
    assert not a.result.reportable


def test_beckman_coulter_scatter_names_are_known(tube) -> None:  # type: ignore[no-untyped-def]
    """Navios/Gallios/Kaluza name scatter "FS INT LIN" (pulse integral = area), "FS PEAK LIN"
    (height), "SS INT LIN": read as FSC-A, FSC-H and SSC-A, the analysis recovers the true NK %
    within a point and places a singlet gate (FSC area against height)."""
    names = {"FSC-A": "FS INT LIN", "FSC-H": "FS PEAK LIN", "SSC-A": "SS INT LIN"}
    names["SSC-H"] = "SS PEAK LIN"
    a = analyze_sample(_renamed(tube.to_sample(), names), FlowSettings())
    assert a.result.reportable
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 1.0
    assert a.tree is not None
    singlets = next(g for g in a.tree.gates if g.name == "Singlets")
    assert {d.channel for d in singlets.dims} == {"FS INT LIN", "FS PEAK LIN"}


def test_how_the_file_was_read_reaches_the_result(tmp_path: Path) -> None:
    """The reader's notes (here: a $TIMESTEP that is no number) are part of the result."""
    from nkpanel.flow.sample import read_fcs
    from nkpanel.flow.simulate import write_fcs
    from tests.flow.fcs_bytes import edit_text_value

    fcs = write_fcs(simulate_tube(SimulationSpec(n_events=30_000, seed=26)), tmp_path / "t.fcs")
    bad = "x" * len(read_fcs(fcs).metadata["timestep"])  # same length: offsets stay right
    fcs.write_bytes(edit_text_value(fcs.read_bytes(), "$TIMESTEP", bad))
    r = analyze_file(fcs).result
    # provenance, not a quality note (which would turn every measurement's QC to "warn")
    assert f"$TIMESTEP '{bad}' is not a positive number; ignored" in r.file_notes
    assert not any("$TIMESTEP" in n for n in r.notes)


@pytest.mark.parametrize(
    ("cyt", "analog"),
    [
        ("FACSCalibur", True),
        ("FACS Calibur HTS", True),
        ("BD FACScan", True),
        ("FACSort", True),
        ("FACSCanto II", False),  # digital, with its matrix in the file
        ("FACSCantoII", False),
        ("LSRFortessa", False),
    ],
)
def test_analog_cytometers_are_told_from_digital_ones(cyt: str, analog: bool) -> None:
    from nkpanel.flow.compensation import analog_compensation
    from nkpanel.flow.sample import FlowSample

    sample = FlowSample.from_array([[1.0]], ["FL1-H"], metadata={"cyt": cyt})
    assert (analog_compensation(sample) is not None) is analog


@pytest.mark.parametrize(
    ("metadata", "said"),
    [
        ({"cyt": "FACSCalibur"}, "compensated at acquisition by the FACSCalibur's analog"),
        ({"cyt": "Cytek xP5", "analog_comp": "2,1,-0.2,0,1"}, "(ANALOG_COMP in the file)"),
    ],
    ids=["FACSCalibur", "ANALOG_COMP"],
)
def test_analog_compensation_is_a_warning_and_a_second_one_is_refused(
    tube,  # type: ignore[no-untyped-def]
    metadata: dict[str, str],
    said: str,
) -> None:
    """Analog cytometers record compensated values and no matrix: that is not "uncompensated"
    (which would withhold every result of a FACSCalibur lab); a matrix on top subtracts
    spillover twice."""
    from nkpanel.flow.compensation import compensate

    full = tube.to_sample()
    # what the instrument records: values already compensated, no matrix
    plain = type(full).from_array(
        compensate(full, full.spillover), full.pnn, pns=full.pns, metadata=metadata
    )
    r = analyze_sample(plain, FlowSettings()).result
    flag = next(f for f in r.qc if f.check == "compensation")
    assert said in flag.reason and "cannot be checked" in flag.reason
    assert not flag.passed and not flag.blocking and r.reportable
    again = type(full).from_array(
        plain.events, full.pnn, pns=full.pns, metadata=metadata, spillover=full.spillover
    )
    r = analyze_sample(again, FlowSettings()).result
    flag = next(f for f in r.qc if f.check == "compensation")
    assert "subtracts spillover twice" in flag.reason and flag.blocking and not r.reportable


def test_an_identity_matrix_on_analog_data_subtracts_nothing(tube) -> None:  # type: ignore[no-untyped-def]
    from nkpanel.flow.compensation import compensate
    from nkpanel.flow.sample import Spillover

    full = tube.to_sample()
    fluor = full.spillover.channels
    identity = Spillover(fluor, np.eye(len(fluor)))
    sample = type(full).from_array(
        compensate(full, full.spillover),
        full.pnn,
        pns=full.pns,
        metadata={"cyt": "FACSCalibur"},
        spillover=identity,
    )
    r = analyze_sample(sample, FlowSettings()).result
    flag = next(f for f in r.qc if f.check == "compensation")
    assert not flag.blocking and "cannot be checked" in flag.reason and r.reportable


def test_the_top_channel_of_a_log_amplifier_counts_as_saturated() -> None:
    """A 4-decade, 1,024-channel amplifier's highest channel decodes to 10^(4·1023/1024)
    ≈ 9,910, not 10⁴: events there are at the top of the range."""
    from nkpanel.flow.analyze import _saturation_check
    from nkpanel.flow.sample import Channel, FlowSample

    top = 10.0 ** (4 * 1023 / 1024)
    ch = Channel(0, "FL2-H", "CD56 PE", pne=(4.0, 1.0), png=1.0, pnr=1024.0)
    assert ch.top == pytest.approx(top, rel=1e-12)
    events = np.array([[top]] * 10 + [[10.0 ** (4 * 500 / 1024)]] * 90)
    sample = FlowSample.from_array(events, ["FL2-H"])
    sample = dataclasses.replace(sample, channels=(ch,))
    flag = _saturation_check(sample, {"FL2-H"}, None, QCLimits())
    assert not flag.passed and flag.value == pytest.approx(0.10)


def test_lymphosum_warns_when_other_cells_sit_in_the_lymphocyte_gate(tube) -> None:  # type: ignore[no-untyped-def]
    """T + B + NK should make up 100 ± 10% of the lymphocytes (IUPAC "lymphosum"). Monocytes in
    the lymphocyte gate (as a gate drawn too wide holds them) lower NK % of lymphocytes: the
    result says so. The lymphosum is checked by hand from the gate counts."""
    from nkpanel.flow.analyze import _qc_checks

    clean = analyze_sample(tube.to_sample())
    m = {k: int(v.sum()) for k, v in clean.membership.items()}
    flag = next(f for f in clean.result.qc if f.check == "lymphosum")
    lymphosum = (m["CD3+"] + m["B cells"] + m["NK"]) / m["Lymphocytes"]
    assert flag.value == pytest.approx(abs(lymphosum - 1), abs=5e-5)  # kept to 4 decimals
    assert f"{lymphosum:.1%}" in flag.reason
    assert flag.passed
    # the simulated monocytes added to the lymphocyte gate
    member = dict(clean.membership)
    member["Lymphocytes"] = member["Lymphocytes"] | (tube.labels == "monocyte")
    wide = int(member["Lymphocytes"].sum())
    assert wide > 1.15 * m["Lymphocytes"]
    flags = _qc_checks(clean.sample, member, clean.parents, FlowSettings(), "flow", None, None)
    flag = next(f for f in flags if f.check == "lymphosum")
    by_hand = (m["CD3+"] + m["B cells"] + m["NK"]) / wide
    assert flag.value == pytest.approx(1 - by_hand, abs=5e-5)
    assert not flag.passed and not flag.blocking
    assert "other cells in the gate" in flag.reason


def test_a_lymphocyte_gate_that_holds_few_lymphocytes_is_not_reportable() -> None:
    """Without CD45 and with many monocytes, the scatter-only lymphocyte gate held 11% T, B and
    NK cells (NK 10% against 40%, reportable with a warning): under half, the gate failed."""
    spec = SimulationSpec(
        seed=8,
        n_events=100_000,
        nk_percent_of_lymphocytes=40.0,
        cd56bright_percent_of_nk=2.0,
        nkt_percent_of_lymphocytes=15.0,
        b_percent_of_lymphocytes=2.0,
        lymphocyte_percent_of_leukocytes=60.0,
        monocyte_percent_of_leukocytes=15.0,
        debris_fraction=0.0,
        doublet_fraction=0.0,
        with_cd45=False,
    )
    r = analyze_sample(simulate_tube(spec).to_sample()).result
    flag = next(f for f in r.qc if f.check == "lymphosum")
    assert flag.value is not None and flag.value > 0.5, flag.reason  # lymphosum under 50%
    assert flag.blocking and not r.reportable
    assert "the gate did not find the lymphocytes" in flag.reason


def test_a_spillover_of_names_only_is_a_warning_not_uncompensated(tube) -> None:  # type: ignore[no-untyped-def]
    """MACSQuant names the channels it compensated at acquisition in $SPILLOVER, with no
    matrix: a warning that the compensation cannot be checked, not the blocking
    "uncompensated" that withheld every MACSQuant result; a matrix supplied is used as usual."""
    from nkpanel.flow.compensation import compensate

    full = tube.to_sample()
    names = f"{len(full.spillover.channels)}," + ",".join(full.spillover.channels)
    recorded = compensate(full, full.spillover)  # what the instrument wrote
    sample = type(full).from_array(
        recorded, full.pnn, pns=full.pns, metadata={"cyt": "MACSQuant", "spillover": names}
    )
    r = analyze_sample(sample).result
    flag = next(f for f in r.qc if f.check == "compensation")
    assert "as MACSQuant writes" in flag.reason and not flag.blocking and r.reportable
    raw = type(full).from_array(
        full.events, full.pnn, pns=full.pns, metadata={"cyt": "MACSQuant", "spillover": names}
    )
    r = analyze_sample(raw, FlowSettings(spillover=full.spillover)).result
    flag = next(f for f in r.qc if f.check == "compensation")
    assert flag.passed and "supplied" in flag.reason


def test_a_template_run_says_what_the_file_says_about_compensation(tmp_path: Path) -> None:
    """The automated analysis warns that a FACSCalibur's compensation cannot be checked; a
    template run on the same file did not say it."""
    from nkpanel.flow.gatingml import export_gatingml
    from nkpanel.flow.sample import read_fcs
    from nkpanel.flow.simulate import write_fcs
    from tests.flow.fcs_bytes import edit_text_value

    fcs = write_fcs(simulate_tube(SimulationSpec(seed=27, n_events=30_000)), tmp_path / "t.fcs")
    auto = analyze_file(fcs)
    assert auto.tree is not None
    template = export_gatingml(auto.tree, tmp_path / "lab.xml", spillover=auto.values.spillover)
    cyt = read_fcs(fcs).metadata["cyt"]
    fcs.write_bytes(edit_text_value(fcs.read_bytes(), "$CYT", "FACSCalibur".ljust(len(cyt))))
    r = analyze_file(fcs, FlowSettings(template=template)).result
    flag = next(f for f in r.qc if f.check == "compensation")
    assert "FACSCalibur" in flag.reason and "cannot be checked" in flag.reason
    assert not flag.blocking


def test_kept_keywords_lose_the_blanks_writers_pad_them_with(tube) -> None:  # type: ignore[no-untyped-def]
    full = tube.to_sample()
    padded = type(full).from_array(
        full.events,
        full.pnn,
        pns=full.pns,
        spillover=full.spillover,
        metadata={**full.metadata, "tot": f"{full.n_events}              ", "cyt": " LSRII "},
    )
    meta = analyze_sample(padded).result.metadata
    assert meta["tot"] == str(full.n_events) and meta["cyt"] == "LSRII"


def test_a_dump_channel_is_not_cut_as_monocytes(tube) -> None:  # type: ignore[no-untyped-def]
    """A channel labelled "CD14/CD19" (a dump channel) names CD14 and CD19 at once. Cut as
    CD14-, it took the B cells out of the lymphocytes and raised NK % of lymphocytes (13.4
    against 11.9 on the same events labelled CD19), reportable. The events are the same as the
    plain tube's, so the NK % must be the same, and the note says why no CD14 cut was placed."""
    plain = tube.to_sample()
    pns = [ch.pns for ch in plain.channels]
    at = next(i for i, p in enumerate(pns) if p and "CD19" in p)
    pns[at] = "CD14/CD19 PE-Cy7"
    from tests.flow.samples import rebuilt

    dumped = rebuilt(plain, pns=pns)
    ref = analyze_sample(plain, FlowSettings()).result
    a = analyze_sample(dumped, FlowSettings()).result
    assert ref.nk_percent_of_lymphocytes is not None
    assert a.nk_percent_of_lymphocytes == pytest.approx(ref.nk_percent_of_lymphocytes)
    truth = tube.truth["nk_percent_of_lymphocytes"]
    assert abs(a.nk_percent_of_lymphocytes - truth) < 1.0
    assert any("CD14 shares channel" in n and "dump channel" in n for n in a.notes)


@pytest.mark.parametrize(
    ("inputs", "said"),
    [
        ({"beads_per_test": 50_000.0, "sample_volume_ul": 0.05}, "0.05 µL lies outside 1–1,000 µL"),
        ({"lymphocytes_per_ul": 2.0}, "given in ×10⁹/L?"),
        ({"beads_per_test": 50.0, "sample_volume_ul": 50.0}, "beads per test 50 lies"),
    ],
)
def test_absolute_count_inputs_in_other_units_are_refused(
    inputs: dict[str, float], said: str
) -> None:
    """A volume in mL (0.05 for 50 µL) gave 232,287 NK/µL and a lymphocyte count typed as the
    analyser prints it (2.0 ×10⁹/L) 0.24 NK/µL, both reportable. Counts off by 1,000 look
    like any other: such inputs are refused in one line saying which unit they were in."""
    from nkpanel.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(said)):
        AbsoluteCountInputs(**inputs)
    AbsoluteCountInputs(50_000.0, 50.0, 1_800.0)  # the usual inputs pass


def test_nkpanels_gates_resaved_by_flowkit_keep_their_roles(tube, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The README's loop: export the automated gates, adjust them in FlowKit (or FlowJo),
    re-run them as a template. FlowKit re-saves without nkpanel's gate names, leaving the
    Gating-ML ids ("NK_CD56bright", "CD3pos", "B_cells"): these matched no role, and the
    subsets, NK-like T and the lymphosum check were silently dropped. Unchanged gates must give
    the automated analysis's numbers."""
    import flowkit as fk

    from nkpanel.flow.gatingml import export_gatingml
    from nkpanel.flow.simulate import write_fcs

    fcs = write_fcs(tube, tmp_path / "tube.fcs")
    auto = analyze_file(fcs, FlowSettings())
    assert auto.tree is not None
    ours = export_gatingml(auto.tree, tmp_path / "gates.xml", spillover=auto.values.spillover)
    resaved = tmp_path / "resaved.xml"
    with resaved.open("wb") as fh:
        fk.export_gatingml(fk.parse_gating_xml(str(ours)), fh)
    assert b"gate-name" not in resaved.read_bytes()  # FlowKit dropped nkpanel's names
    r = analyze_file(fcs, FlowSettings(template=resaved)).result
    a = auto.result
    assert r.nk_percent_of_lymphocytes == pytest.approx(a.nk_percent_of_lymphocytes)
    assert r.cd56bright_percent_of_nk == pytest.approx(a.cd56bright_percent_of_nk)
    assert r.nk_like_t_percent_of_lymphocytes == pytest.approx(a.nk_like_t_percent_of_lymphocytes)
    assert any(q.check == "lymphosum" for q in r.qc)


@pytest.mark.parametrize(
    ("gate", "role"),
    [("NK_cells", "NK"), ("CD3pos", "CD3+"), ("cd3neg_cd56pos", "NK"), ("B_cells", "B cells")],
)
def test_gate_ids_without_spaces_or_signs_find_their_role(gate: str, role: str) -> None:
    from nkpanel.flow.analyze import _template_roles

    assert _template_roles([f"/Lymphocytes/{gate}"], {}) == {role: f"/Lymphocytes/{gate}"}


def test_a_lab_names_the_gate_of_a_role() -> None:
    from nkpanel.errors import ConfigError, InputError
    from nkpanel.flow.analyze import _template_roles

    gates = ["/Lymphocytes", "/Lymphocytes/MyNK"]
    assert _template_roles(gates, {"NK": "MyNK"})["NK"] == "/Lymphocytes/MyNK"
    # the template's gates listed, so that a misspelling is seen (audit 21)
    with pytest.raises(InputError, match=r"no gate 'Nope' for NK \(its gates: Lymphocytes, MyNK\)"):
        _template_roles(gates, {"NK": "Nope"})
    # roles come through FlowSettings, which spells them and refuses one it does not know
    with pytest.raises(ConfigError, match="--population NKT=MyNK: NKT is not a role; roles are"):
        FlowSettings(template_populations={"NKT": "MyNK"})
    assert FlowSettings(template_populations={"nk": "MyNK"}).template_populations == {"NK": "MyNK"}


def test_a_gate_given_a_role_its_name_gives_another_is_warned() -> None:
    """--population NK="NK T cells" (a CD3+ gate) was taken as NK, 2.88% for 1.68% on the
    FlowSOM workspace, with only the lymphosum warning (audit 17): the result now says the
    gate's name is NK-like T's. A name of no role, or of the role itself, is not warned."""
    from nkpanel.flow.analyze import _roles_named_as_others

    (flag,) = _roles_named_as_others({"NK": "/Singlets2/NK T cells"}, {"NK": "NK T cells"})
    assert not flag.passed and not flag.blocking
    assert "a name of NK-like T, not of NK" in flag.reason
    assert _roles_named_as_others({"NK": "/Lymphs/MyNK"}, {"NK": "MyNK"}) == []
    assert _roles_named_as_others({"NK": "/Lymphs/NK_cells"}, {"NK": "NK_cells"}) == []
    # found by name, not given by hand: nothing to check
    assert _roles_named_as_others({"NK": "/Lymphs/NK T cells"}, {}) == []


def test_a_templates_role_rows_name_the_gate_they_repeat(tube, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A template run lists each gate by its path and again by its role ("NK"), so summing the
    table's counts counted those events twice. The role rows now name the gate they repeat;
    the gate rows name none."""
    from nkpanel.flow.gatingml import export_gatingml
    from nkpanel.flow.simulate import write_fcs

    fcs = write_fcs(tube, tmp_path / "tube.fcs")
    auto = analyze_file(fcs, FlowSettings())
    assert auto.tree is not None
    xml = export_gatingml(auto.tree, tmp_path / "gates.xml", spillover=auto.values.spillover)
    rows = {
        p.population: p for p in analyze_file(fcs, FlowSettings(template=xml)).result.populations
    }
    nk = rows["NK"]
    assert nk.same_events_as is not None and nk.same_events_as.endswith("/NK")
    gate = rows[nk.same_events_as]
    assert gate.same_events_as is None and gate.count == nk.count
    assert all(auto_row.same_events_as is None for auto_row in auto.result.populations)


def _spill_scaled(sample, factor: float, one: tuple[int, int] | None = None):  # type: ignore[no-untyped-def]
    """The sample's own spillover with every off-diagonal coefficient × ``factor``, or only
    coefficient ``one`` (row, column)."""
    from nkpanel.flow.sample import Spillover

    m = sample.spillover.matrix.copy()
    off = ~np.eye(len(m), dtype=bool)
    if one is None:
        m[off] *= factor
    else:
        m[one] *= factor
    return Spillover(sample.spillover.channels, m)


def test_compensation_is_checked_in_the_data(tube, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A wrong matrix (another panel's, another day's) passed the compensation check, which
    only asked where the matrix came from: off-diagonals ×2 gave NK 34% for a truth of 12%,
    reportable. Compensated right, populations negative for a marker share one median at zero
    in its channel (Roederer 2001); the data are now checked for it."""
    from nkpanel.flow.simulate import write_fcs

    fcs = write_fcs(tube, tmp_path / "tube.fcs")
    right = analyze_file(fcs, FlowSettings()).result
    flag = next(q for q in right.qc if q.check == "compensation in the data")
    assert flag.passed and flag.value is not None and flag.value < 0.5
    doubled = _spill_scaled(tube.to_sample(), 2.0)
    wrong = analyze_file(fcs, FlowSettings(spillover=doubled)).result
    flag = next(q for q in wrong.qc if q.check == "compensation in the data")
    assert not flag.passed and flag.blocking and not wrong.reportable
    assert "check the spillover matrix" in flag.reason


@pytest.mark.parametrize(("seed", "nk"), [(1, 30.0), (3, 40.0), (11, 10.0)])
def test_nk_cells_made_cd19_positive_by_a_missing_entry_are_caught(seed: int, nk: float) -> None:
    """A matrix right but for CD16-PE's spillover into CD19-PE-Cy7 (0.10 left out) made
    CD16-bright NK cells CD19-dim: the B-cell cut took them, 30% NK read as 2.4%, and every
    check passed (audit 8). The NK cells found among B cells are what NK % lost."""
    spec = SimulationSpec(
        seed=seed, n_events=100_000, nk_percent_of_lymphocytes=nk, cd45_fluorochrome="V500"
    )
    tube = simulate_tube(spec)
    sample = tube.to_sample()
    assert sample.spillover is not None
    m = sample.spillover.matrix.copy()
    chans = sample.spillover.channels
    m[chans.index("PE-A"), chans.index("PE-Cy7-A")] = 0.0
    right = analyze_sample(sample).result
    flag = next(q for q in right.qc if q.check == "NK cells among B cells")
    assert flag.passed and flag.value is not None and flag.value < 0.5
    wrong = analyze_sample(sample, FlowSettings(spillover=Spillover(chans, m))).result
    flag = next(q for q in wrong.qc if q.check == "NK cells among B cells")
    lost = tube.truth["nk_percent_of_lymphocytes"] - (wrong.nk_percent_of_lymphocytes or 0.0)
    assert lost > 5.0  # the defect, reproduced
    assert not flag.passed and flag.blocking and not wrong.reportable
    assert flag.value == pytest.approx(lost, abs=0.5)
    assert "check the spillover matrix's entries into CD19's channel" in flag.reason


def test_compensation_in_the_data_passes_on_real_expert_data(shared_data: Path) -> None:
    """The real flowsom-68983 file, compensated with its own matrix, passes (its negative
    populations lie at most 0.4 SD from agreement)."""
    f = shared_data / "flowsom-68983" / "68983.fcs"
    if not f.is_file():
        pytest.skip(f"{f} is absent")
    r = analyze_file(f, FlowSettings(marker_overrides={"CD56": "NK1.1"})).result
    flag = next(q for q in r.qc if q.check == "compensation in the data")
    assert flag.passed
    # its B cells hold no NK1.1-bright cells either
    assert next(q for q in r.qc if q.check == "NK cells among B cells").passed


def test_an_implausible_bead_count_withholds_absolute_counts(tube) -> None:  # type: ignore[no-untyped-def]
    """Beads per test typed with two zeros too many (5,000,000) gave 23,229 NK/µL, reportable.
    The lymphocytes the beads give per µL (here by hand: lymphocytes / beads × 5,000,000 / 50)
    must lie where blood counts do (50–100,000/µL), else absolute counts are withheld."""
    sample = tube.to_sample()
    bad = analyze_sample(sample, FlowSettings(counts=AbsoluteCountInputs(5_000_000.0, 50.0)))
    m = {k: int(v.sum()) for k, v in bad.membership.items()}
    flag = next(q for q in bad.result.qc if q.check == "bead count plausible")
    assert flag.value == pytest.approx(m["Lymphocytes"] / m["Beads"] * 5_000_000 / 50, rel=1e-3)
    assert not flag.passed and not flag.blocking
    assert bad.result.nk_cells_per_ul is None and bad.result.reportable
    good = analyze_sample(sample, FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)))
    assert next(q for q in good.result.qc if q.check == "bead count plausible").passed
    assert good.result.nk_cells_per_ul is not None


def test_a_template_without_a_recognised_nk_gate_says_how_to_name_it(tube, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A lab's NK gate named "CD16orCD56" matches no role: the result read "0 gated NK events",
    hiding why. It now says no gate is recognised as NK and how to name one; named with
    --population NK=CD16orCD56, the template gives the automated analysis's NK %."""
    from nkpanel.flow.gatingml import export_gatingml
    from nkpanel.flow.simulate import write_fcs

    fcs = write_fcs(tube, tmp_path / "tube.fcs")
    auto = analyze_file(fcs, FlowSettings())
    assert auto.tree is not None
    xml = export_gatingml(auto.tree, tmp_path / "gates.xml", spillover=auto.values.spillover)
    text = xml.read_text("utf-8")
    text = text.replace('gating:id="NK"', 'gating:id="CD16orCD56"')
    text = text.replace('gating:parent_id="NK"', 'gating:parent_id="CD16orCD56"')
    text = re.sub(r"<[^<>]*gate-name>NK</[^<>]*gate-name>", "", text)  # nkpanel's own name
    lab = tmp_path / "lab.xml"
    lab.write_text(text, "utf-8")
    r = analyze_file(fcs, FlowSettings(template=lab)).result
    assert not r.reportable
    assert any("--population, e.g. NK=" in reason for reason in r.not_reportable_reasons)
    named = analyze_file(
        fcs, FlowSettings(template=lab, template_populations={"NK": "CD16orCD56"})
    ).result
    assert named.nk_percent_of_lymphocytes == pytest.approx(auto.result.nk_percent_of_lymphocytes)


def test_a_population_named_by_a_gate_name_used_twice_is_refused() -> None:
    """FlowJo workspaces often hold "CD56+" under both CD3- and CD3+: --population NK=CD56+
    took the first, the NK-like T gate, silently. A name held by two gates is refused with
    their paths."""
    from nkpanel.errors import ConfigError
    from nkpanel.flow.analyze import _template_roles

    gates = ["/Lymphocytes/CD3+/CD56+", "/Lymphocytes/CD3-/CD56+"]
    with pytest.raises(ConfigError, match="2 gates are named so"):
        _template_roles(gates, {"NK": "CD56+"})
    assert _template_roles(gates, {"NK": gates[1]})["NK"] == gates[1]


@pytest.mark.parametrize(
    "cyt", ["Aurora", "Northern Lights", "NL-3000", "ID7000", "SP6800", "FACSymphony A5 SE"]
)
def test_unmixed_spectral_data_are_not_refused_as_uncompensated(tube, cyt: str) -> None:  # type: ignore[no-untyped-def]
    """A spectral cytometer's export holds dye abundances its software unmixed; with no
    spillover keyword it was withheld as "uncompensated" (audit 8). It is a warning that the
    unmixing cannot be checked, and the unmixed data are still judged by Roederer's rules."""
    from nkpanel.flow.compensation import compensate
    from nkpanel.flow.sample import FlowSample

    sample = tube.to_sample()
    unmixed = FlowSample.from_array(
        compensate(sample),
        sample.pnn,
        pns=sample.pns,
        name="unmixed",
        spillover=None,
        metadata={**sample.metadata, "cyt": cyt},
    )
    r = analyze_sample(unmixed).result
    checks = {q.check: q for q in r.qc}
    flag = checks["compensation"]
    assert not flag.passed and not flag.blocking
    assert f"unmixed by the spectral software of the {cyt}" in flag.reason
    assert checks["compensation in the data"].passed
    assert r.reportable
    assert r.nk_percent_of_lymphocytes == pytest.approx(
        tube.truth["nk_percent_of_lymphocytes"], abs=1.0
    )
    # a matrix supplied for it would mix the abundances anew: said
    again = analyze_sample(unmixed, FlowSettings(spillover=sample.spillover)).result
    flag = next(q for q in again.qc if q.check == "compensation")
    assert not flag.passed and "compensated again with the supplied matrix" in flag.reason
    # raw detector data of the same instrument named nowhere as spectral stay withheld
    raw = FlowSample.from_array(
        sample.events,
        sample.pnn,
        pns=sample.pns,
        name="raw",
        spillover=None,
        metadata={**sample.metadata, "cyt": "FACSCanto II"},
    )
    assert not analyze_sample(raw).result.reportable


@pytest.mark.parametrize(("beads", "agree"), [(50_000.0, True), (500_000.0, False)])
def test_a_bead_count_far_from_the_analysers_is_said(tube, beads: float, agree: bool) -> None:  # type: ignore[no-untyped-def]
    """Beads per test typed ×10 (500,000 for 50,000) gave 2,324 NK/µL: 20,191 lymphocytes/µL
    lie inside the band of every blood count, so nothing was said (audit 8). With the
    analyser's lymphocyte count given too, two counts of one blood a factor 2 apart are, and
    neither count is then given (NK 23/µL, flagged low, had been reported beside a
    dual-platform 235/µL: audit 32)."""
    given = tube.truth["lymphocytes_per_ul_expected"]
    counts = AbsoluteCountInputs(beads, 50.0, lymphocytes_per_ul=given)
    r = analyze_sample(tube.to_sample(), FlowSettings(counts=counts)).result
    flag = next(q for q in r.qc if q.check == "bead and haematology counts agree")
    assert flag.passed is agree and not flag.blocking
    if not agree:  # by construction ×10 from the right count, which the simulator realises
        assert flag.value == pytest.approx(10.0, rel=0.1)
        assert "check beads per test, sample volume and the lymphocyte count" in flag.reason
    assert (r.nk_cells_per_ul is not None) is agree
    # no word of a bead-method count where none is given (review 34)
    by_beads = any("cells/µL by the bead method" in n for n in r.notes)
    assert by_beads is agree
    assert all((p.cells_per_ul is not None) is agree for p in r.populations if p.population == "NK")
    assert r.reportable  # the percentages need no count


def test_a_failed_compensation_check_names_a_fluorescence_gain(tube, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A $PnG of 2 on PE (CD16) divides its values before compensation (FCS 3.1): the matrix,
    measured on undivided values, then leaves CD16 under-compensated and the check blamed the
    matrix alone (audit 8). The gain is named."""
    from nkpanel.flow.simulate import write_fcs

    fcs = write_fcs(tube, tmp_path / "tube.fcs")
    pe = tube.pnn.index("PE-A") + 1
    raw = fcs.read_bytes()
    key = f"$P{pe}G/1.0/".encode()
    assert raw.count(key) == 1
    fcs.write_bytes(raw.replace(key, f"$P{pe}G/4.0/".encode()))  # same length: offsets hold
    r = analyze_file(fcs).result
    flag = next(q for q in r.qc if q.check == "compensation in the data")
    assert not flag.passed
    assert "the file gives $PnG other than 1 on " in flag.reason and "(4)" in flag.reason


def test_a_marker_named_on_two_channels_is_no_other_panel() -> None:
    """Review 25: FITC-A and FITC-H both labelled "CD3 FITC" claim CD3 twice; the panel check
    of a template run took that for another panel and withheld a right result. A channel that
    names the recorded marker stands; one naming another marker does not."""
    import numpy as np

    from nkpanel.flow.analyze import FlowSettings, _template_panel_flags
    from nkpanel.flow.sample import FlowSample

    pnn = ["FSC-A", "FITC-A", "FITC-H", "APC-A"]
    recorded = {"CD3": "FITC-A", "CD56": "APC-A"}
    gated = ("FSC-A", "FITC-A", "APC-A")
    twice = FlowSample.from_array(
        np.zeros((10, 4)), pnn, pns=["", "CD3 FITC", "CD3 FITC", "CD56 APC"]
    )
    assert _template_panel_flags(twice, recorded, gated, FlowSettings()) == []
    other = FlowSample.from_array(
        np.zeros((10, 4)), pnn, pns=["", "CD8 FITC", "CD8 FITC", "CD56 APC"]
    )
    (flag,) = _template_panel_flags(other, recorded, gated, FlowSettings())
    assert flag.blocking and "CD3 was on FITC-A; this file's FITC-A is 'CD8 FITC'" in flag.reason


@pytest.mark.parametrize("dead", ["constant", "noise about zero", "flat band low"])
def test_a_side_scatter_channel_that_recorded_nothing_withholds(dead: str) -> None:
    """Audit 27: SSC-A and SSC-H of a detector switched off or not connected read NK 65% of
    lymphocytes for 17%, reportable (the granulocytes' CD16 counted as NK), with a lymphosum
    warning only: withheld, as for a file with no side-scatter channel, saying why."""
    tube = simulate_tube(SimulationSpec(seed=6, n_events=60_000, nk_percent_of_lymphocytes=17))
    sample = tube.to_sample()
    rng = np.random.default_rng(0)
    n = sample.n_events
    fill = {
        "constant": lambda: np.full(n, 1000.0),
        "noise about zero": lambda: np.abs(rng.normal(0.0, 30.0, n)),
        "flat band low": lambda: rng.uniform(400.0, 600.0, n),
    }[dead]
    events = sample.events.copy()
    for name in ("SSC-A", "SSC-H"):
        events[:, sample.pnn.index(name)] = fill()
    a = analyze_sample(dataclasses.replace(sample, events=events))
    assert not a.result.reportable
    (reason,) = (r for r in a.result.not_reportable_reasons if "no side scatter recorded" in r)
    assert reason.startswith("SSC-A") and "percentages of lymphocytes cannot be reported" in reason
    truth = analyze_sample(sample).result  # the tube as recorded: reportable, near the truth
    assert truth.reportable and truth.nk_percent_of_lymphocytes == pytest.approx(17, abs=1)


@pytest.mark.shared_data
def test_side_scatter_of_real_lymphocytes_is_not_taken_for_a_dead_channel(
    shared_data: Path,
) -> None:
    """The check must not take real side scatter for none: 68983.fcs holds only lymphocytes
    (SSC-A 5th–95th percentile 19,700–66,900; its SSC-H a narrow 67,200–75,400)."""
    from nkpanel.flow.autogate import side_scatter_missing
    from nkpanel.flow.sample import read_fcs

    sample = read_fcs(shared_data / "flowsom-68983" / "68983.fcs")
    for name in ("SSC-A", "SSC-H", "SSC-W"):
        i = sample.pnn.index(name)
        assert side_scatter_missing(sample.channels[i], sample.events[:, i]) is None, name


@pytest.mark.shared_data
@pytest.mark.parametrize("kind", ["logicle", "asinh"])
def test_values_exported_already_transformed_are_refused(
    shared_data: Path, tmp_path: Path, kind: str
) -> None:
    """An export of transformed values (flowCore's, or FlowJo's "export transformed") was
    compensated and transformed again: on flowsom's logicle copy of 68983, NK F1 0.69 against
    the expert (0.96 on the raw file), the reason given naming the lymphocyte gate (audit 31).
    It is refused, naming the file and the cause; the raw file is analysed as before."""
    if kind == "logicle":
        raw = read_fcs(shared_data / "flowsom-68983" / "68983.fcs")
        scale = Logicle(t=262144, w=0.5, m=4.5, a=0)
    else:
        raw = read_fcs(shared_data / "cytonorm-cytof" / "Gates_PTLG021_Unstim_Control_2.fcs")
        scale = Asinh(5.0)  # mass cytometry's arcsinh(x / 5)
    events = np.array(raw.events, copy=True)
    for c in raw.channels:
        if c.pns and not c.pnn.upper().startswith(("FSC", "SSC", "TIME")):
            events[:, c.index] = scale(events[:, c.index])
    path = tmp_path / "exported.fcs"
    path.write_bytes(build_fcs(events, raw.pnn, pns=raw.pns, pnr=[c.pnr for c in raw.channels]))
    with pytest.raises(InputError, match=r"exported\.fcs: the values are already transformed"):
        analyze_file(path)
    settings = FlowSettings(marker_overrides={"CD56": "NK1/1"} if kind == "logicle" else {})
    assert analyze_sample(raw, settings).result.nk_percent_of_lymphocytes is not None


def test_no_percentage_of_cd45_positive_leukocytes_without_cd45() -> None:
    """Without CD45 the leukocyte gate is drawn on scatter and holds debris too: NK "% of CD45+
    leukocytes" read 3.30 for a truth of 3.60, and leukocytes/µL were counted through it
    (audit 33). Nothing is given as a share of it; with CD45 both are given."""
    spec = SimulationSpec(seed=61, with_cd45=False)
    a = analyze_sample(
        simulate_tube(spec).to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0))
    )
    assert a.result.nk_percent_of_leukocytes is None
    assert all(p.percent_of_leukocytes is None for p in a.result.populations)
    leukocytes = next(p for p in a.result.populations if p.population == "Leukocytes")
    assert leukocytes.cells_per_ul is None
    assert a.result.nk_cells_per_ul is not None  # through the lymphocytes, as before
    assert any("no percentage of CD45+ leukocytes" in n for n in a.result.notes)
    b = analyze_sample(
        simulate_tube(dataclasses.replace(spec, with_cd45=True)).to_sample(),
        FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)),
    )
    assert b.result.nk_percent_of_leukocytes is not None


def test_nk_like_t_cells_as_most_t_cells_withhold_the_result() -> None:
    """NK-like T cells are a few percent of blood T cells; an automated result with most CD3+
    cells CD56+ has a cut inside a population (NK 0.5% with NK-like T 99% was reportable on a
    real Aurora PBMC, audit 31) and is withheld for review. Here the simulated blood really
    holds them (62% of T cells, as a CD3+CD56+ expansion might): it is the lab's to review."""
    many = simulate_tube(
        SimulationSpec(seed=3, nkt_percent_of_lymphocytes=50.0, b_percent_of_lymphocytes=10.0)
    )
    a = analyze_sample(many.to_sample())
    flag = next(f for f in a.result.qc if f.check == "NK-like T cells")
    assert flag.blocking and not a.result.reportable and flag.value is not None
    assert flag.value > 0.5 and "review the gates" in flag.reason
    assert "or an expansion of CD3+ CD56+ T cells" in flag.reason  # which it may be
    b = analyze_sample(simulate_tube(SimulationSpec(seed=3)).to_sample())
    assert all(f.check != "NK-like T cells" for f in b.result.qc)


def test_a_clog_trimmed_at_the_start_is_said_in_the_flow_rate_check() -> None:
    """A stream at 0.1× over the first 30% of the run is trimmed by the Time gate, and the
    check read "unstable over 0% of the acquisition time", the trim only in a note (audit 32).
    The share trimmed is now in the check's reason; the result, judged on the rest, stands."""
    spec = SimulationSpec(seed=5, clog_at=0.0, clog_duration_fraction=0.3, clog_rate_factor=0.1)
    a = analyze_sample(simulate_tube(spec).to_sample())
    flag = next(f for f in a.result.qc if f.check == "flow rate")
    trimmed = re.search(r"; ([\d.]+)% more was unstable at the start or end", flag.reason)
    assert trimmed is not None and 20 <= float(trimmed.group(1)) <= 40


def test_limits_are_said_with_the_digits_they_were_given() -> None:
    """A lab's 0.5% saturation limit was said as "limit 0%", and 3.99% for the flow rate as
    "limit 4%" beside a failing 4% (audit 32)."""
    lim = QCLimits(max_saturated_fraction=0.005, max_unstable_time_fraction=0.0399)
    a = analyze_sample(
        simulate_tube(SimulationSpec(seed=22, clog_at=0.4)).to_sample(), FlowSettings(qc=lim)
    )
    reasons = {f.check: f.reason for f in a.result.qc}
    assert "(limit 0.5%)" in reasons["saturation"]
    assert "(limit 3.99%)" in reasons["flow rate"]


def test_raw_spectral_detectors_are_sent_to_be_unmixed(tmp_path: Path) -> None:
    """A Cytek Aurora's raw detector export (V1-A…, no stain names) failed with "map one with
    --marker CD3=LABEL": one detector of a spectral instrument holds many dyes (audit 31)."""
    rng = np.random.default_rng(0)
    names = ["FSC-A", "SSC-A", "V1-A", "V2-A", "B1-A", "R1-A"]
    data = build_fcs(rng.uniform(0, 1e5, (200, 6)), names, keywords={"$CYT": "Aurora"})
    path = tmp_path / "raw-detectors-synthetic.fcs"
    path.write_bytes(data)
    with pytest.raises(MarkerError, match=r"raw-detectors-synthetic\.fcs: no channel names a "):
        analyze_file(path)


def test_a_side_scatter_range_far_above_its_data_is_named_as_a_cause() -> None:
    """$PnR 2^32 over float data put the whole side scatter under 0.5% of its range, and the
    result was withheld as "no side scatter recorded", blaming the detector (audit 33): the
    reason now names the range too where the values spread as side scatter does, and not
    where they lie in a narrow band, as a dead detector's do."""
    from nkpanel.flow.autogate import side_scatter_missing
    from nkpanel.flow.sample import Channel

    rng = np.random.default_rng(1)
    scatter = np.exp(rng.normal(np.log(30_000.0), 0.9, 5000))  # lymphocytes to granulocytes
    absurd = side_scatter_missing(Channel(3, "SSC-A", pnr=2.0**32), scatter)
    assert absurd is not None and "or its $PnR is wrong" in absurd
    band = side_scatter_missing(Channel(3, "SSC-A"), rng.uniform(400.0, 600.0, 5000))
    assert band is not None and "$PnR" not in band


@pytest.mark.parametrize(("pne", "noted"), [((0.0, 0.0), True), ((4.0, 1.0), False)])
def test_linear_fluorescence_of_an_analog_cytometer_is_noted(
    pne: tuple[float, float], noted: bool
) -> None:
    """A FACSCalibur file whose 1,024-channel fluorescence carries $PnE 0,0 (or none) was read
    as linear channel numbers without a word (audit 33 finding 18: NK 11.34% for 11.60); its
    log amplifiers' output is rarely linear."""
    from nkpanel.flow.analyze import _linear_analog_note
    from nkpanel.flow.markers import resolve_markers
    from nkpanel.flow.sample import FlowSample

    sample = FlowSample.from_array(
        np.zeros((10, 4)),
        ["FSC-H", "SSC-H", "FL1-H", "FL4-H"],
        pns=["", "", "CD3 FITC", "CD56 APC"],
        metadata={"cyt": "FACSCalibur"},
    )
    chans = tuple(
        dataclasses.replace(c, pnr=1024.0, pne=pne if c.pnn.startswith("FL") else (0.0, 0.0))
        for c in sample.channels
    )
    sample = dataclasses.replace(sample, channels=chans)
    note = _linear_analog_note(sample, resolve_markers(sample, ["CD3", "CD56"]))
    assert bool(note) is noted
    if noted:
        assert note[0].startswith("FL1-H, FL4-H: $PnE says linear")
    digital = dataclasses.replace(sample, metadata={"cyt": "FACSCanto II"})
    assert _linear_analog_note(digital, resolve_markers(digital, ["CD3", "CD56"])) == ()
