"""One FCS file in, one :class:`~nkpanel.flow.results.FlowResult` out: resolve markers,
compensate, gate (automated or a lab template), count, check quality."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import warnings
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from nkpanel._threads import for_row_blocks
from nkpanel.errors import ConfigError, InputError, MarkerError, NkPanelError, option_or_key
from nkpanel.flow.autogate import (
    LYMPHOCYTE_SCATTER,
    AutoGateResult,
    AutoGateSettings,
    auto_gate,
    detect_cytometry,
    flow_rate,
    mass_cytometry_note,
)
from nkpanel.flow.compensation import (
    ANALOG_CYTOMETERS,
    CompensatedColumns,
    analog_compensation,
    spectral_unmixing,
    unlisted_compensation,
)
from nkpanel.flow.gates import GateTree, dimension_values
from nkpanel.flow.markers import (
    AliasTable,
    MarkerMap,
    load_aliases,
    normalise_label,
    resolve_markers,
)
from nkpanel.flow.qc import SATURATED, QCFlag, QCLimits
from nkpanel.flow.results import FlowResult, PopulationCount
from nkpanel.flow.sample import (
    COMPENSATED_EXPORT,
    SCATTER_OR_TIME,
    SPILLOVER_KEYWORDS,
    TRANSFORMED_MAX,
    FlowSample,
    Spillover,
    on_file_channels,
    read_fcs,
    spillover_keyword,
)

__all__ = ["AbsoluteCountInputs", "FlowAnalysis", "FlowSettings", "analyze_file", "analyze_sample"]

BoolArray = NDArray[np.bool_]

REQUIRED_MARKERS = ("CD3", "CD56")
OPTIONAL_MARKERS = (
    "CD16",
    "CD19",
    "CD45",
    "CD14",
    "CD66",
    "FSC-A",
    "FSC-H",
    "SSC-A",
    "SSC-H",
    "Time",
)


#: every marker name above, normalised as the alias table compares names
_ANALYSIS_MARKERS = frozenset(normalise_label(m) for m in (*REQUIRED_MARKERS, *OPTIONAL_MARKERS))


def is_analysis_marker(name: str) -> bool:
    """Whether ``name`` is a marker or channel the NK analysis uses, compared as the alias
    table compares names ("cd-56" is CD56): a misspelt override (CD65) is then refused
    instead of being ignored."""
    return normalise_label(name) in _ANALYSIS_MARKERS


#: metadata keywords copied into every result
KEPT_KEYWORDS = ("cyt", "cytsn", "date", "btim", "etim", "timestep", "tot", "par", "fil", "src")


#: the ranges outside which an absolute-count input is a unit slip, not a measurement:
#: counting-bead tubes hold tens of thousands of beads per test (BD Trucount about 50,000,
#: BD IFU 23-3483); a sample is pipetted in tens of µL (50 µL for Trucount), never under 1 µL
#: nor over 1 mL; a blood lymphocyte count in cells/µL runs in the hundreds to thousands (an
#: analyser prints ×10⁹/L: 2.0 ×10⁹/L is 2,000/µL), so one under 50 was typed in ×10⁹/L, and
#: one over 100,000 (100 ×10⁹/L) in other units still
UNIT_SLIPS = {
    "beads": (1_000.0, 10_000_000.0),
    "volume": (1.0, 1_000.0),
    "lymphocytes": (50.0, 100_000.0),
}


#: a bead-method lymphocyte count and a haematology analyser's of the same blood further apart
#: than this factor: an input slipped (single- and dual-platform counts of one sample agree
#: far more closely than 2×; a ×10 slip is the common one)
BEAD_VS_ANALYSER = 2.0


@dataclass(frozen=True)
class AbsoluteCountInputs:
    """What absolute counts need: the bead lot's beads per test and the sample volume (single
    platform), or the lymphocyte count from a haematology analyser (dual platform)."""

    beads_per_test: float | None = None
    sample_volume_ul: float | None = None
    lymphocytes_per_ul: float | None = None

    def __post_init__(self) -> None:
        for what, value in (
            ("beads per test", self.beads_per_test),
            ("sample volume (µL)", self.sample_volume_ul),
            ("lymphocytes per µL", self.lymphocytes_per_ul),
        ):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"absolute counts: {what} must be a positive number, not {value:g}"
                )
        # a number in other units gives a count off by 1,000 that looks like any other
        for what, value, unit, (lo, hi), slip in (
            ("beads per test", self.beads_per_test, "", UNIT_SLIPS["beads"], "per µL of beads?"),
            ("sample volume", self.sample_volume_ul, " µL", UNIT_SLIPS["volume"], "in mL?"),
            (
                "lymphocyte count",
                self.lymphocytes_per_ul,
                "/µL",
                UNIT_SLIPS["lymphocytes"],
                "given in ×10⁹/L? (×1,000 gives per µL)",
            ),
        ):
            if value is not None and not lo <= value <= hi:
                raise ConfigError(
                    f"absolute counts: {what} {value:g}{unit} lies outside {lo:,g}–{hi:,g}{unit}, "
                    f"where every counting tube and blood count falls: {slip}"
                )

    @property
    def bead_method(self) -> bool:
        return self.beads_per_test is not None and self.sample_volume_ul is not None


@dataclass(frozen=True)
class FlowSettings:
    """Everything a flow analysis can be told; the defaults analyse a standard NK panel."""

    aliases: AliasTable | None = None
    marker_overrides: Mapping[str, str] = field(default_factory=dict)
    spillover: Spillover | None = None
    template: Path | None = None
    #: FlowJo templates: the workspace sample whose gates to apply (default: the sample named
    #: like the file, else the workspace's only sample)
    template_sample: str | None = None
    template_populations: Mapping[str, str] = field(default_factory=dict)
    counts: AbsoluteCountInputs = field(default_factory=AbsoluteCountInputs)
    qc: QCLimits = field(default_factory=QCLimits)
    autogate: AutoGateSettings = field(default_factory=AutoGateSettings)
    #: which data set of a file that holds several to read, from 1 (``None``: the default
    #: choice of :func:`~nkpanel.flow.sample.read_fcs`)
    dataset: int | None = None

    def __post_init__(self) -> None:
        # roles in their own spelling (nk → NK), however given: one place for the CLI's
        # --population and a draw's populations (an unknown role is refused, naming it)
        roles = named_roles(self.template_populations, "--population")
        object.__setattr__(self, "template_populations", roles)

    def alias_table(self) -> AliasTable:
        table = self.aliases or load_aliases()
        return table.with_overrides(self.marker_overrides) if self.marker_overrides else table


@dataclass(frozen=True, eq=False)
class FlowAnalysis:
    """A result together with what produced it (for plots, exports and audits)."""

    result: FlowResult
    sample: FlowSample
    values: CompensatedColumns
    membership: Mapping[str, BoolArray]
    parents: Mapping[str, str | None]
    tree: GateTree | None = None
    gating: AutoGateResult | None = None
    markers: MarkerMap | None = None
    template: Path | None = None
    #: the ``flowkit.Sample`` a lab template gated (its events serve the template's figures)
    template_sample: Any = field(default=None, repr=False)
    #: the workspace sample whose gates a FlowJo template applied
    workspace_sample: str | None = None

    @property
    def compensated(self) -> NDArray[np.float64]:
        """Every event compensated, events × channels (built when first asked for: the gating
        itself reads the compensated detector columns and the other channels in place)."""
        return self.values.matrix()


def analyze_file(path: str | Path, settings: FlowSettings | None = None) -> FlowAnalysis:
    """Read and analyse one FCS file; see :func:`analyze_sample`.

    The events are compensated while they are read (with the supplied matrix, else the
    file's own), except when a lab template is applied: FlowKit compensates those.
    """
    s = settings or FlowSettings()
    if s.template is not None:
        return analyze_sample(read_fcs(path, dataset=s.dataset), s)
    matrix = s.spillover if s.spillover is not None else True
    return analyze_sample(read_fcs(path, compensate=matrix, dataset=s.dataset), s)


def analyze_sample(sample: FlowSample, settings: FlowSettings | None = None) -> FlowAnalysis:
    """Analyse one sample: automated NK gating, or the lab's template when one is set.

    Raises
    ------
    MarkerError
        CD3 or CD56 (or their aliases) not on any channel (automated gating only).
    CompensationError
        A supplied or embedded spillover matrix that does not fit the file.
    QCError
        Too few events to place a gate at all.
    """
    s = settings or FlowSettings()
    transformed = transformed_already(sample)
    if transformed is not None:
        raise InputError(sample.source, transformed)
    looks = detect_cytometry(sample)
    cytometry = looks if s.autogate.cytometry == "auto" else s.autogate.cytometry
    spill = (
        on_file_channels(s.spillover, sample.channels, sample.source)
        if s.spillover is not None
        else sample.spillover
    )
    comp = CompensatedColumns(sample, spill)
    if s.template is not None:
        return _analyze_with_template(sample, comp, s, s.template, cytometry)
    try:
        markers = resolve_markers(
            sample, REQUIRED_MARKERS, optional=OPTIONAL_MARKERS, aliases=s.alias_table()
        )
    except MarkerError as exc:
        spectral = spectral_unmixing(sample)
        if spectral is None or any(c.pns.strip() for c in sample.channels):
            raise
        # a spectral cytometer's raw detectors carry no stain: mapping a marker onto one of
        # them, as the message suggested, gates one detector of many dyes (audit 31)
        raise MarkerError(
            exc.source,
            "no channel names a stain: these look like the raw detector channels of a spectral "
            f"cytometer ($CYT {sample.metadata.get('cyt', '').strip()}); unmix them in the "
            "instrument's software and analyse the unmixed export",
        ) from None
    # the kind of cytometry decided once, here (auto_gate would look again)
    gating = auto_gate(
        sample,
        comp,
        markers,
        dataclasses.replace(s.autogate, cytometry=cytometry, beads_expected=s.counts.bead_method),
    )
    parents = {g.name: g.parent for g in gating.tree.gates}
    used = {d.channel for g in gating.tree.gates for d in g.dims}
    # the compensation of the fluorescence the gates used: scatter and time are found by the
    # marker map, whatever their names (MACSQuant's HDR-T, "Side Scatter", a Sony's BSC-A had
    # been asked to be in the spillover matrix: review 34)
    physical = {
        markers.channel_for(c)
        for c in ("FSC-A", "FSC-H", "SSC-A", "SSC-H", "Time")
        if markers.has(c)
    }
    # unmixed spectral data are judged as compensated data are (Roederer's rules hold for both)
    compensated_or_unmixed = spill is not None or spectral_unmixing(sample) is not None
    # data compensated by an analog instrument's electronics are judged as they were
    # recorded: compensation switched off there gave NK-like T 23% and 46% for 4, reportable
    # (audit 33)
    analog = analog_compensation(sample) is not None
    judged = cytometry == "flow" and (compensated_or_unmixed or analog)
    seen = _compensation_seen(comp, sample, gating.membership, markers) if judged else None
    qc = _qc_checks(
        sample,
        gating.membership,
        parents,
        s,
        cytometry,
        spill,
        gating,
        used - physical,
        data_compensated=seen is not None and seen.passed,
    )
    # a time counter past its $PnR is no saturated detector (a real Aurora file's Time reached
    # 4.5x it: 78% of events "at the top" withheld a bootstrap of it once it had a time gate)
    clock = {markers.channel_for("Time")} if markers.has("Time") else set()
    qc.append(_saturation_check(sample, used - clock, gating.membership.get("Time"), s.qc))
    if judged:
        if seen is not None:
            qc.append(seen)
        crossed = _nk_among_b_cells(comp, sample, gating)
        if crossed is not None:
            qc.append(crossed)
    left_out = _left_out_by_cd45(comp, sample, gating)
    if left_out is not None:
        qc.append(left_out)
    if cytometry != looks:
        qc.append(
            QCFlag(
                "cytometry",
                False,
                None,
                None,
                f"analysed as {cytometry} cytometry as asked, but the file looks like {looks} "
                "cytometry ($CYT and its channels): the gates may not fit the data",
                blocking=False,
            )
        )
    # taken for mass cytometry unasked: said, with the way out
    auto_mass = s.autogate.cytometry == "auto" and cytometry == "mass"
    unasked: tuple[str, ...] = (mass_cytometry_note(sample),) if auto_mass else ()
    unasked += _linear_analog_note(sample, markers)
    result = _build_result(
        sample,
        gating.membership,
        parents,
        s,
        cytometry,
        "automated",
        qc,
        unasked + markers.notes + gating.notes,
        sample.notes,
        leukocytes_by_cd45=markers.has("CD45"),
        markers=markers.markers,
    )
    return FlowAnalysis(
        result, sample, comp, gating.membership, parents, gating.tree, gating, markers
    )


def _analyze_with_template(
    sample: FlowSample,
    comp: CompensatedColumns,
    s: FlowSettings,
    template_path: Path,
    cytometry: Literal["flow", "mass"],
) -> FlowAnalysis:
    from nkpanel.flow.template import apply_template, load_template

    if s.spillover is not None:
        raise ConfigError(TEMPLATE_WITH_MATRIX)

    if sample.path is None:
        raise InputError(sample.name, "a template can only be applied to an FCS file on disk")
    template = load_template(template_path)
    # the data set the events came from (a file may hold several)
    applied = apply_template(
        template, sample.path, sample_id=s.template_sample, dataset=sample.dataset, read=sample
    )
    leaves = applied.leaves
    roles = _template_roles(applied.membership.keys(), s.template_populations, leaves)
    membership: dict[str, BoolArray] = {}
    parents: dict[str, str | None] = {}
    for name, mask in applied.membership.items():
        membership[name] = np.asarray(mask, dtype=bool)
        parents[name] = applied.parents.get(name)
    if "Lymphocytes" in roles and "NK" in roles and "Lymphocytes" not in s.template_populations:
        roles["Lymphocytes"] = _clean_lymphocytes(
            roles["Lymphocytes"], roles["NK"], parents, leaves
        )
    for role, gate in roles.items():
        membership[role] = membership[gate]
    parents = {**parents, **{role: _role_parent(role, roles, parents) for role in roles}}
    qc = _qc_checks(sample, membership, parents, s, cytometry, None, None)
    tch = _time_channel(sample, s)  # one look for the flow-rate check and the time gates
    qc += _template_qc(sample, applied.channels, s, tch)
    qc += _template_panel_flags(sample, template.markers, applied.channels, s)
    qc += _template_time_flags(sample, applied, membership, tch)
    differs = _template_matrix_flags(sample, applied.matrices)
    qc += differs
    qc += _template_compensation_flags(sample, applied.compensation)
    if cytometry == "flow" and analog_compensation(sample) is None:
        seen = _template_compensation_seen(sample, applied, membership, s)
        if seen is not None and not seen.passed and differs:
            # the data look miscompensated, with a matrix known to differ from the file's:
            # two signs of one fault, withheld (audit 21: NK 7.0% for 14.1%, reportable)
            seen = dataclasses.replace(
                seen,
                blocking=True,
                reason=f"{seen.reason}; the template's own matrix differs from the file's",
            )
        if seen is not None:
            qc.append(seen)
        crossed = _template_nk_among_b_cells(applied, roles, membership)
        if crossed is not None:
            qc.append(crossed)
    qc += _roles_named_as_others(roles, s.template_populations, leaves)
    qc += _role_nesting_flags(roles, membership, parents)
    result = _build_result(
        sample,
        membership,
        parents,
        s,
        cytometry,
        "template",
        qc,
        (),
        (*sample.notes, *applied.notes),
        roles,
        template_path.name,
    )
    return FlowAnalysis(
        result,
        sample,
        comp,
        membership,
        parents,
        template=template_path,
        template_sample=applied.flowkit_sample,
        workspace_sample=applied.workspace_sample,
    )


#: a template's matrix differing from the file's by more than this is pointed out (FlowJo
#: keeps the acquisition matrix to about 1e-8; a matrix from other controls differs by 1e-2)
TEMPLATE_MATRIX_TOLERANCE = 1e-4
TEMPLATE_WITH_MATRIX = (
    "a supplied spillover matrix does not apply with a template: the template's own "
    "compensation does (its matrices, or each file's $SPILLOVER where it refers to it)"
)

_ROLE_NAMES = {
    "Lymphocytes": ("lymphocytes", "lymphs", "lymph"),
    "Leukocytes": ("leukocytes", "cd45+", "cd45"),
    "NK": ("nk cells", "nk", "cd3-cd56+", "cd3- cd56+", "cd3-cd16+56+"),
    "NK CD56bright": ("cd56bright", "nk cd56bright", "cd56 bright"),
    "NK CD56dim": ("cd56dim", "nk cd56dim", "cd56 dim"),
    "NK-like T": ("nk t cells", "nkt", "nk-like t", "cd3+cd56+"),
    # T and B cells: their gates become result rows under these names too, and the
    # lymphosum check reads them
    "CD3+": ("t cells", "cd3+", "cd3+ t cells", "t lymphocytes", "cd3 t cells"),
    "B cells": ("b cells", "cd19+", "b lymphocytes", "cd19+ b cells"),
    "Beads": ("beads", "counting beads", "trucount"),
}


#: a template none of whose gates is recognised for a role
_NO_ROLE = (
    "no gate of the template is recognised as the {role} (by its name): name it with "
    "--population, e.g. {example} (in a case manifest: the draw's populations table)"
)


def _role_key(name: str) -> str:
    """A gate name as roles are looked up: letter case, underscores and spacing aside, and
    "pos"/"neg" as + and − (Gating-ML ids allow no spaces or "+": "NK_cells", "CD3pos")."""
    s = name.strip().casefold().replace("_", " ")
    s = re.sub(r"(?<=\d)pos(itive)?\b|\bpos(itive)?\b", "+", s)
    s = re.sub(r"(?<=\d)neg(ative)?\b|\bneg(ative)?\b", "-", s)
    s = re.sub(r"\s*([+-])\s*", r"\1", s)
    return re.sub(r"\s+", " ", s).strip()


#: role lookup: each alias of each role, as :func:`_role_key` writes it
_ROLE_KEYS = {role: {_role_key(a) for a in aliases} for role, aliases in _ROLE_NAMES.items()}
#: the roles a lab may assign a gate to by hand (``--population ROLE=GATE``)
TEMPLATE_ROLES = tuple(_ROLE_NAMES)


def named_roles(pairs: Mapping[str, str], where: str) -> dict[str, str]:
    """Role → gate pairs (``--population`` or a draw's ``populations``) keyed by the role's own
    spelling (``nk`` → ``NK``); an unknown role is refused, naming ``where`` and the roles."""
    known = {r.casefold(): r for r in TEMPLATE_ROLES}
    out = {}
    for role, gate in pairs.items():
        if role.casefold() not in known:
            raise ConfigError(
                f"{where} {role}={gate}: {role} is not a role; roles are "
                f"{', '.join(TEMPLATE_ROLES)}"
            )
        out[known[role.casefold()]] = gate
    return out


def _leaf(path: str, leaves: Mapping[str, str]) -> str:
    """The gate's own name of the template gate ``path`` (``leaves``: path → name), which may
    hold a "/" (FlowJo's "CD3-/CD56+"); the path's last part where it is not listed."""
    return leaves.get(path) or path.rsplit("/", 1)[-1]


def _template_roles(
    gates: object, explicit: Mapping[str, str], leaves: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Which template gate plays each role (NK, Lymphocytes…): the explicit mapping (its roles
    checked and spelt as :func:`named_roles` does, by :class:`FlowSettings`), else by name
    (:func:`_role_key`). ``leaves``: each gate path's own gate name (:func:`_leaf`)."""
    names = list(gates)  # type: ignore[call-overload]
    own = leaves or {}
    out: dict[str, str] = {}
    for role in _ROLE_NAMES:
        if role in explicit:
            wanted = explicit[role]
            hits = [str(n) for n in names if wanted in (n, _leaf(str(n), own))]
            if not hits:
                listed = dict.fromkeys(_leaf(str(n), own) for n in names)
                raise InputError(
                    None,
                    f"template has no gate {wanted!r} for {role} (its gates: {', '.join(listed)})",
                )
            if len(hits) > 1:  # "CD56+" under both CD3- and CD3+, say: name it by its path
                raise ConfigError(
                    f"{option_or_key(f'--population {role}={wanted}', 'populations')}: "
                    f"{len(hits)} gates are named so "
                    f"({', '.join(hits)}); give the one meant by its path"
                )
            out[role] = hits[0]
            continue
        hits = [
            str(n)
            for n in names
            if _role_key(_leaf(str(n), own)) in _ROLE_KEYS[role] and n not in out.values()
        ]
        if len(hits) > 1:  # the first in the file was taken: a CD3+ "NK cells" gate (audit 21)
            raise ConfigError(
                f"{len(hits)} gates of the template are named as the {role} "
                f"({', '.join(hits)}): name the one meant with "
                f"{option_or_key(f'--population {role}=PATH', 'populations')}"
            )
        if hits:
            out[role] = hits[0]
    return out


#: (role, the role whose events it must lie within): the result's percentages of the second
#: and the absolute counts rest on it
_NESTED_ROLES = (
    ("NK", "Lymphocytes"),
    ("NK CD56bright", "NK"),
    ("NK CD56dim", "NK"),
    ("NK-like T", "Lymphocytes"),
    ("CD3+", "Lymphocytes"),
    ("B cells", "Lymphocytes"),
)


def _role_nesting_flags(
    roles: Mapping[str, str], member: Mapping[str, BoolArray], parents: Mapping[str, str | None]
) -> list[QCFlag]:
    """A blocking flag for each template gate whose events are not all within the gate its
    role lies in (NK within the lymphocytes, the CD56 subsets within NK…), and for a gate
    playing the Leukocytes that lies inside the Lymphocytes' gate. A lab's tree may hang NK
    from the leukocytes: NK % of lymphocytes then read 201%, reportable (audit 21). Judged
    on the events, so that a Boolean gate counts as where its events are."""
    out: list[QCFlag] = []

    def flag(text: str, blocking: bool = True) -> None:
        out.append(QCFlag("population roles", False, None, None, text, blocking=blocking))

    for inner, outer in _NESTED_ROLES:
        if inner not in roles or outer not in roles:
            continue
        outside = int(np.count_nonzero(member[roles[inner]] & ~member[roles[outer]]))
        if outside:
            # NK outside the lymphocytes withholds the result; another role's percentage is
            # left out alone, the NK result standing (review 25)
            flag(
                f"{outside} events of the gate playing {inner} ({roles[inner]}) lie outside the "
                f"gate playing {outer} ({roles[outer]}): its % of "
                f"{outer if outer == 'NK' else outer.lower()} is not given; gate it within "
                "them, or name the gates with --population",
                blocking=inner == "NK",
            )
    lymph, leuk = roles.get("Lymphocytes"), roles.get("Leukocytes")
    p = None if leuk is None else parents.get(leuk)
    while p is not None and p != lymph:
        p = parents.get(p)
    if leuk is not None and lymph is not None and p == lymph:
        flag(
            f"the gate playing Leukocytes ({leuk}) lies inside the gate playing Lymphocytes "
            f"({lymph}): it cannot hold the leukocytes; name the template's leukocyte gate "
            "with --population Leukocytes=PATH, or rename this one (CD45+ lymphocytes are no "
            "leukocyte gate)"
        )
    return out


def _roles_named_as_others(
    roles: Mapping[str, str], explicit: Mapping[str, str], leaves: Mapping[str, str] | None = None
) -> list[QCFlag]:
    """A warning for each gate the lab assigned to a role by hand whose own name is one of
    another role's (``--population NK="NK T cells"``: a CD3+ gate counted as NK, 2.88% for
    1.68% on the FlowSOM workspace with only a lymphosum warning; audit 17). The lab's word
    stands, as asked; the result says what the name says."""
    out = []
    for role, wanted in explicit.items():
        gate = roles.get(role)
        if gate is None:
            continue
        leaf = _role_key(_leaf(gate, leaves or {}))
        others = [r for r, keys in _ROLE_KEYS.items() if r != role and leaf in keys]
        if others and leaf not in _ROLE_KEYS[role]:
            out.append(
                QCFlag(
                    "population roles",
                    False,
                    None,
                    None,
                    f"{option_or_key(f'--population {role}={wanted}', 'populations')}: "
                    f"that gate's name is a name of {others[0]}, "
                    f"not of {role}: check that it holds the {role} events",
                    blocking=False,
                )
            )
    return out


#: names of gates that clean a population without choosing cells by a marker: doublets, dead
#: cells, unstable acquisition time. The whole name must be one of these ("Singlets2", "Live
#: cells", "FSC singlets"); "Live CD14- CD19-" or "Viable dump-" choose by markers, and are not
_CLEANUP_GATE = re.compile(
    r"((fsc|ssc)(-[ahw])?[ _-]?)?"
    r"(single[ _-]?cells?|singlets?|non[ _-]?doublets?|doublets?[ _-]?"
    r"(excluded|exclusion|discrimination)|live([ _-]?cells)?|viable([ _-]?cells)?|"
    r"(live[ _/-]?dead|zombie|viability([ _-]?dye)?)([ _-]?(neg|negative|-))?|"
    r"time([ _-]?gate)?|clean([ _-]?up)?)[ _-]?\d*( ?\((fsc|ssc)(-[ahw])?\))?",
    re.IGNORECASE,
)


def _clean_lymphocytes(
    lymph: str, nk: str, parents: Mapping[str, str | None], leaves: Mapping[str, str] | None = None
) -> str:
    """The lymphocytes NK cells are counted among: in a template whose lymphocyte gate is
    followed, on the way to NK, by singlet, live-cell or time gates, the last of those (the
    cleaned lymphocytes NK are gated from, as the percentage's denominator must be); else the
    lymphocyte gate itself."""
    chain: list[str] = []
    p = parents.get(nk)
    while p is not None and p != lymph:
        chain.append(p)
        p = parents.get(p)
    if p != lymph:
        return lymph  # NK is not gated from these lymphocytes
    cleaned = lymph
    for gate in reversed(chain):  # from the lymphocytes down, while every gate only cleans
        if not _CLEANUP_GATE.fullmatch(_leaf(gate, leaves or {}).strip()):
            break
        cleaned = gate
    return cleaned


def _role_parent(
    role: str, roles: Mapping[str, str], parents: Mapping[str, str | None]
) -> str | None:
    gate = roles[role]
    parent = parents.get(gate)
    for other_role, other_gate in roles.items():
        if other_gate == parent:
            return other_role
    return parent


def _qc_checks(
    sample: FlowSample,
    member: Mapping[str, BoolArray],
    parents: Mapping[str, str | None],
    s: FlowSettings,
    cytometry: Literal["flow", "mass"],
    spill: Spillover | None,
    gating: AutoGateResult | None,
    gated: Collection[str] = (),
    data_compensated: bool = True,
) -> list[QCFlag]:
    """The checks of a result: event counts, lymphosum, and for automated gating the
    lymphocyte gate, the flow rate and the compensation of the channels ``gated``
    (``data_compensated``: whether the check in the data passed, see
    :func:`_compensation_flag`)."""
    lim = s.qc
    flags: list[QCFlag] = []
    n_lymph = int(np.count_nonzero(member["Lymphocytes"])) if "Lymphocytes" in member else 0
    flags.append(
        QCFlag(
            "lymphocyte events",
            n_lymph >= lim.min_lymphocyte_events,
            n_lymph,
            lim.min_lymphocyte_events,
            f"{n_lymph} gated lymphocyte events (minimum {lim.min_lymphocyte_events})"
            if "Lymphocytes" in member
            else _NO_ROLE.format(role="lymphocytes", example="Lymphocytes=Lymphs"),
        )
    )
    n_nk = int(np.count_nonzero(member["NK"])) if "NK" in member else 0
    flags.append(
        QCFlag(
            "NK events",
            n_nk >= lim.min_nk_events,
            n_nk,
            lim.min_nk_events,
            f"{n_nk} gated NK events (minimum {lim.min_nk_events} for a count CV ≤ 10%)"
            if "NK" in member
            else _NO_ROLE.format(role="NK cells", example="NK=CD16orCD56"),
        )
    )
    if gating is not None and gating.bead_doubt is not None:
        in_cells = gating.bead_doubt_in_cells
        if s.counts.bead_method or in_cells:
            # the absolute count only, as "bead events" (reviews 34, 37, 38), unless those
            # events stay among the cells: then every percentage
            flags.append(QCFlag("bead population", False, None, None, gating.bead_doubt, in_cells))
    if s.counts.bead_method:
        n_beads = int(np.count_nonzero(member["Beads"])) if "Beads" in member else 0
        flags.append(
            QCFlag(
                "bead events",
                n_beads >= lim.min_bead_events,
                n_beads,
                lim.min_bead_events,
                f"{n_beads} counting-bead events (minimum {lim.min_bead_events})"
                if n_beads
                else "bead method requested but no counting-bead population was found",
                # it decides the absolute count only (withheld when it fails, see
                # _build_result), not the percentages, which need no beads
                blocking=False,
            )
        )
        lymph_ul = _bead_per_ul(n_lymph, n_beads, s.counts) if n_lymph else None
        if lymph_ul is not None and n_beads >= lim.min_bead_events:
            lo, hi = UNIT_SLIPS["lymphocytes"]
            plausible = _bead_count_plausible(lymph_ul)
            flags.append(
                QCFlag(
                    "bead count plausible",
                    plausible,
                    round(lymph_ul, 1),
                    hi if lymph_ul > hi else lo,
                    f"the beads give {lymph_ul:,.0f} lymphocytes/µL"
                    + (
                        ""
                        if plausible
                        else f", outside {lo:,g}–{hi:,g}/µL where every blood count falls: "
                        "no bead-method count; check beads per test and sample volume"
                    ),
                    blocking=False,  # the absolute count only, as "bead events"
                )
            )
            given = s.counts.lymphocytes_per_ul
            if plausible and given:
                # two counts of the same blood: a factor of 2 apart is a slip in an input (beads
                # per test or volume ×10 gave 20,191 lymphocytes/µL, inside the wide band above)
                apart = max(lymph_ul / given, given / lymph_ul)
                agree = apart <= BEAD_VS_ANALYSER
                flags.append(
                    QCFlag(
                        "bead and haematology counts agree",
                        agree,
                        round(apart, 2),
                        BEAD_VS_ANALYSER,
                        f"the beads give {lymph_ul:,.0f} lymphocytes/µL, the haematology count "
                        f"{given:,.0f}"
                        + (
                            ""
                            if agree
                            else f" ({apart:.1f}× apart): no absolute count is given; check "
                            "beads per test, sample volume and the lymphocyte count for a slip"
                        ),
                        blocking=False,
                    )
                )
    if all(k in member for k in ("Lymphocytes", "CD3+", "B cells", "NK")) and n_lymph:
        # a union, not a sum: a template may gate NK-like T cells outside its T-cell gate (the
        # automated populations are disjoint, so there it is the sum)
        union = member["CD3+"] | member["B cells"] | member["NK"]
        if "NK-like T" in member:
            union = union | member["NK-like T"]
        lymphosum = int(np.count_nonzero(union & member["Lymphocytes"])) / n_lymph
        off, dev = abs(lymphosum - 1.0), lim.max_lymphosum_deviation
        # a lab's own gates are its to judge, and their roles are read from gate names: only
        # the automated gates are withheld for a lymphocyte gate that missed the lymphocytes
        failed_gate = lymphosum < lim.min_lymphosum and gating is not None
        flags.append(
            QCFlag(
                "lymphosum",
                off <= dev,
                round(off, 4),  # compared with the limit, as every flag's value is
                dev,
                f"T + B + NK cells make up {lymphosum:.1%} of the lymphocyte gate "
                f"(expected 100 ± {dev:.0%})"
                + (
                    ""
                    if off <= dev
                    else (
                        f": under {lim.min_lymphosum:.0%}, the gate did not find the lymphocytes"
                        if failed_gate
                        else ": other cells in the gate, or lymphocytes a wrong spillover "
                        "matrix moved out of their gates, change NK % of lymphocytes"
                    )
                ),
                blocking=failed_gate,
            )
        )
    if gating is not None and all(k in member for k in ("CD3+", "NK-like T")):
        n_t = int(np.count_nonzero(member["CD3+"]))
        share = int(np.count_nonzero(member["NK-like T"])) / n_t if n_t else 0.0
        if share > MAX_NK_LIKE_T_OF_T:
            # CD3+CD56+ cells are a few percent of blood T cells (NK-like T 0.9-14.4% of
            # lymphocytes, ARUP 2013805); most of them means a cut inside a population (NK
            # 0.5% with NK-like T 99% was reportable on a real Aurora PBMC: audit 31)
            flags.append(
                QCFlag(
                    "NK-like T cells",
                    False,
                    round(share, 4),
                    MAX_NK_LIKE_T_OF_T,
                    f"NK-like T cells are {_share(share)} of the CD3+ cells (more than "
                    f"{_share(MAX_NK_LIKE_T_OF_T)}): a CD3 or CD56 cut inside a population, or "
                    "an expansion of CD3+ CD56+ T cells (T-LGL); review the gates",
                )
            )
    if gating is not None and not gating.lymphocytes_separated:
        flags.append(
            QCFlag(
                "lymphocyte gate",
                False,
                None,
                None,
                (
                    f"{gating.dead_side_scatter or _NO_SSC}: in flow data CD45 alone cannot "
                    "tell lymphocytes from monocytes and granulocytes (whose CD16 would count "
                    "as NK), so percentages of lymphocytes cannot be reported"
                    if gating.cytometry == "flow"
                    else "no SSC, CD45 or CD14 channel: lymphocytes cannot be told from other "
                    "leukocytes, so percentages of lymphocytes cannot be reported"
                ),
            )
        )
    if gating is not None:
        flags.append(
            _flow_rate_flag(gating.unstable_time_fraction, lim, gating.trimmed_time_fraction)
        )
    if cytometry == "flow" and gating is not None:
        flags.append(_compensation_flag(sample, spill, s, gated, data_compensated))
    return flags


def _identity(spill: Spillover) -> bool:
    """Whether ``spill`` subtracts nothing."""
    return bool(np.allclose(spill.matrix, np.eye(len(spill.channels))))


def _compensation_flag(
    sample: FlowSample,
    spill: Spillover | None,
    s: FlowSettings,
    gated: Collection[str],
    data_compensated: bool = True,
) -> QCFlag:
    """Whether the fluorescence the gates used (channels ``gated``) was compensated, and by
    what. ``data_compensated``: whether the check in the data (:func:`_compensation_seen`)
    passed; an identity matrix on data compensated or unmixed before they were written stands
    only where it did."""
    identity = spill is not None and _identity(spill)
    matrix = "supplied" if s.spillover else "file's"

    def flag(reason: str, *, passed: bool = False, blocking: bool = False) -> QCFlag:
        return QCFlag("compensation", passed, None, None, reason, blocking=blocking)

    def before_written(reason: str) -> QCFlag:
        """The data were compensated or unmixed before they were written: ``reason`` as a
        warning; with an identity matrix, only where the data bear it out (uncompensated
        values labelled with a spectral instrument read CD56bright 0.0% for 9.6, reportable,
        with warnings only: review 35)."""
        if identity and not data_compensated:
            return flag(
                "the spillover matrix is the identity and the data do not look compensated "
                "(see the check in the data): if these are a detector's uncompensated values, "
                "supply the lab's matrix (--spillover); if unmixed, check the unmixing",
                blocking=True,
            )
        return flag(reason)

    analog = analog_compensation(sample)
    # values compensated before they were recorded: a matrix would subtract twice (an identity
    # matrix subtracts nothing)
    if analog is not None and spill is not None and not identity:
        reason = f"{analog}; compensated again with the {matrix} matrix, which subtracts"
        return flag(f"{reason} spillover twice", blocking=True)
    spectral = spectral_unmixing(sample)
    if spectral is not None and spill is not None and not identity and s.spillover is not None:
        # unmixed abundances are no detector values: a supplied matrix mixes them anew
        return flag(
            f"{spectral}; compensated again with the supplied matrix: check that the export "
            "holds raw detector values, as a spillover matrix needs"
        )
    before = _prior_compensation(sample)
    if before is not None and (analog or spill is None):
        return before_written(before)
    if spill is None:
        unread = [
            spillover_keyword(k)
            for k in SPILLOVER_KEYWORDS
            if sample.metadata.get(k, "").strip() not in ("", "0")
        ]
        held = (
            f"no spillover matrix it could use in the file ({', '.join(unread)}: see the "
            "file's notes)"
            if unread
            else "no spillover matrix in the file"
        )
        reason = f"{held} and none supplied: fluorescence is uncompensated"
        return flag(reason, blocking=True)
    # a matrix that compensates nothing, or not the dyes the gates depend on, is missing
    # compensation as much as no matrix is: an identity matrix gave CD56bright 0.0% for 9.6
    # and B cells 0.04% for 11.8, reportable (audit 33)
    if identity:
        if before is not None:  # compensated before it was written: nothing is subtracted
            return before_written(before)
        if spectral is not None:  # unmixed: an identity over the unmixed channels is right
            return before_written(
                f"{spectral}: its reference spectra cannot be checked here, only its result"
            )
        return flag(
            f"the {matrix} spillover matrix is the identity: fluorescence is uncompensated "
            "(supply the lab's matrix with --spillover)",
            blocking=True,
        )
    outside = [
        ch
        for ch in sorted(gated)
        if not (SCATTER_OR_TIME.match(ch) or COMPENSATED_EXPORT.match(ch))
        and ch not in spill.channels
    ]
    if outside and before is None:
        names = ", ".join(sample.label(ch) for ch in outside)
        return flag(
            f"the {matrix} spillover matrix leaves out {names}, which the gates use: "
            "uncompensated (supply a matrix that holds every dye with --spillover)",
            blocking=True,
        )
    # a supplied matrix that leaves out dyes the file's own matrix compensates, where they
    # matter: gated themselves, or spilling into a gated detector
    left_out = _left_out(sample.spillover, spill, gated) if s.spillover is not None else []
    if left_out:
        names = ", ".join(sample.label(ch) for ch in left_out)
        # a dye left out is missing compensation, labelled or not (a stained channel need not
        # carry a $PnS: NK 7.2% for 12.3, reportable, when unlabelled ones only warned: review
        # 35); a detector that held no dye in the tube can be put in the lab's matrix as the
        # file's matrix has it
        return flag(
            f"compensated with the supplied matrix, which leaves out {names}: gated, or "
            "spilling into a gated channel, by the file's own matrix (a detector that held no "
            "dye in this tube can go into the supplied matrix as the file's matrix has it)",
            blocking=True,
        )
    # channels a FlowJo or FACSDiva export compensated (Comp-/FJComp-) take no matrix here:
    # the flag had said the file's matrix compensated them (audit 33 finding 19)
    fluor = [ch for ch in sorted(gated) if not SCATTER_OR_TIME.match(ch)]
    exported = [ch for ch in fluor if COMPENSATED_EXPORT.match(ch)]
    if exported and len(exported) == len(fluor):
        return flag(
            "the gated channels were compensated before export (Comp-/FJComp- channels of "
            "FlowJo or FACSDiva): no matrix applied to them here",
            passed=True,
        )
    if exported:
        names = ", ".join(exported)
        return flag(
            f"compensated with the {matrix} matrix; {names} compensated before export",
            passed=True,
        )
    return flag(f"compensated with the {matrix} matrix", passed=True)


#: lymphocyte populations negative for a marker, whose median in that marker's channel lies
#: at zero when compensation is right (autofluorescence aside, which is not negative)
NEGATIVE_REFERENCES = (
    ("CD56", "CD3+"),
    ("CD56", "B cells"),
    ("CD16", "CD3+"),
    ("CD16", "B cells"),
    ("CD19", "CD3+"),
    ("CD19", "NK"),
    ("CD3", "B cells"),
    ("CD3", "NK"),
)
#: two populations negative for a marker and bright for different other markers: compensated
#: right, they share one median in the marker's channel (Roederer 2001)
SAME_NEGATIVES = (
    ("CD19", "CD3+", "NK"),
    ("CD3", "B cells", "NK"),
    ("CD56", "CD3+", "B cells"),
    ("CD16", "CD3+", "B cells"),
)
#: how far (robust SDs of the populations' spread) a negative population's median may lie below
#: zero, or two negatives' medians apart, before compensation is said to look wrong; past the
#: second limit the result is withheld. Measured: correct matrices at most 0.4 SD (the real
#: flowsom-68983 file; simulated tubes 0.1); a matrix with off-diagonals ×1.2 up to 3.2 SD,
#: ×2 up to 4.8 SD, one coefficient changed 1.6 to 4.9 SD
COMPENSATION_SDS = (1.5, 3.0)


_NK_MARKERS = frozenset({"CD16", "CD56"})


def _compensation_seen(
    comp: CompensatedColumns,
    sample: FlowSample,
    member: Mapping[str, BoolArray],
    marker_map: MarkerMap,
) -> QCFlag | None:
    """Whether the compensated data look compensated right: populations negative for a
    marker are not pushed below zero in its channel, and two such populations share one
    median there (Roederer M. Spectral compensation for flow cytometry: visualization artifacts,
    limitations, and caveats. Cytometry 2001;45:194-205). Over-compensation pushes a
    population below zero; a wrong coefficient parts two negatives. None when no reference
    population holds 50 events among those looked at."""
    markers = marker_map.markers
    col = {c.pnn: c.index for c in sample.channels}
    # every k-th event, about 20,000 in all: a median and quartiles of the hundreds or
    # thousands of events each population holds there (standard error about 0.05 SD for 500)
    # do for a check at 1.5 SD, at a fraction of the passes over a file's million events
    step = max(1, sample.n_events // 20_000)
    sampled: dict[str, NDArray[np.intp]] = {}  # a population's events among every step-th
    stats: dict[tuple[str, str], tuple[float, float]] = {}
    for marker, pop in NEGATIVE_REFERENCES:
        ch = markers.get(marker)
        if ch is None or pop not in member:
            continue
        if set(marker_map.sharing(marker)) - _NK_MARKERS:
            # a channel shared with another lineage (a dump channel) has no negatives; a
            # combined CD16+56 channel has: T and B cells are negative for both
            continue
        if pop not in sampled:
            # the mask read at every step-th event (a strided view, no gather)
            sampled[pop] = np.flatnonzero(member[pop][::step]) * step
        at = sampled[pop]
        if at.size < 50:
            continue
        q1, med, q3 = np.percentile(comp.column(col[ch])[at], [25, 50, 75])
        if q3 <= q1:
            continue  # no spread (values piled on one number): no scale to judge by
        stats[(marker, pop)] = (float(med), float(q3 - q1) / 1.349)
    if not stats:
        return None
    worst, why = 0.0, ""
    for (marker, pop), (med, sd) in stats.items():
        if -med / sd > worst:
            worst = -med / sd
            why = (
                f"{pop} sit {worst:.1f} SD below zero on {sample.label(markers[marker])}: "
                "over-compensated"
            )
    for marker, a, b in SAME_NEGATIVES:
        if (marker, a) in stats and (marker, b) in stats:
            (ma, sa), (mb, sb) = stats[(marker, a)], stats[(marker, b)]
            apart = abs(ma - mb) / max(sa, sb)
            if apart > worst:
                worst = apart
                why = (
                    f"{a} and {b}, both {marker}-negative, sit {apart:.1f} SD apart on "
                    f"{sample.label(markers[marker])}: a spillover coefficient is off"
                )
    warn, block = COMPENSATION_SDS
    if worst <= warn:
        return QCFlag(
            "compensation in the data",
            True,
            round(worst, 2),
            warn,
            "negative populations sit at zero and agree in each gated channel",
            blocking=False,
        )
    # a gain the file gives on a fluorescence channel divides its values before compensation
    # (FCS 3.1 $PnG); a matrix measured on undivided values then looks wrong
    gated = set(markers.values())
    gains = [
        f"{sample.label(ch.pnn)} ({ch.png:g})"
        for ch in sample.channels
        if ch.png != 1.0 and ch.pnn in gated
    ]
    gained = (
        f"; the file gives $PnG other than 1 on {', '.join(gains)}: its values were divided by "
        "it before compensation, so check that the matrix was measured the same way"
        if gains
        else ""
    )
    return QCFlag(
        "compensation in the data",
        False,
        round(worst, 2),
        block if worst > block else warn,
        f"{why} (compensated right, a population negative for a marker is not pushed below "
        "zero in its channel, and two such populations share one median, Roederer 2001): "
        f"check the spillover matrix{gained}",
        blocking=worst > block,
    )


#: NK-like events in the B-cell gate, in percentage points of the lymphocytes (what NK % of
#: lymphocytes loses to them): above the first a warning, above the second withheld. 1 point is
#: the accuracy the issue asks of NK % on simulated tubes; correct matrices on the realistic
#: simulated sweep leave at most 0.1 point there
NK_AMONG_B_POINTS = (0.5, 1.0)


def _nk_among_b_cells(
    comp: CompensatedColumns, sample: FlowSample, gating: AutoGateResult
) -> QCFlag | None:
    """B cells (CD19+) and NK cells (CD16+ and/or CD56+) are separate lineages; B-gate events
    that the NK gate's own CD56/CD16 shape would take are NK cells made CD19+ by spillover a
    matrix left uncompensated (CD16-PE into CD19-PE-Cy7 with that entry missing: 30% NK read
    as 2.4%, every other check passed, as the lymphosum still adds up and the NK gate that
    the compensation check compares with had lost the NK cells). ``None`` without a B-cell or
    an NK gate."""
    member = gating.membership
    if not all(name in member for name in ("B cells", "Lymphocytes", "NK")):
        return None
    nk = gating.tree["NK"]
    col = {c.pnn: c.index for c in sample.channels}
    # every k-th event, about 50,000 in all, as the compensation check samples: a share of
    # the lymphocytes near 1% is then known to about a tenth of itself
    step = max(1, sample.n_events // 50_000)
    b = np.flatnonzero(member["B cells"][::step]) * step  # a strided view, as just above
    values = [dimension_values(d, comp, sample.events, col, b) for d in nk.dims]
    lymphocytes = int(np.count_nonzero(member["Lymphocytes"][::step]))
    points = 100.0 * int(np.count_nonzero(nk.contains(values))) / max(1, lymphocytes)
    return _warn_or_withhold(
        "NK cells among B cells",
        points,
        NK_AMONG_B_POINTS,
        f"B-cell gate events as bright on CD56/CD16 as NK cells: {points:.2f}% of lymphocytes",
        " (B and NK cells are separate lineages: NK cells made CD19+ by spillover, lost from "
        "NK % by as much; check the spillover matrix's entries into CD19's channel)",
        2,
    )


def _template_nk_among_b_cells(
    applied: Any, roles: Mapping[str, str], member: Mapping[str, BoolArray]
) -> QCFlag | None:
    """:func:`_nk_among_b_cells` on a template run: B-gate events that the template's own NK
    gate shape takes (tested on every event, whatever its parent), in points of lymphocytes.
    A template matrix one coefficient off moved CD16-bright NK cells into the CD19 gate,
    reportable (audit 21). ``None`` without B-cell, lymphocyte and NK roles, or where the NK
    gate is no shape (a Boolean gate) or a shape on uncompensated values."""
    if not all(role in roles for role in ("B cells", "Lymphocytes", "NK")):
        return None
    gate = applied.gate(roles["NK"])
    if gate is None or applied.flowkit_sample is None:
        return None
    try:
        if not hasattr(gate, "dimensions") or type(gate).__name__ == "BooleanGate":
            return None
        if any(getattr(d, "compensation_ref", None) == "uncompensated" for d in gate.dimensions):
            return None  # its shape is of raw values, where B cells carry every dye's spill
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = applied.strategy._preprocess_sample_events(applied.flowkit_sample, gate)
            shape = np.asarray(gate.apply(frame), dtype=bool)
    except Exception:  # a gate FlowKit cannot test on its own (a quadrant): not judged
        return None
    lymphocytes = int(np.count_nonzero(member["Lymphocytes"]))
    points = 100.0 * int(np.count_nonzero(member["B cells"] & shape)) / max(1, lymphocytes)
    return _warn_or_withhold(
        "NK cells among B cells",
        points,
        NK_AMONG_B_POINTS,
        f"B-cell gate events the NK gate's shape takes: {points:.2f}% of lymphocytes",
        " (B and NK cells are separate lineages: NK cells made CD19+ by spillover, lost from "
        "NK % by as much; check the spillover matrix's entries into CD19's channel)",
        2,
    )


def _warn_or_withhold(
    check: str, value: float, limits: tuple[float, float], reason: str, failed: str, digits: int
) -> QCFlag:
    """A check with two limits: passed up to the first, a warning up to the second, withheld
    above it; ``failed`` is added to the reason when it does not pass, and the value is
    given to ``digits`` decimals."""
    warn, block = limits
    passed = value <= warn
    return QCFlag(
        check,
        passed,
        round(value, digits),
        warn if passed or value <= block else block,
        reason + ("" if passed else failed),
        blocking=value > block,
    )


#: NK-like T cells above this share of the CD3+ cells withhold an automated result: they are
#: a few percent of blood T cells, and most of them means a misplaced cut
MAX_NK_LIKE_T_OF_T = 0.5

#: lymphocytes the CD45 cut below them left out, as a share of those counted (of the NK
#: cells, or of all lymphocytes): above the first a warning, above the second withheld. 10% is
#: the NK/µL error the accuracy sweeps call a miss; basophils carry no lineage marker, so on
#: the simulated sweeps the cut leaves out a few lymphocytes in a thousand
LEFT_BY_CD45 = (0.05, 0.10)
#: fewest NK cells left out by the CD45 cut that count as a share of the NK cells
MIN_LEFT_NK = 10


def _left_out_by_cd45(
    comp: CompensatedColumns, sample: FlowSample, gating: AutoGateResult
) -> QCFlag | None:
    """Lymphocytes (by the lineage gates' own cuts) among the CD45-dim events left out of the
    lymphocyte gate (:meth:`~nkpanel.flow.autogate._Gater.cd45_bright`): NK cells lost to
    NK % and NK/µL, or T and B cells lost to the denominator; ``None`` where no CD45 cut was
    placed. Basophils carry no lineage marker of the panel: lymphocytes left out are dimmer
    in CD45 than the cut allowed (CD16 over-compensated out of CD45's channel, a CD45-dim
    lymphocyte subset)."""
    member, tree = gating.membership, gating.tree
    if LYMPHOCYTE_SCATTER not in member or "NK" not in member:
        return None
    out = np.flatnonzero(member[LYMPHOCYTE_SCATTER] & ~member["Lymphocytes"])
    col = {c.pnn: c.index for c in sample.channels}

    def within(name: str) -> BoolArray:
        gate = tree[name]
        return gate.contains(
            [dimension_values(d, comp, sample.events, col, out) for d in gate.dims]
        )

    in_nk = within("CD3-") & within("NK")
    lineage = within("CD3+") | in_nk
    if "B cells" in member:  # a gate of the lymphocytes of its own (CD3- CD19+)
        lineage |= within("B cells")
    left_nk, left = int(np.count_nonzero(in_nk)), int(np.count_nonzero(lineage))
    counted_nk = int(np.count_nonzero(member["NK"]))
    # a few NK cells are no share: 1 left out beside 4 counted (a tube without NK cells) read
    # as 25% and withheld the result for it
    nk = left_nk / max(1, counted_nk) if left_nk >= MIN_LEFT_NK else 0.0
    lineage_share = left / max(1, int(np.count_nonzero(member["Lymphocytes"])))
    return _warn_or_withhold(
        "lymphocytes left out by the CD45 cut",
        max(nk, lineage_share),
        LEFT_BY_CD45,
        f"the CD45-dim events left out of the lymphocytes hold {left_nk:,} NK cells "
        f"({nk:.1%} of the {counted_nk:,} counted) and {left:,} T, B or NK cells "
        f"({lineage_share:.1%} of the lymphocytes) by the lineage gates",
        ": lymphocytes dimmer in CD45 than the cut (CD16 over-compensated out of CD45's "
        "channel, a CD45-dim subset) change NK % and NK/µL; check the spillover matrix and the "
        "CD45 plot, or gate the lymphocytes on scatter alone (--keep-cd45-dim)",
        4,
    )


#: spillover below this fraction (0.1%) is taken as none
NO_SPILL = 1e-3


def _left_out(own: Spillover | None, used: Spillover, gated: Collection[str]) -> list[str]:
    """The dyes of the file's own matrix ``own`` that the matrix ``used`` leaves out and that
    the gates depend on: a gated channel, or one spilling into a gated channel."""
    if own is None:
        return []
    out = []
    for i, ch in enumerate(own.channels):
        if ch in used.channels:
            continue
        into = [j for j, g in enumerate(own.channels) if g in gated and j != i]
        if ch in gated or any(own.matrix[i, j] > NO_SPILL for j in into):
            out.append(ch)
    return out


def _linear_analog_note(sample: FlowSample, markers: MarkerMap) -> tuple[str, ...]:
    """A note where an analog cytometer's 1,024-channel fluorescence is said to be linear
    ($PnE 0,0 or none), as its log amplifiers' output rarely is: the channel numbers are then
    read as linear intensities (audit 33 finding 18: NK 11.34% for 11.60, no word said)."""
    if not ANALOG_CYTOMETERS.search(sample.metadata.get("cyt", "")):
        return ()
    gated = sorted({sample.index_of(pnn) for pnn in markers.markers.values()})
    linear = [
        c.pnn
        for c in (sample.channels[i] for i in gated)
        if c.pnr <= 1024 and not c.is_log_amplified
    ]
    if not linear:
        return ()
    return (
        f"{', '.join(linear)}: $PnE says linear, but an analog cytometer's "
        "1,024-channel fluorescence is usually recorded through a 4-decade log amplifier "
        "($PnE 4,0 or 4,1); read as linear channel numbers: check the instrument's settings",
    )


def _prior_compensation(sample: FlowSample) -> str | None:
    """The warning for compensation the file says was done before it was written (by an
    analog instrument, or a MACSQuant that names the channels), or ``None``."""
    analog = analog_compensation(sample)
    if analog is not None:
        return f"{analog}: its settings cannot be checked here"
    unlisted = unlisted_compensation(sample)
    if unlisted is not None:
        return (
            f"{unlisted}: that compensation cannot be checked here (if the data were not "
            "compensated, supply the matrix)"
        )
    spectral = spectral_unmixing(sample)
    if spectral is not None and sample.spillover is None:
        return f"{spectral}: its reference spectra cannot be checked here, only its result"
    return None


def _repeats(name: str, roles: Mapping[str, str] | None) -> str | None:
    """The template gate whose events the role row ``name`` repeats, or None."""
    gate = (roles or {}).get(name)
    return gate if gate != name else None


def _bead_per_ul(n: int, n_beads: int, counts: AbsoluteCountInputs) -> float | None:
    """Cells per µL by the single-platform bead method (BD IFU 23-3483): cells / beads ×
    beads per test / sample volume; None without its inputs or beads."""
    if not (counts.beads_per_test and counts.sample_volume_ul and n_beads):
        return None
    return n / n_beads * counts.beads_per_test / counts.sample_volume_ul


def _bead_count_plausible(lymph_ul: float | None) -> bool:
    """Whether the lymphocytes per µL the beads give (:func:`_bead_per_ul`) lie where blood
    counts do (:data:`UNIT_SLIPS`); true when there is no bead count to judge."""
    lo, hi = UNIT_SLIPS["lymphocytes"]
    return lymph_ul is None or lo <= lymph_ul <= hi


_NO_SSC = "no side-scatter channel (SSC-A, SSC-H, SS INT…; name yours with --marker SSC-A=NAME)"


def _share(x: float) -> str:
    """A fraction as a percentage with the digits it was given (a lab's 0.5% limit printed
    as "0%", and 3.99% as "4%" beside a value of 4%: audit 32)."""
    return f"{100 * x:.3g}%"


def _flow_rate_flag(frac: float | None, lim: QCLimits, trimmed: float = 0.0) -> QCFlag:
    if frac is None:  # a warning: a clog or bubble would go unseen
        return QCFlag(
            "flow rate",
            False,
            None,
            lim.max_unstable_time_fraction,
            "flow rate not checked (no usable Time channel): a clog or bubble would go unseen",
            blocking=False,
        )
    return QCFlag(
        "flow rate",
        frac <= lim.max_unstable_time_fraction,
        round(frac, 4),
        lim.max_unstable_time_fraction,
        f"flow rate unstable over {_share(frac)} of the acquisition time "
        f"(limit {_share(lim.max_unstable_time_fraction)})"
        + (
            f"; {_share(trimmed)} more was unstable at the start or end and left out "
            "(Time gate), its events with it"
            if trimmed
            else ""
        ),
    )


def _time_channel(sample: FlowSample, s: FlowSettings) -> str | None:
    """The Time channel, found as the automated gating finds it (MACSQuant names it HDR-T);
    None where none is, or two channels claim to be it."""
    try:
        found = resolve_markers(sample, (), optional=("Time",), aliases=s.alias_table())
    except MarkerError:
        return None
    return found.channel_for("Time") if found.has("Time") else None


#: a template's time gate keeping less than this share of the events it is applied to is said
#: (a clog or start-up trimmed by hand takes a few percent; a range of another tube's seconds,
#: half of a longer tube: audit 21)
TIME_GATE_KEEPS = 0.95


def _template_time_flags(
    sample: FlowSample, applied: Any, member: Mapping[str, BoolArray], tch: str | None
) -> list[QCFlag]:
    """A warning for a template gate on acquisition time alone that keeps less than
    :data:`TIME_GATE_KEEPS` of its parent's events: nkpanel's export writes the time range of
    the tube the gates were found on, and a longer tube lost half its events to it unsaid."""
    out: list[QCFlag] = []
    for gate in applied.gate_ids:
        shape = applied.gate(gate)
        dims = tuple(str(getattr(d, "id", "")) for d in getattr(shape, "dimensions", None) or ())
        if tch is None or dims != (tch,) or gate not in member:
            continue
        parent = applied.parents.get(gate)
        within = int(np.count_nonzero(member[parent])) if parent in member else sample.n_events
        kept = int(np.count_nonzero(member[gate]))
        if within and kept < TIME_GATE_KEEPS * within:
            out.append(
                QCFlag(
                    "time gate",
                    False,
                    round(kept / within, 4),
                    TIME_GATE_KEEPS,
                    f"the template's gate {gate} on acquisition time keeps {kept / within:.0%} "
                    "of the events: a time range drawn on another tube leaves the rest of this "
                    "one unanalysed",
                    blocking=False,
                )
            )
    return out


def _template_qc(
    sample: FlowSample, channels: tuple[str, ...], s: FlowSettings, tch: str | None
) -> list[QCFlag]:
    """The acquisition checks a template run gets as well as the automated analysis: flow
    rate over time (a template has no time gate of nkpanel's), saturation on the channels the
    template gates on, and a warning where the instrument compensated before writing."""
    out: list[QCFlag] = []
    rate = flow_rate(sample.column(tch), s.autogate) if tch is not None else None
    if rate is not None:  # every bin: a template trims no unstable start or end
        flag = _flow_rate_flag(rate.unstable, s.qc)
        if rate.pause:
            flag = dataclasses.replace(flag, reason=f"{flag.reason}; {rate.pause}")
        out.append(flag)
    if gated := set(channels) - {tch}:  # a time counter past its range is not saturated
        out.append(_saturation_check(sample, gated, None, s.qc))
    # what the file says about compensation done before it was written, as the automated
    # analysis says it (whether the template compensates again is the template's matter)
    if (before := _prior_compensation(sample)) is not None:
        out.append(QCFlag("compensation", False, None, None, before, blocking=False))
    return out


def _template_compensation_flags(
    sample: FlowSample, refs: Mapping[str, tuple[str, ...]]
) -> list[QCFlag]:
    """Compensation a template's gates leave out (audit 21: FlowKit gates raw data, silently,
    where a gate refers to the file's matrix and the file has none; NK 6.4% for 6.2%,
    reportable, where the NK gate alone was uncompensated). ``refs``: each gated channel →
    the compensation references of its gates."""
    fluorescence = _fluorescence(refs)
    out: list[QCFlag] = []
    if _prior_compensation(sample) is not None:  # compensated before it was written
        return out
    own = sample.spillover
    on_file_matrix = [ch for ch in fluorescence if "FCS" in refs[ch]]
    if own is None and on_file_matrix:
        out.append(
            QCFlag(
                "compensation",
                False,
                None,
                None,
                f"the template compensates {', '.join(map(sample.label, on_file_matrix))} with "
                "the file's own matrix, but the file holds none: fluorescence is gated "
                "uncompensated",
            )
        )
    raw = [ch for ch in fluorescence if "uncompensated" in refs[ch]]
    covered = [ch for ch in raw if own is not None and ch in own.channels]
    if covered:
        out.append(
            QCFlag(
                "compensation",
                False,
                None,
                None,
                f"the template gates {', '.join(map(sample.label, covered))} uncompensated, "
                "though the file's spillover matrix covers them: check that the gates were "
                "drawn on uncompensated data",
                blocking=False,
            )
        )
    return out


def _template_compensation_seen(
    sample: FlowSample, applied: Any, member: Mapping[str, BoolArray], s: FlowSettings
) -> QCFlag | None:
    """The in-data compensation check of the automated analysis (:func:`_compensation_seen`:
    negatives at zero, two negatives at one median) on a template run, on the data as the
    template compensated them, where its gates compensate every fluorescence channel with one
    matrix (the file's, or one of its own). A template matrix one coefficient off moved NK
    cells into the B gate: NK 7.0% for 14.1%, reportable with only a warning that the
    matrices differ (audit 21). None where the markers or the roles' populations are not
    known, or the gates compensate otherwise."""
    refs = {ref for ch in _fluorescence(applied.compensation) for ref in applied.compensation[ch]}
    if len(refs) != 1:
        return None
    (ref,) = refs
    matrix = sample.spillover if ref == "FCS" else applied.matrices.get(ref)
    if matrix is None:
        return None
    try:
        markers = resolve_markers(
            sample, (), optional=(*REQUIRED_MARKERS, *OPTIONAL_MARKERS), aliases=s.alias_table()
        )
    except NkPanelError:  # two channels claim one marker: no reading of it here
        return None
    try:
        columns = CompensatedColumns(
            sample, on_file_channels(matrix, sample.channels, sample.source)
        )
    except NkPanelError:  # a matrix that does not fit the file: FlowKit has said so
        return None
    return _compensation_seen(columns, sample, member, markers)


#: a stain label that names a marker by its CD number ("CD8 FITC", "CD 56", "cd16b")
_CD_NAME = re.compile(r"\bCD[ -]?\d+[a-z]?\b", re.IGNORECASE)


def _template_panel_flags(
    sample: FlowSample, recorded: Mapping[str, str], gated: Collection[str], s: FlowSettings
) -> list[QCFlag]:
    """A blocking flag where a gated channel carries another marker in this file than where
    the template's gates were drawn (recorded by nkpanel's own export): a template is matched
    to a file by detector names, so another panel's file, CD8 where CD3 was, passed silently
    (audit 21). A channel whose marker this file does not say is not judged."""
    if not recorded:
        return []
    aliases = s.alias_table()
    try:
        found = dict(resolve_markers(sample, (), optional=tuple(recorded), aliases=aliases).markers)
    except NkPanelError:  # two channels claim one marker: judged channel by channel below
        found = {}
    wrong = []
    for marker, channel in recorded.items():
        if channel not in gated or found.get(marker) == channel:
            continue
        pns = sample.channels[sample.index_of(channel)].pns if channel in sample.pnn else ""
        words = {normalise_label(w) for w in re.split(r"[\s_/,;()]+", pns) if w}
        if words & {normalise_label(a) for a in aliases.aliases_for(marker)[0]}:
            continue  # the channel names the marker (resolved or not: FITC-A and FITC-H
            # both "CD3 FITC" claim CD3 twice, review 25)
        elsewhere = found.get(marker)
        carries = [m for m, c in found.items() if c == channel and m != marker]
        if elsewhere is None and not carries and not _CD_NAME.search(pns):
            continue  # the file does not say what this channel carries ("FITC", or nothing)
        here = f"this file's {channel} is {pns!r}" if pns else f"this file's {channel} is unnamed"
        wrong.append(
            f"{marker} was on {channel}; {here}"
            + (f", and {marker} is on {elsewhere}" if elsewhere else "")
        )
    if not wrong:
        return []
    return [
        QCFlag(
            "template panel",
            False,
            None,
            None,
            "the template's gates were drawn on another panel: " + "; ".join(wrong),
        )
    ]


def _fluorescence(channels: Iterable[str]) -> list[str]:
    """The channels that are neither scatter nor the acquisition time, by their names."""
    return [ch for ch in channels if ch != "Time" and not _is_scatter(ch)]


def _is_scatter(pnn: str) -> bool:
    return pnn.upper().startswith(("FSC", "SSC", "FS ", "SS "))


def _template_matrix_flags(sample: FlowSample, matrices: Mapping[str, Spillover]) -> list[QCFlag]:
    """A warning for each of the template's own matrices that differs from the one recorded
    with the file: a template drawn on another instrument, day or panel compensates this file
    with that matrix (FlowJo and Gating-ML apply the template's), not with its own."""
    own = sample.spillover
    if own is None:
        return []
    out = []
    for ref, matrix in matrices.items():
        shared = [ch for ch in matrix.channels if ch in own.channels]
        if not shared:
            continue
        ours = [matrix.channels.index(ch) for ch in shared]
        theirs = [own.channels.index(ch) for ch in shared]
        diff = np.abs(matrix.matrix[np.ix_(ours, ours)] - own.matrix[np.ix_(theirs, theirs)])
        i, j = np.unravel_index(int(np.argmax(diff)), diff.shape)
        if diff[i, j] <= TEMPLATE_MATRIX_TOLERANCE:
            continue
        out.append(
            QCFlag(
                "compensation",
                False,
                round(float(diff[i, j]), 4),
                TEMPLATE_MATRIX_TOLERANCE,
                f"the template compensates with its own matrix {ref!r}, which differs from the "
                f"file's by up to {diff[i, j]:.3g} ({shared[i]} into {shared[j]}): check that "
                "it was made for this instrument and panel",
                blocking=False,
            )
        )
    return out


def transformed_already(sample: FlowSample) -> str | None:
    """Why ``sample``'s values are already transformed (logicle, asinh, or scaled to 0–1) or
    ``None``: every stained channel (with a $PnS; else every channel but scatter and time;
    log-amplified channels aside, which the reader decodes) stays within
    ±:data:`TRANSFORMED_MAX`. Such an export (flowCore, "export transformed" values) was
    compensated and transformed again, and every gate was then meaningless (flowsom's copy of
    68983: NK F1 0.69 against the expert, for 0.96 on the raw file; audit 31), while the
    reason given named the lymphocyte gate."""
    if sample.n_events == 0:
        return None
    # log-amplified channels are decoded here to the linear scale: they are never transformed
    own = [c for c in sample.channels if not (SCATTER_OR_TIME.match(c.pnn) or c.is_log_amplified)]
    stained = [c for c in own if c.pns.strip()] or own
    if not stained:
        return None
    cols = [c.index for c in stained]
    peaks = sample.column_maxima()  # found while reading: no pass over the events
    high = float(np.max(peaks[cols] if peaks is not None else sample.events[:, cols]))
    if high > TRANSFORMED_MAX:
        return None  # raw values, as nearly every file has: the events are not looked at
    low = float(np.min(sample.events[:, cols]))
    if low < -TRANSFORMED_MAX:
        return None
    top = max(stained, key=lambda c: c.pnr)
    return (
        f"the values are already transformed or rescaled: every stained channel stays within "
        f"{low:.3g}…{high:.3g} (e.g. {top.pnn}, whose "
        f"range $PnR is {top.pnr:g}); export the untransformed (linear, uncompensated) "
        "values from the instrument or the program that wrote this file"
    )


def _saturation_check(
    sample: FlowSample, channels: set[str], within: BoolArray | None, lim: QCLimits
) -> QCFlag:
    any_top = np.zeros(sample.n_events, dtype=bool)
    cols = [sample.index_of(ch) for ch in sorted(channels)]
    tops = np.array([SATURATED * sample.channels[i].top for i in cols])
    # most channels never reach the top: where the reader found each column's largest value,
    # those are passed over without reading them again
    peaks = sample.column_maxima()
    if peaks is not None:
        reach = [k for k, i in enumerate(cols) if peaks[i] >= tops[k]]
        cols, tops = [cols[k] for k in reach], tops[reach]

    def mark(start: int, stop: int) -> None:
        block = sample.events[start:stop]
        for i, top in zip(cols, tops, strict=True):
            col = block[:, i]
            # most channels never reach the top: no mask (known already where peaks are)
            if col.size and (peaks is not None or col.max() >= top):
                any_top[start:stop] |= col >= top

    if cols:
        for_row_blocks(sample.n_events, mark)
    n = int(np.count_nonzero(within)) if within is not None else sample.n_events
    hits = (
        int(np.count_nonzero(any_top & within))
        if within is not None
        else int(np.count_nonzero(any_top))
    )
    sat = hits / n if n else 0.0
    return QCFlag(
        "saturation",
        sat <= lim.max_saturated_fraction,
        round(sat, 5),
        lim.max_saturated_fraction,
        f"{sat:.2%} of events at the top of a gated channel's range "
        f"(limit {_share(lim.max_saturated_fraction)})",
    )


def _pct(num: int, den: int) -> float | None:
    return 100.0 * num / den if den > 0 else None


def _build_result(
    sample: FlowSample,
    member: Mapping[str, BoolArray],
    parents: Mapping[str, str | None],
    s: FlowSettings,
    cytometry: Literal["flow", "mass"],
    gating: Literal["automated", "template"],
    qc: list[QCFlag],
    notes: tuple[str, ...],
    file_notes: tuple[str, ...],
    roles: Mapping[str, str] | None = None,
    template: str | None = None,
    leukocytes_by_cd45: bool = True,
    markers: Mapping[str, str] | None = None,
) -> FlowResult:
    """The result: counts and percentages of every population, the headline measures.

    Without CD45 (``leukocytes_by_cd45`` false) the scatter's leukocyte gate holds debris too
    (about 10% in audit 33): nothing is given as a percentage of it, nor counted per µL
    through it, as though it were the CD45+ leukocytes.

    ``roles`` maps a role (``"Lymphocytes"``…) to the template gate that plays it (of the
    template file ``template``); a gate is
    counted among the lymphocytes (or leukocytes) when the role or its gate is an ancestor.
    Percentages of leukocytes and absolute counts are given for populations inside the
    leukocytes (or, without a leukocyte gate, the lymphocytes) only: not for debris, beads or
    the acquisition-time gate."""
    counts = {k: int(np.count_nonzero(v)) for k, v in member.items()}
    n_lymph = counts.get("Lymphocytes", 0)
    n_leuk = counts.get("Leukocytes", 0) if leukocytes_by_cd45 else 0
    n_beads = counts.get("Beads", 0)
    c = s.counts
    method: Literal["bead", "dual-platform", "none"] = "none"
    enough_beads = 0 < n_beads >= s.qc.min_bead_events  # the "bead events" check, passed
    lymph_ul = _bead_per_ul(n_lymph, n_beads, c) if n_lymph else None
    plausible = _bead_count_plausible(lymph_ul)  # the "bead count plausible" check
    # the "bead population" check: events between the cells and the beads of doubtful kind
    doubt = any(f.check == "bead population" and not f.passed for f in qc)
    beads_ok = enough_beads and plausible and not doubt
    dual = c.lymphocytes_per_ul is not None and n_lymph > 0
    # two counts of one blood more than 2× apart (the "bead and haematology counts agree"
    # check): which input slipped cannot be told, so neither count is given (NK 23/µL, flagged
    # low, was given beside a dual-platform 235/µL from beads per test typed ×10 low: audit 32)
    disagree = any(f.check == "bead and haematology counts agree" and not f.passed for f in qc)
    if c.bead_method and (beads_ok or not dual):
        method = "bead"  # asked for: with too few beads and nothing else, the count is withheld
    elif dual:
        method = "dual-platform"
    if c.bead_method and c.lymphocytes_per_ul is not None and not disagree:
        notes += (
            ("both a bead count and a lymphocyte count given: cells/µL by the bead method",)
            if method == "bead"
            else (
                (
                    f"too few counting beads ({n_beads})"
                    if not enough_beads
                    else "bead events in doubt (see the bead population check)"
                    if doubt
                    else "a bead count outside every blood count (see its check)"
                )
                + " for the bead method: cells/µL by the dual-platform method, from the "
                "lymphocyte count given",
            )
        )
    elif method == "none" and beads_ok:
        notes += (
            f"{n_beads} counting-bead events found, but no beads per test and sample volume "
            "given (--beads and --volume, or beads_per_test and sample_volume_ul in a case "
            "manifest): no absolute count",
        )

    @functools.cache
    def under(name: str, role: str) -> bool:
        targets = {role, (roles or {}).get(role, role)}
        p: str | None = name
        while p is not None:
            if p in targets:
                return True
            p = parents.get(p)
        # a template's gate whose events all lie within the role's, wherever it hangs (a
        # Boolean gate has no parent: its NK/µL was missing without a word, audit 21)
        return (
            gating == "template"
            and role in member
            and counts.get(name, 0) > 0
            and not np.any(member[name] & ~member[role])
        )

    def under_lymph(name: str) -> bool:
        return under(name, "Lymphocytes")

    def cells(name: str) -> bool:
        return under(name, "Leukocytes") if n_leuk else under_lymph(name)

    def per_ul(name: str, n: int) -> float | None:
        if disagree:
            return None
        if method == "bead" and not beads_ok:
            return None  # withheld: too few beads (dual platform needs none)
        if method == "bead" and cells(name):
            return _bead_per_ul(n, n_beads, c)
        if method == "dual-platform" and c.lymphocytes_per_ul and under_lymph(name):
            return n / n_lymph * c.lymphocytes_per_ul
        return None

    rows = []
    for name, n in counts.items():
        parent = parents.get(name)
        parent_n = counts[parent] if parent is not None else sample.n_events
        rows.append(
            PopulationCount(
                population=name,
                parent=parent,
                count=n,
                parent_count=parent_n,
                percent_of_parent=_pct(n, parent_n),
                percent_of_lymphocytes=_pct(n, n_lymph) if under_lymph(name) else None,
                percent_of_leukocytes=_pct(n, n_leuk) if n_leuk and cells(name) else None,
                cells_per_ul=per_ul(name, n),
                same_events_as=_repeats(name, roles),
            )
        )

    def within(inner: str, outer: str) -> bool:
        """Whether ``inner``'s events all lie in ``outer``'s (an empty population lies in
        any): a template's may not (see :func:`_role_nesting_flags`)."""
        if inner not in member or outer not in member:
            return False
        return counts[inner] == 0 or under(inner, outer)

    n_nk = counts.get("NK", 0)
    # a percentage of a population is of events within it: else none, not 201% (audit 21)
    bright = counts.get("NK CD56bright") if within("NK CD56bright", "NK") else None
    dim = counts.get("NK CD56dim") if within("NK CD56dim", "NK") else None
    nk_in_lymph = within("NK", "Lymphocytes")
    nk_ul = per_ul("NK", n_nk) if "NK" in counts else None
    # as written, less the blanks some writers pad values with ("14945              ")
    meta = {k: sample.metadata[k].strip() for k in KEPT_KEYWORDS if k in sample.metadata}
    return FlowResult(
        sample=sample.name,
        source=sample.source,
        gating=gating,
        cytometry=cytometry,
        n_events=sample.n_events,
        populations=tuple(rows),
        qc=tuple(qc),
        notes=notes,
        nk_percent_of_lymphocytes=_pct(n_nk, n_lymph) if nk_in_lymph else None,
        nk_percent_of_leukocytes=_pct(n_nk, n_leuk)
        if n_leuk and within("NK", "Leukocytes")
        else None,
        cd56bright_percent_of_nk=_pct(bright, n_nk) if bright is not None else None,
        cd56dim_percent_of_nk=_pct(dim, n_nk) if dim is not None else None,
        cd56bright_to_dim_ratio=bright / dim if bright is not None and dim else None,
        nk_like_t_percent_of_lymphocytes=_pct(counts["NK-like T"], n_lymph)
        if within("NK-like T", "Lymphocytes")
        else None,
        nk_cells_per_ul=nk_ul,
        # a bead count asked for but withheld (too few beads) stays "bead": the report says why
        absolute_count_method=method if nk_ul is not None or method == "bead" else "none",
        metadata=meta,
        template=template,
        template_roles=dict(roles or {}),
        file_notes=file_notes,
        markers=dict(markers or {}),
    )
