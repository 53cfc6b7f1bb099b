"""Display/gating transforms: logicle (flowutils) for fluorescence, asinh for mass cytometry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Asinh", "Linear", "Logicle", "Transform"]


@dataclass(frozen=True)
class Logicle:
    """Parks et al. logicle transform with the Gating-ML 2.0 parameters T, W, M, A.

    References
    ----------
    Parks DR, Roederer M, Moore WA. A new "Logicle" display method avoids deceptive effects of
    logarithmic scaling for low signals and compensated data. Cytometry A 2006;69:541-551.
    """

    t: float = 262144.0
    w: float = 0.5
    m: float = 4.5
    a: float = 0.0

    def __call__(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        from flowutils import transforms

        arr = np.ascontiguousarray(x, dtype=np.float64).reshape(-1, 1)
        out = transforms.logicle(arr, [0], t=self.t, m=self.m, w=self.w, a=self.a)
        return np.asarray(out, dtype=np.float64).reshape(np.shape(x))


@dataclass(frozen=True)
class Asinh:
    """``asinh(x / cofactor)``: cofactor 5 for mass cytometry, about 150 for fluorescence."""

    cofactor: float = 5.0

    def __call__(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.arcsinh(np.asarray(x, dtype=np.float64) / self.cofactor)


@dataclass(frozen=True)
class Linear:
    """Scale to [0, 1] over ``[0, top]``; used for scatter channels."""

    top: float = 262144.0

    def __call__(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(x, dtype=np.float64) / self.top


Transform = Logicle | Asinh | Linear
