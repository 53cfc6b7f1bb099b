"""Worker processes for a batch's files: each file's analysis and figures in a process of its
own, so that a batch uses the machine's cores (figures, drawn by matplotlib in Python, are most
of a batch's time and hold the GIL).

The processes are started fresh (``forkserver``: no copy of the parent's threads and locks),
each with the parent's ``--debug`` setting and a share of the row-block threads
(:mod:`nkpanel._threads`). In a worker, Ctrl-C and SIGTERM stop the file under way through its
own clean-up (its sample folder is written whole or not at all), and end a worker between
files; a parent that stops sends its workers SIGTERM (:func:`stop_workers`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from nkpanel.errors import (
    interrupt,
    quiet_swallowed_interrupts,
    show_tracebacks,
    tracebacks_shown,
)

__all__ = [
    "default_jobs",
    "job_count",
    "process_pool",
    "run_in_worker",
    "starting_workers",
    "stop_workers",
]

P = ParamSpec("P")
R = TypeVar("R")

#: at most this many processes by default: more rarely helps (each holds a whole file's events)
MAX_DEFAULT_JOBS = 8

#: what every worker imports (the analysis and its figures)
PRELOAD = ("nkpanel.pipeline", "nkpanel.flow.plots", "matplotlib.backends.backend_agg")

#: a file under way; the signal that stops it (0: none)
_busy = {"on": False, "stopping": 0, "ready": 0}


def job_count() -> int:
    """Processes for a batch: ``NKPANEL_JOBS`` when set, else the CPUs this process may use,
    at most :data:`MAX_DEFAULT_JOBS`."""
    from nkpanel._threads import setting_or_cpus

    return setting_or_cpus("NKPANEL_JOBS", MAX_DEFAULT_JOBS, instead=", or give --jobs N")


#: fewest files for which workers are worth starting by default (measured on 2 cores: starting
#: them takes about 0.7 s, a file's figures 0.3–3 s)
MIN_FILES_FOR_WORKERS = 3


def default_jobs(n_files: int, plots: bool) -> int:
    """Processes for a batch when the user chose none: :func:`job_count` for a batch with
    figures of :data:`MIN_FILES_FOR_WORKERS` files or more, else one (the analysis alone of
    a file takes a fraction of a second: starting workers would cost more than they save)."""
    return job_count() if plots and n_files >= MIN_FILES_FOR_WORKERS else 1


def process_pool(jobs: int) -> ProcessPoolExecutor:
    """A pool of ``jobs`` worker processes set up as the module says."""
    from nkpanel._atomic import held_folders
    from nkpanel._threads import thread_count

    threads = max(1, thread_count() // jobs)
    context = multiprocessing.get_context("forkserver")
    # imported once, in the server the workers are forked from, not once in each worker
    context.set_forkserver_preload(list(PRELOAD))
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_start,
        initargs=(tracebacks_shown(), threads, os.getpid(), held_folders()),
    )


#: the signals a worker stops by
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _start(debug: bool, threads: int, parent: int, folders: list[Path]) -> None:
    from nkpanel._atomic import held

    show_tracebacks(debug)
    for folder in folders:  # the parent's locked output folders, for the sweep of leftovers
        held(folder)
    os.environ["NKPANEL_THREADS"] = str(threads)
    signal.signal(signal.SIGINT, _stop_the_file)
    signal.signal(signal.SIGTERM, _stop_the_file)
    quiet_swallowed_interrupts()
    # before the signals are let in: a stop raised in here would be printed, with its
    # traceback, as the pool's "Exception in initializer"
    _stop_when_gone(parent)
    # blocked since the parent started the pool (see :func:`starting_workers`): one that came
    # meanwhile is handled now, by ending this worker quietly
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _busy["ready"] = 1


def _stop_when_gone(parent: int) -> None:
    """Stop this worker as SIGTERM does (the file under way through its clean-up) once the
    process that started it ends without stopping it (``kill -9``, a wrapper's time limit):
    the pool's queues stay open in the workers themselves, so a worker waited for work
    forever, after finishing and writing the file it held (audit 27: 2 workers, ~285 MB
    each, left running)."""
    import select
    import time

    try:  # a descriptor that becomes readable when the process ends (Linux 5.3 and later)
        gone: int | None = os.pidfd_open(parent)
    except (AttributeError, OSError):
        gone = None

    def alive() -> bool:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return False
        except OSError:
            pass  # another user's process by now: taken for the parent, as a poll cannot tell
        return True

    def watch() -> None:
        if gone is not None:
            select.select([gone], [], [])
        else:
            while alive():
                time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)
        # a stop swallowed where it landed (a weakref callback, an import: 1 in ~3 here)
        # lets the file finish; the worker then ends, as it would have done on the signal
        while _busy["on"]:
            time.sleep(0.1)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="nkpanel-parent-watch", daemon=True).start()


@contextlib.contextmanager
def starting_workers() -> Iterator[None]:
    """Ctrl-C and SIGTERM blocked in this thread while worker processes are started from it:
    the process that forks the workers and the workers inherit the block until they are set up
    (:func:`_start`), so that a signal in those first moments does not end them halfway through
    their imports with a traceback (review 25: 12 of 12 in the first two seconds). This
    process holds them meanwhile and acts on them after (:func:`~nkpanel._atomic.signals_held`)."""
    from nkpanel._atomic import signals_held

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # held here too, and acted on once the processes are started: cut short while it starts
    # one, this process stopped and the half-started worker failed with a traceback
    with signals_held():
        before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _stop_the_file(signum: int, frame: object) -> None:
    if not _busy["ready"]:  # still being set up: nothing to clean up, nothing to say
        os._exit(128 + signum)
    if _busy["on"]:
        if _busy["stopping"]:  # a second signal (Ctrl-C, then the parent's SIGTERM) waits
            return  # for the clean-up under way: cut short, it leaves a half-built folder
        _busy["stopping"] = signum  # through the file's clean-up: its folder whole or absent
        # noted as the command line's own handler notes it: an error the interrupt turns
        # into where it lands (a figure half drawn) is taken for it, not for the file's fault
        interrupt(signum, frame)
    # between files: nothing to clean up; a worker that stayed would wait for work forever
    # (the pool that would send it is stopping, its parent perhaps gone), and the pool
    # waits for its workers to end. Not while it sends its last result back, though: cut
    # short, that leaves half a message in the pipe, and the pool waits for the rest forever
    if _sending(frame):
        _busy["stopping"] = signum
        signal.signal(signal.SIGALRM, _stop_the_file)
        signal.setitimer(signal.ITIMER_REAL, 0.02)  # again, once the result is sent
        return
    raise SystemExit(128 + (_busy["stopping"] if signum == signal.SIGALRM else signum))


def _sending(frame: object) -> bool:
    """Whether ``frame`` (a signal handler's) is within the pool's sending of a result."""
    f = frame
    while f is not None:
        if getattr(getattr(f, "f_code", None), "co_name", "") in ("_sendback_result", "put"):
            return True
        f = getattr(f, "f_back", None)
    return False


def run_in_worker(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` in a worker: a signal that comes meanwhile stops it (as
    KeyboardInterrupt, through its clean-up), and then the worker; a second signal waits for
    that clean-up. Between files, a signal ends the worker."""
    _busy["on"] = True
    try:
        done = fn(*args, **kwargs)
        if _busy["stopping"]:  # a stop swallowed where it landed: the batch is stopping
            os._exit(128 + int(_busy["stopping"]))
        return done
    except KeyboardInterrupt:
        if _busy["stopping"]:  # stopped by a signal, its clean-up done: the batch stops, and
            # so does this worker (the pool that would end it may be gone with its parent)
            os._exit(128 + int(_busy["stopping"]))
        raise
    finally:
        _busy["on"], _busy["stopping"] = False, 0


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool`` now: files not started are not, those under way stop through their
    clean-up (SIGTERM to each worker), and the workers are waited for."""
    # the pool's own list of its processes (Python 3.14 has terminate_workers() for it)
    for process in list(getattr(pool, "_processes", None) or {}):
        with contextlib.suppress(OSError):
            os.kill(process, signal.SIGTERM)
    pool.shutdown(wait=True, cancel_futures=True)
