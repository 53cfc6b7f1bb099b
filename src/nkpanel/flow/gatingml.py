"""Writing nkpanel's gates as a Gating-ML 2.0 document.

Automated gating produces a :class:`~nkpanel.flow.gates.GateTree`; :func:`export_gatingml`
writes it, with its transforms and compensation, as Gating-ML 2.0 so that a person can open the
gates in FlowJo, Cytobank or FlowKit, adjust them, and run them again as a lab template with
:func:`nkpanel.flow.template.apply_template`. The document is built with FlowKit's
``GatingStrategy``, gate and transform classes and written by FlowKit's Gating-ML exporter;
nkpanel then adds, inside ``data-type:custom_info`` (which the schema allows on every gate and
on the root), each gate's display name and a provenance note.

Mapping of nkpanel's records onto Gating-ML 2.0
-----------------------------------------------
Gate ids
    Gating-ML ids are XML names (no spaces, ``+`` or ``−``), so a gate named ``"CD56+ NK"``
    gets the id ``CD56pos_NK`` and keeps its name in ``custom_info``; :mod:`.template` reads it
    back.
``Logicle(t, w, m, a)``
    Gating-ML ``logicle`` with T, W, M, A: the same function (Parks et al. 2006), evaluated by
    the same flowutils code in nkpanel and in FlowKit.
``Linear(top)``
    Gating-ML ``flin`` with ``T = top`` and ``A = 0``: ``flin(x) = (x + A) / (T + A) = x / top``.
``Asinh(cofactor)``
    Gating-ML ``fasinh`` (spec. section 6.5) is::

        fasinh(x; T, M, A) = (asinh(x · sinh(M·ln 10) / T) + A·ln 10) / ((M + A)·ln 10)

    With ``A = 0`` this is ``asinh(x · sinh(M·ln 10) / T) / (M·ln 10)``. Choosing T and M with
    ``sinh(M·ln 10) / T = 1 / cofactor`` makes the argument ``x / cofactor``, so::

        fasinh(x) = asinh(x / cofactor) / (M·ln 10)

    that is nkpanel's ``Asinh`` divided by the constant ``M·ln 10``. Gate coordinates on an
    asinh axis are therefore divided by ``M·ln 10`` on export, and membership is unchanged
    (every comparison and the polygon test are invariant under scaling one axis by a positive
    constant). We keep T as the top of scale (``asinh_top``, 262144 by default, so that the
    exported scale ends at 1 like every other Gating-ML transform) and solve for M::

        M = asinh(T / cofactor) / ln 10

    which gives ``sinh(M·ln 10) = T / cofactor`` as required. The identity is exact; in floating
    point the two sides agree to about 1e-16 relative.
Compensation
    A compensated dimension refers to the file's own spillover (``compensation-ref="FCS"``), or,
    when a :class:`~nkpanel.flow.sample.Spillover` is given, to that matrix, written into the
    document as a ``spectrumMatrix``. Uncompensated dimensions, and with an explicit matrix any
    channel the matrix does not cover (compensation leaves it unchanged), use
    ``"uncompensated"``.

A known limit of FlowKit 1.3 when it reads such a document back: within one gate it compensates
every dimension once any dimension is compensated, so a gate that pairs a compensated channel
with an *uncompensated fluorescence channel covered by the matrix* evaluates differently there
(the Gating-ML we write is still correct). Scatter channels are never affected.

References
----------
Spidlen J et al. Gating-ML 2.0. ISAC standard for representing gating descriptions in flow
cytometry, 2013, sections 5 (gates) and 6 (transformations).
http://flowcyt.sourceforge.net/gating/latest.pdf

Parks DR, Roederer M, Moore WA. A new "Logicle" display method avoids deceptive effects of
logarithmic scaling for low signals and compensated data. Cytometry A 2006;69:541-551.
"""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nkpanel import __version__
from nkpanel._atomic import write_bytes
from nkpanel.errors import CompensationError, ConfigError
from nkpanel.flow.gates import Dimension, Gate, GateTree, PolygonGate, RangeGate
from nkpanel.flow.sample import SPILLOVER_KEYWORDS, FlowSample, Spillover, parse_spillover
from nkpanel.flow.template import DATATYPE_NS, GATINGML_NS, NKPANEL_NS
from nkpanel.flow.transforms import Asinh, Linear, Logicle, Transform

