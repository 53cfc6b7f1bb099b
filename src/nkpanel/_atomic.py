"""Atomic file output: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path

from nkpanel.errors import InputError

__all__ = [
    "OWNED",
    "atomic_folder",
    "atomic_path",
    "check_ours",
    "claim",
    "earlier_folders",
    "held",
    "held_folders",
    "listed",
    "remove_claimed",
    "remove_leftovers",
    "remove_owned",
    "signals_held",
    "write_bytes",
    "write_owned",
    "write_text",
    "write_with",
]


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    On any exception the temporary file is removed and ``target`` is left as it was. The file
    gets the permissions an ordinary ``open()`` would give it (those of the file it replaces,
    else 0666 less the umask), not the owner-only 0600 of a temporary file: results on a shared
    drive are for the lab to read.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    tmp: Path | None = None
    try:
        # made and named in one step an interrupt cannot cut (audit 27: one that landed just
        # after the file was made left it behind)
        with signals_held():
            fd, tmp_name = tempfile.mkstemp(
                prefix=_tmp_prefix(target), suffix=".part", dir=target.parent
            )
            os.close(fd)
            tmp = Path(tmp_name)
        yield tmp
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


#: the file, in each folder :func:`atomic_folder` writes, that lists the files nkpanel wrote
#: there: only those are ever replaced or removed, never a file someone else put beside them
OWNED = ".nkpanel-files"


@contextlib.contextmanager
def atomic_folder(target: Path, *, prune: bool = True) -> Iterator[Path]:
    """Yield a new, empty folder beside ``target``; on success it takes ``target``'s place.

    With ``prune=False`` (the simulators, which add example files to a folder that may hold
    anything) nothing already there is removed: the new files are moved in beside the others,
    replacing only nkpanel's own files of the same names.

    The folder then holds what this run wrote and no file of an earlier run of nkpanel: the
    files nkpanel wrote are listed in :data:`OWNED`. A ``target`` holding only such files is
    replaced whole (between the two renames it is briefly absent, never half-written). A
    ``target`` that also holds files nkpanel did not write (the input file, a lab's notes; or
    any file at all when it has no list, as before nkpanel kept one), or that is a link to a
    folder elsewhere, keeps them: nkpanel's own earlier files are removed and the new ones
    moved in beside them. On any exception the new folder is removed and ``target`` is left
    as it was.

    Raises
    ------
    InputError
        A file nkpanel would write there is already there and is not nkpanel's (a lab's own
        ``report.pdf``): it is never overwritten; or the folder reaches outside itself through
        a link where nkpanel would write.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    tmp: Path | None = None
    try:
        # made and named in one step an interrupt cannot cut (audit 27: one that landed in
        # the folder's making left a hidden .part folder behind)
        with signals_held():
            tmp = Path(
                tempfile.mkdtemp(prefix=_tmp_prefix(target), suffix=".part", dir=target.parent)
            )
        yield tmp
        # the folder's own list, where something in it claimed its files (an NK-activity
        # plate's outputs), is written again below: it is no file of the list (review 21: it
        # listed itself, and the next run refused it as not nkpanel's)
        written = sorted(
            str(f.relative_to(tmp)) for f in tmp.rglob("*") if f.is_file() and f != tmp / OWNED
        )
        # stamped once, here: a move keeps a file's size, time and content
        stamps = {name: _stamp(tmp / name) for name in written}
        _write_list(tmp, stamps)
        # mkdtemp's folder is the owner's only; a shared folder's setgid bit is passed on
        inherit = target.parent.stat().st_mode & stat.S_ISGID
        os.chmod(tmp, (0o777 & ~_umask()) | inherit)
        owned = _owned_stamps(target) if target.is_dir() else {}
        if not target.exists() and not target.is_symlink():
            os.replace(tmp, target)
        elif not prune:
            _merge(tmp, target, stamps, owned, prune=False)
        elif target.is_dir() and not target.is_symlink() and _only_ours(target, owned):
            with signals_held():  # an interrupt between the renames left neither in place
                old = Path(
                    tempfile.mkdtemp(prefix=_tmp_prefix(target), suffix=".old", dir=tmp.parent)
                )
                os.replace(target, old / target.name)
                os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            _merge(tmp, target, stamps, owned)
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back (delivered after) for a step that must not be cut in two;
    only the main thread can hold them, elsewhere the step runs as it is.

    They are held by handlers that only note them, then sent again to the handlers that were
    there: blocking them in the main thread's signal mask (as before) holds nothing while
    other threads run (nkpanel's reading helpers), since the kernel then hands the signal to
    one of those and Python runs its handler at once."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []

    def note(signum: int, frame: object) -> None:
        came.append(signum)

    before = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        for signum in dict.fromkeys(came):
            signal.raise_signal(signum)


def _merge(
    tmp: Path, target: Path, stamps: dict[str, str], owned: dict[str, str], *, prune: bool = True
) -> None:
    """Move the files ``written`` in ``tmp`` into ``target``, which holds files that are not
    nkpanel's (``owned``: those its list there names, :func:`_owned_stamps`): those are never
    touched, and a name clash with one of them is refused before anything moves. The list
    names old and new files until the end, so an interruption never leaves a file of
    nkpanel's unlisted. Without ``prune``, nkpanel's other files there stay too."""
    if not target.is_dir():
        raise InputError(target, "is not a folder: nkpanel cannot write its outputs there")
    written = list(stamps)
    for name in written:
        if not _inside(target / name, target):
            raise InputError(target / name, "leads out of the output folder through a link")
    _refuse_clash(target, written, owned.keys())
    _write_list(target, {**owned, **stamps})
    if prune:
        for name in owned.keys() - stamps.keys():
            _remove_listed(target, name)
    for name in written:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / name, target / name)  # keeps its size and modification time
    if prune:  # else the list already names what stays: the others and the new
        _write_list(target, stamps)


