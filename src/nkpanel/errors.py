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

__all__ = [
    "CompensationError",
    "ConfigError",
    "FCSFormatError",
    "InputError",
    "MarkerError",
    "NkPanelError",
    "NkPanelWarning",
    "QCError",
]


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
