"""Automated NK gating scored against outside truth: the simulator's per-event labels, the
expert's manual gates on flowsom-68983, and plausibility on real human mass cytometry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from nkpanel.flow.analyze import (
    AbsoluteCountInputs,
    FlowAnalysis,
    FlowSettings,
    analyze_file,
    analyze_sample,
)
from nkpanel.flow.autogate import LYMPHOCYTE_SCATTER, POPULATIONS, AutoGateSettings
from nkpanel.flow.gates import Gate, PolygonGate, RangeGate
from nkpanel.flow.sample import FlowSample, read_fcs
from nkpanel.flow.simulate import SimulatedTube, SimulationSpec, simulate_tube, write_fcs
from tests.flow.fcs_bytes import edit_text_value
from tests.flow.samples import rebuilt

NK_LABELS = ("NK_bright", "NK_dim", "NK_CD56neg")

DESIGNS = {
    "typical": {},
    "low NK": {"nk_percent_of_lymphocytes": 3.0, "n_events": 120_000},
    "high NK": {"nk_percent_of_lymphocytes": 30.0, "cd56bright_percent_of_nk": 12.0},
    "no CD45": {"with_cd45": False},
    "TBNK combined CD16+56": {"combined_cd16_cd56": True},
    "no CD19": {"with_cd19": False, "nk_percent_of_lymphocytes": 18.0},
    "no beads": {"with_beads": False},
    "clog": {"clog_at": 0.5},
    "CD56- CD16+ NK": {"cd56neg_percent_of_nk": 12.0, "cd56bright_percent_of_nk": 6.0},
}


def f1(truth: np.ndarray, pred: np.ndarray) -> float:
    tp = int(np.sum(truth & pred))
    return 2 * tp / (int(truth.sum()) + int(pred.sum()))


@pytest.mark.parametrize("seed", [11, 12])
@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_simulated_nk_percent_within_one_point(design: str, seed: int, tmp_path: Path) -> None:
    spec = SimulationSpec(seed=seed, **DESIGNS[design])  # type: ignore[arg-type]
    tube = simulate_tube(spec)
    path = write_fcs(tube, tmp_path / "tube.fcs")
    a = analyze_file(path, FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)))
    truth_nk = np.isin(tube.labels, NK_LABELS)
    assert a.result.nk_percent_of_lymphocytes is not None
    # the bar: the true NK % recovered within 1 percentage point
    assert abs(a.result.nk_percent_of_lymphocytes - tube.truth["nk_percent_of_lymphocytes"]) < 1.0
    assert f1(truth_nk, a.membership["NK"]) > 0.95
    if not spec.combined_cd16_cd56:
        bright = tube.truth["cd56bright_percent_of_nk"]
        assert a.result.cd56bright_percent_of_nk is not None
        assert abs(a.result.cd56bright_percent_of_nk - bright) < 2.0
        dim = tube.truth["cd56dim_percent_of_nk"]
        assert a.result.cd56dim_percent_of_nk is not None
        assert abs(a.result.cd56dim_percent_of_nk - dim) < 2.0
    if spec.with_beads:
        # bead-method NK count against the count computed from the true labels
        # NK cells are large granular lymphocytes: the largest few % lie past the SSC valley
        # between lymphocytes and monocytes and leave with the monocytes, so the count runs up
        # to about 6% low when NK are few (measured: -5.7% in the low-NK design); the issue sets
        # no bar for counts, this is the measured limit
        expected = tube.truth["nk_per_ul_bead_method"]
        assert a.result.nk_cells_per_ul == pytest.approx(expected, rel=0.08)


def test_doublets_debris_and_beads_are_kept_out_of_lymphocytes() -> None:
    tube = simulate_tube(SimulationSpec(seed=5))
    a = analyze_sample(tube.to_sample())
    lymph_labels = set(np.unique(tube.labels[a.membership["Lymphocytes"]]))
    assert not lymph_labels & {"bead", "debris", "doublet", "granulocyte", "saturated"}
    assert set(np.unique(tube.labels[a.membership["Beads"]])) == {"bead"}


def test_cd56dim_subset_leaves_out_cd56_negative_nk() -> None:
    """CD56dim CD16+ (ARUP 2013805) has a CD56 lower bound: CD56- CD16+ cells are NK by the
    'CD56+ and/or CD16+' rule but in neither CD56 subset."""
    tube = simulate_tube(SimulationSpec(seed=6))
    a = analyze_sample(tube.to_sample())
    assert a.tree is not None and a.markers is not None
    dim_gate = a.tree["NK CD56dim"]
    nk_gate = a.tree["NK"]
    assert dim_gate.lo[0] is not None
    # the subset's CD56 bound is the NK gate's CD56 cut (the polygon's inner corner)
    assert isinstance(nk_gate, PolygonGate)
    assert dim_gate.lo[0] == pytest.approx(nk_gate.vertices[1][0])
    cd56 = a.compensated[:, a.sample.index_of(a.markers.markers["CD56"])]
    assert np.all(cd56[a.membership["NK CD56dim"]] >= dim_gate.lo[0])


def test_logicle_display_scale_agrees_with_flowutils() -> None:
    """The tabulated logicle used for densities equals flowutils' exact transform (Parks et
    al. 2006) to 1e-6 of the display range, inside its table and beyond it."""
    from flowutils import transforms

    tube = simulate_tube(SimulationSpec(seed=4, n_events=20_000))
    a = analyze_sample(tube.to_sample())
    assert a.gating is not None and a.markers is not None
    cd56 = a.markers.markers["CD56"]
    scale = a.gating.scales[cd56]
    x = np.r_[-(10.0 ** np.linspace(-2, 6, 400)), 0.0, 10.0 ** np.linspace(-2, 9, 600)]
    s = scale.t, scale.m, scale.w  # type: ignore[attr-defined]
    exact = transforms.logicle(x.reshape(-1, 1), [0], t=s[0], m=s[1], w=s[2], a=0.0).ravel()
    np.testing.assert_allclose(scale(x), exact, rtol=0, atol=1e-6)


def test_gate_tree_reproduces_membership() -> None:
    tube = simulate_tube(SimulationSpec(seed=3))
    a = analyze_sample(tube.to_sample())
    assert a.tree is not None
    assert set(a.tree.names) <= set(POPULATIONS)  # the documented population names
    col = {c.pnn: c.index for c in a.sample.channels}
    again = a.tree.evaluate(a.compensated, a.sample.events, col)
    by_column = a.tree.evaluate(a.values, a.sample.events, col)  # compensated columns in place
    for name, mask in a.membership.items():
        assert np.array_equal(again[name], mask), name
        assert np.array_equal(by_column[name], mask), name


@pytest.mark.parametrize("saturated", [0.0, 0.01])  # 1%: the Beads gate bounds SSC too
def test_exported_gates_match_flowkit_event_for_event(tmp_path: Path, saturated: float) -> None:
    flowkit = pytest.importorskip("flowkit")
    from nkpanel.flow.gatingml import export_gatingml
    from nkpanel.flow.template import apply_template, load_template

    tube = simulate_tube(SimulationSpec(seed=4, n_events=30_000, saturate_fraction=saturated))
    path = write_fcs(tube, tmp_path / "tube.fcs")
    a = analyze_file(path)
    assert a.tree is not None
    xml = export_gatingml(a.tree, tmp_path / "gates.xml", spillover=a.sample.spillover)
    applied = apply_template(load_template(xml), path)
    assert flowkit is not None
    for gate in a.tree.gates:
        theirs = applied.membership[gate.name]
        assert np.array_equal(theirs, a.membership[gate.name]), gate.name
    beads = next(g for g in a.tree.gates if g.name == "Beads")
    assert isinstance(beads, RangeGate) and beads.dims[-1].channel == "SSC-A"
    assert beads.hi[-1] is not None  # events on the top of SSC are kept out of the beads


def expert_nk_labels(shared: Path) -> np.ndarray:
    lines = (shared / "flowsom-68983" / "gatingResult.csv").read_text().splitlines()
    return np.array([ln.strip().strip('"') for ln in lines])


@pytest.mark.shared_data
def test_flowsom_nk_against_the_expert(shared_data: Path) -> None:
    """NK1.1 stands for CD56; the expert's NK gate is CD3- NK1.1+ inside Singlets2 (312)."""
    labels = expert_nk_labels(shared_data)
    a = analyze_file(
        shared_data / "flowsom-68983" / "68983.fcs",
        FlowSettings(marker_overrides={"CD56": "NK1.1"}),
    )
    truth = labels == "NK cells"
    assert truth.sum() == 312
    score = f1(truth, a.membership["NK"])
    assert score >= 0.90, score
    expert_pct = 100.0 * 312 / 18_585  # NK of the expert's Singlets2 (lymphocyte singlets)
    ours = a.result.nk_percent_of_lymphocytes
    assert ours is not None
    assert abs(ours - expert_pct) / expert_pct <= 0.10, (ours, expert_pct)
    # the panel has no CD16: no subsets, and the result says why they are missing
    assert a.result.cd56bright_percent_of_nk is None
    assert any("no CD16 channel" in n for n in a.result.notes)


@pytest.mark.shared_data
def test_human_mass_cytometry_runs_with_plausible_nk(shared_data: Path) -> None:
    files = sorted((shared_data / "cytonorm-cytof").glob("*.fcs"))
    assert len(files) == 6
    for path in files:
        a = analyze_file(path)
        assert a.result.cytometry == "mass"
        nk = a.result.nk_percent_of_lymphocytes
        # adult peripheral-blood NK: 4-26 % (ARUP 0092404) and 5-32.5 % (ARUP 2013805); a
        # 1,000-event file is noisy, so accept 2-40 %
        assert nk is not None and 2.0 <= nk <= 40.0, (path.name, nk)
        # 1,000 events cannot give enough NK events: the result must say so, not pass silently
        assert not a.result.reportable
        assert any("NK events" in r for r in a.result.not_reportable_reasons)


