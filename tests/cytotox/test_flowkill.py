"""Flow-based killing on synthetic tubes (labelled synthetic): gating against the simulator's
truth, killing against the formula worked by hand from the truth counts, and bad tubes."""

from __future__ import annotations

import json
from array import array
from pathlib import Path

import flowio
import pytest

from nkpanel.cytotox.analyze import CytotoxSettings
from nkpanel.cytotox.flowkill import FlowKillingSettings, analyze_flow_killing, read_tube_list
from nkpanel.cytotox.simulate import FlowKillingSpec, SimulatedSample, write_synthetic_flow_killing
from nkpanel.errors import InputError


@pytest.fixture(scope="module")
def tubes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("killing")
    tube_list, truth = write_synthetic_flow_killing(
        out, FlowKillingSpec(seed=5, target_events=2000)
    )
    return tube_list, json.loads(truth.read_text())


def test_dead_targets_match_the_truth(tubes: tuple[Path, dict[str, object]]) -> None:
    tube_list, truth = tubes
    fk = analyze_flow_killing(tube_list)
    assert fk.result.synthetic and not fk.result.failures
    by_name = {Path(g.tube).name: g for g in fk.gating}
    rows = truth["tubes"]
    assert isinstance(rows, list)
    for t in rows:
        g = by_name[t["tube"]]
        assert g.label_channel == "FL1-A" and g.dead_channel == "FL3-A"
        # targets found, and the dead among them, within 1% of the targets
        assert abs(g.n_targets - t["targets"]) <= 0.01 * t["targets"]
        assert abs(g.n_dead_targets - t["dead_targets"]) <= 0.01 * t["targets"]


def test_killing_is_the_formula_on_the_dead_fractions(
    tubes: tuple[Path, dict[str, object]],
) -> None:
    tube_list, _ = tubes
    fk = analyze_flow_killing(tube_list)
    dead = {Path(g.tube).name: g.dead_percent for g in fk.gating}
    d_t = dead["targets_alone_none.fcs"]
    d_e = dead["none_et50.fcs"]
    assert d_t is not None and d_e is not None
    cond = fk.result.sample("SYNTH-P01").condition("none")
    assert cond.spontaneous_percent_of_maximum == pytest.approx(d_t)
    r50 = next(r for r in cond.ratios if r.ratio == 50.0)
    assert r50.mean_lysis_percent == pytest.approx((d_e - d_t) / (100 - d_t) * 100)
    assert r50.n == 1 and r50.sd_lysis_percent is None
    # and close to the simulated killing at 50:1, 45 (1 − e^(−1)) = 28.4%
    assert r50.mean_lysis_percent == pytest.approx(28.4, abs=3.0)
    ivig = fk.result.sample("SYNTH-P01").condition("IVIG 2 mg/mL")
    assert ivig.controls == "targets alone: sample SYNTH-P01, IVIG 2 mg/mL"
    assert any(x.ratio == 50.0 and x.suppression_percent for x in fk.result.samples[0].suppression)


def _write_fcs(path: Path, pnn: list[str], pns: list[str], n: int = 200) -> None:
    data = array("f", [100.0] * (n * len(pnn)))
    with path.open("wb") as fh:
        flowio.create_fcs(fh, data, pnn, pns, {"$COM": "SYNTHETIC test tube"})


