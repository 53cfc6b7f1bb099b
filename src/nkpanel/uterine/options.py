"""The options a lab sets for a CD56 count, their defaults, and the settings built from them.

The command line (``nkpanel uterine analyze``) and a case manifest's ``[[endometrial]]`` table
(:class:`~nkpanel.uterine.manifest.EndometrialBiopsy`) take the same options; each default is
stated here once, and :class:`~nkpanel.uterine.detect.DetectionSettings` and
:class:`~nkpanel.uterine.analyze.UterineSettings` take the same values as theirs.
:func:`uterine_settings` builds the settings both analyse with. Nothing here imports numpy:
the command line reads these defaults when it starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from nkpanel.uterine.analyze import UterineSettings

__all__ = [
    "COMPARTMENT",
    "DAB_BACKGROUND_UM",
    "FIELD_DIAMETER_UM",
    "N_FIELDS",
    "POSITIVE_THRESHOLD_OD",
    "SEED",
    "STAINS",
    "Compartment",
    "Stains",
    "uterine_settings",
]

Stains = Literal["ruifrok", "estimated"]
Compartment = Literal["cytoplasm", "cell", "nucleus"]

#: stain vectors: the standard Ruifrok H-DAB ones, so that QuPath's OD scale and thresholds
#: carry over (``"estimated"``: Macenko's, per image, when sane)
STAINS: Stains = "ruifrok"
#: CD56+ threshold: mean DAB OD of the compartment above the stroma's own (QuPath units)
POSITIVE_THRESHOLD_OD = 0.2
#: where a cell's DAB is measured: CD56 is a membrane antigen
COMPARTMENT: Compartment = "cytoplasm"
#: blocks (µm) of the stroma's own DAB background cells are judged above (0: on their DAB
#: alone, QuPath's rule; :mod:`nkpanel.uterine.detect`, step 10)
DAB_BACKGROUND_UM = 24.0
#: random ×400 fields per whole slide and their diameter (µm; Lash et al. 2016)
N_FIELDS = 10
FIELD_DIAMETER_UM = 550.0
#: seed of the random choice of fields
SEED = 0


def uterine_settings(
    *,
    stains: Stains,
    qupath_stains: str | None,
    positive_threshold_od: float,
    compartment: Compartment,
    dab_background_um: float,
    n_fields: int,
    field_diameter_um: float,
    seed: int,
    white_point: str | tuple[float, float, float] | None,
) -> UterineSettings:
    """The settings a count runs with, from the options a lab sets (every other setting at
    its default).

    Parameters
    ----------
    qupath_stains
        Stain vectors as QuPath's ``setColorDeconvolutionStains`` argument; they override
        ``stains``. None or empty: none given.
    white_point
        The glass colour, 8-bit RGB: as the command line gives it (``"242,240,236"``) or as
        three numbers; None to estimate it from each image.

    Raises
    ------
    ConfigError
        Detection settings out of range; stain vectors or a white point that cannot be read.
    """
    from nkpanel.uterine.analyze import UterineSettings
    from nkpanel.uterine.detect import DetectionSettings
    from nkpanel.uterine.stains import parse_qupath_stains, parse_white_point

    detection = DetectionSettings(
        positive_threshold_od=positive_threshold_od,
        compartment=compartment,
        dab_background_um=dab_background_um,
    )
    stain_vectors = parse_qupath_stains(qupath_stains) if qupath_stains else None
    white = parse_white_point(white_point) if isinstance(white_point, str) else white_point
    return UterineSettings(
        detection=detection,
        stains=stains,
        stain_vectors=stain_vectors,
        n_fields=n_fields,
        field_diameter_um=field_diameter_um,
        seed=seed,
        white_point=white,
    )
