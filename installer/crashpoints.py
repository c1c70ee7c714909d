"""Named points where a test may kill the installer (SIGKILL), to prove crash safety.

Only `RESCUE_CRASH_AT=<name>` in the environment arms one; nothing else changes behaviour.
"""

from __future__ import annotations

import os
import signal

_ARMED = os.environ.get("RESCUE_CRASH_AT")  # read once: staging asks per member


def reached(name: str) -> None:
    if _ARMED is not None and name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
