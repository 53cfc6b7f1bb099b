"""Running a case: every biomarker its manifest holds, into one output folder.

Today the case pipeline runs the peripheral-blood flow biomarker; NK activity (cytotoxicity
plates) and endometrial NK cells plug in here as they land.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from nkpanel._atomic import (
    atomic_folder,
    check_ours,
    earlier_folders,
    file_sha256,
    remove_leftovers,
    remove_owned,
    write_owned,
    write_text,
)
from nkpanel._names import (
    array_digest,
    away_from_earlier,
    distinct_files,
    files_in_folders,
    unique_stems,
)
from nkpanel.case import BloodDraw, Case
from nkpanel.errors import (
    ConfigError,
    InputError,
    batch_failure,
    interrupted,
    one_line,
)
from nkpanel.flow.analyze import AbsoluteCountInputs, FlowSettings, analyze_file
from nkpanel.flow.output import (
    BATCH_TABLES,
    BatchFailure,
    remove_batch_tables,
    write_batch,
    write_sample_outputs,
)
from nkpanel.flow.qc import QCFlag
from nkpanel.flow.results import FlowResult
from nkpanel.report.model import LabInfo, ReportPaths

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

__all__ = ["BatchOutcome", "CaseOutcome", "analyze_flow_batch", "draw_files", "run_case"]

Progress = Callable[[str], None]


@dataclass
class BatchOutcome:
    """What a batch produced: each file's result, the files that failed (with reasons), the
    outputs, and per sample its gating figures as a report embeds them (PNG, in gate order).
    Only results are kept (not events), so a batch's memory does not grow with the number of
    files."""

    results: list[FlowResult] = field(default_factory=list)
    failures: list[BatchFailure] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    figures: dict[str, list[Path]] = field(default_factory=dict)
    #: sample folders an earlier run left in the output folder (not in this batch's tables)
    earlier: list[Path] = field(default_factory=list)
    #: outputs of an earlier run removed: its batch tables when every file of this one failed,
    #: and (``prune``) its sample folders this run did not write
    removed: list[Path] = field(default_factory=list)
    #: how the batch was formed (a file given twice…)
    notes: list[str] = field(default_factory=list)
    #: files nkpanel's simulator wrote (labelled synthetic in the file)
    synthetic: list[str] = field(default_factory=list)
    #: each sample's events fingerprint (:func:`~nkpanel._atomic.array_digest`) → its name
    events: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _FileDone:
    """One file of a batch, analysed and written (its result and paths), or its failure."""

    result: FlowResult | None = None
    paths: tuple[Path, ...] = ()
    synthetic: bool = False
    #: shape and about 2,000 evenly spaced events: two tubes never share them
    fingerprint: str | None = None
    #: the earlier sample of the batch holding the same events, as its outputs say
    same_as: str | None = None
    failure: str | None = None


@dataclass(frozen=True)
class _File:
    """One file of a batch and everything its analysis needs (sent to a worker whole)."""

    path: Path
    name: str
    moved: str | None
    settings: FlowSettings
    out_dir: Path
    plots: bool
    export_events: Literal["parquet", "csv"] | None
    #: events fingerprints of files of the case's other blood draws → what to call them
    elsewhere: Mapping[str, str]

    def analyse(self, seen: Mapping[str, str]) -> _FileDone:
        """Analyse the file and write its sample folder; ``seen``: the events of the batch's
        earlier samples (fingerprint → sample)."""
        try:
            analysis = analyze_file(self.path, self.settings)
            notes: list[str] = []
            if self.name != analysis.result.sample:
                notes.append(
                    self.moved
                    or f"named {self.name}: another file of the batch is also called "
                    f"{self.path.stem}"
                )
            fingerprint = array_digest(analysis.sample.events, rows=2048)
            same_as = seen.get(fingerprint)
            if same_as is not None:  # the same tube re-exported (other keywords, byte order)
                notes.append(
                    f"holds the same events as {same_as} (exported twice?): both are listed, "
                    "but they are one tube"
                )
            if (where := self.elsewhere.get(fingerprint)) is not None:
                analysis = dataclasses.replace(
                    analysis,
                    result=dataclasses.replace(
                        analysis.result, qc=(*analysis.result.qc, _same_as_elsewhere(where))
                    ),
                )
            if notes:
                result = dataclasses.replace(
                    analysis.result,
                    sample=self.name,
                    file_notes=(*analysis.result.file_notes, *notes),
                )
                analysis = dataclasses.replace(analysis, result=result)
            outputs = write_sample_outputs(
                analysis, self.out_dir, plots=self.plots, export_events=self.export_events
            )
        except Exception as exc:  # one file's fault, nkpanel's included, stops no batch
            return _FileDone(failure=batch_failure(exc, source=self.path))
        return _FileDone(
            outputs.result,
            tuple(outputs.paths),
            analysis.sample.synthetic,
            fingerprint,
            same_as,
        )


#: files handed to the worker processes at once, per worker (each waits as a path until a
#: worker takes it; their results, small, until recorded in order)
FILES_AHEAD = 4


def _in_workers(
    files: Sequence[_File],
    jobs: int,
    record: Callable[[_File, _FileDone], None],
    on_file: Progress | None,
    seen: Mapping[str, str],
) -> list[str]:
    """Analyse ``files`` in ``jobs`` worker processes, recording each in the order given
    (:data:`FILES_AHEAD` per worker handed out at once); returns notes on workers that ended.
    An interrupt (or ``--debug``'s error) stops the batch: files not started are not, those
    under way stop through their own clean-up.

    A worker that ends before finishing its file (the system's out-of-memory killer, a
    ``kill``) breaks its pool, and which file it held is not known: the files that can have
    been in a worker are analysed again, one at a time in a worker of their own (in less
    memory, and a file that ends that worker too is known: its failure), and the batch goes
    on in a new pool (audit 27: the batch stopped there, and wrote no tables for the files it
    had finished). Where no worker process starts at all, the files are analysed here."""
    from concurrent.futures.process import BrokenProcessPool

    recorded = 0
    notes: list[str] = []

    def record_in_order(file: _File, done: _FileDone) -> None:
        """Record the next file, and say the one after it as one after another says it:
        when every file before it is done (audit 27: the progress bar counted the files
        handed out as done)."""
        nonlocal recorded
        record(file, done)
        recorded += 1
        if on_file is not None and recorded < len(files):
            on_file(str(files[recorded].path))

    if on_file is not None and files:
        on_file(str(files[0].path))
    while recorded < len(files):
        under_way: collections.deque[tuple[_File, Future[_FileDone]]] = collections.deque()
        try:
            _through_pool(files[recorded:], jobs, under_way, record_in_order, seen)
            break
        except BrokenProcessPool:
            if interrupted():  # the run's own Ctrl-C or SIGTERM, which reached its workers
                raise KeyboardInterrupt from None
        if not under_way:  # broken before it took a file: its workers did not start
            _in_this_process(files[recorded:], record_in_order, seen, notes)
            break
        back = {id(f): fut.result() for f, fut in under_way if _came_back(fut)}
        # the pool's call queue takes the files in the order given, at most one more than
        # its workers: only the first files without a result can have been in a worker
        # (review 28: every file handed out was analysed again, one at a time); the files
        # after them were never started, and go to the next pool
        held = [f for f, _ in under_way if id(f) not in back][: jobs + 1]
        # a worker of the batch worked: one that ends as it starts is not taken for workers
        # that cannot start (review 29: the rest of the batch went to this process)
        started = recorded > 0 or bool(back)
        ended = (
            "a worker process ended before finishing its file (stopped by a signal, or out of "
            f"memory): {_named(held, files)} analysed again, each in a worker of its own"
            if held
            else "a worker process ended between files (stopped by a signal, or out of "
            "memory): the batch went on in new ones"
        )
        try:
            for file, _ in under_way:
                if id(file) in back:
                    record_in_order(file, back[id(file)])
                elif file in held:
                    record_in_order(file, _alone(file, seen, started))
                    started = True
                else:
                    break
        except _NoWorkers:  # the workers never started (review 28: every file then "failed")
            _in_this_process(files[recorded:], record_in_order, seen, notes, back)
            break
        notes.append(ended)
    return notes


def _in_this_process(
    files: Sequence[_File],
    record: Callable[[_File, _FileDone], None],
    seen: Mapping[str, str],
    notes: list[str],
    back: Mapping[int, _FileDone] = MappingProxyType({}),
) -> None:
    """Record ``files`` analysed here, one after another, where no worker process starts
    (those whose results came back from a worker before: as they came back)."""
    notes.append(
        "worker processes could not be started: the files were analysed one after another in "
        "this process"
        + (
            ' (a script that asks for them runs its work under `if __name__ == "__main__":`)'
            if _run_as_script()
            else ""
        )
    )
    for file in files:
        record(file, back.get(id(file)) or file.analyse(seen))


def _run_as_script() -> bool:
    """Whether this process runs a script of its own, not nkpanel's command line (whose
    workers would not start for want of a main guard: review 29)."""
    import sys

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.split(".")[0] == "nkpanel":  # python -m nkpanel
        return False
    return Path(getattr(main, "__file__", None) or "nkpanel").stem != "nkpanel"


def _named(some: Sequence[_File], batch: Sequence[_File]) -> str:
    """``some`` files of ``batch`` by file name, or by path where two share one."""
    names = collections.Counter(f.path.name for f in batch)
    return ", ".join(f.path.name if names[f.path.name] == 1 else str(f.path) for f in some)


class _NoWorkers(Exception):
    """A worker process could not be started at all (it ended before taking any work)."""


def _came_back(future: Future[_FileDone]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _through_pool(
    files: Sequence[_File],
    jobs: int,
    under_way: collections.deque[tuple[_File, Future[_FileDone]]],
    record: Callable[[_File, _FileDone], None],
    seen: Mapping[str, str],
) -> None:
    """Hand ``files`` to a pool of ``jobs`` workers, :data:`FILES_AHEAD` per worker ahead of
    the results, and record each in order. ``under_way`` holds the files handed out and not
    yet recorded, for the caller when the pool breaks (BrokenProcessPool, the pool stopped)."""

    from nkpanel._workers import process_pool, run_in_worker, starting_workers, stop_workers

    pool = process_pool(jobs)
    try:
        for i, file in enumerate(files):
            # files are handed out ahead of the results recorded in order: a slow file at
            # the head does not leave the other workers idle (audit 27: 1M + 8 × 100k events,
            # 8.4–8.7 s with the large file first, 6.9–7.2 s with it last)
            if len(under_way) == FILES_AHEAD * jobs:
                record(*_finished(under_way))
            # the events of the files recorded so far: a twin of one of them is said in the
            # worker; only one of a file still under way is analysed again (see record)
            known = dict(seen)
            # the first submits start the worker processes (one each, never replaced)
            with starting_workers() if i < jobs else contextlib.nullcontext():
                under_way.append((file, pool.submit(run_in_worker, file.analyse, known)))
        while under_way:
            record(*_finished(under_way))
    except BaseException:
        stop_workers(pool)
        raise
    pool.shutdown(wait=True)


def _alone(file: _File, seen: Mapping[str, str], started: bool) -> _FileDone:
    """``file`` analysed in a worker process of its own (:func:`_worker_that_starts`); one
    that ends with the file is the file's failure, and its temporaries are removed."""
    from nkpanel._workers import run_in_worker

    pool = _worker_that_starts(started)
    if pool is None:
        return _FileDone(
            failure="no worker process could be started to analyse it again (out of memory?)"
        )
    try:
        done = pool.submit(run_in_worker, file.analyse, dict(seen)).result()
    except BaseException as exc:
        _stopped(pool, exc)
        remove_leftovers(file.out_dir / "samples" / file.name)
        return _FileDone(
            failure="its worker process ended before finishing it, with no other file beside "
            "it (out of memory? stopped by a signal?)"
        )
    pool.shutdown(wait=True)
    return done


