"""Reference intervals are data with sources: the bundled file against the domain brief, and a
lab's file replacing and extending it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nkpanel.errors import ConfigError
from nkpanel.interpret import MEASURANDS, load_intervals

DOMAIN = Path(__file__).resolve().parents[2].parent / "shared" / "domain.md"

#: Limits copied by hand from shared/domain.md (the truth the bundled file must match).
DOMAIN_LIMITS = {
    "arup-0092404-pct": (4.0, 26.0),
    "arup-0092404-abs": (78.0, 470.0),
    "arup-2013805-pct": (5.0, 32.5),
    "arup-2013805-abs": (91.0, 593.0),
    "arup-2013805-cd56bright": (0.7, 6.3),
    "arup-2013805-cd56dim": (47.0, 94.5),
    "arup-2013805-nklike-t": (0.9, 14.4),
    "baystate-tbnk-pct": (3.0, 20.0),
    "baystate-tbnk-abs": (41.0, 411.0),
    "ajri-1995-cutoff-12": (None, 12.0),
    "hum-reprod-2010-cutoff-18": (None, 18.0),
    "lash-2016-lh7": (1.2, 4.5),
    "chen-2020-cutoff-4.5": (None, 4.5),
    "quenby-2005-cutoff-5": (None, 5.0),
}


def test_bundled_intervals_match_the_domain_brief() -> None:
    ivs = load_intervals()
    assert set(ivs.intervals) == set(DOMAIN_LIMITS)
    for iv_id, (lower, upper) in DOMAIN_LIMITS.items():
        iv = ivs.intervals[iv_id]
        assert (iv.lower, iv.upper) == (lower, upper), iv_id
        assert iv.source and iv.method and iv.population
        assert iv.unit == MEASURANDS[iv.measurand].unit


def test_every_source_is_named_in_the_domain_brief() -> None:
    if not DOMAIN.is_file():
        pytest.skip(f"domain brief not found at {DOMAIN}")
    text = DOMAIN.read_text("utf-8")
    for iv in load_intervals().intervals.values():
        key = {
            "arup-0092404": "0092404",
            "arup-2013805": "2013805",
            "baystate": "Baystate",
            "ajri-1995": "tb01136",
            "hum-reprod-2010": "Hum Reprod 2010;25(1)",
            "lash-2016": "aji.13156",
            "chen-2020": "46:858",
            "quenby-2005": "Quenby 2005",
        }
        needle = next(v for k, v in key.items() if iv.id.startswith(k))
        assert needle in text, iv.id


def test_defaults_and_several_sources_per_measurand() -> None:
    ivs = load_intervals()
    assert ivs.default_for("pnk-pct-lymph").id == "arup-0092404-pct"  # type: ignore[union-attr]
    assert len(ivs.for_measurand("pnk-pct-lymph")) == 5
    assert ivs.for_measurand("pnk-pct-lymph")[0].id == "arup-0092404-pct"  # default first
    # no interval where the brief gives none or marks a criterion as not validated
    for code in ("nka-lu", "nka-suppression-ivig", "nka-suppression-intralipid", "unk-per-mm2"):
        assert ivs.for_measurand(code) == []
    assert ivs.default_for("nka-lysis-50-1") is None
    assert ivs.cv_for("unk-pct-stroma").cv_percent == 10.3  # type: ignore[union-attr]
    assert ivs.sample_age_limit("flow", "EDTA").max_hours == 24  # type: ignore[union-attr]
    assert ivs.sample_age_limit("flow", "ACD").max_hours == 48  # type: ignore[union-attr]
    assert ivs.sample_age_limit("flow", None).max_hours == 48  # type: ignore[union-attr]


LAB = """
[defaults]
"pnk-pct-lymph" = "lab-own-pct"
"nka-lysis-50-1" = "lab-nka"

[[interval]]
id = "lab-own-pct"
measurand = "pnk-pct-lymph"
kind = "reference_interval"
lower = 6.0
upper = 22.0
unit = "%"
method = "our TBNK tube, 120 local controls"
population = "local healthy women 20-45"
source = "Example lab validation report 2026 (synthetic)"

[[interval]]
id = "lab-nka"
measurand = "nka-lysis-50-1"
kind = "clinic_cutoff"
upper = 15.0
unit = "%"
method = "51Cr release"
population = "lab convention"
source = "Example lab SOP (synthetic)"

