"""Scoring helpers for the uterine tests: one-to-one matching of detections to truth."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment


def match(
    detected: NDArray[np.float64], truth: NDArray[np.float64], radius: float
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Pairs (detection, truth) within ``radius``, one-to-one, minimising total distance."""
    if len(detected) == 0 or len(truth) == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    d = np.linalg.norm(detected[:, None, :] - truth[None, :, :], axis=2)
    cost = np.where(d <= radius, d, 1e9)
    i, j = linear_sum_assignment(cost)
    ok = cost[i, j] < 1e9
    return i[ok], j[ok]


def f1(n_detected: int, n_truth: int, n_matched: int) -> float:
    """F1 = 2·TP / (detections + truth)."""
    total = n_detected + n_truth
    return 2.0 * n_matched / total if total else 1.0
