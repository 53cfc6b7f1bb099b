"""A small hand-made plate for the tests, written in the plain form (well,value and
well,sample,role,ratio,treatment). Every expected number in the tests is worked out by hand from
these values (comments give the arithmetic)."""

from __future__ import annotations

from pathlib import Path

#: plate-wide controls: spontaneous mean 500, maximum mean 2500, blank 100
#: → blank-corrected S = 400, M = 2400, span M − S = 2000, S/M = 400/2400 = 16.67%
CONTROLS = {
    "A1": ("", "spontaneous", "", "none", 500.0),
    "A2": ("", "spontaneous", "", "none", 520.0),
    "A3": ("", "spontaneous", "", "none", 480.0),
    "A4": ("", "maximum", "", "none", 2500.0),
    "A5": ("", "maximum", "", "none", 2550.0),
    "A6": ("", "maximum", "", "none", 2450.0),
    "A7": ("", "blank", "", "none", 100.0),
    "A8": ("", "blank", "", "none", 100.0),
    "A9": ("", "blank", "", "none", 100.0),
}
#: sample P1: lysis = (E − 100 − 400) / 2000 × 100
P1 = {
    # 50:1 → 1200, 1240, 1160 corrected → 40, 42, 38 %
    "B1": ("P1", "test", "50", "none", 1300.0),
    "B2": ("P1", "test", "50", "none", 1340.0),
    "B3": ("P1", "test", "50", "none", 1260.0),
    # 25:1 → 800 → 20 %
    "B4": ("P1", "test", "25", "none", 900.0),
    "B5": ("P1", "test", "25", "none", 900.0),
    "B6": ("P1", "test", "25", "none", 900.0),
    # 12.5:1 → 600, 620, 580 → 10, 11, 9 %
    "B7": ("P1", "test", "12.5", "none", 700.0),
    "B8": ("P1", "test", "12.5", "none", 720.0),
    "B9": ("P1", "test", "12.5", "none", 680.0),
    # IVIG 2 mg/mL: 50:1 → 20, 21, 19 %; 25:1 → 10 %; 12.5:1 → 5 %
    "C1": ("P1", "test", "50", "IVIG 2 mg/mL", 900.0),
    "C2": ("P1", "test", "50", "IVIG 2 mg/mL", 920.0),
    "C3": ("P1", "test", "50", "IVIG 2 mg/mL", 880.0),
    "C4": ("P1", "test", "25", "IVIG 2 mg/mL", 700.0),
    "C5": ("P1", "test", "25", "IVIG 2 mg/mL", 700.0),
    "C6": ("P1", "test", "25", "IVIG 2 mg/mL", 700.0),
    "C7": ("P1", "test", "12.5", "IVIG 2 mg/mL", 600.0),
    "C8": ("P1", "test", "12.5", "IVIG 2 mg/mL", 600.0),
    "C9": ("P1", "test", "12.5", "IVIG 2 mg/mL", 600.0),
}
#: sample P2: 50:1 → 400 corrected → 0 %; 25:1 → 360 → −2 % (negative, reported as measured)
P2 = {
    "D1": ("P2", "test", "50:1", "none", 500.0),
    "D2": ("P2", "test", "50:1", "none", 500.0),
    "D3": ("P2", "test", "50:1", "none", 500.0),
    "D4": ("P2", "test", "25:1", "none", 460.0),
    "D5": ("P2", "test", "25:1", "none", 460.0),
    "D6": ("P2", "test", "25:1", "none", 460.0),
}

Well = tuple[str, str, str, str, float]


def plate_wells() -> dict[str, Well]:
    return {**CONTROLS, **P1, **P2}


def write_plate(
    folder: Path,
    wells: dict[str, Well] | None = None,
    *,
    reads: dict[str, str] | None = None,
    value_header: str = "value",
) -> tuple[Path, Path]:
    """Write layout.csv and reads.csv; ``reads`` overrides the text of single read cells."""
    wells = plate_wells() if wells is None else wells
    folder.mkdir(parents=True, exist_ok=True)
    layout = folder / "layout.csv"
    lines = ["well,sample,role,ratio,treatment"]
    lines += [f"{w},{s},{r},{ratio},{t}" for w, (s, r, ratio, t, _) in wells.items()]
    layout.write_text("\n".join(lines) + "\n")
    values = {w: format(v, "g") for w, (*_, v) in wells.items()}
    values.update(reads or {})
    path = folder / "reads.csv"
    rows = [f"well,{value_header}"] + [f"{w},{v}" for w, v in values.items() if v != "<absent>"]
    path.write_text("\n".join(rows) + "\n")
    return path, layout
