"""Accuracy of the automated NK gating over random simulated designs (all synthetic).

Run from the repository root::

    .venv/bin/python benchmarks/sweep_flow_accuracy.py [--kind realistic|extreme] [--tubes N]
        [--seed S]

Each tube is drawn at random from a design space and simulated with
:func:`nkpanel.flow.simulate.simulate_tube` (its truth comes with it); the automated analysis
(bead method, 50,000 beads in 50 µL) is compared with that truth:

* ``realistic``: NK 2–30% of lymphocytes, CD56bright 2–20% of NK, B 3–20%, NKT 1–10%,
  lymphocytes 15–45%, monocytes 4–12% and basophils 0–1% of leukocytes, debris 0–15%,
  doublets 0–5%, 0–0.5% saturated events;
* ``extreme``: NK 2–40%, lymphocytes 8–60%, monocytes 2–15% and basophils 0–2% of
  leukocytes, debris up to 30%, doublets up to 10%, up to 1.5% saturated events, tubes
  without beads, without CD45 or with CD16 and CD56 on one channel.

It reports the NK % error (percentage points) and the NK/µL error (relative) of the reportable
tubes, and lists the tubes that are reportable, carry no warning, and are off by more than one
point (or 10% of NK/µL): the ones a lab would report without being told to look.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np

from nkpanel.flow.analyze import AbsoluteCountInputs, FlowSettings, analyze_sample
from nkpanel.flow.simulate import SimulationSpec, simulate_tube


@dataclass(frozen=True)
class Outcome:
    spec: dict[str, Any]
    reportable: bool
    warned: bool
    nk_error: float | None  # percentage points
    per_ul_error: float | None  # relative


def draw(rng: np.random.Generator, kind: str) -> dict[str, Any]:
    """One random design. Basophils are drawn from the design's own seed, so that the other
    parameters of every design are those drawn before basophils were simulated."""
    design = _design(rng, kind)
    own = np.random.default_rng(design["seed"])
    basophils = own.uniform(0, 1) if kind == "realistic" else own.choice([0, 0.5, 1, 2])
    return {**design, "basophil_percent_of_leukocytes": float(basophils)}


def _design(rng: np.random.Generator, kind: str) -> dict[str, Any]:
    if kind == "realistic":
        return {
            "seed": int(rng.integers(10_000, 99_999)),
            "n_events": int(rng.choice([50_000, 100_000, 300_000])),
            "nk_percent_of_lymphocytes": float(rng.uniform(2, 30)),
            "cd56bright_percent_of_nk": float(rng.uniform(2, 20)),
            "nkt_percent_of_lymphocytes": float(rng.uniform(1, 10)),
            "b_percent_of_lymphocytes": float(rng.uniform(3, 20)),
            "lymphocyte_percent_of_leukocytes": float(rng.uniform(15, 45)),
            "monocyte_percent_of_leukocytes": float(rng.uniform(4, 12)),
            "debris_fraction": float(rng.uniform(0, 0.15)),
            "doublet_fraction": float(rng.uniform(0, 0.05)),
            "saturate_fraction": float(rng.choice([0, 0, 0.002, 0.005])),
        }
    return {
        "seed": int(rng.integers(1_000, 9_999)),
        "n_events": int(rng.choice([30_000, 100_000, 300_000])),
        "nk_percent_of_lymphocytes": float(rng.choice([2, 5, 12, 25, 40])),
        "cd56bright_percent_of_nk": float(rng.choice([2, 8, 20, 40])),
        "nkt_percent_of_lymphocytes": float(rng.choice([0.5, 4, 15])),
        "b_percent_of_lymphocytes": float(rng.choice([0, 2, 12, 30])),
        "lymphocyte_percent_of_leukocytes": float(rng.choice([8, 20, 30, 60])),
        "monocyte_percent_of_leukocytes": float(rng.choice([2, 7, 15])),
        "debris_fraction": float(rng.choice([0.0, 0.08, 0.3])),
        "doublet_fraction": float(rng.choice([0.0, 0.03, 0.1])),
        "saturate_fraction": float(rng.choice([0.0, 0.005, 0.015])),
        "with_beads": bool(rng.random() < 0.7),
        "combined_cd16_cd56": bool(rng.random() < 0.15),
        "with_cd45": bool(rng.random() < 0.85),
    }


def run_one(spec: dict[str, Any]) -> Outcome:
    tube = simulate_tube(SimulationSpec(**spec))
    beads = spec.get("with_beads", True)
    settings = FlowSettings(counts=AbsoluteCountInputs(50_000.0, 50.0)) if beads else FlowSettings()
    r = analyze_sample(tube.to_sample(), settings).result
    nk = r.nk_percent_of_lymphocytes
    nk_error = None if nk is None else nk - tube.truth["nk_percent_of_lymphocytes"]
    truth_ul = tube.truth.get("nk_per_ul_bead_method") if beads else None
    per_ul = r.nk_cells_per_ul
    per_ul_error = None if per_ul is None or not truth_ul else per_ul / truth_ul - 1.0
    warned = any(not q.passed for q in r.qc)
    return Outcome(spec, r.reportable, warned, nk_error, per_ul_error)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("realistic", "extreme"), default="realistic")
    parser.add_argument("--tubes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    outcomes = [run_one(draw(rng, args.kind)) for _ in range(args.tubes)]
    shown = [o for o in outcomes if o.reportable and o.nk_error is not None]
    nk = np.abs([o.nk_error for o in shown if o.nk_error is not None])
    ul = np.abs([o.per_ul_error for o in shown if o.per_ul_error is not None])
    print(
        f"{args.kind} designs (synthetic), seed {args.seed}: {len(outcomes)} tubes, "
        f"{len(shown)} reportable"
    )
    if nk.size:
        print(
            f"NK % error, points: mean {nk.mean():.2f}, 95th percentile "
            f"{np.percentile(nk, 95):.2f}, max {nk.max():.2f}; over 1 point: "
            f"{int((nk > 1).sum())}"
        )
    if ul.size:
        print(
            f"NK/µL error, relative: mean {ul.mean():.3f}, 95th percentile "
            f"{np.percentile(ul, 95):.3f}, max {ul.max():.3f}"
        )
    silent = [
        o
        for o in shown
        if not o.warned
        and (
            (o.nk_error is not None and abs(o.nk_error) > 1.0)
            or (o.per_ul_error is not None and abs(o.per_ul_error) > 0.1)
        )
    ]
    print(f"reportable, no warning, and off by > 1 point or > 10% NK/µL: {len(silent)}")
    for o in silent:
        print(f"  NK error {o.nk_error:+.2f} points; NK/µL error {o.per_ul_error}; {o.spec}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
