"""The measurands nkpanel reports: what each is called, its unit, its code, and how it is read.

Codes are nkpanel's own, stable and lower-case (``pnk-pct-lymph``); they key the reference
interval file, the evidence file and the report. A LOINC code is attached only where a code
checked against the LOINC listings (domain brief) names the same population as nkpanel measures.
None does today, so every measurand is coded in nkpanel's local code system, documented by
:data:`LOCAL_CODE_SYSTEM` and shipped as a FHIR CodeSystem in each bundle:

- 107067-1 is "CD19−CD3−CD56+ (NK) cells/100 cells in Blood by flow cytometry": CD56+ cells
  only, CD19 excluded. nkpanel's NK cells are CD3− CD56+ *and/or* CD16+ (CD19− only where CD19
  is stained), which also counts CD56− CD16+ cells, and CD19 is not always in the panel.
- 9728-7, "CD3−CD16+CD56+ (NK) cells [#/volume] in Blood", is used for the NK count: its name
  is the TBNK convention for NK cells, counted in kits with CD16 and CD56 on one fluorochrome
  (BD Multitest, domain brief §1) as CD3− CD16/56+, which is nkpanel's "CD56+ and/or CD16+";
  the domain brief lists it as checked and names it for NK cells/µL.

Each measurand's :attr:`Measurand.loinc_not_used` says why, and the CodeSystem repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["LOCAL_CODE_SYSTEM", "MEASURANDS", "Measurand", "known_codes", "measurand"]

#: URI of nkpanel's local code system for measurands without a checked LOINC code (a URN, so it
#: names no web host; each bundle carries a CodeSystem resource that defines every code).
LOCAL_CODE_SYSTEM = "urn:nkpanel:codesystem:measurand"

Biomarker = Literal["flow", "cytotoxicity", "endometrial"]
Specimen = Literal["blood", "endometrium"]


@dataclass(frozen=True)
class Measurand:
    """One quantity nkpanel reports.

    Attributes
    ----------
    code
        nkpanel's code (also the local code system's code).
    label
        The clinician's name, e.g. ``"NK cells, % of lymphocytes"``.
    unit
        The unit as printed (``"%"``, ``"cells/µL"``).
    ucum
        The UCUM code of ``unit`` (``None`` where UCUM has none, e.g. lytic units).
    decimals
        Reporting precision: values are rounded to it before they are compared with a limit.
    loinc
        A LOINC code checked against the LOINC listings (domain brief) that names the same
        population, else ``None``.
    loinc_not_used
        Why a nearby LOINC code was not used (printed in the local CodeSystem).
    verdict
        False where no validated criterion exists and the report must give the measured value
        only, never below/within/above (IVIG or intralipid suppression; domain brief).
    patient_name, patient_what
        Plain-language name and one-sentence explanation for the patient page.
    """

    code: str
    label: str
    unit: str
    ucum: str | None
    decimals: int
    biomarker: Biomarker
    specimen: Specimen
    loinc: str | None = None
    loinc_display: str | None = None
    loinc_not_used: str = ""
    verdict: bool = True
    patient_name: str = ""
    patient_what: str = ""


_ALL = (
    Measurand(
        "pnk-pct-lymph",
        "NK cells (CD3− CD56+ and/or CD16+), % of lymphocytes",
        "%",
        "%",
        1,
        "flow",
        "blood",
        loinc_not_used="LOINC 107067-1 (CD19-CD3-CD56+ (NK) cells/100 cells in Blood by Flow "
        "cytometry) was not used: it counts CD56+ cells with CD19 excluded, while this measurand "
        "counts CD3- cells that are CD56+ and/or CD16+ (CD19- only where CD19 is stained), so "
        "it also holds CD56- CD16+ cells.",
        patient_name="NK cells in blood, as a share of lymphocytes",
        patient_what="The share of your blood's lymphocytes (a kind of white blood cell) that "
        "are natural killer (NK) cells.",
    ),
    Measurand(
        "pnk-per-ul",
        "NK cells (CD3− CD56+ and/or CD16+), absolute count",
        "cells/µL",
        "/uL",
        0,
        "flow",
        "blood",
        loinc="9728-7",
        loinc_display="CD3-CD16+CD56+ (Natural killer) cells [#/volume] in Blood",
        patient_name="NK cells in blood, number per microlitre",
        patient_what="How many NK cells there are in a microlitre (a millionth of a litre) of "
        "your blood.",
    ),
    Measurand(
        "pnk-cd56bright-pct-nk",
        "CD56bright CD16−/dim NK cells, % of NK cells",
        "%",
        "%",
        1,
        "flow",
        "blood",
        patient_name="CD56-bright NK cells, as a share of NK cells",
        patient_what="A small group of NK cells that mainly make signalling molecules rather "
        "than kill other cells.",
    ),
    Measurand(
        "pnk-cd56dim-pct-nk",
        "CD56dim CD16+ NK cells, % of NK cells",
        "%",
        "%",
        1,
        "flow",
        "blood",
        patient_name="CD56-dim NK cells, as a share of NK cells",
        patient_what="The larger group of NK cells, the ones that can kill other cells.",
    ),
    Measurand(
        "pnk-nklike-t-pct-lymph",
        "NK-like T cells (CD3+ CD56+), % of lymphocytes (reported apart from NK cells)",
        "%",
        "%",
        1,
        "flow",
        "blood",
        patient_name="NK-like T cells, as a share of lymphocytes",
        patient_what="T cells that carry an NK-cell marker; they are counted separately and are "
        "not NK cells.",
    ),
    Measurand(
        "nka-lysis-50-1",
        "NK-cell activity: specific lysis of K562 targets at effector:target 50:1",
        "%",
        "%",
        1,
        "cytotoxicity",
        "blood",
        patient_name="NK-cell activity (killing test)",
        patient_what="In the laboratory, white blood cells from your blood, which include your "
        "NK cells, were mixed with test cells; this is the share of test cells they killed.",
    ),
    Measurand(
        "nka-lu",
        "NK-cell activity: lytic units per 10^7 effector cells",
        "LU/10^7 cells",
        None,
        1,
        "cytotoxicity",
        "blood",
        patient_name="NK-cell activity in lytic units",
        patient_what="Another way of expressing the killing test: how much killing a fixed "
        "number of your cells does, counted in lytic units per 10 million cells (the higher "
        "the number, the more killing).",
    ),
    Measurand(
        "nka-suppression-ivig",
        "NK-cell activity: suppression by IVIG added in vitro",
        "%",
        "%",
        1,
        "cytotoxicity",
        "blood",
        verdict=False,
        patient_name="Change in the killing test when IVIG was added in the laboratory",
        patient_what="How much less killing the NK cells did in the test tube when IVIG (an "
        "antibody product made from donated blood) was added there.",
    ),
    Measurand(
        "nka-suppression-intralipid",
        "NK-cell activity: suppression by intralipid added in vitro",
        "%",
        "%",
        1,
        "cytotoxicity",
        "blood",
        verdict=False,
        patient_name="Change in the killing test when intralipid was added in the laboratory",
        patient_what="How much less killing the NK cells did in the test tube when intralipid "
        "(a fat emulsion that some clinics give by drip) was added there.",
    ),
    Measurand(
        "unk-pct-stroma",
        "Uterine NK cells (CD56+), % of endometrial stromal cells",
        "%",
        "%",
        1,
        "endometrial",
        "endometrium",
        patient_name="NK cells in the lining of the womb",
        patient_what="The share of cells in a small sample of the womb lining (the biopsy) "
        "that are NK cells.",
    ),
    Measurand(
        "unk-per-mm2",
        "Uterine NK cells (CD56+) per mm² of endometrial stroma",
        "cells/mm²",
        "/mm2",
        0,
        "endometrial",
        "endometrium",
        patient_name="NK cells in the lining of the womb, per square millimetre",
        patient_what="How many NK cells were counted in each square millimetre of the womb "
        "lining sample.",
    ),
)

#: Every measurand, by code.
MEASURANDS: dict[str, Measurand] = {m.code: m for m in _ALL}


def measurand(code: str) -> Measurand:
    """The measurand with ``code``.

    Raises
    ------
    KeyError
        With the known codes, when ``code`` is not one of them.
    """
    try:
        return MEASURANDS[code]
    except KeyError:
        raise KeyError(f"unknown measurand {code!r}; known: {', '.join(MEASURANDS)}") from None


def known_codes(codes: tuple[str, ...]) -> tuple[str, ...]:
    """``codes`` when each names a measurand; a ValueError naming the others (the body of the
    data files' pydantic validators)."""
    unknown = [c for c in codes if c not in MEASURANDS]
    if unknown:
        raise ValueError(f"unknown measurand(s) {unknown}; known: {', '.join(MEASURANDS)}")
    return codes
