"""Display/gating transforms: logicle (flowutils) for fluorescence, asinh for mass cytometry.

Each transform is an immutable record, called on an array of scale values and returning an array
of the same shape; ``inverse`` maps back. Parameters are checked when the record is made, so a
bad setting fails at once with a :class:`~nkpanel.errors.ConfigError` instead of producing the
silent sentinel values flowutils returns for impossible logicle parameters. Non-finite inputs
map to themselves (NaN stays NaN, ±inf stays ±inf).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from nkpanel.errors import ConfigError

__all__ = ["Asinh", "Linear", "Logicle", "Transform"]


def _finite_positive(name: str, value: float, what: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{what}: {name} must be a positive number, not {value!r}")


def _apply_finite(
    x: ArrayLike,
    fn: Callable[[NDArray[np.float64]], NDArray[np.float64]],
) -> NDArray[np.float64]:
    """Apply ``fn`` to the finite values of ``x``; NaN stays NaN and ±inf stays ±inf."""
    arr = np.asarray(x, dtype=np.float64)
    flat = arr.reshape(-1)
    out = np.array(flat, dtype=np.float64, copy=True)
    ok = np.isfinite(flat)
    if ok.any():
        out[ok] = fn(np.ascontiguousarray(flat[ok]))
    return out.reshape(arr.shape)


@dataclass(frozen=True)
class Logicle:
    """Parks et al. logicle transform with the Gating-ML 2.0 parameters T, W, M, A.

    The result is on the Gating-ML 2.0 scale, where ``T`` maps to 1 and 0 maps to
    ``(W + A) / (M + A)``; the computation is flowutils' implementation of Moore & Parks (2012).

    Parameters
    ----------
    t
        Top of the data scale (T > 0), e.g. 262144 for 18-bit instruments.
    w
        Width of the linear region in decades, 0 ≤ W ≤ M/2.
    m
        Decades of the full logarithmic scale, M > 0.
    a
        Additional negative decades, −W ≤ A ≤ M − 2W.

    Raises
    ------
    ConfigError
        Parameters outside the Gating-ML 2.0 domain.

    References
    ----------
    Parks DR, Roederer M, Moore WA. A new "Logicle" display method avoids deceptive effects of
    logarithmic scaling for low signals and compensated data. Cytometry A 2006;69:541-551.
    Moore WA, Parks DR. Update for the logicle data scale including operational code
    implementations. Cytometry A 2012;81:273-277.
    Spidlen J et al. Gating-ML 2.0, section 5.3.4 (logicle). ISAC 2013.

    Examples
    --------
    >>> float(Logicle(t=10000, w=0.5, m=4.5, a=0)(np.array([10000.0]))[0])
    1.0
    """

    t: float = 262144.0
    w: float = 0.5
    m: float = 4.5
    a: float = 0.0

    def __post_init__(self) -> None:
        what = f"logicle T={self.t} W={self.w} M={self.m} A={self.a}"
        _finite_positive("T", self.t, what)
        _finite_positive("M", self.m, what)
        if not (math.isfinite(self.w) and 0 <= self.w <= self.m / 2):
            raise ConfigError(f"{what}: W must lie in [0, M/2]")
        if not (math.isfinite(self.a) and -self.w <= self.a <= self.m - 2 * self.w):
            raise ConfigError(f"{what}: A must lie in [−W, M − 2W]")

    def __call__(self, x: ArrayLike) -> NDArray[np.float64]:
        from flowutils import transforms

        def fn(v: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.asarray(
                transforms.logicle(v, None, t=self.t, m=self.m, w=self.w, a=self.a),
                dtype=np.float64,
            )

        return _apply_finite(x, fn)

    def inverse(self, y: ArrayLike) -> NDArray[np.float64]:
        """Scale values whose logicle is ``y``."""
        from flowutils import transforms

        def fn(v: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.asarray(
                transforms.logicle_inverse(v, None, t=self.t, m=self.m, w=self.w, a=self.a),
                dtype=np.float64,
            )

        return _apply_finite(y, fn)


@dataclass(frozen=True)
class Asinh:
    """``asinh(x / cofactor)``: cofactor 5 for mass cytometry, about 150 for fluorescence.

    Raises
    ------
    ConfigError
        A cofactor that is not a positive number.

    References
    ----------
    Bendall SC et al. Single-cell mass cytometry of differential immune and drug responses across
    a human hematopoietic continuum. Science 2011;332:687-696 (cofactor 5 for CyTOF).

    Examples
    --------
    >>> round(float(Asinh(5.0)(np.array([5.0]))[0]), 6)  # asinh(1) = ln(1 + √2)
    0.881374
    """

    cofactor: float = 5.0

    def __post_init__(self) -> None:
        _finite_positive("cofactor", self.cofactor, "asinh")

    def __call__(self, x: ArrayLike) -> NDArray[np.float64]:
        return np.arcsinh(np.asarray(x, dtype=np.float64) / self.cofactor)

    def inverse(self, y: ArrayLike) -> NDArray[np.float64]:
        """Scale values whose transform is ``y``."""
        with np.errstate(over="ignore"):
            return np.sinh(np.asarray(y, dtype=np.float64)) * self.cofactor


@dataclass(frozen=True)
class Linear:
    """Scale to [0, 1] over ``[0, top]``; used for scatter channels."""

    top: float = 262144.0

    def __post_init__(self) -> None:
        _finite_positive("top", self.top, "linear")

    def __call__(self, x: ArrayLike) -> NDArray[np.float64]:
        return np.asarray(x, dtype=np.float64) / self.top

    def inverse(self, y: ArrayLike) -> NDArray[np.float64]:
        """Scale values whose transform is ``y``."""
        return np.asarray(y, dtype=np.float64) * self.top


Transform = Logicle | Asinh | Linear
