"""Typed wrappers over the few scikit-image functions the uterine kernels call (scikit-image
ships no type information for them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray

__all__ = ["find_boundaries", "watershed"]


def _f(fn: object) -> Callable[..., Any]:
    return cast(Callable[..., Any], fn)


def find_boundaries(
    labels: NDArray[Any], mode: Literal["inner", "outer", "thick"] = "inner"
) -> NDArray[np.bool_]:
    from skimage.segmentation import find_boundaries as fb

    return np.asarray(_f(fb)(labels, mode=mode), dtype=bool)


def watershed(
    image: NDArray[Any], markers: NDArray[Any], mask: NDArray[np.bool_]
) -> NDArray[np.int32]:
    from skimage.segmentation import watershed as ws

    return np.asarray(_f(ws)(image, markers, mask=mask), dtype=np.int32)
