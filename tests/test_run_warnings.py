"""``nkpanel run`` prints, after its tables, the warnings of every biomarker's results (failed
non-blocking checks; for a biopsy also the notes that may have moved a count), each once,
naming the specimen. SYNTHETIC cases and summaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from nkpanel.cli import _cytotoxicity_warnings, _endometrial_warnings, app
from nkpanel.uterine.batch import pool_results
from tests.uterine.test_console_warnings import AUTO, INK, PIXEL, slide

runner = CliRunner()


def test_a_biopsys_warnings_name_the_biopsy_and_the_image() -> None:
    image = slide("slide_a", (PIXEL, INK, AUTO))
    pooled = pool_results([image], "biopsy-1", protocol_fields=10)
    entry = {"id": "biopsy-1", "uterine": pooled.summary(), "images": [image.summary()]}
    assert _endometrial_warnings([entry]) == [
        f"endometrial biopsy biopsy-1, slide_a: {PIXEL}",
        f"endometrial biopsy biopsy-1, slide_a: {INK}",
        "endometrial biopsy biopsy-1, slide_a: only 3 random ×400 fields of stroma (protocol: 10)",
    ]  # the automatic exclusion is a note, left to the report


def test_a_biopsy_that_failed_as_a_whole_has_no_warning() -> None:
    entry = {"id": "b", "uterine": None, "images": [], "failures": [{"source": "b"}]}
    assert _endometrial_warnings([entry]) == []


def _check(check: str, passed: bool, reason: str, blocking: bool) -> dict[str, Any]:
    return {"check": check, "passed": passed, "reason": reason, "blocking": blocking}


def test_a_plates_failed_non_blocking_checks_name_plate_sample_treatment_and_ratio() -> None:
    plate = {
        "id": "nk-1",
        "samples": [
            {
                "sample": "P01",
                "conditions": [
                    {
                        "treatment": "IVIG",
                        "qc": [_check("fit_quality", False, "fit R² 0.71", False)],
                        "ratios": [
                            {
                                "ratio_label": "50:1",
                                "qc": [
                                    _check("replicate_lysis_cv", False, "lysis CV 31%", False),
                                    _check("replicate_signal_cv", False, "signal CV 40%", True),
                                    _check("outliers", True, "no outlier", False),
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    assert _cytotoxicity_warnings([plate]) == [
        "NK activity nk-1, sample P01 with IVIG: fit R² 0.71",
        "NK activity nk-1, sample P01 with IVIG at 50:1: lysis CV 31%",
    ]  # a blocking failure is the table's NOT REPORTABLE, not a warning


def test_run_prints_an_endometrial_warning_once(tmp_path: Path) -> None:
    """Field images at 0.5 µm/pixel with 0.6 given: CD56+ per mm² off by (0.6/0.5)² = 1.44,
    which the console says once (it was shown only in the report)."""
    fields = tmp_path / "fields"
    from nkpanel.uterine.cli import app as uterine_app

    res = runner.invoke(uterine_app, ["simulate", "--out", str(fields), "--fields", "2"])
    assert res.exit_code == 0, res.output
    case = tmp_path / "case.toml"
    case.write_text(
        "# SYNTHETIC case\n"
        '[case]\nid = "SYN-RUN-W"\npatient_id = "SYN-1"\nsynthetic = true\n\n'
        '[[endometrial]]\nid = "biopsy-1"\nlh_day = 7\npixel_size_um = 0.6\n'
        f'images = ["{fields / "synthetic_field_01.tif"}", "{fields / "synthetic_field_02.tif"}"]\n'
    )
    res = runner.invoke(
        app, ["run", str(case), "--out", str(tmp_path / "out"), "--no-report", "--no-plots"]
    )
    assert res.exit_code == 0, res.output
    warnings = [x for x in res.output.splitlines() if x.startswith("warning:")]
    (pixel,) = [x for x in warnings if "pixel size given as 0.6 µm" in x]
    assert pixel.startswith(
        "warning: endometrial biopsy biopsy-1, synthetic_field_01, synthetic_field_02: "
    )
    assert "areas ×1.44, CD56+ per mm² ×0.69" in pixel
    assert "warning: endometrial biopsy biopsy-1: only 2 random ×400 fields" in res.output
    assert len(warnings) == len(set(warnings)) == 2
