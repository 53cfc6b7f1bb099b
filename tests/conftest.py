"""Shared fixtures. The real public data lives beside the project in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public test data, or skip with the reason."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real public test data not found at {SHARED_DATA} (../shared/data)")
    return SHARED_DATA