def _stopped(pool: ProcessPoolExecutor, exc: BaseException) -> None:
    """Stop ``pool``'s workers after ``exc``, and raise again unless it is the pool broken by
    a worker that ended (an interrupt, as KeyboardInterrupt, however it surfaced)."""
    from concurrent.futures.process import BrokenProcessPool

    from nkpanel._workers import stop_workers

    stop_workers(pool)
    if interrupted():
        raise KeyboardInterrupt from None
    if not isinstance(exc, BrokenProcessPool):
        raise exc


def _worker_that_starts(started: bool) -> ProcessPoolExecutor | None:
    """A pool of one worker process seen to work (it answered a no-op), tried twice: a worker
    that ends as it starts is not yet a worker that cannot start (review 29). ``None`` where
    neither started though workers of the batch have worked (``started``).

    Raises
    ------
    _NoWorkers
        Neither started, and no worker of the batch has worked: workers cannot start here (a
        script without ``if __name__ == "__main__":``, a broken installation).
    """
    from nkpanel._workers import process_pool, starting_workers

    for _ in range(2):
        pool = process_pool(1)
        try:
            with starting_workers():
                pool.submit(os.getpid).result()
            return pool
        except BaseException as exc:
            _stopped(pool, exc)
    if not started:
        raise _NoWorkers
    return None


