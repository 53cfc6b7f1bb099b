"""Row blocks of one large array worked on by a few threads.

Converting and compensating a million events is a stream through memory; NumPy releases the
GIL for it, so two threads on two halves of the rows finish in about two thirds of the time
on the project's 2-core machine. The number of threads is the CPUs this process may use,
at most 4, or ``NKPANEL_THREADS`` when set (1 turns threading off, e.g. under a Dask worker
that already runs one task per core).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

__all__ = ["for_row_blocks", "thread_count"]

#: below this many rows one thread is faster than handing work to others
MIN_ROWS_PER_THREAD = 100_000

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
    setting = os.environ.get("NKPANEL_THREADS", "").strip()
    if setting:
        try:
            return max(1, int(setting))
        except ValueError:
            return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def for_row_blocks(n_rows: int, work: Callable[[int, int], None], align: int = 1) -> None:
    """Call ``work(start, stop)`` over ``[0, n_rows)`` cut into one range per thread.

    Ranges start at multiples of ``align`` (so a caller's own blocks stay whole). An exception
    in any range is raised here after every range has finished.
    """
    threads = max(1, min(thread_count(), n_rows // MIN_ROWS_PER_THREAD))
    step = -(-n_rows // threads)
    step = max(1, -(-step // align) * align)
    bounds = [(lo, min(lo + step, n_rows)) for lo in range(0, n_rows, step)]
    if len(bounds) <= 1:  # one thread, or the alignment left one range: run it here
        work(0, n_rows)
        return
    global _pool, _pool_size
    if _pool is None or _pool_size < len(bounds):
        _pool = ThreadPoolExecutor(max_workers=len(bounds), thread_name_prefix="nkpanel")
        _pool_size = len(bounds)
    futures = [_pool.submit(work, lo, hi) for lo, hi in bounds]
    try:
        wait(futures)
    finally:
        # interrupted (KeyboardInterrupt…): no range may still be running once this returns,
        # since the caller's buffers and files are released then
        for f in futures:
            f.cancel()
        wait(futures)
    for f in futures:
        f.result()
