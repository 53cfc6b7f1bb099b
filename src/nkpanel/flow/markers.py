"""Finding the markers of an NK panel on a file's channels.

Instruments and kits name the same antigen in many ways ($PnS "CD56 PE", "141Pr_CD56", "Leu-19",
a TBNK kit's shared "CD16+56" channel). :func:`resolve_markers` maps each marker nkpanel needs to
one channel through an alias table the lab can extend, and fails loudly, naming the file, the
markers wanted and the labels found, rather than counting zero cells.

Matching is by whole words, never by substring: "CD3" matches "CD3 PerCP" and "170Er_CD3" but not
"CD38" or "CD34", and "CD16" does not match "CD161". A label is read at three levels, and the
first level at which a marker's aliases hit decides:

1. the whole label: the $PnS or $PnN equal to an alias (ignoring case, spaces, dashes,
   underscores and dots), or the $PnN exactly as written;
2. the words of the $PnS (split at spaces, ``_ : | / + , ; ( ) [ ]``, then at dashes; adjacent
   words also joined, so "Leu 19" and "NK1/1" read as "Leu19" and "NK11");
3. the words of the $PnN.

"CD16+56" and "CD16/56" name both CD16 and CD56, so both markers land on the shared channel
(:attr:`MarkerMap.combined_cd16_cd56`). Scatter and time channels are matched on the whole
$PnN (then $PnS) only, so "FSC-H" is never taken for "FSC".
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from nkpanel.errors import ConfigError, MarkerError
from nkpanel.flow.sample import FlowSample

__all__ = [
    "AliasTable",
    "MarkerMap",
    "load_aliases",
    "normalise_label",
    "parse_marker_override",
    "resolve_markers",
]

_SPLIT = re.compile(r"[\s_:|/+&()\[\]{},;]+")
_STRIP = re.compile(r"[\s\-_.·]+")
# dashes as "-"; zero-width characters (a label pasted from a document: "CD\u200b56"
# looked like CD56 in the message and matched nothing, audit 33) dropped
_DASHES = str.maketrans(
    {**dict.fromkeys("‐‑‒–—―−", "-"), **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u00ad")}
)
# "CD16+56", "CD16/56", "CD3/16/56": a bare number after a CD word names another CD
_CD_SHORTHAND = re.compile(r"(?i)\b(cd\d+[a-z]*)(\s*[+/&]\s*)(\d+[a-z]*)\b")
COMBINED_CD16_CD56 = "CD16+56"


def normalise_label(text: str) -> str:
    """Case-fold and drop separators: ``"Leu-19"`` → ``"leu19"``, ``"FcγRIII"`` → ``"fcgriii"``."""
    text = unicodedata.normalize("NFKC", text).translate(_DASHES)
    return _STRIP.sub("", text.replace("γ", "g").replace("Γ", "g")).casefold()


def _expand_cd_shorthand(label: str) -> str:
    prev = None
    while prev != label:
        prev = label
        label = _CD_SHORTHAND.sub(lambda m: f"{m[1]}{m[2]}CD{m[3]}", label)
    return label


def _words(label: str) -> list[str]:
    """The normalised words of a label, its dash-separated parts, and adjacent pairs of both."""
    text = _expand_cd_shorthand(unicodedata.normalize("NFKC", label).translate(_DASHES))
    words = [w for w in _SPLIT.split(text.strip()) if w]
    parts = [s for w in words for s in w.split("-") if s]
    out: list[str] = []
    for seq in (words, parts):
        out += [normalise_label(w) for w in seq]
        out += [normalise_label(a + b) for a, b in itertools.pairwise(seq)]
    return [c for c in dict.fromkeys(out) if c]


@dataclass(frozen=True)
class AliasTable:
    """Marker name → aliases, and scatter/time channel name → aliases."""

    markers: Mapping[str, tuple[str, ...]]
    channels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: markers and channels mapped to one label by :meth:`with_overrides`
    overridden: frozenset[str] = frozenset()
    #: a lab file's keys that name no marker or channel of the bundled table (its aliases
    #: serve only a lab template naming them; a misspelt key is otherwise silent)
    foreign: tuple[str, ...] = ()

    def merged(self, other: AliasTable) -> AliasTable:
        """This table extended by ``other`` (aliases appended, new markers added)."""
        markers = {k: tuple(v) for k, v in self.markers.items()}
        for k, v in other.markers.items():
            key = _find_key(markers, k) or k
            markers[key] = tuple(dict.fromkeys((*markers.get(key, ()), *v)))
        channels = {k: tuple(v) for k, v in self.channels.items()}
        for k, v in other.channels.items():
            key = _find_key(channels, k) or k
            channels[key] = tuple(dict.fromkeys((*channels.get(key, ()), *v)))
        return AliasTable(
            markers,
            channels,
            self.overridden | other.overridden,
            tuple(dict.fromkeys((*self.foreign, *other.foreign))),
        )

    def with_overrides(self, overrides: Mapping[str, str]) -> AliasTable:
        """This table with each named marker mapped to exactly one label (``--marker CD56=NK1.1``).

        The label replaces the marker's aliases: it may be a $PnS ("NK1.1", "NK1/1"), a word of
        one, or a $PnN ("PE-A"). A name the table lists as a scatter/time channel overrides that
        channel instead.

        Raises
        ------
        ConfigError
            An empty marker name or label.
        """
        markers = dict(self.markers)
        channels = dict(self.channels)
        overridden = set(self.overridden)
        for marker, label in overrides.items():
            if not str(marker).strip() or not str(label).strip():
                raise ConfigError(f"marker override {marker!r}={label!r}: both sides must be named")
            ch_key = _find_key(channels, marker)
            if ch_key is not None:
                channels[ch_key] = (label.strip(),)
                overridden.add(ch_key)
            else:
                key = _find_key(markers, marker) or marker.strip()
                markers[key] = (label.strip(),)
                overridden.add(key)
        return AliasTable(markers, channels, frozenset(overridden), self.foreign)

    def aliases_for(self, name: str) -> tuple[tuple[str, ...], bool]:
        """The aliases of ``name`` and whether it is a scatter/time channel."""
        ch_key = _find_key(self.channels, name)
        if ch_key is not None:
            return tuple(self.channels[ch_key]), True
        key = _find_key(self.markers, name)
        return (tuple(self.markers[key]) if key is not None else (name,)), False


def _find_key(table: Mapping[str, object], name: str) -> str | None:
    """The key of ``table`` naming ``name``, matched exactly first, then normalised."""
    if name in table:
        return name
    want = normalise_label(name)
    return next((k for k in table if normalise_label(k) == want), None)


def parse_marker_override(text: str) -> tuple[str, str]:
    """``"CD56=NK1.1"`` → ``("CD56", "NK1.1")``, for ``--marker`` options.

    Raises
    ------
    ConfigError
        No ``=``, or an empty side.
    """
    marker, sep, label = text.partition("=")
    if not sep or not marker.strip() or not label.strip():
        raise ConfigError(f"marker override {text!r} must read MARKER=LABEL, e.g. CD56=NK1.1")
    return marker.strip(), label.strip()


def _parse_table(data: Mapping[str, object], source: str) -> AliasTable:
    unknown = set(data) - {"markers", "channels"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown table(s) {', '.join(sorted(unknown))}; use [markers] or [channels]"
        )

    def section(name: str) -> dict[str, tuple[str, ...]]:
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: [{name}] must be a table of lists")
        out: dict[str, tuple[str, ...]] = {}
        for key, val in raw.items():
            if (
                not isinstance(val, list)
                or not val
                or not all(isinstance(v, str) and v.strip() for v in val)
            ):
                raise ConfigError(
                    f"{source}: [{name}] {key} must be a non-empty list of non-empty strings"
                )
            out[str(key)] = tuple(v.strip() for v in val)
        return out

    return AliasTable(section("markers"), section("channels"))


@functools.cache
def _bundled_aliases() -> AliasTable:
    """The package's own table, parsed once per process (it is immutable)."""
    bundled = resources.files("nkpanel.flow").joinpath("aliases.toml").read_text("utf-8")
    table = _parse_table(tomllib.loads(bundled), "bundled aliases.toml")
    # shared by every caller: read-only views, so that no caller can change it for the others
    return AliasTable(MappingProxyType(dict(table.markers)), MappingProxyType(dict(table.channels)))


