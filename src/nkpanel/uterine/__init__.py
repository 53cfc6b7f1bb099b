"""Endometrial (uterine) NK cells on CD56 immunohistochemistry.

CD56+ cells per 100 stromal cells and per mm² of stroma, from field images or whole slides,
with the overlays and QuPath detections a pathologist needs to check every cell counted.

Modules: :mod:`~nkpanel.uterine.images` (reading, pixel size, bad input),
:mod:`~nkpanel.uterine.stains` (colour deconvolution, QuPath OD units, Macenko),
:mod:`~nkpanel.uterine.detect` (cell detection kernel), :mod:`~nkpanel.uterine.tissue`
(tissue, glands and epithelium), :mod:`~nkpanel.uterine.regions` (QuPath GeoJSON),
:mod:`~nkpanel.uterine.fields` (random ×400 fields), :mod:`~nkpanel.uterine.analyze`
(one image, tile by tile), :mod:`~nkpanel.uterine.results` (records, CI across fields),
:mod:`~nkpanel.uterine.output` (overlays, GeoJSON, tables), :mod:`~nkpanel.uterine.batch`
(a biopsy's images), :mod:`~nkpanel.uterine.simulate` (synthetic fields),
:mod:`~nkpanel.uterine.manifest` (the case manifest's ``[[endometrial]]`` table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nkpanel._lazy import lazy_exports

if TYPE_CHECKING:
    from nkpanel.uterine.analyze import UterineAnalysis, UterineSettings, analyze_image
    from nkpanel.uterine.batch import UterineBatch, analyze_batch
    from nkpanel.uterine.detect import CellTable, DetectionSettings, detect_cells
    from nkpanel.uterine.manifest import EndometrialBiopsy, run_biopsy_for_case
    from nkpanel.uterine.results import FieldCount, UterineResult
    from nkpanel.uterine.stains import StainVectors, deconvolve, estimate_macenko, ruifrok_hdab

#: where each public name lives; imported on first use, so that reading a case manifest
#: (``nkpanel.uterine.manifest``) or building the command line does not load SciPy
_HOME = {
    "UterineAnalysis": "analyze",
    "UterineSettings": "analyze",
    "analyze_image": "analyze",
    "UterineBatch": "batch",
    "analyze_batch": "batch",
    "CellTable": "detect",
    "DetectionSettings": "detect",
    "detect_cells": "detect",
    "EndometrialBiopsy": "manifest",
    "run_biopsy_for_case": "manifest",
    "FieldCount": "results",
    "UterineResult": "results",
    "StainVectors": "stains",
    "deconvolve": "stains",
    "estimate_macenko": "stains",
    "ruifrok_hdab": "stains",
}

__all__ = [
    "CellTable",
    "DetectionSettings",
    "EndometrialBiopsy",
    "FieldCount",
    "StainVectors",
    "UterineAnalysis",
    "UterineBatch",
    "UterineResult",
    "UterineSettings",
    "analyze_batch",
    "analyze_image",
    "deconvolve",
    "detect_cells",
    "estimate_macenko",
    "ruifrok_hdab",
    "run_biopsy_for_case",
]


__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
