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
    from nkpanel._atomic import atomic_folder

    target = tmp_path / "samples" / "tube1"
    target.mkdir(parents=True)
    (target / "old-figure.png").write_text("earlier run")
    with pytest.raises(RuntimeError), atomic_folder(target) as d:
        (d / "summary.json").write_text("{}")
        raise RuntimeError("analysis failed half-way")
    assert [p.name for p in target.iterdir()] == ["old-figure.png"]  # untouched
    with atomic_folder(target) as d:
        (d / "summary.json").write_text("{}")
    assert [p.name for p in target.iterdir()] == ["summary.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~0o027
    assert sorted(p.name for p in target.parent.iterdir()) == ["tube1"]  # no temporaries
