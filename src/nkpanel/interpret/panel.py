"""A whole case read at once: every result interpreted, the trends across earlier episodes, the
relevant evidence, and the case-level comments a report opens with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nkpanel._toml import used_twice
from nkpanel.errors import InputError
from nkpanel.interpret.concordance import DISAGREE, samples_disagree
from nkpanel.interpret.evidence import EvidenceStatement, load_evidence, select_evidence
from nkpanel.interpret.flags import Interpretation, InterpretSettings, interpret_measurement
from nkpanel.interpret.intervals import IntervalSet, load_intervals
from nkpanel.interpret.measurements import SOURCE, Episode, Failure, read_episode, time_order
from nkpanel.interpret.serial import Trend, serial_notes, trends

__all__ = ["CaseInterpretation", "guideline_comment", "interpret_case"]


@dataclass(frozen=True)
class CaseInterpretation:
    """Everything a report of one episode needs, read from its case summary."""

    episode: Episode
    history: tuple[Episode, ...]
    results: tuple[Interpretation, ...]
    failures: tuple[Failure, ...]
    trends: tuple[Trend, ...]
    evidence: tuple[EvidenceStatement, ...]
    intervals: IntervalSet
    settings: InterpretSettings
    comments: tuple[str, ...]
    serial_notes: tuple[str, ...] = ()
    patient_serial_notes: tuple[str, ...] = ()

    @property
    def caveat_codes(self) -> set[str]:
        return {c.code for r in self.results for c in r.caveats}


def _comments(
    results: Sequence[Interpretation],
    failures: Sequence[Failure],
    evidence: Sequence[EvidenceStatement],
) -> list[str]:
    out = []
    failed = [r for r in results if r.flag == "not_interpreted"]
    if failed or failures:
        n = len(failed) + len(failures)
        out.append(
            f"{n} result(s) or file(s) did not pass quality control and are not interpreted; "
            "the results table gives each reason."
        )
    if any(r.near_limit is not None for r in results):
        out.append(
            "One or more results lie within measurement uncertainty of a limit: repeat the "
            "measurement rather than act on it."
        )
    if any(c.code == DISAGREE for r in results for c in r.caveats):
        out.append(
            "Samples of one specimen disagree beyond their measurement uncertainty (the results "
            "table names them): check the samples' identity and staining before using them."
        )
    if any(r.flag in ("above", "below") for r in results):
        out.append(
            "A result outside an interval says where the value lies against a reference "
            "population or a clinic cutoff; it is not a diagnosis, and NK results have not been "
            "shown to predict pregnancy outcome (see the evidence panel)."
        )
    if any(c.code == "acute-exposure" for r in results for c in r.caveats):
        out.append(
            "Stress, exercise or adrenaline shortly before the draw can raise NK cells in blood "
            "for up to 1–2 h: repeat the draw at rest before drawing conclusions."
        )
    if (said := guideline_comment(evidence)) is not None:
        out.append(said)
    out.append(
        "This report gives measurements, their quality and where they lie against stated "
        "intervals, with the state of the evidence; clinical decisions rest with the treating "
        "clinician."
    )
    return out


def guideline_comment(evidence: Sequence[EvidenceStatement]) -> str | None:
    """The guidelines' position for the first page, not only in the evidence panel near the
    end of the report (audit 19: page 12 of 14): the chosen guideline statements of the
    evidence file, quoted, so that the comment says what the sourced statements say and
    follows a lab's file. Quoted, they are the bodies' words, held to the wording rules with
    their attribution when the file loads (they may report a body's recommendation)."""
    quoted = [s.text for s in evidence if s.topic == "guideline"]
    return " ".join(quoted) + " (Sources: the evidence panel.)" if quoted else None


class EpisodeIdentity(Protocol):
    """Who and when an episode is: what :func:`check_history` compares."""

    @property
    def episode_id(self) -> str: ...
    @property
    def patient_id(self) -> str: ...
    @property
    def collected(self) -> dt.datetime | None: ...


def check_history(
    episode: EpisodeIdentity,
    earlier: Sequence[EpisodeIdentity],
    sources: Sequence[str | Path] | None = None,
) -> None:
    """Refuse history that would put another patient's, or a later, result in the serial view,
    or one episode twice. ``sources`` names each earlier episode's file for the message
    (``nkpanel run`` checks before any work; the report checks again).

    Raises
    ------
    InputError
        Naming the history file (else the case summary) and the rule broken.
    """
    where_from = list(sources) if sources is not None else [SOURCE] * len(earlier)
    ids = [h.episode_id for h in earlier]
    if twice := used_twice(ids):
        again = where_from[max(i for i, e in enumerate(ids) if e in twice)]
        raise InputError(again, f"history episode(s) given twice: {', '.join(twice)}")
    for h, source in zip(earlier, where_from, strict=True):
        where = f"history episode {h.episode_id}"
        if h.patient_id != episode.patient_id:
            raise InputError(
                source,
                f"{where} is of patient {h.patient_id}, not {episode.patient_id}: a serial view "
                "compares one patient's episodes only",
            )
        if h.episode_id == episode.episode_id:
            raise InputError(source, f"{where} is the episode being reported, not an earlier one")
        then, now = h.collected, episode.collected
        if then is not None and now is not None and time_order(then) >= time_order(now):
            # the same time too (audit 19: an episode of the same minute was shown as a change)
            when = "after" if time_order(then) > time_order(now) else "at the same time as"
            raise InputError(
                source,
                f"{where} was collected {then:%Y-%m-%d}, {when} this episode "
                f"({now:%Y-%m-%d}): history holds earlier episodes only",
            )


def _losses(indication: Mapping[str, Any]) -> int | None:
    """The pregnancy losses an episode's indication records (None when it records none)."""
    n = indication.get("pregnancy_losses")
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def interpret_case(
    summary: Mapping[str, Any],
    *,
    history: Sequence[Mapping[str, Any]] = (),
    intervals: IntervalSet | None = None,
    intervals_path: Path | None = None,
    evidence: Sequence[EvidenceStatement] | None = None,
    settings: InterpretSettings | None = None,
) -> CaseInterpretation:
    """Interpret a case summary (and earlier episodes' summaries, for trends).

    Parameters
    ----------
    summary
        The case summary JSON as written by ``nkpanel run`` / ``nkpanel demo``.
    history
        Earlier episodes' case summaries of the same patient, any order.
    intervals, intervals_path
        An :class:`IntervalSet`, or a lab file to load on top of the bundled intervals.
    evidence
        Statements to choose from (default: the bundled evidence file).
    settings
        Coverage factor and analytical-CV overrides.

    Raises
    ------
    InputError
        A malformed summary (the message names the field), or a history episode of another
        patient, the same episode again, or one collected after this one.
    ConfigError
        An invalid interval or evidence file.
    """
    settings = settings or InterpretSettings()
    ivs = intervals or load_intervals(intervals_path)
    statements = list(evidence) if evidence is not None else load_evidence()
    episode = read_episode(summary)
    earlier = tuple(read_episode(h) for h in history)
    check_history(episode, earlier)
    results = samples_disagree(
        [interpret_measurement(m, ivs, settings, episode.age_years) for m in episode.measurements]
    )
    series = tuple(trends(episode, earlier, ivs, settings))
    notes, patient_notes = serial_notes(series)
    caveat_codes = {c.code for r in results for c in r.caveats}
    chosen = select_evidence(
        statements,
        measured={r.measurement.code for r in results},
        flagged={r.measurement.code for r in results if r.flagged},
        raised={r.measurement.code for r in results if r.raised},
        caveats=caveat_codes,
        on_treatment=any(r.measurement.pre_analytic.on_treatment for r in results),
        pregnancy_losses=_losses(episode.indication),
    )
    return CaseInterpretation(
        episode=episode,
        history=earlier,
        results=results,
        failures=episode.failures,
        trends=series,
        evidence=tuple(chosen),
        intervals=ivs,
        settings=settings,
        comments=tuple(_comments(results, episode.failures, chosen)),
        serial_notes=tuple(notes),
        patient_serial_notes=tuple(patient_notes),
    )
