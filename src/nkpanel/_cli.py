"""What nkpanel's command lines share: the consoles, the progress bar, one-line messages on
stderr, ``KEY=VALUE`` options, and the options ``nkpanel run`` and ``nkpanel report`` both take.

The root command line (:mod:`nkpanel.cli`) and the biomarkers' sub-applications
(:mod:`nkpanel.cytotox.cli`, :mod:`nkpanel.uterine.cli`, :mod:`nkpanel.report.cli`) import
from here, so that every command looks and fails the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from nkpanel._names import distinct_files, files_in_folders
from nkpanel.errors import ConfigError, InputError, interrupted

__all__ = [
    "HistoryOption",
    "IntervalsOption",
    "LabOption",
    "err_console",
    "expand_folders",
    "fmt",
    "fmt_ci",
    "out_console",
    "output_folder",
    "parse_pairs",
    "progress",
    "progress_steps",
    "say",
]

V = TypeVar("V")


def expand_folders(paths: Iterable[Path], suffixes: tuple[str, ...]) -> list[Path]:
    """The files given, folders replaced by the files in them
    (:func:`~nkpanel._names.files_in_folders`), each file once (a note says which were given
    twice: :func:`~nkpanel._names.distinct_files`).

    Raises
    ------
    InputError
        A folder that holds no such file.
    """
    below: list[str] = []
    files, notes = distinct_files(files_in_folders(paths, suffixes, below))
    for note in below + notes:
        say(note, flag="note:", colour="yellow")
    return files


def output_folder(ctx: typer.Context, folder: Path) -> Path:
    """An ``--out`` option's check, before any work: the folder, or the nearest part of its
    path that exists, must be a folder (a file there would fail the first write, after the
    analysis); and no other nkpanel run may be writing to it (:func:`hold_folder`, held until
    the command ends)."""
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                why = "not a folder" if part == folder else f"so {folder} cannot be made in it"
                raise InputError(part, f"the output folder (--out) is a file, {why}")
            break
    ctx.call_on_close(hold_folder(folder))
    return folder


#: the releases of the folders this process holds (:func:`hold_folder`), for a command that
#: ends before its context is entered (a usage error in a later option)
_RELEASES: list[Callable[[], None]] = []


def check_settings(jobs: int | None) -> None:
    """The environment's row threads (``NKPANEL_THREADS``) and, where ``--jobs`` does not
    say, worker processes (``NKPANEL_JOBS``): a setting that is no count is said before any
    work (it was taken for 1 without a word); commands that use neither do not read them."""
    from nkpanel._threads import thread_count
    from nkpanel._workers import job_count

    thread_count()
    if jobs is None:
        job_count()


def release_all() -> None:
    """Release every folder this process holds (:func:`hold_folder`)."""
    while _RELEASES:
        _RELEASES[-1]()


def hold_folder(folder: Path) -> Callable[[], None]:
    """Lock ``folder`` for this process's run (made if it is not there); return what releases
    it. Two runs writing into one folder at once mixed their samples' tables, gates and plots
    (audit 18): the second is refused before any work. The folder itself is locked (``flock``
    on it: no lock file is left behind); the folders this run made and left empty are removed
    on release. Where the system has no ``flock`` (Windows), or the file system refuses one
    (a network share: NFS, SMB), the run goes on unlocked, said in a warning.

    Raises
    ------
    InputError
        Another run holds the folder, or it cannot be made, read or written to.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS
        return lambda: None
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # removed if left empty
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise InputError(
            folder, f"the output folder (--out) cannot be made or read ({exc.strerror or exc})"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        os.close(fd)
        raise InputError(folder, "the output folder (--out) is not writable by this user")
    unheld: Callable[[], None] | None = None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InputError(
            folder,
            "another nkpanel run is writing to this output folder (--out): wait for it to "
            "finish, or choose another folder",
        ) from None
    except OSError as exc:  # a file system without flock on folders (NFS gives EBADF)
        say(
            f"{folder}: the output folder cannot be locked ({exc.strerror or exc}): make sure "
            "no other nkpanel run writes to it at the same time",
            flag="warning:",
            colour="yellow",
        )
    else:  # locked: no other run writes here (its temporaries of any age are leftovers)
        from nkpanel._atomic import held

        unheld = held(folder)

    def release() -> None:
        if release not in _RELEASES:  # released already: its descriptor may be another's now
            return
        _RELEASES.remove(release)
        if unheld is not None:
            unheld()
        try:
            for p in made:  # innermost first: nothing written, no folder left either
                if any(p.iterdir()):
                    break
                p.rmdir()
        except OSError:
            pass
        finally:
            os.close(fd)

    _RELEASES.append(release)
    return release


#: results, tables and where the outputs went; no markup is read from what is printed (sample
#: and file names may hold brackets)
out_console = Console(markup=False)
#: progress, notes, failures and errors
err_console = Console(stderr=True)

HistoryOption = Annotated[
    list[Path] | None,
    typer.Option("--history", help="An earlier episode's case_summary.json (repeatable)."),
]
IntervalsOption = Annotated[
    Path | None,
    typer.Option(
        "--reference-intervals",
        help="The lab's reference-interval TOML, replacing or extending the bundled one.",
    ),
]
JobsOption = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="FCS files analysed at once, each in a process of its own (default: the CPUs, at "
        "most 8, or NKPANEL_JOBS, for 3 files or more with figures; 1: one after another).",
    ),
]
LabOption = Annotated[
    Path | None,
    typer.Option(
        "--lab",
        help="Lab TOML, keys at the top level: name, address, accreditation, contact, analyst, "
        "requester, timezone (docs/case-manifest.md in nkpanel's source); an authoriser there "
        "authorises no report (nkpanel report --authoriser does, after review).",
    ),
]


