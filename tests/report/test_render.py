"""The reports looked at as a person would: the PDF rendered to PNG pages (pdftoppm) and read
back as text (pdftotext), the HTML opened in headless Chromium. Every section is present,
every page says SYNTHETIC, nothing runs off the page or out of a table, no figure is empty.

Needs Debian's poppler-utils and chromium; outside CI a missing tool skips with the reason, in
CI (CI=true) it fails, so a CI image without them cannot pass by skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nkpanel.interpret import check_wording, load_evidence
from nkpanel.report import build_reports
from tests.interpret.summaries import summary
from tests.report.conftest import Reported

CLINICIAN_SECTIONS = (
    "Patient and request",
    "Results",
    "Interpretive comments",
    "Specimens",
    "Methods and measurement uncertainty",
    "Quality control",
    "Serial results",
    "Figures",
    "Evidence",
    "Reference intervals and cutoffs",
    "Authorisation and version",
    "Amendment history",
)
PATIENT_SECTIONS = (
    "What was measured",
    "Your results",
    "What this does and does not mean",
    "Talking it through",
)
CLINICIAN_IDS = (
    "patient",
    "results",
    "comments",
    "specimens",
    "methods",
    "qc",
    "trends",
    "figures",
    "evidence",
    "intervals",
    "signoff",
)
PATIENT_IDS = ("p-what", "p-results", "p-meaning", "p-next")
A4_WIDTH_MM = 210.0
SIDE_MARGIN_MM = 15.0  # report.css @page margin


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name} not installed (Debian: poppler-utils / chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


def pdf_pages(pdf: Path) -> int:
    info = run(tool("pdfinfo"), str(pdf)).stdout
    match = re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE)
    assert match, info
    return int(match.group(1))


def page_text(pdf: Path, page: int) -> str:
    return run(tool("pdftotext"), "-f", str(page), "-l", str(page), "-layout", str(pdf), "-").stdout


def page_images(pdf: Path, out: Path, dpi: int = 40) -> list[np.ndarray[Any, Any]]:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    run(tool("pdftoppm"), "-r", str(dpi), "-png", str(pdf), str(out / "page"))
    files = sorted(out.glob("page-*.png"), key=lambda p: int(p.stem.split("-")[-1]))
    return [np.asarray(Image.open(f).convert("L")) for f in files]


@pytest.mark.parametrize(
    ("which", "sections"),
    [("clinician_pdf", CLINICIAN_SECTIONS), ("patient_pdf", PATIENT_SECTIONS)],
)
def test_pdf_pages_are_complete(
    reported: Reported, tmp_path: Path, which: str, sections: tuple[str, ...]
) -> None:
    pdf = getattr(reported.paths, which)
    n = pdf_pages(pdf)
    assert n >= 1
    texts = [page_text(pdf, i) for i in range(1, n + 1)]
    for i, text in enumerate(texts, start=1):
        assert "SYNTHETIC DATA" in text, f"page {i} lacks the synthetic label"
        assert f"Page {i} of {n}" in text, f"page {i} lacks its page number"
        assert "NKR-SYNTH-EP-2" in text, f"page {i} lacks the report id"
    whole = " ".join(" ".join(texts).split())
    for heading in sections:
        assert heading in whole, heading
    images = page_images(pdf, tmp_path / "png")
    assert len(images) == n
    mm = images[0].shape[1] / A4_WIDTH_MM  # pixels per mm
    strip = int((SIDE_MARGIN_MM - 3) * mm)
    for i, img in enumerate(images, start=1):
        assert (img < 200).mean() > 0.003, f"page {i} is (nearly) blank"
        # nothing may run into the side margins: an overflowing table or figure would
        assert (img[:, -strip:] < 200).sum() == 0, f"page {i}: ink in the right margin"
        assert (img[:, :strip] < 200).sum() == 0, f"page {i}: ink in the left margin"


def test_clinician_pdf_carries_results_and_citations(reported: Reported) -> None:
    pdf = reported.paths.clinician_pdf
    assert pdf is not None
    text = " ".join(" ".join(page_text(pdf, i) for i in range(1, pdf_pages(pdf) + 1)).split())
    for e in reported.doc["evidence"]:
        assert f"[{e['ref']}]" in text
    assert "ARUP Laboratories, test 0092404" in text
    assert "Dr B. Authoriser" in text and "A. Analyst" in text
    assert "bead lot corrected" in text
    assert "25.5" in text and "near limit" in text
    assert "not interpreted" in text and "truncated FCS file" in text


CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const bad = [];
  const root = document.documentElement;
  if (root.scrollWidth > window.innerWidth + 1) bad.push('page wider than the window');
  document.querySelectorAll('table').forEach((t, i) => {
    if (t.scrollWidth > t.parentElement.clientWidth + 1) bad.push('table ' + i + ' overflows');
  });
  document.querySelectorAll('td, th').forEach((c) => {
    if (c.scrollWidth > c.clientWidth + 1)
      bad.push('cell overflows: ' + c.textContent.trim().slice(0, 40));
  });
  const imgs = Array.from(document.querySelectorAll('img'));
  imgs.forEach((img) => {
    const r = img.getBoundingClientRect();
    if (!img.complete || img.naturalWidth === 0 || r.width < 20 || r.height < 10)
      bad.push('empty figure: ' + img.alt);
  });
  const out = {
    bad: bad,
    sections: Array.from(document.querySelectorAll('[data-section]')).map((s) => s.dataset.section),
    empty_sections: Array.from(document.querySelectorAll('[data-section]'))
      .filter((s) => s.innerText.trim().split('\\n').length < 2).map((s) => s.dataset.section),
    synthetic: document.querySelectorAll('[data-synthetic]').length,
    images: imgs.length,
  };
  const pre = document.createElement('pre');
  pre.id = 'nkpanel-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium(tmp: Path, *args: str) -> str:
    exe = tool("chromium")
    proc = run(
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        *args,
    )
    return proc.stdout


@pytest.mark.parametrize(
    ("which", "ids", "width"),
    [
        ("clinician_html", CLINICIAN_IDS, 1280),
        ("clinician_html", CLINICIAN_IDS, 800),
        ("patient_html", PATIENT_IDS, 800),
    ],
)
def test_html_in_chromium(
    reported: Reported, tmp_path: Path, which: str, ids: tuple[str, ...], width: int
) -> None:
    html = getattr(reported.paths, which).read_text("utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", CHECK_SCRIPT + "</body>"), "utf-8")
    dom = chromium(
        tmp_path,
        f"--window-size={width},1400",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
    )
    match = re.search(r'<pre id="nkpanel-check">(.*?)</pre>', dom, re.DOTALL)
    assert match, "the check script did not run"
    out = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert out["bad"] == []
    assert tuple(out["sections"]) == ids
    assert out["empty_sections"] == []
    assert out["synthetic"] == 1
    # every result read against an interval has its reference bar
    read = [r for r in reported.doc["results"] if r["flag"] in ("below", "within", "above")]
    assert out["images"] >= len(read) >= 6


def test_html_screenshot_is_not_blank(reported: Reported, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "shot.png"
    chromium(
        tmp_path,
        "--window-size=900,1600",
        f"--screenshot={shot}",
        reported.paths.clinician_html.as_uri(),
    )
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (1600, 900)
    # the synthetic banner's red is on screen, and the page holds text and figures
    red = (img[..., 0] > 150) & (img[..., 1] < 80) & (img[..., 2] < 80)
    assert red.sum() > 200
    assert (img.mean(axis=2) < 128).mean() > 0.01


class _Text(HTMLParser):
    """Visible text of a page, optionally without one section (by id)."""

    def __init__(self, skip_section: str | None = None) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip_section = skip_section
        self.depth = 0  # >0 while inside a skipped element
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(tag)
        if self.depth:
            self.depth += 1
        elif tag in ("style", "script") or (
            tag == "section" and dict(attrs).get("id") == self.skip_section
        ):
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.stack:
            self.stack.pop()
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)

    @classmethod
    def of(cls, html: str, skip_section: str | None = None) -> str:
        parser = cls(skip_section)
        parser.feed(html)
        return " ".join(" ".join(parser.parts).split())


def test_pages_never_diagnose_or_prescribe(reported: Reported) -> None:
    # nkpanel's own words: the whole patient page, and the clinician report outside the
    # evidence panel (whose attributed statements are checked with their attribution)
    patient = _Text.of(reported.paths.patient_html.read_text("utf-8"))
    clinician = _Text.of(reported.paths.clinician_html.read_text("utf-8"), "evidence")
    assert "Your results" in patient and "Interpretive comments" in clinician
    # the evidence section really was left out (ESHRE itself is also named in the comments)
    assert "hoy004" not in clinician and "hoy004" in reported.paths.clinician_html.read_text()
    # the guidelines' statements quoted in the comments (the bodies' words) keep their
    # attribution: they may report a body's recommendation
    quoted = {s.text for s in load_evidence() if s.attributed}
    assert any(q in clinician for q in quoted)
    for text in (patient, clinician):
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            assert check_wording(sentence, attributed=sentence in quoted) == [], sentence


def test_evidence_panel_shows_only_relevant_statements(tmp_path: Path) -> None:
    paths = build_reports(summary(), tmp_path, pdf=False)  # flow only
    html = paths.clinician_html.read_text("utf-8")
    shown = set(re.findall(r'data-evidence="([^"]+)"', html))
    assert {"tang-2011-pnk", "eshre-2017", "rcog-gtg17-2023", "ksri-2017"} <= shown
    assert not {"tang-2011-unk", "drury-2011", "katano-2013", "roussev-2007"} & shown


def test_the_patient_page_says_when_a_file_could_not_be_analysed(reported: Reported) -> None:
    """The full case has one unreadable FCS file: the patient page says a result is missing
    (it once left it out without a word)."""
    patient = _Text.of(reported.paths.patient_html.read_text("utf-8"))
    assert len(reported.doc["failures"]) == 1
    assert (
        "1 measurement file could not be analysed, so its result is not in this report" in patient
    )


def test_the_patient_page_gives_every_day_a_sample_was_taken(reported: Reported) -> None:
    """Blood on 2026-11-02, the biopsy on 2026-11-14: the page says both, not the first."""
    days = reported.doc["episode"]["collected_days"]
    assert days == sorted({s["collected"][:10] for s in reported.doc["specimens"]})
    assert len(days) > 1
    patient = _Text.of(reported.paths.patient_html.read_text("utf-8"))
    assert f"samples taken {days[0]} to {days[-1]}" in patient