def earlier_folders(parent: Path, written: Iterable[str]) -> list[Path]:
    """The folders in ``parent`` that nkpanel wrote (they list their files) but not as
    ``written`` in this run: an earlier run's, named to the user, never removed unasked."""
    if not parent.is_dir():
        return []
    now = set(written)
    return sorted(
        d
        for d in parent.iterdir()
        if d.is_dir() and not d.is_symlink() and (d / OWNED).is_file() and d.name not in now
    )


def _not_ours(path: Path) -> InputError:
    return InputError(
        path,
        "exists and was not written by nkpanel, or was changed since: it is not overwritten "
        "(move it, or choose another --out)",
    )


def check_ours(folder: Path, names: Iterable[str]) -> None:
    """Refuse, before any work, to write files ``names`` into ``folder`` (which may be any
    folder of the user's) where a file of that name is there and is not nkpanel's as it
    wrote it.

    Raises
    ------
    InputError
        Naming the first such file.
    """
    _refuse_clash(folder, names, listed(folder))


def _refuse_clash(folder: Path, names: Iterable[str], owned: Collection[str]) -> None:
    """:func:`check_ours` with the names nkpanel's list there holds already read."""
    for name in names:
        path = folder / name
        if (path.exists() or path.is_symlink()) and name not in owned:
            raise _not_ours(path)


def write_owned(target: Path, writer: Callable[[Path], object]) -> Path:
    """Write ``target`` with ``writer`` (which writes it atomically: :func:`write_text`…) and
    list it at once as nkpanel's in its folder (:func:`claim`): a failure after it leaves it
    nkpanel's, removable by the next run. Returns ``target``."""
    writer(target)
    claim(target.parent, [target.name])
    return target


def claim(folder: Path, names: Iterable[str]) -> None:
    """Add the files ``names`` nkpanel has just written in ``folder`` to its list there."""
    stamps = _owned_stamps(folder)
    stamps.update({n: _stamp(folder / n) for n in names})
    _write_list(folder, stamps)


