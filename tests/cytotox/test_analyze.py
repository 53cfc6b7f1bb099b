"""Plate analysis against values worked out by hand from tests/cytotox/plates.py, QC with
reasons, and every kind of bad input: one line naming the file, the well and the cause, while
the other samples are still analysed."""

from __future__ import annotations

import math
from pathlib import Path

import openpyxl
import pytest

from nkpanel.cytotox.analyze import (
    CytotoxSettings,
    analyze_plate,
    analyze_plate_files,
    replicate_cv_flags,
)
from nkpanel.cytotox.layout import PlateLayout
from nkpanel.cytotox.reads import PlateReads
from nkpanel.cytotox.results import CytotoxResult, RatioResult
from nkpanel.errors import ConfigError, InputError

from .plates import CONTROLS, P1, Well, plate_wells, write_plate


def run(tmp_path: Path, wells: dict[str, Well] | None = None, **kw: object) -> CytotoxResult:
    reads_kw = kw.pop("reads", None)
    header = kw.pop("value_header", "value")
    reads, layout = write_plate(tmp_path, wells, reads=reads_kw, value_header=header)  # type: ignore[arg-type]
    settings = kw.pop("settings", None)
    return analyze_plate_files(reads, layout, settings, **kw)  # type: ignore[arg-type]


def lysis(result: CytotoxResult, sample: str, treatment: str, ratio: float) -> list[float | None]:
    cond = result.sample(sample).condition(treatment)
    r = next(r for r in cond.ratios if r.ratio == ratio)
    return [w.lysis_percent for w in r.wells]


def test_hand_calculated_plate(tmp_path: Path) -> None:
    res = run(tmp_path, kind="chromium51", unit="cpm")
    assert not res.failures and res.blank_signal == 100.0 and res.unit == "cpm"
    p1 = res.sample("P1")
    none = p1.condition("none")
    # blank-corrected S = 400, M = 2400; S/M = 16.67%
    assert none.spontaneous_signal == pytest.approx(400.0)
    assert none.maximum_signal == pytest.approx(2400.0)
    assert none.spontaneous_percent_of_maximum == pytest.approx(100 * 400 / 2400)
    assert none.controls == "spontaneous: plate-wide, none; maximum: plate-wide, none"
    assert lysis(res, "P1", "none", 50.0) == pytest.approx([40.0, 42.0, 38.0])
    r50 = none.ratios[0]
    assert (r50.ratio, r50.n, r50.mean_lysis_percent) == (50.0, 3, pytest.approx(40.0))
    assert r50.sd_lysis_percent == pytest.approx(2.0)  # √((0 + 4 + 4) / 2)
    assert r50.cv_lysis_percent == pytest.approx(5.0)  # 2 / 40
    # signals 1200, 1240, 1160: SD 40, CV 40 / 1200
    assert r50.signal_cv_percent == pytest.approx(100 * 40 / 1200)
    assert lysis(res, "P1", "none", 25.0) == pytest.approx([20.0, 20.0, 20.0])
    assert lysis(res, "P1", "none", 12.5) == pytest.approx([10.0, 11.0, 9.0])
    assert lysis(res, "P1", "IVIG 2 mg/mL", 50.0) == pytest.approx([20.0, 21.0, 19.0])
    assert lysis(res, "P1", "IVIG 2 mg/mL", 12.5) == pytest.approx([5.0, 5.0, 5.0])
    assert none.reportable and p1.reportable
    # standard ratio 50:1 was tested: measured
    assert none.standard_ratio.method == "measured"
    assert none.standard_ratio.lysis_percent == pytest.approx(40.0)
    # suppression: (40 − 20) / 40 = 50% at 50:1; (20 − 10) / 20 at 25:1; (10 − 5) / 10 at 12.5:1
    sup = {x.ratio: x for x in p1.suppression}
    assert set(sup) == {50.0, 25.0, 12.5}
    for x in sup.values():
        assert x.suppression_percent == pytest.approx(50.0) and x.basis == "measured"
        assert x.treatment == "IVIG 2 mg/mL" and x.reference_treatment == "none"
    # the lookup by ratio takes a ratio that differs by rounding only (as computed elsewhere)
    (at_12,) = p1.suppression_at(12.5 * (1 + 1e-12))
    assert at_12 is sup[12.5] and p1.suppression_at(12.5, "IVIG 2 mg/mL") == [at_12]
    assert p1.suppression_at(12.5, "none") == [] and p1.suppression_at(6.25) == []


