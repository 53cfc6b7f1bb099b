"""The case manifest: valid manifests load; invalid ones fail with the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from nkpanel.case import load_case
from nkpanel.errors import ConfigError

GOOD = """
[case]
id = "EP-1"
patient_id = "PSN-1"
age_years = 34

[indication]
pregnancy_losses = 3

[[blood_draws]]
collected = 2026-11-02T08:30:00
fcs = "blood/tube.fcs"
beads_per_test = 50000
sample_volume_ul = 50
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "case.toml"
    p.write_text(text)
    return p


def test_good_manifest_resolves_paths(tmp_path: Path) -> None:
    case = load_case(write(tmp_path, GOOD))
    assert case.case.patient_id == "PSN-1"
    draw = case.blood_draws[0]
    assert case.resolve(draw.fcs[0]) == tmp_path.resolve() / "blood" / "tube.fcs"
    assert draw.beads_per_test == 50000


def test_a_draw_maps_its_markers_for_the_analysis(tmp_path: Path) -> None:
    """As --marker on the command line: a lab whose panel names CD56 otherwise."""
    from nkpanel.flow.analyze import FlowSettings
    from nkpanel.pipeline import _draw_settings

    mapped = 'sample_volume_ul = 50\nmarkers = {CD56 = "NK1.1"}'
    case = load_case(write(tmp_path, GOOD.replace("sample_volume_ul = 50", mapped)))
    base = FlowSettings(marker_overrides={"CD3": "Leu4"})
    settings = _draw_settings(base, case.blood_draws[0], case)
    assert dict(settings.marker_overrides) == {"CD3": "Leu4", "CD56": "NK1.1"}