def test_bad_tubes_fail_their_sample_only(
    tubes: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    tube_list, _ = tubes
    good = tube_list.parent / "tubes"
    no_dye = tmp_path / "no_dye.fcs"
    _write_fcs(no_dye, ["FSC-A", "FL1-A"], ["", "CFSE"])
    broken = tmp_path / "broken.fcs"
    broken.write_bytes(b"FCS3.1 truncated")
    lst = tmp_path / "tubes.csv"
    lst.write_text(
        "file,sample,role,ratio,treatment\n"
        f"{good / 'targets_alone_none.fcs'},P1,targets,,none\n"
        f"{good / 'none_et50.fcs'},P1,test,50,none\n"
        f"{good / 'none_et25.fcs'},P1,test,25,none\n"
        "no_dye.fcs,P2,targets,,none\n"
        "broken.fcs,P2,test,50,none\n"
        "missing.fcs,P2,test,25,none\n"
        "missing.fcs,P3,test,lots,none\n"
    )
    fk = analyze_flow_killing(lst)
    assert [s.sample for s in fk.result.samples] == ["P1"]
    reasons = {f.sample: f.reasons for f in fk.result.failures}
    p2 = reasons["P2"]
    assert any(r.startswith(f"{no_dye}: required marker(s) DeadDye not found") for r in p2)
    assert any(r.startswith(str(broken)) for r in p2)
    assert any(r.startswith(str(tmp_path / "missing.fcs")) for r in p2)
    (p3,) = reasons["P3"]
    assert p3.startswith(f"{lst}: tube missing.fcs: ratio 'lots' is not a number")


def test_channel_override_and_events_qc(tmp_path: Path) -> None:
    spec = FlowKillingSpec(
        seed=2, target_events=300, sample=SimulatedSample("S", 40.0, 0.03), ratios=(50.0, 12.5)
    )
    tube_list, _ = write_synthetic_flow_killing(tmp_path, spec)
    fk = analyze_flow_killing(tube_list, FlowKillingSettings(label_channel="FL1-A"))
    r = fk.result.sample("S").condition("none").ratios[0]
    flag = next(f for f in r.qc if f.check == "target_events")
    assert not flag.passed and not r.reportable and "300 target events" in flag.reason
    ok = analyze_flow_killing(tube_list, FlowKillingSettings(min_target_events=100))
    assert ok.result.sample("S").reportable


def test_high_background_death_is_not_reportable(tmp_path: Path) -> None:
    spec = FlowKillingSpec(seed=3, target_events=1500, targets_dead_percent=40.0, ratios=(50.0,))
    tube_list, _ = write_synthetic_flow_killing(tmp_path, spec)
    fk = analyze_flow_killing(
        tube_list, FlowKillingSettings(cytotox=CytotoxSettings(min_replicates=1))
    )
    cond = fk.result.sample("SYNTH-P01").condition("none")
    flag = next(f for f in cond.qc if f.check == "spontaneous_release")
    assert not flag.passed and "targets alone are" in flag.reason and "% dead" in flag.reason


def test_a_tube_list_read_once_is_analysed_as_given(
    tubes: tuple[Path, dict[str, object]],
) -> None:
    tube_list, truth = tubes
    listed = read_tube_list(tube_list)
    rows = truth["tubes"]
    assert isinstance(rows, list) and len(listed.entries) == len(rows)
    assert listed.synthetic and not listed.problems
    # analysed from the list as read: the same result as from its path
    assert (
        analyze_flow_killing(listed).result.rows() == analyze_flow_killing(tube_list).result.rows()
    )
    # a list without the SYNTHETIC line is not marked as synthetic by itself
    plain = tube_list.with_name("plain_tubes.csv")
    lines = tube_list.read_text().splitlines()
    plain.write_text("\n".join(x for x in lines if "SYNTHETIC" not in x) + "\n")
    assert not read_tube_list(plain).synthetic


def test_tube_list_errors(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="no header with 'file' and 'role'"):
        read_tube_list(p)
    p.write_text("file,role\n")
    with pytest.raises(InputError, match=r"empty|names no tube"):
        read_tube_list(p)


def test_a_tube_listed_twice_is_not_two_replicates(
    tubes: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    """Audit 20: the same FCS file listed twice counted as two replicates (CV 0, reportable);
    plate wells listed twice were refused. The second listing is the sample's problem."""
    tube_list, _ = tubes
    good = tube_list.parent / "tubes"
    lst = tmp_path / "tubes.csv"
    lst.write_text(
        "file,sample,role,ratio,treatment\n"
        f"{good / 'targets_alone_none.fcs'},P1,targets,,none\n"
        f"{good / 'none_et50.fcs'},P1,test,50,none\n"
        f"{good / 'none_et50.fcs'},P1,test,50,none\n"
    )
    parsed = read_tube_list(lst)
    assert len(parsed.entries) == 2
    # one targets-alone tube shared by two samples is listed once for each (review 21)
    lst.write_text(
        lst.read_text() + f"{good / 'targets_alone_none.fcs'},P2,targets,,none\n"
        f"{good / 'none_et25.fcs'},P2,test,25,none\n"
    )
    parsed = read_tube_list(lst)
    assert len(parsed.entries) == 4 and "P2" not in parsed.problems
    # a test tube is one sample's: listed for another too, refused there (review 22)
    lst.write_text(lst.read_text() + f"{good / 'none_et25.fcs'},P3,test,25,none\n")
    (taken,) = read_tube_list(lst).problems["P3"]
    assert "listed twice (lines 6 and 7)" in taken
    # no tube is both a sample's targets-alone control and its test tube (review 23: 0% lysis)
    lst.write_text(lst.read_text() + f"{good / 'targets_alone_none.fcs'},P1,test,12.5,none\n")
    assert any("(lines 2 and 8)" in p for p in read_tube_list(lst).problems["P1"])
    (problem,) = parsed.problems["P1"]
    assert problem == (
        f"{lst}: tube {good / 'none_et50.fcs'}: listed twice (lines 3 and 4): one tube is one "
        "replicate"
    )