__all__ = ["AsinhMapping", "asinh_as_fasinh", "export_gatingml", "gate_ids", "matrix_to_embed"]

TRANSFORMS_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
#: id of an exported spillover matrix
MATRIX_ID = "spillover"
#: the minimum written for a range gate that bounds nothing: below every finite value
OPEN_MINIMUM = -1e300
_LN10 = math.log(10.0)


@dataclass(frozen=True)
class AsinhMapping:
    """Gating-ML ``fasinh`` parameters equal to ``asinh(x / cofactor)`` up to a scale.

    ``fasinh(x; t, m, a=0) == asinh(x / cofactor) / scale`` with ``scale = m · ln 10``.
    """

    t: float
    m: float
    a: float
    scale: float


def asinh_as_fasinh(cofactor: float, *, top: float = 262144.0) -> AsinhMapping:
    """Gating-ML ``fasinh`` parameters for nkpanel's ``Asinh(cofactor)``.

    Parameters
    ----------
    cofactor
        nkpanel's cofactor (``asinh(x / cofactor)``), > 0.
    top
        Gating-ML top of scale T (> 0), mapped to 1 by the exported transform.

    Returns
    -------
    AsinhMapping
        ``T = top``, ``M = asinh(T / cofactor) / ln 10``, ``A = 0`` and the factor
        ``scale = M · ln 10`` by which nkpanel's coordinates are divided.

    References
    ----------
    Gating-ML 2.0, section 6.5 (parametrized inverse hyperbolic sine).

    Examples
    --------
    >>> p = asinh_as_fasinh(5.0)
    >>> round(math.sinh(p.m * math.log(10)) / p.t, 12)
    0.2
    """
    if not (math.isfinite(cofactor) and cofactor > 0):
        raise ConfigError(f"asinh cofactor must be a positive number, not {cofactor!r}")
    if not (math.isfinite(top) and top > 0):
        raise ConfigError(f"asinh top of scale must be a positive number, not {top!r}")
    m = math.asinh(top / cofactor) / _LN10
    # the divisor exactly as a Gating-ML reader computes it from the written M (and A = 0)
    return AsinhMapping(t=float(top), m=m, a=0.0, scale=m * _LN10)


_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9._-]+")


