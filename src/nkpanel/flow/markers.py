"""Finding the markers of an NK panel on a file's channels.

Instruments and kits name the same antigen in many ways ($PnS "CD56 PE", "141Pr_CD56", "Leu-19",
a TBNK kit's shared "CD16+56" channel). :func:`resolve_markers` maps each marker nkpanel needs to
one channel through an alias table the lab can extend, and fails loudly, naming the file, the
markers wanted and the labels found, rather than counting zero cells.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from nkpanel.errors import ConfigError, MarkerError
from nkpanel.flow.sample import FlowSample

__all__ = ["AliasTable", "MarkerMap", "load_aliases", "normalise_label", "resolve_markers"]

_SPLIT = re.compile(r"[\s_:|/()\[\],;]+")
_STRIP = re.compile(r"[\s\-_.·]+")
COMBINED_CD16_CD56 = "CD16+56"


def normalise_label(text: str) -> str:
    """Case-fold and drop separators: ``"Leu-19"`` → ``"leu19"``, ``"FcγRIII"`` → ``"fcgriii"``."""
    return _STRIP.sub("", text.replace("γ", "g").replace("Γ", "g")).casefold()


def _candidates(label: str) -> list[str]:
    """The whole label, each word and each pair of adjacent words, normalised."""
    words = [w for w in _SPLIT.split(label.strip()) if w]
    sub = [s for w in words for s in w.split("-") if s]
    out = [normalise_label(label)]
    for seq in (words, sub):
        out += [normalise_label(w) for w in seq]
        out += [normalise_label(a + b) for a, b in itertools.pairwise(seq)]
    return [c for c in dict.fromkeys(out) if c]


@dataclass(frozen=True)
class AliasTable:
    """Marker name → aliases, and scatter/time channel name → aliases."""

    markers: Mapping[str, tuple[str, ...]]
    channels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def merged(self, other: AliasTable) -> AliasTable:
        """This table extended by ``other`` (aliases appended, new markers added)."""
        markers = {k: tuple(v) for k, v in self.markers.items()}
        for k, v in other.markers.items():
            markers[k] = tuple(dict.fromkeys((*markers.get(k, ()), *v)))
        channels = {k: tuple(v) for k, v in self.channels.items()}
        for k, v in other.channels.items():
            channels[k] = tuple(dict.fromkeys((*channels.get(k, ()), *v)))
        return AliasTable(markers, channels)

    def with_overrides(self, overrides: Mapping[str, str]) -> AliasTable:
        """Put a lab's own channel label first for each marker (``--marker CD56=NK1.1``)."""
        markers = dict(self.markers)
        channels = dict(self.channels)
        for marker, label in overrides.items():
            target = channels if marker in channels else markers
            target[marker] = (label,)
        return AliasTable(markers, channels)


def _parse_table(data: Mapping[str, object], source: str) -> AliasTable:
    def section(name: str) -> dict[str, tuple[str, ...]]:
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: [{name}] must be a table of lists")
        out: dict[str, tuple[str, ...]] = {}
        for key, val in raw.items():
            if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
                raise ConfigError(f"{source}: [{name}] {key} must be a list of strings")
            out[str(key)] = tuple(val)
        return out

    return AliasTable(section("markers"), section("channels"))


def load_aliases(path: str | Path | None = None) -> AliasTable:
    """The bundled alias table, extended by a lab's TOML file when ``path`` is given."""
    bundled = resources.files("nkpanel.flow").joinpath("aliases.toml").read_text("utf-8")
    table = _parse_table(tomllib.loads(bundled), "bundled aliases.toml")
    if path is None:
        return table
    p = Path(path)
    try:
        extra = tomllib.loads(p.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    return table.merged(_parse_table(extra, str(p)))


@dataclass(frozen=True)
class MarkerMap:
    """Which channel ($PnN) carries each marker and each scatter/time parameter."""

    markers: Mapping[str, str]
    channels: Mapping[str, str]
    source: str = ""

    def channel_for(self, marker: str) -> str:
        if marker in self.markers:
            return self.markers[marker]
        if marker in self.channels:
            return self.channels[marker]
        raise MarkerError(self.source, f"marker {marker} was not resolved")

    def has(self, marker: str) -> bool:
        return marker in self.markers or marker in self.channels

    @property
    def combined_cd16_cd56(self) -> bool:
        """True when CD16 and CD56 share one channel (TBNK kits)."""
        return self.markers.get("CD16") is not None and self.markers.get(
            "CD16"
        ) == self.markers.get("CD56")


def _match(aliases: Iterable[str], labels: Sequence[tuple[str, str]]) -> list[str]:
    """Channels (pnn) whose label matches an alias; $PnS is tried before $PnN."""
    wanted = {normalise_label(a) for a in aliases}
    for which in (1, 0):  # pns first, then pnn
        hits = [
            pnn
            for pnn, pns in (lab for lab in labels)
            if set(_candidates((pnn, pns)[which])) & wanted
        ]
        if hits:
            return list(dict.fromkeys(hits))
    return []


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

    Raises
    ------
    MarkerError
        A required marker is on no channel, or on more than one: the message names the file,
        the markers wanted and the labels found.
    """
    table = aliases or load_aliases()
    labels = [(c.pnn, c.pns) for c in sample.channels]
    found_m: dict[str, str] = {}
    found_c: dict[str, str] = {}
    missing: list[str] = []
    for name in (*required, *optional):
        is_channel = name in table.channels
        alias_list = (table.channels if is_channel else table.markers).get(name, (name,))
        hits = _match(alias_list, labels)
        if not hits and name in ("CD16", "CD56"):
            hits = _match(table.markers.get(COMBINED_CD16_CD56, ()), labels)
        if len(hits) > 1 and not is_channel:
            # a marker named on two channels: prefer an exact stain label
            exact = [
                h
                for h in hits
                if normalise_label(dict(labels)[h]) in map(normalise_label, alias_list)
            ]
            hits = exact if len(exact) == 1 else hits
        if len(hits) > 1 and is_channel:
            exact = [h for h in hits if h in alias_list]
            hits = exact[:1] if exact else hits[:1]
        if len(hits) == 1:
            (found_c if is_channel else found_m)[name] = hits[0]
        elif len(hits) > 1:
            raise MarkerError(
                sample.source,
                f"marker {name} matches several channels ({', '.join(hits)}); "
                f"choose one with --marker {name}=LABEL",
            )
        elif name in required:
            missing.append(name)
    if missing:
        seen = ", ".join(f"{pnn}" + (f" [{pns}]" if pns else "") for pnn, pns in labels)
        raise MarkerError(
            sample.source,
            f"required marker(s) {', '.join(missing)} not found; wanted {', '.join(required)}; "
            f"channels are: {seen}",
        )
    return MarkerMap(found_m, found_c, sample.source)