def test_negative_and_zero_lysis_are_reported_as_measured(tmp_path: Path) -> None:
    res = run(tmp_path)
    p2 = res.sample("P2").condition("none")
    assert lysis(res, "P2", "none", 50.0) == pytest.approx([0.0, 0.0, 0.0])
    r25 = next(r for r in p2.ratios if r.ratio == 25.0)
    assert r25.mean_lysis_percent == pytest.approx(-2.0)  # (360 − 400) / 2000
    flag = next(f for f in r25.qc if f.check == "negative_lysis")
    assert not flag.passed and not flag.blocking and "reported as measured" in flag.reason
    assert r25.reportable  # a warning, not a block
    # no positive lysis: no fit, no LU, and the reason is given
    assert p2.fit is None and p2.lytic_units is not None
    assert p2.lytic_units.reason == "no well with positive lysis"
    assert res.sample("P2").suppression == ()


def test_lu_and_interpolated_standard_ratio(tmp_path: Path) -> None:
    # an exact Pross curve A = 40%, k = 0.03 written into a plate (S 400, M 2400, no blank)
    wells: dict[str, Well] = {
        "A1": ("", "spontaneous", "", "", 400.0),
        "A2": ("", "spontaneous", "", "", 400.0),
        "A3": ("", "maximum", "", "", 2400.0),
        "A4": ("", "maximum", "", "", 2400.0),
    }
    for i, ratio in enumerate((40.0, 20.0, 10.0, 5.0)):
        lys = 40.0 * (1 - math.exp(-0.03 * ratio))
        for rep in range(2):
            wells[f"B{2 * i + rep + 1}"] = ("P1", "test", f"{ratio:g}", "", 400 + lys / 100 * 2000)
    settings = CytotoxSettings(targets_per_well=5000, standard_ratio=30.0)
    res = run(tmp_path, wells, settings=settings)
    cond = res.sample("P1").condition("none")
    assert cond.fit is not None and cond.fit.plateau_percent == pytest.approx(40.0, rel=1e-5)
    # LU20: x = ln 2 / 0.03 = 23.10; 10^7 / (23.10 × 5000) = 86.56 LU per 10^7 effectors
    assert cond.lytic_units is not None
    assert cond.lytic_units.lu_per_1e7_effectors == pytest.approx(
        1e7 / (math.log(2) / 0.03 * 5000), rel=1e-5
    )
    # 30:1 was not tested: read off the curve, 40 (1 − e^(−0.9)) = 23.74%, interpolated
    std = cond.standard_ratio
    assert std.method == "interpolated"
    assert std.lysis_percent == pytest.approx(40 * (1 - math.exp(-0.9)), rel=1e-5)
    # 50:1 beyond the tested 40:1: extrapolated, with a warning
    res50 = run(tmp_path / "b", wells, settings=CytotoxSettings(standard_ratio=50.0))
    c50 = res50.sample("P1").condition("none")
    assert c50.standard_ratio.method == "extrapolated"
    assert any(f.check == "standard_ratio_extrapolated" and not f.passed for f in c50.qc)


def test_model_based_suppression_at_an_untested_standard_ratio(tmp_path: Path) -> None:
    res = run(tmp_path, settings=CytotoxSettings(standard_ratio=30.0))
    sup = [x for x in res.sample("P1").suppression if x.basis == "model"]
    assert len(sup) == 1 and sup[0].ratio == 30.0
    p1 = res.sample("P1")
    a = p1.condition("none").standard_ratio.lysis_percent
    b = p1.condition("IVIG 2 mg/mL").standard_ratio.lysis_percent
    assert a is not None and b is not None
    assert sup[0].suppression_percent == pytest.approx(100 * (a - b) / a)


