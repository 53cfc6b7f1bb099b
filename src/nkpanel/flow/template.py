"""A laboratory's own gating template, applied to FCS files.

A lab that already gates its NK panel by hand keeps the gates as a Gating-ML 2.0 document or a
FlowJo 10 workspace. :func:`load_template` reads either (told apart by content, not by the file
name) and :func:`apply_template` runs its gate hierarchy, with the compensation and transforms it
names, on an FCS file. FlowKit parses the files and evaluates the gates; this module picks the
gate tree, checks the file has the channels the gates use, and turns every failure into a
one-line nkpanel error naming the file.

A FlowJo workspace holds one gate tree per sample. By default the workspace sample with the FCS
file's name is used, else the workspace's only sample; ``sample_id=`` names another one, so that
one sample's gates (with its compensation matrix and transforms) can be applied to a new
patient's file.

References
----------
Spidlen J et al. Gating-ML 2.0. International Society for Advancement of Cytometry (ISAC)
standard for representing gating descriptions in flow cytometry. 2013.
http://flowcyt.sourceforge.net/gating/latest.pdf

White S et al. FlowKit: a Python toolkit for integrated manual and automated cytometry analysis
workflows. Front Immunol 2021;12:768541.
"""

from __future__ import annotations

import array
import functools
import importlib
import io
import sys
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from nkpanel.errors import (
    CompensationError,
    ConfigError,
    FCSFormatError,
    InputError,
    MarkerError,
    one_line,
)
from nkpanel.flow.sample import KEPT_KEYWORDS, SPILLOVER_KEYWORDS, Spillover, timestep

if TYPE_CHECKING:
    from nkpanel.flow.sample import FlowSample

__all__ = [
    "GATINGML_NS",
    "NKPANEL_NS",
    "Template",
    "TemplateResult",
    "apply_template",
    "load_template",
]

#: XML namespace of Gating-ML 2.0 gates
GATINGML_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
#: XML namespace of Gating-ML 2.0 data types (``custom_info`` lives here)
DATATYPE_NS = "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"
#: namespace of nkpanel's own elements inside ``data-type:custom_info`` (gate display names)
NKPANEL_NS = "urn:x-nkpanel:gating-ml:1"

TemplateKind = Literal["gatingml", "flowjo"]
V = TypeVar("V")


class ResultMap(Mapping[str, V]):
    """Read-only map keyed by gate path (``"/Lymphocytes/Singlets/NK cells"``).

    Iteration yields the full paths only; lookup also accepts a bare gate name when exactly one
    gate carries it. A name that matches no gate, or several, raises ``KeyError`` saying which
    gates exist, so a misspelt gate never reads as a zero count.
    """

    def __init__(self, by_path: Mapping[str, V], gate_names: Mapping[str, str]) -> None:
        self._by_path = dict(by_path)
        names: dict[str, list[str]] = {}
        for p in self._by_path:
            names.setdefault(gate_names.get(p, p.rsplit("/", 1)[-1]), []).append(p)
        self._paths_of_name = names

    def __getitem__(self, key: str) -> V:
        if key in self._by_path:
            return self._by_path[key]
        paths = self._paths_of_name.get(key, [])
        if len(paths) == 1:
            return self._by_path[paths[0]]
        if paths:
            raise KeyError(f"gate name {key!r} is ambiguous; use one of the paths {paths}")
        raise KeyError(f"no gate {key!r}; the template's gates are {list(self._by_path)}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_path)

    def __len__(self) -> int:
        return len(self._by_path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._by_path)})"


