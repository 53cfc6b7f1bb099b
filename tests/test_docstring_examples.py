"""The Examples sections of the package's docstrings run as written (doctest), so that the
numbers they quote cannot drift from what the code gives."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import nkpanel


def _modules() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.walk_packages(nkpanel.__path__, prefix="nkpanel.")
        if not m.name.endswith("__main__")
    )


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
