"""Exceptions and warnings of nkpanel.

The tree::

    NkPanelError                 root: everything nkpanel raises on purpose
    ├── InputError               a file or value cannot be used (names the file and the cause)
    │   ├── FCSFormatError       not a readable FCS data set (truncated, bad offsets…)
    │   ├── MarkerError          a required marker is not on any channel
    │   └── CompensationError    a spillover matrix that cannot be applied
    ├── ConfigError              a setting, manifest or alias file is invalid
    └── QCError                  measured, but not reportable, with the reason

    NkPanelWarning               a recoverable oddity; collected into the result's QC notes

The command line turns any ``NkPanelError`` into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "CompensationError",
    "ConfigError",
    "FCSFormatError",
    "InputError",
    "MarkerError",
    "NkPanelError",
    "NkPanelWarning",
    "QCError",
    "batch_failure",
    "one_line",
    "show_tracebacks",
    "tracebacks_shown",
]

#: set by the command line's ``--debug``: a batch re-raises unexpected errors instead of
#: recording them as one file's failure
_tracebacks = {"on": False}


def show_tracebacks(on: bool) -> None:
    """Whether an unexpected error in one file of a batch stops the batch with its traceback
    (``--debug``) or is recorded as that file's failure (the default)."""
    _tracebacks["on"] = on


def tracebacks_shown() -> bool:
    """Whether ``--debug`` asked for tracebacks (:func:`show_tracebacks`)."""
    return _tracebacks["on"]


def option_or_key(option: str, key: str) -> str:
    """A setting as a message names it: the command line's option and the case manifest's
    key, since one message reaches both (``nkpanel run`` has no ``--pixel-size``).

    >>> option_or_key("--pixel-size", "pixel_size_um")
    '--pixel-size (in a case manifest: pixel_size_um)'
    """
    return f"{option} (in a case manifest: {key})"


#: the signals that came, set by the command line's Ctrl-C and SIGTERM handlers (installed by
#: ``nkpanel.cli.main``)
_INTERRUPTED: list[int] = []


def interrupt(signum: int, frame: object) -> None:
    """Ctrl-C's or SIGTERM's handler: remembered, then raised as KeyboardInterrupt, so that
    the run stops through its own clean-up. Python raises it wherever the program is: in a
    weakref callback it is swallowed, in a module being imported it becomes ImportError; the
    remembered interrupt is raised again at the next item of a progress bar, and an error
    that follows it is taken for it (:func:`interrupted`)."""
    _INTERRUPTED.append(signum)
    raise KeyboardInterrupt


def quiet_swallowed_interrupts() -> None:
    """Say nothing of an interrupt Python swallowed where :func:`interrupt` raised it (a
    weakref callback: "Exception ignored in … KeyboardInterrupt" and a traceback on stderr);
    it is remembered and acted on (:func:`interrupted`). Other such errors are reported as
    before."""
    import sys

    default = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _INTERRUPTED:
            return
        default(unraisable)

    sys.unraisablehook = hook


def interrupted() -> bool:
    """Whether Ctrl-C or SIGTERM came (:func:`interrupt`)."""
    return bool(_INTERRUPTED)


def interrupt_exit_code() -> int:
    """The exit status of a run stopped by the first signal that came: 128 + its number, as
    a shell reports a process the signal ended (130 for Ctrl-C, 143 for SIGTERM), so that a
    scheduler tells its own stop from a user's; 130 when Ctrl-C came without a signal
    handler of nkpanel's (a KeyboardInterrupt raised otherwise)."""
    import signal

    return 128 + (_INTERRUPTED[0] if _INTERRUPTED else int(signal.SIGINT))


def batch_failure(exc: Exception, source: str | Path | None = None) -> str:
    """The one line recorded for a file of a batch that raised ``exc``.

    An nkpanel error says its cause. Any other exception is a fault of nkpanel's: it is named
    as one, so that the other files of the batch are still analysed (with ``--debug`` it is
    raised again, traceback and all)."""
    if interrupted():  # an interrupt turned into this error where it was raised: stop
        raise KeyboardInterrupt from exc
    if isinstance(exc, NkPanelError):
        return one_line(exc, source=source)
    if _tracebacks["on"]:
        raise exc
    return (
        f"internal error ({type(exc).__name__}: {one_line(exc, limit=200)}); any other files "
        "were still analysed: please report it (--debug shows the traceback)"
    )


def one_line(exc: BaseException | str, *, limit: int = 0, source: str | Path | None = None) -> str:
    """An error's message on one line: runs of whitespace become one space, an empty message
    becomes the exception's type, a leading "``source``: " is dropped (where the caller names
    the source itself), and beyond ``limit`` characters (when given) it is cut with "..."."""
    msg = " ".join(str(exc).split())
    if not msg and isinstance(exc, BaseException):
        msg = type(exc).__name__
    prefix = f"{source}: " if source is not None else ""
    if prefix and msg.startswith(prefix):
        msg = msg[len(prefix) :]
    return msg if not limit or len(msg) <= limit else msg[: limit - 3] + "..."


class NkPanelError(Exception):
    """Root of every error nkpanel raises on purpose."""


class InputError(NkPanelError):
    """An input file or value cannot be used.

    Parameters
    ----------
    source
        The file (or other input) at fault; it starts the message.
    cause
        What is wrong with it, in one line.
    """

    def __init__(self, source: str | Path | None, cause: str) -> None:
        self.source = str(source) if source is not None else None
        self.cause = cause
        super().__init__(f"{self.source}: {cause}" if self.source else cause)

    def __reduce__(self) -> tuple[type[InputError], tuple[str | None, str]]:
        # rebuilt from its two parts: an error raised in a worker process (Dask, a process
        # pool) must cross back to the caller whole, not fail to unpickle there
        return (type(self), (self.source, self.cause))


class FCSFormatError(InputError):
    """The file is not a readable FCS data set."""


class MarkerError(InputError):
    """A marker the analysis needs is not found on any channel."""


class CompensationError(InputError):
    """A spillover matrix cannot be applied."""


class ConfigError(NkPanelError):
    """A setting, case manifest or alias file is invalid."""


class QCError(NkPanelError):
    """A result was measured but is not reportable; the message gives the reason."""


class NkPanelWarning(UserWarning):
    """A recoverable oddity in the input, recorded in the result's QC notes."""
