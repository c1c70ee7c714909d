"""Read what the bundler embedded in rescue.pyz (the trusted signers), from the zip or the tree."""

from __future__ import annotations

import pkgutil
from typing import Optional

TRUSTED_SIGNERS = "trusted/allowed_signers"  # beside this module, inside the `installer` package


def trusted_signers_text() -> Optional[str]:
    """The allowed_signers file embedded at build time, or None when the pyz carries none."""
    try:
        data = pkgutil.get_data("installer", TRUSTED_SIGNERS)
    except (FileNotFoundError, OSError):  # zipimport raises OSError, the file loader its subclass
        return None
    return None if data is None else data.decode("utf-8")
