"""The public surface is locked: a change to it is a deliberate change to this test."""

from __future__ import annotations

import nkpanel


def test_public_surface() -> None:
    assert sorted(nkpanel.__all__) == sorted(
        ["ConfigError", "InputError", "NkPanelError", "NkPanelWarning", "QCError", "__version__"]
    )
    for name in nkpanel.__all__:
        assert hasattr(nkpanel, name)