def _same_as_elsewhere(where: str) -> QCFlag:
    """The blocking check of a file whose events another blood draw of the case holds: two
    draws cannot hold the same events (audit 27: the same file attached to two draws read as
    two results that agreed)."""
    return QCFlag(
        "same events as another blood draw",
        False,
        None,
        None,
        f"holds the same events as {where}: two blood draws cannot hold the same events (the "
        "same file given for both?)",
    )


def _finished(
    under_way: collections.deque[tuple[_File, Future[_FileDone]]],
) -> tuple[_File, _FileDone]:
    """The first file under way, once done (taken off the queue only then, so that a worker
    that ends meanwhile leaves it among the files said to be under way)."""
    file, future = under_way[0]
    done = future.result()
    under_way.popleft()
    return file, done


def analyze_flow_batch(
    paths: Sequence[Path],
    settings: FlowSettings,
    out_dir: Path,
    *,
    plots: bool = True,
    export_events: Literal["parquet", "csv"] | None = None,
    on_file: Progress | None = None,
    prune: bool = False,
    jobs: int | None = 1,
    elsewhere: Mapping[str, str] = MappingProxyType({}),
    title: str = "",
    failed: Sequence[BatchFailure] = (),
    notes: Sequence[str] = (),
) -> BatchOutcome:
    """Analyse each file; a bad file is recorded as a failure and the rest still run.

    When every file fails, nothing is written, and batch tables an earlier run left in
    ``out_dir`` are removed (they would pass for this run's). Sample folders of an earlier run
    that this one did not write are listed in :attr:`BatchOutcome.earlier` and in the summary,
    or, with ``prune`` (a case's own folder), removed. A file given twice is analysed once.
    Files are named by their stem; files of one stem from different folders are told apart as
    ``<stem>-2``, ``<stem>-3``… in the order given (with a note naming the file), so that none
    overwrites another's outputs; nor, outside a case's folder, the outputs an earlier run
    wrote there for another file of the same stem (:func:`~nkpanel._names.away_from_earlier`).

    With ``jobs`` > 1, that many files are analysed at once, each in a worker process
    (:mod:`nkpanel._workers`); the outcome is the same as one by one, in the order given.
    ``None`` chooses (:func:`~nkpanel._workers.default_jobs`). ``elsewhere``: the events
    fingerprints of a case's other blood draws (:attr:`BatchOutcome.events`) and what to call
    each; a file holding one of them is withheld. ``title`` names the batch on its review
    page (a case's blood draw); ``failed`` and ``notes``: what was found wrong or worth saying
    before the batch (a case's files that are missing), recorded first. Worker processes
    start afresh and import the program's main module, as Python's ``multiprocessing`` does:
    a script that asks for workers runs its own work under ``if __name__ == "__main__":``."""
    check_ours(out_dir, BATCH_TABLES)  # a lab's own file of one of their names: refused now
    outcome = BatchOutcome(failures=list(failed))
    paths, distinct = distinct_files(paths)
    outcome.notes = [*notes, *distinct]
    names = unique_stems(paths)
    moved: dict[int, str] = {}
    if not prune:  # a case's own folder holds its own files: replaced, not kept beside
        names, moved = away_from_earlier(out_dir / "samples", paths, names)
    seen: dict[str, str] = {}  # events fingerprint → the sample that holds them
    others = dict(elsewhere)  # one copy for every file
    files = [
        _File(path, name, moved.get(i), settings, out_dir, plots, export_events, others)
        for i, (path, name) in enumerate(zip(paths, names, strict=True))
    ]

    def record(file: _File, done: _FileDone) -> None:
        if done.fingerprint in seen and done.same_as is None:
            # analysed in a worker while its twin was still under way: again, here, so that
            # its outputs say so
            done = file.analyse(seen)
        if done.failure is not None:
            outcome.failures.append(BatchFailure(str(file.path), done.failure))
            return
        assert done.result is not None and done.fingerprint is not None
        seen.setdefault(done.fingerprint, done.result.sample)
        outcome.written += done.paths
        if done.synthetic:
            outcome.synthetic.append(str(file.path))
        outcome.figures[done.result.sample] = [p for p in done.paths if p.suffix == ".png"]
        outcome.results.append(done.result)

    if jobs is None:
        from nkpanel._workers import default_jobs

        jobs = default_jobs(len(files), plots)
    if jobs > 1 and len(files) > 1:
        from nkpanel._threads import usable_cpus

        jobs = min(jobs, len(files))
        cpus = usable_cpus()
        if jobs > cpus:
            outcome.notes.append(
                f"{jobs} worker processes on {cpus} CPU{'s' * (cpus != 1)}: more processes "
                f"than CPUs only share them, and each holds a whole file in memory (--jobs)"
            )
        outcome.notes += _in_workers(files, jobs, record, on_file, seen)
    else:
        for file in files:
            if on_file is not None:
                on_file(str(file.path))
            record(file, file.analyse(seen))
    outcome.events = seen
    written_now = {r.sample for r in outcome.results}
    outcome.earlier = earlier_folders(out_dir / "samples", written_now)
    if prune:  # only nkpanel's own files go; a folder holding anything else stays, listed
        gone = [d for d in outcome.earlier if remove_owned(d)]
        outcome.removed += gone
        outcome.earlier = [d for d in outcome.earlier if d not in gone]
    if outcome.results:  # every file failed: no empty tables
        outcome.written += write_batch(
            outcome.results,
            outcome.failures,
            out_dir,
            earlier=outcome.earlier,
            settings=_run_settings(settings),
            figures=outcome.figures,
            synthetic=outcome.synthetic,
            notes=outcome.notes,
            title=title,
        )
    else:
        outcome.removed = remove_batch_tables(out_dir)
        with contextlib.suppress(OSError):  # the samples folder this run made, if left empty
            (out_dir / "samples").rmdir()
    return outcome


