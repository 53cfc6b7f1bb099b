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


@pytest.fixture(scope="session")
def instrument_fcs() -> Path:
    """Real FCS files from many instruments (fcsparser's test data, see
    :mod:`tests.instrument_files`), or skip with the reason."""
    from tests.instrument_files import DEFAULT_DEST, instrument_folder

    folder = instrument_folder()
    if folder is None:
        pytest.skip(
            f"instrument FCS files not found in {DEFAULT_DEST}: `make test` fetches them "
            "from PyPI (python -m tests.instrument_files)"
        )
    return folder


def _fetched(name: str) -> Path:
    """The folder a pinned wheel's data were fetched into (:mod:`tests.instrument_files`), or
    skip with the reason."""
    from tests.instrument_files import DEFAULT_DEST, WHEELS, wheel_folder

    wheel = next(w for w in WHEELS if w.package.startswith(f"{name}=="))
    folder = wheel_folder(wheel)
    if folder is None:
        pytest.skip(
            f"{wheel.package}'s data not found in {DEFAULT_DEST}: `make test` fetches them "
            "from PyPI (python -m tests.instrument_files)"
        )
    return folder


@pytest.fixture(scope="session")
def aurora_pbmc() -> Path:
    """A real Cytek Aurora PBMC file (flowSpecs' data in wakaflockaflow 0.1.2), or skip."""
    return (
        _fetched("wakaflockaflow")
        / "wakaflockaflow/sample_data/spectral_pbmc/PBMC_spectral_UNMIXED.fcs"
    )


@pytest.fixture(scope="session")
def cytonorm_resources() -> Path:
    """CytoNorm's CyTOF files before and after normalisation (cytonormpy 1.0.2), or skip."""
    return _fetched("cytonormpy") / "cytonormpy/_resources"
