"""nkpanel's errors cross process boundaries whole (Dask workers, process pools)."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from nkpanel.errors import (
    CompensationError,
    ConfigError,
    FCSFormatError,
    InputError,
    MarkerError,
    QCError,
)


@pytest.mark.parametrize("kind", [InputError, FCSFormatError, MarkerError, CompensationError])
def test_input_errors_pickle_with_source_and_cause(kind: type[InputError]) -> None:
    err = kind("tube 1.fcs", "DATA segment ends past the file")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is kind
    assert (back.source, back.cause, str(back)) == (err.source, err.cause, str(err))
    nameless = pickle.loads(pickle.dumps(kind(None, "no file")))
    assert nameless.source is None and str(nameless) == "no file"


@pytest.mark.parametrize("kind", [ConfigError, QCError])
def test_other_errors_pickle(kind: type[Exception]) -> None:
    assert str(pickle.loads(pickle.dumps(kind("bad setting")))) == "bad setting"


def _refuse(path: str) -> None:
    raise FCSFormatError(path, "not an FCS file")


def test_an_error_raised_in_a_worker_process_reaches_the_caller() -> None:
    with ProcessPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_refuse, "x.fcs")
        with pytest.raises(FCSFormatError, match=r"^x\.fcs: not an FCS file$"):
            future.result()


def test_an_interrupt_python_swallows_is_not_printed_as_a_traceback() -> None:
    """Ctrl-C landing in a weakref callback is swallowed by Python, which printed "Exception
    ignored in …" and a traceback under a run that then stopped cleanly (seen under --jobs);
    the interrupt is remembered and acted on, so it is not printed. Other swallowed errors
    still are."""
    import subprocess
    import sys

    script = """
import gc, weakref
from nkpanel.errors import interrupt, interrupted, quiet_swallowed_interrupts
quiet_swallowed_interrupts()
class Thing: pass
def callback(_):
    interrupt(2, None)
def faulty(_):
    raise ValueError("a real fault")
a, b = Thing(), Thing()
weakref.ref(a, callback), weakref.ref(b, faulty)
keep = [weakref.ref(a, callback), weakref.ref(b, faulty)]
del a, b
gc.collect()
print(interrupted())
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout.strip() == "True"
    assert "KeyboardInterrupt" not in proc.stderr
    assert "ValueError: a real fault" in proc.stderr