def _synthetic_inputs(outcome: CaseOutcome) -> list[str]:
    """The inputs of a case that nkpanel's simulators wrote (labelled so in the file)."""
    out = [f for o in outcome.draws.values() for f in o.synthetic]
    out += [f"cytotoxicity plate {c.get('id')}" for c in outcome.cytotoxicity if c.get("synthetic")]
    for b in outcome.endometrial:
        images = [i for i in b.get("images") or [] if isinstance(i, dict)]
        if b.get("synthetic") or any(i.get("synthetic") for i in images):
            out.append(f"endometrial biopsy {b.get('id')}")
    return out


def _run_settings(s: FlowSettings) -> dict[str, Any]:
    """What a batch's results rest on beyond the files, for its summary: nkpanel's version,
    the absolute-count inputs behind every cells/µL, and the choices a lab made."""
    from nkpanel import __version__

    return {
        "nkpanel": __version__,
        "beads_per_test": s.counts.beads_per_test,
        "sample_volume_ul": s.counts.sample_volume_ul,
        "lymphocytes_per_ul": s.counts.lymphocytes_per_ul,
        # the template by name and content, not by a path on the lab's machine
        "template": None if s.template is None else s.template.name,
        "template_sha256": None if s.template is None else file_sha256(s.template),
        "template_sample": s.template_sample,
        "populations": dict(s.template_populations),
        "marker_overrides": dict(s.marker_overrides),
        "spillover_supplied": s.spillover is not None,
        "cytometry": s.autogate.cytometry,
        "cd45_dim_out": s.autogate.cd45_dim_out,
        "dataset": s.dataset,
    }


