"""Atomic output files get the permissions an ordinary open() gives them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from nkpanel._atomic import write_text


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask_027")
def test_new_file_follows_the_umask_not_the_temporary_files_0600(tmp_path: Path) -> None:
    target = tmp_path / "flow_summary.json"
    write_text(target, "{}")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~0o027  # 0640: the group reads it


@pytest.mark.usefixtures("umask_027")
def test_replaced_file_keeps_its_own_permissions(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")
    target.chmod(0o664)
    write_text(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o664


@pytest.mark.usefixtures("umask_027")
def test_folder_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    from nkpanel._atomic import OWNED, atomic_folder

    target = tmp_path / "samples" / "tube1"
    with atomic_folder(target) as d:
        (d / "old-figure.png").write_text("earlier run")
    (name, size, _mtime, _sha256) = (target / OWNED).read_text().strip().split("\t")
    assert (name, size) == ("old-figure.png", str(len("earlier run")))
    with pytest.raises(RuntimeError), atomic_folder(target) as d:
        (d / "summary.json").write_text("{}")
        raise RuntimeError("analysis failed half-way")
    assert sorted(p.name for p in target.iterdir()) == [OWNED, "old-figure.png"]  # untouched
    with atomic_folder(target) as d:
        (d / "summary.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == [OWNED, "summary.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~0o027
    assert sorted(p.name for p in target.parent.iterdir()) == ["tube1"]  # no temporaries


def test_files_nkpanel_did_not_write_are_never_removed(tmp_path: Path) -> None:
    """A folder holding a lab's files (or the input itself) keeps them: only nkpanel's own
    earlier files go, the new ones come in beside them."""
    from nkpanel._atomic import OWNED, atomic_folder, remove_owned

    target = tmp_path / "samples" / "tube1"
    target.mkdir(parents=True)
    (target / "tube1.fcs").write_bytes(b"FCS3.1")
    with atomic_folder(target) as d:
        (d / "plots").mkdir()
        (d / "plots" / "NK.png").write_text("run 1")
        (d / "summary.json").write_text("run 1")
    (target / "notes.txt").write_text("the lab's")
    with atomic_folder(target) as d:
        (d / "summary.json").write_text("run 2")
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == [OWNED, "notes.txt", "summary.json", "tube1.fcs"]  # run 1's figure gone
    assert (target / "summary.json").read_text() == "run 2"
    assert not remove_owned(target)  # the lab's files keep the folder
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt", "tube1.fcs"]
    assert not remove_owned(tmp_path / "samples")  # no list: nothing of nkpanel's to remove


@pytest.mark.usefixtures("umask_027")
def test_a_shared_folders_setgid_bit_is_passed_on(tmp_path: Path) -> None:
    from nkpanel._atomic import atomic_folder

    shared = tmp_path / "lab-share"
    shared.mkdir()
    shared.chmod(0o2775)
    with atomic_folder(shared / "tube1") as d:
        (d / "summary.json").write_text("{}")
    assert stat.S_IMODE((shared / "tube1").stat().st_mode) == 0o2750


def test_a_labs_file_of_an_nkpanel_name_is_never_overwritten(tmp_path: Path) -> None:
    from nkpanel._atomic import atomic_folder
    from nkpanel.errors import InputError

    target = tmp_path / "report"
    target.mkdir()
    (target / "report.pdf").write_text("the lab's own report")
    refused = pytest.raises(InputError, match="exists and was not written by nkpanel")
    with refused, atomic_folder(target) as d:
        (d / "report.pdf").write_text("nkpanel's")
    assert (target / "report.pdf").read_text() == "the lab's own report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporaries


def test_nothing_is_removed_or_written_through_a_link(tmp_path: Path) -> None:
    """A link inside the folder to the user's own folder, and a list naming a path outside:
    nothing outside the output folder is touched."""
    from nkpanel._atomic import OWNED, atomic_folder, remove_owned
    from nkpanel.errors import InputError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "NK.png").write_text("the user's figure")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    target = tmp_path / "out" / "tube1"
    with atomic_folder(target) as d:
        (d / "plots").mkdir()
        (d / "plots" / "NK.png").write_text("nkpanel's")
    (target / "plots" / "NK.png").unlink()
    (target / "plots").rmdir()
    (target / "plots").symlink_to(mine)
    with (target / OWNED).open("a") as fh:
        fh.write(f"{victim}\n../victim.txt\n")
    (target / "notes.txt").write_text("the lab's")  # so the folder is merged, not swapped
    refused = pytest.raises(InputError, match="leads out of the output folder through a link")
    with refused, atomic_folder(target) as d:
        (d / "plots").mkdir()
        (d / "plots" / "NK.png").write_text("nkpanel's, run 2")
    remove_owned(target)
    assert (mine / "NK.png").read_text() == "the user's figure"
    assert victim.read_text() == "keep me"


def test_a_linked_output_folder_is_written_through_not_replaced(tmp_path: Path) -> None:
    """report/ is a link to a shared folder: the new report goes there, the link stays."""
    from nkpanel._atomic import atomic_folder

    shared = tmp_path / "shared-reports"
    shared.mkdir()
    (tmp_path / "case").mkdir()
    link = tmp_path / "case" / "report"
    link.symlink_to(shared)
    for run in ("age 34", "age 35"):
        with atomic_folder(link) as d:
            (d / "report.html").write_text(run)
    assert link.is_symlink() and (shared / "report.html").read_text() == "age 35"


def test_a_listed_file_changed_since_is_the_users(tmp_path: Path) -> None:
    """events.csv, listed as nkpanel's, then corrected by hand: a re-run neither removes nor
    overwrites it, and says so in one line."""
    import os

    from nkpanel._atomic import atomic_folder, remove_owned
    from nkpanel.errors import InputError

    target = tmp_path / "samples" / "tube1"
    with atomic_folder(target) as d:
        (d / "events.csv").write_text("event,NK\n1,True\n")
        (d / "summary.json").write_text("{}")
    events = target / "events.csv"
    events.write_text("event,NK\n1,False\n")  # the lab's correction
    os.utime(events, ns=(1, 1))
    refused = pytest.raises(InputError, match="or was changed since")
    with refused, atomic_folder(target) as d:
        (d / "events.csv").write_text("event,NK\n1,True\n")
    with atomic_folder(target) as d:  # a run without --export-events
        (d / "summary.json").write_text("{}")
    assert events.read_text() == "event,NK\n1,False\n"
    remove_owned(target)
    assert sorted(p.name for p in target.iterdir()) == ["events.csv"]


def test_temporaries_a_killed_run_left_are_swept_after_an_hour(tmp_path: Path) -> None:
    import os

    from nkpanel._atomic import LEFTOVER_AGE_S, atomic_folder, write_text

    old_dir = tmp_path / ".tube1.nkpanel-abc12345.part"
    old_dir.mkdir()
    (old_dir / "summary.json").write_text("{}")
    old_file = tmp_path / ".flow_summary.json.nkpanel-xyz_1234.part"
    old_file.write_text("{")
    fresh = tmp_path / ".tube1.nkpanel-def45678.part"  # another run's, writing now
    fresh.mkdir()
    other = tmp_path / ".tube10.nkpanel-ghi78912.part"  # another target's
    other.mkdir()
    users = tmp_path / ".tube1.20261122.old"  # a user's own hidden backup: not nkpanel's
    users.write_text("mine")
    long_ago = os.stat(old_dir).st_mtime - LEFTOVER_AGE_S - 1
    for p in (old_dir, old_file, other, users):
        os.utime(p, (long_ago, long_ago))
    with atomic_folder(tmp_path / "tube1") as d:
        (d / "summary.json").write_text("{}")
    write_text(tmp_path / "flow_summary.json", "{}")
    assert not old_dir.exists() and not old_file.exists()
    assert fresh.exists() and other.exists() and users.read_text() == "mine"


def test_in_a_folder_the_run_holds_locked_every_leftover_is_swept(tmp_path: Path) -> None:
    """Audit 27: a worker killed with `kill -9` (or a run a closed terminal ended) left a
    hidden folder that a re-run within the hour kept. In a folder this run holds locked no
    other run writes, so a temporary there of any age is a leftover; elsewhere the hour
    stands."""
    from nkpanel._atomic import atomic_folder, held

    locked, other = tmp_path / "locked" / "samples", tmp_path / "free"
    for folder in (locked, other):
        folder.mkdir(parents=True)
        (folder / ".tube1.nkpanel-abc12345.part").mkdir()  # young: a minute ago, say
    release = held(tmp_path / "locked")
    try:
        for folder in (locked, other):
            with atomic_folder(folder / "tube1") as d:
                (d / "summary.json").write_text("{}")
    finally:
        release()
    assert not (locked / ".tube1.nkpanel-abc12345.part").exists()
    assert (other / ".tube1.nkpanel-abc12345.part").exists()
    with atomic_folder(locked / "tube1") as d:  # released: the hour stands again
        (locked / ".tube1.nkpanel-def45678.part").mkdir()
        (d / "summary.json").write_text("{}")
    with atomic_folder(locked / "tube1") as d:
        (d / "summary.json").write_text("{}")
    assert (locked / ".tube1.nkpanel-def45678.part").exists()


def test_a_folder_another_run_holds_on_the_path_keeps_its_temporaries(tmp_path: Path) -> None:
    """Review 28: a case run into `out/case` and a batch into `out/case/flow/draw-1` each held
    their own folder and took the draw's for theirs alone, removing each other's live
    temporaries. Another run holding a folder above or below keeps the hour."""
    import fcntl
    import os

    from nkpanel._atomic import atomic_folder, held

    outer, inner = tmp_path / "case", tmp_path / "case" / "flow" / "draw-1"
    samples = inner / "samples"
    samples.mkdir(parents=True)
    for mine, theirs in ((outer, inner), (inner, outer)):
        live = samples / ".t1.nkpanel-abc12345.part"  # the other run's, being written
        live.mkdir()
        fd = os.open(theirs, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as nkpanel._cli.hold_folder does
        release = held(mine)
        try:
            with atomic_folder(samples / "t1") as d:
                (d / "summary.json").write_text("{}")
        finally:
            release()
            os.close(fd)
        assert live.is_dir(), f"held {mine.name}, another run {theirs.name}"
        live.rmdir()


def test_an_interrupt_is_held_back_while_a_folder_is_swapped() -> None:
    """Ctrl-C or SIGTERM between atomic_folder's two renames left neither the old nor the new
    folder in place (review 19): they are delivered once both renames are done."""
    import os
    import signal

    from nkpanel._atomic import signals_held

    done = []
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("first rename")
            done.append("second rename")
        raise AssertionError("the interrupt was lost")
    except KeyboardInterrupt:
        pass
    assert done == ["first rename", "second rename"]


def test_an_interrupt_is_held_back_while_other_threads_run() -> None:
    """With other threads alive (nkpanel's reading helpers), a signal blocked in the main
    thread's mask was handed to one of them and Python raised it at once (the full suite
    caught it): the interrupt still comes only after the step."""
    import os
    import signal
    import threading
    import time

    from nkpanel._atomic import signals_held

    stop = threading.Event()

    def busy() -> None:  # wakes often, as a reading helper does
        while not stop.is_set():
            time.sleep(0.0001)

    helpers = [threading.Thread(target=busy, daemon=True) for _ in range(2)]
    for h in helpers:
        h.start()
    time.sleep(0.05)
    done = []
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            # longer than Python's switch interval (5 ms): the helpers take the lock in
            # between, and a signal that reached one of them is then run in this thread
            end = time.monotonic() + 0.05
            while time.monotonic() < end:
                pass
            done.append("step")
        raise AssertionError("the interrupt was lost")
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for h in helpers:
            h.join()
    assert done == ["step"]