def test_outliers_are_flagged_and_kept(tmp_path: Path) -> None:
    wells = plate_wells()
    # P1 none 25:1 becomes 20, 21, 30 % (E = 500 + 20 × 20 …)
    wells["B4"] = ("P1", "test", "25", "none", 900.0)
    wells["B5"] = ("P1", "test", "25", "none", 920.0)
    wells["B6"] = ("P1", "test", "25", "none", 1100.0)
    res = run(tmp_path, wells)
    r = next(r for r in res.sample("P1").condition("none").ratios if r.ratio == 25.0)
    assert r.outlier_wells == ("B6",)
    assert r.mean_lysis_percent == pytest.approx((20 + 21 + 30) / 3)  # kept in the mean
    assert r.mean_lysis_excluding_outliers_percent == pytest.approx(20.5)
    flag = next(f for f in r.qc if f.check == "outliers")
    assert "B6" in flag.reason and not flag.blocking


@pytest.mark.parametrize(
    ("change", "check", "reason"),
    [
        # S 1000 (900 corrected) vs M 2400: 900 / 2400 = 37.5% > 30%
        ({"A1": 1000.0, "A2": 1000.0, "A3": 1000.0}, "spontaneous_release", "37.5% of maximum"),
        # M ≤ S
        ({"A4": 400.0, "A5": 400.0, "A6": 400.0}, "maximum_above_spontaneous", "not above"),
        # maximum wells 1500, 2500, 3500 (corrected 1400, 2400, 3400): SD 1000, CV 41.7%
        (
            {"A4": 1500.0, "A5": 2500.0, "A6": 3500.0},
            "maximum_replicate_signal_cv",
            "signal CV 41.7% (CV of the blank-corrected signals) is above the 20% limit",
        ),
    ],
)
def test_control_qc_blocks_with_reasons(
    tmp_path: Path, change: dict[str, float], check: str, reason: str
) -> None:
    wells = plate_wells()
    for w, v in change.items():
        s, role, ratio, t, _ = wells[w]
        wells[w] = (s, role, ratio, t, v)
    res = run(tmp_path, wells)
    cond = res.sample("P1").condition("none")
    flag = next(f for f in cond.qc if f.check == check)
    assert not flag.passed and flag.blocking and reason in flag.reason
    assert not cond.reportable and not res.sample("P1").reportable
    assert any(reason in r for r in res.sample("P1").not_reportable_reasons)
    if check == "maximum_above_spontaneous":
        assert all(x is None for x in lysis(res, "P1", "none", 50.0))


def test_spontaneous_below_the_blank_is_a_warning(tmp_path: Path) -> None:
    wells = plate_wells()
    for w in ("A7", "A8", "A9"):
        wells[w] = ("", "blank", "", "none", 600.0)  # blank above spontaneous (500)
    res = run(tmp_path, wells)
    cond = res.sample("P1").condition("none")
    flag = next(f for f in cond.qc if f.check == "spontaneous_above_blank")
    assert not flag.passed and not flag.blocking and "below the medium blank by 100" in flag.reason
    # % lysis does not depend on the blank: still 40, 42, 38
    assert lysis(res, "P1", "none", 50.0) == pytest.approx([40.0, 42.0, 38.0])


def test_a_blank_at_the_maximum_withholds_instead_of_skipping_the_spontaneous_check(
    tmp_path: Path,
) -> None:
    """Audit 20: blank and maximum wells swapped (blank 3000 against maximum 2500) made the
    blank-corrected maximum −500, and the S/M check was skipped, so a plate that cannot be
    judged was reportable. % lysis itself does not depend on the blank (still 40, 42, 38)."""
    wells = plate_wells()
    for w in ("A7", "A8", "A9"):
        wells[w] = ("", "blank", "", "none", 3000.0)
    res = run(tmp_path, wells)
    cond = res.sample("P1").condition("none")
    flag = next(f for f in cond.qc if f.check == "spontaneous_release")
    assert not flag.passed and flag.blocking
    assert flag.value == pytest.approx(-500.0)  # 2500 − 3000
    assert "blank and maximum wells swapped?" in flag.reason
    assert not cond.reportable
    assert lysis(res, "P1", "none", 50.0) == pytest.approx([40.0, 42.0, 38.0])


