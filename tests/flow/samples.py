"""A FlowSample rebuilt with some of its parts replaced (events, names, labels, matrix), for
tests that change one thing about a simulated tube and compare."""

from __future__ import annotations

from typing import Any

import numpy as np

from nkpanel.flow.sample import FlowSample, Spillover

_KEEP: Any = object()


def rebuilt(
    sample: FlowSample,
    *,
    events: np.ndarray | None = None,
    pnn: list[str] | None = None,
    pns: list[str] | None = None,
    spillover: Spillover | None = _KEEP,
) -> FlowSample:
    """``sample`` with the parts given replaced; the rest, and its metadata, kept."""
    return FlowSample.from_array(
        sample.events if events is None else events,
        [c.pnn for c in sample.channels] if pnn is None else pnn,
        pns=[c.pns for c in sample.channels] if pns is None else pns,
        spillover=sample.spillover if spillover is _KEEP else spillover,
        metadata=sample.metadata,
    )