def load_aliases(path: str | Path | None = None) -> AliasTable:
    """The bundled alias table, extended by a lab's TOML file when ``path`` is given.

    Raises
    ------
    ConfigError
        The file cannot be read, is not TOML, or is not laid out as ``[markers]``/``[channels]``
        tables of string lists.
    """
    table = _bundled_aliases()
    if path is None:
        return table
    p = Path(path)
    try:
        extra = tomllib.loads(p.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    lab = _parse_table(extra, str(p))
    known = {**table.markers, **table.channels}
    foreign = tuple(k for k in (*lab.markers, *lab.channels) if _find_key(known, k) is None)
    return dataclasses.replace(table.merged(lab), foreign=foreign)


@dataclass(frozen=True)
class MarkerMap:
    """Which channel ($PnN) carries each marker and each scatter/time parameter."""

    markers: Mapping[str, str]
    channels: Mapping[str, str]
    source: str = ""
    #: what a person checking the panel should know (a stain label naming another marker)
    notes: tuple[str, ...] = ()

    def channel_for(self, marker: str) -> str:
        if marker in self.markers:
            return self.markers[marker]
        if marker in self.channels:
            return self.channels[marker]
        raise MarkerError(self.source, f"marker {marker} was not resolved")

    def has(self, marker: str) -> bool:
        return marker in self.markers or marker in self.channels

    def sharing(self, marker: str) -> list[str]:
        """The other markers stained on ``marker``'s channel (a dump channel, "CD14/CD19"),
        in the table's order; empty when it has a channel of its own or none."""
        ch = self.markers.get(marker)
        return [m for m, c in self.markers.items() if m != marker and ch is not None and c == ch]

    @property
    def combined_cd16_cd56(self) -> bool:
        """True when CD16 and CD56 share one channel (TBNK kits)."""
        return self.markers.get("CD16") is not None and self.markers.get(
            "CD16"
        ) == self.markers.get("CD56")


@dataclass(frozen=True)
class _Label:
    pnn: str
    pns: str
    whole: frozenset[str]  # normalised $PnS and $PnN
    pns_words: frozenset[str]
    pnn_words: frozenset[str]


def _labels(sample: FlowSample) -> list[_Label]:
    return [
        _Label(
            c.pnn,
            c.pns,
            frozenset(x for x in (normalise_label(c.pns), normalise_label(c.pnn)) if x),
            frozenset(_words(c.pns)),
            frozenset(_words(c.pnn)),
        )
        for c in sample.channels
    ]


def _match_marker(aliases: Iterable[str], labels: Sequence[_Label]) -> list[str]:
    """Channels whose label carries one of ``aliases``, from the first level that has any."""
    raw = set(aliases)
    wanted = {normalise_label(a) for a in raw} - {""}
    levels: tuple[Callable[[_Label], bool], ...] = (
        lambda lab: lab.pnn in raw or bool(lab.whole & wanted),
        lambda lab: bool(lab.pns_words & wanted),
        lambda lab: bool(lab.pnn_words & wanted),
    )
    for hit in levels:
        hits = [lab.pnn for lab in labels if hit(lab)]
        if hits:
            return hits
    return []


#: a detector's pulse readouts in $PnN: area, height, width (``FITC-A``, ``FITC-H``)
_READOUT = re.compile(r"^(?P<detector>.+)-(?P<readout>[AHW])$")


def _area_of_one_detector(hits: list[str]) -> list[str]:
    """The area readout alone where ``hits`` are one detector's area and height (or width)
    readouts, as a cytometer recording heights writes them: fluorescence is measured as the
    pulse's area, the readout its spillover matrix is written for; else ``hits``."""
    parts = [_READOUT.match(h) for h in hits]
    if len(hits) < 2 or not all(parts) or len({m["detector"] for m in parts if m}) > 1:
        return hits
    area = [h for h, m in zip(hits, parts, strict=True) if m and m["readout"] == "A"]
    return area if len(area) == 1 else hits


def _match_channel(aliases: Sequence[str], labels: Sequence[_Label]) -> list[str]:
    """Scatter/time: the first alias, in table order, equal to a whole $PnN (then $PnS)."""
    for alias in aliases:
        want = normalise_label(alias)
        for which in ("pnn", "pns"):
            hits = [
                lab.pnn
                for lab in labels
                if lab.pnn == alias or normalise_label(getattr(lab, which)) == want
            ]
            if hits:
                return hits
    return []


def _describe(labels: Sequence[_Label], only: Sequence[str] | None = None) -> str:
    return ", ".join(
        lab.pnn + (f" [{lab.pns}]" if lab.pns else "")
        for lab in labels
        if only is None or lab.pnn in only
    )


def _by_channel(found: Mapping[str, str]) -> dict[str, list[str]]:
    """The markers of ``found`` (marker → channel) grouped by their channel."""
    on: dict[str, list[str]] = {}
    for name, channel in found.items():
        on.setdefault(channel, []).append(name)
    return on


def _refuse_one_mapped_onto_another(
    found: Mapping[str, str],
    overridden: Mapping[str, tuple[()]],
    labels: Sequence[_Label],
    source: str | Path | None,
) -> None:
    """Refuse a marker mapped by hand onto the channel another marker is on (``--marker
    CD56=PE-A`` where PE-A is "CD16 PE"): the analysis would take CD16 and CD56 for a shared
    CD16+56 channel and report without a word (NK % 1.2 points low in audit 17), and any other
    two markers on one channel make no panel. CD16 and CD56 may share a channel where both were
    mapped by hand (a cocktail labelled with one name) or neither was (a "CD16+56" label)."""
    cocktail = {normalise_label(m) for m in ("CD16", "CD56")}
    for channel, names in _by_channel(found).items():
        by_hand = [n for n in names if _find_key(overridden, n)]
        if len(names) < 2 or not by_hand:
            continue
        pair = {normalise_label(n) for n in names} == cocktail
        if pair and len(by_hand) == len(names):
            continue
        other = next(
            (n for n in names if n not in by_hand), next(n for n in names if n != by_hand[0])
        )
        hint = (
            f"; if that channel holds both (a {COMBINED_CD16_CD56} cocktail), map both: "
            f"--marker {other}={channel} --marker {by_hand[0]}={channel}"
            if pair
            else ": one channel carries one marker"
        )
        raise MarkerError(
            source,
            f"the mapping {by_hand[0]} = {channel} (--marker, or markers in a case manifest) "
            f"puts {by_hand[0]} on the channel that carries {other} "
            f"({_describe(labels, [channel])}){hint}",
        )


def _refuse_one_aliased_onto_another(
    found: Mapping[str, str],
    overridden: Mapping[str, tuple[()]],
    labels: Sequence[_Label],
    source: str | Path | None,
    table: AliasTable,
) -> None:
    """Refuse two markers on one channel where a lab's alias file put one of them there and
    the channel's label names only the other: ``CD56 = ["CD16"]`` (a typo for the lab's own
    CD56 name) made a panel with its own CD56 channel a CD16+56 one, NK-like T 0.96% for 4.13,
    reportable; the same mistake on the command line is refused (audit 33). A label that names
    both (a CD16+56 cocktail, a CD3/CD19 dump) matches both by the bundled table; a lab file
    may say so itself, with a "CD16+56" entry or with both markers' entries naming the label
    (review 34), as both may be mapped on the command line."""
    bundled = _bundled_aliases()
    combined = bundled.aliases_for(COMBINED_CD16_CD56)[0]

    def own(name: str) -> tuple[str, ...]:  # the lab file's own aliases of ``name``
        mine = table.aliases_for(name)[0]
        return tuple(a for a in mine if a not in bundled.aliases_for(name)[0])

    by_file = {n: ch for n, ch in found.items() if not _find_key(overridden, n)}
    for channel, names in _by_channel(by_file).items():
        if len(names) < 2:
            continue
        label = [lab for lab in labels if lab.pnn == channel]
        pair = {normalise_label(n) for n in names} == {"cd16", "cd56"}
        if (pair and _match_marker(own(COMBINED_CD16_CD56), label)) or all(
            _match_marker(own(n), label) for n in names
        ):
            continue  # the lab's file puts both there on purpose
        named = [
            n
            for n in names
            if _match_marker(bundled.aliases_for(n)[0], label)
            or (normalise_label(n) in ("cd16", "cd56") and _match_marker(combined, label))
        ]
        if named and len(named) < len(names):
            alien = next(n for n in names if n not in named)
            raise MarkerError(
                source,
                f"the alias file (--aliases) puts {alien} on {_describe(labels, [channel])}, "
                f"whose label names {', '.join(named)}: one channel carries one marker; check "
                f"the file's {alien} entry",
            )


def resolve_markers(
    sample: FlowSample,
    required: Sequence[str],
    *,
    optional: Sequence[str] = (),
    aliases: AliasTable | None = None,
) -> MarkerMap:
    """Map each marker (and scatter/time channel) to the $PnN of the channel that carries it.

    Parameters
    ----------
    sample
        The sample whose channels are searched.
    required
        Markers or channels the analysis cannot run without, e.g. ``("CD3", "CD56")``.
        ``CD56`` and ``CD16`` fall back to a shared ``CD16+56`` channel.
    optional
        Markers used when present (e.g. ``CD19``, ``FSC-H``).
    aliases
        The table to use; the bundled one by default.

    Returns
    -------
    MarkerMap
        Keyed by the names asked for, exactly as given.

    Raises
    ------
    MarkerError
        A required marker is on no channel, or any marker is on more than one: the message
        names the file, the markers wanted and the channels found.

    Examples
    --------
    >>> s = FlowSample.from_array([[0.0, 0.0]], ["FL1-A", "FL2-A"], pns=["CD3 FITC", "CD16+56 PE"])
    >>> m = resolve_markers(s, ["CD3", "CD56", "CD16"])
    >>> m.channel_for("CD3"), m.channel_for("CD56"), m.combined_cd16_cd56
    ('FL1-A', 'FL2-A', True)
    """
    table = aliases or load_aliases()
    labels = _labels(sample)
    found_m: dict[str, str] = {}
    found_c: dict[str, str] = {}
    missing: list[str] = []
    for name in dict.fromkeys((*required, *optional)):
        alias_list, is_channel = table.aliases_for(name)
        if is_channel:
            hits = _match_channel(alias_list, labels)
        else:
            hits = _match_marker(alias_list, labels)
            if not hits and normalise_label(name) in ("cd16", "cd56"):
                combined, _ = table.aliases_for(COMBINED_CD16_CD56)
                hits = _match_marker(combined, labels)
            hits = _area_of_one_detector(hits)
        if len(hits) == 1:
            (found_c if is_channel else found_m)[name] = hits[0]
        elif len(hits) > 1:
            raise MarkerError(
                sample.source,
                f"marker {name} matches several channels: {_describe(labels, hits)}; "
                f"choose one with --marker {name}=LABEL",
            )
        elif name in required:
            missing.append(name)
    overridden = {k: () for k in table.overridden}
    _refuse_one_mapped_onto_another(found_m, overridden, labels, sample.source)
    if table is not _bundled_aliases():
        _refuse_one_aliased_onto_another(found_m, overridden, labels, sample.source, table)
    mapped = [m for m in missing if _find_key(overridden, m)]
    if mapped:
        name = mapped[0]
        label = table.aliases_for(name)[0][0]
        raise MarkerError(
            sample.source,
            f"the mapping {name} = {label!r} (--marker, or markers in a case manifest) matches "
            f"no channel; channels are: {_describe(labels)}",
        )
    if missing:
        raise MarkerError(
            sample.source,
            f"required marker(s) {', '.join(missing)} not found; wanted "
            f"{', '.join(required)}; channels are: {_describe(labels)}; "
            f"map one with --marker {missing[0]}=LABEL (in a case manifest: markers = "
            f'{{{missing[0]} = "LABEL"}})' + (f"; {_foreign_note(table)}" if table.foreign else ""),
        )
    notes = _labels_naming_others(found_m, labels, table)
    if table.foreign:
        notes += (_foreign_note(table),)
    return MarkerMap(found_m, found_c, sample.source, notes)


def _foreign_note(table: AliasTable) -> str:
    """What a lab alias file's unknown keys mean (audit 33: "NCAM" for CD56 and "SSC" for
    SSC-A were passed over without a word)."""
    keys, known = ", ".join(table.foreign), _bundled_aliases()
    return (
        f"the alias file's key(s) {keys} name no marker or channel of the NK analysis "
        f"(markers: {', '.join(known.markers)}; channels: {', '.join(known.channels)}): "
        "their aliases serve only a lab template that names them"
    )


_CD_WORD = re.compile(r"cd\d+[a-z]?")


def _labels_naming_others(
    found: Mapping[str, str], labels: Sequence[_Label], table: AliasTable
) -> tuple[str, ...]:
    """Notes on channels taken for a marker whose stain label ($PnS) does not name it but names
    another CD marker: $PnN "CD3" with $PnS "CD8 FITC" was used as CD3 without a word
    (audit 33); if the stain is the truth (a $PnN left from another panel), NK is CD8- CD56+."""
    notes = []
    for name, channel in found.items():
        label = next((lab for lab in labels if lab.pnn == channel), None)
        if label is None or not label.pns.strip():
            continue
        # the stain label alone, as a channel of its own
        stain = [
            _Label(
                "", label.pns, frozenset({normalise_label(label.pns)}), label.pns_words, frozenset()
            )
        ]
        own = (*table.aliases_for(name)[0], *_bundled_aliases().aliases_for(name)[0])
        if _match_marker(own, stain):
            continue  # (a --marker mapping replaces the table's aliases: the bundled ones too)
        others = sorted(
            {w.upper() for w in label.pns_words if _CD_WORD.fullmatch(w)}
            - {normalise_label(name).upper()}
        )
        if others:
            notes.append(
                f"{channel} is taken for {name} by its name, but its stain label "
                f"{label.pns!r} names {', '.join(others)}: check the panel"
            )
    return tuple(notes)