@dataclass
class CaseOutcome:
    """A case's outputs: per blood draw, the flow batch outcome."""

    case: Case
    draws: dict[str, BatchOutcome] = field(default_factory=dict)
    cytotoxicity: list[dict[str, Any]] = field(default_factory=list)
    endometrial: list[dict[str, Any]] = field(default_factory=list)
    summary_path: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    report: ReportPaths | None = None
    #: outputs of an earlier run into the same folder that this run removed (nkpanel's own
    #: files only) or left (specimens no longer in the manifest; a report not written again)
    removed: list[Path] = field(default_factory=list)
    earlier: list[Path] = field(default_factory=list)

    @property
    def failures(self) -> list[BatchFailure]:
        """Every file or entry that failed, each named with its specimen (two draws may hold
        one file name, each with its own template: audit 21)."""
        out = [
            BatchFailure(f"blood draw {draw}: {f.source}", f.reason)
            for draw, o in self.draws.items()
            for f in o.failures
        ]
        for plate in self.cytotoxicity:
            if "error" in plate:
                out.append(BatchFailure(f"cytotoxicity plate {plate['id']}", plate["error"]))
            for fail in plate.get("failures", []):
                out.append(BatchFailure(f"cytotoxicity plate {plate['id']}", str(fail)))
        for biopsy in self.endometrial:
            for fail in biopsy.get("failures", []):
                out.append(BatchFailure(str(fail.get("source")), str(fail.get("reason"))))
        return out