@pytest.mark.shared_data
def test_mass_cytometry_zeros_moved_by_a_normalisation_are_still_zeros(shared_data: Path) -> None:
    """CytoNorm and other normalisations move a channel's zero counts to a small constant.
    That pile stood as the negative peak: on the normalised copies of these files (shipped in
    cytonormpy) NK came out 0.3% and 10.9% for 15.5% and 15.8%, and a third file failed
    (audit 31). Truth: the same events with their zeros at 0, as nkpanel reads the originals."""
    for path in sorted((shared_data / "cytonorm-cytof").glob("*.fcs")):
        original = read_fcs(path)
        events = np.array(original.events, copy=True)
        for j, channel in enumerate(original.channels):
            col = events[:, j]
            positive = col[col > 0]
            if channel.pns and positive.size:  # a stained channel: zeros to below its counts
                col[col == 0] = positive.min() / 2
        moved = analyze_sample(rebuilt(original, events=events))
        kept = analyze_sample(original)
        for population in ("Lymphocytes", "CD3-", "NK", "NK-like T", "B cells"):
            assert np.array_equal(moved.membership[population], kept.membership[population])
        assert any("taken as zero counts" in n for n in moved.result.notes)
        assert not any("taken as zero counts" in n for n in kept.result.notes)


def test_height_only_scatter_of_older_instruments() -> None:
    """FACSCalibur-era files record FSC-H and SSC-H only: lymphocytes come from SSC-H, and the
    missing singlet gate is said, not silently skipped."""
    from nkpanel.flow.sample import FlowSample

    tube = simulate_tube(SimulationSpec(seed=8))
    full = tube.to_sample()
    keep = [c.index for c in full.channels if c.pnn not in ("FSC-A", "SSC-A")]
    sample = FlowSample.from_array(
        full.events[:, keep],
        [full.channels[i].pnn for i in keep],
        pns=[full.channels[i].pns for i in keep],
        name="height-only",
        spillover=full.spillover,
        metadata=full.metadata,
    )
    a = analyze_sample(sample)
    assert any("FSC-A/FSC-H" in n for n in a.result.notes)
    lymph = _scatter_gate(a)
    assert lymph is not None and "SSC-H" in [d.channel for d in lymph.dims]
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None
    assert abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 1.0


def test_log_amplified_integer_fcs2_file(tmp_path: Path) -> None:
    """An FCS 2.0 file as older analogue instruments wrote it: 10-bit integers, fluorescence on
    4-decade log amplifiers ($PnE 4,1), scatter linear. Values decode to 1…10⁴, above $PnR."""
    from tests.flow.fcs_bytes import build_fcs

    tube = simulate_tube(SimulationSpec(seed=9, n_events=60_000))
    fluor = set(tube.spillover.channels)
    stored = np.empty_like(tube.events)
    pne, pnr = [], []
    for j, name in enumerate(tube.pnn):
        x = tube.events[:, j]
        if name in fluor:
            # 1024 channels over 4 decades of a 0…262143 signal rescaled to 1…10^4
            scaled = np.clip(x / 262144.0 * 1e4, 1.0, 1e4)
            stored[:, j] = np.clip(np.round(np.log10(scaled) / 4 * 1024), 0, 1023)
            pne.append("4,1")
        elif name == "Time":
            stored[:, j] = np.clip(np.round(x / x.max() * 1023), 0, 1023)
            pne.append("0,0")
        else:
            stored[:, j] = np.clip(np.round(x / 256.0), 0, 1023)
            pne.append("0,0")
        pnr.append(1024)
    spill = ",".join(
        [str(len(tube.spillover.channels)), *tube.spillover.channels]
        + [repr(float(v)) for v in tube.spillover.matrix.ravel()]
    )
    data = build_fcs(
        stored,
        list(tube.pnn),
        version="2.0",
        datatype="I",
        bits=16,
        pns=list(tube.pns),
        pne=pne,
        pnr=pnr,
        keywords={"SPILL": spill},
    )
    path = tmp_path / "calibur_like.fcs"
    path.write_bytes(data)
    a = analyze_file(path)
    assert a.sample.version == "2.0"
    sat = next(f for f in a.result.qc if f.check == "saturation")
    assert sat.passed, sat.reason  # decoded values reach 10^4 without being "saturated"
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None
    assert abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 1.0, nk


def test_gates_found_with_a_supplied_matrix_say_they_are_compensated() -> None:
    """A matrix supplied for a file without one: the gates record their channels as
    compensated, so re-evaluating (or exporting) them gives the same events."""
    from nkpanel.flow.sample import FlowSample

    tube = simulate_tube(SimulationSpec(seed=14, n_events=30_000))
    with_spill = tube.to_sample()
    assert with_spill.spillover is not None
    bare = FlowSample.from_array(
        with_spill.events, with_spill.pnn, pns=[c.pns for c in with_spill.channels]
    )
    a = analyze_sample(bare, FlowSettings(spillover=with_spill.spillover))
    assert a.tree is not None
    assert a.tree["NK"].dims[0].compensated
    col = {c.pnn: c.index for c in bare.channels}
    again = a.tree.evaluate(a.compensated, bare.events, col)
    for name, mask in a.membership.items():
        assert np.array_equal(again[name], mask), name


def _calibur_file(
    tube: SimulatedTube, tmp_path: Path, baseline: float, *, compensated: bool
) -> Path:
    """``tube`` as a FACSCalibur records it: FCS 2.0, 1,024 channels, fluorescence
    log-amplified over 4 decades with negatives ``baseline`` units above zero, and compensated
    by the analog electronics (or with them switched off). Synthetic."""
    from nkpanel.flow.compensation import compensate
    from tests.flow.fcs_bytes import build_fcs

    sample = tube.to_sample()
    # what the analog circuit passes on
    values = compensate(sample, sample.spillover) if compensated else sample.events
    fluor = set(tube.spillover.channels)
    keep = [j for j, name in enumerate(tube.pnn) if name not in ("FSC-A", "SSC-A")]
    stored, pne, pnr = [], [], []
    for j in keep:
        name, x = tube.pnn[j], values[:, j]
        if name in fluor:
            # the digital 0…262143 range as 4 decades, negatives ``baseline`` units above
            # zero (the first decade), 256 channels per decade
            analog = x / 262144.0 * 1e4 + baseline
            stored.append(np.clip(np.round(256 * np.log10(np.maximum(analog, 1.0))), 0, 1023))
            pne.append("4,0")
            pnr.append(1024)
        elif name == "Time":
            stored.append(np.round(tube.events[:, j]))  # ticks
            pne.append("0,0")
            pnr.append(65536)
        else:
            stored.append(np.clip(np.round(x / 256.0), 0, 1023))
            pne.append("0,0")
            pnr.append(1024)
    data = build_fcs(
        np.column_stack(stored),
        [tube.pnn[j] for j in keep],
        version="2.0",
        datatype="I",
        bits=16,
        byteorder="big",
        pns=[tube.pns[j] for j in keep],
        pne=pne,
        pnr=pnr,
        keywords={"$CYT": "FACSCalibur (nkpanel synthetic)", "$TIMESTEP": "0.01"},
    )
    path = tmp_path / "calibur-synthetic.fcs"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("seed", "baseline"),
    [(0, 3.0), (1, 3.0), (2, 3.0), (0, 1.0)],
    ids=["seed0", "seed1", "seed2", "seed0-half-clipped"],
)
def test_analog_compensated_log_data_like_a_facscalibur(
    tmp_path: Path, seed: int, baseline: float
) -> None:
    """A FACSCalibur records fluorescence compensated by its analog electronics, then
    log-amplified over 4 decades into 1,024 channels, with no matrix in the file. Negative
    cells sit in the first decade (``baseline`` units above zero) and the dimmest pile up on
    channel 0; every dim value stands on a ladder of discrete channels. Before cut placement
    censored the pile and spread each value over its channel, NK % came out at 0-1% for most
    such tubes (truth ≈ 12%). With a baseline of 1 about half the negatives are clipped, and
    NK cells, spread by compensating their bright CD16 PE, stood as a dim CD19 peak of their
    own: the CD19 cut now falls below the brightest (B cell) peak."""
    tube = simulate_tube(SimulationSpec(seed=seed, n_events=50_000))
    path = _calibur_file(tube, tmp_path, baseline, compensated=True)
    r = analyze_file(path).result
    assert r.nk_percent_of_lymphocytes is not None
    assert abs(r.nk_percent_of_lymphocytes - tube.truth["nk_percent_of_lymphocytes"]) < 1.0
    assert r.reportable, r.not_reportable_reasons
    flag = next(f for f in r.qc if f.check == "compensation")
    assert "analog electronics" in flag.reason and not flag.blocking


@pytest.mark.parametrize("seed", [0, 3, 4])
def test_saturated_clumps_leave_singlets_and_beads_alone(seed: int) -> None:
    """1% of events saturated on both scatters (clumps; under the 2% saturation limit, so the
    result stays reportable): their height/area ratio of exactly 1 was a spike the singlet cut
    landed on (NK/µL 48-55 against 238-252 for seeds 3 and 4, reportable), and their bright
    colours joined the beads (+8%) or hid them (seed 0: no bead gate)."""
    tube = simulate_tube(SimulationSpec(seed=seed, n_events=100_000, saturate_fraction=0.01))
    labels = np.asarray(tube.label_names)[tube.label_codes]
    counts = AbsoluteCountInputs(50_000.0, 50.0)
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=counts))
    beads = a.membership["Beads"]
    assert not np.any(beads & (labels == "saturated"))
    assert int(beads.sum()) == pytest.approx(int((labels == "bead").sum()), rel=0.005)
    per_ul = a.result.nk_cells_per_ul
    assert per_ul is not None and a.result.reportable
    assert per_ul == pytest.approx(tube.truth["nk_per_ul_bead_method"], rel=0.05)


