"""Spillover compensation: observed = true · S, so true = observed · S⁻¹."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from nkpanel.errors import CompensationError
from nkpanel.flow.sample import FlowSample, Spillover

__all__ = ["compensate"]


def compensate(sample: FlowSample, spillover: Spillover | None = None) -> NDArray[np.float64]:
    """Compensated events of ``sample`` (a new array; other channels are copied unchanged).

    Parameters
    ----------
    sample
        The sample whose events are compensated.
    spillover
        A matrix to use instead of the file's own ($SPILLOVER / SPILL).

    Raises
    ------
    CompensationError
        No matrix is given or in the file, or it names channels the file does not have.

    References
    ----------
    Roederer M. Spectral compensation for flow cytometry. Cytometry 2001;45:194-205.
    """
    spill = spillover if spillover is not None else sample.spillover
    if spill is None:
        raise CompensationError(sample.source, "no spillover matrix in the file and none supplied")
    try:
        idx = [sample.index_of(ch) for ch in spill.channels]
    except KeyError as exc:
        raise CompensationError(
            sample.source, f"spillover matrix names channel {exc.args[0]!r}, not in the file"
        ) from None
    out = np.array(sample.events, dtype=np.float64, copy=True)
    # solve X·S = O for X, i.e. Sᵀ·Xᵀ = Oᵀ, which is steadier than forming S⁻¹
    out[:, idx] = np.linalg.solve(spill.matrix.T, sample.events[:, idx].T).T
    return out