def test_lysis_above_100_percent_is_withheld(tmp_path: Path) -> None:
    """Audit 20: wells releasing more than the maximum (110% lysis) were reportable with no
    flag. By hand: (2800 − 100 − 400) / 2000 = 115%, (2700 − 500) / 2000 = 110%, (2600 − 500) /
    2000 = 105%: mean 110%, above 100: not reportable, with the reason. 100% itself is not."""
    wells = plate_wells()
    for w, v in (("B1", 2800.0), ("B2", 2700.0), ("B3", 2600.0)):
        s, role, ratio, t, _ = wells[w]
        wells[w] = (s, role, ratio, t, v)
    res = run(tmp_path, wells)
    cond = res.sample("P1").condition("none")
    r50 = next(r for r in cond.ratios if r.ratio == 50.0)
    assert r50.mean_lysis_percent == pytest.approx(110.0)
    flag = next(f for f in r50.qc if f.check == "lysis_above_maximum")
    assert not flag.passed and flag.blocking and "check the maximum-release wells" in flag.reason
    assert not cond.reportable
    assert any(
        r.startswith("50:1: mean lysis 110.0% is above 100%") for r in cond.not_reportable_reasons
    )
    for w in ("B1", "B2", "B3"):  # 2500 − 500 = 2000: exactly 100%
        s, role, ratio, t, _ = wells[w]
        wells[w] = (s, role, ratio, t, 2500.0)
    at_100 = run(tmp_path / "b", wells).sample("P1").condition("none")
    assert not any(f.check == "lysis_above_maximum" for r in at_100.ratios for f in r.qc)


def test_a_ratio_typed_twice_is_withheld_by_its_replicate_numbers(tmp_path: Path) -> None:
    """Audit 20: P1's 25:1 wells typed "50" merged into six wells at 50:1, reportable, and
    the 25:1 point was gone. By hand: wells 40, 42, 38 and 20, 20, 20 % → mean 30%. With a
    replicate column (1, 2, 3, 1, 2, 3) the repeat is certain: withheld, naming the wells;
    without one, six wells where the other ratio has three is a warning."""
    wells = {**CONTROLS, **{w: v for w, v in P1.items() if v[3] == "none"}}
    for w in ("B4", "B5", "B6"):
        s_, role, _, t, v = wells[w]
        wells[w] = (s_, role, "50", t, v)
    reps = {"B1": 1, "B2": 2, "B3": 3, "B4": 1, "B5": 2, "B6": 3, "B7": 1, "B8": 2, "B9": 3}
    reads, _ = write_plate(tmp_path / "plain", wells)
    layout = tmp_path / "layout.csv"
    lines = ["well,sample,role,ratio,treatment,replicate"]
    lines += [
        f"{w},{s_},{r},{ratio},{t},{reps.get(w, '')}" for w, (s_, r, ratio, t, _) in wells.items()
    ]
    layout.write_text("\n".join(lines) + "\n")
    cond = analyze_plate_files(reads, layout).sample("P1").condition("none")
    r50 = next(r for r in cond.ratios if r.ratio == 50.0)
    assert r50.n == 6 and r50.mean_lysis_percent == pytest.approx(30.0)
    flag = next(f for f in r50.qc if f.check == "replicates_distinct")
    assert not flag.passed and flag.blocking and not cond.reportable
    assert flag.reason.startswith("wells B1 and B4 are both replicate 1 at 50:1")
    # no replicate column: a warning only (two ratios' wells are not told apart for certain)
    plain = run(tmp_path / "p", wells).sample("P1").condition("none")
    flag = next(f for r in plain.ratios for f in r.qc if f.check == "replicates_distinct")
    assert not flag.passed and not flag.blocking
    assert flag.reason.startswith(
        "6 wells at 50:1, where another ratio of the condition has 3: more replicates by design"
    )
    # the hand plate itself (three wells at each ratio) says nothing
    ok = run(tmp_path / "ok").sample("P1").condition("none")
    assert not any(f.check == "replicates_distinct" for r in ok.ratios for f in r.qc)


