"""The ``[[endometrial]]`` table of a case manifest, and running it for the case pipeline.

Example::

    [[endometrial]]
    id = "biopsy-1"
    collected = 2026-11-20
    lh_day = 7                      # LH+7; or cycle_day = 21
    images = ["uterine/cd56_field01.tif", "uterine/cd56_field02.tif"]   # relative to the manifest
    pixel_size_um = 0.25            # µm per pixel: used over what the files say (give it only
                                    # when they say nothing, or say it wrongly)
    regions = ["uterine/cd56_field01.geojson", "uterine/cd56_field02.geojson"]  # optional
    positive_threshold_od = 0.2     # QuPath units (DAB OD); the lab's own setting
    dab_background_um = 24          # DAB judged above the stroma's own; 0: QuPath's rule

Timing: uNK rise steeply after LH+7, so a biopsy is read against the mid-luteal window
LH+7 to LH+9 (cycle day 19–23 of a 28-day cycle); outside it the summary says so
(domain brief §3; Moffett 2004; Lash et al. 2016).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nkpanel.interpret.preanalytic import lh_label
from nkpanel.uterine import options

__all__ = ["EndometrialBiopsy", "biopsy_timing", "run_biopsy_for_case"]

#: the mid-luteal window for uNK counts: LH+7 to LH+9, cycle day 19–23 (28-day cycle)
LH_WINDOW = (7, 9)
CYCLE_DAY_WINDOW = (19, 23)


class EndometrialBiopsy(BaseModel):
    """One endometrial biopsy: its CD56 images and what is needed to read them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default="biopsy-1", min_length=1, max_length=64)
    collected: dt.date | dt.datetime | None = None
    lh_day: int | None = Field(default=None, ge=-5, le=20, description="days after the LH surge")
    cycle_day: int | None = Field(default=None, ge=1, le=60, description="day of the cycle")
    images: tuple[Path, ...] = Field(min_length=1)
    pixel_size_um: float | None = Field(default=None, gt=0, le=50)
    regions: tuple[Path, ...] = ()
    stains: options.Stains = options.STAINS
    qupath_stains: str | None = None
    positive_threshold_od: float = Field(default=options.POSITIVE_THRESHOLD_OD, gt=0, le=3)
    compartment: options.Compartment = options.COMPARTMENT
    #: blocks of the stroma's own DAB background, µm (nkpanel.uterine.detect, step 10); 0 judges
    #: cells on their DAB alone, as QuPath does
    dab_background_um: float = Field(default=options.DAB_BACKGROUND_UM, ge=0, le=500)
    n_fields: int = Field(default=options.N_FIELDS, ge=1, le=100)
    field_diameter_um: float = Field(default=options.FIELD_DIAMETER_UM, ge=50, le=5000)
    seed: int = options.SEED
    #: the glass colour, 8-bit RGB, for fields without glass (default: estimated per image)
    white_point: tuple[float, float, float] | None = None
    notes: str = ""

    @field_validator("images", "regions", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("white_point")
    @classmethod
    def _glass_colour(
        cls, v: tuple[float, float, float] | None
    ) -> tuple[float, float, float] | None:
        from nkpanel.uterine.stains import is_glass_colour

        if v is not None and not is_glass_colour(v):
            raise ValueError("give three numbers 1-255, the glass colour in 8-bit RGB")
        return v

    @model_validator(mode="after")
    def _regions_match(self) -> EndometrialBiopsy:
        if self.regions and len(self.regions) not in (1, len(self.images)):
            raise ValueError(
                f"regions: {len(self.regions)} file(s) for {len(self.images)} image(s); give one "
                "per image, or one folder"
            )
        return self


def biopsy_timing(biopsy: EndometrialBiopsy) -> dict[str, Any]:
    """Whether the biopsy lies in the mid-luteal window the reference ranges assume."""
    if biopsy.lh_day is not None:
        lo, hi = LH_WINDOW
        inside = lo <= biopsy.lh_day <= hi
        day = lh_label(biopsy.lh_day)
        window = f"LH+{lo} to LH+{hi}"
    elif biopsy.cycle_day is not None:
        lo, hi = CYCLE_DAY_WINDOW
        inside = lo <= biopsy.cycle_day <= hi
        day = f"cycle day {biopsy.cycle_day}"
        window = f"cycle day {lo}–{hi} (28-day cycle)"
    else:
        return {
            "lh_day": None,
            "cycle_day": None,
            "in_mid_luteal_window": None,
            "note": "biopsy timing not given: the result cannot be read against an LH+7 range",
        }
    note = (
        f"{day}: inside the mid-luteal window ({window})"
        if inside
        else f"{day}: outside the mid-luteal window ({window}); uNK density changes steeply "
        "across the luteal phase, so an LH+7 reference range does not apply"
    )
    return {
        "lh_day": biopsy.lh_day,
        "cycle_day": biopsy.cycle_day,
        "in_mid_luteal_window": inside,
        "note": note,
    }


def run_biopsy_for_case(biopsy: EndometrialBiopsy, base_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Analyse a biopsy's images into ``out_dir`` and return a JSON-ready summary.

    Paths in the biopsy are relative to ``base_dir`` (the manifest's folder). A bad image is
    listed under ``failures`` and the others still run.

    Raises
    ------
    ConfigError
        Invalid stain vectors or regions that do not match the images.
    """
    from nkpanel.uterine.batch import analyze_batch, gather_images

    def resolve(p: Path) -> Path:
        return p if p.is_absolute() else base_dir / p

    images, regions, notes = gather_images(
        [resolve(p) for p in biopsy.images], [resolve(p) for p in biopsy.regions]
    )
    settings = options.uterine_settings(
        stains=biopsy.stains,
        qupath_stains=biopsy.qupath_stains,
        positive_threshold_od=biopsy.positive_threshold_od,
        compartment=biopsy.compartment,
        dab_background_um=biopsy.dab_background_um,
        n_fields=biopsy.n_fields,
        field_diameter_um=biopsy.field_diameter_um,
        seed=biopsy.seed,
        white_point=biopsy.white_point,
    )
    batch = analyze_batch(
        images,
        out_dir,
        settings,
        pixel_size_um=biopsy.pixel_size_um,
        regions=regions,
        sample=biopsy.id,
    )
    pooled = batch.summary()
    return {
        "id": biopsy.id,
        "collected": biopsy.collected.isoformat() if biopsy.collected else None,
        "timing": biopsy_timing(biopsy),
        "synthetic": batch.pooled.synthetic if batch.pooled is not None else False,
        "uterine": pooled["biopsy"],
        "images": pooled["images"],
        "failures": pooled["failures"],
        # how the manifest's images were read (a folder's images; an image listed twice)
        "notes": notes,
        # image folders an earlier run into this folder left (named, never removed)
        "earlier_image_folders": pooled["earlier_image_folders"],
        "outputs": str(out_dir),
        # the review overlays a report shows (absolute paths)
        "figures": [str(p.resolve()) for p in batch.overlays],
    }