MONOCYTE_DESIGNS = {
    # many lymphocytes, much debris: 39% of "NK" were monocytes before
    "CD16 channel": (
        SimulationSpec(
            seed=8559,
            n_events=300_000,
            nk_percent_of_lymphocytes=5.0,
            b_percent_of_lymphocytes=2.0,
            lymphocyte_percent_of_leukocytes=60.0,
            monocyte_percent_of_leukocytes=2.0,
            debris_fraction=0.3,
            with_beads=False,
        ),
        0.1,
        1.0,
    ),
    # a TBNK kit's combined CD16+56 channel, few lymphocytes, much debris: 31.4% for 24.9%
    "CD16+56 channel": (
        SimulationSpec(
            seed=8268,
            n_events=300_000,
            nk_percent_of_lymphocytes=25.0,
            cd56bright_percent_of_nk=20.0,
            b_percent_of_lymphocytes=30.0,
            lymphocyte_percent_of_leukocytes=20.0,
            monocyte_percent_of_leukocytes=2.0,
            debris_fraction=0.3,
            saturate_fraction=0.015,
            combined_cd16_cd56=True,
        ),
        0.05,
        1.5,
    ),
}


@pytest.mark.parametrize("design", sorted(MONOCYTE_DESIGNS))
def test_cd16_dim_monocytes_in_the_lymphocyte_gate_are_not_nk(design: str) -> None:
    """Monocytes that fall in the SSC-low gate are CD3- and CD16-dim: a cut in the valley just
    above the negatives took them for NK (NK 7.9% against 5.0% on a CD16 channel; 31.4%
    against 24.9%, NK/µL +38%, on a combined CD16+56 channel). Where three peaks stand, NK
    cells are the brightest (synthetic designs)."""
    spec, share, points = MONOCYTE_DESIGNS[design]
    tube = simulate_tube(spec)
    labels = np.asarray(tube.label_names)[tube.label_codes]
    a = analyze_sample(tube.to_sample(), FlowSettings())
    nk = a.membership["NK"]
    assert np.count_nonzero(nk & (labels == "monocyte")) < share * np.count_nonzero(nk)
    got = a.result.nk_percent_of_lymphocytes
    assert got is not None and abs(got - tube.truth["nk_percent_of_lymphocytes"]) < points


@pytest.mark.parametrize("channel", ["FSC", "SSC"])
def test_beads_near_the_top_of_a_scatter_are_all_counted(channel: str) -> None:
    """A bead lot or a scatter gain that puts beads at 90% of the top pins a few of them (4%
    here, under the 2%-of-events saturation limit): they are still beads. On FSC only clumps
    (pinned on SSC as well) are kept out; on SSC the bound is dropped, with a note."""
    from nkpanel.flow.sample import FlowSample
    from nkpanel.flow.simulate import TOP

    tube = simulate_tube(SimulationSpec(seed=0, n_events=100_000))
    labels = np.asarray(tube.label_names)[tube.label_codes]
    sample = tube.to_sample()
    events = np.array(sample.events)
    beads = labels == "bead"
    for name in (f"{channel}-A", f"{channel}-H"):
        j = sample.index_of(name)
        at_90 = events[beads, j] / np.median(events[beads, j]) * 0.9 * TOP
        events[beads, j] = np.minimum(TOP, at_90)
    moved = FlowSample.from_array(
        events, sample.pnn, pns=sample.pns, spillover=sample.spillover, metadata=sample.metadata
    )
    counts = AbsoluteCountInputs(50_000.0, 50.0)
    a = analyze_sample(moved, FlowSettings(counts=counts))
    assert int(a.membership["Beads"].sum()) == int(beads.sum())
    assert a.result.reportable
    said = any("beads reach the top of SSC-A" in n for n in a.result.notes)
    assert said is (channel == "SSC")


@pytest.mark.parametrize("channel", ["CD3", "CD56", "CD19"])
def test_counting_beads_dim_on_one_channel_are_still_found(channel: str) -> None:
    """A bead lot dim on one channel (there at about 150, where cells are) was missed by a
    gate asking for beads bright on every channel; the beads were then taken for CD45+ cells
    and NK % came out 0.3–1.1 (truth 12.1). Beads bright on all channels but one are beads."""
    from nkpanel.flow.markers import resolve_markers

    tube = simulate_tube(SimulationSpec(seed=7, n_events=100_000))
    sample = tube.to_sample()
    pnn = resolve_markers(sample, [channel]).channel_for(channel)
    at = [c.pnn for c in sample.channels].index(pnn)
    beads = tube.labels == "bead"
    events = sample.events.copy()
    events[beads, at] = np.random.default_rng(0).lognormal(np.log(150), 0.5, int(beads.sum()))
    dim = rebuilt(sample, events=events)
    a = analyze_sample(dim, FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)))
    assert f1(beads, a.membership["Beads"]) > 0.99
    assert any(f"dim on {pnn}" in n for n in a.result.notes)
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 1.5
    assert a.result.nk_cells_per_ul == pytest.approx(tube.truth["nk_per_ul_bead_method"], rel=0.1)


def test_a_tube_without_beads_gets_no_bead_gate() -> None:
    a = analyze_sample(simulate_tube(SimulationSpec(seed=7, with_beads=False)).to_sample())
    assert "Beads" not in a.membership or not a.membership["Beads"].any()
    assert not any("counting beads are dim" in n for n in a.result.notes)


@pytest.mark.parametrize("bright", [0.7, 1.5, 2.5])
@pytest.mark.parametrize("seed", [4, 5])
def test_a_rare_cd56bright_subset_is_found(bright: float, seed: int) -> None:
    """With CD56bright under ~2.5% of NK there is no valley above the dim peak, and the cut
    (the dim peak + 3 SD of its lower side) was taken over all NK cells: the CD56- CD16+ NK
    cells widened that side and the cut passed over the bright cells (1.78% read as 0.04%,
    flagged below the reference range). The cut is now placed on the CD56+ NK cells."""
    tube = simulate_tube(SimulationSpec(seed=seed, cd56bright_percent_of_nk=bright))
    a = analyze_sample(tube.to_sample())
    got = a.result.cd56bright_percent_of_nk
    assert got is not None
    assert abs(got - tube.truth["cd56bright_percent_of_nk"]) < 0.75


def test_a_wrapping_time_counter_is_unwrapped_and_a_clog_still_found() -> None:
    """A time counter that wraps (12 bits, say) is not monotonic: the flow-rate check was
    skipped yet shown as passed ("unstable over 0%"), and a clogged tube was reportable. The
    counter is unwrapped and the clog found as on the unwrapped file; times that cannot be put
    in order make the check a warning that says it was not checked."""
    tube = simulate_tube(SimulationSpec(seed=9, clog_at=0.5))
    plain = tube.to_sample()
    at = [c.pnn for c in plain.channels].index("Time")

    def with_time(t: np.ndarray):  # type: ignore[no-untyped-def]
        events = plain.events.copy()
        events[:, at] = t
        return rebuilt(plain, events=events)

    t = plain.events[:, at]
    ref = next(q for q in analyze_sample(plain).result.qc if q.check == "flow rate")
    assert not ref.passed  # the clog
    wrapped = analyze_sample(with_time(np.mod(t, 4.0))).result  # every 4 s
    flag = next(q for q in wrapped.qc if q.check == "flow rate")
    assert not flag.passed and flag.value == pytest.approx(ref.value, abs=0.02)
    assert "Time counter wraps every 4 s" in " ".join(wrapped.notes)  # with its unit (audit 33)
    shuffled = np.random.default_rng(0).permutation(t)
    flag = next(q for q in analyze_sample(with_time(shuffled)).result.qc if q.check == "flow rate")
    assert not flag.passed and not flag.blocking and "not checked" in flag.reason


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cells_of_a_bead_less_three_colour_tube_are_not_taken_for_beads(seed: int) -> None:
    """CD3, CD16+56 and CD45 only, no beads: granulocytes and NK cells are bright on all
    channels but CD3, and a search for beads dim on one channel took them for beads (NK 1.2%
    for 12.1%, reportable). Dim beads are only looked for where the lab gives beads per test,
    and on at least three channels."""
    spec = SimulationSpec(seed=seed, with_beads=False, combined_cd16_cd56=True, with_cd19=False)
    tube = simulate_tube(spec)
    for counts in (AbsoluteCountInputs(), AbsoluteCountInputs(50_000.0, 50.0)):
        a = analyze_sample(tube.to_sample(), FlowSettings(counts=counts))
        assert "Beads" not in a.membership or not a.membership["Beads"].any()
        nk = a.result.nk_percent_of_lymphocytes
        assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 1.0


def test_too_few_cd56_positive_nk_cells_give_no_subsets() -> None:
    """With 99% of NK cells CD56- (CD16+ only) the bright cut had 8 events to stand on and
    read 0.07% bright for 0.51%; with none it read 100%. Under 20 CD56+ NK events no subset
    is given, and a note says why."""
    spec = SimulationSpec(seed=1, cd56neg_percent_of_nk=99.0, cd56bright_percent_of_nk=0.5)
    r = analyze_sample(simulate_tube(spec).to_sample()).result
    assert r.cd56bright_percent_of_nk is None and r.cd56dim_percent_of_nk is None
    assert any("too few to place the CD56bright cut" in n for n in r.notes)