def test_replicate_cv_above_the_limit(tmp_path: Path) -> None:
    wells = plate_wells()
    # corrected 1000, 1500, 2000: signal CV = 500 / 1500 = 33.3% > 20%
    # lysis (c − 400) / 2000: 30, 55, 80%; SD 25, lysis CV = 25 / 55 = 45.5% (≥ 10% lysis)
    for w, v in (("B1", 1100.0), ("B2", 1600.0), ("B3", 2100.0)):
        wells[w] = ("P1", "test", "50", "none", v)
    res = run(tmp_path, wells)
    r = res.sample("P1").condition("none").ratios[0]
    flag = next(f for f in r.qc if f.check == "replicate_signal_cv")
    assert flag.value == pytest.approx(100 / 3) and not flag.passed and not r.reportable
    assert flag.reason == (
        "signal CV 33.3% (CV of the replicate wells' blank-corrected signals) "
        "is above the 20% limit"
    )
    lysis_flag = next(f for f in r.qc if f.check == "replicate_lysis_cv")
    assert lysis_flag.value == pytest.approx(100 * 25 / 55) and not lysis_flag.passed
    assert not lysis_flag.blocking
    row = res.rows()[0]
    assert row["reportable"] is False and "signal CV 33.3%" in row["flags"]
    assert row["cv_lysis_percent"] == pytest.approx(100 * 25 / 55)
    assert row["signal_cv_percent"] == pytest.approx(100 / 3)
    # a lab with a looser limit
    res2 = run(tmp_path / "b", wells, settings=CytotoxSettings(cv_limit_percent=40.0))
    assert res2.sample("P1").condition("none").ratios[0].reportable


def _ratio(res: CytotoxResult, treatment: str, ratio: float) -> RatioResult:
    return next(r for r in res.sample("P1").condition(treatment).ratios if r.ratio == ratio)


def test_lysis_cv_is_a_warning_from_ten_percent_lysis(tmp_path: Path) -> None:
    """The signal CV blocks; the CV of % lysis warns above the same limit at ≥ 10% lysis.

    S = 400, M = 2400 (span 2000), blank 100 (tests/cytotox/plates.py).
    """
    wells = plate_wells()
    # none 12.5:1 → corrected 580, 640, 700: mean 640, SD 60, signal CV 60 / 640 = 9.375%;
    # lysis (c − 400) / 20 = 9, 12, 15%: mean 12, SD 3, lysis CV 3 / 12 = 25% > 20%
    for w, v in (("B7", 680.0), ("B8", 740.0), ("B9", 800.0)):
        wells[w] = ("P1", "test", "12.5", "none", v)
    # IVIG 12.5:1 → corrected 460, 500, 540: mean 500, SD 40, signal CV 8%;
    # lysis 3, 5, 7%: mean 5, SD 2, lysis CV 40%, but below the 10% floor: not judged
    for w, v in (("C7", 560.0), ("C8", 600.0), ("C9", 640.0)):
        wells[w] = ("P1", "test", "12.5", "IVIG 2 mg/mL", v)
    res = run(tmp_path, wells)

    warned = _ratio(res, "none", 12.5)
    assert warned.signal_cv_percent == pytest.approx(9.375)
    assert warned.cv_lysis_percent == pytest.approx(25.0)
    flags = {f.check: f for f in warned.qc}
    sig, lys = flags["replicate_signal_cv"], flags["replicate_lysis_cv"]
    assert sig.passed and sig.blocking and sig.value == pytest.approx(9.375)
    assert sig.reason == (
        "signal CV 9.4% (CV of the replicate wells' blank-corrected signals; limit 20%)"
    )
    assert not lys.passed and not lys.blocking
    assert (lys.value, lys.limit) == (pytest.approx(25.0), 20.0)
    assert lys.reason.startswith(
        "% lysis CV 25.0% at a mean lysis of 12.0% is above the 20% limit: the replicates "
        "disagree on the reported lysis"
    )
    assert warned.reportable  # a warning, not a block
    row = next(r for r in res.rows() if r["treatment"] == "none" and r["ratio"] == 12.5)
    assert row["cv_lysis_percent"] == pytest.approx(25.0)
    assert row["signal_cv_percent"] == pytest.approx(9.375)
    assert row["reportable"] is True and "replicate_lysis_cv: % lysis CV 25.0%" in row["flags"]

    low = _ratio(res, "IVIG 2 mg/mL", 12.5)
    assert low.mean_lysis_percent == pytest.approx(5.0)
    assert low.cv_lysis_percent == pytest.approx(40.0)  # in the table, not flagged
    assert low.signal_cv_percent == pytest.approx(8.0)
    assert [f.check for f in low.qc] == ["replicate_signal_cv"] and low.reportable

    # above the floor and within the limit: 50:1 → 40, 42, 38%, lysis CV 2 / 40 = 5%
    ok = next(f for f in _ratio(res, "none", 50.0).qc if f.check == "replicate_lysis_cv")
    assert ok.passed and ok.value == pytest.approx(5.0)
    assert ok.reason == "% lysis CV 5.0% at a mean lysis of 40.0% (limit 20%)"

    # a lab's own floor: from 4% lysis the IVIG 12.5:1 wells are judged too (40% > 20%)
    res4 = run(tmp_path / "b", wells, settings=CytotoxSettings(lysis_cv_floor_percent=4.0))
    low4 = next(f for f in _ratio(res4, "IVIG 2 mg/mL", 12.5).qc if f.check == "replicate_lysis_cv")
    assert not low4.passed and low4.value == pytest.approx(40.0)