def gate_ids(names: Sequence[str]) -> dict[str, str]:
    """Valid, unique XML ids (NCName) for gate names: ``"CD56+ NK"`` → ``"CD56pos_NK"``."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = name.replace("+", "pos").replace("−", "neg").replace("–", "neg")
        base = _NOT_NAME_CHAR.sub("_", base).strip("_") or "gate"
        if not (base[0].isalpha() or base[0] == "_"):
            base = "g_" + base
        candidate, k = base, 2
        while candidate in used:
            candidate, k = f"{base}_{k}", k + 1
        used.add(candidate)
        out[name] = candidate
    return out


class _Builder:
    """Turns nkpanel records into a FlowKit GatingStrategy."""

    def __init__(self, spillover: Spillover | None, asinh_top: float) -> None:
        import flowkit

        self.fk: Any = flowkit
        self.strategy: Any = flowkit.GatingStrategy()
        self.spillover = spillover
        self.asinh_top = asinh_top
        self.xform_ids: dict[Transform, str] = {}
        self.scales: dict[Transform, float] = {}
        if spillover is not None:
            channels = list(spillover.channels)
            matrix = flowkit.Matrix(
                spillover.matrix.astype(float), channels, fluorochromes=channels
            )
            self.strategy.add_comp_matrix(MATRIX_ID, matrix)

    def transform_ref(self, transform: Transform) -> tuple[str, float]:
        """Id of the exported transform and the factor dividing nkpanel's coordinates."""
        if transform in self.xform_ids:
            return self.xform_ids[transform], self.scales[transform]
        xf = self.fk.transforms
        scale = 1.0
        if isinstance(transform, Logicle):
            obj = xf.LogicleTransform(
                float(transform.t), float(transform.w), float(transform.m), float(transform.a)
            )
            kind = "logicle"
        elif isinstance(transform, Linear):
            obj = xf.LinearTransform(float(transform.top), 0.0)
            kind = "linear"
        elif isinstance(transform, Asinh):
            p = asinh_as_fasinh(transform.cofactor, top=self.asinh_top)
            obj = xf.AsinhTransform(p.t, p.m, p.a)
            kind, scale = "asinh", p.scale
        else:  # pragma: no cover - Transform is a closed union
            raise ConfigError(f"transform {transform!r} has no Gating-ML 2.0 equivalent")
        ref = f"{kind}_{sum(1 for r in self.xform_ids.values() if r.startswith(kind)) + 1}"
        self.strategy.add_transform(ref, obj)
        self.xform_ids[transform] = ref
        self.scales[transform] = scale
        return ref, scale

    def comp_ref(self, dim: Dimension) -> str:
        if not dim.compensated:
            return "uncompensated"
        if self.spillover is None:
            return "FCS"
        return MATRIX_ID if dim.channel in self.spillover.channels else "uncompensated"

    def dimension(self, dim: Dimension, lo: float | None, hi: float | None) -> Any:
        ref, scale = (None, 1.0) if dim.transform is None else self.transform_ref(dim.transform)
        return self.fk.Dimension(
            dim.channel,
            compensation_ref=self.comp_ref(dim),
            transformation_ref=ref,
            range_min=None if lo is None else float(lo) / scale,
            range_max=None if hi is None else float(hi) / scale,
        )

    def scale_of(self, dim: Dimension) -> float:
        return 1.0 if dim.transform is None else self.transform_ref(dim.transform)[1]

    def add(self, gate: Gate, gate_id: str, path: tuple[str, ...]) -> None:
        gates = self.fk.gates
        if isinstance(gate, RangeGate):
            dims = [
                self.dimension(d, lo, hi)
                for d, lo, hi in zip(gate.dims, gate.lo, gate.hi, strict=True)
                if lo is not None or hi is not None
            ]
            if not dims:
                # a gate that keeps its whole parent (an open Time gate, lymphocytes without a
                # scatter to separate them): Gating-ML needs a bound on each dimension, and a
                # minimum below every finite value keeps every event
                dims = [self.dimension(gate.dims[0], OPEN_MINIMUM, None)]
            fk_gate = gates.RectangleGate(gate_id, dims)
        elif isinstance(gate, PolygonGate):
            sx, sy = self.scale_of(gate.dims[0]), self.scale_of(gate.dims[1])
            dims = [self.dimension(d, None, None) for d in gate.dims]
            vertices = [[float(x) / sx, float(y) / sy] for x, y in gate.vertices]
            fk_gate = gates.PolygonGate(gate_id, dims, vertices)
        else:  # pragma: no cover - Gate is a closed union
            raise ConfigError(f"gate {gate!r} has no Gating-ML 2.0 equivalent")
        self.strategy.add_gate(fk_gate, path)


def _check_finite(gate: Gate) -> None:
    if isinstance(gate, RangeGate):
        values = [v for v in (*gate.lo, *gate.hi) if v is not None]
    else:
        values = [c for v in gate.vertices for c in v]
        if len(gate.vertices) < 3:
            raise ConfigError(f"polygon gate {gate.name!r} has fewer than 3 vertices")
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"gate {gate.name!r} has a non-finite coordinate")


def _annotate(xml: bytes, names: Mapping[str, str], note: str, markers: Mapping[str, str]) -> bytes:
    """Add each gate's display name, a provenance note and the markers' channels in
    ``data-type:custom_info``."""
    for prefix, uri in (
        ("gating", GATINGML_NS),
        ("data-type", DATATYPE_NS),
        ("transforms", TRANSFORMS_NS),
        ("nkpanel", NKPANEL_NS),
    ):
        ET.register_namespace(prefix, uri)
    root = ET.fromstring(xml)
    info_tag = f"{{{DATATYPE_NS}}}custom_info"
    for elem in root:
        gate_id = elem.get(f"{{{GATINGML_NS}}}id")
        if gate_id is None or gate_id not in names:
            continue
        info = ET.Element(info_tag)
        ET.SubElement(info, f"{{{NKPANEL_NS}}}gate-name").text = names[gate_id]
        elem.insert(0, info)  # the schema puts custom_info before a gate's dimensions
    info = ET.Element(info_tag)
    prov = ET.SubElement(info, f"{{{NKPANEL_NS}}}provenance")
    prov.set("software", "nkpanel")
    prov.set("version", __version__)
    prov.text = note
    for marker, channel in markers.items():
        ET.SubElement(info, f"{{{NKPANEL_NS}}}marker", {"name": marker, "channel": channel})
    root.insert(0, info)
    ET.indent(root)
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out


