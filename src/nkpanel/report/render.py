"""HTML (Jinja2) and PDF (WeasyPrint) of the clinician report and the patient page.

Both pages are self-contained: styles are inlined and every figure is a ``data:`` URI, so an
HTML file can be mailed or archived alone and WeasyPrint needs no network or file access.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from nkpanel._atomic import write_with
from nkpanel._templates import html_templates
from nkpanel.report.figures import Figure

__all__ = ["render_clinician_html", "render_patient_html", "write_pdf"]


def css_string(value: object) -> markupsafe.Markup:
    """``value`` as the inside of a CSS string: quotes, backslashes, line breaks and ``<``
    escaped the CSS way (a backslash, hex digits and a space: CSS Syntax Module Level 3,
    §4.3.7), so the text
    can neither end the string nor the ``<style>`` element."""
    out = []
    for ch in str(value):
        if ch in "\\\"'<>&" or ord(ch) < 0x20:
            out.append(f"\\{ord(ch):x} ")
        else:
            out.append(ch)
    return markupsafe.Markup("".join(out))


def when(value: object) -> str:
    """An ISO 8601 time as people read it: ``2026-11-02T08:30`` → ``2026-11-02 08:30``."""
    return "" if value is None else str(value).replace("T", " ", 1)


@cache
def _env() -> jinja2.Environment:
    env = html_templates("nkpanel.report")
    env.filters["css_string"] = css_string
    env.filters["when"] = when
    return env


def _evidence_groups(doc: Mapping[str, Any]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for e in doc["evidence"]:
        groups.setdefault(e["topic_heading"], []).append(e)
    return list(groups.items())


def render_clinician_html(
    doc: Mapping[str, Any],
    *,
    bars: Sequence[str | None],
    trend_figs: Mapping[str, str],
    gating_figs: Sequence[Figure],
    lysis_figs: Sequence[Figure],
) -> str:
    """The clinician report as one HTML document."""
    return (
        _env()
        .get_template("clinician.html.j2")
        .render(
            doc=doc,
            results_with_bars=list(zip(doc["results"], bars, strict=True)),
            trend_figs=dict(trend_figs),
            gating_figs=list(gating_figs),
            lysis_figs=list(lysis_figs),
            evidence_groups=_evidence_groups(doc),
        )
    )


#: results measured on a blood draw (peripheral NK count by flow cytometry, NK activity of
#: the blood's cells), which stress before the draw can move (adrenaline mobilises NK cells
#: into blood within minutes; Schedlowski et al. 1993, J Clin Immunol 13:344); the same set
#: as the interpretation's pre-analytic caveat (interpret/flags.py)
BLOOD_BIOMARKERS = ("flow", "cytotoxicity")


def _blood_count_in(doc: Mapping[str, Any]) -> bool:
    """Whether the report holds a result measured on a blood draw, measured or failed."""
    return any(r.get("biomarker") in BLOOD_BIOMARKERS for r in doc["results"]) or any(
        f.get("biomarker") in BLOOD_BIOMARKERS for f in doc["failures"]
    )


def render_patient_html(doc: Mapping[str, Any], *, bars: Sequence[str | None]) -> str:
    """The plain-language patient page as one HTML document."""
    plain = [e for e in doc["evidence"] if e.get("plain")]
    return (
        _env()
        .get_template("patient.html.j2")
        .render(
            doc=doc,
            results_with_bars=list(zip(doc["results"], bars, strict=True)),
            plain_evidence=plain,
            blood_count=_blood_count_in(doc),
        )
    )


def write_pdf(html: str, target: Path) -> Path:
    """Render ``html`` to an A4 PDF at ``target`` with WeasyPrint (atomically).

    WeasyPrint needs Pango at run time (Debian: libpango-1.0-0, libpangoft2-1.0-0) and a font
    (fonts-dejavu-core); .ci/run installs them.
    """
    from weasyprint import HTML  # type: ignore[import-untyped]

    document = HTML(string=html, base_url=str(target.parent))
    write_with(target, lambda tmp: document.write_pdf(tmp))
    return target
