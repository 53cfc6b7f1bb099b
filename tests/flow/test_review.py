"""The batch review page (nkpanel.flow.review): every sample's numbers, checks and gating
figures on one page, read back as a person and a browser read it."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from nkpanel.flow.analyze import AbsoluteCountInputs, FlowSettings
from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs
from nkpanel.pipeline import analyze_flow_batch
from tests.report.test_render import CHECK_SCRIPT, chromium

SETTINGS = FlowSettings(counts=AbsoluteCountInputs(beads_per_test=50_000, sample_volume_ul=50))


class _Page(HTMLParser):
    """The links, images, summary-table rows and visible text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._table = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"] or "")
        if tag == "a":
            self.links.append(a["href"] or "")
        if tag == "table" and a.get("id") == "summary":
            self._table = 1
        if self._table and tag == "tr":
            self.rows.append([])
        if self._table and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = 0
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _read(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text("utf-8"))
    return page


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic tubes (one named with characters HTML and URLs give meaning to) and a
    file that is no FCS file, analysed with figures."""
    d = tmp_path_factory.mktemp("review")
    write_fcs(simulate_tube(SimulationSpec(seed=3, n_events=20_000)), d / "t3.fcs")
    write_fcs(simulate_tube(SimulationSpec(seed=4, n_events=20_000)), d / "a<b>&#1 ?.fcs")
    (d / "bad.fcs").write_bytes(b"not an FCS file")
    files = [d / "t3.fcs", d / "a<b>&#1 ?.fcs", d / "bad.fcs"]
    analyze_flow_batch(files, SETTINGS, d / "out", jobs=1)
    return d / "out"


def test_the_page_holds_every_sample_as_the_tables_do(batch: Path) -> None:
    page = _read(batch / "flow_review.html")
    summary = json.loads((batch / "flow_summary.json").read_text())
    assert (
        [row[0].replace("SYNTHETIC", "") for row in page.rows[1:]]
        == [s["sample"] for s in summary["samples"]]
        == ["t3", "a<b>&#1 ?"]
    )
    for row, s in zip(page.rows[1:], summary["samples"], strict=True):
        assert row[1] == f"{s['nk_percent_of_lymphocytes']:.1f}"
        assert row[2] == f"{s['nk_cells_per_ul']:,.0f}"
        assert row[3] == f"{s['cd56bright_percent_of_nk']:.1f}"
        assert row[5] == ("reportable" if s["reportable"] else "NOT REPORTABLE")
    text = " ".join(page.text)
    assert "bad.fcs" in text and "not an FCS file" in text  # the failure, with its reason
    assert "SYNTHETIC DATA" in text
    assert "flow_review.html" in (batch / ".nkpanel-files").read_text()


def test_every_figure_of_every_sample_is_linked_and_there(batch: Path) -> None:
    page = _read(batch / "flow_review.html")
    pngs = sorted(p.relative_to(batch).as_posix() for p in batch.glob("samples/*/plots/*.png"))
    assert len(pngs) == 26  # 13 gates × 2 samples
    assert sorted(unquote(src) for src in page.images) == pngs
    svgs = [unquote(h) for h in page.links if h.endswith(".svg")]
    assert len(svgs) == 26 and all((batch / s).is_file() for s in svgs)
    # the name's characters are escaped in the text and quoted in the links
    html = (batch / "flow_review.html").read_text("utf-8")
    assert "a&lt;b&gt;&amp;#1 ?" in html and "<b>&" not in html
    assert "<figcaption>CD3-</figcaption>" in html  # the gate's name, not its file's (CD3neg)
    assert any("a%3Cb%3E%26%231%20%3F" in src for src in page.images)


def test_the_page_is_the_same_when_nothing_changed(batch: Path, tmp_path: Path) -> None:
    """No date, no path of a temporary folder: a re-run that changes nothing changes nothing."""
    before = (batch / "flow_review.html").read_bytes()
    files = [batch.parent / "t3.fcs", batch.parent / "a<b>&#1 ?.fcs", batch.parent / "bad.fcs"]
    analyze_flow_batch(files, SETTINGS, batch, jobs=1)
    assert (batch / "flow_review.html").read_bytes() == before
    assert not re.search(r"\.part|nkpanel-\w{8}", before.decode())


@pytest.mark.parametrize("width", [1280, 800])
def test_a_browser_shows_every_figure_and_nothing_overflows(
    batch: Path, tmp_path: Path, width: int
) -> None:
    html = (batch / "flow_review.html").read_text("utf-8")
    # every image loaded at once (the page loads them as they scroll into view)
    probe = batch / f"probe-{width}.html"
    probe.write_text(
        html.replace(' loading="lazy"', "").replace("</body>", CHECK_SCRIPT + "</body>")
    )
    try:
        dom = chromium(
            tmp_path,
            f"--window-size={width},1400",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probe.as_uri(),
        )
    finally:
        probe.unlink()
    match = re.search(r'<pre id="nkpanel-check">(.*?)</pre>', dom, re.DOTALL)
    assert match, "the check script did not run"
    out = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert out["bad"] == [] and out["images"] == 26


def test_without_figures_the_page_says_so_and_it_goes_when_every_file_fails(
    tmp_path: Path,
) -> None:
    tube = write_fcs(simulate_tube(SimulationSpec(seed=5, n_events=5_000)), tmp_path / "t.fcs")
    out = tmp_path / "out"
    analyze_flow_batch([tube], SETTINGS, out, plots=False)
    page = _read(out / "flow_review.html")
    assert page.images == [] and "No figures" in " ".join(page.text)
    bad = tmp_path / "t.fcs"
    bad.write_bytes(b"truncated")
    done = analyze_flow_batch([bad], SETTINGS, out, plots=False)
    assert done.failures and not (out / "flow_review.html").exists()  # no page of old results


def test_the_banner_says_which_samples_are_synthetic_and_the_notes_are_shown(
    tmp_path: Path,
) -> None:
    """Review 30: in a batch of a real and a synthetic file the banner called the whole page
    synthetic; a file given twice was left off the page without a word."""
    from nkpanel.flow.review import render_review

    tubes = [
        write_fcs(simulate_tube(SimulationSpec(seed=s, n_events=5_000)), tmp_path / f"t{s}.fcs")
        for s in (5, 6)
    ]
    done = analyze_flow_batch([*tubes, tubes[0]], SETTINGS, tmp_path / "o", plots=False)
    page = " ".join(_read(tmp_path / "o" / "flow_review.html").text)
    assert "given twice" in page and "Notes on the batch" in page
    assert "SYNTHETIC DATA: files written by nkpanel's simulator" in page  # both are
    # as if the first were a patient's: the banner says some are, the badge which
    html = render_review(done.results, [], tmp_path / "o", figures={}, synthetic=[str(tubes[1])])
    assert "SYNTHETIC DATA in this batch: the samples marked SYNTHETIC" in html
    assert html.count('class="badge synthetic"') == 2  # t6 in the table and its heading


@pytest.mark.shared_data
def test_a_template_run_says_which_gates_play_which_role(shared_data: Path, tmp_path: Path) -> None:
    """Review 30: a template run's NK % reads against the gates the template's roles name
    (NK 312 of Singlets2's 18,585), not the gate a figure calls "Lymphocytes": the page
    names them."""
    d = shared_data / "flowsom-68983"
    settings = FlowSettings(template=d / "gating.wsp")
    analyze_flow_batch([d / "68983.fcs"], settings, tmp_path / "o")
    summary = json.loads((tmp_path / "o" / "flow_summary.json").read_text())
    roles = summary["samples"][0]["template_roles"]
    page = " ".join(_read(tmp_path / "o" / "flow_review.html").text)
    assert roles and "The template's gates read as:" in page
    assert all(f"{role} = {gate}" in page for role, gate in roles.items())
    # figures named as their gates, not their files (review 30: "NK1 1pos")
    assert "NK1_1+" in page.split() and "NK1 1pos" not in page


def test_an_earlier_runs_folders_are_named_as_they_sit_beside_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 30: an earlier run's sample folders were listed as paths from wherever the
    command was run."""
    first, second = (
        write_fcs(simulate_tube(SimulationSpec(seed=s, n_events=5_000)), tmp_path / f"t{s}.fcs")
        for s in (5, 6)
    )
    monkeypatch.chdir(tmp_path)
    analyze_flow_batch([first], SETTINGS, Path("o"), plots=False)
    done = analyze_flow_batch([second], SETTINGS, Path("o"), plots=False)
    assert done.earlier == [Path("o/samples/t5")]
    page = _read(tmp_path / "o" / "flow_review.html")
    assert "samples/t5" in [t.strip() for t in page.text]
