"""A full synthetic case, reported once per session: all three biomarkers, an earlier episode
before treatment, pre-analytic caveats, a failed file, gating plots and an overlay thumbnail."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nkpanel.report import Amendment, LabInfo, ReportPaths, build_reports
from tests.interpret.summaries import biopsy, flow_entry, plate, summary

ISSUED = dt.datetime(2026, 11, 5, 14, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Reported:
    paths: ReportPaths
    doc: dict[str, Any]
    bundle: dict[str, Any]
    results_dir: Path


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (240, 200), "white")
    draw = ImageDraw.Draw(img)
    draw.ellipse((60, 50, 180, 150), fill=colour)
    draw.text((5, 5), "SYNTHETIC", fill=(179, 38, 30))
    img.save(path)


def full_summaries() -> tuple[dict[str, Any], dict[str, Any]]:
    """(current on prednisolone, earlier before treatment)."""
    before = summary(
        episode="SYNTH-EP-1",
        collected="2026-06-01T08:30:00",
        flow=[flow_entry(nk_pct=21.0, per_ul=420.0)],
        cytotoxicity=[plate(lysis=24.0, collected="2026-06-01T08:30:00")],
        endometrial=[biopsy(pct=6.0, lh_day=8, collected="2026-05-20T10:00:00")],
    )
    current = summary(
        episode="SYNTH-EP-2",
        flow=[
            flow_entry(
                nk_pct=25.5,
                per_ul=455.0,
                bright=7.1,
                # as the case pipeline lists them (gate order); NK-like_T was not drawn
                figures=[
                    f"flow/draw-1/samples/tube1/plots/{g}.png"
                    for g in ("Time", "NK", "Lymphocytes", "NK-like_T")
                ],
            ),
            flow_entry(sample="tube2", failed_check="flow rate unstable over 20% (limit 5%)"),
        ],
        cytotoxicity=[plate(lysis=16.0, intralipid=35.0)],
        endometrial=[biopsy(pct=3.9, lh_day=8, figures=["endometrial/overlay_field01.png"])],
        pre_analytic={"current_corticosteroid": True, "medication_note": "prednisolone"},
        draw_pre_analytic={
            "acute_exposure": "exercise",
            "minutes_since_exposure": 20,
            "anticoagulant": "EDTA",
            "processed": "2026-11-02T15:00:00",  # 6.5 h: fresh enough to compare
        },
        failures=[{"source": "/data/tube3.fcs", "reason": "truncated FCS file"}],
    )
    return current, before


def report_full_case(out: Path, *, pdf: bool = True) -> Reported:
    results_dir = out / "results"
    plots = results_dir / "flow" / "draw-1" / "samples" / "tube1" / "plots"
    for name, colour in (("Lymphocytes", (60, 120, 200)), ("NK", (40, 160, 90))):
        _png(plots / f"{name}.png", colour)
    _png(results_dir / "endometrial" / "overlay_field01.png", (150, 90, 40))
    current, before = full_summaries()
    paths = build_reports(
        current,
        out / "report",
        history=[before],
        lab=LabInfo(
            name="Synthetic Reproductive Immunology Lab",
            address="1 Example Street, Testville",
            accreditation="ISO 15189 (synthetic accreditation no. 0000)",
            analyst="A. Analyst",
            authoriser="Dr B. Authoriser",
            requester="Dr C. Requester, fertility clinic",
            timezone="Europe/London",
        ),
        results_dir=results_dir,
        issued=ISSUED,
        version=2,
        amendments=[
            Amendment(
                version=1,
                date=dt.datetime(2026, 11, 4, 9, 0),
                reason="bead lot corrected",
                by="A. Analyst",
            )
        ],
        pdf=pdf,
    )
    return Reported(
        paths=paths,
        doc=json.loads(paths.json.read_text("utf-8")),
        bundle=json.loads(paths.fhir.read_text("utf-8")),
        results_dir=results_dir,
    )


@pytest.fixture(scope="session")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Reported:
    return report_full_case(tmp_path_factory.mktemp("full-case"))
