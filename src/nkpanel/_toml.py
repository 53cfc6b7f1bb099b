"""Reading nkpanel's TOML files (case manifests, lab files, reference intervals, evidence).

Every failure is one :class:`~nkpanel.errors.ConfigError` line that names the file, what kind
of file it was meant to be, and the cause::

    case.toml: cannot read case manifest (No such file or directory)
    case.toml: case manifest is not valid TOML (Invalid value (at line 3, column 13))
    case.toml: invalid case manifest: case.patient_id: Field required

Example::

    >>> from nkpanel._toml import parse_toml
    >>> parse_toml('name = "Lab"', "lab.toml", "lab file")
    {'name': 'Lab'}
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from nkpanel.errors import ConfigError

__all__ = [
    "load_bundled_toml",
    "load_toml",
    "load_toml_or_bundled",
    "parse_toml",
    "refuse_duplicate_ids",
    "validate_toml",
]

M = TypeVar("M", bound=BaseModel)


def load_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Read and parse a TOML file.

    Parameters
    ----------
    path
        The file.
    what
        What the file is, for messages (``"case manifest"``, ``"lab file"``…).

    Returns
    -------
    dict
        The parsed document.

    Raises
    ------
    ConfigError
        The file cannot be read, is not UTF-8 text, or is not valid TOML; the message names the
        file and the cause.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: {what} is not valid TOML (not UTF-8 text: {exc})") from None
    return parse_toml(text, str(p), what)


def load_bundled_toml(package: str, resource: str, what: str) -> tuple[dict[str, Any], str]:
    """Read and parse a TOML file shipped inside nkpanel.

    Returns
    -------
    tuple
        The parsed document, and the name messages give it (``"nkpanel bundled {resource}"``).

    Raises
    ------
    ConfigError
        The bundled file is not valid TOML (a packaging fault).
    """
    source = f"nkpanel bundled {resource}"
    text = resources.files(package).joinpath(resource).read_text("utf-8")
    return parse_toml(text, source, what), source


def load_toml_or_bundled(
    path: Path | None, *, package: str, resource: str, what: str
) -> tuple[dict[str, Any], str]:
    """A lab's own file when one is given, else the one nkpanel ships.

    Returns
    -------
    tuple
        The parsed document, and the name messages give it: the path, or
        ``"nkpanel bundled {resource}"``.

    Raises
    ------
    ConfigError
        As :func:`load_toml`.
    """
    if path is None:
        return load_bundled_toml(package, resource, what)
    return load_toml(path, what), str(path)


def parse_toml(text: str, source: str, what: str) -> dict[str, Any]:
    """Parse TOML text read from ``source`` (a file name, or a label for bundled data).

    Raises
    ------
    ConfigError
        ``"{source}: {what} is not valid TOML ({cause})"``.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {what} is not valid TOML ({exc})") from None


def validate_toml(model: type[M], data: Mapping[str, Any], source: str | Path, what: str) -> M:
    """Validate a parsed TOML document against a pydantic model.

    Raises
    ------
    ConfigError
        ``"{source}: invalid {what}: {field}: {problem}; …"``, every offending field named by
        its dotted path.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{source}: invalid {what}: {problems}") from None


def used_twice(ids: list[str]) -> list[str]:
    """The ids that occur more than once, sorted."""
    return sorted({i for i in ids if ids.count(i) > 1})


def refuse_duplicate_ids(ids: list[str], name: str, what: str) -> None:
    """One ConfigError line naming the file and every id used more than once in it."""
    if dupes := used_twice(ids):
        raise ConfigError(f"{name}: {what} id(s) used twice: {', '.join(dupes)}")