def test_replicate_cv_flags_by_hand() -> None:
    # no lysis (controls missing): only the signal check
    (only,) = replicate_cv_flags(12.0, None, None)
    assert only.check == "replicate_signal_cv" and only.passed
    # one well: neither CV exists, no check
    assert replicate_cv_flags(None, None, 30.0) == []
    # at the floor exactly the lysis CV is judged; the limit itself passes
    at_floor = replicate_cv_flags(5.0, 20.0, 10.0)
    assert [(f.check, f.passed) for f in at_floor] == [
        ("replicate_signal_cv", True),
        ("replicate_lysis_cv", True),
    ]
    # flow killing names its signal
    (flow,) = replicate_cv_flags(25.0, None, None, signal_name="the replicate tubes' dead %")
    assert not flow.passed and flow.reason == (
        "signal CV 25.0% (CV of the replicate tubes' dead %) is above the 20% limit"
    )


def test_missing_controls_and_sample_controls_preferred(tmp_path: Path) -> None:
    wells = {k: v for k, v in plate_wells().items() if k not in ("A4", "A5", "A6")}
    res = run(tmp_path, wells)
    cond = res.sample("P1").condition("none")
    flag = next(f for f in cond.qc if f.check == "controls_present")
    assert not flag.passed and "no maximum-release wells" in flag.reason
    assert cond.ratios[0].mean_lysis_percent is None
    # P1's own spontaneous wells win over the plate-wide ones for P1 only
    wells = plate_wells()
    wells["E1"] = ("P1", "spontaneous", "", "none", 300.0)
    wells["E2"] = ("P1", "spontaneous", "", "none", 300.0)
    res = run(tmp_path / "b", wells)
    c1 = res.sample("P1").condition("none")
    assert c1.controls.startswith("spontaneous: sample P1, none")
    # IVIG has no controls of its own: P1's untreated ones serve
    assert res.sample("P1").condition("IVIG 2 mg/mL").spontaneous_signal == pytest.approx(200.0)
    # (1200 − 200) / (2400 − 200) for B1
    assert lysis(res, "P1", "none", 50.0)[0] == pytest.approx(100 * 1000 / 2200)
    assert res.sample("P2").condition("none").spontaneous_signal == pytest.approx(400.0)


def test_effector_spontaneous_release_is_subtracted(tmp_path: Path) -> None:
    wells = {**CONTROLS, **{k: v for k, v in P1.items() if v[3] == "none"}}
    wells["E1"] = ("P1", "effector_spontaneous", "50", "none", 200.0)  # corrected 100
    wells["E2"] = ("P1", "effector_spontaneous", "50", "none", 200.0)
    res = run(tmp_path, wells)
    # 50:1 → (1200 − 100 − 400) / 2000 = 35%
    assert lysis(res, "P1", "none", 50.0)[0] == pytest.approx(35.0)
    r25 = next(r for r in res.sample("P1").condition("none").ratios if r.ratio == 25.0)
    flag = next(f for f in r25.qc if f.check == "effector_spontaneous")
    assert not flag.passed and "25:1" in flag.reason


# --- bad input: one line naming the file, the well and the cause; the others analysed -------


def failure_lines(res: CytotoxResult, sample: str) -> tuple[str, ...]:
    return next(f.reasons for f in res.failures if f.sample == sample)


