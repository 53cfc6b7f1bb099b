"""Saving matplotlib figures the same way in every part of nkpanel: written whole (atomically),
and the same bytes for the same figure on every run (no date, fixed SVG ids), so that a re-run
changes no file that did not change (audit 18: every SVG differed on every run)."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from nkpanel._atomic import atomic_path

__all__ = ["save_figure"]

#: matplotlib settings that keep SVG output the same from run to run (its element ids are
#: drawn at random unless salted)
STABLE_SVG: dict[str, Any] = {"svg.hashsalt": "nkpanel"}


def save_figure(fig: Any, target: Path | IO[str], fmt: str, **kwargs: Any) -> None:
    """Save ``fig`` as ``fmt`` ("png", "svg"…) to ``target``, a path (written atomically) or an
    open text buffer, without a creation date; ``kwargs`` go to ``savefig``."""
    import matplotlib

    # matplotlib's key for the date is "Date" in SVG and "CreationDate" in PDF
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)
    rc: Any = {**STABLE_SVG, **kwargs.pop("rc", {})}  # matplotlib types its keys as literals
    with matplotlib.rc_context(rc):
        if isinstance(target, Path):
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=fmt, metadata=metadata, **kwargs)
        else:
            fig.savefig(target, format=fmt, metadata=metadata, **kwargs)