@pytest.mark.parametrize(
    ("cyt", "kind"),
    [
        ("CytoFLEX", "flow"),  # Beckman Coulter flow cytometers: "cytof" begins the name
        ("CytoFLEX LX", "flow"),
        ("Attune NxT", "flow"),  # Thermo Fisher: "xt" ends the name
        ("FACSCanto II", "flow"),
        ("CyTOF", "mass"),
        ("CyTOF2", "mass"),
        ("CyTOF XT", "mass"),
        ("Helios", "mass"),
        ("Fluidigm Helios", "mass"),
    ],
)
def test_the_cytometer_named_in_cyt_sets_flow_or_mass(cyt: str, kind: str) -> None:
    import dataclasses

    from nkpanel.flow.autogate import detect_cytometry

    sample = simulate_tube(SimulationSpec(seed=3, n_events=20_000)).to_sample()
    named = dataclasses.replace(sample, metadata={**sample.metadata, "cyt": cyt})
    assert detect_cytometry(named) == kind
    if kind == "flow":  # a flow tube named so is analysed as one (CytoFLEX tubes were withheld)
        a = analyze_sample(named)
        assert a.result.cytometry == "flow" and a.result.reportable
        assert not any("mass cytometry" in n for n in a.result.notes)
    else:  # said, with the way out
        notes = analyze_sample(named).result.notes
        assert any(f"analysed as mass cytometry ($CYT {cyt!r})" in n for n in notes)


@pytest.mark.parametrize("seed", [808, 810])
@pytest.mark.parametrize("integer", [False, True])
def test_whole_channel_scatter_keeps_the_singlets(seed: int, integer: bool) -> None:
    """Scatter in 1,024 whole channels (an FCS 2.0 10-bit instrument; stored as integers or
    as floats): ratios of small whole numbers stand on a lattice, and the singlet gate placed
    on them dropped 20-40% of the lymphocytes but no bead, so NK/µL read 143 for 244 (audit 8).
    Spread over each channel's width for the gate's placement, every lymphocyte singlet stays."""
    import dataclasses

    tube = simulate_tube(SimulationSpec(seed=seed, n_events=60_000))
    sample = tube.to_sample()
    events = sample.events.copy()
    scatter = [i for i, n in enumerate(sample.pnn) if n.startswith(("FSC", "SSC"))]
    assert len(scatter) == 4
    events[:, scatter] = np.floor(events[:, scatter] / 256)  # 262,144 → 1,024 channels
    meta = {**sample.metadata, "datatype": "I" if integer else "F"}
    # the scatter channels' range as a 10-bit instrument writes it ($PnR 1024)
    channels = tuple(
        dataclasses.replace(c, pnr=1024.0) if c.index in scatter else c for c in sample.channels
    )
    coarse = dataclasses.replace(sample, events=events, metadata=meta, channels=channels)
    counts = AbsoluteCountInputs(50_000.0, 50.0)
    a = analyze_sample(coarse, FlowSettings(counts=counts))
    lymph = np.isin(tube.labels, ["T", "NKT", "B", "NK_bright", "NK_dim", "NK_CD56neg"])
    # doublets are not among the labelled singlet lymphocytes: all of these are singlets
    kept = np.count_nonzero(a.membership["Singlets"][lymph]) / np.count_nonzero(lymph)
    assert kept >= 0.99
    assert a.result.nk_cells_per_ul == pytest.approx(tube.truth["nk_per_ul_bead_method"], rel=0.1)


@pytest.mark.parametrize("seed", [7104, 7201])
def test_in_lymphopenia_the_bead_cut_keeps_the_cd56bright_nk_cells(seed: int) -> None:
    """Lymphocytes 3% of leukocytes: CD56bright NK cells are about 9 of the 30,000 events the
    cuts are placed on, so the CD56 channel looked as if no cell came near the beads, and the
    bead cut, midway, took half of them out of the leukocytes (CD56bright 8.2% of NK read 4.6,
    reportable; audit 9). A CD56 or CD16 channel now carries the bead gate only when it
    separates twice as well as the others."""
    spec = SimulationSpec(
        seed=seed, n_events=300_000, lymphocyte_percent_of_leukocytes=3.0, lymphocytes_per_ul=300
    )
    tube = simulate_tube(spec)
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)))
    bright = tube.labels == "NK_bright"
    assert np.mean(a.membership["Leukocytes"][bright]) >= 0.99
    beads = next(g for g in a.gating.tree.gates if g.name == "Beads")
    assert beads.dims[0].channel not in {a.markers.markers["CD56"], a.markers.markers["CD16"]}


def _scatter_gate(a: FlowAnalysis) -> Gate | None:
    """The lymphocyte gate drawn on scatter: "Lymphocyte scatter" where CD45-dim events were
    then left out of it, else "Lymphocytes" itself."""
    if a.tree is None:
        return None
    return a.tree[LYMPHOCYTE_SCATTER if LYMPHOCYTE_SCATTER in a.tree.names else "Lymphocytes"]


def _nk_labels(tube: object) -> np.ndarray:
    return np.isin(tube.labels, ["NK_dim", "NK_bright", "NK_CD56neg"])  # type: ignore[attr-defined]


def test_lymphopenia_keeps_the_nk_cells_that_scatter_more_side_light() -> None:
    """NK cells scatter more side light than T cells. At 2% lymphocytes, where monocytes
    outnumber them, the side-scatter valley lay inside the NK cells' spread (audit 10, this
    seed: 16% of CD56dim NK cells dropped, NK/µL −13%, reportable with every check passed).
    The lymphocyte gate drawn across FSC and SSC keeps them and still leaves the monocytes out.
    Truth is each simulated event's population."""
    tube = simulate_tube(
        SimulationSpec(
            seed=31059,
            n_events=300_000,
            lymphocyte_percent_of_leukocytes=2.2,
            lymphocytes_per_ul=800.0,
            cd56bright_percent_of_nk=12.0,
            nk_percent_of_lymphocytes=7.2,
        )
    )
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000, 50)))
    lymph = a.membership["Lymphocytes"]
    assert isinstance(_scatter_gate(a), PolygonGate)
    assert lymph[_nk_labels(tube)].mean() >= 0.97
    assert lymph[tube.labels == "T"].mean() >= 0.995
    assert np.count_nonzero(lymph & (tube.labels == "monocyte")) <= 0.01 * lymph.sum()
    nk_per_ul = a.result.nk_cells_per_ul
    assert nk_per_ul is not None
    assert abs(nk_per_ul / tube.truth["nk_per_ul_bead_method"] - 1) <= 0.05


def test_the_oblique_lymphocyte_gate_matches_flowkit(tmp_path: Path) -> None:
    """The automated gates, the FSC/SSC polygon among them, exported as Gating-ML give the same
    members in FlowKit as here, event for event."""
    import flowkit

    from nkpanel.flow.gatingml import export_gatingml
    from tests.flow.test_gatingml import assert_same_membership, flowkit_membership

    tube = simulate_tube(SimulationSpec(seed=5, n_events=60_000))
    path = write_fcs(tube, tmp_path / "tube-synthetic.fcs")
    a = analyze_file(path)
    assert a.tree is not None and isinstance(_scatter_gate(a), PolygonGate)
    xml = export_gatingml(a.tree, tmp_path / "auto.xml", spillover=a.sample.spillover)
    fk = flowkit.Sample(str(path), sample_id="tube")
    assert_same_membership(dict(a.membership), flowkit_membership(xml, fk, a.tree), a.tree)


def test_a_monocyte_marker_keeps_the_side_scatter_gate() -> None:
    """With CD14 stained the monocytes are gated out on it, and the lymphocyte gate stays a
    rectangle (side scatter and CD14) rather than the FSC/SSC polygon."""
    tube = simulate_tube(SimulationSpec(seed=3, n_events=40_000))
    plain = tube.to_sample()
    pns = [ch.pns for ch in plain.channels]
    at = next(i for i, p in enumerate(pns) if p and "CD19" in p)
    pns[at] = "CD14 PE-Cy7"
    a = analyze_sample(rebuilt(plain, pns=pns), FlowSettings())
    gate = _scatter_gate(a)
    assert isinstance(gate, RangeGate)
    assert [d.channel for d in gate.dims][-1] == "PE-Cy7-A"


@pytest.mark.parametrize("with_cd19", [True, False])
def test_basophils_are_left_out_of_the_lymphocytes(with_cd19: bool) -> None:
    """Basophils have about a lymphocyte's scatter, dimmer CD45 and no lineage marker of the
    panel. At 3% lymphocytes and 1% basophils they were a quarter of the scatter gate: NK %
    of lymphocytes 2.5 points low (9.6% for 12.1%), warned by the lymphosum with CD19 and
    silent without it. The CD45-dim events inside the scatter gate are left out where they
    form a population of their own. Truth is each simulated event's population."""
    tube = simulate_tube(
        SimulationSpec(
            seed=0,
            n_events=200_000,
            lymphocyte_percent_of_leukocytes=3.0,
            basophil_percent_of_leukocytes=1.0,
            with_cd19=with_cd19,
        )
    )
    a = analyze_sample(tube.to_sample(), FlowSettings())
    assert a.tree is not None
    gate = a.tree["Lymphocytes"]
    assert gate.parent == LYMPHOCYTE_SCATTER
    assert [d.channel for d in gate.dims] == [a.markers.markers["CD45"]]
    lymph, lab = a.membership["Lymphocytes"], tube.labels
    assert lymph[lab == "basophil"].mean() <= 0.05
    assert lymph[lab == "T"].mean() >= 0.99 and lymph[lab == "B"].mean() >= 0.95
    assert lymph[_nk_labels(tube)].mean() >= 0.97
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 0.5


