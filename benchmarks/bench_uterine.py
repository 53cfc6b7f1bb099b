"""Endometrial NK speed benchmark: nkpanel's CD56 cell detection against HistomicsTK, a decode
floor, and peak memory on a 1-gigapixel SYNTHETIC slide processed tile by tile.

Run from the repository root::

    .venv/bin/python benchmarks/bench_uterine.py [--tiles N] [--repeat R] [--json OUT]
        [--peers-venv DIR] [--no-peers] [--no-gigapixel] [--slide-side PX]

What it does, all in one run on one machine, every contender on one core (``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` = 1 for this process and its children):

1. **Tiles.** The real field ``../shared/data/deepliif-ki67-sample/6_2.png`` (512×512, Ki67
   DAB; 0.25 µm/px judged from nucleus size) when present, and ``--tiles`` SYNTHETIC 1024×1024
   CD56 fields at 0.25 µm/px from :mod:`nkpanel.uterine.simulate`, written as PNG files to a
   temporary folder. The same files go to both tools.
2. **nkpanel kernel**: decode the PNG, resample to the analysis grid (0.5 µm/px), colour
   deconvolution (Ruifrok H-DAB, white point estimated), :func:`nkpanel.uterine.detect.
   detect_cells` (background subtraction, smoothing, watershed, shape split, area limits, cell
   expansion, DAB per compartment). Settings: the defaults, except for the real Ki67 field the
   one a lab changes for a nuclear stain (DAB measured in the nucleus), the same as in
   ``tests/uterine/test_real_dab_field.py``.
   **nkpanel whole analysis**: :func:`nkpanel.uterine.analyze.analyze_source` on the same
   tiles (adds tissue, gland detection, Macenko check, counting), without output files.
3. **HistomicsTK 1.4** in its own virtual environment (``--peers-venv``, default
   ``/tmp/nkpanel-bench-peers``), created on first use by the recipe in
   ``../shared/peers.md``: ``pip install --no-deps histomicstk``, then ``large-image shapely
   ctk-cli scikit-image scikit-learn pandas imageio nimfa dask``, plus an empty stand-in package
   ``slicer_cli_web`` (with ``ctk_cli_adjustment``), which ``histomicstk.cli.utils`` imports but
   PyPI does not carry. Per tile: decode the PNG; ``color_deconvolution`` with its
   haematoxylin/DAB stain colour map; foreground = haematoxylin intensity < 60 with holes
   filled; ``detect_nuclei_kofahi`` with its documented parameters as peers.md records them
   (radii 6–14 px, minimum nucleus area 80 px, local-maximum search radius 10); ``area_open``;
   per-nucleus centroid and mean DAB. HistomicsTK has no positivity rule of its own: a nucleus
   is called positive by the same rule as nkpanel's (mean DAB OD in the nucleus ≥ 0.2).
4. **Decode floor**: decoding the same PNG files to arrays (Pillow), nothing else.
5. **Accuracy on the real field** for both tools: F1 of all nuclei and of positive nuclei
   against the expert's mask (connected components per colour; a detection matches a truth
   nucleus within 4 µm = 16 px, one-to-one), and the positive percentage.
6. **1-gigapixel slide** (``--slide-side`` 32768 → 1.07 gigapixels at 0.25 µm/px, 8.2 mm
   square): a SYNTHETIC tiled pyramidal TIFF (JPEG tiles of 1024², levels 1, 4, 16; tissue an
   ellipse over about half the slide, glass elsewhere), written once to a temporary folder. In
   a fresh subprocess, the whole analysis through OpenSlide with every output (overlays of the
   ten fields, GeoJSON of every cell, tables); its peak resident memory (``VmHWM``) less that
   of a subprocess that imports the same modules and opens the slide; its wall time. The floor
   here is decoding every level-0 tile that holds tissue with OpenSlide.

Times are wall clock (``time.perf_counter``), the best of ``--repeat`` runs with the median
alongside; HistomicsTK runs in its own process (its import time is not counted). Megapixels are
input pixels (the tile as stored). Goals (from the issue): HistomicsTK time / nkpanel time ≥ 3
at equal or better F1 on the real field; nkpanel / decode floor ≤ 3; a slide in bounded memory.
A missed goal is reported, not hidden; the exit status is 0 unless a contender fails to run.

Everything this script generates is synthetic; no patient data are read. The real field is
read-only and stays in ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "deepliif-ki67-sample"
DEFAULT_PEERS = Path(tempfile.gettempdir()) / "nkpanel-bench-peers"
REAL_UM = 0.25
GOAL_HTK_RATIO = 3.0
GOAL_FLOOR_RATIO = 3.0

HTK_WORKER = textwrap.dedent(
    """
    import json, sys, time, warnings
    warnings.simplefilter("ignore")  # scikit-image deprecation notes from HistomicsTK 1.4
    import numpy as np
    from PIL import Image
    import scipy.ndimage as ndi
    import histomicstk as htk
    from histomicstk.preprocessing.color_deconvolution import color_deconvolution, stain_color_map
    from histomicstk.segmentation.nuclear import detect_nuclei_kofahi
    from histomicstk.segmentation.label import area_open

    job = json.loads(open(sys.argv[1]).read())
    W = np.array([stain_color_map["hematoxylin"], stain_color_map["dab"],
                  stain_color_map["null"]]).T
    out = {"version": htk.__version__, "tiles": []}

    def run(path):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        stains = color_deconvolution(rgb, W).Stains
        hem = stains[:, :, 0]
        fg = ndi.binary_fill_holes(hem < 60)
        seg = detect_nuclei_kofahi(hem, fg, 6, 14, 80, 10)
        seg = seg[0] if isinstance(seg, tuple) else seg  # 1.4 returns the label image
        seg = area_open(seg, 80).astype(np.int32)
        n = int(seg.max())
        idx = np.arange(1, n + 1)
        dab_od = np.log10(255.0 / np.maximum(stains[:, :, 1].astype(np.float64), 1.0))
        cy = ndi.mean(np.indices(seg.shape)[0], seg, idx) if n else np.zeros(0)
        cx = ndi.mean(np.indices(seg.shape)[1], seg, idx) if n else np.zeros(0)
        dab = ndi.mean(dab_od, seg, idx) if n else np.zeros(0)
        return np.c_[cy, cx], np.asarray(dab) >= job["positive_od"]

    for path in job["tiles"]:
        times = []
        for _ in range(job["repeat"]):
            t = time.perf_counter()
            xy, pos = run(path)
            times.append(time.perf_counter() - t)
        out["tiles"].append({"path": path, "times": times, "yx": xy.tolist(),
                             "positive": pos.tolist()})
    print(json.dumps(out))
    """
)


# ----------------------------------------------------------------------------- helpers


def _ensure_peers(venv: Path) -> Path:
    """The HistomicsTK environment, created by the peers.md recipe when missing."""
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import histomicstk.segmentation.nuclear, slicer_cli_web"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    print(f"creating the HistomicsTK environment in {venv} (first run only, a few minutes)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--no-deps", "histomicstk"], check=True)
    subprocess.run(
        [
            *pip,
            "large-image",
            "shapely",
            "ctk-cli",
            "scikit-image",
            "scikit-learn",
            "pandas",
            "imageio",
            "nimfa",
            "dask",
            "pillow",
        ],
        check=True,
    )
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stub = Path(site) / "slicer_cli_web"
    stub.mkdir(exist_ok=True)
    (stub / "__init__.py").write_text(
        '"""Empty stand-in: not on PyPI, imported by histomicstk.cli."""\n'
    )
    (stub / "ctk_cli_adjustment.py").write_text("")
    subprocess.run(probe, check=True)
    return py


def _truth(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from scipy import ndimage as ndi

    gt = np.asarray(Image.open(folder / "6_2_gt.png").convert("RGB")).astype(int)
    red = (gt[..., 0] > 150) & (gt[..., 1] < 100) & (gt[..., 2] < 100)
    blue = (gt[..., 2] > 150) & (gt[..., 0] < 100) & (gt[..., 1] < 100)
    xy, pos = [], []
    for positive, mask in ((True, red), (False, blue)):
        lab, n = ndi.label(mask, structure=np.ones((3, 3)))
        for c in ndi.center_of_mass(mask, lab, range(1, n + 1)):
            xy.append(c)
            pos.append(positive)
    return np.asarray(xy), np.asarray(pos)


def _f1(det: np.ndarray, truth: np.ndarray, radius: float) -> float:
    from scipy.optimize import linear_sum_assignment

    if len(det) == 0 or len(truth) == 0:
        return 0.0
    d = np.linalg.norm(det[:, None, :] - truth[None, :, :], axis=2)
    cost = np.where(d <= radius, d, 1e9)
    i, j = linear_sum_assignment(cost)
    tp = int((cost[i, j] < 1e9).sum())
    return 2.0 * tp / (len(det) + len(truth))


def _scores(
    det: np.ndarray, pos: np.ndarray, truth: np.ndarray, tpos: np.ndarray
) -> dict[str, float]:
    r = 4.0 / REAL_UM
    return {
        "f1_all": _f1(det, truth, r),
        "f1_positive": _f1(det[pos], truth[tpos], r),
        "positive_percent": 100.0 * float(np.mean(pos)) if len(pos) else 0.0,
        "expert_positive_percent": 100.0 * float(np.mean(tpos)),
        "n_detected": len(det),
    }


# ----------------------------------------------------------------------------- nkpanel side


def _nk_settings(real: bool) -> Any:
    from nkpanel.uterine.analyze import UterineSettings
    from nkpanel.uterine.detect import DetectionSettings

    if real:
        return UterineSettings(detection=DetectionSettings(compartment="nucleus"))
    return UterineSettings()


def _nk_kernel(path: Path, real: bool) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    from nkpanel.uterine.detect import detect_cells
    from nkpanel.uterine.images import _resize
    from nkpanel.uterine.stains import deconvolve, estimate_white, ruifrok_hdab

    rgb = np.asarray(Image.open(path).convert("RGB"))
    s = _nk_settings(real).detection
    ds = s.pixel_size_um / REAL_UM
    small = _resize(rgb, round(rgb.shape[1] / ds), round(rgb.shape[0] / ds))
    h, d = deconvolve(small, ruifrok_hdab(estimate_white(small)))
    cells, _ = detect_cells(h, d, s)
    return np.c_[(cells.y + 0.5) * ds - 0.5, (cells.x + 0.5) * ds - 0.5], cells.positive


def _nk_whole(path: Path, real: bool) -> tuple[np.ndarray, np.ndarray]:
    from nkpanel.uterine.analyze import analyze_source
    from nkpanel.uterine.images import open_image

    src = open_image(path, pixel_size_um=REAL_UM)
    a = analyze_source(src, _nk_settings(real))
    return np.c_[a.cells.y - 0.5, a.cells.x - 0.5], a.cells.positive


def _decode(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as im:
        np.asarray(im.convert("RGB"))


# ----------------------------------------------------------------------------- gigapixel slide


SLIDE_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    mode, slide, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    from nkpanel.uterine.batch import analyze_batch
    from nkpanel.uterine.images import open_image
    def hwm():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    res = {}
    if mode == "baseline":
        src = open_image(slide)
        src.read(0, 0, 1024, 1024, 2.0)
        src.close()
    elif mode == "analysis":
        t = time.perf_counter()
        b = analyze_batch([slide], out)
        res["seconds"] = time.perf_counter() - t
        r = b.results[0] if b.results else None
        res["failures"] = [f.reason for f in b.failures]
        if r is not None:
            res["stromal_cells"] = r.overall.stromal_cells
            res["cd56_positive_cells"] = r.overall.cd56_positive_cells
            res["stromal_area_mm2"] = r.overall.stromal_area_mm2
            res["tissue_area_mm2"] = r.tissue_area_mm2
            res["n_fields"] = len(r.fields)
    elif mode == "floor":
        import openslide, numpy as np
        from nkpanel.uterine.analyze import _read_overview
        src = open_image(slide)
        ds = 2.0 / src.pixel_size.um_per_px
        ov = _read_overview(src, ds)
        tissue = (ov.astype(int).sum(axis=2) < 3 * 225)
        src.close()
        osl = openslide.OpenSlide(str(slide))
        t = time.perf_counter()
        n = 0
        for y in range(0, osl.dimensions[1], 1024):
            for x in range(0, osl.dimensions[0], 1024):
                oy, ox = int(y / ds), int(x / ds)
                if tissue[oy:oy + int(1024 / ds) + 1, ox:ox + int(1024 / ds) + 1].any():
                    np.asarray(osl.read_region((x, y), 0, (1024, 1024)))
                    n += 1
        res["seconds"] = time.perf_counter() - t
        res["tiles"] = n
    res["vmhwm_kib"] = hwm()
    print(json.dumps(res))
    """
)


