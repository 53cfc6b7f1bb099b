"""Accuracy of the endometrial CD56 count over random simulated fields (all synthetic).

Run from the repository root::

    .venv/bin/python benchmarks/sweep_uterine_accuracy.py [--kind realistic|extreme]
        [--fields N] [--seed S] [--jobs J] [--json OUT]

Each field is drawn at random from a design space and simulated with
:func:`nkpanel.uterine.simulate.simulate_field`, which returns its truth (every cell's centre
and kind, the gland mask); the field is written as a TIFF (or a JPEG) that carries
:data:`~nkpanel.uterine.simulate.SYNTHETIC_TAG` in its metadata and analysed with
:func:`nkpanel.uterine.analyze.analyze_image` at its default settings (Ruifrok vectors, QuPath's
0.2 OD positivity threshold, automatic gland exclusion unless regions are drawn). Nothing here
is a patient: every image, truth and number is synthetic.

Design spaces (the simulator's own parameters, plus three changes made to its image):

* ``realistic``: pixel size 0.25–0.5 µm, a square field 400–550 µm across, 3,000–10,000
  stromal cells per mm², CD56+ 2–25% of stromal cells, DAB 0.35–1.0 OD (faint to strong),
  glands in half the fields (1–3), camera noise SD 1–4, white point 225–250 per channel;
  haematoxylin × 0.7–1.2, extra defocus blur 0–0.5 µm, and a third of the fields saved as
  JPEG (quality 80–95);
* ``extreme``: field 250–550 µm, 1,500–15,000 cells per mm², CD56+ 0.5–40%, DAB 0.12–1.4 OD,
  0–5 glands (drawn as regions in a third of the fields with glands), noise SD up to 10, a
  tinted or dim white point (190–255 per channel), haematoxylin × 0.4–1.5, blur up to 1.5 µm,
  JPEG down to quality 40.

The simulator has no haematoxylin strength, blur or compression of its own: pale (or dark)
haematoxylin is made by unmixing the rendered RGB with the same Ruifrok–Johnston vectors the
simulator paints with, scaling the haematoxylin amount, and mixing back (Beer–Lambert);
defocus is a Gaussian blur of the RGB; compression is a JPEG round trip through Pillow.

Scores per field (truth = the simulator's cells; epithelial cells are not stromal):

* CD56+ per 100 stromal cells: measured − truth, in points;
* CD56+ per mm² of stroma: measured / truth − 1 (the truth area is the field less the glands);
* detection F1 of all stromal cells and of CD56+ cells: a detection matches a truth cell when
  their centres lie within 4 µm, one-to-one, minimising the total distance (the rule of
  ``tests/uterine/helpers.py`` and ``tests/uterine/test_synthetic.py``).

It prints one line per field, the mean, 95th percentile and maximum of the absolute errors
(F1: mean, 5th percentile, minimum), and lists the fields that are reportable, carry no
failed QC check and are off by more than 2 points per 100 or 15% per mm²: the ones a lab
would report without being told to look.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from nkpanel.errors import NkPanelError
from nkpanel.uterine.analyze import UterineAnalysis, analyze_image
from nkpanel.uterine.regions import read_qupath_geojson
from nkpanel.uterine.simulate import (
    SYNTHETIC_TAG,
    FieldSpec,
    SyntheticField,
    simulate_field,
    write_field,
)
from nkpanel.uterine.stains import ruifrok_hdab

MATCH_RADIUS_UM = 4.0
LIMIT_POINTS = 2.0
LIMIT_PER_MM2 = 0.15

F64 = NDArray[np.float64]
U8 = NDArray[np.uint8]


@dataclass(frozen=True)
class Design:
    """One random field: the simulator's spec and what is done to its image afterwards."""

    spec: FieldSpec
    haematoxylin_scale: float = 1.0
    blur_um: float = 0.0
    jpeg_quality: int | None = None
    drawn_regions: bool = False

    def short(self) -> str:
        s = self.spec
        return (
            f"seed={s.seed} px={s.pixel_size_um:.3f}µm side={s.width_px * s.pixel_size_um:.0f}µm "
            f"cells/mm²={s.stromal_cells_per_mm2:.0f} CD56%={s.unk_percent_of_stromal:.1f} "
            f"dab={s.dab_od:.2f} H×{self.haematoxylin_scale:.2f} glands={s.n_glands}"
            f"{' (drawn)' if self.drawn_regions else ''} noise={s.noise_sd:.1f} "
            f"white={tuple(round(v) for v in s.white)} blur={self.blur_um:.2f}µm "
            f"jpeg={self.jpeg_quality}"
        )