def _scaled_events(tube: object, label: str, factors: dict[str, float]) -> FlowSample:
    """The tube as a sample with the recorded values of ``label``'s events multiplied, per
    channel (a population brighter or dimmer than the simulator makes it)."""
    sample = tube.to_sample()  # type: ignore[attr-defined]
    events = np.array(sample.events, copy=True)
    rows = tube.labels == label  # type: ignore[attr-defined]
    for channel, factor in factors.items():
        events[rows, sample.index_of(channel)] *= factor
    return rebuilt(sample, events=events)


def test_monocytes_brighter_in_cd45_do_not_take_the_lymphocytes_place() -> None:
    """The CD45 cut lies below the lymphocytes' CD45 peak, found where the T cells (CD3+)
    stand: the brightest peak under the side-scatter cut was taken for it, and monocytes 3x
    brighter than lymphocytes, in monocytosis with low side scatter, became "Lymphocytes"
    (audit 13: 99.9% of T cells left out, silent without CD19). Truth is each simulated
    event's population."""
    tube = simulate_tube(
        SimulationSpec(
            seed=0, n_events=150_000, monocyte_percent_of_leukocytes=25.0, with_cd19=False
        )
    )
    factors = {"PerCP-Cy5.5-A": 60_000 / 32_000, "SSC-A": 0.6, "SSC-H": 0.6}
    a = analyze_sample(_scaled_events(tube, "monocyte", factors), FlowSettings())
    lymph = a.membership["Lymphocytes"]
    assert lymph[tube.labels == "T"].mean() >= 0.99
    assert np.count_nonzero(lymph & (tube.labels == "monocyte")) <= 0.05 * lymph.sum()


def test_lymphocytes_left_out_by_the_cd45_cut_are_said() -> None:
    """Basophils carry no lineage marker: lineage-marked events among those the CD45 cut left
    out are lymphocytes dimmer in CD45 than the cut allowed. B cells at a third of the T
    cells' CD45 stand as a peak of their own and were cut out whole, NK % 1.6 points high and
    every check passed (audit 13). The lineage gates' own cuts find them among the events
    left out, and the result is withheld."""
    tube = simulate_tube(SimulationSpec(seed=0, n_events=150_000))
    sample = _scaled_events(tube, "B", {"PerCP-Cy5.5-A": 0.35 * 20_000 / 16_000})
    a = analyze_sample(sample, FlowSettings())
    flag = next(q for q in a.result.qc if q.check == "lymphocytes left out by the CD45 cut")
    assert not flag.passed and flag.blocking and not a.result.reportable
    left_b = np.count_nonzero((tube.labels == "B") & ~a.membership["Lymphocytes"])
    assert flag.value == pytest.approx(left_b / a.membership["Lymphocytes"].sum(), rel=0.1)
    assert "--keep-cd45-dim" in flag.reason
    # the way out it names: the lymphocyte gate on scatter alone keeps the B cells
    scatter_only = FlowSettings(autogate=AutoGateSettings(cd45_dim_out=False))
    kept = analyze_sample(sample, scatter_only)
    assert kept.tree is not None and LYMPHOCYTE_SCATTER not in kept.tree.names
    assert kept.membership["Lymphocytes"][tube.labels == "B"].mean() >= 0.99
    nk = kept.result.nk_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 0.5
    # the same tube as simulated: the cut leaves out basophils, and the check passes
    plain = analyze_sample(tube.to_sample(), FlowSettings())
    flag = next(q for q in plain.result.qc if q.check == "lymphocytes left out by the CD45 cut")
    assert flag.passed and flag.value is not None and flag.value < 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lymphocytes", [3.0, 30.0, 60.0])
def test_no_cd45_cut_without_a_cd45_dim_population(seed: int, lymphocytes: float) -> None:
    """Without basophils nothing in the scatter gate is CD45 dim: no CD45 cut is placed, and
    the scatter gate is the lymphocyte gate."""
    spec = SimulationSpec(
        seed=seed,
        n_events=60_000,
        lymphocyte_percent_of_leukocytes=lymphocytes,
        basophil_percent_of_leukocytes=0.0,
    )
    a = analyze_sample(simulate_tube(spec).to_sample(), FlowSettings())
    assert a.tree is not None and LYMPHOCYTE_SCATTER not in a.tree.names
    assert "Lymphocytes CD45 bright" not in a.gating.cuts


def test_scatter_named_in_words_is_gated_as_scatter() -> None:
    """Scatter channels the alias table knows by a name that does not begin with FSC/SSC
    ("Forward Scatter", "Side Scatter") were put on the logicle scale of fluorescence, and the
    FSC/SSC lymphocyte gate, drawn on log scatter only, fell back to the side-scatter cut.
    They are on the log scale of scatter now, and gated as the same file with FSC-A/SSC-A."""
    tube = simulate_tube(SimulationSpec(seed=4, n_events=60_000))
    plain = tube.to_sample()
    names = {"FSC-A": "Forward Scatter", "SSC-A": "Side Scatter"}
    worded = rebuilt(plain, pnn=[names.get(c.pnn, c.pnn) for c in plain.channels])
    a, b = analyze_sample(plain), analyze_sample(worded)
    assert isinstance(_scatter_gate(a), PolygonGate) and isinstance(_scatter_gate(b), PolygonGate)
    assert b.gating.scales["Side Scatter"].kind == "log"
    assert np.array_equal(a.membership["Lymphocytes"], b.membership["Lymphocytes"])
    assert a.result.nk_percent_of_lymphocytes == b.result.nk_percent_of_lymphocytes


def test_few_monocytes_are_still_gated_out_of_the_lymphocytes() -> None:
    """At 2% of leukocytes (normal) monocytes are too light a peak beside the granulocytes:
    the first side-scatter valley fell between lymphocytes and granulocytes, and the
    monocytes filled a fifth of the lymphocyte gate (NK % of lymphocytes 6 points low). The
    events below that valley are looked at again and the monocytes parted from the
    lymphocytes. Truth is each simulated event's population."""
    spec = SimulationSpec(
        seed=1643,
        n_events=300_000,
        nk_percent_of_lymphocytes=40.0,
        cd56bright_percent_of_nk=20.0,
        nkt_percent_of_lymphocytes=15.0,
        b_percent_of_lymphocytes=2.0,
        lymphocyte_percent_of_leukocytes=8.0,
        monocyte_percent_of_leukocytes=2.0,
        debris_fraction=0.0,
        doublet_fraction=0.1,
        # no CD45-dim cut: with basophils (and the CD45-dim granulocytes) left out the first
        # valley itself parts monocytes from lymphocytes here
        basophil_percent_of_leukocytes=0.0,
    )
    tube = simulate_tube(spec)
    a = analyze_sample(tube.to_sample())
    lymph = a.membership["Lymphocytes"]
    assert np.count_nonzero(lymph & (tube.labels == "monocyte")) <= 0.01 * lymph.sum()
    assert lymph[_nk_labels(tube)].mean() >= 0.98
    assert "SSC low (first)" in a.gating.cuts if a.gating else False
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 1.0


def test_beads_are_found_when_granulocytes_fill_the_tube() -> None:
    """In lymphopenia the granulocytes fill the acquisition and the beads are under 2% of the
    events, the least share of an ordinary population: no bead gate was drawn and NK/µL was
    not given (audit 10, this seed). Beads stand apart from every cell on every channel, so a
    small peak of them counts. Truth is the simulated bead-method count."""
    tube = simulate_tube(
        SimulationSpec(
            seed=31112,
            n_events=300_000,
            lymphocyte_percent_of_leukocytes=2.4,
            lymphocytes_per_ul=1112.5,
            cd56bright_percent_of_nk=5.0,
            nk_percent_of_lymphocytes=14.7,
        )
    )
    beads = tube.labels == "bead"
    assert beads.mean() < 0.02
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000, 50)))
    assert f1(beads, a.membership["Beads"]) > 0.99
    nk_per_ul = a.result.nk_cells_per_ul
    assert nk_per_ul is not None
    assert abs(nk_per_ul / tube.truth["nk_per_ul_bead_method"] - 1) <= 0.05


def test_cd56_negative_nk_cells_without_b_cells() -> None:
    """With no B cells and 40% NK cells the CD3- lymphocytes are nearly all NK: on CD16 they
    stand as one positive peak, and a cut at its tail left the CD56- CD16+ NK cells out of
    the NK gate (extreme sweep, this design with 2% monocytes: NK % 1.2 points low,
    reportable, unwarned). The cut found on all lymphocytes, where the T cells are the
    negatives, is used and said. No monocytes here, so that none in the lymphocyte gate stand
    in for the negatives, nor basophils. Truth is each simulated event's population."""
    tube = simulate_tube(
        SimulationSpec(
            seed=6225,
            n_events=300_000,
            nk_percent_of_lymphocytes=40.0,
            cd56bright_percent_of_nk=2.0,
            nkt_percent_of_lymphocytes=0.5,
            b_percent_of_lymphocytes=0.0,
            lymphocyte_percent_of_leukocytes=20.0,
            monocyte_percent_of_leukocytes=0.0,
            basophil_percent_of_leukocytes=0.0,
        )
    )
    a = analyze_sample(tube.to_sample(), FlowSettings())
    assert a.membership["NK"][tube.labels == "NK_CD56neg"].mean() > 0.95
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 0.5
    assert any("no negative population" in n for n in a.result.notes)
    # the cut at the CD3- events' tail was replaced: it is not said to be in use
    assert not any(n.startswith("CD16: no clear valley") for n in a.result.notes)