def assert_p1_analysed(res: CytotoxResult) -> None:
    assert [s.sample for s in res.samples] == ["P1"]
    assert lysis(res, "P1", "none", 50.0) == pytest.approx([40.0, 42.0, 38.0])


def test_layout_well_absent_from_the_reads(tmp_path: Path) -> None:
    res = run(tmp_path, reads={"D2": "<absent>"})
    assert_p1_analysed(res)
    (line,) = failure_lines(res, "P2")
    assert line.startswith(str(tmp_path / "reads.csv") + ": well D2: no value")
    assert "layout assigns it (test, sample P2, 50:1)" in line and "\n" not in line


def test_reads_without_layout(tmp_path: Path) -> None:
    reads, layout = write_plate(tmp_path)
    with reads.open("a") as fh:
        fh.write("H11,77\nH12,78\n")
    res = analyze_plate_files(reads, layout)
    assert not res.failures and len(res.samples) == 2
    assert any(
        n.startswith(f"{reads}: 2 well(s) with a value but no layout entry (H11 H12)")
        for n in res.notes
    )
    # a layout that matches nothing in the reads: the whole plate stops, naming the layout
    other = tmp_path / "other.csv"
    other.write_text("well,sample,role,ratio,treatment\nP1,X,test,50,\nP2,X,test,50,\n")
    with pytest.raises(InputError, match="none of its 2 wells has a value") as info:
        analyze_plate_files(reads, other)
    assert str(info.value).startswith(str(other))


def test_duplicate_wells_in_reads_and_layout(tmp_path: Path) -> None:
    reads, layout = write_plate(tmp_path)
    with reads.open("a") as fh:
        fh.write("D1,510\n")
    res = analyze_plate_files(reads, layout)
    assert_p1_analysed(res)
    (line,) = failure_lines(res, "P2")
    # header line 1, 9 control lines, 18 of P1: D1 is line 29; the appended line is 35
    assert line == f"{reads}: well D1: listed twice (lines 29 and 35)"
    reads2, layout2 = write_plate(tmp_path / "b")
    with layout2.open("a") as fh:
        fh.write("D1,P2,test,25,none\n")
    res = analyze_plate_files(reads2, layout2)
    assert_p1_analysed(res)
    (line,) = failure_lines(res, "P2")
    assert line == f"{layout2}: well D1: assigned twice (lines 29 and 35)"


def test_text_in_a_numeric_cell(tmp_path: Path) -> None:
    res = run(tmp_path, reads={"D3": "OVER"})
    assert_p1_analysed(res)
    (line,) = failure_lines(res, "P2")
    assert line == f"{tmp_path / 'reads.csv'}: well D3: text 'OVER' in a numeric cell (line 31)"


def test_text_in_a_shared_control_fails_every_sample_that_uses_it(tmp_path: Path) -> None:
    res = run(tmp_path, reads={"A4": "n/a"})
    assert res.samples == ()
    assert {f.sample for f in res.failures} == {"P1", "P2"}
    assert all("well A4: text 'n/a'" in f.reasons[0] for f in res.failures)


def test_a_bad_blank_well_is_noted_not_fatal(tmp_path: Path) -> None:
    res = run(tmp_path, reads={"A9": "?"})
    assert not res.failures and res.blank_signal == 100.0
    assert any("well A9: text '?'" in n and "left out of the blank mean" in n for n in res.notes)


def test_unknown_units(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"reads.csv: unknown unit 'parsecs'"):
        run(tmp_path, value_header="value (parsecs)")
    wells = plate_wells()
    wells["D4"] = ("P2", "test", "25:1", "intralipid 2%", 460.0)
    res = run(tmp_path / "b", wells)
    assert_p1_analysed(res)
    (line,) = failure_lines(res, "P2")
    assert line.startswith(f"{tmp_path / 'b' / 'layout.csv'}: well D4: treatment 'intralipid 2%'")
    assert "unknown concentration unit '%'" in line