def _write_gigapixel(path: Path, side: int) -> dict[str, Any]:
    """A SYNTHETIC pyramidal TIFF: tissue (an ellipse of tiled synthetic fields) on glass."""
    import tifffile
    from PIL import Image

    from nkpanel.uterine.simulate import SYNTHETIC_TAG, FieldSpec, simulate_field

    t0 = time.perf_counter()
    tile = 1024
    n = side // tile
    variants = [
        simulate_field(
            FieldSpec(
                width_px=tile,
                height_px=tile,
                pixel_size_um=REAL_UM,
                seed=100 + k,
                n_glands=1 if k % 3 == 0 else 0,
            )
        ).rgb
        for k in range(6)
    ]
    rng = np.random.default_rng(1)
    glass = (np.array([241, 236, 229]) + rng.integers(-2, 3, (tile, tile, 3))).astype(np.uint8)
    cy = cx = (n - 1) / 2
    ry, rx = 0.46 * n, 0.36 * n
    inside = np.zeros((n, n), dtype=np.int16) - 1
    for ty in range(n):
        for tx in range(n):
            if ((ty - cy) / ry) ** 2 + ((tx - cx) / rx) ** 2 <= 1.0:
                inside[ty, tx] = (ty * 7 + tx * 3) % len(variants)

    def level_tiles(step: int):  # yields tiles of the level downsampled by `step`
        small = [np.asarray(Image.fromarray(v).reduce(step)) if step > 1 else v for v in variants]
        gsmall = np.asarray(Image.fromarray(glass).reduce(step)) if step > 1 else glass
        per = tile // step  # level pixels per base tile
        side_l = side // step
        for y in range(0, side_l, tile):
            for x in range(0, side_l, tile):
                out = np.empty((tile, tile, 3), np.uint8)
                for by in range(tile // per):
                    for bx in range(tile // per):
                        ty, tx = (y // per) + by, (x // per) + bx
                        k = inside[ty, tx] if ty < n and tx < n else -1
                        out[by * per : (by + 1) * per, bx * per : (bx + 1) * per] = (
                            small[k] if k >= 0 else gsmall
                        )
                yield out

    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for level, step in enumerate((1, 4, 16)):
            side_l = side // step
            tw.write(
                level_tiles(step),
                shape=(side_l, side_l, 3),
                dtype=np.uint8,
                tile=(tile, tile),
                photometric="rgb",
                compression="jpeg",
                compressionargs={"level": 90},
                resolution=(1e4 / (REAL_UM * step), 1e4 / (REAL_UM * step)),
                resolutionunit="CENTIMETER",
                subfiletype=1 if level else 0,
                description=SYNTHETIC_TAG if level == 0 else None,
                metadata=None,
            )
    return {
        "side_px": side,
        "megapixels": side * side / 1e6,
        "tissue_fraction": float((inside >= 0).mean()),
        "file_mb": path.stat().st_size / 1e6,
        "write_seconds": time.perf_counter() - t0,
    }


def _child(mode: str, slide: Path, out: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    res = subprocess.run(
        [sys.executable, "-c", SLIDE_CHILD, mode, str(slide), str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    if res.returncode != 0:
        raise RuntimeError(f"{mode} subprocess failed:\n{res.stderr[-3000:]}")
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiles", type=int, default=8, help="synthetic 1024² tiles (default 8)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per tile (best and median)")
    ap.add_argument("--json", type=Path, help="also write every number as JSON")
    ap.add_argument("--peers-venv", type=Path, default=DEFAULT_PEERS)
    ap.add_argument("--no-peers", action="store_true", help="skip HistomicsTK")
    ap.add_argument("--no-gigapixel", action="store_true", help="skip the 1-gigapixel slide")
    ap.add_argument("--slide-side", type=int, default=32768, help="slide side in pixels")
    args = ap.parse_args(argv)

    import scipy
    import skimage

    import nkpanel

    report: dict[str, Any] = {
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-image": skimage.__version__,
            "nkpanel": nkpanel.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": "1 (OMP/OPENBLAS/MKL_NUM_THREADS=1)",
        }
    }
    print("nkpanel endometrial NK benchmark (synthetic tiles and slide labelled SYNTHETIC)")
    for k, v in report["environment"].items():
        print(f"  {k}: {v}")

    with tempfile.TemporaryDirectory(prefix="nkpanel-bench-uterine-") as tmpd:
        tmp = Path(tmpd)
        from PIL import Image

        from nkpanel.uterine.simulate import FieldSpec, simulate_field

        tiles: list[tuple[Path, bool]] = []
        real = SHARED / "6_2.png"
        if real.is_file():
            tiles.append((real, True))
        else:
            print(f"note: {real} not found; the accuracy comparison is skipped")
        for k in range(args.tiles):
            f = simulate_field(
                FieldSpec(
                    width_px=1024,
                    height_px=1024,
                    pixel_size_um=REAL_UM,
                    seed=50 + k,
                    n_glands=k % 2,
                )
            )
            p = tmp / f"synthetic_tile_{k:02d}.png"
            Image.fromarray(f.rgb).save(p)
            tiles.append((p, False))
        mpix = [Image.open(p).size[0] * Image.open(p).size[1] / 1e6 for p, _ in tiles]
        total_mp = sum(mpix)

        def time_all(fn: Any) -> tuple[list[float], list[Any]]:
            per_tile_best: list[float] = []
            outs: list[Any] = []
            for p, is_real in tiles:
                fn(p, is_real)  # warm-up
                ts = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    o = fn(p, is_real)
                    ts.append(time.perf_counter() - t)
                per_tile_best.append(min(ts))
                outs.append(o)
            return per_tile_best, outs

        floor_t, _ = time_all(lambda p, r: _decode(p))
        kern_t, kern_out = time_all(_nk_kernel)
        whole_t, whole_out = time_all(_nk_whole)
        rows = {
            "decode floor (Pillow PNG)": sum(floor_t),
            "nkpanel kernel (decode+resample+deconvolve+detect)": sum(kern_t),
            "nkpanel whole analysis (analyze_source)": sum(whole_t),
        }
        htk: dict[str, Any] | None = None
        if not args.no_peers:
            py = _ensure_peers(args.peers_venv)
            job = tmp / "job.json"
            job.write_text(
                json.dumps(
                    {"tiles": [str(p) for p, _ in tiles], "repeat": args.repeat, "positive_od": 0.2}
                )
            )
            t0 = time.perf_counter()
            res = subprocess.run(
                [str(py), "-c", HTK_WORKER, str(job)],
                capture_output=True,
                text=True,
                env=os.environ.copy(),
            )
            if res.returncode != 0:
                print(res.stderr[-3000:])
                return 2
            htk = json.loads(res.stdout.strip().splitlines()[-1])
            htk["wall_seconds"] = time.perf_counter() - t0
            rows[f"HistomicsTK {htk['version']} (decode+deconvolve+Kofahi+measure)"] = sum(
                min(t["times"]) for t in htk["tiles"]
            )
        print(f"\nTiles: {len(tiles)} ({total_mp:.2f} megapixels), best of {args.repeat}, 1 core")
        for name, secs in rows.items():
            print(f"  {name:<58} {secs:8.3f} s  {total_mp / secs:7.2f} MP/s")
        kern = rows["nkpanel kernel (decode+resample+deconvolve+detect)"]
        whole = rows["nkpanel whole analysis (analyze_source)"]
        floor = rows["decode floor (Pillow PNG)"]
        ratios: dict[str, float] = {
            "nkpanel kernel / decode floor": kern / floor,
            "nkpanel whole / decode floor": whole / floor,
        }
        if htk is not None:
            htk_s = next(v for k, v in rows.items() if k.startswith("HistomicsTK"))
            ratios["HistomicsTK / nkpanel kernel"] = htk_s / kern
            ratios["HistomicsTK / nkpanel whole analysis"] = htk_s / whole
        print("\nRatios")
        for k, v in ratios.items():
            print(f"  {k:<40} {v:6.2f}")
        report["tiles"] = {
            "n": len(tiles),
            "megapixels": total_mp,
            "seconds": rows,
            "ratios": ratios,
        }

        if real.is_file():
            truth, tpos = _truth(SHARED)
            acc = {
                "nkpanel kernel": _scores(*kern_out[0], truth, tpos),
                "nkpanel whole analysis": _scores(*whole_out[0], truth, tpos),
            }
            if htk is not None:
                t = htk["tiles"][0]
                acc["HistomicsTK"] = _scores(
                    np.asarray(t["yx"]).reshape(-1, 2), np.asarray(t["positive"], bool), truth, tpos
                )
            print("\nReal field 6_2.png (Ki67 DAB, expert mask; match within 4 µm)")
            for name, s in acc.items():
                print(
                    f"  {name:<24} F1 all {s['f1_all']:.3f}  F1 positive {s['f1_positive']:.3f}"
                    f"  positive {s['positive_percent']:.1f}% (expert "
                    f"{s['expert_positive_percent']:.1f}%)  detections {s['n_detected']}"
                )
            report["real_field_accuracy"] = acc

        if not args.no_gigapixel:
            slide = tmp / "synthetic_gigapixel.tif"
            print(f"\nWriting a SYNTHETIC {args.slide_side}² slide …", flush=True)
            info = _write_gigapixel(slide, args.slide_side)
            print(
                f"  {info['megapixels']:.0f} MP, tissue {info['tissue_fraction']:.0%} of tiles,"
                f" {info['file_mb']:.0f} MB, written in {info['write_seconds']:.0f} s"
            )
            base = _child("baseline", slide, tmp / "out0")
            floor_s = _child("floor", slide, tmp / "out1")
            run = _child("analysis", slide, tmp / "out2")
            peak = (run["vmhwm_kib"] - base["vmhwm_kib"]) / 1024
            tissue_mp = info["megapixels"] * info["tissue_fraction"]
            print(
                f"  decode floor: {floor_s['tiles']} tissue tiles at level 0 in "
                f"{floor_s['seconds']:.1f} s"
            )
            print(
                f"  analysis with all outputs: {run['seconds']:.1f} s "
                f"({tissue_mp / run['seconds']:.2f} tissue MP/s), "
                f"ratio to floor {run['seconds'] / floor_s['seconds']:.2f}"
            )
            print(
                f"  counted {run.get('stromal_cells')} stromal cells, "
                f"{run.get('cd56_positive_cells')} CD56+, {run.get('n_fields')} fields; "
                f"failures {run.get('failures')}"
            )
            print(
                f"  peak memory: {run['vmhwm_kib'] / 1024:.0f} MiB RSS "
                f"(import + open baseline {base['vmhwm_kib'] / 1024:.0f} MiB; "
                f"analysis adds {peak:.0f} MiB) for a {info['megapixels'] * 3 / 1024:.1f} GiB "
                "RGB slide"
            )
            report["gigapixel"] = {
                "slide": info,
                "baseline": base,
                "floor": floor_s,
                "analysis": run,
                "peak_added_mib": peak,
            }

    print("\nGoals (issue 4)")
    if "HistomicsTK / nkpanel kernel" in ratios:
        r = ratios["HistomicsTK / nkpanel whole analysis"]
        print(
            f"  HistomicsTK / nkpanel (whole analysis) ≥ {GOAL_HTK_RATIO:g}: "
            f"{'met' if r >= GOAL_HTK_RATIO else 'MISSED'} ({r:.1f})"
        )
    r = ratios["nkpanel whole / decode floor"]
    print(
        f"  nkpanel / decode floor ≤ {GOAL_FLOOR_RATIO:g}: "
        f"{'met' if r <= GOAL_FLOOR_RATIO else 'MISSED'} ({r:.1f})"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
