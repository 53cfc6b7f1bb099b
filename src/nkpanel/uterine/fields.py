"""Choosing ×400 fields of stroma at random on a whole slide (Lash et al. 2016).

The standardised protocol counts ten random high-power (×400) fields of stroma. A ×400 field is
what a 40× objective shows through a 10× eyepiece: a circle whose diameter is the eyepiece's
field number divided by 40. With the common field number 22 that is 550 µm (0.238 mm²); labs
with FN 20 or 18 eyepieces set 500 or 450 µm.

Candidates are the centres (on a grid coarse enough that a field spans about 40 of its cells)
of circles lying wholly inside the image in which at least ``min_stroma_fraction`` of the area
is countable stroma (tissue, inside drawn
stroma regions if any, outside glands, epithelium and exclusions); fields are drawn from them
at random (seeded, so a run can be repeated) without overlapping.

Reference: Lash GE et al. J Reprod Immunol 2016;116:50-59.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from nkpanel.uterine._kernels import disk

__all__ = ["FieldCircle", "choose_fields"]


@dataclass(frozen=True)
class FieldCircle:
    """A field: centre and diameter in level-0 pixels."""

    name: str
    cx: float
    cy: float
    diameter: float

    def contains(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Whether level-0 points (broadcastable arrays) lie inside the field."""
        r = self.diameter / 2
        return np.asarray((x - self.cx) ** 2 + (y - self.cy) ** 2 <= r * r, dtype=bool)


def choose_fields(
    stroma: NDArray[np.bool_],
    overview_downsample: float,
    *,
    diameter_px0: float,
    n_fields: int = 10,
    min_stroma_fraction: float = 0.75,
    seed: int = 0,
) -> tuple[FieldCircle, ...]:
    """Pick up to ``n_fields`` non-overlapping random fields of stroma.

    Parameters
    ----------
    stroma
        Countable-stroma mask on the overview grid.
    overview_downsample
        Level-0 pixels per overview pixel.
    diameter_px0
        Field diameter in level-0 pixels.
    """
    from scipy.signal import fftconvolve

    # work on a grid coarse enough that a field is ~40 cells across (fast, small memory)
    k = max(1, int(diameter_px0 / overview_downsample / 40))
    h0, w0 = stroma.shape
    hc, wc = -(-h0 // k), -(-w0 // k)
    pad = np.zeros((hc * k, wc * k), dtype=np.float32)
    pad[:h0, :w0] = stroma
    coarse = pad.reshape(hc, k, wc, k).mean(axis=(1, 3))
    ds = overview_downsample * k
    r = max(1, round(diameter_px0 / ds / 2))
    if 2 * r + 1 > hc or 2 * r + 1 > wc:
        return ()
    window = disk(r).astype(np.float64)
    frac = fftconvolve(coarse, window, mode="same") / window.sum()
    ok = np.zeros((hc, wc), dtype=bool)
    ok[r : hc - r, r : wc - r] = frac[r : hc - r, r : wc - r] >= min_stroma_fraction - 1e-6
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:hc, :wc]
    chosen: list[tuple[int, int]] = []
    while len(chosen) < n_fields:
        ys, xs = np.nonzero(ok)
        if ys.size == 0:
            break
        i = int(rng.integers(ys.size))
        y, x = int(ys[i]), int(xs[i])
        chosen.append((y, x))
        # no later field may overlap this one: centres at least a diameter apart
        ok &= (yy - y) ** 2 + (xx - x) ** 2 >= (2 * r) ** 2
    return tuple(
        FieldCircle(f"field-{j + 1:02d}", (x + 0.5) * ds, (y + 0.5) * ds, diameter_px0)
        for j, (y, x) in enumerate(chosen)
    )
