"""Haemoglobin's colour on the optical-density scale, from its absorption spectrum.

Red cells are not stained: haemoglobin is a chromogen-free absorber, and in a CD56 (DAB,
haematoxylin) image its colour lies next to DAB's. Its optical density (OD) per RGB channel
is worked out here from physics, not from any image:

* **Spectrum**: the molar extinction coefficient of oxyhaemoglobin in water (Prahl's
  compilation of Gratzer's and Kollias's measurements; per mole of tetramer, 64,500 g/mol),
  sampled here every 5 nm from 380 to 700 nm: the Soret band peaks at 414 nm
  (524,280 cm⁻¹/M), the Q bands at 542 and 576 nm (~53,000–55,500), and above 600 nm it falls
  under 3,200.
* **Amount**: the path through red-cell cytoplasm, in µm, at the mean corpuscular
  haemoglobin concentration (MCHC) of 330 g/L (5.1 mM tetramer). A whole red cell lying flat
  holds 29 pg of haemoglobin (MCH) over a disc of 7.5 µm, about 2 µm of such path on average;
  packed red cells filling a 4 µm section about 3–4 µm.
* **Camera**: the transmitted spectrum is weighed by a channel's spectral response and the
  illuminant, integrated, and compared with clear glass (the white point), so that each
  channel's OD is ``−log10(∫ S_c E T / ∫ S_c E)`` with ``T = 10^(−ε c l)`` (Beer–Lambert at
  each wavelength; polychromatic, so the OD is not proportional to the path: the narrow
  Soret band saturates first). The response is that of an image as scanners deliver it,
  colour-corrected to sRGB: the CIE 1931 2° colour-matching functions mapped to linear sRGB
  primaries (IEC 61966-2-1), under a halogen lamp (CIE illuminant A, a 2856 K black body).

The result (``haemoglobin_od(2.0)``): OD about (0.007, 0.038, 0.108), a unit vector about
(0.06, 0.34, 0.94): strong in blue, weak in green, almost none in red. It lies 20° from
Ruifrok's DAB vector (0.27, 0.57, 0.78), but nearly *in the plane* of the haematoxylin and
DAB vectors (its component along their residual direction is about 8% of its length): it
unmixes as DAB (0.16 per red cell) with a *negative* haematoxylin (−0.06). A third stain
vector for haemoglobin therefore makes a near-singular unmixing (H, DAB and haemoglobin
almost coplanar), and the colour alone cannot part haemoglobin plus haematoxylin from DAB.
With the raw responses of real camera sensors (Darrodi et al. 2015: Nikon D5100, Sigma
SD Merrill) the direction lies even nearer DAB's (5–8°). See
:mod:`nkpanel.uterine.detect` for what nkpanel does about it (the DAB background).

References
----------
Prahl S. Tabulated molar extinction coefficient for hemoglobin in water. Oregon Medical
Laser Center, 1999 (data of W. B. Gratzer and N. Kollias).
CIE 015:2018 Colorimetry, 4th ed. (1931 2° colour-matching functions; illuminant A).
IEC 61966-2-1:1999 (sRGB primaries, XYZ to linear sRGB matrix).
Evans E, Fung YC. Improved measurements of the erythrocyte geometry. Microvasc Res
1972;4:335-347 (red cell shape and size).
Darrodi MM, Finlayson G, Goodman T, Mackiewicz M. Reference data set for camera spectral
sensitivity estimation. J Opt Soc Am A 2015;32:381-391.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MCHC_G_PER_L",
    "RED_CELL_PATH_UM",
    "RED_CELL_RADIUS_UM",
    "RED_CELL_VOLUME_UM3",
    "haemoglobin_od",
    "haemoglobin_vector",
    "red_cell_thickness_um",
]

F64 = NDArray[np.float64]

#: mean corpuscular haemoglobin concentration, g/L (adult reference 320–360)
MCHC_G_PER_L = 330.0
#: haemoglobin's molar mass as Prahl's table uses it (tetramer), g/mol
_HB_G_PER_MOL = 64_500.0
#: the Evans–Fung red cell: its radius (µm) and volume (µm³)
RED_CELL_RADIUS_UM = 3.91
RED_CELL_VOLUME_UM3 = 94.0
#: a whole red cell lying flat, as path through red-cell cytoplasm at the MCHC, µm: the
#: Evans–Fung cell's volume over its area (94 µm³ / 48 µm²)
RED_CELL_PATH_UM = 1.96

# (nm, oxyhaemoglobin ε in cm⁻¹/M (Prahl), CIE 1931 2° x̄, ȳ, z̄)
_SPECTRA = np.array(
    [
        (380, 109564, 0.00137, 0.00004, 0.00645),
        (385, 130276, 0.00224, 0.00006, 0.01055),
        (390, 167748, 0.00424, 0.00012, 0.02005),
        (395, 221836, 0.00765, 0.00022, 0.03621),
        (400, 266232, 0.01431, 0.00040, 0.06785),
        (405, 331462, 0.02319, 0.00064, 0.11020),
        (410, 466840, 0.04351, 0.00121, 0.20740),
        (415, 523080, 0.07763, 0.00218, 0.37130),
        (420, 480360, 0.13438, 0.00400, 0.64560),
        (425, 351134, 0.21477, 0.00730, 1.03905),
        (430, 246072, 0.28390, 0.01160, 1.38560),
        (435, 149076, 0.32850, 0.01684, 1.62296),
        (440, 102580, 0.34828, 0.02300, 1.74706),
        (445, 78884, 0.34806, 0.02980, 1.78260),
        (450, 62816, 0.33620, 0.03800, 1.77211),
        (455, 51524, 0.31870, 0.04800, 1.74410),
        (460, 44480, 0.29080, 0.06000, 1.66920),
        (465, 38440, 0.25110, 0.07390, 1.52810),
        (470, 33209, 0.19536, 0.09098, 1.28764),
        (475, 29482, 0.14210, 0.11260, 1.04190),
        (480, 26629, 0.09564, 0.13902, 0.81295),
        (485, 24925, 0.05795, 0.16930, 0.61620),
        (490, 23684, 0.03201, 0.20802, 0.46518),
        (495, 22154, 0.01470, 0.25860, 0.35330),
        (500, 20933, 0.00490, 0.32300, 0.27200),
        (505, 20182, 0.00240, 0.40730, 0.21230),
        (510, 20035, 0.00930, 0.50300, 0.15820),
        (515, 20715, 0.02910, 0.60820, 0.11170),
        (520, 24202, 0.06327, 0.71000, 0.07825),
        (525, 30883, 0.10960, 0.79320, 0.05725),
        (530, 39957, 0.16550, 0.86200, 0.04216),
        (535, 48338, 0.22575, 0.91485, 0.02984),
        (540, 53236, 0.29040, 0.95400, 0.02030),
        (545, 50982, 0.35970, 0.98030, 0.01340),
        (550, 43016, 0.43345, 0.99495, 0.00875),
        (555, 35646, 0.51205, 1.00000, 0.00575),
        (560, 32613, 0.59450, 0.99500, 0.00390),
        (565, 35205, 0.67840, 0.97860, 0.00275),
        (570, 44496, 0.76210, 0.95200, 0.00210),
        (575, 54424, 0.84250, 0.91540, 0.00180),
        (580, 50104, 0.91630, 0.87000, 0.00165),
        (585, 30620, 0.97860, 0.81630, 0.00140),
        (590, 14401, 1.02630, 0.75700, 0.00110),
        (595, 6681, 1.05670, 0.69490, 0.00100),
        (600, 3200, 1.06220, 0.63100, 0.00080),
        (605, 1959, 1.04560, 0.56680, 0.00060),
        (610, 1506, 1.00260, 0.50300, 0.00034),
        (615, 1166, 0.93840, 0.44120, 0.00024),
        (620, 942, 0.85445, 0.38100, 0.00019),
        (625, 741, 0.75140, 0.32100, 0.00010),
        (630, 610, 0.64240, 0.26500, 0.00005),
        (635, 496, 0.54190, 0.21700, 0.00003),
        (640, 442, 0.44790, 0.17500, 0.00002),
        (645, 398, 0.36080, 0.13820, 0.00001),
        (650, 368, 0.28350, 0.10700, 0.00000),
        (655, 340, 0.21870, 0.08160, 0.00000),
        (660, 320, 0.16490, 0.06100, 0.00000),
        (665, 306, 0.12120, 0.04458, 0.00000),
        (670, 294, 0.08740, 0.03200, 0.00000),
        (675, 284, 0.06360, 0.02320, 0.00000),
        (680, 278, 0.04677, 0.01700, 0.00000),
        (685, 274, 0.03290, 0.01192, 0.00000),
        (690, 276, 0.02270, 0.00821, 0.00000),
        (695, 281, 0.01584, 0.00572, 0.00000),
        (700, 290, 0.01136, 0.00410, 0.00000),
    ],
    dtype=np.float64,
)

#: XYZ to linear sRGB (IEC 61966-2-1)
_XYZ_TO_SRGB = np.array(
    [[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]]
)


def _illuminant_a(nm: F64) -> F64:
    """CIE illuminant A: Planck's law at 2856 K (c2 = 1.4388e-2 m·K), relative."""
    lam = nm * 1e-9
    return np.asarray(1.0 / (lam**5 * (np.exp(1.4388e-2 / (lam * 2856.0)) - 1.0)), np.float64)


