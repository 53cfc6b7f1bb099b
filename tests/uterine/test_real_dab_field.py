"""Accuracy against a person on a real DAB field: ../shared/data/deepliif-ki67-sample.

``6_2.png`` is a 512×512 Ki67 DAB/haematoxylin field; ``6_2_gt.png`` is the expert's mask (red =
positive nuclei, blue = negative nuclei, green = outlines). The truth is each colour's connected
components (22 positive, 24 negative, as the data's README says). The pixel size is not stated
by the data set; 0.25 µm/px is judged from nucleus size (the issue's figure). This is not
endometrium and not CD56: it is the nearest real stand-in with an expert's annotation.

Settings: the package defaults for everything (chosen from biology and QuPath's defaults, not
from this image) except the one a lab changes for a nuclear stain: DAB is measured in the nucleus
(``compartment = "nucleus"``: Ki67 is nuclear, CD56 membranous). Until 2026-11-22 nuclei were
also found on haematoxylin + DAB, on the belief that positive Ki67 nuclei are so brown that
little blue is left; measured, the default haematoxylin image finds all 22 positive nuclei
(haematoxylin + DAB: 20), so that departure had no reason left and was dropped. With it: positive
F1 0.851, all-cell F1 0.583, 30.9% positive. In fairness: both detection images had been run on
this image before, so this is not a blind evaluation; no numeric parameter was tuned to it.

Matching: a detection matches a truth nucleus when their centroids are within 4 µm (16 px, about
the radius of a nucleus 8 µm across), one-to-one (Hungarian assignment).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nkpanel.uterine.analyze import UterineAnalysis, UterineSettings, analyze_image
from nkpanel.uterine.detect import DetectionSettings

from .helpers import f1, match

PIXEL_UM = 0.25
RADIUS_PX = 4.0 / PIXEL_UM
NUCLEAR_STAIN = UterineSettings(detection=DetectionSettings(compartment="nucleus"))


def _truth(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from scipy import ndimage as ndi

    gt = np.asarray(Image.open(folder / "6_2_gt.png").convert("RGB")).astype(int)
    red = (gt[..., 0] > 150) & (gt[..., 1] < 100) & (gt[..., 2] < 100)
    blue = (gt[..., 2] > 150) & (gt[..., 0] < 100) & (gt[..., 1] < 100)
    xy, pos = [], []
    for positive, mask in ((True, red), (False, blue)):
        lab, n = ndi.label(mask, structure=np.ones((3, 3)))
        for c in ndi.center_of_mass(mask, lab, range(1, n + 1)):
            xy.append(c)
            pos.append(positive)
    return np.asarray(xy, dtype=np.float64), np.asarray(pos)


@pytest.fixture(scope="module")
def real(shared_data: Path) -> tuple[UterineAnalysis, np.ndarray, np.ndarray]:
    folder = shared_data / "deepliif-ki67-sample"
    if not (folder / "6_2.png").is_file():
        pytest.skip(f"{folder} holds no 6_2.png")
    truth_xy, truth_pos = _truth(folder)
    a = analyze_image(folder / "6_2.png", NUCLEAR_STAIN, pixel_size_um=PIXEL_UM)
    return a, truth_xy, truth_pos


def _detected(a: UterineAnalysis) -> np.ndarray:
    return np.c_[a.cells.y - 0.5, a.cells.x - 0.5]


def test_truth_is_what_the_readme_says(
    real: tuple[UterineAnalysis, np.ndarray, np.ndarray],
) -> None:
    _, _, pos = real
    assert int(pos.sum()) == 22
    assert int((~pos).sum()) == 24


def test_the_nuclei_of_a_real_field_are_of_a_nucleus_size(
    real: tuple[UterineAnalysis, np.ndarray, np.ndarray],
) -> None:
    """At the pixel size judged from its nuclei, the real field passes the nucleus-size check:
    no false alarm. (Read at 2-4x that size its median nucleus is 62-70 µm², inside the range:
    the check catches a scale off by 2 on the synthetic fields, not on this one; README.)"""
    a, _, _ = real
    flag = next(q for q in a.result.qc if q.check == "nucleus size")
    assert flag.passed and flag.value is not None and 20 <= flag.value <= 45


def test_the_real_field_raises_no_merged_nuclei_warning(
    real: tuple[UterineAnalysis, np.ndarray, np.ndarray],
) -> None:
    """Its nuclei are irregular (the smaller half's median ellipse fill 0.92, against 0.99 for
    simulated ellipses), so shape cannot tell merged nuclei from one and the check is silent:
    it says it did not judge, and counts nothing."""
    a, _, _ = real
    (flag,) = [q for q in a.result.qc if q.check == "merged nuclei"]
    assert flag.passed and flag.value is None and "not judged" in flag.reason


def test_positive_detection_f1(real: tuple[UterineAnalysis, np.ndarray, np.ndarray]) -> None:
    a, xy, pos = real
    det = _detected(a)
    i, _ = match(det[a.cells.positive], xy[pos], RADIUS_PX)
    score = f1(int(a.cells.positive.sum()), int(pos.sum()), len(i))
    assert score >= 0.85, score


@pytest.mark.xfail(
    strict=True,
    reason="two causes, seen on the overlay: the expert's mask leaves out most spindle-shaped "
    "stromal nuclei, so ~50 detections (51 of 91) count as false; and nkpanel misses 6 of the 24 "
    "annotated negative nuclei (pale ones barely above QuPath's default 0.1 OD threshold or "
    "merged with a darker neighbour); measured F1 0.58 (goal 0.80)",
)
def test_all_cells_detection_f1(real: tuple[UterineAnalysis, np.ndarray, np.ndarray]) -> None:
    a, xy, _ = real
    det = _detected(a)
    i, _ = match(det, xy, RADIUS_PX)
    assert f1(len(det), len(xy), len(i)) >= 0.80


@pytest.mark.xfail(
    strict=True,
    reason="same two causes: unannotated spindle nuclei enter nkpanel's denominator and some "
    "pale negative nuclei are missed; measured 28.6% vs the expert's 47.8% (goal: within 5 points)",
)
def test_positive_percent_within_5_points(
    real: tuple[UterineAnalysis, np.ndarray, np.ndarray],
) -> None:
    a, _, pos = real
    ours = 100.0 * a.cells.positive.mean()
    assert abs(ours - 100.0 * pos.mean()) <= 5.0


def test_classification_agrees_on_the_nuclei_the_expert_annotated(
    real: tuple[UterineAnalysis, np.ndarray, np.ndarray],
) -> None:
    """On the nuclei both found, positive/negative calls agree with the expert's."""
    a, xy, pos = real
    det = _detected(a)
    i, j = match(det, xy, RADIUS_PX)
    assert len(i) >= 30  # most annotated nuclei are found (recall of the truth ≥ 65%)
    # pale negative nuclei count: at least two thirds of the annotated negatives are found
    assert int((~pos[j]).sum()) >= 16
    agree = float(np.mean(a.cells.positive[i] == pos[j]))
    assert agree >= 0.95
    assert abs(100.0 * a.cells.positive[i].mean() - 100.0 * pos[j].mean()) <= 5.0


def test_pixel_size_is_required(shared_data: Path) -> None:
    from nkpanel.errors import InputError

    with pytest.raises(InputError, match="unknown pixel size"):
        analyze_image(shared_data / "deepliif-ki67-sample" / "6_2.png")


def test_the_numbers_quoted_in_reports_are_the_ones_measured(
    real: tuple[UterineAnalysis, np.ndarray, np.ndarray],
) -> None:
    """The method note printed beside every automated uNK count quotes this field's all-cell
    F1 and positive percentage (src/nkpanel/interpret/method_notes.toml); a change to the
    detector that moves them must update the note."""
    from nkpanel.interpret.method_notes import load_method_notes

    a, xy, pos = real
    det = _detected(a)
    i, _ = match(det, xy, RADIUS_PX)
    (note,) = load_method_notes()
    quoted = {f.what: f.measured for f in note.figures}
    assert round(f1(len(det), len(xy), len(i)), 2) == quoted["all-cell detection F1"]
    assert round(100.0 * a.cells.positive.mean(), 1) == quoted["positive cells, % (nkpanel)"]
    assert round(100.0 * pos.mean(), 1) == quoted["positive cells, % (expert)"]