@dataclass(frozen=True)
class Outcome:
    design: Design
    reportable: bool
    warned: bool
    qc_failed: tuple[str, ...]
    per100_truth: float
    per100: float | None
    per100_error: float | None  # points
    per_mm2_truth: float
    per_mm2: float | None
    per_mm2_error: float | None  # relative
    f1_all: float
    f1_positive: float
    stromal_ratio: float  # counted stromal cells / truth stromal cells
    positive_ratio: float  # counted CD56+ / truth CD56+
    area_ratio: float  # counted stromal area / truth stromal area
    seconds: float
    refused: str | None = None  # the analysis raised an nkpanel error (its one-line message)

    @property
    def silent_miss(self) -> bool:
        return (
            self.reportable
            and not self.warned
            and (
                (self.per100_error is not None and abs(self.per100_error) > LIMIT_POINTS)
                or (self.per_mm2_error is not None and abs(self.per_mm2_error) > LIMIT_PER_MM2)
            )
        )


def draw(rng: np.random.Generator, kind: str) -> Design:
    """One random field design."""
    um = float(rng.uniform(0.25, 0.5))
    if kind == "realistic":
        side_um = float(rng.uniform(400, 550))
        glands = int(rng.integers(1, 4)) if rng.random() < 0.5 else 0
        spec = FieldSpec(
            width_px=round(side_um / um),
            height_px=round(side_um / um),
            pixel_size_um=um,
            seed=int(rng.integers(10_000, 99_999)),
            stromal_cells_per_mm2=float(rng.uniform(3_000, 10_000)),
            unk_percent_of_stromal=float(rng.uniform(2, 25)),
            dab_od=float(rng.uniform(0.35, 1.0)),
            n_glands=glands,
            white=(
                float(rng.uniform(225, 250)),
                float(rng.uniform(225, 250)),
                float(rng.uniform(225, 250)),
            ),
            noise_sd=float(rng.uniform(1, 4)),
        )
        return Design(
            spec,
            haematoxylin_scale=float(rng.uniform(0.7, 1.2)),
            blur_um=float(rng.uniform(0, 0.5)),
            jpeg_quality=int(rng.integers(80, 96)) if rng.random() < 1 / 3 else None,
        )
    side_um = float(rng.choice([250.0, 400.0, 550.0]))
    glands = int(rng.choice([0, 0, 1, 3, 5]))
    spec = FieldSpec(
        width_px=round(side_um / um),
        height_px=round(side_um / um),
        pixel_size_um=um,
        seed=int(rng.integers(1_000, 9_999)),
        stromal_cells_per_mm2=float(rng.choice([1_500, 3_000, 8_000, 12_000, 15_000])),
        unk_percent_of_stromal=float(rng.choice([0.5, 2, 10, 25, 40])),
        dab_od=float(rng.choice([0.12, 0.2, 0.3, 0.6, 1.0, 1.4])),
        n_glands=glands,
        white=(
            float(rng.uniform(190, 255)),
            float(rng.uniform(190, 255)),
            float(rng.uniform(190, 255)),
        ),
        noise_sd=float(rng.choice([0.5, 3.0, 6.0, 10.0])),
    )
    return Design(
        spec,
        haematoxylin_scale=float(rng.choice([0.4, 0.6, 1.0, 1.5])),
        blur_um=float(rng.choice([0.0, 0.75, 1.5])),
        jpeg_quality=[None, None, 40, 70, 90][int(rng.integers(0, 5))],
        drawn_regions=glands > 0 and rng.random() < 1 / 3,
    )


def restain(rgb: U8, white: tuple[float, float, float], haematoxylin_scale: float) -> U8:
    """Scale the haematoxylin amount of an H-DAB image (Beer–Lambert unmix, scale, remix).

    OD = −log10(I / I0) = c · M with M the Ruifrok–Johnston (2001) H, DAB and residual
    vectors; c_H is multiplied by ``haematoxylin_scale`` and the light recomputed.
    """
    if haematoxylin_scale == 1.0:
        return rgb
    m = ruifrok_hdab().matrix()
    i0 = np.asarray(white, np.float64)
    od = -np.log10(np.maximum(rgb.astype(np.float64), 1.0) / i0)
    conc: F64 = od @ np.linalg.inv(m)
    conc[..., 0] *= haematoxylin_scale
    light: F64 = i0 * np.power(10.0, -(conc @ m))
    out: U8 = np.clip(np.round(light), 0, 255).astype(np.uint8)
    return out


def degrade(field: SyntheticField, design: Design) -> SyntheticField:
    """The field with its haematoxylin rescaled and defocus blur added."""
    rgb = restain(field.rgb, field.spec.white, design.haematoxylin_scale)
    if design.blur_um > 0:
        sigma = design.blur_um / field.spec.pixel_size_um
        blurred = ndi.gaussian_filter(rgb.astype(np.float32), (sigma, sigma, 0))
        rgb = np.clip(np.round(blurred), 0, 255).astype(np.uint8)
    return replace(field, rgb=rgb)


