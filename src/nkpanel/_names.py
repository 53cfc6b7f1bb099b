"""Names for the outputs of a batch: one folder per input, none overwriting another."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nkpanel.errors import InputError

__all__ = [
    "array_digest",
    "away_from_earlier",
    "distinct_files",
    "file_stamp",
    "files_in_folders",
    "unique_stems",
]


def unique_stems(paths: Sequence[str | Path]) -> list[str]:
    """Each file's stem, with ``-2``, ``-3``… on the second and later files of one stem (in
    any letter case: Tube1 and tube1 are one folder on macOS and Windows)."""
    taken: set[str] = set()
    names = []
    for p in paths:
        # never "." or ".." (the folder above) nor hidden: "..fcs" is a sample, not a path
        stem = Path(p).stem.lstrip(".").strip() or "sample"
        name, k = stem, 1
        while name.casefold() in taken:
            k += 1
            name = f"{stem}-{k}"
        taken.add(name.casefold())
        names.append(name)
    return names


def files_in_folders(
    paths: Iterable[Path], suffixes: tuple[str, ...], notes: list[str] | None = None
) -> list[Path]:
    """The files given, with each folder among them replaced by the files in it (not in its
    subfolders) whose suffix is one of ``suffixes`` (any letter case), in name order. A
    folder whose subfolders hold such files too gets a note in ``notes`` (they are not read:
    earlier outputs may lie there).

    Raises
    ------
    InputError
        A folder that holds no such file.
    """
    out: list[Path] = []
    for p in paths:
        if not p.is_dir():
            out.append(p)
            continue
        found = sorted(f for f in p.iterdir() if _wanted(f, suffixes))
        if found and notes is not None:
            below = sum(1 for f in p.glob("*/*") if _wanted(f, suffixes))  # one level down
            if below:
                notes.append(
                    f"{p}: {below} file(s) in its subfolders (counted one level down) were "
                    "not read (subfolders are not searched; give them to read them)"
                )
        if not found:
            kinds = " / ".join(suffixes)
            deeper = sum(1 for f in p.rglob("*") if _wanted(f, suffixes))
            if deeper:
                raise InputError(
                    p,
                    f"the folder holds no {kinds} file itself, but its subfolders hold "
                    f"{deeper}: give the subfolders (subfolders are not searched, so that "
                    "earlier outputs inside are not read again)",
                )
            raise InputError(p, f"the folder holds no {kinds} file")
        out += found
    return out


def _wanted(f: Path, suffixes: tuple[str, ...]) -> bool:
    # not hidden files (macOS writes ._name beside every file on foreign disks)
    return f.is_file() and f.suffix.lower() in suffixes and not f.name.startswith(".")


def distinct_files(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """``paths`` with each file kept once (by the same or another spelling of its path, or a
    byte-for-byte copy), and a note for each one left out: analysed twice, a file would be
    counted as two samples."""
    out: list[Path] = []
    notes: list[str] = []
    seen: dict[object, Path] = {}
    for p in paths:
        try:  # one file, however spelt (letter case on macOS and Windows, links)
            st = p.stat()
            key: object = (st.st_dev, st.st_ino)
        except OSError:
            key = p
        if key in seen:
            also = "" if str(seen[key]) == str(p) else f" (also as {seen[key]})"
            notes.append(f"{p}: given twice{also}: analysed once")
            continue
        seen[key] = p
        out.append(p)
    return _distinct_contents(out, notes)


def _distinct_contents(paths: list[Path], notes: list[str]) -> tuple[list[Path], list[str]]:
    """``paths`` less the byte-for-byte copies of an earlier one ("f1 copy.tif"), with a note
    each: a copy is the same tube or field, and would count twice. Only files of equal size
    are read, first their opening 64 KiB and whole only where those agree, so distinct inputs
    cost one ``stat`` each, and equal-sized ones (a camera's uncompressed fields) one block."""
    sizes: dict[int, list[int]] = {}
    for i, p in enumerate(paths):
        try:
            sizes.setdefault(p.stat().st_size, []).append(i)
        except OSError:
            continue
    dropped: set[int] = set()
    whole: dict[int, str | None] = {}

    def full(i: int) -> str | None:
        if i not in whole:
            whole[i] = _sha256(paths[i])
        return whole[i]

    for size, same_size in sizes.items():
        if len(same_size) < 2:
            continue
        kept: dict[str, list[int]] = {}  # opening block's digest → files kept with it
        for i in same_size:
            head = _sha256(paths[i], 1 << 16)
            if head is None:
                continue
            if size <= 1 << 16:  # the opening block is the whole file
                whole[i] = head
            if head not in kept:
                kept[head] = [i]
                continue
            digest = full(i)
            if digest is None:
                continue
            match = next((j for j in kept[head] if full(j) == digest), None)
            if match is None:
                kept[head].append(i)
                continue
            dropped.add(i)
            notes.append(f"{paths[i]}: the same content as {paths[match]} (a copy): analysed once")
    return [p for i, p in enumerate(paths) if i not in dropped], notes


def _sha256(path: Path, head: int | None = None) -> str | None:
    """:func:`~nkpanel._atomic.file_sha256`, or None when the file cannot be read."""
    from nkpanel._atomic import file_sha256

    try:
        return file_sha256(path, head)
    except OSError:
        return None


def away_from_earlier(
    folder: Path, paths: Sequence[Path], names: Sequence[str]
) -> tuple[list[str], dict[int, str]]:
    """``names`` (one per file of ``paths``) moved off the folders of ``folder`` that hold an
    earlier run's results of another file, and a note for each file renamed.

    Instruments name files by tube ("Tube_001.fcs" in every patient's FACSDiva export), so a
    second batch into the same output folder would replace another patient's results under
    the same name. A folder whose ``summary.json`` records this file (its path, resolved from
    here) is this file's and is replaced as before; one recording another file keeps it, and
    this file takes the next free ``<name>-2``, ``<name>-3``…
    """
    taken = {n.casefold() for n in names}
    out: list[str] = []
    notes: dict[int, str] = {}
    for i, (path, name) in enumerate(zip(paths, names, strict=True)):
        other = _recorded_source(folder / name)
        if other is None or _same_file(other, path):
            out.append(name)
            continue
        k = 1
        while True:
            k += 1
            candidate = f"{name}-{k}"
            if candidate.casefold() in taken:
                continue
            there = _recorded_source(folder / candidate)
            if (there is None and not (folder / candidate).exists()) or (
                there is not None and _same_file(there, path)
            ):
                break
        taken.add(candidate.casefold())
        out.append(candidate)
        notes[i] = (
            f"named {candidate}: {folder / name} holds an earlier run's results of another "
            f"file ({other[0]}{'' if other[0] != str(path) else ', as it was then'}), which are "
            "kept"
        )
    return out, notes


def file_stamp(path: Path) -> dict[str, object] | None:
    """A file's resolved path, size, modification time (ns) and a digest of its content
    (:func:`sampled_digest`): what tells a file from a later one written at the same path (an
    export folder reused for each patient), and the same file copied there again (a new
    modification time, as ``cp`` or ``rsync`` without ``-t`` give) from another."""
    try:
        st = path.stat()
        where = str(path.resolve())
        digest = sampled_digest(path, st.st_size)
    except OSError:
        return None
    return {
        "path": where,
        "bytes": st.st_size,
        "modified_ns": st.st_mtime_ns,
        "sampled_sha256": digest,
    }


#: :func:`sampled_digest` reads this many blocks of this many bytes
DIGEST_BLOCKS = 64
DIGEST_BLOCK_BYTES = 4096


def sampled_digest(path: Path, size: int) -> str:
    """SHA-256 of ``DIGEST_BLOCKS`` blocks spread evenly over the file (the whole file when it
    is smaller): a fixed small read, where a whole SHA-256 of a million-event file took longer
    than its analysis. An FCS file's first block holds its TEXT ($DATE, $BTIM, $FIL, $TOT), and
    the other blocks its events, so another acquisition of the same size differs in them.

    Raises
    ------
    OSError
        The file cannot be read.
    """
    import hashlib

    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        if size <= DIGEST_BLOCKS * DIGEST_BLOCK_BYTES:
            h.update(fh.read())
            return h.hexdigest()
        last = size - DIGEST_BLOCK_BYTES
        for k in range(DIGEST_BLOCKS):
            fh.seek(last * k // (DIGEST_BLOCKS - 1))
            h.update(fh.read(DIGEST_BLOCK_BYTES))
    return h.hexdigest()


def _recorded_source(sample_folder: Path) -> tuple[str, object] | None:
    """The input file an earlier run's ``summary.json`` in ``sample_folder`` names, and the
    stamp it recorded of it (:func:`file_stamp`; None from runs before stamps), if any."""
    try:
        data = json.loads((sample_folder / "summary.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    source = data.get("source") if isinstance(data, dict) else None
    if not (isinstance(source, str) and source):
        return None
    return source, data.get("source_file")


def _same_file(recorded: tuple[str, object], path: Path) -> bool:
    """Whether ``path`` is the file recorded: the same path and, where a stamp was recorded,
    the same size and either the same modification time or the same content digest (a copy
    made again); else a later file written at that path."""
    source, stamp = recorded
    if isinstance(stamp, dict) and "path" in stamp:  # resolved when written: from any folder
        try:
            st = path.stat()
            if (str(path.resolve()), st.st_size) != (stamp["path"], stamp.get("bytes")):
                return False
            # the content is read only where the time differs (a copy made again)
            return st.st_mtime_ns == stamp.get("modified_ns") or (
                sampled_digest(path, st.st_size) == stamp.get("sampled_sha256")
            )
        except OSError:
            return False
    try:  # a run before stamps: the source as given, resolved from here
        same_path = Path(source).resolve() == path.resolve()
    except OSError:
        return False
    return same_path and stamp is None


def array_digest(array: Any, *, rows: int | None = None, label: object = "") -> str:
    """A digest of an array's shape and values (of ``rows`` evenly spaced rows, when given),
    with ``label``: what tells the same data saved twice (another encoding, other keywords or
    tags) from other data, where the files' bytes differ."""
    import hashlib

    import numpy as np

    a = np.asarray(array)
    step = max(1, a.shape[0] // rows) if rows else 1
    h = hashlib.blake2b(f"{a.shape}|{label}".encode(), digest_size=16)
    h.update(np.ascontiguousarray(a[::step]).tobytes())
    return h.hexdigest()