[[interval]]
id = "arup-0092404-abs"
measurand = "pnk-per-ul"
kind = "reference_interval"
lower = 80.0
upper = 460.0
unit = "cells/µL"
method = "replaced"
population = "replaced"
source = "Example lab (synthetic)"
"""


def test_lab_file_extends_and_replaces(tmp_path: Path) -> None:
    f = tmp_path / "lab.toml"
    f.write_text(LAB, "utf-8")
    ivs = load_intervals(f)
    assert ivs.default_for("pnk-pct-lymph").source.startswith("Example lab validation")  # type: ignore[union-attr]
    assert ivs.default_for("nka-lysis-50-1").upper == 15.0  # type: ignore[union-attr]
    assert ivs.intervals["arup-0092404-abs"].lower == 80.0
    assert "arup-2013805-pct" in ivs.intervals  # bundled ones kept
    assert ivs.files[-1] == str(f)


def test_lab_file_replaces_everything(tmp_path: Path) -> None:
    f = tmp_path / "lab.toml"
    body = LAB.replace('"arup-0092404-abs"', '"lab-abs"')
    f.write_text("replace_bundled = true\n" + body, "utf-8")
    ivs = load_intervals(f)
    assert set(ivs.intervals) == {"lab-own-pct", "lab-nka", "lab-abs"}
    assert ivs.default_for("pnk-cd56bright-pct-nk") is None
    assert ivs.sample_age == ()


def test_lab_may_withdraw_a_default(tmp_path: Path) -> None:
    f = tmp_path / "lab.toml"
    f.write_text('[defaults]\n"pnk-pct-lymph" = ""\n', "utf-8")
    assert load_intervals(f).default_for("pnk-pct-lymph") is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "[[interval]]\nid='x'\nmeasurand='nope'\nkind='reference_interval'\nupper=1.0\n"
            "unit='%'\nmethod='m'\npopulation='p'\nsource='src'\n",
            "unknown measurand",
        ),
        (
            "[[interval]]\nid='x'\nmeasurand='pnk-per-ul'\nkind='reference_interval'\nupper=1.0\n"
            "unit='%'\nmethod='m'\npopulation='p'\nsource='src'\n",
            "reported in",
        ),
        (
            "[[interval]]\nid='x'\nmeasurand='pnk-pct-lymph'\nkind='reference_interval'\n"
            "lower=9.0\nupper=1.0\nunit='%'\nmethod='m'\npopulation='p'\nsource='src'\n",
            "above",
        ),
        (
            "[[interval]]\nid='x'\nmeasurand='pnk-pct-lymph'\nkind='reference_interval'\n"
            "unit='%'\nmethod='m'\npopulation='p'\nsource='src'\n",
            "lower limit",
        ),
        (
            "[[interval]]\nid='x'\nmeasurand='pnk-pct-lymph'\nkind='reference_interval'\n"
            "upper=1.0\nunit='%'\nmethod='m'\npopulation='p'\n",
            "source",
        ),
        ("[defaults]\n'pnk-per-ul' = 'arup-0092404-pct'\n", "not an interval of that measurand"),
        ("[defaults]\n'pnk-per-ul' = 'missing'\n", "not an interval of that measurand"),
        ("[defaults]\n'bogus' = 'x'\n", "unknown measurand"),
        (
            "[[interval]]\nid='x'\nmeasurand='pnk-pct-lymph'\nkind='reference_interval'\n"
            "upper=1.0\nunit='%'\nmethod='m'\npopulation='p'\nsource='src'\n"
            "[[interval]]\nid='x'\nmeasurand='pnk-pct-lymph'\nkind='reference_interval'\n"
            "upper=2.0\nunit='%'\nmethod='m'\npopulation='p'\nsource='src'\n",
            "used twice",
        ),
        ("this is = = not toml", "not valid TOML"),
        ("unexpected_key = 1\n", "unexpected_key"),
    ],
)
def test_bad_lab_files_name_the_file_and_cause(tmp_path: Path, body: str, expected: str) -> None:
    f = tmp_path / "lab.toml"
    f.write_text(body, "utf-8")
    with pytest.raises(ConfigError) as info:
        load_intervals(f)
    assert str(f) in str(info.value)
    assert expected in str(info.value)


def test_missing_lab_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_intervals(tmp_path / "absent.toml")


_LAB_IV = (
    "[[interval]]\nid='lab-x'\nmeasurand='pnk-pct-lymph'\nkind='reference_interval'\n"
    "lower=5.0\nupper=20.0\nunit='%'\nmethod='our TBNK tube'\n"
)


@pytest.mark.parametrize(
    ("fields", "entry"),
    [
        # population text that names a diagnosis ("immune infertility")
        (
            "population='women without immune infertility'\nsource='Lab study 2026'\n",
            "interval 'lab-x' population",
        ),
        # a source that doses a treatment
        (
            "population='local controls'\nsource='Lab SOP 2026: give 20 mg prednisolone'\n",
            "interval 'lab-x' source",
        ),
        (
            "population='local controls'\nsource='Lab study 2026'\nnote='NK-mediated loss'\n",
            "interval 'lab-x' note",
        ),
        # recommendations by outcome or need (audit 19: both reached the clinician report)
        (
            "population='our controls'\nsource='Lab study 2026'\n"
            "note='Patients above this benefit from IVIG.'\n",
            "interval 'lab-x' note",
        ),
        (
            "population='our controls'\nsource='Lab study 2026'\n"
            "note='Elevated levels warrant immunomodulatory therapy.'\n",
            "interval 'lab-x' note",
        ),
    ],
)
def test_lab_text_breaking_the_wording_rules_is_refused_at_load(
    tmp_path: Path, fields: str, entry: str
) -> None:
    # the text is printed in the report's sentences; it is checked once, when the lab's file
    # loads, and a violation is a ConfigError naming the file and the entry (never an
    # AssertionError later, while the report is written)
    f = tmp_path / "lab.toml"
    f.write_text(_LAB_IV + fields, "utf-8")
    with pytest.raises(ConfigError) as info:
        load_intervals(f)
    assert str(f) in str(info.value) and entry in str(info.value)


def test_sample_age_source_is_checked_too(tmp_path: Path) -> None:
    f = tmp_path / "lab.toml"
    f.write_text(
        "[[sample_age]]\nbiomarker='flow'\nmax_hours=24\nsource='SOP: diagnosis of NK-mediated "
        "loss needs fresh blood'\n",
        "utf-8",
    )
    with pytest.raises(ConfigError, match="sample_age for flow source"):
        load_intervals(f)


def test_healthy_population_only_on_laboratory_reference_intervals(tmp_path: Path) -> None:
    ivs = load_intervals()
    # domain brief §1: the ARUP and Baystate ranges are laboratory reference intervals; the uNK
    # range at LH+7 and every clinic cutoff are not ranges of healthy adults
    for iv in ivs.intervals.values():
        expected = iv.id.startswith(("arup-", "baystate-"))
        assert iv.healthy_population is expected, iv.id
    f = tmp_path / "lab.toml"
    f.write_text(
        "[[interval]]\nid='c'\nmeasurand='pnk-pct-lymph'\nkind='clinic_cutoff'\nupper=12.0\n"
        "unit='%'\nmethod='m'\npopulation='p'\nsource='Lab 2026'\nhealthy_population=true\n",
        "utf-8",
    )
    with pytest.raises(ConfigError, match="healthy_population applies only"):
        load_intervals(f)


@pytest.mark.parametrize("source", ["???", "TBD", "n/a", "N.A.", "unknown", "1234"])
def test_a_placeholder_is_no_source(tmp_path: Path, source: str) -> None:
    """Audit 19: "???" was accepted as an interval's source and printed beside its limits."""
    f = tmp_path / "lab.toml"
    f.write_text(_LAB_IV + f"population='our controls'\nsource='{source}'\n", "utf-8")
    with pytest.raises(ConfigError) as info:
        load_intervals(f)
    assert str(f) in str(info.value) and "names no source" in str(info.value)


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("Patients above this benefit from IVIG.", True),
        ("Elevated levels warrant immunomodulatory therapy.", True),
        ("Patients who did well still need IVIG.", True),
        # a negation elsewhere in the sentence, or heparin as the treatment (review 22)
        ("If NK is not normal, patients benefit from IVIG.", True),
        ("Patients with raised uNK benefit from heparin.", True),
        # a negation may belong elsewhere: refused whatever it negates (reviews 22, 23); a
        # negative finding is worded without the recommending phrase
        ("Women with no live birth benefit from IVIG.", True),
        ("If NK is not normal patients benefit from IVIG.", True),
        ("Women did not benefit from IVIG in the meta-analysis.", True),
        ("No live-birth benefit was seen with IVIG.", False),
        ("Heparin did not improve live birth.", False),
        # heparin needed by a patient, not by a sample tube (review 21)
        ("Patients need heparin.", True),
        ("Samples require EDTA or heparin tubes.", False),
    ],
)
def test_recommendations_by_need_are_refused_but_findings_are_not(text: str, refused: bool) -> None:
    from nkpanel.interpret.wording import check_wording

    assert bool(check_wording(text)) is refused
