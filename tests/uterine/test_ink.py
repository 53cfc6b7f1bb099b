"""Marker ink is left out of the tissue: SYNTHETIC fields (nkpanel's simulator) with ink drawn
by Beer–Lambert, truth from construction.

The inks
--------
Each ink is an optical-density vector over the camera's red, green and blue bands (absorbance
per band at unit density), after the absorption of the dye classes used in permanent markers:

* blue: triarylmethane or phthalocyanine blue, absorption peak 590–630 nm: strong in red,
  about half in green, little in blue: (1.0, 0.5, 0.15);
* green: phthalocyanine green (or blue + yellow dyes): absorbs red and blue, passes
  500–560 nm: (0.9, 0.25, 0.7);
* red: rhodamine or azo red, absorption peak 520–560 nm: (0.05, 1.0, 0.5);
* black: carbon or a mix of dyes, flat across the visible: (1, 1, 1).

Colours are laid down at a peak OD of 0.8 (16% transmission in the most absorbed band; the
audit's green band was 0.6), black at 1.5 (3%: a marker stroke is nearly opaque). Ink on the
slide filters whatever lies under it, so its OD adds to the tissue's (Beer–Lambert): the
transmitted light is multiplied by ``10^(−t·ink)``, with ``t`` the stroke's density profile (a
2 µm soft edge, ±15% streaks along the stroke). The stroke's pixels are those with ``t ≥ 0.5``
(on the overview grid: more than half the block).

Acceptance limits (set before the runs, from the issue): at least 90% of the ink's pixels out of
the tissue, at least 98% of the real tissue kept (tissue pixels not under ink, gland lumina
aside, which are clear spaces and never tissue) and at least 98% of the nuclei of every kind
(stromal, CD56+, glandular epithelium) not under ink inside the tissue; the stromal area of
:func:`~nkpanel.uterine.analyze.analyze_image` within 5% of the truth.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import ndimage as ndi

from nkpanel.uterine.analyze import analyze_image
from nkpanel.uterine.simulate import FieldSpec, SyntheticField, simulate_field, write_field
from nkpanel.uterine.stains import estimate_white, ruifrok_hdab
from nkpanel.uterine.tissue import TissueSettings, detect_ink, detect_tissue

UM = 0.5  # µm per pixel of the field
BLOCK = 4  # the overview is a 4×4 box mean: 2 µm per pixel, as analyze_image makes it
SIZE = 1600  # px: 800 µm square

#: (OD per band at unit density, peak OD laid down)
INKS: dict[str, tuple[tuple[float, float, float], float]] = {
    "blue": ((1.0, 0.5, 0.15), 0.8),
    "green": ((0.9, 0.25, 0.7), 0.8),
    "red": ((0.05, 1.0, 0.5), 0.8),
    "black": ((1.0, 1.0, 1.0), 1.5),
}


class Scene:
    """A synthetic field whose right side is bare glass, and a stroke across both."""

    def __init__(self) -> None:
        self.field = simulate_field(
            FieldSpec(width_px=SIZE, height_px=SIZE, pixel_size_um=UM, seed=11, n_glands=3)
        )
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        rng = np.random.default_rng(7)
        self.glass = xx > 1150 + 60 * np.sin(yy / 200.0)
        white = np.asarray(self.field.spec.white, np.float32)
        base = self.field.rgb.astype(np.float32)
        base[self.glass] = white + rng.normal(0, 2, (int(self.glass.sum()), 3))
        self.base = base
        # a stroke 120 µm wide, slanting across tissue and glass
        dist_um = np.abs(yy - 0.35 * xx - 500) / np.hypot(1.0, 0.35) * UM
        profile = np.clip((60.0 - dist_um) / 2.0 + 0.5, 0.0, 1.0)
        streaks = 1 + 0.15 * ndi.gaussian_filter(rng.normal(0, 1, (SIZE, SIZE)), 10) / 0.028
        self.density = (profile * streaks).astype(np.float32)
        self.stroke = profile >= 0.5
        lumen = np.zeros((SIZE, SIZE), bool)
        for cy, cx, r_lumen, _ in self.field.glands:
            lumen |= np.hypot(yy - cy, xx - cx) <= r_lumen
        self.lumen = lumen

    def inked(self, ink: tuple[float, float, float], peak: float) -> NDArray[np.uint8]:
        v = np.asarray(ink, np.float32)
        od = self.density[..., None] * (np.float32(peak) * v / v.max())
        light = self.base * np.power(np.float32(10.0), -od)
        return np.asarray(np.clip(np.round(light), 0, 255), dtype=np.uint8)

    def truth_stroma_mm2(self) -> float:
        stroma = ~self.glass & ~self.field.gland_mask & ~self.stroke
        return float(stroma.sum()) * (UM * 1e-3) ** 2


def _overview(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    n = SIZE // BLOCK
    return np.asarray(np.round(rgb.reshape(n, BLOCK, n, BLOCK, 3).mean(axis=(1, 3))), np.uint8)


def _down(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    n = SIZE // BLOCK
    return np.asarray(mask.reshape(n, BLOCK, n, BLOCK).mean(axis=(1, 3)) > 0.5)


def _tissue(rgb: NDArray[np.uint8]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    stains = ruifrok_hdab(estimate_white(rgb))
    overview = _overview(rgb)
    settings = TissueSettings(overview_um=UM * BLOCK)
    ink = detect_ink(overview, stains, settings)
    return detect_tissue(overview, stains, settings, ink=ink), ink


@pytest.fixture(scope="module")
def scene() -> Scene:
    return Scene()


@pytest.mark.parametrize("colour", list(INKS))
def test_ink_is_left_out_of_tissue(scene: Scene, colour: str) -> None:
    tissue, ink = _tissue(scene.inked(*INKS[colour]))
    stroke = _down(scene.stroke)
    real = _down(~scene.glass & ~scene.stroke & ~scene.lumen)
    assert 1 - (tissue & stroke).sum() / stroke.sum() >= 0.90
    assert (tissue & real).sum() / real.sum() >= 0.98
    # the stroke is found on glass and over tissue alike
    on_glass = stroke & _down(scene.glass)
    over_tissue = stroke & _down(~scene.glass)
    assert (ink & on_glass).sum() >= 0.90 * on_glass.sum()
    assert (ink & over_tissue).sum() >= 0.90 * over_tissue.sum()
    # nuclei of every kind that no ink covers stay inside the tissue
    for kind in ("stromal", "unk", "epithelial"):
        yx = np.array(
            [
                (c.y_px, c.x_px)
                for c in scene.field.cells
                if c.kind == kind and not scene.glass[int(c.y_px), int(c.x_px)]
            ]
        )
        inside = tissue[(yx[:, 0] / BLOCK).astype(int), (yx[:, 1] / BLOCK).astype(int)]
        clear_of_ink = ~ndi.binary_dilation(stroke, iterations=2)[
            (yx[:, 0] / BLOCK).astype(int), (yx[:, 1] / BLOCK).astype(int)
        ]
        assert inside[clear_of_ink].mean() >= 0.98, kind


def test_without_ink_nothing_is_lost(scene: Scene) -> None:
    """The same field with no stroke: the ink rule removes nothing from the tissue."""
    rgb = np.clip(np.round(scene.base), 0, 255).astype(np.uint8)
    tissue, ink = _tissue(rgb)
    assert not ink.any()
    real = _down(~scene.glass & ~scene.lumen)
    assert (tissue & real).sum() / real.sum() >= 0.98


def test_the_rule_can_be_turned_off(scene: Scene) -> None:
    rgb = scene.inked(*INKS["green"])
    stains = ruifrok_hdab(estimate_white(rgb))
    settings = TissueSettings(overview_um=UM * BLOCK, exclude_ink=False)
    overview = _overview(rgb)
    assert not detect_ink(overview, stains, settings).any()
    tissue = detect_tissue(overview, stains, settings)
    stroke = _down(scene.stroke)
    assert (tissue & stroke).sum() >= 0.95 * stroke.sum()  # the old behaviour: ink is tissue


def test_blue_like_haematoxylin_is_not_separable(scene: Scene) -> None:
    """The documented limit: a blue ink absorbing red and green nearly as haematoxylin does
    (1.0, 0.7, 0.2; 14° from the H-DAB cone) lies within the 15° that staining and scanners
    move haematoxylin itself, and stays tissue. If this starts failing, update the module
    docstring of nkpanel.uterine.tissue."""
    tissue, ink = _tissue(scene.inked((1.0, 0.7, 0.2), 0.8))
    stroke = _down(scene.stroke)
    assert (ink & stroke).sum() < 0.10 * stroke.sum()
    assert (tissue & stroke).sum() > 0.5 * stroke.sum()


def test_pixels_of_stain_are_never_ink() -> None:
    """Every mixture of haematoxylin 0–1 and DAB 0–1 OD (Beer–Lambert with the standard
    vectors; twice a nucleus's haematoxylin on a strong DAB membrane, more than a 2 µm
    overview pixel holds), also averaged half-and-half with glass (a pixel on an object's
    edge), passes. (Both at 0.9 and above, the mixture passes under 10% in every channel and
    counts as black: the documented limit of ``ink_black_od``.)"""
    white = (242.0, 240.0, 236.0)
    stains = ruifrok_hdab(white)
    h, d = np.meshgrid(np.linspace(0, 1.0, 120), np.linspace(0, 1.0, 160), indexing="ij")
    od = h[..., None] * np.asarray(stains.haematoxylin) + d[..., None] * np.asarray(stains.dab)
    light = np.asarray(white) * 10.0**-od
    edge = (light + np.asarray(white)) / 2
    rng = np.random.default_rng(0)
    rgb = np.concatenate([light, edge], axis=1) + rng.normal(0, 1.0, (120, 320, 3))
    rgb8 = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    # every flagged pixel counts: no minimum area, no margin
    settings = TissueSettings(min_ink_um2=1.0, ink_margin_um=0.0)
    assert not detect_ink(rgb8, stains, settings).any()


@pytest.mark.parametrize("colour", list(INKS))
def test_ink_pixels_are_flagged_one_by_one(colour: str) -> None:
    """Each ink at 0.3–1.5 peak OD, alone and over pale stroma (haematoxylin 0.05), is flagged
    pixel by pixel (no minimum area), except black below OD 1: neutral ink that light is
    within the hue tolerance (module docstring)."""
    white = (242.0, 240.0, 236.0)
    stains = ruifrok_hdab(white)
    v = np.asarray(INKS[colour][0])
    peaks = np.linspace(1.05 if colour == "black" else 0.3, 1.5, 50)
    ink_od = peaks[:, None] * v / v.max()
    stroma_od = 0.05 * np.asarray(stains.haematoxylin)
    od = np.stack([ink_od, ink_od + stroma_od], axis=1)  # 50×2×3
    rgb8 = np.clip(np.round(np.asarray(white) * 10.0**-od), 0, 255).astype(np.uint8)
    settings = TissueSettings(min_ink_um2=1.0, ink_margin_um=0.0)
    assert detect_ink(rgb8, stains, settings).all()


@pytest.mark.parametrize("colour", ["green", "black"])
def test_stromal_area_of_an_inked_field(scene: Scene, tmp_path: Path, colour: str) -> None:
    """analyze_image on the inked field (glands from their drawn regions, so that the area
    measures the ink rule and not the gland heuristic): stromal area within 5% of the truth
    (field minus glass, glands and stroke), and no counted cell under the ink."""
    field: SyntheticField = replace(scene.field, rgb=scene.inked(*INKS[colour]))
    files = write_field(field, tmp_path / f"inked_{colour}.tif")
    regions = next(f for f in files if f.suffix == ".geojson")
    a = analyze_image(files[0], regions=regions)
    assert a.result.synthetic
    assert a.result.overall.stromal_area_mm2 == pytest.approx(scene.truth_stroma_mm2(), rel=0.05)
    iy = np.clip((a.cells.y - 0.5).astype(int), 0, SIZE - 1)
    ix = np.clip((a.cells.x - 0.5).astype(int), 0, SIZE - 1)
    assert scene.stroke[iy, ix].mean() <= 0.01


@pytest.mark.parametrize("image", ["skimage-ihc", "deepliif-6_2"])
def test_no_ink_on_the_real_h_dab_images(image: str, shared_data: Path) -> None:
    """The two real H-DAB images at hand hold no ink (scikit-image's immunohistochemistry
    image; the DeepLIIF Ki67 field): the rule leaves every stained pixel of them in."""
    if image == "skimage-ihc":
        from skimage import data

        rgb = np.asarray(data.immunohistochemistry(), dtype=np.uint8)
    else:
        from PIL import Image

        path = shared_data / "deepliif-ki67-sample" / "6_2.png"
        if not path.is_file():
            pytest.skip(f"{path} is absent")
        rgb = np.asarray(Image.open(path).convert("RGB"))
    # box-averaged 8× (the overview's 2 µm at about 0.25 µm per pixel)
    h, w = (rgb.shape[0] // 8) * 8, (rgb.shape[1] // 8) * 8
    blocks = rgb[:h, :w].reshape(h // 8, 8, w // 8, 8, 3).mean(axis=(1, 3))
    ov = np.asarray(np.round(blocks), dtype=np.uint8)
    stains = ruifrok_hdab(estimate_white(rgb))
    assert not detect_ink(ov, stains, TissueSettings(overview_um=2.0)).any()


def test_an_h_and_e_slide_is_told_apart_from_no_tissue(tmp_path: Path) -> None:
    """Eosin stroma (Ruifrok & Johnston's eosin vector) is colour neither haematoxylin nor DAB
    explains: analysed by mistake, the field is refused saying so, not 'nothing stained'."""
    import tifffile

    from nkpanel.errors import InputError

    h = np.array([0.65, 0.70, 0.29])
    e = np.array([0.07, 0.99, 0.11])
    rng = np.random.default_rng(0)
    od = np.zeros((800, 800, 3))
    od[60:740, 60:740] = 0.35 * e / np.linalg.norm(e)  # pink stroma
    yy, xx = np.mgrid[:800, :800]
    for cy, cx in rng.integers(80, 720, (200, 2)):
        od[(yy - cy) ** 2 + (xx - cx) ** 2 < 49] += 0.5 * h / np.linalg.norm(h)
    rgb = (235 * 10 ** (-od) + rng.integers(-2, 3, od.shape)).clip(0, 255).astype(np.uint8)
    path = tmp_path / "he-synthetic.tif"
    tifffile.imwrite(
        path, rgb, photometric="rgb", resolution=(40000, 40000), resolutionunit="CENTIMETER"
    )
    with pytest.raises(InputError, match="neither haematoxylin nor DAB explains"):
        analyze_image(path)