def test_a_ratio_without_replicates(tmp_path: Path) -> None:
    wells = {k: v for k, v in plate_wells().items() if k not in ("D5", "D6")}
    res = run(tmp_path, wells)
    assert_p1_analysed(res)
    (line,) = failure_lines(res, "P2")
    assert line == (
        f"{tmp_path / 'layout.csv'}: well D4: sample P2, none, 25:1 has 1 well(s) where at "
        "least 2 replicates are needed"
    )
    # a lab that runs single wells can say so
    res = run(tmp_path / "b", wells, settings=CytotoxSettings(min_replicates=1))
    assert not res.failures
    r = next(r for r in res.sample("P2").condition("none").ratios if r.ratio == 25.0)
    assert r.sd_lysis_percent is None and r.cv_lysis_percent is None


def test_an_empty_sheet(tmp_path: Path) -> None:
    reads = tmp_path / "reads.xlsx"
    book = openpyxl.Workbook()
    book.save(reads)
    _, layout = write_plate(tmp_path)
    with pytest.raises(InputError) as info:
        analyze_plate_files(reads, layout)
    assert str(info.value) == f"{reads} [sheet Sheet]: the sheet is empty"
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        analyze_plate_files(empty, layout)


def test_unknown_role_and_missing_sample_are_listed_apart(tmp_path: Path) -> None:
    reads, layout = write_plate(tmp_path)
    with layout.open("a") as fh:
        fh.write("H1,,maxx,,\nH2,,test,50,\n")
    with reads.open("a") as fh:
        fh.write("H1,1\nH2,2\n")
    res = analyze_plate_files(reads, layout)
    assert len(res.samples) == 2
    lines = failure_lines(res, "")
    assert any("well H1: unknown role 'maxx'" in x for x in lines)
    assert any("well H2: test well without a sample id" in x for x in lines)


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="lysis_level_percent"):
        CytotoxSettings(lysis_level_percent=120)
    with pytest.raises(ConfigError, match="min_replicates"):
        CytotoxSettings(min_replicates=0)
    for floor in (-1.0, 100.0, math.nan):
        with pytest.raises(ConfigError, match="lysis_cv_floor_percent"):
            CytotoxSettings(lysis_cv_floor_percent=floor)


def test_in_memory_plate() -> None:
    reads = PlateReads.from_mapping({w: v for w, (*_, v) in plate_wells().items()})
    layout = PlateLayout.from_rows(
        {"well": w, "sample": s, "role": r, "ratio": ratio, "treatment": t}
        for w, (s, r, ratio, t, _) in plate_wells().items()
    )
    res = analyze_plate(reads, layout)
    assert lysis(res, "P1", "IVIG 2 mg/mL", 25.0) == pytest.approx([10.0, 10.0, 10.0])
    assert not res.synthetic and len(res.rows()) == 8


def test_a_reference_band_needs_its_source() -> None:
    """Audit 20: limits given without a source were drawn on the figure as "reference"; every
    interval nkpanel shows names where it is from (README, domain brief)."""
    from nkpanel.cytotox.analyze import ReferenceBand

    with pytest.raises(ConfigError, match="reference band: its source is required"):
        ReferenceBand.from_limits(15.0, 60.0)
    with pytest.raises(ConfigError, match="its source is required"):
        ReferenceBand.from_limits(15.0, 60.0, source="  ")
    band = ReferenceBand.from_limits(15.0, 60.0, source="Lab validation 2025 (n = 40)")
    assert band is not None and band.source == "Lab validation 2025 (n = 40)"


def test_suppression_read_beyond_the_tested_ratios_says_so(tmp_path: Path) -> None:
    """Audit 20: suppression at an untested 100:1 was read off curves fitted up to 50:1 (it
    came out −4% where the wells measured +30%) with no caveat. Its note now says so; at an
    untested ratio within the tested ones (30:1) it does not."""
    beyond = run(tmp_path, settings=CytotoxSettings(standard_ratio=100.0))
    (x,) = [x for x in beyond.sample("P1").suppression if x.basis == "model"]
    assert x.ratio == 100.0 and x.note is not None and x.extrapolated
    assert "beyond the tested ratios at 100:1, not measured there" in x.note
    within = run(tmp_path / "w", settings=CytotoxSettings(standard_ratio=30.0))
    (y,) = [x for x in within.sample("P1").suppression if x.basis == "model"]
    assert (y.note is None or "beyond" not in y.note) and not y.extrapolated