def _draw_settings(
    base: FlowSettings, draw: BloodDraw, case: Case, notes: list[str] | None = None
) -> FlowSettings:
    """The flow settings of one blood draw: the run's, with the draw's own inputs; how a
    spillover CSV was read goes into ``notes``.

    Raises
    ------
    InputError
        The draw's spillover matrix or alias file cannot be read (the message names it).
    """
    spillover, aliases, autogate = base.spillover, base.aliases, base.autogate
    if draw.spillover is not None:
        from nkpanel.flow.compensation import read_spillover_csv

        path = case.resolve(draw.spillover)
        spillover, read_notes = read_spillover_csv(path)
        if notes is not None:
            notes += [f"blood draw {draw.id}: {path.name}: {n}" for n in read_notes]
    if draw.aliases is not None:
        from nkpanel.flow.markers import load_aliases

        aliases = load_aliases(case.resolve(draw.aliases))
    if draw.cytometry is not None:
        autogate = dataclasses.replace(autogate, cytometry=draw.cytometry)
    counts = AbsoluteCountInputs(
        beads_per_test=draw.beads_per_test,
        sample_volume_ul=draw.sample_volume_ul,
        lymphocytes_per_ul=draw.lymphocytes_per_ul,
    )
    template = case.resolve(draw.template) if draw.template is not None else base.template
    template_sample = draw.template_sample or base.template_sample
    dataset = draw.dataset if draw.dataset is not None else base.dataset
    markers = {**base.marker_overrides, **draw.markers}  # the draw's own mapping wins
    # the draw's own win; FlowSettings puts every role in its own spelling (nk → NK)
    populations = {**base.template_populations, **draw.populations}
    return dataclasses.replace(
        base,
        template=template,
        template_sample=template_sample,
        template_populations=populations,
        counts=counts,
        dataset=dataset,
        marker_overrides=markers,
        spillover=spillover,
        aliases=aliases,
        autogate=autogate,
    )


def _moved(value: Any, old: Path, new: Path) -> Any:
    """``value`` (a JSON-ready summary) with every path under the folder ``old`` (as given or
    resolved) now under ``new``."""
    prefixes = ((str(old.resolve()), str(new.resolve())), (str(old), str(new)))

    def move(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: move(x) for k, x in v.items()}
        if isinstance(v, list):
            return [move(x) for x in v]
        if isinstance(v, str):
            for prefix, to in prefixes:
                if v == prefix or v.startswith(prefix + "/"):
                    return to + v[len(prefix) :]
        return v

    return move(value)


#: the file that says which case a case run's folder holds
CASE_ID_FILE = ".nkpanel-case.json"


def _images_in_two_biopsies(biopsies: list[dict[str, Any]]) -> None:
    """A note on each biopsy one of whose images (by resolved path) another biopsy of the case
    counted too: one picture in two biopsies (a manifest's copy-and-paste slip)."""
    first: dict[str, str] = {}
    for entry in biopsies:
        for image in entry.get("images") or []:
            for source in image.get("sources") or []:
                key = str(Path(source).resolve())
                other = first.setdefault(key, str(entry.get("id")))
                if other != entry.get("id"):
                    entry.setdefault("notes", []).append(
                        f"{source}: also an image of biopsy {other}; one picture counted in two "
                        "biopsies"
                    )


def _check_same_case(case: Case, out_dir: Path) -> None:
    """Refuse to write one case's results over another's: an output folder holding the case
    summary of another episode or patient is not reused (their results would mix).

    Raises
    ------
    ConfigError
        Naming the folder and the case it holds.
    """
    ids: tuple[str, str] | None = None
    for name, key in ((CASE_ID_FILE, None), ("case_summary.json", "case")):
        try:
            held = json.loads((out_dir / name).read_text(encoding="utf-8"))
            held = held[key] if key else held
            ids = (str(held["id"]), str(held["patient_id"]))
            break
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if ids is None:
        return  # no case of nkpanel's there
    if ids != (case.case.id, case.case.patient_id):
        raise ConfigError(
            f"{out_dir} holds the results of case {ids[0]} (patient {ids[1]}), not of "
            f"{case.case.id} (patient {case.case.patient_id}): give each case its own --out"
        )


