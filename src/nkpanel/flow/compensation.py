"""Spillover compensation: observed = true · S, so true = observed · S⁻¹.

``S[i, j]`` is the fraction of dye ``i``'s signal seen in detector ``j`` (the $SPILLOVER layout of
FCS 3.1 and the ``spectrumMatrix`` of Gating-ML 2.0, one row per dye).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from nkpanel.errors import CompensationError
from nkpanel.flow.sample import FlowSample, Spillover

__all__ = ["compensate"]


def compensate(sample: FlowSample, spillover: Spillover | None = None) -> NDArray[np.float64]:
    """Compensated events of ``sample`` (a new array; other channels are copied unchanged).

    Each event's detector values ``o`` (a row over the spillover's channels) are replaced by the
    dye amounts ``x`` that solve ``x · S = o``.

    Parameters
    ----------
    sample
        The sample whose events are compensated.
    spillover
        A matrix to use instead of the file's own ($SPILLOVER / SPILL).

    Returns
    -------
    numpy.ndarray
        Events × channels, in the sample's column order.

    Raises
    ------
    CompensationError
        No matrix is given or in the file, or it names channels the file does not have.

    References
    ----------
    Bagwell CB, Adams EG. Fluorescence spectral overlap compensation for any number of flow
    cytometry parameters. Ann N Y Acad Sci 1993;677:167-184.
    Roederer M. Spectral compensation for flow cytometry: visualization artifacts, limitations,
    and caveats. Cytometry 2001;45:194-205.

    Examples
    --------
    >>> s = FlowSample.from_array([[1.05, 0.7]], ["FL1", "FL2"])  # true (1, 0.5) · S
    >>> spill = Spillover(("FL1", "FL2"), np.array([[1.0, 0.2], [0.1, 1.0]]))
    >>> compensate(s, spill).round(12).tolist()
    [[1.0, 0.5]]
    """
    spill = spillover if spillover is not None else sample.spillover
    if spill is None:
        raise CompensationError(sample.source, "no spillover matrix in the file and none supplied")
    try:
        idx = [sample.index_of(ch) for ch in spill.channels]
    except KeyError as exc:
        raise CompensationError(
            sample.source,
            f"spillover matrix names channel {exc.args[0]!r}, not in the file "
            f"(channels: {', '.join(sample.pnn)})",
        ) from None
    out = np.array(sample.events, dtype=np.float64, copy=True)
    if not idx:
        return out
    # solve X·S = O for X, i.e. Sᵀ·Xᵀ = Oᵀ, which is steadier than forming S⁻¹
    out[:, idx] = np.linalg.solve(spill.matrix.T, out[:, idx].T).T
    return out
