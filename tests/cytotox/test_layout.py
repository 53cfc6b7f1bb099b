"""Reading plate layouts: roles, ratios, treatments, and the rows that cannot be used."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nkpanel.cytotox.layout import (
    PlateLayout,
    parse_ratio,
    parse_role,
    parse_treatment,
    read_layout,
)
from nkpanel.errors import InputError


def test_plain_form(tmp_path: Path) -> None:
    p = tmp_path / "layout.csv"
    p.write_text(
        "well,sample,role,ratio,treatment\n"
        "A1,,spontaneous,,none\nA4,,maximum,,\nA7,,blank,,\n"
        "B1,P01,test,50,none\nB4,P01,test,25:1,IVIG 2 mg/mL\nH12,,,,\n"
    )
    layout = read_layout(p)
    assert [w.well for w in layout.wells] == ["A1", "A4", "A7", "B1", "B4"]
    assert [w.role for w in layout.wells] == ["spontaneous", "maximum", "blank", "test", "test"]
    assert layout.wells[4].ratio == 25.0 and layout.wells[4].treatment.label == "IVIG 2 mg/mL"
    assert layout.samples == ("P01",) and not layout.problems


def test_xlsx_layout_with_other_column_names(tmp_path: Path) -> None:
    p = tmp_path / "layout.xlsx"
    frame = pd.DataFrame(
        {
            "Well Position": ["A01", "B01"],
            "Patient": [None, "P9"],
            "Type": ["Targets alone", "E"],
            "E:T": [None, 12.5],
            "Condition": [None, "Intralipid (18 mg/ml)"],
            "Rep": [1, 2],
            "Comment": ["x", "y"],
        }
    )
    frame.to_excel(p, index=False)
    layout = read_layout(p)
    assert layout.wells[0].role == "spontaneous" and layout.wells[1].ratio == 12.5
    assert layout.wells[1].treatment.label == "intralipid 18 mg/mL"
    assert layout.wells[1].replicate == 2
    assert layout.notes == ("column(s) not used: Comment",)


def test_problem_rows_name_the_well_and_cause(tmp_path: Path) -> None:
    p = tmp_path / "layout.csv"
    p.write_text(
        "well,sample,role,ratio,treatment,replicate\n"
        "A1,,spontaneous,,,\n"
        "B1,P1,tset,50,,\n"  # unknown role
        "B2,P1,test,,,\n"  # no ratio
        "B3,P1,test,fifty,,\n"  # text ratio
        "B4,,test,50,,\n"  # no sample
        "B5,P2,test,50,intralipid 1%,\n"  # unknown unit
        "B6,P2,test,50,,two\n"  # replicate
        "B7,P2,test,50,,\n"
        "B7,P3,test,25,,\n"  # duplicate
        "ZZ9,P3,test,25,,\n"
    )
    layout = read_layout(p)
    causes = {(x.well, x.sample): x.cause for x in layout.problems}
    assert "unknown role 'tset'" in causes[("B1", "P1")]
    assert "without an E:T ratio" in causes[("B2", "P1")]
    assert "'fifty' is not a number" in causes[("B3", "P1")]
    assert "without a sample id" in causes[("B4", "")]
    assert "unknown concentration unit '%'" in causes[("B5", "P2")]
    assert "replicate 'two'" in causes[("B6", "P2")]
    assert "assigned twice (lines 9 and 10)" in causes[("B7", "P3")]
    assert "assigned twice" in causes[("B7", "P2")]
    assert "'ZZ9' is not a well name" in causes[(None, "P3")]
    assert [w.well for w in layout.wells] == ["A1"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("a,b\n1,2\n", "no header with 'well' and 'role'"),
        ("well,role\nA1,\nA2,empty\n", "assigns no well"),
    ],
)
def test_bad_layout_files(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "layout.csv"
    p.write_text(content)
    with pytest.raises(InputError, match=message):
        read_layout(p)


def test_parsers() -> None:
    assert parse_role("MAX") == "maximum" and parse_role("medium") == "blank"
    assert parse_role("Effectors alone") == "effector_spontaneous"
    assert parse_role(" ") is None
    assert parse_ratio("50:1") == 50.0 and parse_ratio("1:2") == 0.5 and parse_ratio(6.25) == 6.25
    for bad in ("0", "-5", "50:0", "x"):
        with pytest.raises(ValueError):
            parse_ratio(bad)
    assert parse_treatment("IVIG 4 g/L").label == "IVIG 4 mg/mL"
    assert parse_treatment("IgIV 500 µg/mL").mg_per_ml == pytest.approx(0.5)
    assert parse_treatment("anti-CD16").label == "anti-CD16"
    assert parse_treatment("untreated").is_none
    with pytest.raises(ValueError, match="has no unit"):
        parse_treatment("IVIG 2")


def test_from_rows() -> None:
    layout = PlateLayout.from_rows(
        [
            {"well": "A1", "role": "spontaneous"},
            {"well": "B1", "role": "test", "sample": "P1", "ratio": 50},
        ]
    )
    assert layout.wells[1].ratio == 50.0 and layout.source == "memory"