def match_count(detected: F64, truth: F64, radius: float) -> int:
    """Pairs (detection, truth) within ``radius``, one-to-one, minimising the total distance.

    The rule of ``tests/uterine/helpers.match``, solved per connected group of candidate pairs
    (a k-d tree finds the pairs) so that fields of thousands of cells stay fast.
    """
    if len(detected) == 0 or len(truth) == 0:
        return 0
    pairs = cKDTree(detected).query_ball_tree(cKDTree(truth), radius)
    # union-find over detections and truths linked by a candidate pair
    parent = list(range(len(detected) + len(truth)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, js in enumerate(pairs):
        for j in js:
            ra, rb = find(i), find(len(detected) + j)
            if ra != rb:
                parent[ra] = rb
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for i, js in enumerate(pairs):
        if js:
            groups.setdefault(find(i), ([], []))[0].append(i)
    for j in range(len(truth)):
        root = find(len(detected) + j)
        if root in groups:
            groups[root][1].append(j)
    n = 0
    for di, tj in groups.values():
        d = np.linalg.norm(detected[di][:, None, :] - truth[tj][None, :, :], axis=2)
        cost = np.where(d <= radius, d, 1e9)
        r, c = linear_sum_assignment(cost)
        n += int((cost[r, c] < 1e9).sum())
    return n


def f1(n_detected: int, n_truth: int, n_matched: int) -> float:
    """F1 = 2·TP / (detections + truth)."""
    total = n_detected + n_truth
    return 2.0 * n_matched / total if total else 1.0


def analyse(field: SyntheticField, design: Design, folder: Path) -> UterineAnalysis:
    """Write the (degraded) field as a SYNTHETIC-tagged file and analyse it."""
    files = write_field(field, folder / "field.tif")
    regions = next((f for f in files if f.suffix == ".geojson"), None)
    image = files[0]
    pixel_size: float | None = None
    if design.jpeg_quality is not None:
        from PIL import Image

        image = folder / "field.jpg"
        Image.fromarray(field.rgb).save(
            image, format="JPEG", quality=design.jpeg_quality, comment=SYNTHETIC_TAG.encode()
        )
        pixel_size = field.spec.pixel_size_um  # JFIF density is whole dots per inch
    reg = read_qupath_geojson(regions) if design.drawn_regions and regions else None
    return analyze_image(image, pixel_size_um=pixel_size, regions=reg)


def run_one(design: Design) -> Outcome:
    t0 = time.perf_counter()
    field = degrade(simulate_field(design.spec), design)
    truth = [c for c in field.cells if c.kind != "epithelial"]
    n_truth, p_truth = len(truth), sum(c.positive for c in truth)
    per100_truth = 100.0 * p_truth / max(n_truth, 1)
    per_mm2_truth = p_truth / field.stromal_area_mm2
    with tempfile.TemporaryDirectory(prefix="nkpanel-sweep-synthetic-") as tmp:
        try:
            a = analyse(field, design, Path(tmp))
        except NkPanelError as e:  # refused: a clear error is an acceptable outcome
            nan = float("nan")
            return Outcome(
                design, False, True, ("refused",), per100_truth, None, None, per_mm2_truth,
                None, None, nan, nan, nan, nan, nan, time.perf_counter() - t0,
                refused=str(e).replace(tmp, "<tmp>"),
            )  # fmt: skip
    seconds = time.perf_counter() - t0
    r = a.result
    um = design.spec.pixel_size_um
    t_xy = np.array([[c.y_px, c.x_px] for c in truth], np.float64).reshape(-1, 2)
    t_pos = np.array([c.positive for c in truth], bool)
    d_xy = np.c_[a.cells.y - 0.5, a.cells.x - 0.5]  # continuous → pixel-index coordinates
    d_pos = np.asarray(a.cells.positive, bool)
    n_all = match_count(d_xy, t_xy, MATCH_RADIUS_UM / um)
    n_pos = match_count(d_xy[d_pos], t_xy[t_pos], MATCH_RADIUS_UM / um)
    o = r.overall
    per100 = o.cd56_per_100_stromal_cells
    per_mm2 = o.cd56_per_mm2_stroma
    failed = tuple(q.check for q in r.qc if not q.passed)
    return Outcome(
        design=design,
        reportable=r.reportable,
        warned=bool(failed),
        qc_failed=failed,
        per100_truth=per100_truth,
        per100=per100,
        per100_error=None if per100 is None else per100 - per100_truth,
        per_mm2_truth=per_mm2_truth,
        per_mm2=per_mm2,
        per_mm2_error=None if per_mm2 is None or not per_mm2_truth else per_mm2 / per_mm2_truth - 1,
        f1_all=f1(len(d_xy), n_truth, n_all),
        f1_positive=f1(int(d_pos.sum()), p_truth, n_pos),
        stromal_ratio=o.stromal_cells / max(n_truth, 1),
        positive_ratio=o.cd56_positive_cells / max(p_truth, 1),
        area_ratio=o.stromal_area_mm2 / field.stromal_area_mm2,
        seconds=seconds,
    )


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def summarise(name: str, values: list[float], unit: str, *, low_is_bad: bool = False) -> None:
    a = np.asarray(values, float)
    if not a.size:
        print(f"{name}: no fields")
        return
    if low_is_bad:
        print(
            f"{name}: mean {a.mean():.3f}, 5th percentile {np.percentile(a, 5):.3f}, "
            f"min {a.min():.3f}"
        )
        return
    m = np.abs(a)
    print(
        f"{name}{unit}: mean |error| {m.mean():.3f}, 95th percentile {np.percentile(m, 95):.3f}, "
        f"max {m.max():.3f}; mean signed {a.mean():+.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--kind", choices=("realistic", "extreme"), default="realistic")
    parser.add_argument("--fields", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--json", type=Path, help="also write every field's outcome as JSON")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    designs = [draw(rng, args.kind) for _ in range(args.fields)]
    t0 = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            outcomes = list(pool.map(run_one, designs))
    else:
        outcomes = [run_one(d) for d in designs]
    wall = time.perf_counter() - t0

    print(
        f"{args.kind} fields (SYNTHETIC), seed {args.seed}: {len(outcomes)} fields, "
        f"{sum(o.reportable for o in outcomes)} reportable, "
        f"{sum(o.warned for o in outcomes)} with a failed QC check; {wall:.0f} s"
    )
    print(
        "  #  truth/100  meas/100   err pts | truth/mm²  meas/mm²  rel err | F1 all  F1 pos | "
        "stromal  CD56+   area | QC"
    )
    for k, o in enumerate(outcomes):
        print(
            f"{k:3d} {o.per100_truth:9.2f} {_fmt(o.per100, '9.2f')} "
            f"{_fmt(o.per100_error, '+9.2f')} | {o.per_mm2_truth:9.0f} {_fmt(o.per_mm2, '9.0f')} "
            f"{_fmt(o.per_mm2_error, '+8.3f')} | {o.f1_all:6.3f} {o.f1_positive:6.3f} | "
            f"{o.stromal_ratio:7.3f} {o.positive_ratio:6.3f} {o.area_ratio:6.3f} | "
            f"{'reportable' if o.reportable else 'NOT reportable'}"
            f"{' refused: ' + o.refused if o.refused else ''}"
            f"{' warned: ' + ','.join(o.qc_failed) if o.warned and not o.refused else ''}"
        )
        print(f"      {o.design.short()}")
    shown = [o for o in outcomes if o.reportable]
    print(f"summary over the {len(shown)} reportable fields:")
    summarise(
        "CD56+ per 100 stromal cells",
        [o.per100_error for o in shown if o.per100_error is not None],
        " (points)",
    )
    summarise(
        "CD56+ per mm² stroma",
        [o.per_mm2_error for o in shown if o.per_mm2_error is not None],
        " (relative)",
    )
    summarise("detection F1, all stromal cells", [o.f1_all for o in shown], "", low_is_bad=True)
    summarise("detection F1, CD56+ cells", [o.f1_positive for o in shown], "", low_is_bad=True)
    print(
        "counted / truth: stromal cells "
        f"{np.mean([o.stromal_ratio for o in shown]):.3f}, CD56+ cells "
        f"{np.mean([o.positive_ratio for o in shown]):.3f}, stromal area "
        f"{np.mean([o.area_ratio for o in shown]):.3f} (means)"
    )
    silent = sorted(
        (o for o in outcomes if o.silent_miss),
        key=lambda o: -abs(o.per100_error or 0.0),
    )
    print(
        f"reportable, no failed QC check, and off by > {LIMIT_POINTS:g} points per 100 or "
        f"> {LIMIT_PER_MM2:.0%} per mm²: {len(silent)}"
    )
    for o in silent:
        print(
            f"  {_fmt(o.per100_error, '+.2f')} points ({o.per100_truth:.2f} → "
            f"{_fmt(o.per100, '.2f')}); per mm² {_fmt(o.per_mm2_error, '+.1%')}; "
            f"F1 all {o.f1_all:.2f}, CD56+ {o.f1_positive:.2f}; {o.design.short()}"
        )
    if args.json:
        rows = []
        for o in outcomes:
            d = asdict(o)
            d["synthetic"] = True
            d["silent_miss"] = o.silent_miss
            rows.append(d)
        args.json.write_text(json.dumps({"synthetic": True, "fields": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
