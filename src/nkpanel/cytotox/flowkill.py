"""Flow-based killing: labelled K562 targets, a dead-cell dye, one FCS tube per E:T ratio.

A tube list (CSV, TSV or XLSX) names the tubes and what each holds::

    file,sample,role,ratio,treatment
    tubes/targets_alone.fcs,P01,targets,,none
    tubes/et50.fcs,P01,test,50,none

(``role``: ``targets`` — targets alone — or ``test``; files relative to the list.) For each
sample:

1. Each tube is read with :func:`nkpanel.flow.sample.read_fcs`; the target label (CFSE,
   CellTrace Violet, PKH…) and the dead-cell dye (PI, 7-AAD, SYTOX…) are found on its channels
   by :func:`nkpanel.flow.markers.resolve_markers` with this module's alias table.
2. Both dyes are put on an asinh scale (cofactor 150, a fluorescence default) and one cut per
   dye is found by :func:`nkpanel.flow.density.find_cut` on the sample's tubes pooled (an
   equal share of events from each), so every tube of the sample is read with the same gates
   and differences between tubes are killing, not gate drift. Targets are label-positive
   events; dead targets are dye-positive targets.
3. Dead % of targets alone (``D_T``) and with effectors (``D_E``) give specific killing
   ``(D_E − D_T)/(100 − D_T) × 100`` (Kim et al. 2007), which the plate engine treats as
   specific lysis with S = ``D_T`` and M = 100: replicates, QC, lytic units and suppression
   are computed exactly as for release assays.

No scatter gate is applied: dying targets shrink, and a debris gate would remove the cells
being counted. Dead targets that lose so much label that they fall below the label cut are not
counted (a known limit of label-based gating).

References
----------
Kim GG, Donnenberg VS, Donnenberg AD, Gooding W, Whiteside TL. A novel multiparametric flow
cytometry-based cytotoxicity assay simultaneously immunophenotypes effector cells: comparisons
to a 4 h 51Cr-release assay. J Immunol Methods 2007;325:51-66.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from nkpanel.cytotox._table import cell_text, read_table
from nkpanel.cytotox.analyze import CytotoxSettings, Measurement, analyze_measurements
from nkpanel.cytotox.layout import Treatment, parse_ratio, parse_role, parse_treatment
from nkpanel.cytotox.results import CytotoxResult
from nkpanel.errors import InputError, NkPanelError, one_line
from nkpanel.flow.density import Cut, find_cut
from nkpanel.flow.markers import AliasTable, resolve_markers
from nkpanel.flow.qc import QCFlag
from nkpanel.flow.sample import FlowSample, read_fcs
from nkpanel.flow.transforms import Asinh

__all__ = [
    "DYE_ALIASES",
    "FlowKillingResult",
    "FlowKillingSettings",
    "TubeEntry",
    "TubeGating",
    "TubeList",
    "analyze_flow_killing",
    "read_tube_list",
]

#: target-label and dead-cell dyes as instruments and labs name them ($PnS words)
DYE_ALIASES = AliasTable(
    markers={
        "TargetLabel": (
            "CFSE",
            "CFDA-SE",
            "CFDASE",
            "CellTrace Violet",
            "CTV",
            "CellTrace",
            "CellTrace Far Red",
            "CTFR",
            "CellTrace Yellow",
            "PKH26",
            "PKH67",
            "PKH",
            "CellVue",
            "eFluor 670",
            "DiO",
            "DiD",
            "TargetLabel",
        ),
        "DeadDye": (
            "PI",
            "Propidium iodide",
            "PropidiumIodide",
            "7-AAD",
            "7AAD",
            "SYTOX",
            "SYTOX Blue",
            "SYTOX Green",
            "SYTOX Red",
            "SYTOX AADvanced",
            "DAPI",
            "TO-PRO-3",
            "TOPRO3",
            "DRAQ7",
            "Live/Dead",
            "LiveDead",
            "Zombie",
            "Viability",
            "FVD",
            "DeadDye",
        ),
    }
)
_TARGETS_ROLE = ("targets", "target", "targets alone", "target alone", "targets only")
_FILE_HEADERS = ("file", "fcs", "fcsfile", "tube", "path", "filename")


@dataclass(frozen=True)
class FlowKillingSettings:
    """Options of flow-based killing.

    Attributes
    ----------
    label_channel, dead_channel
        A channel label ($PnS, a word of it, or $PnN) to use for the target label or the
        dead-cell dye when the alias table does not find it.
    asinh_cofactor
        150: the asinh scale on which the density cuts are found (fluorescence).
    min_target_events
        1,000 target events per tube: the dead % then has a binomial SE of at most 1.6 points
        (at 50% dead); fewer make the ratio not reportable.
    cytotox
        Limits shared with release assays; one tube per ratio is the norm, so
        ``min_replicates`` is 1 here.
    """

    label_channel: str | None = None
    dead_channel: str | None = None
    asinh_cofactor: float = 150.0
    min_target_events: int = 1000
    max_events_per_tube_for_cuts: int = 20_000
    cytotox: CytotoxSettings = field(default_factory=lambda: CytotoxSettings(min_replicates=1))


@dataclass(frozen=True)
class TubeEntry:
    """One row of the tube list."""

    path: Path
    sample: str
    role: str  # "spontaneous" (targets alone) or "test"
    ratio: float | None
    treatment: Treatment
    replicate: int | None
    line: int


@dataclass(frozen=True)
class TubeList:
    """A tube list as read: its usable rows, per sample one line per unusable row, and whether
    the file says it was generated by nkpanel (a SYNTHETIC line at its top)."""

    path: Path
    entries: tuple[TubeEntry, ...]
    problems: Mapping[str, list[str]]
    synthetic: bool = False


@dataclass(frozen=True)
class TubeGating:
    """How one tube was read: the channels, the cuts (linear scale) and the counts."""

    tube: str
    sample: str
    label_channel: str
    dead_channel: str
    label_cut: float
    dead_cut: float
    label_cut_method: str
    dead_cut_method: str
    n_events: int
    n_targets: int
    n_dead_targets: int
    dead_percent: float | None
    dead_percent_se: float | None


@dataclass(frozen=True)
class FlowKillingResult:
    """The killing results (same records as a plate) and the per-tube gating audit."""

    result: CytotoxResult
    gating: tuple[TubeGating, ...]
    label_values: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    dead_values: dict[str, NDArray[np.float64]] = field(default_factory=dict)


def read_tube_list(path: str | Path) -> TubeList:
    """Read a tube list: its usable rows and, per sample, one line per unusable row.

    Raises
    ------
    InputError
        Unreadable or empty file, or no header with ``file`` and ``role`` columns.
    """
    p = Path(path)
    table = read_table(p)
    header = None
    for i, row in enumerate(table.rows[:20]):
        keys = ["".join(ch for ch in cell_text(c).casefold() if ch.isalnum()) for c in row]
        if any(k in _FILE_HEADERS for k in keys) and "role" in keys:
            header = (i, keys)
            break
    if header is None:
        raise InputError(
            table.source,
            "no header with 'file' and 'role' columns (file,sample,role,ratio,treatment)",
        )
    start, keys = header

    def col(*names: str) -> int | None:
        return next((j for j, k in enumerate(keys) if k in names), None)

    c_file = col(*_FILE_HEADERS)
    c_role, c_sample = col("role", "type"), col("sample", "sampleid", "patient", "donor")
    c_ratio = col("ratio", "et", "etratio")
    c_treat, c_rep = col("treatment", "condition"), col("replicate", "rep")
    entries: list[TubeEntry] = []
    problems: dict[str, list[str]] = {}
    #: each tube's file (resolved) → the role, sample and line of each listing of it
    listed: dict[Path, list[tuple[str, str, int]]] = {}

    def get(row: tuple[object, ...], j: int | None) -> str:
        if j is None or j >= len(row):
            return ""
        v = row[j]
        return cell_text(v if isinstance(v, str | float) or v is None else str(v))

    for k in range(start + 1, len(table.rows)):
        row = table.rows[k]
        line = table.row_numbers[k]
        file_text, sample = get(row, c_file), get(row, c_sample)
        if not file_text:
            continue
        where = f"{table.source}: tube {file_text}"
        role_text = get(row, c_role)
        try:
            role = "spontaneous" if role_text.casefold() in _TARGETS_ROLE else parse_role(role_text)
        except ValueError as exc:
            problems.setdefault(sample, []).append(f"{where}: {exc} (line {line})")
            continue
        if role not in ("spontaneous", "test"):
            problems.setdefault(sample, []).append(
                f"{where}: role {role_text!r} is not 'targets' or 'test' (line {line})"
            )
            continue
        if not sample:
            problems.setdefault("", []).append(f"{where}: no sample id (line {line})")
            continue
        ratio: float | None = None
        if role == "test":
            try:
                ratio = parse_ratio(get(row, c_ratio))
            except ValueError as exc:
                problems.setdefault(sample, []).append(f"{where}: {exc} (line {line})")
                continue
        try:
            treatment = parse_treatment(get(row, c_treat))
        except ValueError as exc:
            problems.setdefault(sample, []).append(f"{where}: {exc} (line {line})")
            continue
        rep_text = get(row, c_rep)
        replicate = int(float(rep_text)) if rep_text.replace(".", "", 1).isdigit() else None
        fpath = Path(file_text)
        if not fpath.is_absolute():
            fpath = p.resolve().parent / fpath
        # audit 20: one tube listed twice counted as two replicates (CV 0, reportable); only a
        # targets-alone tube may serve several samples, once for each (reviews 21-23: a test
        # tube is one sample's, and no tube is both a sample's control and its test)
        earlier = listed.setdefault(fpath.resolve(), [])
        clash = next(
            (
                first
                for first_role, first_sample, first in earlier
                if not (role == first_role == "spontaneous" and sample != first_sample)
            ),
            None,
        )
        earlier.append((role, sample, line))
        if clash is not None:
            first = clash
            problems.setdefault(sample, []).append(
                f"{where}: listed twice (lines {first} and {line}): one tube is one replicate"
            )
            continue
        entries.append(TubeEntry(fpath, sample, role, ratio, treatment, replicate, line))
    if not entries and not problems:
        raise InputError(table.source, "the tube list names no tube")
    return TubeList(p, tuple(entries), problems, table.says_synthetic)


def _aliases(s: FlowKillingSettings) -> AliasTable:
    overrides = {}
    if s.label_channel:
        overrides["TargetLabel"] = s.label_channel
    if s.dead_channel:
        overrides["DeadDye"] = s.dead_channel
    return DYE_ALIASES.with_overrides(overrides) if overrides else DYE_ALIASES


def _subsample(x: NDArray[np.float64], n: int, seed: int) -> NDArray[np.float64]:
    if x.size <= n:
        return x
    return np.random.default_rng(seed).choice(x, n, replace=False)


def analyze_flow_killing(
    tube_list: str | Path | TubeList,
    settings: FlowKillingSettings | None = None,
    *,
    plate_id: str | None = None,
    on_tube: Callable[[str], None] | None = None,
) -> FlowKillingResult:
    """Analyse flow-killing tubes listed in ``tube_list`` (a path, or the list already read by
    :func:`read_tube_list`): dead % per tube, specific killing.

    A tube that cannot be read, or lacks a dye, fails its sample with one line naming the file
    and the cause; the other samples are analysed.

    Raises
    ------
    InputError
        The tube list cannot be read or names no tube.

    References
    ----------
    Kim GG et al. J Immunol Methods 2007;325:51-66.
    """
    s = settings or FlowKillingSettings()
    tubes_read = tube_list if isinstance(tube_list, TubeList) else read_tube_list(tube_list)
    list_path, entries, problems = tubes_read.path, tubes_read.entries, tubes_read.problems
    aliases = _aliases(s)
    scale = Asinh(s.asinh_cofactor)
    measurements: list[Measurement] = []
    gating: list[TubeGating] = []
    label_values: dict[str, NDArray[np.float64]] = {}
    dead_values: dict[str, NDArray[np.float64]] = {}
    synthetic = False
    by_sample: dict[str, list[TubeEntry]] = {}
    for e in entries:
        by_sample.setdefault(e.sample, []).append(e)
    for sample, tubes in by_sample.items():
        read: list[tuple[TubeEntry, FlowSample, str, str]] = []
        bad: dict[int, str] = {}
        dye: list[NDArray[np.float64]] = []
        dead_cut: Cut | None = None
        for i, e in enumerate(tubes):
            if on_tube is not None:
                on_tube(str(e.path))
            try:
                fs = read_fcs(e.path)
                mm = resolve_markers(fs, ("TargetLabel", "DeadDye"), aliases=aliases)
            except NkPanelError as exc:
                msg = one_line(exc)
                msg = msg.replace("--marker TargetLabel=LABEL", "--label-channel LABEL")
                bad[i] = msg.replace("--marker DeadDye=LABEL", "--dead-channel LABEL")
                continue
            synthetic = synthetic or fs.synthetic
            read.append((e, fs, mm.channel_for("TargetLabel"), mm.channel_for("DeadDye")))
        if read:
            cap = s.max_events_per_tube_for_cuts
            labels = [scale(fs.column(lc)) for _, fs, lc, _ in read]  # each tube's, once
            pooled_label = np.concatenate([_subsample(lab, cap, k) for k, lab in enumerate(labels)])
            label_cut = find_cut(pooled_label, side="above")
            t_label = label_cut.value
            dye = [
                scale(fs.column(dc)[lab > t_label])
                for (_, fs, _, dc), lab in zip(read, labels, strict=True)
            ]
            pooled_dead = np.concatenate([_subsample(d, cap, k) for k, d in enumerate(dye)])
            dead_cut = find_cut(pooled_dead, side="above") if pooled_dead.size else None
            label_values[sample] = pooled_label
            dead_values[sample] = pooled_dead
        for i, e in enumerate(tubes):
            if i in bad:
                measurements.append(_measurement(e, None, bad[i], ()))
        for (e, fs, lc, dc), d in zip(read, dye, strict=True):
            n_t = int(d.size)
            if dead_cut is None or n_t == 0:
                measurements.append(
                    _measurement(
                        e,
                        None,
                        f"{e.path}: no target events above the {lc} label cut",
                        (),
                    )
                )
                continue
            n_dead = int(np.count_nonzero(d > dead_cut.value))
            pct = 100.0 * n_dead / n_t
            se = 100.0 * math.sqrt(pct / 100.0 * (1 - pct / 100.0) / n_t)
            flags = (
                QCFlag(
                    "target_events",
                    n_t >= s.min_target_events,
                    float(n_t),
                    float(s.min_target_events),
                    f"{e.path.name}: {n_t} target events (minimum {s.min_target_events}); "
                    f"dead % SE {se:.1f} points",
                ),
            )
            measurements.append(_measurement(e, pct, None, flags if e.role == "test" else ()))
            gating.append(
                TubeGating(
                    tube=str(e.path),
                    sample=sample,
                    label_channel=lc,
                    dead_channel=dc,
                    label_cut=float(scale.inverse(np.array([t_label]))[0]),
                    dead_cut=float(scale.inverse(np.array([dead_cut.value]))[0]),
                    label_cut_method=label_cut.method,
                    dead_cut_method=dead_cut.method,
                    n_events=fs.n_events,
                    n_targets=n_t,
                    n_dead_targets=n_dead,
                    dead_percent=pct,
                    dead_percent_se=se,
                )
            )
    result = analyze_measurements(
        measurements,
        s.cytotox,
        plate_id=plate_id or list_path.stem,
        assay="flow",
        reads_source=str(list_path),
        layout_source=str(list_path),
        unit="% dead targets",
        failures=problems,
        maximum_fixed=100.0,
        unit_word="tube",
        synthetic=synthetic or tubes_read.synthetic,
    )
    return FlowKillingResult(result, tuple(gating), label_values, dead_values)


def _measurement(
    e: TubeEntry, dead_percent: float | None, problem: str | None, qc: Sequence[QCFlag]
) -> Measurement:
    return Measurement(
        unit_id=e.path.name,
        role="spontaneous" if e.role == "spontaneous" else "test",
        sample=e.sample,
        treatment=e.treatment,
        ratio=e.ratio,
        replicate=e.replicate,
        signal=dead_percent,
        problem=problem,
        qc=tuple(qc),
    )