def test_lymphocytes_standing_alone_keep_their_nk_cells() -> None:
    """Separated cells (98% lymphocytes, 2% monocytes, no granulocytes): no population forms
    a peak above the lymphocytes, and the side-scatter cut for a lone peak, read from its
    lower half, dropped the NK cells' high side-scatter tail (NK % 1.4 points and NK/µL 13%
    low, no check failed). The lymphocytes' own upper spread now sets it. Truth is each
    simulated event's population."""
    tube = simulate_tube(
        SimulationSpec(
            seed=1,
            n_events=50_000,
            lymphocyte_percent_of_leukocytes=98.0,
            monocyte_percent_of_leukocytes=2.0,
            basophil_percent_of_leukocytes=0.0,
        )
    )
    a = analyze_sample(tube.to_sample(), FlowSettings())
    lymph = a.membership["Lymphocytes"]
    assert lymph[_nk_labels(tube)].mean() >= 0.97
    assert np.count_nonzero(lymph & (tube.labels == "monocyte")) <= 0.01 * lymph.sum()
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 0.5


def test_the_fsc_ssc_edge_is_not_drawn_beyond_the_monocytes() -> None:
    """Without CD19 at 2% lymphocytes the lymphocytes were too light a peak along the FSC/SSC
    discriminant beside the granulocytes: the edge fell in the valley between monocytes and
    granulocytes, and 9,597 monocytes entered the lymphocyte gate (NK/µL +229%, no check
    failed; audit 12). The valley is looked for among lymphocytes and monocytes only, and
    must lie between them. Truth is each simulated event's population."""
    tube = simulate_tube(
        SimulationSpec(
            seed=1, n_events=300_000, lymphocyte_percent_of_leukocytes=2.0, with_cd19=False
        )
    )
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000, 50)))
    lymph = a.membership["Lymphocytes"]
    assert np.count_nonzero(lymph & (tube.labels == "monocyte")) <= 0.02 * lymph.sum()
    nk_per_ul = a.result.nk_cells_per_ul
    assert nk_per_ul is not None
    assert abs(nk_per_ul / tube.truth["nk_per_ul_bead_method"] - 1) <= 0.10


def test_large_nk_cells_of_normal_side_scatter_stay_in_the_lymphocyte_gate() -> None:
    """A third of the NK cells made 1.4 times larger on FSC (and 1.15 on SSC), at 3%
    lymphocytes: the falling FSC/SSC edge left them out (NK recall 75%, NK/µL −25%, no check
    failed; audit 12). What the side-scatter cut keeps stays in the gate; the edge only adds.
    Truth is each simulated event's population."""
    from nkpanel.flow.sample import FlowSample

    tube = simulate_tube(
        SimulationSpec(seed=0, n_events=300_000, lymphocyte_percent_of_leukocytes=3.0)
    )
    full = tube.to_sample()
    events = np.array(full.events, dtype=np.float64)
    rng = np.random.default_rng(0)
    large = _nk_labels(tube) & (rng.random(tube.labels.size) < 0.3)
    for name, factor in (("FSC-A", 1.4), ("FSC-H", 1.4), ("SSC-A", 1.15), ("SSC-H", 1.15)):
        events[large, full.pnn.index(name)] *= factor
    sample = FlowSample.from_array(
        events,
        list(full.pnn),
        pns=[c.pns for c in full.channels],
        name="large-nk",
        spillover=full.spillover,
        metadata=full.metadata,
    )
    a = analyze_sample(sample, FlowSettings())
    lymph = a.membership["Lymphocytes"]
    assert lymph[large].mean() >= 0.85
    assert lymph[_nk_labels(tube)].mean() >= 0.9
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_nk_cells_spread_into_two_cd3_peaks_stay_nk(seed: int) -> None:
    """Among the NK-marker-positive lymphocytes, NK-like T cells are the CD3-brightest. Where
    the NK cells themselves stand as two CD3 peaks (here the CD56bright ones pushed ~300 below
    zero, as unmixing or over-compensation does), the lowest valley split the NK cells and
    counted the CD56dim ones as NK-like T: NK 2.4–2.9% for a truth of 12%, some reportable
    (audit 31, on a real Cytek Aurora PBMC: NK 0.5%, NK-like T 96%). Truth is each simulated
    event's population; the shift is applied to the recorded CD3 of the CD56bright NK cells."""
    tube = simulate_tube(SimulationSpec(seed=seed, n_events=100_000, cd56bright_percent_of_nk=25.0))
    cd3 = next(i for i, s in enumerate(tube.pns) if s.startswith("CD3"))
    events = np.array(tube.events, copy=True)
    events[tube.labels == "NK_bright", cd3] -= 300.0
    tube = dataclasses.replace(tube, events=events)
    a = analyze_sample(tube.to_sample())
    assert a.gating is not None and len(a.gating.cuts["CD3"].peaks) >= 3  # the case in point
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 0.5
    nkt = a.result.nk_like_t_percent_of_lymphocytes
    assert nkt is not None and abs(nkt - tube.truth["nkt_percent_of_lymphocytes"]) < 0.5
    assert a.membership["NK"][np.isin(tube.labels, NK_LABELS)].mean() > 0.95


def test_a_scatter_range_rewritten_below_the_data_changes_nothing(tmp_path: Path) -> None:
    """A program that rewrote the file left the scatter channels' $PnR at 8,192, below nearly
    every event: 93% of events were called saturated, no singlet gate was placed, and NK came
    out 0.3% for 12.1% (audit 31 U1, a Cytek Aurora file). The range is now taken from the
    data, and the analysis is that of the file as written."""
    tube = simulate_tube(SimulationSpec(seed=3, n_events=50_000))
    path = write_fcs(tube, tmp_path / "t.fcs")
    buf = path.read_bytes()
    for i, name in enumerate(tube.pnn, 1):
        if name.startswith(("FSC", "SSC")):
            buf = edit_text_value(buf, f"$P{i}R", "008192")  # same length: offsets hold
    edited = tmp_path / "edited.fcs"
    edited.write_bytes(buf)
    a, b = analyze_file(path), analyze_file(edited)
    assert b.result.reportable, b.result.not_reportable_reasons
    for population in ("Singlets", "Lymphocytes", "NK"):
        assert np.array_equal(a.membership[population], b.membership[population])
    assert any("above the file's range on 4 channels: FSC-A" in n for n in b.result.file_notes)


@pytest.mark.parametrize("seed", [0, 1])
def test_beads_dimmed_by_a_partial_clog_stay_beads(seed: int) -> None:
    """A clog that slows the stream to 0.8× and dims every signal to 0.8× over 40% of the run
    leaves too small a drop in rate for the flow-rate check; its beads stand as a second, dimmer
    bead peak. The bead cut was placed between the two bead peaks: a third of the beads fell
    out, and NK/µL read 334 for 231, reportable (audit 32). Truth: each event's population and
    the simulator's bead-method count."""
    tube = simulate_tube(
        SimulationSpec(
            seed=seed,
            clog_at=0.4,
            clog_duration_fraction=0.4,
            clog_rate_factor=0.8,
            clog_signal_factor=0.8,
        )
    )
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)))
    beads = tube.labels == "bead"
    assert a.membership["Beads"][beads].mean() > 0.99
    assert a.membership["Beads"][~beads].mean() < 1e-4
    got, truth = a.result.nk_cells_per_ul, tube.truth["nk_per_ul_bead_method"]
    assert got is not None and abs(got / truth - 1) < 0.05


def _redetected(
    tube: SimulatedTube, pre: np.ndarray, rows: np.ndarray | None = None
) -> SimulatedTube:
    """``tube`` with the dye signals ``pre`` (one column per spillover channel) of its events
    ``rows`` (every event by default) detected again through its own spillover matrix, pinned
    at the top of the 18-bit range and stored as float32, as the simulator writes them."""
    at = np.arange(tube.n_events) if rows is None else rows
    events = np.array(tube.events)
    seen = pre[at] @ tube.spillover.matrix
    for j, channel in enumerate(tube.spillover.channels):
        events[at, tube.pnn.index(channel)] = np.minimum(seen[:, j], 262_143.0)
    return dataclasses.replace(tube, events=events.astype(np.float32).astype(np.float64))


def _with_events_bright_everywhere(seed: int, share: float, level: float) -> SimulatedTube:
    """A simulated tube in which ``share`` of the events, taken from the debris, carry every
    dye at ``level`` times the beads' median with a lognormal spread of 0.25 on each, as dead
    cells or clumps binding every antibody might (review 34's emulation), spillover applied."""
    tube = simulate_tube(SimulationSpec(n_events=50_000, seed=seed))
    assert tube.pre_spillover is not None
    pre = np.array(tube.pre_spillover)
    rng = np.random.default_rng(seed)
    debris = np.flatnonzero(tube.labels == "debris")
    pick = rng.choice(debris, int(share * tube.n_events), replace=False)
    bead_median = np.median(pre[tube.labels == "bead"], axis=0)
    pre[pick] = level * bead_median * np.exp(rng.normal(0.0, 0.25, (pick.size, pre.shape[1])))
    return _redetected(tube, pre, pick)


