"""Unscanned or transparent areas of a whole slide (exactly the fill colour) are not glass.

OpenSlide returns transparent pixels where nothing was scanned, which nkpanel composites on
white: pure (255, 255, 255), brighter than any scanned glass. Taken as glass they set the white
point to 255 and every scanned glass pixel looks stained (tissue), so the stromal area grows
by the glass's area.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nkpanel.uterine.analyze import _glass_white, analyze_source
from nkpanel.uterine.images import PixelSize, WholeSlide
from nkpanel.uterine.simulate import FieldSpec, simulate_field

GLASS = (228, 226, 234)
SIDE = 2000
FIELD = 500
UM = 0.5


def _slide(canvas: np.ndarray) -> WholeSlide:
    h, w = canvas.shape[:2]

    def read_level(level: int, x: int, y: int, rw: int, rh: int) -> np.ndarray:
        out = np.full((rh, rw, 3), 255, np.uint8)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + rw, w), min(y + rh, h)
        if x1 > x0 and y1 > y0:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = canvas[y0:y1, x0:x1]
        return out

    return WholeSlide(
        Path("synthetic.svs"), w, h, PixelSize(UM, "test"), ((w, h, 1.0),), "test",
        read_level, lambda: None,
    )  # fmt: skip


def _canvas(glass: tuple[int, int, int] | None) -> np.ndarray:
    """Left half unscanned (fill 255), right half glass holding two simulated fields."""
    canvas = np.full((SIDE, SIDE, 3), 255, np.uint8)
    if glass is not None:
        canvas[:, SIDE // 2 :] = glass
    for k in range(2):
        f = simulate_field(FieldSpec(width_px=FIELD, height_px=FIELD, seed=30 + k))
        oy = 300 + 900 * k
        canvas[oy : oy + FIELD, 1250 : 1250 + FIELD] = f.rgb
    return canvas


def test_unscanned_fill_is_not_taken_for_glass() -> None:
    r = analyze_source(_slide(_canvas(GLASS))).result
    # the scanned glass is uniform: its 99.5th percentile is its colour
    assert tuple(r.stains["white"]) == GLASS
    # stroma lies only inside the two pasted fields (before: the glass strip, 12× more)
    assert r.overall.stromal_area_mm2 <= 2 * FIELD * FIELD * (UM * 1e-3) ** 2
    assert any("fill" in n for n in r.notes)


def test_glass_white_is_none_when_only_fill_is_clear_of_tissue() -> None:
    """No scanned glass at all: the patches read are fill, so the overview's estimate stands."""
    src = _slide(_canvas(None))
    ov = np.full((SIDE // 4, SIDE // 4), False)
    ov[75:200, 312:437] = True  # a tissue patch on the overview grid (4 px per overview px)
    got = _glass_white(src, ov, 4.0, 1.0, np.random.default_rng(0))
    assert got is None
