"""Figures for a lab template's gates: each rectangle or polygon gate drawn over its parent's
events, in the compensated and transformed space the template gates in (as FlowKit evaluates
it), with the same look as the automated gating figures."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nkpanel.flow.gates import Dimension, Gate, PolygonGate, RangeGate
from nkpanel.flow.plots import plot_gates
from nkpanel.flow.template import _load_fcs, _path_string, _pick_strategy, load_template

__all__ = ["plot_template_gates"]


def _identity(v: NDArray[np.float64]) -> NDArray[np.float64]:
    return v


def plot_template_gates(
    template_path: Path,
    fcs_path: Path,
    membership: Mapping[str, NDArray[np.bool_]],
    parents: Mapping[str, str | None],
    out_dir: Path,
    *,
    sample_id: str | None = None,
    group: str = "All Samples",
    synthetic: bool = False,
    flowkit_sample: Any = None,
) -> tuple[list[Path], list[str]]:
    """Draw every rectangle and polygon gate of the template; return (files, notes).

    ``flowkit_sample``: the ``flowkit.Sample`` the template was applied to
    (:attr:`~nkpanel.flow.template.TemplateResult.flowkit_sample`); without it the file is read
    again. Quadrant, boolean and ellipsoid gates are not drawn; a note names them.
    """
    template = load_template(template_path)
    strategy, _ = _pick_strategy(template, fcs_path, sample_id, group)
    sample = flowkit_sample
    if sample is None:
        sample = _load_fcs(fcs_path, flowjo_labels=template.kind == "flowjo")
    names = template.gate_names
    written: list[Path] = []
    skipped: list[str] = []
    n = int(sample.event_count)
    gate_ids = list(strategy.get_gate_ids())
    leaves = [names.get(str(name), str(name)) for name, _ in gate_ids]

    def label_of(key: str) -> str:
        """The gate's own name, with its parent's where two gates share a name."""
        parts = key.strip("/").split("/")
        return (
            parts[-1]
            if leaves.count(parts[-1]) == 1 or len(parts) == 1
            else (f"{parts[-1]} in {parts[-2]}")
        )

    for name, ancestors in gate_ids:
        gate = strategy.get_gate(name, ancestors)
        key = _path_string((*tuple(ancestors)[1:], name), names)
        kind = type(gate).__name__
        dims = list(getattr(gate, "dimensions", []))
        if kind not in ("RectangleGate", "PolygonGate") or not 1 <= len(dims) <= 2:
            skipped.append(f"{key} ({kind})")
            continue
        if key not in membership:
            skipped.append(f"{key} (no result)")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame: Any = strategy._preprocess_sample_events(sample, gate)
        cols = {str(d.id): np.asarray(frame[d.id], dtype=np.float64) for d in dims}
        label = label_of(key)
        parent_key = parents.get(key)
        parent_label = label_of(parent_key) if parent_key else None
        record: Gate
        our_dims = tuple(Dimension(str(d.id)) for d in dims)
        if kind == "PolygonGate":
            vertices = tuple((float(x), float(y)) for x, y in gate.vertices)
            record = PolygonGate(label, parent_label, (our_dims[0], our_dims[1]), vertices)
        else:
            lo = tuple(None if d.min is None else float(d.min) for d in dims)
            hi = tuple(None if d.max is None else float(d.max) for d in dims)
            record = RangeGate(label, parent_label, our_dims, lo, hi)
        masks = {label: np.asarray(membership[key], dtype=bool)}
        if parent_label is not None and parent_key is not None:
            masks[parent_label] = np.asarray(membership[parent_key], dtype=bool)
        xforms = {str(d.id): str(d.transformation_ref or "linear") for d in dims}

        def values(ch: str, cols: dict[str, NDArray[np.float64]] = cols) -> NDArray[np.float64]:
            return cols[ch] if ch in cols else np.zeros(n)

        def axis_label(ch: str, xforms: dict[str, str] = xforms) -> str:
            return f"{ch} ({xforms.get(ch, 'linear')})"

        written += plot_gates(
            sample_name=fcs_path.stem,
            gates=(record,),
            membership=masks,
            values=values,
            scale_for=lambda ch: _identity,
            label_for=axis_label,
            channel_for_marker={},
            out_dir=out_dir,
            synthetic=synthetic,
        )
    notes = [f"template gates not drawn: {', '.join(skipped)}"] if skipped else []
    return written, notes
