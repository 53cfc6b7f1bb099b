"""Names for the outputs of a batch: one folder per input, none overwriting another."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["unique_stems"]


def unique_stems(paths: Sequence[str | Path]) -> list[str]:
    """Each file's stem, with ``-2``, ``-3``… on the second and later files of one stem (in
    any letter case: Tube1 and tube1 are one folder on macOS and Windows)."""
    taken: set[str] = set()
    names = []
    for p in paths:
        stem = Path(p).stem
        name, k = stem, 1
        while name.casefold() in taken:
            k += 1
            name = f"{stem}-{k}"
        taken.add(name.casefold())
        names.append(name)
    return names