@dataclass(frozen=True, eq=False)
class Template:
    """A parsed gating template: one FlowKit ``GatingStrategy`` per workspace sample.

    Build it with :func:`load_template`.

    Attributes
    ----------
    source
        The template file.
    kind
        ``"gatingml"`` or ``"flowjo"``.
    strategies
        Workspace sample name → FlowKit ``GatingStrategy``; a Gating-ML document has one
        strategy, under the key ``""``.
    groups
        FlowJo sample group → names of its samples (empty for Gating-ML).
    gate_names
        Gating-ML gate id → display name, for documents written by
        :func:`nkpanel.flow.gatingml.export_gatingml` (whose ids must be XML names).
    markers
        Marker → channel the gates were drawn with, from nkpanel's own exports.
    notes
        Warnings FlowKit raised while reading the file.
    """

    source: Path
    kind: TemplateKind
    strategies: Mapping[str, Any]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    gate_names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    notes: tuple[str, ...] = ()
    #: marker → the channel ($PnN) that carried it where the gates were drawn, as nkpanel's
    #: own exports record it (empty otherwise)
    markers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: FlowJo only: the counts the workspace stored, by sample name: (its events, gate path →
    #: events), for the check of a workspace's own sample (:func:`_against_stored_counts`)
    stored_counts: Mapping[str, tuple[int, Mapping[str, int]]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def sample_names(self) -> tuple[str, ...]:
        """Workspace sample names (empty for Gating-ML, whose gates apply to every file)."""
        return tuple(s for s in self.strategies if s) if self.kind == "flowjo" else ()


@dataclass(frozen=True, eq=False)
class TemplateResult:
    """Gate membership of every event of one file under a template.

    Keys are gate paths such as ``"/Lymphocytes/Singlets/NK cells"``; a bare gate name works as
    a key when only one gate has it. A quadrant's path runs through its quadrant gate
    (``"/Quadrant1/FL2P-FL4P"``); the quadrant gate itself has no entry of its own.

    Attributes
    ----------
    sample
        The FCS file name.
    membership
        Gate path → one boolean per event, in file order (each gate within its parents).
    counts
        Gate path → number of events in the gate.
    parents
        Gate path → the parent population's path, or ``None`` for a gate on all events.
    n_events
        Events in the file.
    template
        The template file that was applied, and for a workspace the sample whose gates were used.
    notes
        Warnings raised while gating (recoverable oddities, for the QC notes).
    channels
        The file's channels ($PnN) the template's gates use (for the saturation check).
    flowkit_sample
        The ``flowkit.Sample`` the file was gated as, for figures that need its compensated
        and transformed events (so the file is not read again).
    """

    sample: str
    membership: Mapping[str, NDArray[np.bool_]]
    counts: Mapping[str, int]
    parents: Mapping[str, str | None]
    n_events: int = 0
    template: str = ""
    notes: tuple[str, ...] = ()
    flowkit_sample: Any = field(default=None, repr=False)
    #: the file's channels ($PnN) the template gates on
    channels: tuple[str, ...] = ()
    #: each of them → the compensation its gates use ("FCS": the file's own matrix, a
    #: template matrix's reference, or "uncompensated")
    compensation: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the FlowKit ``GatingStrategy`` applied, and each gate's (name, path) in it
    strategy: Any = field(default=None, repr=False)
    gate_ids: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    #: each gate path → the gate's own name, which may hold a "/" ("CD3-/CD56+", as FlowJo
    #: users name gates: its path cannot be split on "/" to find it, audit 39)
    leaves: Mapping[str, str] = field(default_factory=dict)

    def gate(self, key: str) -> Any:
        """The FlowKit gate of the population ``key``, or ``None`` (no strategy; a quadrant,
        which is a part of its quadrant gate)."""
        from flowkit.exceptions import QuadrantReferenceError

        found = self.gate_ids.get(key)
        if self.strategy is None or found is None:
            return None
        try:
            return self.strategy.get_gate(*found)
        except QuadrantReferenceError:
            return None

    #: the workspace sample whose gates were applied (``None`` for Gating-ML)
    workspace_sample: str | None = None
    #: the template's own spillover matrices its gates compensate with, by reference (a
    #: dimension that refers to "FCS" uses the file's own $SPILLOVER and is not listed)
    matrices: Mapping[str, Spillover] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------- loading


def _one_line(exc: BaseException | str) -> str:
    return one_line(exc, limit=200)


def _root_element(path: Path) -> ET.Element:
    """The document's root element (only the start tag is parsed), or a ConfigError."""
    try:
        with path.open("rb") as fh:
            head = fh.read(65536)
            if b"<!ENTITY" in head:
                raise ConfigError(
                    f"{path}: declares XML entities, which nkpanel refuses to expand in a template"
                )
            fh.seek(0)
            for _event, elem in ET.iterparse(fh, events=("start",)):
                root: ET.Element = elem
                return root
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the template: {exc.strerror or exc}") from None
    except ET.ParseError as exc:
        raise ConfigError(f"{path}: not an XML document ({_one_line(exc)})") from None
    raise ConfigError(f"{path}: not an XML document (no root element)")


def _detect_kind(path: Path) -> TemplateKind:
    root = _root_element(path)
    if root.tag == f"{{{GATINGML_NS}}}Gating-ML":
        return "gatingml"
    local = root.tag.rsplit("}", 1)[-1]
    if local == "Workspace" and "flowJoVersion" in root.attrib:
        version = root.attrib["flowJoVersion"]
        try:
            major = int(version.split(".")[0])
        except ValueError:
            major = 0
        if major < 10:
            raise ConfigError(
                f"{path}: FlowJo workspace version {version!r}; only FlowJo 10 or later is read"
            )
        return "flowjo"
    raise ConfigError(
        f"{path}: neither a Gating-ML 2.0 document nor a FlowJo 10 workspace "
        f"(root element <{local}>)"
    )


def _schema_problem(path: Path) -> str | None:
    """First Gating-ML 2.0 schema violation, as ``"line N: message"``, if one can be found."""
    try:
        etree: Any = importlib.import_module("lxml.etree")
        schema: Any = importlib.import_module("flowkit._resources").gml_schema
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        doc = etree.parse(str(path), parser)
        if schema.validate(doc):
            return None
        err = schema.error_log[0]
        message = str(err.message)
        for prefix, uri in (("gating", GATINGML_NS), ("data-type", DATATYPE_NS)):
            message = message.replace(f"{{{uri}}}", f"{prefix}:")
        return f"line {err.line}: {_one_line(message)}"
    except Exception:  # the message is a courtesy; never let it hide the real error
        return None


def _flowjo_export(path: Path) -> bool:
    """Whether a Gating-ML file was written by FlowJo (its gates carry FlowJo's display
    attributes, such as ``annoOffsetX`` and ``quadId``, outside any namespace)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return False
    return b"annoOffsetX=" in head and b"quadId=" in head


def _collect(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    """FlowKit's own warnings as notes; library deprecation chatter is dropped."""
    skip = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
    return tuple(_one_line(str(w.message)) for w in caught if not issubclass(w.category, skip))


def _recorded_markers(root: ET.Element) -> dict[str, str]:
    """Marker → channel, from the root ``custom_info`` of nkpanel's own exports."""
    found = root.findall(f"{{{DATATYPE_NS}}}custom_info/{{{NKPANEL_NS}}}marker")
    return {str(e.get("name")): str(e.get("channel")) for e in found if e.get("name")}


def _gate_display_names(root: ET.Element) -> dict[str, str]:
    """Gate id → name from nkpanel's ``custom_info`` (present only in nkpanel's own exports)."""
    names: dict[str, str] = {}
    for elem in root:
        gate_id = elem.get(f"{{{GATINGML_NS}}}id")
        if gate_id is None:
            continue
        name = elem.find(f"{{{DATATYPE_NS}}}custom_info/{{{NKPANEL_NS}}}gate-name")
        if name is not None and name.text:
            names[gate_id] = name.text
    return names


def load_template(path: str | Path) -> Template:
    """Read a gating template: a Gating-ML 2.0 document or a FlowJo 10 workspace.

    The format is told by content (the root element), not by the file name.

    Parameters
    ----------
    path
        The ``.xml`` (Gating-ML 2.0) or ``.wsp`` (FlowJo 10) file.

    Returns
    -------
    Template
        The parsed gate hierarchies, compensation matrices and transforms.

    Raises
    ------
    ConfigError
        The file cannot be read, is not XML, is neither Gating-ML 2.0 nor a FlowJo 10
        workspace, breaks the Gating-ML 2.0 schema (the first violation is quoted), or holds
        gates FlowKit cannot build. The message is one line and names the file.

    Examples
    --------
    >>> t = load_template(Path("gating.wsp"))  # doctest: +SKIP
    >>> apply_template(t, Path("68983.fcs")).counts["NK cells"]  # doctest: +SKIP
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return _parse_template(p)  # _detect_kind names the file and the cause
    # a batch applies one template to many files: parse it once while the file is unchanged
    return _cached_template(p, p.resolve(), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _cached_template(p: Path, _resolved: Path, _mtime_ns: int, _size: int) -> Template:
    return _parse_template(p)


def _parse_template(p: Path) -> Template:
    import flowkit

    kind = _detect_kind(p)
    try:  # the whole document: a file cut short was "cannot build its gates" (audit 21)
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        raise ConfigError(
            f"{p}: not well-formed XML ({_one_line(exc)}): cut short, or edited by hand?"
        ) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if kind == "gatingml":
            try:
                strategy = flowkit.parse_gating_xml(str(p))
            except Exception as exc:
                problem = _schema_problem(p)
                cause = (
                    f"not valid Gating-ML 2.0 ({problem})"
                    if problem
                    else f"cannot build its gates: it refers to {exc.args[0]!r}, which it does "
                    "not define (a gate's parent_id?)"
                    if isinstance(exc, KeyError) and exc.args
                    else f"cannot build its gates: {_one_line(exc)}"
                )
                if problem and "compensation-ref" in problem and _flowjo_export(p):
                    # which matrix FlowJo gated on is not in the file: not guessed
                    cause += (
                        "; FlowJo's Gating-ML export leaves out which compensation each gate "
                        "is on: apply the FlowJo workspace (.wsp) instead"
                    )
                raise ConfigError(f"{p}: {cause}") from None
            names = _gate_display_names(root)
            _check_gates(p, strategy)
            return Template(
                p,
                kind,
                MappingProxyType({"": strategy}),
                gate_names=MappingProxyType(names),
                notes=_collect(caught),
                markers=MappingProxyType(_recorded_markers(root)),
            )
        try:
            wsp = flowkit.parse_wsp(str(p))
        except Exception as exc:
            raise ConfigError(f"{p}: cannot read the FlowJo workspace: {_one_line(exc)}") from None
    samples = {str(k): v["gating_strategy"] for k, v in wsp["samples"].items()}
    if not samples:
        raise ConfigError(f"{p}: the FlowJo workspace holds no samples")
    for strategy in samples.values():
        _check_gates(p, strategy)
    groups = {str(g): tuple(str(s) for s in d["samples"]) for g, d in wsp["groups"].items()}
    return Template(
        p,
        kind,
        MappingProxyType(samples),
        MappingProxyType(groups),
        notes=_collect(caught),
        stored_counts=MappingProxyType(_stored_counts(root)),
    )


def _stored_counts(root: ET.Element) -> dict[str, tuple[int, dict[str, int]]]:
    """The event counts FlowJo stored in a workspace: each sample's name → (its events, each
    gate path → its events), paths as :func:`apply_template` keys them."""

    def walk(parent: ET.Element, path: tuple[str, ...], gates: dict[str, int]) -> None:
        for sub in parent.findall("Subpopulations"):
            for pop in sub:
                name, count = pop.get("name"), pop.get("count")
                if name is None:
                    continue
                here = (*path, name)
                if count is not None and count.strip().isdigit():
                    gates[_path_string(here, {})] = int(count)
                walk(pop, here, gates)

    out: dict[str, tuple[int, dict[str, int]]] = {}
    for node in root.iter("SampleNode"):
        gates: dict[str, int] = {}
        walk(node, (), gates)
        total = node.get("count", "")
        if node.get("name") and total.strip().isdigit():
            out[str(node.get("name"))] = (int(total), gates)
    return out


def _template_gates(strategy: Any) -> Iterator[tuple[str, Any]]:
    """Each gate of ``strategy`` with its name, in the template's order; a quadrant of a
    quadrant gate is not one (its quadrant gate is)."""
    from flowkit.exceptions import QuadrantReferenceError

    for name, path in strategy.get_gate_ids():
        try:
            yield str(name), strategy.get_gate(name, path)
        except QuadrantReferenceError:
            continue


def _check_gates(path: Path, strategy: Any) -> None:
    """Refuse, when the template loads, a gate that can hold no event (a range whose minimum
    lies above its maximum: a hand edit's slip, audit 21, that reported CD56bright 0.0%) or
    that refers to a transformation or matrix the template does not define (found per file,
    as a bare name, before)."""
    for name, gate in _template_gates(strategy):
        for dim in getattr(gate, "dimensions", None) or ():
            where = f"{path}: gate {name!r}, dimension {getattr(dim, 'id', '?')!r}"
            lo, hi = getattr(dim, "min", None), getattr(dim, "max", None)
            if lo is not None and hi is not None and lo > hi:
                raise ConfigError(f"{where}: its minimum {lo:g} is above its maximum {hi:g}")
            ref = getattr(dim, "transformation_ref", None)
            if ref is not None and ref not in strategy.transformations:
                raise ConfigError(f"{where}: transformation {ref!r} is not defined in the template")
            ref = getattr(dim, "compensation_ref", None)
            if ref not in (None, "uncompensated", "FCS") and ref not in strategy.comp_matrices:
                raise ConfigError(
                    f"{where}: compensation {ref!r} is not a matrix of the template (nor FCS, "
                    "the file's own, nor uncompensated)"
                )


# ---------------------------------------------------------------------------------------- applying


def check_workspace_sample(template: Template, sample_id: str | None) -> None:
    """Refuse a workspace sample the template does not hold, or one named for Gating-ML.

    Raises
    ------
    ConfigError
        Naming the template, the sample and the samples it does hold.
    """
    if sample_id is None:
        return
    if template.kind != "flowjo":
        raise ConfigError(
            f"{template.source}: a Gating-ML template applies to every file; "
            f"there is no workspace sample {sample_id!r} to choose"
        )
    if sample_id not in template.strategies:
        raise ConfigError(
            f"{template.source}: the workspace has no sample {sample_id!r} "
            f"(samples: {sorted(template.strategies)})"
        )


def _pick_strategy(
    template: Template, fcs_path: Path, sample_id: str | None, group: str, fil: str = ""
) -> tuple[Any, str, str | None]:
    """The gating strategy to use, a label saying where it came from, and the workspace sample
    whose gates it is (``None`` for Gating-ML).

    A workspace applies the gates of the sample ``sample_id`` names, else of the sample named
    like the file, else, when the group holds one sample only (a lab's template workspace), of
    that sample.
    """
    if template.kind == "gatingml":
        return template.strategies[""], template.source.name, None
    src = template.source
    if group not in template.groups:
        raise ConfigError(
            f"{src}: no sample group {group!r} in the workspace (groups: {sorted(template.groups)})"
        )
    members = [m for m in template.groups[group] if m in template.strategies]
    wanted = sample_id if sample_id is not None else fcs_path.name
    if sample_id is None and wanted not in members and len(members) == 1:
        wanted = members[0]
    if wanted not in members:
        # a renamed export keeps its $FIL: said, not matched silently (audit 39)
        was = f"; the file's $FIL is {fil!r}, a sample of the workspace" if fil in members else ""
        hint = (
            ""
            if sample_id is not None
            else f"{was}; name the workspace sample whose gates to apply (--template-sample, or "
            "template_sample in the case manifest)"
        )
        raise ConfigError(
            f"{src}: workspace group {group!r} has no sample {wanted!r} "
            f"(samples: {list(template.groups[group])}){hint}"
        )
    return template.strategies[wanted], f"{src.name} [{wanted}]", wanted


def _load_fcs(
    fcs_path: Path,
    *,
    flowjo_labels: bool,
    dataset: int | None = None,
    read: FlowSample | None = None,
    in_matrices: Sequence[str] = (),
) -> tuple[Any, tuple[str, ...]]:
    """A FlowKit ``Sample`` of the data set :func:`~nkpanel.flow.sample.read_fcs` would read
    (``dataset``, or its default), and notes on how it was read. Fluorescence channels in
    neither the file's spillover matrix nor ``in_matrices`` (the template's) are FlowKit's
    null channels (:func:`_outside_the_matrix`).

    The file is read by nkpanel first (``read``, when the caller already has it), so a bad file
    gets nkpanel's precise cause. FlowKit then reads it through flowio, unless flowio would read
    other values than nkpanel (a $BYTEORD it does not recognise, $PnE on floating-point data,
    a $TIMESTEP that is no positive number) or cannot read it at all (3-byte integers, an
    $ENDDATA one past the data, blank HEADER offsets, ASCII data): FlowKit is then handed the
    events as nkpanel read them, in FlowKit's 32-bit floats, and a note says so."""
    import flowio
    import flowkit

    from nkpanel.flow.sample import read_fcs

    mine = read if read is not None else read_fcs(fcs_path, dataset=dataset)
    null = _outside_the_matrix(mine, in_matrices)
    why = _flowio_reads_otherwise(mine)
    if why is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # our own handle, closed here even when flowio gives up half-way; the data set
                # is the one nkpanel read (flowio wants its offset in a file of several)
                with fcs_path.open("rb") as fh:
                    data = flowio.FlowData(
                        fh, nextdata_offset=mine.dataset_offset, null_channel_list=null
                    )
                    fk = flowkit.Sample(
                        data, sample_id=fcs_path.name, use_flowjo_labels=flowjo_labels
                    )
                    return fk, ()
        except FCSFormatError:
            raise
        except Exception as exc:
            why = f"FlowKit cannot read the file ({_one_line(exc)})"
    try:
        fk = _flowkit_sample_of(mine, fcs_path.name, flowjo_labels, null)
    except Exception as exc:
        raise FCSFormatError(fcs_path, f"unreadable FCS data: {why}") from exc
    note = f"{why}; the template was applied to the events as nkpanel read them, as 32-bit floats"
    return fk, (note,)


#: $BYTEORD values flowio reads as written; any other it reads in the machine's byte order
_FLOWIO_BYTE_ORDERS = ("1,2,3,4", "1,2", "4,3,2,1", "2,1")


def _flowio_reads_otherwise(sample: FlowSample) -> str | None:
    """Why flowio (and so FlowKit) would decode ``sample``'s file into other values than
    nkpanel did, or ``None`` when it would decode the same."""
    meta = sample.metadata
    datatype = meta.get("datatype", "").strip().upper()
    order = meta.get("byteord", "")
    one_byte = datatype == "I" and all(
        meta.get(f"p{n}b", "").strip() == "8" for n in range(1, len(sample.channels) + 1)
    )
    # flowio falls back to the machine's order, which is right for 1,2,…,n on this machine
    native = sys.byteorder == "little" and order == ",".join(
        str(i) for i in range(1, len(order.split(",")) + 1)
    )
    if not (order in _FLOWIO_BYTE_ORDERS or one_byte or native or datatype == "A"):
        return f"flowio would read $BYTEORD {order!r} in this machine's byte order"
    if datatype in ("F", "D"):
        for n in range(1, len(sample.channels) + 1):
            f1 = meta.get(f"p{n}e", "0,0").split(",")[0].strip()
            if f1 not in ("0", "0.0", ""):
                return f"flowio would apply $P{n}E {meta[f'p{n}e']} to floating-point values"
    if "timestep" in meta and timestep(meta) is None:
        return f"flowio would scale Time by $TIMESTEP {meta['timestep']!r}"
    return None


def _outside_the_matrix(sample: FlowSample, in_matrices: Sequence[str]) -> list[str]:
    """The channels FlowKit takes for fluorescence that the file's spillover matrix leaves out
    (and no matrix of the template holds), when the file has one: a cytometer that records
    each detector's height (``FITC-H``) beside its area writes the matrix over the areas, and
    FlowKit refuses that matrix for a file with more fluorescence channels than it names.
    Such a channel has no compensated value other than its own, as in FlowJo."""
    if sample.spillover is None:
        return []
    named = {*sample.spillover.channels, *in_matrices}
    return [  # FlowKit's (flowio's) rule for which channels are fluorescence
        pnn
        for pnn in sample.pnn
        if pnn.lower()[:4] not in ("fsc-", "ssc-", "time") and pnn not in named
    ]


def _flowkit_sample_of(
    sample: FlowSample, sample_id: str, flowjo_labels: bool, null: Sequence[str] = ()
) -> Any:
    """A FlowKit ``Sample`` holding ``sample``'s events (as 32-bit floats, FlowKit's in-memory
    FCS), channel names, ranges and spillover keyword; ``null``: FlowKit's null channels."""
    import flowio
    import flowkit

    keep = {k: v for k, v in sample.metadata.items() if k in _KEPT_FOR_FLOWKIT}
    for n, ch in enumerate(sample.channels, start=1):
        keep[f"p{n}r"] = str(int(ch.pnr)) if ch.pnr.is_integer() else repr(ch.pnr)
    # FCS forbids empty values: a channel without $PnS is described by its $PnN
    pns = [ch.pns or ch.pnn for ch in sample.channels]
    values = array.array("f")  # flowio writes this as it is, without a list of Python floats
    values.frombytes(np.ascontiguousarray(sample.events, dtype=np.float32).tobytes())
    buf = io.BytesIO()
    flowio.create_fcs(
        buf,
        values,
        channel_names=list(sample.pnn),
        opt_channel_names=pns,
        metadata_dict=keep,
    )
    buf.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flowkit.Sample(
            flowio.FlowData(buf, null_channel_list=list(null)),
            sample_id=sample_id,
            use_flowjo_labels=flowjo_labels,
        )


#: keywords (lower case, no "$") carried into a FlowKit sample built from nkpanel's reading
#: (not $TOT and $PAR, which flowio writes itself, nor $TIMESTEP, already applied to Time)
_KEPT_FOR_FLOWKIT = (
    *SPILLOVER_KEYWORDS,
    *(k for k in KEPT_KEYWORDS if k not in ("timestep", "tot", "par")),
)


def _needed_channels(strategy: Any) -> dict[str, tuple[str, ...]]:
    """Channel label → the compensation references its gate dimensions use (in gate order:
    one channel may be gated compensated by one gate and uncompensated by another)."""
    import flowkit

    needed: dict[str, tuple[str, ...]] = {}

    def add(label: str, comp: str) -> None:
        refs = needed.setdefault(label, ())
        if comp not in refs:
            needed[label] = (*refs, comp)

    for _name, gate in _template_gates(strategy):
        for dim in getattr(gate, "dimensions", None) or []:
            comp = str(getattr(dim, "compensation_ref", None) or "uncompensated")
            if isinstance(dim, flowkit.RatioDimension):
                ratio = strategy.transformations.get(dim.ratio_ref)
                for label in getattr(ratio, "dimensions", []):
                    add(str(label), comp)
            elif isinstance(dim, flowkit.QuadrantDivider):
                add(str(dim.dimension_ref), comp)
            else:
                add(str(dim.id), comp)
    return needed


def _gated_channels(
    strategy: Any, sample: Any, fcs_path: Path, label: str
) -> dict[str, tuple[str, ...]]:
    """The file's channels ($PnN) the template's gates use, found by $PnN or $PnS, each with
    the compensation references of its gate dimensions.

    Raises
    ------
    MarkerError
        A gate dimension that is no channel of the file (nor a fluorochrome of the template's
        compensation matrix).
    """
    pnn = [str(x) for x in sample.pnn_labels]
    pns = [str(x) for x in sample.pns_labels]
    found: dict[str, tuple[str, ...]] = {}
    missing = []
    for channel, refs in _needed_channels(strategy).items():
        names = next(
            (n for n in (pnn, pns, [x.replace("/", "_") for x in pnn]) if channel in n), None
        )
        if names is not None:
            found.setdefault(pnn[names.index(channel)], refs)
            continue
        matrices = [strategy.comp_matrices.get(ref) for ref in refs]
        if any(m is not None and channel in list(m.fluorochromes) for m in matrices):
            continue
        missing.append(channel)
    if missing:
        raise MarkerError(
            fcs_path,
            f"template {label} gates on {missing}, not channels of this file (channels: {pnn})",
        )
    return found


def _path_string(parts: tuple[str, ...], names: Mapping[str, str]) -> str:
    return "/" + "/".join(names.get(p, p) for p in parts)


def apply_template(
    template: Template,
    fcs_path: str | Path,
    *,
    sample_id: str | None = None,
    group: str = "All Samples",
    dataset: int | None = None,
    read: FlowSample | None = None,
) -> TemplateResult:
    """Gate one FCS file with a lab's template.

    Parameters
    ----------
    template
        From :func:`load_template`.
    fcs_path
        The FCS file to gate.
    sample_id
        FlowJo only: the workspace sample whose gate tree (with its compensation matrix and
        transforms) is applied. Default: the sample named like ``fcs_path``, else the group's
        only sample. Name another sample to apply a template workspace of several samples to
        a new patient's file. Ignored for Gating-ML, whose gates apply to every file.
    group
        FlowJo only: the sample group in which ``sample_id`` is looked up.
    dataset
        The data set of a file that holds several (see :func:`~nkpanel.flow.sample.read_fcs`).
    read
        The file (that data set) as :func:`~nkpanel.flow.sample.read_fcs` read it, when the
        caller has it; otherwise it is read here.

    Returns
    -------
    TemplateResult
        Membership, counts and parents of every gate, keyed by gate path.

    Raises
    ------
    ConfigError
        The workspace has no such group, or no such sample in it.
    FCSFormatError
        The FCS file cannot be read.
    MarkerError
        The template gates on a channel the file does not have.
    InputError
        FlowKit fails while compensating, transforming or gating the file.
    """
    from nkpanel.flow.sample import read_fcs

    p = Path(fcs_path)
    mine = read if read is not None else read_fcs(p, dataset=dataset)
    strategy, label, used = _pick_strategy(
        template, p, sample_id, group, mine.metadata.get("fil", "").strip()
    )
    strategy, acquired = _acquisition_matrix(strategy, mine)
    sample, read_notes = _load_fcs(
        p,
        flowjo_labels=template.kind == "flowjo",
        dataset=dataset,
        read=mine,
        in_matrices=[d for m in strategy.comp_matrices.values() for d in m.detectors],
    )
    read_notes += acquired
    compensation = _gated_channels(strategy, sample, p, label)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            results = strategy.gate_sample(sample)
        except Exception as exc:
            raise InputError(p, f"template {label} cannot be applied: {_one_line(exc)}") from None
    notes = template.notes + read_notes + _collect(caught)
    if used is not None and used != p.name:
        notes += (f"gates of the workspace sample {used!r} applied",)

    membership: dict[str, NDArray[np.bool_]] = {}
    parents: dict[str, str | None] = {}
    leaf: dict[str, str] = {}
    names = template.gate_names
    # the template's own gate order (parents first); a quadrant sits under its quadrant gate,
    # while its population's parent is the quadrant gate's parent
    position = {
        (str(n), tuple(str(a) for a in anc)): i
        for i, (n, anc) in enumerate(strategy.get_gate_ids())
    }
    rows: list[tuple[int, str, tuple[str, ...], tuple[str, ...]]] = []
    for row in results.report.itertuples(index=False):
        parent_path = tuple(str(a) for a in row.gate_path)  # from "root"
        quad = row.quadrant_parent if isinstance(row.quadrant_parent, str) else None
        tree_path = (*parent_path, quad) if quad is not None else parent_path
        gate_name = str(row.gate_name)
        rank = position.get((gate_name, tree_path), len(position))
        rows.append((rank, gate_name, parent_path, tree_path))
    gates: dict[str, tuple[str, tuple[str, ...]]] = {}
    for _rank, gate_name, parent_path, tree_path in sorted(rows):
        key = _path_string((*tree_path[1:], gate_name), names)
        gates[key] = (gate_name, tree_path)
        events = np.array(results.get_gate_membership(gate_name, parent_path), dtype=bool)
        events.setflags(write=False)
        membership[key] = events
        parents[key] = _path_string(parent_path[1:], names) if len(parent_path) > 1 else None
        leaf[key] = names.get(gate_name, gate_name)
    counts = {k: int(np.count_nonzero(v)) for k, v in membership.items()}
    stored = template.stored_counts.get(used or "")
    if stored is not None and used == p.name and stored[0] == int(sample.event_count):
        notes += _against_stored_counts(counts, stored[1])
    return TemplateResult(
        sample=p.name,
        membership=ResultMap(membership, leaf),
        counts=ResultMap(counts, leaf),
        parents=ResultMap(parents, leaf),
        n_events=int(sample.event_count),
        template=label,
        notes=notes,
        flowkit_sample=sample,
        channels=tuple(compensation),
        compensation=MappingProxyType(compensation),
        strategy=strategy,
        gate_ids=MappingProxyType(gates),
        leaves=MappingProxyType(leaf),
        workspace_sample=used,
        matrices=_template_matrices(strategy),
    )


def _against_stored_counts(counts: Mapping[str, int], stored: Mapping[str, int]) -> tuple[str, ...]:
    """A note comparing each gate's events with the count FlowJo stored for the same sample: a
    check of the whole import (sample, compensation, transforms, gates). FlowJo rasterises a
    polygon's edge at its gate resolution, so events on an edge can fall otherwise: on the
    expert's FlowSOM workspace 9 of 15 gates held 12-13 events more (0.07%) than FlowJo
    stored (audit 39)."""
    both = [k for k in counts if k in stored]
    if not both:
        return ()  # FlowJo stored no counts to compare with
    apart = [(k, counts[k] - stored[k]) for k in both if counts[k] != stored[k]]
    if not apart:
        return (f"all {len(both)} gates hold the events FlowJo stored for this sample",)
    worst = max(apart, key=lambda kd: abs(kd[1]) / max(1, stored[kd[0]]))
    share = abs(worst[1]) / max(1, stored[worst[0]])
    # edge events are a few per thousand; a larger gap is something else (another file under
    # the same name, gates FlowJo drew otherwise: 50% was put down to edges, review 41)
    why = (
        "events on a polygon's edge, which FlowJo rasterises, fall either way"
        if share <= EDGE_SHARE
        else "more than edge events: check that this is the workspace's own file and that its "
        "gates were applied as FlowJo applies them"
    )
    return (
        f"{len(both) - len(apart)} of {len(both)} gates hold the events FlowJo stored for this "
        f"sample; {len(apart)} differ, the most {worst[0]} ({counts[worst[0]]:,} here, "
        f"{stored[worst[0]]:,} in FlowJo: {share:.2%}; {why})",
    )


#: the largest share of a gate's events FlowJo's rasterised polygon edges are taken to explain
#: (the expert's FlowSOM workspace: at most 0.38%, a gate of 267 events)
EDGE_SHARE = 0.01


#: FlowJo's name for the matrix a file was acquired with: each file's own $SPILLOVER (a
#: workspace keeps a copy of its sample's; FlowJo applies a new file's own to it)
ACQUISITION_DEFINED = "Acquisition-defined"


def _acquisition_matrix(strategy: Any, sample: FlowSample) -> tuple[Any, tuple[str, ...]]:
    """``strategy`` with its "Acquisition-defined" matrix replaced by ``sample``'s own, as
    FlowJo applies it, and a note; ``strategy`` itself where it has none, or where the file's
    matrix does not hold the same detectors (said in the note).

    The workspace's copy is the acquisition matrix of the sample the template was drawn on:
    applied to a new file acquired after a new compensation run (PE into PE-Cy7 2% for 0.36),
    it read NK 0.8% for 1.7, reportable (audit 39)."""
    import copy

    import flowkit

    stored = strategy.comp_matrices.get(ACQUISITION_DEFINED)
    if stored is None:
        return strategy, ()
    own = sample.spillover
    detectors = [str(d) for d in stored.detectors]
    if own is None or set(own.channels) != set(detectors):
        if own is None:
            why = " has no spillover matrix"
        else:
            lacks = [d for d in detectors if d not in own.channels]
            extra = [d for d in own.channels if d not in detectors]
            parts = [f"lacks {', '.join(lacks)}"] if lacks else []
            parts += [f"holds {', '.join(extra)} besides"] if extra else []
            why = "'s matrix " + "; ".join(parts)
        return strategy, (
            f"the template compensates with {ACQUISITION_DEFINED!r}, FlowJo's name for each "
            f"file's own matrix, but this file{why}: the "
            "template sample's copy was applied",
        )
    order = [own.channels.index(d) for d in detectors]
    matrix = flowkit.Matrix(own.matrix[np.ix_(order, order)], detectors)
    replaced = copy.copy(strategy)
    replaced.comp_matrices = {**strategy.comp_matrices, ACQUISITION_DEFINED: matrix}
    replaced.clear_cache()  # its own cache: another file's events compensated otherwise
    return replaced, (
        f"the template compensates with {ACQUISITION_DEFINED!r}, FlowJo's name for each "
        "file's own matrix: this file's spillover keyword applied, as FlowJo does",
    )


def _template_matrices(strategy: Any) -> dict[str, Spillover]:
    """The template's own spillover matrices that its gates refer to, as nkpanel matrices
    (one row per dye, over the detectors FlowKit lists). A matrix nkpanel would refuse
    (singular, not finite) is left out: FlowKit has applied it, and says so if it cannot."""
    out: dict[str, Spillover] = {}
    for ref in {r for refs in _needed_channels(strategy).values() for r in refs}:
        matrix = strategy.comp_matrices.get(ref)
        if matrix is None:
            continue
        try:
            out[ref] = Spillover(tuple(str(d) for d in matrix.detectors), matrix.matrix)
        except CompensationError:
            continue
    return out