def draw_files(
    case: Case, draw: BloodDraw, notes: list[str] | None = None
) -> tuple[list[Path], list[BatchFailure]]:
    """A blood draw's FCS files as its manifest lists them (``~`` expanded, folders replaced
    by the FCS files in them, with a note in ``notes`` for files left in subfolders), and a
    failure for each entry that is not there."""
    files: list[Path] = []
    failures: list[BatchFailure] = []
    where = f"listed under blood draw {draw.id!r} of the case manifest"
    for entry in draw.fcs:
        path = case.resolve(entry.expanduser())
        if not path.exists():
            failures.append(BatchFailure(str(path), f"no such file ({where})"))
            continue
        try:
            files += files_in_folders([path], (".fcs", ".lmd"), notes)
        except InputError as exc:
            failures.append(BatchFailure(str(path), f"{one_line(exc, source=path)} ({where})"))
    return files, failures


#: the folders a case run writes, one subfolder per specimen id
_SPECIMEN_FOLDERS = ("flow", "cytotoxicity", "uterine")


def _earlier_specimens(case: Case, out_dir: Path) -> list[Path]:
    """Specimen folders in ``out_dir`` that this case does not write (an earlier run's, of a
    specimen no longer in the manifest): named, never removed, since nkpanel cannot tell them
    from a lab's own folders of those names."""
    ids = {
        "flow": {d.id for d in case.blood_draws},
        "cytotoxicity": {c.id for c in case.cytotoxicity},
        "uterine": {b.id for b in case.endometrial},
    }
    out: list[Path] = []
    for section in _SPECIMEN_FOLDERS:
        folder = out_dir / section
        if folder.is_dir():
            out += sorted(
                d
                for d in folder.iterdir()
                if d.is_dir() and not d.name.startswith(".") and d.name not in ids[section]
            )
    return out


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` when inside it (the case folder can then be moved)."""
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path)


def _relative_figures(entry: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A plate's or biopsy's summary with its figures listed relative to the case folder."""
    figures = entry.get("figures")
    if isinstance(figures, dict):
        fixed: Any = {k: [_relative(Path(p), folder) for p in v] for k, v in figures.items()}
    elif isinstance(figures, list):
        fixed = [_relative(Path(p), folder) for p in figures]
    else:
        return entry
    return {**entry, "figures": fixed}


def run_case(
    case: Case,
    out_dir: Path,
    *,
    settings: FlowSettings | None = None,
    plots: bool = True,
    on_file: Progress | None = None,
    reports: bool = True,
    history: Sequence[dict[str, Any]] = (),
    intervals_path: Path | None = None,
    lab: LabInfo | None = None,
    jobs: int | None = 1,
) -> CaseOutcome:
    """Run every biomarker of ``case``, write a case summary beside the per-biomarker outputs,
    then interpret it and write the reports (clinician, patient, JSON, FHIR) under ``report/``.

    ``history`` holds the same patient's earlier case summaries, for the serial view. ``jobs``:
    the files of a blood draw analysed at once (:func:`analyze_flow_batch`).
    """
    base = settings or FlowSettings()
    check_ours(out_dir, ["case_summary.json", CASE_ID_FILE])  # refused before any work
    _check_same_case(case, out_dir)
    # the folder's case, said before any result is written (a run killed before its summary
    # still marks the folder as this case's)
    marker = json.dumps({"id": case.case.id, "patient_id": case.case.patient_id})
    write_owned(out_dir / CASE_ID_FILE, lambda t: write_text(t, marker))
    outcome = CaseOutcome(case)
    outcome.earlier = _earlier_specimens(case, out_dir)
    elsewhere: dict[str, str] = {}  # the events of the draws before
    for draw in case.blood_draws:
        below: list[str] = []
        files, missing = draw_files(case, draw, below)
        draw_out = out_dir / "flow" / draw.id
        batch = analyze_flow_batch(
            files,
            _draw_settings(base, draw, case, below),
            draw_out,
            plots=plots,
            on_file=on_file,
            prune=True,
            jobs=jobs,
            elsewhere=elsewhere,
            title=f"blood draw {draw.id} of case {case.case.id}",
            failed=missing,
            notes=below,
        )
        for fingerprint, sample in batch.events.items():
            elsewhere.setdefault(fingerprint, f"{sample} of blood draw {draw.id}")
        outcome.draws[draw.id] = batch
        outcome.removed += batch.removed
    from nkpanel.cytotox.manifest import run_plate_for_case

    for plate in case.cytotoxicity:
        if on_file is not None:
            on_file(f"cytotoxicity plate {plate.id}")
        final = out_dir / "cytotoxicity" / plate.id
        try:
            # written fresh, then in place of the earlier run's (whose files go if it fails)
            with atomic_folder(final) as tmp:
                entry = run_plate_for_case(plate, case.base_dir, tmp, None, plots=plots)
            outcome.cytotoxicity.append(_moved(entry, tmp, final))
        except Exception as exc:  # one plate's fault, nkpanel's included, stops no case
            remove_owned(final)
            outcome.cytotoxicity.append(
                {"id": plate.id, "assay": plate.assay, "error": batch_failure(exc)}
            )
    from nkpanel.uterine.manifest import run_biopsy_for_case

    for biopsy in case.endometrial:
        if on_file is not None:
            on_file(f"endometrial biopsy {biopsy.id}")
        if biopsy.lh_day is None and biopsy.cycle_day is None:
            # the episode's timing stands for a biopsy that gives none, as it does for the
            # report (a specimen's own facts win over the episode's)
            episode = case.pre_analytic
            biopsy = biopsy.model_copy(
                update={"lh_day": episode.lh_day, "cycle_day": episode.cycle_day}
            )
        try:
            entry = run_biopsy_for_case(biopsy, case.base_dir, out_dir / "uterine" / biopsy.id)
        except Exception as exc:  # the biopsy as a whole (its regions, stain vectors…)
            reason = batch_failure(exc)
            entry = {
                "id": biopsy.id,
                "uterine": None,
                "images": [],
                "failures": [{"source": f"endometrial biopsy {biopsy.id}", "reason": reason}],
            }
        outcome.endometrial.append(entry)
        outcome.earlier += [Path(d) for d in entry.get("earlier_image_folders", [])]
    _images_in_two_biopsies(outcome.endometrial)
    labelled = _synthetic_inputs(outcome)
    summary: dict[str, Any] = {
        "case": case.case.model_dump(mode="json"),
        "indication": case.indication.model_dump(mode="json"),
        # synthetic when the manifest says so or any input is labelled so: a manifest that
        # says false (or nothing) left a simulated case's report looking like a patient's
        "synthetic": case.case.synthetic or bool(labelled),
        "synthetic_inputs": labelled,
        "pre_analytic": case.pre_analytic.model_dump(mode="json", exclude_none=True),
        "blood_draws": [
            {
                "id": draw.id,
                "collected": draw.collected.isoformat() if draw.collected else None,
                "received": draw.received.isoformat() if draw.received else None,
                "pre_analytic": draw.pre_analytic.model_dump(mode="json", exclude_none=True),
                "bead_lot": draw.bead_lot,
                "flow": [
                    {
                        **r.summary(),
                        "figures": [
                            _relative(p, out_dir)
                            for p in outcome.draws[draw.id].figures.get(r.sample, [])
                        ],
                    }
                    for r in outcome.draws[draw.id].results
                ],
                "failures": [
                    {"source": f.source, "reason": f.reason}
                    for f in outcome.draws[draw.id].failures
                ],
                "notes": outcome.draws[draw.id].notes,
            }
            for draw in case.blood_draws
        ],
        "cytotoxicity": [_relative_figures(c, out_dir) for c in outcome.cytotoxicity],
        "endometrial": [_relative_figures(b, out_dir) for b in outcome.endometrial],
    }
    text = json.dumps(summary, indent=2, default=str)
    outcome.summary_path = write_owned(out_dir / "case_summary.json", lambda t: write_text(t, text))
    # the reports read exactly what was written (JSON types), without reading the file back
    outcome.summary = json.loads(text)
    if reports:
        from nkpanel.report import build_reports

        if on_file is not None:
            on_file("reports")
        # written fresh (no figure of an earlier report stays), beside it and then moved in
        final = out_dir / "report"
        with atomic_folder(final) as tmp:
            written = build_reports(
                outcome.summary,
                tmp,
                history=history,
                intervals_path=intervals_path,
                lab=lab,
                results_dir=out_dir,
            )
        outcome.report = written.moved(tmp, final)
    elif (out_dir / "report").is_dir():
        outcome.earlier.append(out_dir / "report")  # not written again: named, not removed
    return outcome
