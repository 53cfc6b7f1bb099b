"""What nkpanel must never say: it does not diagnose, and it does not recommend or dose a
treatment. These patterns are checked on nkpanel's own words: the fixed sentences the
interpretation and the report write (by the tests, for every branch), and the text of the data
files those sentences quote (reference intervals, evidence statements, method notes), when a
file loads, so a lab's own files are held to the same rules and a violation is a
:class:`~nkpanel.errors.ConfigError` naming the file and the entry.

Free text from a case (a medication note, a QC reason written by an instrument or an operator)
is not nkpanel's voice: it is quoted as recorded data and never checked, so it can neither be
silently rewritten nor stop a report.

A guideline or counterpoint statement may report a body's recommendation, attributed to that
body ("ESHRE … found insufficient evidence to recommend …"); nkpanel's own voice never does.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["SourceText", "check_wording", "source_problem"]

#: Phrasings that diagnose (name a condition as the patient's).
_DIAGNOSIS = (
    r"\bNK[- ]?(cells?[- ])?mediated\b",
    r"\bdiagnos\w*\s+(of|with)\b",
    r"\b(consistent with|indicative of|suggestive of|confirms?)\b",
    r"\bimmun\w* (cause of|infertility|rejection)\b",
    r"\b(you|the patient|she) (ha[sv]e?|suffers? from) (an? )?\w*\s?(immune|NK)\b",
    r"\b(killer cells?|NK cells?) (are |were )?(attack|reject)\w*",
)
#: treatments, and treatment in general, as a recommendation would name them
_TREATMENT_WORDS = (
    r"prednisolone|steroids?|corticosteroids?|IVIG|intralipid|immunoglobulin|tacrolimus|"
    r"treatment|therapy|immunotherapy|immunomodulat\w*|immunosuppress\w*"
)
#: the same with heparin and aspirin, which are also sample tubes' anticoagulants
_AGENTS = rf"({_TREATMENT_WORDS}|heparin|aspirin)\b"
_TREATMENTS = rf"({_TREATMENT_WORDS})\b"
_NEEDING = r"\b(warrant(s|ed)?|need(s|ed)?|require(s|d)?|merit(s|ed)?)\b[^.]{0,40}\b"
#: Phrasings that prescribe or dose. The last three recommend by outcome or need ("patients
#: above this benefit from IVIG", "elevated levels warrant immunomodulatory therapy": audit
#: 19), refused also when negated: a negation may belong to another part of the sentence
#: ("women with no live birth benefit from IVIG"), and no rule of words tells which (reviews
#: 22, 23); a lab words a negative finding otherwise ("no live-birth benefit was seen"). Need
#: of heparin or aspirin is refused except of a sample tube ("require EDTA or heparin tubes").
_PRESCRIBING = (
    r"\b\d+(\.\d+)?\s?(mg|g|mL|ml|µg|mcg|IU)\b(?!\s?/\s?(mL|ml|L|dL))",
    r"\bmg/kg\b",
    r"\b(dose|doses|dosing|dosage|regimen)\b",
    r"\b(start|begin|commence|initiate|take|give|administer|prescribe\w*)\b[^.]{0,40}\b" + _AGENTS,
    r"\b(is|are) indicated\b",
    r"\bshould (be )?(treated|receive|start|take|have treatment)\b",
    r"\btreatment (is )?(advised|needed|required|warranted)\b",
    r"\bbenefit(s|ed)? from\b[^.]{0,40}\b" + _AGENTS,
    _NEEDING + _TREATMENTS,
    _NEEDING + r"(heparin|aspirin)\b(?!\s+(tubes?|vacutainers?))",
)

#: Recommending in nkpanel's own voice (allowed only when attributed to a named body).
_RECOMMENDING = (r"\brecommend\w*\b", r"\b(we|nkpanel|the laboratory) (advise|suggest)s?\b")

_COMPILED = [(re.compile(p, re.IGNORECASE), "diagnoses") for p in _DIAGNOSIS] + [
    (re.compile(p, re.IGNORECASE), "prescribes or doses") for p in _PRESCRIBING
]
_OWN_VOICE = [re.compile(p, re.IGNORECASE) for p in _RECOMMENDING]


def check_wording(text: str, *, attributed: bool = False) -> list[str]:
    """Return each problem found in ``text`` (empty when it is acceptable).

    Parameters
    ----------
    text
        A sentence or a page of text.
    attributed
        True for a guideline or counterpoint statement that reports a named body's position:
        the word "recommend" is then allowed; diagnosing and dosing never are.

    Examples
    --------
    >>> check_wording("Within the reference interval.")
    []
    >>> check_wording("Start prednisolone 20 mg daily.")[0]
    "prescribes or doses: '20 mg'"
    """
    problems = []
    for pattern, what in _COMPILED:
        m = pattern.search(text)
        if m:
            problems.append(f"{what}: {m.group(0)!r}")
    if not attributed:
        for pattern in _OWN_VOICE:
            m = pattern.search(text)
            if m:
                problems.append(f"recommends in nkpanel's own voice: {m.group(0)!r}")
    return problems


#: texts that stand in for a source without naming one
_PLACEHOLDER_SOURCES = frozenset(
    {"tbd", "tba", "na", "nil", "none", "unknown", "todo", "xxx", "source", "test", "ref"}
)


def source_problem(text: str) -> str | None:
    """Why ``text`` does not name a source (a publication, a laboratory's test or its own
    validation), or None when it may: at least three letters, and not a placeholder such as
    "???", "TBD" or "n/a" (audit 19: "???" was printed as an interval's source).

    >>> source_problem("ARUP Laboratories, test 0092404") is None
    True
    >>> source_problem("n/a")
    "'n/a' names no source (a publication, a laboratory's test or its own validation)"
    """
    core = re.sub(r"[\W_]+", "", text).casefold()
    if sum(ch.isalpha() for ch in text) < 3 or core in _PLACEHOLDER_SOURCES:
        return (
            f"{text!r} names no source (a publication, a laboratory's test or its own validation)"
        )
    return None


def _named_source(text: str) -> str:
    if (why := source_problem(text)) is not None:
        raise ValueError(f"source {why}")
    return text


#: a data file's ``source`` field (an interval's, an analytical CV's, an evidence statement's,
#: a method note's): it must name one (:func:`source_problem`)
SourceText = Annotated[str, AfterValidator(_named_source)]