def remove_claimed(folder: Path, names: Iterable[str]) -> list[Path]:
    """Remove those of the files ``names`` in ``folder`` that nkpanel wrote and nobody has
    changed since; return them."""
    owned = _owned_stamps(folder)
    gone = [folder / n for n in names if n in owned and (folder / n).is_file()]
    for path in gone:
        path.unlink()
    if gone:
        _write_list(folder, {n: st for n, st in owned.items() if (folder / n).is_file()})
    return gone


def _stamp(path: Path) -> str:
    """``size<TAB>modification time<TAB>SHA-256`` of the file nkpanel has just written: a
    listed file changed since (a lab's corrections in ``events.csv``) is no longer nkpanel's
    as written, and is kept; one only copied (a backup restored, a share with coarse times)
    still is."""
    st = path.stat()
    return f"{st.st_size}\t{st.st_mtime_ns}\t{file_sha256(path)}"


def _write_list(folder: Path, stamps: dict[str, str]) -> None:
    """Write the list of nkpanel's files in ``folder``: name → stamp (empty for an entry of a
    list from before nkpanel kept stamps)."""
    lines = "".join(f"{n}\t{st}\n" if st else f"{n}\n" for n, st in sorted(stamps.items()))
    part = folder / f"{OWNED}.part"
    part.write_text(lines, encoding="utf-8")
    os.replace(part, folder / OWNED)


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` stays in ``folder`` once links in its parent folders are followed."""
    return path.parent.resolve().is_relative_to(folder.resolve())


def _remove_listed(folder: Path, name: str) -> None:
    path = folder / name
    if _inside(path, folder) and path.is_file() and not path.is_symlink():
        path.unlink()


def listed(folder: Path) -> set[str]:
    """The files (relative paths) nkpanel listed in ``folder`` that are as it wrote them."""
    return set(_owned_stamps(folder))


def _owned_stamps(folder: Path) -> dict[str, str]:
    """The files nkpanel listed in ``folder`` that are as it wrote them, with their stamps:
    relative paths that stay inside it, whose stamp still fits (an entry without one, from
    before nkpanel kept them, is taken at its word)."""
    try:
        text = (folder / OWNED).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, *stamp = line.split("\t")
        rel = Path(name)
        if not name or rel.is_absolute() or ".." in rel.parts or rel.anchor:
            continue
        if len(stamp) >= 2 and not _as_written(folder / name, stamp):
            continue  # changed since nkpanel wrote it: someone else's now
        out[name] = "\t".join(stamp)
    return out


def _as_written(path: Path, stamp: list[str]) -> bool:
    """Whether ``path`` holds what nkpanel wrote: the listed size, and the listed time or,
    when a copy or a coarse file system changed the time, the listed content (SHA-256)."""
    try:
        st = path.stat()
    except OSError:
        return False
    if str(st.st_size) != stamp[0]:
        return False
    if str(st.st_mtime_ns) == stamp[1]:
        return True
    try:
        return len(stamp) >= 3 and file_sha256(path) == stamp[2]
    except OSError:
        return False


def file_sha256(path: Path, head: int | None = None) -> str:
    """The SHA-256 of ``path``'s bytes, or of its first ``head`` bytes.

    Raises
    ------
    OSError
        The file cannot be read.
    """
    with path.open("rb") as fh:
        if head is None:
            return hashlib.file_digest(fh, "sha256").hexdigest()
        return hashlib.sha256(fh.read(head)).hexdigest()


def _only_ours(folder: Path, listed: Collection[str]) -> bool:
    """Whether every file in ``folder`` is one nkpanel's list there (``listed``:
    :func:`_owned_stamps`) names as it wrote it."""
    if not (folder / OWNED).is_file():
        return False
    owned = {*listed, OWNED}
    return not any(
        (f.is_file() or f.is_symlink()) and str(f.relative_to(folder)) not in owned
        for f in folder.rglob("*")
    )


def remove_owned(folder: Path) -> bool:
    """Remove the files nkpanel listed as its own in ``folder`` (see :func:`atomic_folder`),
    then the folders left empty; return whether ``folder`` itself is gone. Files nkpanel did
    not write, and anything reached through a link, are never removed."""
    if folder.is_symlink() or not folder.is_dir() or not (folder / OWNED).is_file():
        return False
    for name in listed(folder):
        _remove_listed(folder, name)
    (folder / OWNED).unlink()
    for sub in sorted((d for d in folder.rglob("*") if d.is_dir()), reverse=True):
        if not sub.is_symlink():
            with contextlib.suppress(OSError):
                sub.rmdir()  # only when empty
    with contextlib.suppress(OSError):
        folder.rmdir()
    return not folder.exists()


#: a temporary of nkpanel's untouched this long was left by a run that was killed
LEFTOVER_AGE_S = 3600.0

#: folders this run holds locked (``nkpanel._cli.hold_folder``; a worker is told its
#: parent's): no other run writes in them unless it holds a folder above or below (see
#: :func:`_only_this_run_writes`)
_HELD: list[Path] = []


def held(folder: Path) -> Callable[[], None]:
    """Note that this run holds ``folder`` locked; return what un-notes it."""
    path = folder.resolve()
    _HELD.append(path)
    return lambda: _HELD.remove(path) if path in _HELD else None


def held_folders() -> list[Path]:
    """The folders this run holds locked (:func:`held`)."""
    return list(_HELD)


def _only_this_run_writes(folder: Path) -> bool:
    """Whether ``folder`` lies in a folder this run holds locked and no other run holds a
    folder on its path: one that writes there locks ``folder`` or a folder above it (review
    28: a case run into ``out/case`` and a batch into ``out/case/flow/draw-1`` each took the
    draw's folder for their own, and removed each other's temporaries)."""
    where = folder.resolve()
    if not any(where.is_relative_to(mine) for mine in _HELD):
        return False
    import fcntl  # there where a folder is held (see nkpanel._cli.hold_folder)

    for above in (where, *where.parents):
        if above in _HELD:
            continue
        try:
            fd = os.open(above, os.O_RDONLY)
        except OSError:
            continue  # a folder this user cannot open is not where a run of theirs writes
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # another run holds it
        except OSError:
            pass
        finally:
            os.close(fd)  # and the shared lock with it
    return True


def _tmp_prefix(target: Path) -> str:
    """The start of the names of ``target``'s temporaries: hidden, and marked nkpanel's."""
    return f".{target.name}.nkpanel-"


def remove_leftovers(target: Path) -> None:
    """Remove the temporaries (``.<name>.*.part``, ``.<name>.*.old``) a killed run left beside
    ``target`` (every atomic write does, and a batch after a worker ended writing it); those
    younger than :data:`LEFTOVER_AGE_S` may be another run's, and stay, but in a folder this
    run holds locked (:func:`held`) none is (audit 27: a worker killed with ``kill -9``, or a
    run ended by a closed terminal, left hidden folders that a re-run within the hour kept)."""
    now = time.time()
    # judged once a leftover is found, not on every write (it looks at the locks above)
    age: float | None = None
    # exactly nkpanel's names: its prefix, tempfile's 8 random characters, the suffix
    ours = re.compile(re.escape(_tmp_prefix(target)) + r"[a-z0-9_]{8}\.(part|old)")
    for left in target.parent.glob(glob.escape(_tmp_prefix(target)) + "*"):
        if not ours.fullmatch(left.name) or left.is_symlink():
            continue
        if left.suffix == ".old" and not target.exists():
            continue  # a run killed between its two renames: the only earlier copy
        if age is None:
            age = 0.0 if _only_this_run_writes(target.parent) else LEFTOVER_AGE_S
        try:
            if now - left.stat().st_mtime < age:
                continue
            if left.is_dir():
                shutil.rmtree(left, ignore_errors=True)
            else:
                left.unlink()
        except OSError:
            continue


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (the usual
    ``os.umask`` round trip briefly sets it to 0 for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes(target, text.encode("utf-8"))


def write_with(target: Path, writer: Callable[[Path], object]) -> None:
    """Call ``writer(tmp_path)`` and move the result over ``target`` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)