def matrix_to_embed(sample: FlowSample, used: Spillover | None) -> Spillover | None:
    """The matrix an export of ``sample``'s gates should carry, or None for ``"FCS"``.

    Gates exported from one file are re-applied, as a template, to the next patient's files,
    each compensated at acquisition with that day's matrix. When the gating used the file's own
    matrix, read from the keyword Gating-ML consumers read for ``"FCS"`` ($SPILLOVER, else
    SPILL: FlowKit, FlowJo), the export refers to each file's own matrix instead of freezing
    this file's; on this file both mean the same. A supplied matrix, or one read from a
    keyword those readers do not know ($COMP), is written into the document.
    """
    if used is None:
        return None
    meta = sample.metadata
    # the keywords FlowKit reads for "FCS", in its order: nkpanel's first two
    key = next((k for k in SPILLOVER_KEYWORDS[:2] if meta.get(k, "").strip()), None)
    if key is None:
        return used
    try:
        own = parse_spillover(meta[key], sample.pnn)
    except CompensationError:
        return used  # e.g. a MACSQuant list of names: the reader would not find a matrix
    return None if own == used else used


def export_gatingml(
    tree: GateTree,
    path: str | Path,
    *,
    spillover: Spillover | None = None,
    asinh_top: float = 262144.0,
    markers: Mapping[str, str] | None = None,
) -> Path:
    """Write ``tree`` as a Gating-ML 2.0 document.

    Parameters
    ----------
    tree
        nkpanel's gates, parents before children.
    path
        The ``.xml`` file to write (atomically: a reader never sees half a file).
    spillover
        ``None``: compensated dimensions use the file's own $SPILLOVER (``"FCS"``). A matrix:
        it is written into the document and compensated dimensions refer to it.
    asinh_top
        Top of scale T for ``Asinh`` axes exported as ``fasinh`` (see the module notes).
    markers
        Marker → the channel ($PnN) that carried it in the file the gates were found on,
        recorded in the root's ``custom_info``: a file the template is applied to later whose
        channels carry other markers (another panel) is then told apart (see
        :mod:`nkpanel.flow.template`).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ConfigError
        A gate cannot be expressed in Gating-ML 2.0 (no bound, non-finite coordinates, fewer
        than three polygon vertices, a non-positive cofactor or top of scale).

    Examples
    --------
    >>> from nkpanel.flow.gates import Dimension, GateTree, RangeGate
    >>> from nkpanel.flow.transforms import Logicle
    >>> cd3 = Dimension("PE-Cy7-A", Logicle())
    >>> tree = GateTree((RangeGate("CD3-", None, (cd3,), (None,), (0.4,)),))
    >>> export_gatingml(tree, Path("nk.xml"))  # doctest: +SKIP
    """
    import flowkit

    target = Path(path)
    ids = gate_ids(tree.names)
    builder = _Builder(spillover, asinh_top)
    for gate in tree.gates:
        _check_finite(gate)
        ancestors: list[str] = []
        parent = gate.parent
        while parent is not None:
            ancestors.append(ids[parent])
            parent = tree[parent].parent
        builder.add(gate, ids[gate.name], ("root", *reversed(ancestors)))
    buffer = io.BytesIO()
    flowkit.export_gatingml(builder.strategy, buffer)
    note = (
        "Gates written by nkpanel's automated gating, not drawn by a person; asinh axes are "
        f"exported as fasinh with T={asinh_top:g}, A=0 and coordinates divided by M*ln(10)."
    )
    data = _annotate(buffer.getvalue(), {v: k for k, v in ids.items()}, note, markers or {})
    write_bytes(target, data)
    return target