@pytest.mark.parametrize(
    ("share", "level", "parted"), [(0.02, 0.3, True), (0.02, 0.5, True), (0.005, 0.15, False)]
)
def test_events_bright_everywhere_in_other_colours_withhold_the_bead_count(
    share: float, level: float, parted: bool
) -> None:
    """Events bright on every channel at a fraction of the beads' level stand as a peak between
    the cells and the beads. Taken as beads, 2% of them read NK/µL 198-200 for 231, reportable;
    at 0.15x the bead gate was lost and the beads became the "lymphocytes" (review 34). In
    other colours than the beads, they may be clumps or beads a clog dimmed unevenly, which
    nothing tells apart (reviews 37, 38): no cell is bright on every channel, so they are kept
    out of the leukocytes, the bead count is withheld with its reason, and the percentages
    stand. At 0.15x no channel parts them from every cell: left among the cells (NK-like T
    6-10% for 4 in review 38's tubes), they withhold the whole result. Truth: each event's
    population (synthetic)."""
    tube = _with_events_bright_everywhere(401, share, level)
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)))
    beads = tube.labels == "bead"
    assert a.membership["Beads"][beads].mean() > 0.99
    # the events made bright everywhere were debris: few of them among the lymphocytes (at
    # 0.15x, where no channel parts them all from the cells, 2% of the gate)
    assert np.mean(tube.labels[a.membership["Lymphocytes"]] == "debris") < 0.03
    check = next(f for f in a.result.qc if f.check == "bead population")
    assert not check.passed and "cannot be told apart" in check.reason
    assert a.result.nk_cells_per_ul is None
    assert a.result.reportable is parted, a.result.not_reportable_reasons
    if not parted:
        assert check.blocking and "every percentage is in doubt" in check.reason
        return
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 0.5
    # with a haematology lymphocyte count, the dual-platform count stands in
    dual = AbsoluteCountInputs(
        50_000.0, 50.0, lymphocytes_per_ul=tube.truth["spec"]["lymphocytes_per_ul"]
    )
    r = analyze_sample(tube.to_sample(), FlowSettings(counts=dual)).result
    assert r.absolute_count_method == "dual-platform" and r.nk_cells_per_ul is not None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bead_doublets_leave_the_bead_count_alone(seed: int) -> None:
    """Bead doublets (twice the dye; a few percent of a lot) stand above the single beads,
    pinned at the top of most channels: taken for "the beads", they made the singlets events
    "in other colours", and a right count was withheld (34 of 108 tubes, review 40). The beads
    are the heaviest bright population. Truth: the simulator's (synthetic)."""
    tube = simulate_tube(SimulationSpec(n_events=60_000, seed=seed))
    assert tube.pre_spillover is not None
    pre = np.array(tube.pre_spillover)
    beads = np.flatnonzero(tube.labels == "bead")
    doublets = np.random.default_rng(seed).choice(beads, int(0.05 * beads.size), replace=False)
    pre[doublets] *= 2.0
    tube = _redetected(tube, pre, doublets)
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)))
    assert not any(f.check == "bead population" for f in a.result.qc)
    got, truth = a.result.nk_cells_per_ul, tube.truth["nk_per_ul_bead_method"]
    assert got is not None and abs(got / truth - 1) < 0.03


def _clogged_unevenly(seed: int, duration: float) -> tuple[SimulatedTube, np.ndarray]:
    """A simulated tube with a clog over ``duration`` of the run that dims every signal 0.8x
    and the red laser's APC 0.7x more, and which events it caught (synthetic)."""
    spec = SimulationSpec(
        n_events=60_000,
        seed=seed,
        lymphocyte_percent_of_leukocytes=30.0,
        lymphocytes_per_ul=1500.0,
        clog_at=0.3 if duration > 0.5 else 0.5,
        clog_duration_fraction=duration,
        clog_rate_factor=1.0,
        clog_signal_factor=0.8,
    )
    tube = simulate_tube(spec)
    assert tube.pre_spillover is not None
    pre = np.array(tube.pre_spillover)
    seconds = np.array(tube.events)[:, tube.pnn.index("Time")] * 0.01
    start, end = tube.truth["acquisition"]["clog_window_s"]
    inside = (seconds >= start) & (seconds < end)
    pre[inside, tube.spillover.channels.index("APC-A")] *= 0.7
    return _redetected(tube, pre), inside


def test_a_long_uneven_clog_withholds_the_bead_count() -> None:
    """A clog over 60% of the run, dimming the red laser more: its beads are the heaviest bead
    population, and with the beads' colours judged only below it the count went out 11-41% low
    (cells in the clog fell out of their gates), reportable (review 41). The undimmed beads
    above stand in other colours: the count is withheld. Truth: the simulator's (synthetic)."""
    tube, _inside = _clogged_unevenly(50_115, 0.6)
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)))
    assert any(f.check == "bead population" and not f.passed for f in a.result.qc)
    assert a.result.nk_cells_per_ul is None


def test_beads_dimmed_by_a_clog_more_on_one_laser_stay_beads() -> None:
    """A partial clog need not dim every laser alike (the stream moves off each laser's spot
    differently): beads in it, dimmed 0.8x and 0.56x on the red laser's APC, lost the beads'
    colours and were dropped from the bead count: NK/µL 250.8 for 178.5, reportable (review
    37). Arriving within the clog, they stay in the bead gate; in other colours than the
    beads, they could be clumps, so the count is withheld with its reason rather than given
    either way. Truth: each event's population (synthetic)."""
    tube, inside = _clogged_unevenly(50_184, 0.3)
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)))
    beads = tube.labels == "bead"
    assert a.membership["Beads"][beads & inside].mean() > 0.99
    assert a.result.nk_cells_per_ul is None and a.result.reportable
    assert any(f.check == "bead population" and not f.passed for f in a.result.qc)


def test_t_cells_spread_on_cd56_do_not_lift_the_nk_cut() -> None:
    """Spillover spreading from the CD3 dye into the CD56 detector merges the T cells and
    many dim NK-like T cells into one CD56 peak; its tail reached past the CD56dim NK cells,
    which were then taken for the CD56- cells by a rule (since withdrawn) that passed over
    CD56 peaks where the T cells' CD56- cells reach: CD56bright 0.0% of NK for 51 and NK-like
    T 0.0% for 40, reportable (review 37). Truth: each event's population."""
    spec = SimulationSpec(
        n_events=60_000,
        seed=20_167,
        nk_percent_of_lymphocytes=15.0,
        cd56bright_percent_of_nk=50.0,
        nkt_percent_of_lymphocytes=40.0,
        b_percent_of_lymphocytes=2.0,
    )
    tube = simulate_tube(spec)
    assert tube.pre_spillover is not None
    pre = np.array(tube.pre_spillover)
    channels = list(tube.spillover.channels)
    cd56 = channels.index(tube.pnn[tube.pns.index("CD56 APC")])
    cd3 = channels.index(tube.pnn[tube.pns.index("CD3 FITC")])
    pre[tube.labels == "NKT", cd56] *= 0.3
    rng = np.random.default_rng(0)
    pre[:, cd56] += rng.standard_normal(len(pre)) * 3.0 * np.sqrt(np.maximum(pre[:, cd3], 0.0))
    tube = _redetected(tube, pre)
    r = analyze_sample(tube.to_sample()).result
    bright, nkt = r.cd56bright_percent_of_nk, r.nk_like_t_percent_of_lymphocytes
    assert bright is not None and abs(bright - tube.truth["cd56bright_percent_of_nk"]) < 5
    # 34% for 40 before 2b688c5 too: the spreading blurs the NK-like T cells' lower edge
    assert nkt is not None and abs(nkt - tube.truth["nkt_percent_of_lymphocytes"]) < 8


@pytest.mark.parametrize(("bright", "given"), [(93.0, True), (95.0, False), (97.0, False)])
def test_nk_cells_that_are_nearly_all_cd56bright_are_not_read_as_cd56dim(
    bright: float, given: bool
) -> None:
    """Where CD56bright cells are 95-97% of NK cells, the CD56+ NK cells stand as one CD56
    population; taken for the CD56dim cells, it read CD56bright 0.1% of NK for 95, and
    CD56dim 41% for 3. Mostly CD16-, as CD56bright cells are, it cannot be told from CD56
    alone which subset it is: the subsets are not given, with a note; at 93% the dim peak
    still stands and both are measured. Truth: the simulator's (synthetic)."""
    tube = simulate_tube(SimulationSpec(n_events=60_000, seed=1, cd56bright_percent_of_nk=bright))
    r = analyze_sample(tube.to_sample()).result
    if given:
        assert r.cd56bright_percent_of_nk is not None
        assert abs(r.cd56bright_percent_of_nk - tube.truth["cd56bright_percent_of_nk"]) < 2
    else:
        assert r.cd56bright_percent_of_nk is None and r.cd56dim_percent_of_nk is None
        assert any("one CD56 population" in n and "CD16-" in n for n in r.notes)
    nk = r.nk_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 1


def test_beads_gated_on_the_cd45_channel_are_no_leukocytes() -> None:
    """A bead lot dim on every channel but CD45's is gated on CD45 itself; the leukocyte gate
    (CD45+, not beads) then had no upper bound and held every bead: NK 3.12% of CD45+
    leukocytes for 3.63 (this session). Truth: each event's population."""
    tube = simulate_tube(SimulationSpec(n_events=50_000, seed=3))
    assert tube.pre_spillover is not None
    pre = np.array(tube.pre_spillover)
    beads = tube.labels == "bead"
    cd45 = tube.pnn[tube.pns.index("CD45 PerCP-Cy5.5")]
    dim = [j for j, c in enumerate(tube.spillover.channels) if c != cd45]
    pre[np.ix_(beads, dim)] *= 0.1
    tube = _redetected(tube, pre, np.flatnonzero(beads))
    a = analyze_sample(tube.to_sample(), FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)))
    gate = next(g for g in a.tree.gates if g.name == "Beads") if a.tree else None
    assert gate is not None and gate.dims[0].channel == cd45
    assert a.membership["Beads"][beads].mean() > 0.99
    assert not a.membership["Leukocytes"][beads].any()


