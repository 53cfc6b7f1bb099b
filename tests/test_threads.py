"""Row-block threading: every row once, errors surface, results equal to one thread's."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from nkpanel._threads import MIN_ROWS_PER_THREAD, RANGES_PER_THREAD, for_row_blocks, thread_count


@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("n_rows", [0, 7, MIN_ROWS_PER_THREAD * 3 + 17])
def test_every_row_is_worked_on_once(
    threads: str, n_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NKPANEL_THREADS", threads)
    hits = np.zeros(n_rows, dtype=np.int64)
    ranges: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work(start: int, stop: int) -> None:
        with lock:
            ranges.append((start, stop))
        hits[start:stop] += 1

    for_row_blocks(n_rows, work, align=1000)
    assert np.all(hits == 1)
    assert all(start % 1000 == 0 for start, _ in ranges)
    expected = (
        1
        if threads == "1" or n_rows < 2 * MIN_ROWS_PER_THREAD
        else int(threads) * RANGES_PER_THREAD
    )
    assert len(ranges) == expected


def test_the_calling_thread_works_while_the_pool_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool thread that does not come (asleep, or busy: here held by another task) holds
    nothing up: the calling thread takes every range itself."""
    import nkpanel._threads as threads_module

    monkeypatch.setenv("NKPANEL_THREADS", "2")
    for_row_blocks(MIN_ROWS_PER_THREAD * 4, lambda start, stop: None)  # the pool exists
    pool = threads_module._pool
    assert pool is not None
    release = threading.Event()
    # every pool thread held by another task
    held = [pool.submit(release.wait, 10) for _ in range(threads_module._pool_size)]
    try:
        hits = np.zeros(MIN_ROWS_PER_THREAD * 4, dtype=np.int64)
        workers: set[int] = set()

        def work(start: int, stop: int) -> None:
            workers.add(threading.get_ident())
            hits[start:stop] += 1

        for_row_blocks(hits.size, work)
        assert np.all(hits == 1)
        assert workers == {threading.get_ident()}
    finally:
        release.set()
        for h in held:
            h.result()


def test_an_error_in_a_block_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NKPANEL_THREADS", "2")

    def work(start: int, stop: int) -> None:
        if start > 0:
            raise ValueError("second half")

    with pytest.raises(ValueError, match="second half"):
        for_row_blocks(MIN_ROWS_PER_THREAD * 4, work)


@pytest.mark.parametrize(("setting", "expected"), [("1", 1), ("3", 3), (" 2 ", 2)])
def test_thread_count_setting(setting: str, expected: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NKPANEL_THREADS", setting)
    assert thread_count() == expected


@pytest.mark.parametrize("setting", ["junk", "0", "-1", "2.5"])
@pytest.mark.parametrize("variable", ["NKPANEL_THREADS", "NKPANEL_JOBS"])
def test_a_setting_that_is_no_count_is_said_before_any_work(
    variable: str, setting: str, tmp_path: Path
) -> None:
    """NKPANEL_JOBS=abc (or 0) was taken for 1 without a word: one line, exit 2, nothing
    written. An explicit --jobs stands instead of NKPANEL_JOBS, and commands that start no
    workers nor row threads do not read them (audit 27: every command was refused)."""
    import subprocess
    import sys

    def nkpanel(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nkpanel", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, variable: setting},
        )

    proc = nkpanel("flow", "analyze", "x.fcs", "--out", "o")
    assert proc.returncode == 2
    instead = ", or give --jobs N" if variable == "NKPANEL_JOBS" else ""
    assert proc.stderr.strip() == (
        f"error: environment variable {variable}={setting!r} is not a whole number of 1 or "
        f"more (unset it to use the CPUs{instead})"
    )
    assert list(tmp_path.iterdir()) == []
    given = nkpanel("flow", "analyze", "x.fcs", "--out", "o", "--jobs", "1")
    assert (given.returncode == 2) == (variable == "NKPANEL_THREADS")
    assert "x.fcs" in given.stderr or variable == "NKPANEL_THREADS"  # the file's own fault
    assert nkpanel("simulate", "--out", "s", "--events", "2000").returncode == 0


def test_compensation_is_the_same_with_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from nkpanel.flow.compensation import compensate
    from nkpanel.flow.simulate import SimulationSpec, simulate_tube

    sample = simulate_tube(SimulationSpec(seed=2, n_events=250_000)).to_sample()
    monkeypatch.setenv("NKPANEL_THREADS", "1")
    one = compensate(sample)
    monkeypatch.setenv("NKPANEL_THREADS", "2")
    assert np.array_equal(compensate(sample), one)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_gets_a_working_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """After fork the parent's pool threads do not exist in the child; work must still run."""
    import multiprocessing

    monkeypatch.setenv("NKPANEL_THREADS", "2")
    both = threading.Barrier(2, timeout=10)
    # ranges that wait for each other in pairs: the parent's pool thread has then worked
    for_row_blocks(MIN_ROWS_PER_THREAD * 4, lambda start, stop: both.wait() and None)
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_work_in_child)
    child.start()
    child.join(timeout=20)
    if child.is_alive():  # hung: its pool had no threads
        child.kill()
        child.join()
    assert child.exitcode == 0


def _work_in_child() -> None:
    hits = np.zeros(MIN_ROWS_PER_THREAD * 4, dtype=np.int64)

    def work(start: int, stop: int) -> None:
        hits[start:stop] += 1

    for_row_blocks(hits.size, work)
    raise SystemExit(0 if np.all(hits == 1) else 1)


def test_an_interrupt_while_waiting_for_a_helper_leaves_no_range_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C while the caller waits for a helper's last range: the call raised at once with
    the range still running, though the caller's buffers are released then (review 17)."""
    import os
    import signal
    import time

    monkeypatch.setenv("NKPANEL_THREADS", "2")
    main = threading.get_ident()
    running = [0]
    lock = threading.Lock()

    def work(start: int, stop: int) -> None:
        with lock:
            running[0] += 1
        try:
            time.sleep(0.3 if threading.get_ident() != main else 0.01)
        finally:
            with lock:
                running[0] -= 1

    timer = threading.Timer(0.15, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            for_row_blocks(8 * MIN_ROWS_PER_THREAD, work)
            time.sleep(1.0)  # the interrupt came after the call: raised here instead
        assert running[0] == 0
    finally:
        timer.cancel()


def test_helpers_work_under_the_callers_errstate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper thread runs its ranges under the caller's np.errstate: an overflow the caller
    ignores (the FCS reader checks values itself) raised RuntimeWarning, under the test
    suite's warnings-as-errors, only when a helper met it (review 17)."""
    import time

    monkeypatch.setenv("NKPANEL_THREADS", "2")
    main = threading.get_ident()
    helpers: set[int] = set()

    def work(start: int, stop: int) -> None:
        if threading.get_ident() != main:
            helpers.add(threading.get_ident())
        else:
            time.sleep(0.01)  # the caller's ranges slow: a helper takes some
        np.multiply(np.full(4, 1e308), 10.0)  # overflows to inf

    for _ in range(20):  # until a helper has taken a range
        with np.errstate(over="ignore"):
            for_row_blocks(8 * MIN_ROWS_PER_THREAD, work)
        if helpers:
            break
    assert helpers
