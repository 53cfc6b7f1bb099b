"""nkpanel: NK-cell testing for reproductive-immunology laboratories.

From raw instrument files to measurements with quality control; every figure it reports says
where it came from. The public surface is listed in ``__all__``; everything else is private.
"""

from __future__ import annotations

from nkpanel.errors import (
    ConfigError,
    InputError,
    NkPanelError,
    NkPanelWarning,
    QCError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "InputError",
    "NkPanelError",
    "NkPanelWarning",
    "QCError",
    "__version__",
]