def test_a_bump_above_the_nk_cut_keeps_the_cd56bright_cut_above_the_dim_peak() -> None:
    """In this tube (one of about 620 in audit 32's sweep) a small bump of CD56+ NK events just
    above the NK cut stood as the lowest peak of the CD56+ NK cells, and the bright cut went in
    the valley above it, below the whole CD56dim peak: CD56bright 92.4% of NK for 7.4% and
    CD56dim 1.8% for 88.7%, reportable. The CD56dim NK cells, around the CD56+ NK cells'
    median, are now the reference. Truth is each simulated event's population."""
    spec = SimulationSpec(
        n_events=60_000, seed=4, nk_percent_of_lymphocytes=5.0, nkt_percent_of_lymphocytes=14.0
    )
    tube = simulate_tube(spec)
    a = analyze_sample(tube.to_sample())
    bright, dim = a.result.cd56bright_percent_of_nk, a.result.cd56dim_percent_of_nk
    assert bright is not None and abs(bright - tube.truth["cd56bright_percent_of_nk"]) < 1.0
    assert dim is not None and abs(dim - tube.truth["cd56dim_percent_of_nk"]) < 2.0


def test_cd56bright_cd16_positive_cells_are_not_cd56bright_cd16_negative() -> None:
    """The CD56bright subset is reported as CD56bright CD16-/dim and read against ARUP's
    CD3-CD16-CD56bright interval, but its gate had no CD16 limit: 300 CD56dim CD16+ NK cells
    made CD56-bright (×10 on CD56, CD16 kept) counted as CD56bright, 18.3% of NK for 7.2%
    (audit 32). They are now in neither subset. Truth: each event's simulated population."""
    tube = simulate_tube(SimulationSpec(seed=2))
    cd56 = next(i for i, s in enumerate(tube.pns) if s.startswith("CD56"))
    moved = np.flatnonzero(tube.labels == "NK_dim")[:300]
    events = np.array(tube.events, copy=True)
    events[moved, cd56] *= 10.0
    a = analyze_sample(rebuilt(tube.to_sample(), events=events))
    bright = a.membership["NK CD56bright"]
    assert bright[moved].mean() < 0.05
    true_bright = tube.labels == "NK_bright"
    assert bright[true_bright].mean() > 0.9
    assert bright.sum() < 1.1 * true_bright.sum()


@pytest.mark.parametrize("seed", [1, 2])
def test_a_tube_without_nk_cells_keeps_its_nk_like_t_cells_cd3_positive(seed: int) -> None:
    """With no NK cells, the NK-marker-positive lymphocytes are all NK-like T cells: their lone
    CD3 peak was taken for the negatives, so every T cell was CD3-, the NK-like T cells were
    counted as NK (NK ~4% for 0) and the result was withheld as "the gate did not find the
    lymphocytes" (audit 32). The CD3 cut is then taken on all lymphocytes. Truth is each
    simulated event's population."""
    tube = simulate_tube(SimulationSpec(seed=seed, nk_percent_of_lymphocytes=0.0))
    a = analyze_sample(tube.to_sample())
    nkt = a.result.nk_like_t_percent_of_lymphocytes
    assert nkt is not None and abs(nkt - tube.truth["nkt_percent_of_lymphocytes"]) < 0.5
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None and nk < 0.2
    assert not a.result.reportable
    assert all("NK events" in r for r in a.result.not_reportable_reasons)
    # the CD3- lymphocytes are then B cells alone: their CD19 cut is taken where the T cells
    # are CD19's negatives (B cells had read 0.00% for 12: review 34)
    b = next(p for p in a.result.populations if p.population == "B cells")
    assert b.percent_of_lymphocytes is not None
    assert abs(b.percent_of_lymphocytes - tube.truth["b_percent_of_lymphocytes"]) < 0.5


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nk_like_t_cells_on_a_combined_cd16_56_channel(seed: int) -> None:
    """On a TBNK kit's combined CD16+56 channel the NK cut lies above the CD16-dim monocytes;
    used for the NK-like T cells too, it left out the dimmer ones: 0.946× the truth on 20
    tubes, 2.85% for 4.02% (audit 32). Truth is each simulated event's population."""
    tube = simulate_tube(SimulationSpec(seed=seed, combined_cd16_cd56=True))
    a = analyze_sample(tube.to_sample())
    nkt = a.result.nk_like_t_percent_of_lymphocytes
    assert nkt is not None and abs(nkt - tube.truth["nkt_percent_of_lymphocytes"]) < 0.15
    nk = a.result.nk_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 0.3


@pytest.mark.parametrize("seed", [0, 1])
def test_analog_data_recorded_without_compensation_are_withheld(tmp_path: Path, seed: int) -> None:
    """Data of an analog instrument are compensated by its electronics, so no matrix is
    applied; with that compensation switched off they were reportable without a word (NK-like
    T 23% and 46% for 4: audit 33), as the in-data check was not run on them. It is now: here
    (B cells 0.03% of lymphocytes for 11.6) it fails, and passes on the same tube compensated
    (audit 33's own emulations, with a FACSCalibur's FITC-to-PE spillover, were withheld by it
    in 5 of 6 tubes)."""
    tube = simulate_tube(SimulationSpec(seed=seed, n_events=50_000, spillover_scale=3.0))
    off = analyze_file(_calibur_file(tube, tmp_path, 3.0, compensated=False)).result
    flag = next(f for f in off.qc if f.check == "compensation in the data")
    assert not flag.passed and flag.value is not None and flag.value > 1.5
    on = analyze_file(_calibur_file(tube, tmp_path, 3.0, compensated=True)).result
    assert next(f for f in on.qc if f.check == "compensation in the data").passed


@pytest.mark.parametrize("bright", [50.0, 60.0, 90.0, 93.0])
def test_cd56bright_cells_in_the_majority_are_counted(bright: float) -> None:
    """The CD56bright cut's reference had been the CD56+ NK cells' median: where CD56bright
    cells outnumber CD56dim ones the median lies among them, and CD56bright read 0.0% for 61,
    reportable, "below the lower limit" (review 34). The reference is the lowest peak holding a
    fair share of them: the dim cells. Truth is each simulated event's population."""
    tube = simulate_tube(SimulationSpec(seed=1, cd56bright_percent_of_nk=bright))
    got = analyze_sample(tube.to_sample()).result.cd56bright_percent_of_nk
    assert got is not None and abs(got - tube.truth["cd56bright_percent_of_nk"]) < 2.0


def test_cd56bright_cells_keep_their_cd16_dim_ones_where_cd16_has_no_valley() -> None:
    """With about 170 NK cells (0.2% of lymphocytes) the CD16+ cells form no peak and the CD16
    cut lies at the negatives' tail; the CD56bright gate's CD16 limit, put there too, left out
    the CD16-dim bright cells: 4.68% for 10.6 (the limit-free gate: 8.19; review 34). The limit
    is drawn only where the CD16+ cells stand as a peak."""
    tube = simulate_tube(SimulationSpec(seed=51, n_events=300_000, nk_percent_of_lymphocytes=0.2))
    a = analyze_sample(tube.to_sample())
    assert a.gating is not None and a.gating.cuts["CD16"].method != "valley"  # the case
    assert len(a.tree["NK CD56bright"].dims) == 1
    got = a.result.cd56bright_percent_of_nk
    assert got is not None and got > 7.0  # truth 10.6 of ~170 NK events


def test_scatter_and_time_named_otherwise_are_not_asked_to_be_compensated() -> None:
    """The compensation check asked for a matrix holding MACSQuant's Time (HDR-T) and scatter
    named "Forward/Side Scatter" (names the alias table accepts), and withheld right results
    (review 34). Scatter and time are the channels the marker map finds, by any name."""
    sample = simulate_tube(SimulationSpec(seed=3)).to_sample()
    names = {"Time": "HDR-T", "FSC-A": "Forward Scatter", "SSC-A": "Side Scatter"}
    renamed = rebuilt(sample, pnn=[names.get(c.pnn, c.pnn) for c in sample.channels])
    a = analyze_sample(renamed)
    assert a.result.reportable, a.result.not_reportable_reasons
    assert next(f for f in a.result.qc if f.check == "compensation").passed


@pytest.mark.parametrize(("share", "brighter"), [(0.2, 4.0), (0.5, 3.0)])
def test_a_cd3_brighter_nk_like_t_subset_keeps_the_cd3_cut_under_the_t_cells(
    share: float, brighter: float
) -> None:
    """A share of the NK-like T cells 3-4× brighter on CD3 (as TCRγδ T cells can be) stood as
    the brightest of three CD3 peaks; taking it put the cut above every ordinary T cell: NK
    15.5-17.4% for 12.6, withheld as "the gate did not find the lymphocytes" (review 34). The
    NK-like T peak is the one where the T cells of all lymphocytes are. Truth: each event's
    simulated population; the brighter signal is detected through the tube's own spillover."""
    tube = simulate_tube(SimulationSpec(seed=301, n_events=60_000, nkt_percent_of_lymphocytes=6))
    assert tube.pre_spillover is not None
    events, pre = np.array(tube.events, copy=True), np.array(tube.pre_spillover, copy=True)
    nkt = np.flatnonzero(tube.labels == "NKT")
    pick = np.random.default_rng(301).choice(nkt, int(share * nkt.size), replace=False)
    channels = list(tube.spillover.channels)
    pre[pick, channels.index("FITC-A")] *= brighter  # CD3 FITC
    detected = pre @ tube.spillover.matrix
    for j, name in enumerate(channels):
        events[pick, tube.pnn.index(name)] = np.minimum(detected[pick, j], 262143.0)
    a = analyze_sample(dataclasses.replace(tube, events=events).to_sample())
    assert a.result.reportable, a.result.not_reportable_reasons
    nk, nkt_pct = a.result.nk_percent_of_lymphocytes, a.result.nk_like_t_percent_of_lymphocytes
    assert nk is not None and abs(nk - tube.truth["nk_percent_of_lymphocytes"]) < 0.3
    assert nkt_pct is not None and abs(nkt_pct - tube.truth["nkt_percent_of_lymphocytes"]) < 0.3
