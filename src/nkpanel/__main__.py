"""``python -m nkpanel`` and the ``nkpanel`` command."""

from __future__ import annotations

import signal


def _before_main(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM while the program is still loading: nothing has started, nothing to
    clean up; the run ends quietly with 128 + the signal, where Ctrl-C printed Python's
    KeyboardInterrupt traceback (the command line's own handlers come with it, a moment
    later)."""
    raise SystemExit(128 + signum)


def run() -> None:
    """The command line, with Ctrl-C and SIGTERM answered from the first moment."""
    signal.signal(signal.SIGINT, _before_main)
    signal.signal(signal.SIGTERM, _before_main)
    from nkpanel.cli import main

    main()


if __name__ == "__main__":  # not when a worker process imports the parent's main module
    run()
