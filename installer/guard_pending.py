"""The journal of a guarded switch, `P/state/guard-pending.json`: written before `current`
changes, removed once the guard's verdict is acted on; one left behind means the guard was cut
short (killed, interrupted, the machine went down) and its toolchain was never verified."""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from typing import Any, Callable, Dict, Optional

from installer.prefix import Layout
from installer.statefile import no_link, read_json
from manifests.files import write_atomic
from manifests.limits import DEFAULT_LIMITS

PENDING_FILE = "guard-pending.json"
OPS = ("install", "use")
KEYS = {"op", "guarded", "previous", "started", "run"}
RUN_ID = re.compile(r"[0-9a-f]{32}")
FIX = ("rescue removed it and trusted nothing in it; check with `list` that the current "
       "toolchain is the one you want (`use VERSION --guard-project DIR` to check it again)")


def write(layout: Layout, op: str, guarded: str, previous: Optional[str]) -> str:
    """Journal the switch; returns the guard run's id (see guard.kill_leftovers)."""
    no_link(layout.state, "the state folder")
    layout.state.mkdir(exist_ok=True)
    run_id = uuid.uuid4().hex
    write_atomic(layout.state / PENDING_FILE, json.dumps(
        {"op": op, "guarded": guarded, "previous": previous, "started": time.time(),
         "run": run_id}, sort_keys=True) + "\n")
    return run_id


def clear(layout: Layout) -> None:
    with contextlib.suppress(FileNotFoundError):
        (layout.state / PENDING_FILE).unlink()


def read(layout: Layout, is_id: Callable[[str], bool],
         is_installed: Callable[[str], bool]) -> Optional[Dict[str, Any]]:
    """The record left by a guard that was cut short, None when there is none. `guarded`
    must be a toolchain id (an interrupted install may not have put it in place), `previous`
    an installed one or null; anything else raises DamagedState (see statefile)."""

    def shape(doc: Any) -> Optional[str]:
        if not isinstance(doc, dict) or set(doc) != KEYS:
            return "it is not the record of a guarded switch"
        if doc["op"] not in OPS:
            return f"its op {doc['op']!r} is not one of {', '.join(OPS)}"
        if not isinstance(doc["guarded"], str) or not is_id(doc["guarded"]):
            return f"its guarded toolchain {doc['guarded']!r} is not a toolchain id"
        if not isinstance(doc["started"], (int, float)):
            return "its start time is not a number"
        if not isinstance(doc["run"], str) or not RUN_ID.fullmatch(doc["run"]):
            return "its run id is not one rescue writes"
        prev = doc["previous"]
        if prev is not None and (not isinstance(prev, str) or not is_installed(prev)):
            return f"its previous toolchain {prev!r} is not an installed toolchain"
        return None

    return read_json(layout.state / PENDING_FILE, "the guarded-switch journal", FIX, shape,
                     limit=DEFAULT_LIMITS.guard_pending_bytes)  # type: ignore[no-any-return]