def haemoglobin_od(path_um: float | F64) -> F64:
    """Optical density per RGB channel of a layer of red-cell cytoplasm ``path_um`` thick.

    Parameters
    ----------
    path_um
        Path through red-cell cytoplasm at the MCHC (µm); a scalar or an array of any shape.

    Returns
    -------
    od
        Shape ``(*path.shape, 3)``: decadic OD per channel (R, G, B) against clear glass,
        for an sRGB image under a halogen lamp (module docstring).

    References
    ----------
    Prahl 1999 (spectrum); CIE 015:2018 and IEC 61966-2-1 (responses).

    Examples
    --------
    >>> [round(float(v), 3) for v in haemoglobin_od(2.0)]
    [0.007, 0.038, 0.108]
    """
    path = np.asarray(path_um, dtype=np.float64)
    nm, eps = _SPECTRA[:, 0], _SPECTRA[:, 1]
    response = _SPECTRA[:, 2:5] @ _XYZ_TO_SRGB.T  # (n_nm, 3) linear sRGB
    weight = response * _illuminant_a(nm)[:, None]
    molar = MCHC_G_PER_L / _HB_G_PER_MOL
    absorbance = eps * molar * path[..., None] * 1e-4  # (..., n_nm)
    transmitted = np.power(10.0, -absorbance) @ weight  # (..., 3)
    return np.asarray(-np.log10(transmitted / weight.sum(axis=0)), dtype=np.float64)


