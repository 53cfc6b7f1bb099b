"""The borderline-staining warning: many cells just under the positive threshold.

Truth comes from construction: hand-built OD values, and SYNTHETIC fields whose membranes carry
DAB at a known OD (a faint run whose positives fall under QuPath's 0.2 threshold, and a strong
one whose positives are well above it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nkpanel.uterine.analyze import analyze_image
from nkpanel.uterine.results import borderline_staining_qc
from nkpanel.uterine.simulate import FieldSpec, simulate_field, write_field


@pytest.mark.parametrize(
    ("values", "flagged"),
    [
        # 60 cells at 0.15 (just under 0.2) against 40 positives: flagged
        ([0.0] * 900 + [0.15] * 60 + [0.4] * 40, True),
        # a clean stain: negatives near 0, positives well above
        ([0.02] * 950 + [0.5] * 50, False),
        # a few borderline cells among many positives: not flagged (under half the positives)
        ([0.0] * 800 + [0.12] * 40 + [0.6] * 160, False),
        # under 1% of the cells: not flagged
        ([0.0] * 2000 + [0.15] * 15 + [0.5] * 10, False),
        # no positive at all, many borderline: flagged
        ([0.0] * 300 + [0.18] * 30, True),
        # cells at 0.09, under half the threshold: not counted as borderline
        ([0.0] * 500 + [0.09] * 200 + [0.5] * 20, False),
    ],
)
def test_the_rule_on_hand_built_values(values: list[float], flagged: bool) -> None:
    q = borderline_staining_qc(np.array(values), 0.2)
    assert q.passed is not flagged and not q.blocking
    assert q.value == float(sum(0.1 <= v < 0.2 for v in values))


@pytest.mark.parametrize(("dab_od", "flagged"), [(0.4, True), (0.9, False)])
def test_a_faint_stain_run_is_flagged_and_a_strong_one_is_not(
    tmp_path: Path, dab_od: float, flagged: bool
) -> None:
    field = simulate_field(FieldSpec(width_px=800, height_px=800, seed=61, dab_od=dab_od))
    path, _ = write_field(field, tmp_path / f"dab-{dab_od}-synthetic.tif")
    result = analyze_image(path).result
    (q,) = [q for q in result.qc if q.check == "borderline staining"]
    assert q.passed is not flagged
    assert result.reportable  # a warning: the lab decides