def progress() -> Progress:
    """A transient progress bar on stderr, not drawn when stderr is not a terminal (see
    :func:`starting` for the plain lines said then).

    Tasks carry a ``current`` field: the item being worked on.
    """
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),  # "0/?" while a total is not known yet
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}", markup=False),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


@contextmanager
def progress_steps(description: str, total: int) -> Iterator[Callable[[str], None]]:
    """A :func:`progress` bar of ``total`` items; yields the callback to call as each item
    starts, with its name (a path shows as its file name).

    The bar counts the items finished (those before the one under way). Off a terminal (a
    log, a scheduled run) each item is one plain line instead, ``analysing 3/20: tube002.fcs``,
    so that a long batch is not silent until its table.

    Example::

        with progress_steps("analysing", len(files)) as step:
            analyze_batch(files, on_file=step)
    """
    with progress() as bar:
        task = bar.add_task(description, total=total, current="")
        started = 0

        def step(name: str) -> None:
            nonlocal started
            started += 1
            starting(bar, task, description, started, total, name)

        yield step


def starting(bar: Progress, task: TaskID, label: str, number: int, total: int, name: str) -> None:
    """Item ``number`` (from 1) of ``total`` starts: the items before it are done. On a
    terminal the bar moves; off one, a plain line says which item starts
    (``analysing 3/20: tube002.fcs``)."""
    if interrupted():  # an interrupt Python swallowed (raised in a callback): stop here
        raise KeyboardInterrupt
    shown = Path(name).name
    bar.update(task, completed=number - 1, current=shown)
    if bar.disable:
        err_console.print(
            Text(f"{label} {number}/{total}: {shown}"), highlight=False, soft_wrap=True
        )


def say(text: str, *, flag: str | None = None, colour: str = "red") -> None:
    """Print one line on stderr, unwrapped, exactly as given: no markup is read from it (file
    names and messages may hold brackets: ``[l/d]``, ``[/i]``). ``flag`` (e.g. ``"failed:"``)
    leads the line in ``colour``."""
    line = Text(text) if flag is None else Text.assemble((flag, colour), " ", text)
    err_console.print(line, highlight=False, soft_wrap=True)


#: a number standing as a word ("17240", "14.0", "1,024"), not one inside a name ("CD3")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?(?![\w])")


def grouped(lines: Sequence[tuple[str, str]]) -> list[str]:
    """``(sample, text)`` lines, one line per fact: lines that differ only in one number
    ("17240 counting-bead events found…" in every file of a batch) become one, naming the
    samples, with that number given as its range ("17240–17607"). Lines differing in two
    numbers or more stay apart: ranges of each would lose which goes with which (review 21:
    two ratios' CVs became "12.5–50:1 … 20.0–40.0%", taking in 25:1, which passed). Order:
    first appearance."""
    groups: list[_Group] = []
    for sample, text in lines:
        words, numbers = tuple(_NUMBER.split(text)), _NUMBER.findall(text)
        for g in groups:
            if g.takes(words, numbers):
                g.members.append((sample, numbers))
                break
        else:
            groups.append(_Group(words, [(sample, numbers)]))
    out = []
    for g in groups:
        samples = list(dict.fromkeys(m[0] for m in g.members))
        spans = [_span([m[1][k] for m in g.members]) for k in range(len(g.words) - 1)]
        text = "".join(w + n for w, n in zip(g.words, [*spans, ""], strict=True))
        out.append(f"{_samples_named(samples)}: {text}")
    return out


