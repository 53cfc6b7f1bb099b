"""The ``nkpanel`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from nkpanel import __version__
from nkpanel.errors import NkPanelError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
flow_app = typer.Typer(no_args_is_help=True, help="Peripheral-blood NK cells by flow cytometry.")
app.add_typer(flow_app, name="flow")
err = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


@app.command()
def version() -> None:
    """Print the nkpanel version."""
    typer.echo(__version__)


@app.command()
def run(
    case: Annotated[Path, typer.Argument(help="Case manifest (TOML).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("nkpanel-out"),
) -> None:
    """Run every biomarker a case manifest holds."""
    from nkpanel.case import load_case

    load_case(case)
    raise NotImplementedError


def main() -> None:
    """Entry point: run the app, turning nkpanel errors into one line and a non-zero exit."""
    try:
        app(standalone_mode=False)
    except NkPanelError as exc:
        if _state["debug"]:
            raise
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
