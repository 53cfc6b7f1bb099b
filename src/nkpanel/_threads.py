"""Row blocks of one large array worked on by a few threads.

Converting and compensating a million events is a stream through memory; NumPy releases the
GIL for it, so two threads on the rows finish in about two thirds of the time on the
project's 2-core machine, when the second thread is running. The rows are cut into a few
ranges per thread that the calling thread and the pool's take in turn: a pool thread woken
after a spell of single-threaded work can start late, and then takes only what is left. The
number of threads is the CPUs this process may use, at most 4, or ``NKPANEL_THREADS`` when
set (1 turns threading off, e.g. under a Dask worker that already runs one task per core).
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

__all__ = ["for_row_blocks", "setting_or_cpus", "thread_count"]

#: below this many rows one thread is faster than handing work to others
MIN_ROWS_PER_THREAD = 100_000
#: ranges the rows are cut into per thread, for the threads to take in turn
RANGES_PER_THREAD = 4

_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool when needed."""
    global _pool, _pool_size
    _pool, _pool_size = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def thread_count() -> int:
    """Threads for row-block work: ``NKPANEL_THREADS``, else usable CPUs capped at 4."""
    return setting_or_cpus("NKPANEL_THREADS", 4)


def setting_or_cpus(variable: str, cap: int, *, instead: str = "") -> int:
    """The whole number the environment ``variable`` sets, else the CPUs this process may
    use (:func:`usable_cpus`), at most ``cap``. ``instead``: what else the user may do, for
    the message.

    Raises
    ------
    ConfigError
        ``variable`` is set to anything but a whole number of 1 or more (it was taken for 1
        without a word)."""
    setting = os.environ.get(variable, "").strip()
    if setting:
        from nkpanel.errors import ConfigError

        try:
            number = int(setting)
        except ValueError:
            number = 0
        if number < 1:
            raise ConfigError(
                f"environment variable {variable}={setting!r} is not a whole number of 1 or "
                f"more (unset it to use the CPUs{instead})",
            )
        return number
    return max(1, min(usable_cpus(), cap))


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def for_row_blocks(n_rows: int, work: Callable[[int, int], None], align: int = 1) -> None:
    """Call ``work(start, stop)`` over ``[0, n_rows)``, cut into a few ranges per thread that
    the threads take in turn.

    Ranges start at multiples of ``align`` (so a caller's own blocks stay whole). The calling
    thread takes ranges too, and every thread takes the next range left until none is: a pool
    thread that was asleep can take longer to wake (an idle virtual CPU) than the work takes,
    and waiting for it made two threads slower than one; one that wakes late takes what is
    left. An exception in any range is raised here after every range has finished (the
    first range's, in row order).
    """
    threads = max(1, min(thread_count(), n_rows // MIN_ROWS_PER_THREAD))
    step = -(-n_rows // (threads * RANGES_PER_THREAD))
    step = max(1, -(-step // align) * align)
    bounds = [(lo, min(lo + step, n_rows)) for lo in range(0, n_rows, step)]
    if threads <= 1 or len(bounds) <= 1:  # one thread, or one range: run it here
        work(0, n_rows)
        return
    global _pool, _pool_size
    helpers = threads - 1
    if _pool is None or _pool_size < helpers:
        _pool = ThreadPoolExecutor(max_workers=helpers, thread_name_prefix="nkpanel")
        _pool_size = helpers
    turns = iter(range(len(bounds)))
    lock = threading.Lock()
    errors: list[Exception | None] = [None] * len(bounds)
    stop = False

    def take_turns() -> None:
        while not stop:
            with lock:
                k = next(turns, None)
            if k is None:
                return
            try:
                work(*bounds[k])
            except Exception as exc:  # raised below, once every range has finished
                errors[k] = exc

    futures: list[Future[None]] = []

    def helpers_done() -> list[Future[None]]:
        # helpers not started yet (their pool busy, or asleep) are not needed: only the ones
        # that did start are waited for (a cancelled future counts as done only once the
        # pool has dequeued it)
        started = [f for f in futures if not f.cancel()]
        wait(started)
        return started

    try:
        for _ in range(helpers):
            # in a copy of the caller's context: np.errstate is a context variable, and a
            # file's overflow must raise the same error whichever thread meets it
            futures.append(_pool.submit(contextvars.copy_context().run, take_turns))
        take_turns()
        stop = True
        started = helpers_done()
    finally:
        # interrupted (KeyboardInterrupt…) while taking a range or waiting for a helper: no
        # range may still be running once this returns, since the caller's buffers and files
        # are released then
        stop = True
        started = helpers_done()
    for f in started:
        f.result()
    for exc in errors:
        if exc is not None:
            raise exc