@dataclass
class _Group:
    """Lines of one text but for one number (:func:`grouped`)."""

    words: tuple[str, ...]
    members: list[tuple[str, list[str]]]
    varies: int | None = None  # the number that differs among the members

    def takes(self, words: tuple[str, ...], numbers: list[str]) -> bool:
        if words != self.words:
            return False
        first = self.members[0][1]
        apart = [k for k, (a, b) in enumerate(zip(first, numbers, strict=True)) if a != b]
        if len(apart) > 1 or (apart and self.varies not in (None, apart[0])):
            return False
        # a value quoted as read ("$TIMESTEP '0'") is not a measure: no range of two of them
        # (audit 27: '-0.01' and '0' read "'-0.01–0'")
        quotes = ("'", '"')
        if apart and words[apart[0]].endswith(quotes) and words[apart[0] + 1].startswith(quotes):
            return False
        if apart:
            self.varies = apart[0]
        return True


def _span(values: list[str]) -> str:
    """One number as written, or the lowest and highest of several ("17240–17607")."""
    if len(set(values)) == 1:
        return values[0]
    ordered = sorted(values, key=lambda v: float(v.replace(",", "")))
    return f"{ordered[0]}–{ordered[-1]}"


def _samples_named(samples: list[str]) -> str:
    if len(samples) <= 4:
        return ", ".join(samples)
    return f"{len(samples)} samples ({samples[0]} … {samples[-1]})"


def say_written(out: Path, written: bool, removed: Sequence[Path], what: str) -> None:
    """A batch's closing lines: where its outputs are, or that nothing was written as no
    ``what`` ("file", "image") could be analysed; and the earlier run's tables it removed."""
    if written:
        out_console.print(f"outputs written to {out}", soft_wrap=True)
    else:
        say(f"no {what} could be analysed: nothing written")
    if removed:
        say(f"{out}: the earlier run's batch tables were removed (they did not describe this run)")


def fmt(value: object, decimals: int = 1) -> str:
    """A number for a results table; ``–`` when there is none (or what is there is no
    number, as a summary read back from JSON may hold)."""
    return f"{value:.{decimals}f}" if isinstance(value, int | float) else "–"


def fmt_ci(estimate: object, lower: object, upper: object, decimals: int = 1) -> str:
    """An estimate with its interval, ``"7.9 (7.1–8.8)"``; the estimate alone where a bound
    is missing, ``–`` where there is no estimate."""
    shown = fmt(estimate, decimals)
    if shown != "–" and isinstance(lower, int | float) and isinstance(upper, int | float):
        shown += f" ({lower:.{decimals}f}–{upper:.{decimals}f})"
    return shown


def parse_pairs(
    texts: Iterable[str],
    *,
    option: str,
    form: str,
    hint: str = "",
    convert: Callable[[str, str], V],
    same_key: Callable[[str], str] = str,
) -> dict[str, V]:
    """Read repeated ``KEY=VALUE`` options into a mapping; a key given twice is refused (two
    labels for one marker would otherwise keep the last one silently).

    Parameters
    ----------
    texts
        The option's values as typed.
    option, form, hint
        For the message: ``"{option} {text!r}: expected {form}{hint}"``.
    convert
        ``(key, value) -> V`` with both sides stripped; raises ``ValueError`` for a value it
        cannot take.
    same_key
        Two keys are the same when this gives them one value (marker names are compared as
        the alias table compares them: ``CD56`` and ``cd-56``).

    Raises
    ------
    ConfigError
        A text without ``=``, with an empty side, that ``convert`` rejects, or whose key was
        given before.
    """
    out: dict[str, V] = {}
    seen: set[str] = set()
    for text in texts:
        key, sep, value = (part.strip() for part in text.partition("="))
        if same_key(key) in seen:
            raise ConfigError(f"{option} {key} is given twice; give each once")
        seen.add(same_key(key))
        try:
            if not sep or not key or not value:
                raise ValueError(text)
            out[key] = convert(key, value)
        except ValueError:
            raise ConfigError(f"{option} {text!r}: expected {form}{hint}") from None
    return out