def haemoglobin_vector(path_um: float = RED_CELL_PATH_UM) -> tuple[float, float, float]:
    """The unit OD vector (R, G, B) of haemoglobin, for one red cell's path by default."""
    od = haemoglobin_od(path_um)
    u = od / float(np.linalg.norm(od))
    return (float(u[0]), float(u[1]), float(u[2]))


def red_cell_thickness_um(r_um: F64, radius_um: float = RED_CELL_RADIUS_UM) -> F64:
    """Thickness of a biconcave red cell at distance ``r_um`` from its axis, µm (Evans & Fung
    1972: ``t = sqrt(1 − x²)·(C0 + C1·x² + C2·x⁴)``, ``x = r/R``, R 3.91 µm, C0 0.81,
    C1 7.83, C2 −4.39 µm): 0.8 µm at the centre, 2.5 µm at the rim, 0 outside; 94 µm³ in all.

    Examples
    --------
    >>> [round(float(t), 2) for t in red_cell_thickness_um(np.array([0.0, 3.0, 4.0]))]
    [0.81, 2.5, 0.0]
    """
    x2 = np.clip(np.asarray(r_um, np.float64) / radius_um, 0.0, 1.0) ** 2
    t = np.sqrt(1.0 - x2) * (0.81 + 7.83 * x2 - 4.39 * x2 * x2)
    return np.asarray(np.maximum(t, 0.0), dtype=np.float64)
