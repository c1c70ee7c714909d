"""Pinned snapshots (P/state/snapshot-pins.json): never removed by the disk marks, nor by
`snapshot prune` unless --include-pinned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional, Set

from installer import statefile
from installer.prefix import Layout
from installer.snapshot_check import is_id
from manifests.errors import NotReadyError
from manifests.files import write_atomic

WHAT = "snapshot pins"
FORMAT = 1


def path(layout: Layout) -> Path:
    return layout.state / "snapshot-pins.json"


def _problem(doc: Any) -> Optional[str]:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return f"it is not a rescue pin list (a JSON object with format {FORMAT})"
    pinned = doc.get("pinned")
    if not isinstance(pinned, list) or not all(isinstance(i, str) and is_id(i) for i in pinned):
        return "its pinned is not a list of snapshot ids"
    return None


def load(layout: Layout) -> Set[str]:
    """The pinned ids (none without the file); a damaged file is exit 2, naming it."""
    where = path(layout)
    fix = (f"move it aside (`mv {where} {where}.damaged`) and pin again with `rescue.pyz "
           "snapshot pin ID` (`snapshot list` shows the ids)")
    doc = statefile.read_json(where, WHAT, fix, _problem)
    return set(doc["pinned"]) if doc is not None else set()


def save(layout: Layout, pinned: Set[str]) -> None:
    statefile.no_link(layout.state, "the state directory")
    try:
        write_atomic(path(layout), json.dumps({"format": FORMAT, "pinned": sorted(pinned)},
                                              indent=2) + "\n")
    except OSError as exc:
        raise NotReadyError(
            f"writing snapshot pins {path(layout)}: {exc.strerror or exc}; run as the user who "
            "owns the prefix", operation="writing snapshot pins",
            subject=str(path(layout))) from None


def change(layout: Layout, snapshot_id: str, pin: bool) -> List[str]:
    """Pin or unpin one id; returns the pinned ids after."""
    pinned = load(layout)
    if (snapshot_id in pinned) != pin:
        (pinned.add if pin else pinned.discard)(snapshot_id)
        save(layout, pinned)
    return sorted(pinned)
