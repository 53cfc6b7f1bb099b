"""The batch review page: every sample of a flow batch on one page, its numbers, its quality
checks and its gating figures side by side, for the person who checks the gates before the
results go out (as a cytometry program's batch layout shows them).

The page links to the figures in the sample folders beside it (a batch of 50 samples holds
some 650 of them: inlined, the page would weigh as much as all of them), so it is read where
it was written, or with its folder. It holds no date: a re-run that changes nothing changes
nothing in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nkpanel._templates import html_templates
from nkpanel.flow.output import BatchFailure
from nkpanel.flow.plots import figure_stem
from nkpanel.flow.results import FlowResult

__all__ = ["render_review"]


def _number(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _beside(path: Path, out_dir: Path) -> str:
    """``path`` as seen from the page in ``out_dir`` (as given where it lies elsewhere)."""
    try:
        return path.resolve().relative_to(out_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _plain(value: float | None) -> str | None:
    """A setting as a person writes it: 50000.0 → 50,000."""
    return None if value is None else f"{value:,.6g}"


def _figure(path: Path, out_dir: Path, gates: Mapping[str, str]) -> dict[str, str]:
    """A gate's figure as the page links it: PNG shown, SVG behind it where there is one,
    named as its gate (``gates``: figure file stem → gate name)."""
    png = path.relative_to(out_dir).as_posix()
    svg = path.with_suffix(".svg")
    return {
        "src": quote(png),
        "href": quote(svg.relative_to(out_dir).as_posix()) if svg.is_file() else quote(png),
        "name": gates.get(path.stem, path.stem.replace("_", " ")),
    }


def _gate_names(r: FlowResult) -> dict[str, str]:
    """Figure file stem → the gate's own name (review 30: FlowJo's "NK1_1+" read "NK1 1pos"):
    a template's gates by their paths' last step, before its roles ("NK") of the same stem."""
    gates = sorted(r.populations, key=lambda p: "/" not in p.population)
    out: dict[str, str] = {}
    for p in gates:
        name = p.population.rsplit("/", 1)[-1]
        out.setdefault(figure_stem(name), name)
    return out


def _sample(
    r: FlowResult, figures: Sequence[Path], out_dir: Path, synthetic: bool
) -> dict[str, Any]:
    warnings = [f.reason for f in r.qc if not f.passed and not f.blocking]
    gates = _gate_names(r)
    return {
        "name": r.sample,
        "source": r.source,
        "synthetic": synthetic,
        "reportable": r.reportable,
        "reasons": list(r.not_reportable_reasons),
        "warnings": warnings,
        "notes": [*r.notes, *r.file_notes],
        "gating": r.gating if r.template is None else f"template {r.template}",
        "events": f"{r.n_events:,}",
        "nk_lymph": _number(r.nk_percent_of_lymphocytes, 1),
        "nk_ul": _number(r.nk_cells_per_ul, 0),
        "bright": _number(r.cd56bright_percent_of_nk, 1),
        "ratio": _number(r.cd56bright_to_dim_ratio, 2),
        "nkt": _number(r.nk_like_t_percent_of_lymphocytes, 1),
        "method": r.absolute_count_method
        if r.nk_cells_per_ul is not None
        else f"{r.absolute_count_method}, not given (see the checks)"
        if r.absolute_count_method != "none"
        else "none",
        "roles": dict(r.template_roles),
        "figures": [_figure(p, out_dir, gates) for p in figures],
    }


def render_review(
    results: Sequence[FlowResult],
    failures: Sequence[BatchFailure],
    out_dir: Path,
    *,
    figures: Mapping[str, Sequence[Path]],
    synthetic: Sequence[str] = (),
    earlier: Sequence[Path] = (),
    settings: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    title: str = "",
) -> str:
    """The review page of a batch written to ``out_dir``: ``results`` in the order given,
    ``figures`` per sample (PNG paths in gate order, in ``out_dir``), the ``failures``, the
    sample folders an ``earlier`` run left, the ``settings`` the batch ran with and its
    ``notes`` (a file given twice, one that is a copy of another…); ``title`` names the batch
    (a case's blood draw: review 30). ``synthetic``: the
    sources nkpanel's simulator wrote, each marked so (the banner over the page says whether
    all samples are, or some)."""
    fake = set(synthetic)
    samples = [_sample(r, figures.get(r.sample, ()), out_dir, r.source in fake) for r in results]
    run = dict(settings or {})
    return (
        html_templates("nkpanel.flow")
        .get_template("review.html.j2")
        .render(
            samples=samples,
            failures=[{"source": f.source, "reason": f.reason} for f in failures],
            # as they sit beside the page (review 30: paths from where the command ran)
            earlier=[_beside(p, out_dir) for p in earlier],
            synthetic=sum(s["synthetic"] for s in samples),
            notes=list(notes),
            title=title,
            version=run.get("nkpanel", ""),
            beads=_plain(run.get("beads_per_test")),
            volume=_plain(run.get("sample_volume_ul")),
            lymphocytes=_plain(run.get("lymphocytes_per_ul")),
            template=run.get("template"),
            not_reportable=sum(not s["reportable"] for s in samples),
        )
    )