def test_a_draw_gives_its_own_matrix_aliases_and_cytometry(tmp_path: Path) -> None:
    """``nkpanel run`` could take no spillover matrix, alias file or cytometry mode, yet its
    "no spillover matrix in the file and none supplied" told the lab to supply one (audit 33):
    a blood draw now names them, as flow analyze's options do (paths from the manifest)."""
    from nkpanel.flow.analyze import FlowSettings
    from nkpanel.pipeline import _draw_settings

    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "spill.csv").write_text("FITC-A,PE-A\n100,12.5\n2,100\n")
    (tmp_path / "lab" / "aliases.toml").write_text('[markers]\nCD56 = ["MyNK"]\n')
    own = (
        'sample_volume_ul = 50\nspillover = "lab/spill.csv"\naliases = "lab/aliases.toml"\n'
        'cytometry = "flow"'
    )
    case = load_case(write(tmp_path, GOOD.replace("sample_volume_ul = 50", own)))
    notes: list[str] = []
    settings = _draw_settings(FlowSettings(), case.blood_draws[0], case, notes)
    assert settings.spillover is not None and settings.spillover.channels == ("FITC-A", "PE-A")
    assert settings.spillover.matrix[0, 1] == 0.125  # given in percent: divided by 100
    assert any("spill.csv" in n and "100" in n for n in notes)
    assert settings.aliases is not None and "MyNK" in settings.aliases.markers["CD56"]
    assert settings.autogate.cytometry == "flow"
    plain = _draw_settings(FlowSettings(), load_case(write(tmp_path, GOOD)).blood_draws[0], case)
    assert plain.spillover is None and plain.aliases is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (GOOD.replace("age_years = 34", "age_years = 340"), "age_years"),
        (GOOD.replace('patient_id = "PSN-1"', ""), "patient_id"),
        (GOOD.replace("pregnancy_losses = 3", "pregnancy_losses = -1"), "pregnancy_losses"),
        (GOOD.replace("sample_volume_ul = 50", "sample_volume_ul = 0"), "sample_volume_ul"),
        (GOOD + "\nunknown_field = 1\n", "unknown_field"),
        (
            GOOD.replace(
                "sample_volume_ul = 50",
                'sample_volume_ul = 50\naliases = "a.toml"\ntemplate = "t.wsp"',
            ),
            "aliases name markers for the automated gating",
        ),
        (
            GOOD.replace("sample_volume_ul = 50", 'sample_volume_ul = 50\ncytometry = "x"'),
            "cytometry",
        ),
        (GOOD.replace('fcs = "blood/tube.fcs"', "fcs = []"), "fcs"),
        (
            GOOD.replace("sample_volume_ul = 50", 'sample_volume_ul = 50\nmarkers = {CD65 = "x"}'),
            "CD65 is not a marker the NK analysis uses",
        ),
        (
            GOOD.replace(
                "sample_volume_ul = 50", 'sample_volume_ul = 50\nmarkers = {CD56 = "a", cd56 = "b"}'
            ),
            "cd56 is mapped twice",
        ),
        ("[case\n", "not valid TOML"),
        # two draws with one id would write into one folder: the first result lost
        (GOOD + GOOD[GOOD.index("[[blood_draws]]") :], "blood draw id(s) used twice: draw-1"),
        (GOOD.replace("[[blood_draws]]", '[[blood_draws]]\nid = "../x"'), "must be a plain name"),
        (GOOD[: GOOD.index("[[blood_draws]]")], "the case holds no specimen"),
        (
            GOOD.replace("collected = 2026-11-02T08:30:00", "collected = 2126-11-02T08:30:00"),
            "blood draw draw-1 collected 2126-11-02 is in the future",
        ),
        # one folder on macOS and Windows
        (
            GOOD.replace("[[blood_draws]]", '[[blood_draws]]\nid = "Draw-1"')
            + GOOD[GOOD.index("[[blood_draws]]") :],
            "used twice: draw-1",
        ),
        (
            GOOD.replace("sample_volume_ul = 50", ""),
            "beads_per_test and sample_volume_ul go together",
        ),
        (
            GOOD.replace("sample_volume_ul = 50", 'sample_volume_ul = 50\ntemplate_sample = "a"'),
            "template_sample names a sample of the draw's template",
        ),
        (
            GOOD.replace(
                "sample_volume_ul = 50", "sample_volume_ul = 50\nreceived = 2026-10-06T09:00:00"
            ),
            "received (2026-10-06 09:00:00) is before collected (2026-11-02 08:30:00)",
        ),
        (
            GOOD.replace(
                "sample_volume_ul = 50",
                "sample_volume_ul = 50\npre_analytic = {processed = 2026-11-01T09:00:00}",
            ),
            "pre_analytic.processed (2026-11-01 09:00:00) is before collected",
        ),
        (
            GOOD.replace(
                "sample_volume_ul = 50",
                "sample_volume_ul = 50\nreceived = 2026-11-03T09:00:00\n"
                "pre_analytic = {processed = 2026-11-02T10:00:00}",
            ),
            "pre_analytic.processed (2026-11-02 10:00:00) is before received",
        ),
        (
            GOOD
            + '\n[[endometrial]]\nid = "b"\nimages = ["a.png"]\npixel_size_um = 0.5\n'
            + '[[endometrial]]\nid = "b"\nimages = ["c.png"]\npixel_size_um = 0.5\n',
            "endometrial biopsy id(s) used twice: b",
        ),
    ],
)
def test_bad_manifest_names_file_and_field(tmp_path: Path, text: str, fragment: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_case(p)
    assert str(p) in str(info.value)
    assert fragment in str(info.value)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_case(tmp_path / "nope.toml")


def test_a_draw_dated_by_day_stays_a_day(tmp_path: Path) -> None:
    import datetime as dt

    case = load_case(write(tmp_path, GOOD.replace("2026-11-02T08:30:00", "2026-11-02")))
    when = case.blood_draws[0].collected
    assert when == dt.date(2026, 11, 2) and not isinstance(when, dt.datetime)


def test_a_draw_names_the_gates_of_its_template_roles(tmp_path: Path) -> None:
    """The advice "name it with --population" had no manifest form: a draw's populations
    table now maps roles to its template's gates, and reaches the flow settings; without a
    template it is refused."""
    from nkpanel.flow.analyze import FlowSettings
    from nkpanel.pipeline import _draw_settings

    text = GOOD.replace('fcs = "blood/tube.fcs"', 'fcs = "blood/tube.fcs"\ntemplate = "lab.xml"')
    text += '\n[blood_draws.populations]\nNK = "NK_cells"\n'
    case = load_case(write(tmp_path, text))
    settings = _draw_settings(FlowSettings(), case.blood_draws[0], case)
    assert dict(settings.template_populations) == {"NK": "NK_cells"}
    with pytest.raises(ConfigError, match="populations name the gates of the draw's template"):
        load_case(write(tmp_path, GOOD + '\n[blood_draws.populations]\nNK = "NK_cells"\n'))
    # markers map channels for the automated gating: with a template, unused (audit 21)
    with pytest.raises(ConfigError, match="a template's gates name their channels themselves"):
        load_case(write(tmp_path, text + '\n[blood_draws.markers]\nCD56 = "NK1.1"\n'))
    # roles in any letter case, as --population takes them; an unknown role is refused on load
    case = load_case(write(tmp_path, text.replace('NK = "NK_cells"', 'nk = "NK_cells"')))
    settings = _draw_settings(FlowSettings(), case.blood_draws[0], case)
    assert dict(settings.template_populations) == {"NK": "NK_cells"}
    with pytest.raises(ConfigError, match=r"blood draw .* populations NKT=NK_cells: NKT is not a"):
        load_case(write(tmp_path, text.replace('NK = "NK_cells"', 'NKT = "NK_cells"')))
